/**
 * The CPU backend's `RowBatch` (sequences at their own positions, continuous batching): every
 * row's tokens and logits equal its solo decode under its own policy, with mixed policies in
 * one batch and rows admitted mid-run in seeded adversarial orders, on random awkward-sized
 * checkpoints and the shipped tiny model; `full` equals the PyTorch reference; KV is never
 * recomputed (counted) and its memory follows the plans; a per-row plan that breaks nesting
 * is refused naming the slot, position and layer; truncate then rerun equals never having run.
 */
import { assert, assertEquals, assertLess, assertRejects, assertThrows } from "@std/assert";
import type { Backend, RowBatch } from "../backend/types.ts";
import { createCpuBackend } from "../backend/cpu/backend.ts";
import { KV_PAGE } from "../backend/cpu/rows.ts";
import { loadWeights, loadWeightsSync } from "../model/mod.ts";
import { fullPlanSets, parsePolicy } from "../schedule/mod.ts";
import { intIn, missingShared, relL2, rng, sharedPath } from "./helpers.ts";
import {
  driveRows,
  mixedPolicies,
  randomCpuBackend,
  randomPrompts,
  requestSets,
  type RowRequest,
  soloDecode,
} from "./rows_helpers.ts";

/** Max relative difference of two logit vectors (max |a - b| / max |b|). */
function relMax(a: Float32Array, b: Float32Array): number {
  let num = 0, den = 0;
  for (let i = 0; i < a.length; i++) {
    num = Math.max(num, Math.abs(a[i] - b[i]));
    den = Math.max(den, Math.abs(b[i]));
  }
  return num / Math.max(den, 1e-30);
}

/** Requests with random prompt lengths, policies and token counts. */
function randomRequests(backend: Backend, n: number, seed: number, maxN: number): RowRequest[] {
  const r = rng(seed);
  const L = backend.config.numHiddenLayers;
  const policies = mixedPolicies(L);
  const lengths = Array.from({ length: n }, () => intIn(r, 1, 9));
  const prompts = randomPrompts(lengths, backend.config.vocabSize, seed + 1);
  return prompts.map((prompt, i) => ({
    prompt,
    policy: policies[i % policies.length],
    maxNewTokens: intIn(r, 1, maxN),
  }));
}

/** Drives the requests through a RowBatch and compares every row with its solo decode. */
async function checkAgainstSolo(
  backend: Backend,
  requests: RowRequest[],
  capacity: number,
  seed: number,
): Promise<void> {
  const rows = backend.openRows({ capacity, maxLength: 48 });
  const got = await driveRows(rows, backend.config.numHiddenLayers, requests, seed);
  let worst = 0;
  for (let i = 0; i < requests.length; i++) {
    const solo = await soloDecode(backend, requests[i]);
    assertEquals(got.outputs[i].tokens, solo.tokens, `request ${i} (${requests[i].policy.name})`);
    solo.logits.forEach((l, t) => (worst = Math.max(worst, relMax(got.outputs[i].logits[t], l))));
  }
  assertLess(worst, 1e-5, "logits within 1e-5 relative of the solo decode");
  const stats = rows.stats();
  assertEquals(stats.kvRewrites, 0, "no KV entry is ever written twice");
  assertEquals(stats.kvWrites, got.pairs, "one KV write per (token, active layer)");
  assertEquals(stats.layerSteps, got.pairs);
  assertEquals(stats.kvBytes, 0, "every slot released: no KV left");
  assert(stats.peakKvBytes > 0);
  assert(got.mixedCalls > 0, "some call mixed a prefill with decode steps");
  assert(got.reusedSlots > 0, "some slot served several requests");
  console.log(
    `  ${requests.length} requests, ${got.calls} calls (${got.mixedCalls} mixed), ` +
      `${got.reusedSlots} slots reused, ${got.pairs} KV writes, worst rel diff ${worst}`,
  );
  rows.dispose();
}

const SHAPES = [
  { hiddenSize: 36, numAttentionHeads: 3, ffnDim: 52, vocabSize: 97, numHiddenLayers: 5 },
  { hiddenSize: 20, numAttentionHeads: 5, ffnDim: 28, vocabSize: 61, numHiddenLayers: 7 },
  { // post-LN with project_in/out, like opt-350m
    hiddenSize: 24,
    numAttentionHeads: 2,
    ffnDim: 44,
    vocabSize: 83,
    numHiddenLayers: 4,
    wordEmbedProjDim: 16,
    doLayerNormBefore: false,
  },
];

for (const [k, shape] of SHAPES.entries()) {
  Deno.test(`CPU rows: random checkpoint ${k} (d=${shape.hiddenSize}, L=${shape.numHiddenLayers}), mixed policies, adversarial admission = solo decodes`, async () => {
    const backend = randomCpuBackend({ ...shape, maxPositionEmbeddings: 64 }, 10 + k);
    for (const seed of [1, 2]) {
      await checkAgainstSolo(backend, randomRequests(backend, 14, 100 * k + seed, 9), 3, seed);
    }
  });
}

Deno.test("CPU rows: the shipped tiny model, mixed policies, rows admitted mid-run = solo decodes", async () => {
  const backend = createCpuBackend(await loadWeights("bundled/models/tiny-opt-e2e"));
  await checkAgainstSolo(backend, randomRequests(backend, 8, 7, 6), 3, 5);
});

Deno.test("CPU rows: full depth equals the PyTorch reference's argmax (teacher-forced, chunked)", {
  ignore: missingShared("fixtures/torch-bin"),
}, async () => {
  const expected = JSON.parse(
    Deno.readTextFileSync(sharedPath("fixtures/torch-bin/expected.json")),
  ) as Record<string, { ids: number[]; argmax: number[]; logits_last: number[] }>;
  for (const [name, exp] of Object.entries(expected)) {
    const backend = createCpuBackend(loadWeightsSync(sharedPath(`fixtures/torch-bin/${name}`)));
    const L = backend.config.numHiddenLayers, T = exp.ids.length;
    const rows = backend.openRows({ capacity: 2, maxLength: T });
    const all = fullPlanSets(L, T);
    // Slot 1: the whole sequence in one call; slot 0: in chunks of 1..3 tokens.
    const [whole] = await rows.run([
      { slot: 1, tokens: exp.ids, sets: all, want: "all", recordLogits: true },
    ]);
    assertEquals(whole.tokens, exp.argmax, `${name}: argmax per position`);
    const last = relL2(whole.logits![T - 1], exp.logits_last);
    assertLess(last, 1e-3, `${name}: last logits rel L2 ${last}`);
    const chunked: number[] = [];
    for (let p = 0; p < T;) {
      const n = Math.min(T - p, 1 + (p % 3));
      const [r] = await rows.run([
        { slot: 0, tokens: exp.ids.slice(p, p + n), sets: all.slice(p, p + n), want: "all" },
      ]);
      chunked.push(...r.tokens);
      p += n;
    }
    assertEquals(chunked, exp.argmax, `${name}: chunked argmax`);
    assertEquals(rows.stats().kvRewrites, 0);
    console.log(
      `  ${name}: ${T} positions, argmax equal, last logits rel L2 ${last.toExponential(2)}`,
    );
  }
});

const small = randomCpuBackend({
  hiddenSize: 36,
  numAttentionHeads: 3,
  ffnDim: 52,
  vocabSize: 97,
  numHiddenLayers: 5,
  maxPositionEmbeddings: 64,
}, 3);
const L = 5, ALL = [0, 1, 2, 3, 4];

Deno.test("CPU rows: a per-row plan that breaks nesting is refused before any work, naming the slot, position and layer", async () => {
  const rows = small.openRows({ capacity: 4, maxLength: 32 });
  await rows.run([{ slot: 2, tokens: [2, 5, 6], sets: [ALL, ALL, [0, 3, 4]] }]);
  await rows.run([{ slot: 0, tokens: [2, 7], sets: [ALL, ALL] }]);
  const before = rows.stats();
  // slot 2 ran layers 1, 2 at positions 0, 1 only; position 3 may not run layer 1
  const e = await assertRejects(
    () =>
      rows.run([
        { slot: 0, tokens: [9], sets: [ALL] },
        { slot: 2, tokens: [8], sets: [[0, 1, 3, 4]] },
      ]),
    RangeError,
  );
  for (const part of ["slot 2", "position 3", "layer 1"]) {
    assert(e.message.includes(part), `${JSON.stringify(e.message)} names ${part}`);
  }
  console.log(`  refused: ${e.message}`);
  assertEquals(rows.stats(), before, "nothing ran");
  assertEquals([rows.length(0), rows.length(2)], [2, 3]);
  // Within one entry too: a token may not run a layer its predecessor in the entry skipped.
  const f = await assertRejects(
    () => rows.run([{ slot: 1, tokens: [2, 3, 4], sets: [ALL, [4], [3, 4]] }]),
    RangeError,
  );
  assert(f.message.includes("slot 1, position 2: runs layer 3"), f.message);
  assertEquals(rows.length(1), 0);
  // And the column-wise decode refuses a non-nested plan too (the shared validator).
  await assertRejects(
    () =>
      small.decode({ prompts: [[2, 3]], maxNewTokens: 2, sets: [ALL, [4], [3, 4]], padTokenId: 1 }),
    Error,
    "column 2 runs layer 3",
  );
});

Deno.test("CPU rows: bad work is refused with one line naming the entry, slot and field", async () => {
  const rows = small.openRows({ capacity: 2, maxLength: 6 });
  const cases: [Parameters<RowBatch["run"]>[0], string][] = [
    [[{ slot: 2, tokens: [2], sets: [ALL] }], "slot 2 is not an integer in 0..1"],
    [
      [{ slot: 0, tokens: [2], sets: [ALL] }, { slot: 0, tokens: [3], sets: [ALL] }],
      "appears twice",
    ],
    [[{ slot: 0, tokens: [], sets: [] }], "tokens must be a non-empty array"],
    [[{ slot: 0, tokens: [97], sets: [ALL] }], "token 0: id 97 is not an integer in 0..96"],
    [[{ slot: 1, tokens: [2, 3], sets: [ALL] }], "one layer set per token (2), got 1"],
    [[{ slot: 1, tokens: [2], sets: [[]] }], "token 0: the layer set must be a non-empty array"],
    [[{ slot: 1, tokens: [2], sets: [[0, 5]] }], "layer 5 is not a layer index in 0..4"],
    [[{ slot: 1, tokens: [2], sets: [[2, 1]] }], "ascending"],
    [[{ slot: 1, tokens: [2, 3, 4, 5, 6, 7, 8], sets: fullPlanSets(L, 7) }], "maxLength 6"],
    [[{ slot: 1, tokens: [2], sets: [ALL], sampling: { temperature: -1 } }], "temperature"],
    [[{ slot: 1, tokens: [2], sets: [ALL], step: 1.5 }], "step must be"],
    [[{ slot: 1, tokens: [2], sets: [ALL], want: "first" as "all" }], "want must be"],
  ];
  for (const [work, part] of cases) {
    const e = await assertRejects(() => rows.run(work), RangeError);
    assert(e.message.includes(part), `${JSON.stringify(e.message)} lacks ${JSON.stringify(part)}`);
    assert(!e.message.includes("\n"), "one line");
  }
  assertEquals(rows.stats().kvWrites, 0);
  assertThrows(() => small.openRows({ capacity: 0, maxLength: 4 }), RangeError, "capacity");
  assertThrows(() => small.openRows({ capacity: 1, maxLength: 65 }), RangeError, "maxLength");
  assertThrows(() => rows.truncate(0, 1), RangeError, "length must be an integer in 0..0");
});

Deno.test("CPU rows: truncate then rerun gives the tokens of never having run them; KV memory follows the plan", async () => {
  const prompt = [2, 11, 12, 13, 14];
  const req: RowRequest = {
    prompt,
    policy: parsePolicy(`linear:max=${L},min=2,warmup=1,horizon=6`),
    maxNewTokens: 30,
  };
  const sets = requestSets(req, L);
  const solo = await soloDecode(small, req);
  const rows = small.openRows({ capacity: 1, maxLength: 64 });
  const P = prompt.length;
  const gen: number[] = [];
  const step = async (g: number) => {
    const tok = g === 0 ? prompt : [gen[g - 1]];
    const s = g === 0 ? sets.slice(0, P) : [sets[P + g - 1]];
    const [r] = await rows.run([{ slot: 0, tokens: tok, sets: s, step: g }]);
    gen[g] = r.tokens[0];
  };
  for (let g = 0; g < 12; g++) await step(g);
  // Run a few wrong tokens, then roll back to the first 12 generated tokens' state.
  await rows.run([{
    slot: 0,
    tokens: [40, 41, 42],
    sets: [sets[P + 11], sets[P + 12], sets[P + 13]],
  }]);
  const peak = rows.stats().kvBytes;
  rows.truncate(0, P + 11);
  assert(rows.stats().kvBytes < peak, "truncate frees pages");
  for (let g = 12; g < 30; g++) await step(g);
  assertEquals(gen, solo.tokens);
  const stats = rows.stats();
  assertEquals(stats.kvRewrites, 0, "positions rerun after truncate are not rewrites");
  // Memory: pages per layer = ceil(positions that ran the layer / KV_PAGE).
  const ran = new Array<number>(L).fill(0);
  for (let c = 0; c < P + 29; c++) for (const l of sets[c]) ran[l]++;
  const pages = ran.reduce((a, n) => a + Math.ceil(n / KV_PAGE), 0);
  assertEquals(stats.kvBytes, pages * 2 * KV_PAGE * 36 * 4);
  const fullPages = L * Math.ceil((P + 29) / KV_PAGE);
  assert(pages < fullPages, `the plan's ${pages} pages < full depth's ${fullPages}`);
  console.log(`  KV pages: ${pages} under the plan vs ${fullPages} at full depth`);
  rows.release(0);
  assertEquals(rows.stats().kvBytes, 0);
  assertEquals(rows.length(0), 0);
});

Deno.test("CPU rows: a sampled row's draws depend on (seed, step) only, as its solo decode's", async () => {
  const prompt = [2, 30, 31];
  const sampling = { temperature: 1.3, topK: 20, seed: 9 };
  const N = 8;
  const sets = fullPlanSets(L, prompt.length + N - 1);
  const solo = await small.decode({
    prompts: [prompt],
    maxNewTokens: N,
    sets,
    padTokenId: 1,
    sampling,
  });
  const rows = small.openRows({ capacity: 3, maxLength: 32 });
  await rows.run([{ slot: 0, tokens: [2, 50, 51, 52], sets: fullPlanSets(L, 4) }]); // a batch mate
  const gen: number[] = [];
  for (let g = 0; g < N; g++) {
    const tokens = g === 0 ? prompt : [gen[g - 1]];
    const [, r] = await rows.run([
      { slot: 0, tokens: [7], sets: [ALL], sampling: { temperature: 1, seed: 1 } },
      { slot: 2, tokens, sets: sets.slice(0, tokens.length), sampling, step: g },
    ]);
    gen.push(r.tokens[0]);
  }
  assertEquals(gen, solo.tokens[0]);
});
