/**
 * Property tests of the built-in policies (docs/DESIGN.md §3-4): over thousands of random parameter
 * sets, every plan nests, and every budget and layer set equals the docs/DESIGN.md §4 formula recomputed
 * here independently (the literal `Math.round` expression for `linear`, including `H = 1`),
 * in both prompt modes; `earlyExit` runs exactly `{0..n-1}`, `full` all layers.
 */
import { assert, assertEquals, assertThrows } from "@std/assert";
import {
  constant,
  customPolicy,
  earlyExit,
  full,
  linear,
  plan,
  type Policy,
  PolicyError,
  powerLaw,
  type PromptMode,
  skipDecodeSet,
} from "../schedule/mod.ts";
import { intIn, rng } from "./helpers.ts";

/** docs/DESIGN.md §4 linear, written out literally as docs/DESIGN.md §4 states it (JavaScript `Math.round`). */
function specLinear(max: number, min: number, j: number, H: number): number {
  if (H === 1) return min;
  return Math.min(max, Math.max(min, Math.round(max - (max - min) * Math.min(j / (H - 1), 1))));
}

function specPowerLaw(max: number, min: number, alpha: number, tau: number, j: number): number {
  return Math.min(max, Math.max(min, Math.round(min + (max - min) * (1 + j / tau) ** -alpha)));
}

function specSkipSet(L: number, n: number, w: number): number[] {
  const out: number[] = [];
  for (let l = 0; l < L; l++) if (l < w || l >= L - (n - w)) out.push(l);
  return out;
}

interface Case {
  L: number;
  P: number;
  N: number;
  w: number;
  min: number;
  max: number;
  horizon?: number;
  alpha: number;
  tau: number;
  mode: PromptMode;
}

function randomCase(r: () => number): Case {
  const L = intIn(r, 1, 40);
  const w = intIn(r, 0, L - 1);
  const min = intIn(r, w + 1, L);
  const max = intIn(r, min, L);
  return {
    L,
    P: intIn(r, 1, 30),
    N: intIn(r, 1, 60),
    w,
    min,
    max,
    horizon: r() < 0.3 ? undefined : r() < 0.1 ? 1 : intIn(r, 1, 80),
    alpha: r() < 0.1 ? intIn(r, 0, 3) : r() * 3,
    tau: r() < 0.2 ? intIn(r, 1, 16) : 0.05 + r() * 40,
    mode: r() < 0.5 ? "full" : "decay",
  };
}

/** The (j, H) of a scheduled column, or null for a full-depth prompt column. */
function index(k: Case, c: number, horizon: number | undefined) {
  if (k.mode === "full" && c < k.P) return null;
  const H = horizon ?? k.N;
  return k.mode === "decay" ? { j: c, H: k.P + H } : { j: c - k.P, H };
}

/** Checks a plan against expected budgets and the nesting invariant, independently. */
function checkPlanAgainst(
  policy: Policy,
  k: Case,
  expectedBudget: (c: number) => number,
  expectedSet: (n: number) => number[],
) {
  const p = plan(policy, { layers: k.L, promptLength: k.P, maxNewTokens: k.N });
  const C = k.P + k.N - 1;
  assertEquals(p.sets.length, C);
  for (let c = 0; c < C; c++) {
    const n = expectedBudget(c);
    if (p.budgets[c] !== n) {
      throw new Error(`${policy} ${JSON.stringify(k)} column ${c}: ${p.budgets[c]} != ${n}`);
    }
    assertEquals(p.sets[c], expectedSet(n), `${policy} column ${c}`);
    if (c > 0) {
      const prev = new Set(p.sets[c - 1]);
      assert(p.sets[c].every((l) => prev.has(l)), `${policy}: column ${c} not nested`);
    }
  }
  assertEquals(p.generatedLayers, p.sets.slice(k.P - 1).map((s) => s.length));
  assertEquals(p.generatedLayers.length, k.N);
  for (let l = 0; l < k.L; l++) {
    const cols = p.sets.flatMap((s, c) => (s.includes(l) ? [c] : []));
    assertEquals(cols, Array.from({ length: p.prefix[l] }, (_, c) => c), `layer ${l} prefix`);
  }
  const sum = p.generatedLayers.reduce((a, b) => a + b, 0);
  assertEquals(p.layerSpeedup, (k.N * k.L) / sum);
  return p;
}

Deno.test("linear: budgets and sets equal docs/DESIGN.md §4 over 3000 random cases", () => {
  const r = rng(1);
  for (let i = 0; i < 3000; i++) {
    const k = randomCase(r);
    const policy = linear({
      max: k.max,
      min: k.min,
      warmup: k.w,
      horizon: k.horizon,
      promptMode: k.mode,
    });
    checkPlanAgainst(
      policy,
      k,
      (c) => {
        const x = index(k, c, k.horizon);
        return x === null ? k.L : specLinear(k.max, k.min, x.j, x.H);
      },
      (n) => specSkipSet(k.L, n, k.w),
    );
  }
});

Deno.test("powerLaw: budgets and sets equal docs/DESIGN.md §4 over 3000 random cases", () => {
  const r = rng(2);
  for (let i = 0; i < 3000; i++) {
    const k = randomCase(r);
    const policy = powerLaw({
      max: k.max,
      min: k.min,
      warmup: k.w,
      alpha: k.alpha,
      tau: k.tau,
      promptMode: k.mode,
    });
    checkPlanAgainst(
      policy,
      k,
      (c) => {
        const x = index(k, c, undefined);
        return x === null ? k.L : specPowerLaw(k.max, k.min, k.alpha, k.tau, x.j);
      },
      (n) => specSkipSet(k.L, n, k.w),
    );
  }
});

Deno.test("constant, full and earlyExit over 2000 random cases", () => {
  const r = rng(3);
  for (let i = 0; i < 2000; i++) {
    const k = randomCase(r);
    const n = k.min;
    const scheduled = (c: number) => index(k, c, undefined) !== null;
    checkPlanAgainst(
      constant({ n, warmup: k.w, promptMode: k.mode }),
      k,
      (c) => (scheduled(c) ? n : k.L),
      (m) => specSkipSet(k.L, m, k.w),
    );
    const all = Array.from({ length: k.L }, (_, l) => l);
    const pf = checkPlanAgainst(full(), k, () => k.L, () => all);
    assertEquals(pf.layerSpeedup, 1);
    assert(pf.sets.every((s) => s.length === k.L));
    // earlyExit keeps the wrapped budget but runs exactly the bottom layers {0..n-1}
    const inner = linear({ max: k.max, min: k.min, horizon: k.horizon, promptMode: k.mode });
    checkPlanAgainst(
      earlyExit(inner),
      k,
      (c) => {
        const x = index(k, c, k.horizon);
        return x === null ? k.L : specLinear(k.max, k.min, x.j, x.H);
      },
      (m) => Array.from({ length: m }, (_, l) => l),
    );
  }
});

Deno.test("linear: Math.round on doubles, exactly as docs/DESIGN.md §4 writes it; H = 1 gives min", () => {
  const ctx = (column: number, P: number, N: number, L: number) => ({
    column,
    promptLength: P,
    maxNewTokens: N,
    layers: L,
  });
  // 20 - 19 * 21 / 38 is 9.5 on paper but 9.4999... in doubles: Math.round gives 9, and so
  // must the policy (the formula of docs/DESIGN.md §4 is the JavaScript expression, evaluated literally).
  const p = linear({ max: 20, min: 1, horizon: 39 });
  assertEquals(Math.round(20 - (20 - 1) * Math.min(21 / 38, 1)), 9);
  assertEquals(p.budget(ctx(1 + 21, 1, 50, 24)), 9);
  // 12 - 8 * 1 / 16 = 11.5 (exact in binary) -> 12; j = 3: 12 - 1.5 = 10.5 -> 11
  const q = linear({ max: 12, min: 4, warmup: 1, horizon: 17 });
  assertEquals(q.budget(ctx(4 + 1, 4, 40, 12)), 12);
  assertEquals(q.budget(ctx(4 + 3, 4, 40, 12)), 11);
  // H = 1 gives min from the first generated-input column on; the prompt stays full
  const h1 = linear({ max: 10, min: 3, warmup: 2, horizon: 1 });
  assertEquals(h1.budget(ctx(3, 4, 8, 12)), 12);
  assertEquals(h1.budget(ctx(4, 4, 8, 12)), 3);
  assertEquals(h1.layerSet(ctx(9, 4, 8, 12)), [0, 1, 11]);
  // maxNewTokens = 1 with the default horizon is H = 1 too
  assertEquals(linear({ max: 10, min: 3 }).budget(ctx(4, 4, 1, 12)), 3);
});

Deno.test("decay mode: j counts from column 0 and the horizon becomes P + H", () => {
  // L = 6, linear max 6 min 2, horizon 4, P = 3: H' = 7, budget(c) = round(6 - 4c/6)
  // c: 0 -> 6, 1 -> 5.33 -> 5, 2 -> 4.67 -> 5, 3 -> 4, 4 -> 3.33 -> 3, 5 -> 2.67 -> 3
  const p = plan(linear({ max: 6, min: 2, horizon: 4, promptMode: "decay" }), {
    layers: 6,
    promptLength: 3,
    maxNewTokens: 4,
  });
  assertEquals(p.budgets, [6, 5, 5, 4, 3, 3]);
  assertEquals(p.sets, [
    [0, 1, 2, 3, 4, 5],
    [1, 2, 3, 4, 5],
    [1, 2, 3, 4, 5],
    [2, 3, 4, 5],
    [3, 4, 5],
    [3, 4, 5],
  ]);
  assertEquals(p.generatedLayers, [5, 4, 3, 3]); // columns 2..5
  assertEquals(p.layerSpeedup, (4 * 6) / 15);
  assertEquals(p.prefix, [1, 3, 4, 6, 6, 6]);
  // the same policy in full mode keeps the prompt at full depth
  const f = plan(linear({ max: 6, min: 2, horizon: 4 }), {
    layers: 6,
    promptLength: 3,
    maxNewTokens: 4,
  });
  // columns 3..5 are j = 0..2 with H = 4: 6, 6 - 4/3 = 4.67 -> 5, 6 - 8/3 = 3.33 -> 3
  assertEquals(f.budgets, [6, 6, 6, 6, 5, 3]);
  // constant in decay mode applies to the prompt too
  const c = plan(constant({ n: 2, promptMode: "decay" }), {
    layers: 4,
    promptLength: 3,
    maxNewTokens: 2,
  });
  assertEquals(c.sets, [[2, 3], [2, 3], [2, 3], [2, 3]]);
  assertEquals(c.prefix, [0, 0, 4, 4]);
});

Deno.test("skipDecodeSet matches {0..w-1} ∪ {L-(n-w)..L-1} and checks w < n <= L", () => {
  for (let L = 1; L <= 16; L++) {
    for (let n = 1; n <= L; n++) {
      for (let w = 0; w < n; w++) assertEquals(skipDecodeSet(L, n, w), specSkipSet(L, n, w));
    }
  }
  assertEquals(skipDecodeSet(12, 5, 1), [0, 8, 9, 10, 11]);
  assertEquals(assertThrows(() => skipDecodeSet(4, 5, 0), PolicyError).key, "n");
  assertEquals(assertThrows(() => skipDecodeSet(8, 3, 3), PolicyError).key, "warmup");
});

Deno.test("parameter errors name the parameter", () => {
  const cases: [() => unknown, string, string][] = [
    [() => linear({ max: 4, min: 6 }), "min", "must not exceed max"],
    [() => linear({ max: 8, min: 3, warmup: 3 }), "warmup", "w < n"],
    [() => linear({ max: 8, min: 3, horizon: 0 }), "horizon", "integer >= 1"],
    [() => linear({ max: 8.5, min: 3 }), "max", "integer"],
    [() => linear({ max: 8, min: 0 }), "min", "integer >= 1"],
    [() => linear({ max: 8, min: 2, warmup: -1 }), "warmup", "integer >= 0"],
    [() => constant({ n: 2, warmup: 2 }), "warmup", "below n"],
    [() => constant({ n: 0 }), "n", "integer >= 1"],
    [() => powerLaw({ max: 8, min: 2, alpha: -1, tau: 4 }), "alpha", ">= 0"],
    [() => powerLaw({ max: 8, min: 2, alpha: 1, tau: 0 }), "tau", "> 0"],
    [() => powerLaw({ max: 8, min: 2, alpha: NaN, tau: 1 }), "alpha", "finite"],
    [
      () => constant({ n: 2, promptMode: "sometimes" as PromptMode }),
      "promptMode",
      'full" or "decay',
    ],
    [() => customPolicy({ name: "linear", layerSet: () => [0] }), "name", "built-in"],
    [() => customPolicy({ name: "a b", layerSet: () => [0] }), "name", "letters"],
  ];
  for (const [fn, key, text] of cases) {
    const e = assertThrows(fn, PolicyError, text);
    assertEquals(e.key, key, e.message);
  }
  // budgets that do not fit the model are refused when planned, naming the parameter
  const e1 = assertThrows(
    () => plan(linear({ max: 14, min: 4 }), { layers: 12, promptLength: 2, maxNewTokens: 4 }),
    PolicyError,
    "max (14) exceeds the model's 12 layers",
  );
  assertEquals(e1.key, "max");
  const e2 = assertThrows(
    () => plan(constant({ n: 5 }), { layers: 4, promptLength: 2, maxNewTokens: 4 }),
    PolicyError,
    "n (5) exceeds",
  );
  assertEquals(e2.key, "n");
  const e3 = assertThrows(
    () =>
      linear({ max: 4, min: 2 }).budget({
        column: -1,
        promptLength: 2,
        maxNewTokens: 3,
        layers: 4,
      }),
    PolicyError,
    "column",
  );
  assertEquals(e3.key, "column");
});

Deno.test("toJSON is plain data and does not alias the policy", () => {
  const p = linear({ max: 12, min: 4, warmup: 1 });
  const j = p.toJSON() as { max: number };
  j.max = 3;
  assertEquals((p.toJSON() as { max: number }).max, 12);
  assertEquals(JSON.parse(JSON.stringify(p)), {
    kind: "linear",
    max: 12,
    min: 4,
    warmup: 1,
    promptMode: "full",
  });
});
