/**
 * Teacher-forced NLL, agreement with the full model and oracle depth (docs/DESIGN.md §8): hand-worked
 * examples on a mock backend whose logits are a known function of the input token and the
 * column's layer count, then checks on the shared tiny checkpoint (the NLL of the model's
 * own greedy output equals what the cached decode saw, under `full` and under a plan;
 * padding never changes an item's NLL; oracle depths are in range and consistent).
 */
import { assert, assertAlmostEquals, assertEquals, assertRejects, assertThrows } from "@std/assert";
import type { Backend, ForwardRequest } from "../backend/types.ts";
import type { OptConfig } from "../model/types.ts";
import { parsePolicy, setsForColumns } from "../schedule/mod.ts";
import {
  type ScoringModel,
  summarizeNll,
  teacherForcedNll,
  teacherForcingBatch,
  tokenNll,
} from "../eval/nll.ts";
import { tokenAgreement } from "../eval/agreement.ts";
import { oracleDepths, oracleSets } from "../eval/oracle.ts";

const TINY = new URL("../bundled/models/tiny-opt-e2e/", import.meta.url);

/**
 * A model whose forward gives, at every real column with input token `t` and `n` active
 * layers, the logit `hi` to `next(t, n)` and 0 to every other id. Records each request.
 */
function mockModel(
  opts: { V: number; L: number; hi?: number; next: (t: number, n: number) => number },
): ScoringModel & { requests: ForwardRequest[] } {
  const { V, L } = opts;
  const hi = opts.hi ?? 2;
  const requests: ForwardRequest[] = [];
  const config = {
    vocabSize: V,
    numHiddenLayers: L,
    eosTokenId: 2,
    padTokenId: 1,
    bosTokenId: 2,
    maxPositionEmbeddings: 64,
  } as OptConfig;
  const backend = {
    name: "mock",
    config,
    decode: () => Promise.reject(new Error("mock: no decode")),
    forward(req: ForwardRequest) {
      requests.push(req);
      const T = Math.max(...req.rows.map((r) => r.length));
      const logits = new Float32Array(req.rows.length * T * V);
      req.rows.forEach((row, b) => {
        const off = T - row.length;
        row.forEach((t, i) => {
          const c = off + i;
          logits[(b * T + c) * V + opts.next(t, req.sets[c].length)] = hi;
        });
      });
      return Promise.resolve({ length: T, logits });
    },
    openRows() {
      throw new Error("not used by the NLL test");
    },
    dispose() {},
  } as Backend;
  const tokenizer = {
    encode: () => {
      throw new Error("mock: ids only");
    },
  };
  return { config, backend, tokenizer, requests };
}

Deno.test("tokenNll: logsumexp minus the target's logit", () => {
  assertAlmostEquals(tokenNll(new Float32Array([0, 0]), 1), Math.log(2), 1e-12);
  // logits [1, 2, 3], target 0: log(e + e^2 + e^3) - 1.
  const lse = Math.log(Math.E + Math.E ** 2 + Math.E ** 3);
  assertAlmostEquals(tokenNll([1, 2, 3], 0), lse - 1, 1e-12);
  assertAlmostEquals(tokenNll([1000, 0], 0), Math.log(1 + Math.exp(-1000)), 1e-12); // stable
  assertThrows(() => tokenNll([0, 0], 2), RangeError, "target id 2 is outside the 2 logits");
});

Deno.test("teacherForcingBatch: prompts end at column P-1, short targets right-extended", () => {
  const b = teacherForcingBatch([[2, 5, 6], [2, 7]], [[8, 2], [9, 10, 2]], 1);
  assertEquals(b.rows, [[2, 5, 6, 8, 1], [2, 7, 9, 10]]);
  assertEquals([b.promptLength, b.targetLength, b.columns], [3, 3, 5]);
  // After left padding to 5 columns, row 1 is [pad, 2, 7, 9, 10]: its prompt ends at column
  // 2 = P - 1 as row 0's does, and target i is predicted by column 2 + i in both rows.
  assertThrows(() => teacherForcingBatch([[2]], [[]], 1), RangeError, "row 0: empty target");
  assertThrows(() => teacherForcingBatch([[]], [[3]], 1), RangeError, "row 0: empty prompt");
  assertThrows(() => teacherForcingBatch([[2]], [[3], [4]], 1), RangeError, "1 prompts but 2");
});

Deno.test("teacherForcedNll: hand-worked example on a mock backend", async () => {
  // V = 5, logit 2 for (input + 1) % 5, else 0: a token that follows that rule has NLL
  // a - 2, any other a, with a = log(e^2 + 4).
  const a = Math.log(Math.exp(2) + 4);
  const m = mockModel({ V: 5, L: 2, next: (t) => (t + 1) % 5 });
  const items = [
    { prompt: [2, 3], reference: [4, 0] }, // targets 4, 0, EOS 2: inputs 3, 4, 0 -> hit, hit, miss
    { prompt: [2], reference: [3] }, // targets 3, EOS 2: inputs 2, 3 -> hit, miss
  ];
  const r = await teacherForcedNll(m, items, { policy: "constant:n=1", batchSize: 2 });
  assertEquals(m.requests.length, 1);
  assertEquals(m.requests[0].rows, [[2, 3, 4, 0], [2, 3, 1]]);
  // P = 2, R = 3, T = 4: prompt columns 0-1 run both layers, columns 2-3 the budget-1 set {1}.
  assertEquals(m.requests[0].sets, [[0, 1], [0, 1], [1], [1]]);
  assertEquals(r.items.map((i) => i.tokens), [3, 2]);
  assertAlmostEquals(r.items[0].nll, 2 * (a - 2) + a, 1e-6);
  assertAlmostEquals(r.items[1].nll, (a - 2) + a, 1e-6);
  r.items[0].perToken.forEach((x, i) => assertAlmostEquals(x, [a - 2, a - 2, a][i], 1e-6));
  assertEquals(r.tokens, 5);
  assertAlmostEquals(r.meanNll, (5 * a - 6) / 5, 1e-6);
  assertAlmostEquals(r.perplexity, Math.exp((5 * a - 6) / 5), 1e-5);
  assertEquals(r.positionCounts, [2, 2, 1]);
  [a - 2, a - 1, a].forEach((x, j) => assertAlmostEquals(r.positionNll[j], x, 1e-6));
  assertEquals(r.policy, "constant:n=1,warmup=0");

  // One row per batch: the same per-item figures (filler and padding never count).
  const one = await teacherForcedNll(m, items, { policy: "constant:n=1", batchSize: 1 });
  assertEquals(one.items.map((i) => i.perToken), r.items.map((i) => i.perToken));
  // Without EOS only the reference tokens are scored.
  const noEos = await teacherForcedNll(m, items, { appendEos: false });
  assertEquals(noEos.items.map((i) => i.tokens), [2, 1]);
  assertAlmostEquals(noEos.meanNll, a - 2, 1e-6);
});

Deno.test("teacherForcedNll: the plan's horizon is the option's, or the longest target", async () => {
  const m = mockModel({ V: 5, L: 4, next: () => 0 });
  const policy = parsePolicy("linear:max=4,min=2,warmup=1");
  const items = [{ prompt: [2, 3, 3], reference: [4, 4, 4] }];
  await teacherForcedNll(m, items, { policy, horizon: 9 });
  await teacherForcedNll(m, items, { policy });
  // P = 3, R = 4 (3 + EOS), T = 6.
  assertEquals(
    m.requests[0].sets,
    setsForColumns(policy, { layers: 4, promptLength: 3, maxNewTokens: 9, columns: 6 }),
  );
  assertEquals(
    m.requests[1].sets,
    setsForColumns(policy, { layers: 4, promptLength: 3, maxNewTokens: 4, columns: 6 }),
  );
  // Columns 0-2 are prompt columns (all layers); columns 3, 4, 5 have j = 0, 1, 2 and
  // linear 4 -> 2 over H = 4 gives round(4 - 2j/3) = 4, 3, 3 there.
  assertEquals(m.requests[1].sets.map((s) => s.length), [4, 4, 4, 4, 3, 3]);
  assertEquals(m.requests[1].sets[5], [0, 2, 3]);
  // With H = 9 the decay is slower: round(4 - 2j/8) = 4, 4, 4 (j = 2 gives 3.5 -> 4).
  assertEquals(m.requests[0].sets.map((s) => s.length), [4, 4, 4, 4, 4, 4]);
});

Deno.test("teacherForcedNll: bad input names the item", async () => {
  const m = mockModel({ V: 5, L: 2, next: () => 0 });
  await assertRejects(
    () => teacherForcedNll(m, [{ prompt: [2], reference: [] }], { appendEos: false }),
    RangeError,
    "item 0: empty reference",
  );
  await assertRejects(
    () => teacherForcedNll(m, [{ prompt: [2], reference: new Array(70).fill(3) }]),
    RangeError,
    "item 0: prompt (1) + reference (71) tokens need 71 positions but the model has 64",
  );
  await assertRejects(
    () => teacherForcedNll(m, [{ prompt: [2], reference: [3] }], { batchSize: 0 }),
    RangeError,
    "batchSize must be an integer >= 1",
  );
});

Deno.test("summarizeNll: corpus mean weights items by tokens", () => {
  const s = summarizeNll("p", [
    { nll: 3, tokens: 2, perToken: [1, 2] },
    { nll: 3, tokens: 1, perToken: [3] },
  ]);
  assertEquals([s.meanNll, s.tokens], [2, 3]);
  assertEquals(s.positionNll, [2, 2]);
  assertEquals(s.positionCounts, [2, 1]);
  assert(Number.isNaN(summarizeNll("p", []).meanNll));
});

Deno.test("tokenAgreement: position-wise, length differences count as disagreements", () => {
  const r = tokenAgreement([[5, 6, 2], [7, 8], [], [1, 2, 3, 4]], [[5, 6, 2], [7, 9, 2], [], [
    1,
    2,
  ]]);
  // item 0: 3/3; item 1: 1/3 (8 != 9, then the policy has no third token); item 2: 0/0;
  // item 3: 2/4 (the policy ran on).
  assertEquals(r.items, [
    { matched: 3, total: 3, firstMismatch: 3 },
    { matched: 1, total: 3, firstMismatch: 1 },
    { matched: 0, total: 0, firstMismatch: 0 },
    { matched: 2, total: 4, firstMismatch: 2 },
  ]);
  assertEquals([r.matched, r.total], [6, 10]);
  assertAlmostEquals(r.agreement, 0.6, 1e-12);
  assertEquals(r.exactMatches, 2); // items 0 and 2
  assertEquals(r.positionCounts, [3, 3, 3, 1]);
  assertEquals(r.byPosition, [1, 2 / 3, 1 / 3, 0]);
  assertEquals(tokenAgreement([], []).agreement, 1);
  assertThrows(() => tokenAgreement([[1]], []), RangeError, "1 policy outputs but 0 full-model");
});

Deno.test("oracleDepths: hand-worked depths on a mock backend", async () => {
  // L = 4, V = 8. With n layers at a column whose input is t, the greedy token is
  // t + 1 when n >= need(t), else t + 3 (mod 8). need: 5 -> 3, 6 -> 1, 7 -> 4, else 1.
  const need: Record<number, number> = { 5: 3, 6: 1, 7: 4 };
  const m = mockModel({
    V: 8,
    L: 4,
    next: (t, n) => (n >= (need[t] ?? 1) ? (t + 1) % 8 : (t + 3) % 8),
  });
  // Item 0: prompt [2, 5], full output 6, 7, 0 (inputs 5, 6, 7).
  // Item 1: prompt [2, 6], output 7 then 5: input 7 at full depth predicts 0, not 5, so that
  // position is unmatched (depth L). Item 2: empty output, skipped.
  const items = [
    { prompt: [2, 5], tokens: [6, 7, 0] },
    { prompt: [2, 6], tokens: [7, 5] },
    { prompt: [2], tokens: [] },
  ];
  const r = await oracleDepths(m, items, { batchSize: 8 });
  assertEquals(r.depths, [[3, 1, 4], [1, 4], []]);
  assertEquals(r.unmatched, 1);
  assertEquals(r.byPosition, [[3, 1], [1, 4], [4]]);
  assertEquals(r.meanByPosition, [2, 2.5, 4]);
  assertAlmostEquals(r.meanDepth, 13 / 5, 1e-12);
  assertEquals(r.forwards, 4); // n = 1, 2, 3, 4: item 0's last position needs 4
  // n = 1 ran both rows; prompt column 0 runs all layers; the columns producing generated
  // tokens (1 = P - 1, 2, 3) the SkipDecode set of budget n (warm-up 0: the top n layers).
  assertEquals(m.requests[0].rows.length, 2);
  assertEquals(m.requests[0].sets, [[0, 1, 2, 3], [3], [3], [3]]);
  assertEquals(m.requests[2].sets.slice(1), [[1, 2, 3], [1, 2, 3], [1, 2, 3]]);

  // Warm-up 1: budgets start at 2 (so need 1 shows as 2), sets {0} ∪ top n-1.
  m.requests.length = 0;
  const w1 = await oracleDepths(m, items.slice(0, 1), { warmup: 1 });
  assertEquals(w1.depths, [[3, 2, 4]]);
  assertEquals(m.requests[0].sets.slice(1), [[0, 3], [0, 3], [0, 3]]);
  assertEquals(w1.forwards, 3);

  // Early exit: bottom n layers.
  m.requests.length = 0;
  const ee = await oracleDepths(m, items.slice(0, 1), { kind: "earlyexit", warmup: 1 });
  assertEquals(ee.depths, [[3, 1, 4]]);
  assertEquals(m.requests[1].sets.slice(1), [[0, 1], [0, 1], [0, 1]]);

  // A row whose positions are all resolved leaves the batch.
  m.requests.length = 0;
  await oracleDepths(m, [{ prompt: [2, 6], tokens: [7] }, { prompt: [2, 5], tokens: [6, 7, 0] }]);
  assertEquals(m.requests.map((q) => q.rows.length), [2, 1, 1, 1]);

  await assertRejects(() => oracleDepths(m, items, { warmup: 4 }), RangeError, "0..3, got 4");
  assertEquals(oracleSets({ layers: 4, promptLength: 3, columns: 5, n: 2, warmup: 1 }), [
    [0, 1, 2, 3],
    [0, 1, 2, 3],
    [0, 3],
    [0, 3],
    [0, 3],
  ]);
});

// ---------------------------------------------------------------------------------------
// The shared tiny checkpoint

async function tinyModel() {
  try {
    await Deno.stat(new URL("config.json", TINY));
  } catch {
    throw new Error(
      `missing ${TINY.pathname}: the bundled tiny checkpoint is part of the repository`,
    );
  }
  const { loadModel } = await import("../decode/mod.ts");
  return await loadModel(decodeURIComponent(TINY.pathname), {
    backend: "cpu",
    onNote: () => {},
  });
}

const PROMPTS = [
  "name[The Wrestlers], eatType[pub], priceRange[cheap]\n",
  "name[Aromi], eatType[coffee shop], area[riverside], familyFriendly[yes]\n",
];

Deno.test("tiny model: NLL of its own greedy output equals the cached decode's", async () => {
  const { generate } = await import("../decode/mod.ts");
  const model = await tinyModel();
  try {
    for (const policy of ["full", "linear:max=12,min=3,warmup=1"]) {
      const N = 10;
      const gen = await generate(model, PROMPTS, {
        policy,
        maxNewTokens: N,
        recordLogits: true,
        batchSize: 2,
      });
      const items = gen.results.map((r) => ({ prompt: r.promptIds, reference: r.ids }));
      const nll = await teacherForcedNll(model, items, {
        policy,
        horizon: N,
        appendEos: false,
        batchSize: 2,
      });
      gen.results.forEach((r, k) => {
        assertEquals(nll.items[k].tokens, r.ids.length);
        r.ids.forEach((id, i) => {
          const expected = tokenNll(r.logits![i], id);
          assertAlmostEquals(nll.items[k].perToken[i], expected, 1e-5, `${policy} ${k}/${i}`);
        });
      });
      // Greedy tokens are the argmax, so each NLL is at most log(V).
      assert(nll.items.every((it) => it.perToken.every((x) => x >= 0 && x < Math.log(50272))));
    }
  } finally {
    model.dispose();
  }
});

Deno.test("tiny model: an item's NLL does not depend on its batch; references are likely", async () => {
  const model = await tinyModel();
  try {
    const items = [
      { prompt: PROMPTS[0], reference: "The Wrestlers is a cheap pub." },
      { prompt: PROMPTS[1], reference: "Aromi is a family friendly coffee shop by the riverside." },
    ];
    const together = await teacherForcedNll(model, items, { policy: "linear:max=10,min=2" });
    const alone = await teacherForcedNll(model, items.slice(1), { policy: "linear:max=10,min=2" });
    alone.items[0].perToken.forEach((x, i) =>
      assertAlmostEquals(x, together.items[1].perToken[i], 1e-4)
    );
    // Trained on such text: well below a uniform guess over the vocabulary.
    assert(together.meanNll < 4, `mean NLL ${together.meanNll}`);
    // The reference's tokens are encoded without BOS and EOS is appended.
    const ids = model.tokenizer.encode(items[0].reference, { addBos: false });
    assertEquals(together.items[0].tokens, ids.length + 1);
  } finally {
    model.dispose();
  }
});

Deno.test("tiny model: oracle depths are budgets in range and reproduce the full tokens", async () => {
  const { generate } = await import("../decode/mod.ts");
  const { argmax } = await import("../backend/cpu/ops.ts");
  const model = await tinyModel();
  try {
    const full = await generate(model, PROMPTS, { maxNewTokens: 8, batchSize: 2 });
    const items = full.results.map((r) => ({ prompt: r.promptIds, tokens: r.ids }));
    const o = await oracleDepths(model, items, { warmup: 1 });
    assertEquals(o.unmatched, 0);
    assertEquals(o.depths.map((d) => d.length), full.results.map((r) => r.ids.length));
    assert(o.depths.flat().every((d) => Number.isInteger(d) && d >= 2 && d <= 12));
    // Check item 0 by hand: at its depth each position's argmax is the full token, and one
    // layer less (when allowed) gives another token.
    const ids = full.results[0].ids;
    const prompt = full.results[0].promptIds;
    const V = model.config.vocabSize;
    const P = prompt.length;
    const row = [...prompt, ...ids.slice(0, -1)];
    const argmaxAt = async (n: number, i: number) => {
      const sets = oracleSets({
        layers: 12,
        promptLength: P,
        columns: row.length,
        n,
        warmup: 1,
      });
      const f = await model.backend.forward({ rows: [row], sets, padTokenId: 1 });
      return argmax(f.logits.subarray((P - 1 + i) * V, (P + i) * V));
    };
    for (const i of [0, ids.length - 1]) {
      const d = o.depths[0][i];
      assertEquals(await argmaxAt(d, i), ids[i]);
      if (d > 2) assert((await argmaxAt(d - 1, i)) !== ids[i]);
    }
  } finally {
    model.dispose();
  }
});
