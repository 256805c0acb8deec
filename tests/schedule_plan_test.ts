/**
 * Plans (docs/DESIGN.md §2, §3, §5): the nesting invariant and its error messages, malformed sets,
 * hand-computed plans, compute accounting, KV bytes, the text table and the JSON form.
 */
import { assert, assertAlmostEquals, assertEquals, assertThrows } from "@std/assert";
import {
  checkNesting,
  columnFlops,
  constant,
  customPolicy,
  dimsFromConfig,
  earlyExit,
  formatLayerSet,
  formatPlan,
  full,
  fullPlanSets,
  kvBytes,
  linear,
  parsePolicy,
  plan,
  PlanError,
  planToJson,
  powerLaw,
  setsForColumns,
  validatePlan,
} from "../schedule/mod.ts";
import { intIn, rng } from "./helpers.ts";

Deno.test("hand example: linear:max=12,min=4,warmup=1,horizon=32, L=12, P=5, N=32", () => {
  const p = plan(parsePolicy("linear:max=12,min=4,warmup=1,horizon=32"), {
    layers: 12,
    promptLength: 5,
    maxNewTokens: 32,
  });
  // Columns 0..35 (P + N - 2 = 35). Column 4 = P - 1 is a prompt column: 12 layers, token 0.
  // Columns 5..35 are j = 0..30 with budget round(12 - 8 j / 31):
  //   12 while 8j/31 <= 0.5   -> j <= 1.94  : j = 0, 1      (2 columns)
  //   11 while 8j/31 <= 1.5   -> j <= 5.81  : j = 2..5      (4)
  //   10 .. 5 likewise, each 4 columns: j = 6..9, 10..13, 14..17, 18..21, 22..25, 26..29
  //    4 for j = 30 (12 - 240/31 = 4.26)
  const expected = [12, 12, 12, 11, 11, 11, 11, 10, 10, 10, 10, 9, 9, 9, 9, 8, 8, 8, 8];
  expected.push(7, 7, 7, 7, 6, 6, 6, 6, 5, 5, 5, 5, 4);
  assertEquals(p.generatedLayers, expected);
  // Σ = 12 + 2*12 + 4*(11+10+9+8+7+6+5) + 4 = 12 + 24 + 224 + 4 = 264; 32*12/264 = 16/11
  assertEquals(p.generatedLayers.reduce((a, b) => a + b, 0), 264);
  assertAlmostEquals(p.layerSpeedup, 16 / 11, 1e-12);
  assertEquals(p.columns, 36);
  assertEquals(p.sets[34], [0, 8, 9, 10, 11]); // j = 29: budget 5, warm-up layer 0 + top 4
  assertEquals(p.sets[35], [0, 9, 10, 11]);
  // layer 0 (warm-up) and the top three run everywhere; layer 1 only where the budget is 12
  // (columns 0..6), layer 8 up to the last budget-5 column (34), hence 35 slots.
  assertEquals(p.prefix, [36, 7, 11, 15, 19, 23, 27, 31, 35, 36, 36, 36]);
  assertEquals(p.kvSlots, p.prefix);
});

Deno.test("hand example: powerlaw:max=12,min=2,warmup=1,alpha=1,tau=8, L=12, P=2, N=10", () => {
  const p = plan(powerLaw({ max: 12, min: 2, warmup: 1, alpha: 1, tau: 8 }), {
    layers: 12,
    promptLength: 2,
    maxNewTokens: 10,
  });
  // budget = round(2 + 10 / (1 + j/8)) = round(2 + 80 / (8 + j)):
  // j0 12, j1 10.89->11, j2 10, j3 9.27->9, j4 8.67->9, j5 8.15->8, j6 7.71->8, j7 7.33->7, j8 7
  // generated tokens: column 1 (prompt, 12) then columns 2..10 (j = 0..8)
  assertEquals(p.generatedLayers, [12, 12, 11, 10, 9, 9, 8, 8, 7, 7]);
  assertAlmostEquals(p.layerSpeedup, 120 / 93, 1e-12);
});

Deno.test("hand example: earlyexit:constant:n=3 runs the bottom layers", () => {
  const p = plan(parsePolicy("earlyexit:constant:n=3"), {
    layers: 5,
    promptLength: 2,
    maxNewTokens: 3,
  });
  assertEquals(p.sets, [[0, 1, 2, 3, 4], [0, 1, 2, 3, 4], [0, 1, 2], [0, 1, 2]]);
  assertEquals(p.generatedLayers, [5, 3, 3]);
  assertEquals(p.prefix, [4, 4, 4, 2, 2]);
});

Deno.test("maxNewTokens = 1 plans the prompt only; the first token uses column P - 1", () => {
  const p = plan(constant({ n: 2 }), { layers: 4, promptLength: 3, maxNewTokens: 1 });
  assertEquals(p.columns, 3);
  assertEquals(p.generatedLayers, [4]);
  assertEquals(p.layerSpeedup, 1);
});

Deno.test("a custom policy that breaks the invariant is refused, naming column and layer", () => {
  // generated columns alternate between the top layer and {top, 0}: column P+1 re-adds 0
  const grows = customPolicy({
    name: "grows",
    layerSet: ({ column, promptLength, layers }) =>
      (column - promptLength) % 2 === 0 ? [layers - 1] : [0, layers - 1],
  });
  const e = assertThrows(
    () => plan(grows, { layers: 6, promptLength: 3, maxNewTokens: 5 }),
    PlanError,
    "column 4 runs layer 0, which column 3 skipped: plans must nest (docs/DESIGN.md §2)",
  );
  assertEquals([e.column, e.layer], [4, 0]);

  // random nested plans, then one layer added to one column: the error names the first
  // column whose set is not inside its predecessor's, and the smallest such layer
  const r = rng(7);
  let checked = 0;
  for (let trial = 0; trial < 500; trial++) {
    const L = intIn(r, 2, 24);
    const C = intIn(r, 2, 40);
    const sets: number[][] = [Array.from({ length: L }, (_, l) => l)];
    for (let c = 1; c < C; c++) {
      const prev = sets[c - 1];
      sets.push(prev.length > 1 && r() < 0.4 ? prev.filter(() => r() < 0.8) : [...prev]);
      if (sets[c].length === 0) sets[c] = [prev[prev.length - 1]];
    }
    checkNesting(sets);
    validatePlan(sets, L);
    const bad = intIn(r, 1, C - 1);
    const missing = Array.from({ length: L }, (_, l) => l).filter(
      (l) => !sets[bad - 1].includes(l),
    );
    if (missing.length === 0) continue;
    const layer = missing[intIn(r, 0, missing.length - 1)];
    sets[bad] = [...sets[bad], layer].sort((a, b) => a - b);
    let column = -1;
    let first = -1;
    for (let c = 1; c < C && column < 0; c++) {
      const off = sets[c].filter((l) => !sets[c - 1].includes(l));
      if (off.length > 0) [column, first] = [c, off[0]];
    }
    const policy = customPolicy({
      name: "broken",
      promptMode: "decay",
      layerSet: ({ column }) => sets[column],
    });
    const err = assertThrows(
      () => plan(policy, { layers: L, promptLength: 1, maxNewTokens: C }),
      PlanError,
      `column ${column} runs layer ${first}, which column ${column - 1} skipped`,
    );
    assertEquals([err.column, err.layer], [column, first]);
    checked++;
  }
  assert(checked > 200, `only ${checked} broken plans checked`);
});

Deno.test("malformed sets are refused with the column named", () => {
  const cases: [number[][], string, number | undefined][] = [
    [[[0, 1], []], "column 1 has no active layers", 1],
    [[[0, 4]], "column 0: layer 4 is not a layer index in 0..3", 0],
    [[[0, 1], [-1]], "column 1: layer -1", 1],
    [[[0, 1.5]], "layer 1.5", 0],
    [[[1, 0]], "column 0: layers must be ascending without duplicates (1 then 0)", 0],
    [[[0, 1, 2], [2, 2]], "(2 then 2)", 1],
  ];
  for (const [sets, text, column] of cases) {
    const e = assertThrows(() => validatePlan(sets, 4), PlanError, text);
    assertEquals(e.column, column);
  }
  assertThrows(() => validatePlan([], 4), PlanError, "at least one column");
  // a custom policy returning such sets fails inside plan() the same way
  assertThrows(
    () =>
      plan(customPolicy({ name: "oops", layerSet: () => [3, 1] }), {
        layers: 4,
        promptLength: 2,
        maxNewTokens: 3,
      }),
    PlanError,
    "column 2: layers must be ascending",
  );
  // a budget that disagrees with the set
  assertThrows(
    () =>
      plan(customPolicy({ name: "liar", layerSet: () => [3], budget: () => 2 }), {
        layers: 4,
        promptLength: 2,
        maxNewTokens: 3,
      }),
    PlanError,
    'column 2: policy "liar" gives budget 2 but a layer set of 1 layers',
  );
  // an exception in user code is reported with its column
  const e = assertThrows(
    () =>
      plan(
        customPolicy({
          name: "thrower",
          layerSet: ({ column }) => {
            if (column === 4) throw new RangeError("boom");
            return [3];
          },
        }),
        { layers: 4, promptLength: 2, maxNewTokens: 5 },
      ),
    PlanError,
    'column 4: policy "thrower" failed in layerSet: boom',
  );
  assert(e.cause instanceof RangeError);
  // bad run shapes
  assertThrows(
    () => plan(full(), { layers: 4, promptLength: 0, maxNewTokens: 2 }),
    PlanError,
    "promptLength",
  );
  assertThrows(
    () => plan(full(), { layers: 4, promptLength: 2, maxNewTokens: 1.5 }),
    PlanError,
    "maxNewTokens",
  );
  assertThrows(
    () => plan(full(), { layers: 4, promptLength: 2, maxNewTokens: 2, hiddenSize: 8 }),
    PlanError,
    "missing ffnDim, vocabSize",
  );
});

Deno.test("compute accounting: FLOPs per column and both speedups (docs/DESIGN.md §5)", () => {
  // d = 4, f = 8, V = 10, L = 2, P = 1, N = 2: columns 0 and 1, both generated-token columns.
  // per layer 2 * (4*16 + 2*4*8) = 256 projection/MLP FLOPs, plus 4 * 4 * ctx attention.
  // column 0 (prompt, full): 2 * (256 + 16) + 2*4*10 = 624
  // column 1, constant n = 1: 1 * (256 + 32) + 80 = 368; with all layers 2 * 288 + 80 = 656
  const dims = { hiddenSize: 4, ffnDim: 8, vocabSize: 10 };
  const p = plan(constant({ n: 1 }), { layers: 2, promptLength: 1, maxNewTokens: 2, ...dims });
  const a = p.accounting!;
  assertEquals(a.columnFlops, [624, 368]);
  assertEquals(a.fullColumnFlops, [624, 656]);
  assertEquals([a.generatedFlops, a.fullGeneratedFlops], [992, 1280]);
  assertEquals(a.flopSpeedup, 1280 / 992);
  assertEquals(p.layerSpeedup, 4 / 3);
  // with project_in/out (dp = 2 != d): + 2 * (2 * 4 * 2) = 32 per column
  const q = plan(constant({ n: 1 }), {
    layers: 2,
    promptLength: 1,
    maxNewTokens: 2,
    ...dims,
    wordEmbedProjDim: 2,
  });
  assertEquals(q.accounting!.columnFlops, [656, 400]);
  assertEquals(columnFlops({ ...dims, wordEmbedProjDim: 4 }, 2, 0), 624);
  // KV cache: layer 0 cached on column 0 only, layer 1 on both; batch 3, 2 bytes:
  // (1 + 2) * 2 * 4 * 2 * 3 = 144; full 2 * 2 * 2 * 4 * 2 * 3 = 192
  assertEquals(p.prefix, [1, 2]);
  assertEquals(kvBytes(p, { batch: 3, bytesPerElement: 2 }), { bytes: 144, fullBytes: 192 });
  const b = plan(constant({ n: 1 }), {
    layers: 2,
    promptLength: 1,
    maxNewTokens: 2,
    ...dims,
    batch: 3,
    bytesPerElement: 2,
  }).accounting!;
  assertEquals([b.kvBytes, b.fullKvBytes], [144, 192]);
  assertThrows(
    () => kvBytes(plan(full(), { layers: 2, promptLength: 1, maxNewTokens: 2 })),
    PlanError,
    "hiddenSize",
  );
});

Deno.test("accounting: the FLOP speedup is below the layer speedup and 1 for full", () => {
  const config = {
    numHiddenLayers: 24,
    hiddenSize: 2048,
    ffnDim: 8192,
    vocabSize: 50272,
    wordEmbedProjDim: 2048,
  };
  const opts = { ...dimsFromConfig(config), promptLength: 40, maxNewTokens: 64 };
  assertEquals(opts.layers, 24);
  const f = plan(full(), opts);
  assertEquals(f.accounting!.flopSpeedup, 1);
  assertEquals(f.accounting!.kvBytes, f.accounting!.fullKvBytes);
  const r = rng(11);
  for (let i = 0; i < 200; i++) {
    const min = intIn(r, 2, 24);
    const p = plan(linear({ max: 24, min, warmup: 1, horizon: intIn(r, 1, 64) }), opts);
    const a = p.accounting!;
    // recompute the generated-token FLOPs directly from the sets
    let mine = 0;
    for (let c = opts.promptLength - 1; c < p.columns; c++) {
      const perLayer = 2 * (4 * 2048 ** 2 + 2 * 2048 * 8192) + 4 * 2048 * (c + 1);
      mine += p.sets[c].length * perLayer + 2 * 2048 * 50272;
    }
    assertEquals(a.generatedFlops, mine);
    assert(a.flopSpeedup >= 1 && a.flopSpeedup <= p.layerSpeedup + 1e-12);
    assert(a.kvBytes <= a.fullKvBytes);
  }
});

Deno.test("sets for teacher forcing and full sets", () => {
  const policy = linear({ max: 12, min: 4, warmup: 1 });
  const P = 6;
  const R = 20;
  const sets = setsForColumns(policy, {
    layers: 12,
    promptLength: P,
    maxNewTokens: R,
    columns: P + R,
  });
  assertEquals(sets.length, P + R);
  const p = plan(policy, { layers: 12, promptLength: P, maxNewTokens: R });
  assertEquals(sets.slice(0, p.columns), p.sets); // the plan's columns are a prefix
  checkNesting(sets);
  assertEquals(fullPlanSets(3, 2), [[0, 1, 2], [0, 1, 2]]);
  assertEquals(fullPlanSets(3, 0), []);
});

Deno.test("formatPlan and planToJson", () => {
  const p = plan(parsePolicy("linear:max=12,min=4,warmup=1,horizon=32"), {
    layers: 12,
    promptLength: 5,
    maxNewTokens: 32,
    hiddenSize: 128,
    ffnDim: 512,
    vocabSize: 50272,
  });
  const text = formatPlan(p);
  const lines = text.split("\n");
  assertEquals(
    lines[0],
    "plan linear:max=12,min=4,warmup=1,horizon=32  L=12 P=5 N=32 (columns 0-35)",
  );
  assertEquals(lines[1].split(/\s+/), ["columns", "tokens", "budget", "layers"]);
  assertEquals(lines[2].split(/\s+/), ["0-6", "0-2", "12", "0-11"]);
  assertEquals(lines[3].split(/\s+/), ["7-10", "3-6", "11", "0,2-11"]);
  assertEquals(lines[10].split(/\s+/), ["35", "31", "4", "0,9-11"]);
  assert(lines[11].startsWith("layer speedup 1.455x, FLOP speedup "), lines[11]);
  assertEquals(lines[12], "KV slots per layer: 36 7 11 15 19 23 27 31 35 36 36 36");
  assert(lines[13].startsWith("KV cache "), lines[13]);
  // a prompt-only group shows "-" for tokens
  const q = plan(constant({ n: 2 }), { layers: 4, promptLength: 4, maxNewTokens: 3 });
  assertEquals(formatPlan(q).split("\n")[2].split(/\s+/), ["0-3", "0", "4", "0-3"]);
  const d = plan(constant({ n: 2, promptMode: "decay" }), {
    layers: 4,
    promptLength: 4,
    maxNewTokens: 3,
  });
  assertEquals(formatPlan(d).split("\n")[2].split(/\s+/), ["0-5", "0-2", "2", "2-3"]);
  // decay: H' = 3 + 2, budgets round(4 - 3c/4) = 4, 3.25 -> 3, 2.5 -> 3 (tie), 1.75 -> 2
  const e = plan(earlyExit(linear({ max: 4, min: 1, horizon: 2, promptMode: "decay" })), {
    layers: 4,
    promptLength: 3,
    maxNewTokens: 2,
  });
  const rows = formatPlan(e).split("\n").slice(2, 5).map((l) => l.split(/\s+/));
  assertEquals(rows, [["0", "-", "4", "0-3"], ["1-2", "0", "3", "0-2"], ["3", "1", "2", "0-1"]]);

  assertEquals(formatLayerSet([0, 8, 9, 10, 11]), "0,8-11");
  assertEquals(formatLayerSet([3]), "3");
  assertEquals(formatLayerSet([0, 2, 4, 5]), "0,2,4-5");

  const json = JSON.parse(JSON.stringify(planToJson(p)));
  assertEquals(json.policySpec, "linear:max=12,min=4,warmup=1,horizon=32");
  assertEquals(json.policy, p.policy.toJSON());
  assertEquals(json.sets, p.sets);
  assertEquals(json.generatedLayers, p.generatedLayers);
  assertEquals(json.accounting.flopSpeedup, p.accounting!.flopSpeedup);
  assertEquals(String(parsePolicy(json.policySpec)), json.policySpec);
});
