/**
 * Engine accounting on `bundled/models/tiny-opt-e2e` (CPU backend), docs/DESIGN.md §4-5:
 *
 * - `linear:max=12,min=4,warmup=1,horizon=32` with 32 generated tokens: per-token `layers`
 *   equal the plan's `generatedLayers` and a hand-written list; `layerSpeedup` equals the
 *   hand-computed `Σ L / Σ layers`; `flops` and `flopSpeedup` equal docs/DESIGN.md §5's formula
 *   evaluated here; the logits were really computed with the plan's sets (uncached
 *   `forward()` with those sets gives the same logits).
 * - `earlyexit` runs exactly the bottom `n` layers and its tokens differ from SkipDecode's.
 * - `full` through the engine equals a plain backend decode with full sets, bit for bit.
 */
import { assert, assertAlmostEquals, assertEquals, assertLess } from "@std/assert";
import { generate, loadModel } from "../decode/mod.ts";
import { fullPlanSets } from "../schedule/mod.ts";
import { relL2, sharedPath } from "./helpers.ts";

const model = await loadModel(sharedPath("models/tiny-opt-e2e"), {
  backend: "cpu",
  onNote: () => {},
});
const cfg = model.config;
const PROMPTS = [
  "name[Alimentum], area[city centre], familyFriendly[no]\n",
  "name[The Eagle], eatType[coffee shop], food[Japanese], priceRange[less than £20], " +
  "customer rating[low], area[riverside], familyFriendly[yes], near[Burger King]\n",
  "name[Zizzi], eatType[pub], near[The Sorrento]\n",
];
const LINEAR = "linear:max=12,min=4,warmup=1,horizon=32";

// Hand computation for LINEAR, L = 12, N = 32 generated tokens (prompt mode full):
//   token 0 comes from column P - 1, a prompt column: all 12 layers.
//   token i >= 1 comes from column P - 1 + i, generated index j = i - 1, with budget
//   round(12 - 8 * j / 31) (H = 32, so H - 1 = 31):
//     12 while 8j/31 < 0.5  -> j = 0, 1                   (tokens 1, 2)
//     11 for j = 2..5 (8j/31 in [0.52, 1.29]), 10 for j = 6..9, 9 for 10..13,
//      8 for 14..17, 7 for 18..21, 6 for 22..25, 5 for 26..29   (4 tokens each)
//      4 for j = 30 (12 - 240/31 = 4.26)                   (token 31)
const EXPECTED_LAYERS = [
  [12, 12, 12], // token 0 (prompt column), tokens 1 and 2 (j = 0, 1)
  [11, 11, 11, 11],
  [10, 10, 10, 10],
  [9, 9, 9, 9],
  [8, 8, 8, 8],
  [7, 7, 7, 7],
  [6, 6, 6, 6],
  [5, 5, 5, 5],
  [4], // token 31 (j = 30)
].flat();
// Σ layers = 3*12 + 4*(11 + 10 + 9 + 8 + 7 + 6 + 5) + 4 = 36 + 224 + 4 = 264
// layer speedup = Σ L / Σ layers = 32 * 12 / 264 = 384 / 264 = 16 / 11 = 1.4545...
const EXPECTED_LAYER_SPEEDUP = 384 / 264;

/** docs/DESIGN.md §5 FLOPs of one column for one row, written out independently of schedule/. */
function specFlops(layers: number, column: number): number {
  const d = cfg.hiddenSize, f = cfg.ffnDim, V = cfg.vocabSize;
  assertEquals(cfg.wordEmbedProjDim, d); // no project_in/out in tiny-opt-e2e
  return layers * (2 * (4 * d * d + 2 * d * f) + 4 * d * (column + 1)) + 2 * d * V;
}

Deno.test("engine accounting: linear:max=12,min=4,warmup=1,horizon=32, 32 tokens", async () => {
  assertEquals(EXPECTED_LAYERS.length, 32);
  assertEquals(EXPECTED_LAYERS.reduce((a, b) => a + b, 0), 264);
  const out = await generate(model, PROMPTS, {
    policy: LINEAR,
    maxNewTokens: 32,
    stopAtEos: false,
    batchSize: 2, // two batches, two plans with different prompt lengths P
    recordLogits: true,
  });
  assertEquals(out.policy, LINEAR);
  assertEquals(out.backend, "cpu");
  assertEquals(out.plans.length, 2);
  assertEquals(out.timing.generatedTokens, 3 * 32);
  let full = 0, planned = 0;
  out.results.forEach((r, k) => {
    const p = out.plans[Math.floor(k / 2)];
    assertEquals(r.ids.length, 32, `prompt ${k} should generate all 32 tokens`);
    assertEquals(r.finish, "length");
    assertEquals(r.layers, p.generatedLayers, `prompt ${k}: layers vs plan`);
    assertEquals(r.layers, EXPECTED_LAYERS, `prompt ${k}: layers vs hand computation`);
    const P = p.promptLength;
    r.layers.forEach((n, i) => {
      // The engine's generated token i comes from column P - 1 + i, which runs sets[P-1+i].
      assertEquals(p.sets[P - 1 + i].length, n);
      assertEquals(r.flops[i], specFlops(n, P - 1 + i), `prompt ${k} token ${i} FLOPs`);
      full += specFlops(cfg.numHiddenLayers, P - 1 + i);
      planned += specFlops(n, P - 1 + i);
    });
  });
  assertAlmostEquals(out.layerSpeedup, EXPECTED_LAYER_SPEEDUP, 1e-12);
  assertAlmostEquals(out.flopSpeedup, full / planned, 1e-12);
  assert(out.flopSpeedup > 1 && out.flopSpeedup < out.layerSpeedup, "LM head caps FLOP speedup");
  // KV bytes: Σ_l P_l slots = Σ_c |S(c)| (nesting), 2 * d * 4 bytes each, per row.
  const kv = out.plans.map((p, b) => {
    const rows = b === 0 ? 2 : 1;
    const slots = p.sets.reduce((a, s) => a + s.length, 0);
    return [slots * 2 * cfg.hiddenSize * 4 * rows, 12 * p.columns * 2 * cfg.hiddenSize * 4 * rows];
  });
  assertEquals(out.kvBytes, Math.max(...kv.map((x) => x[0])));
  assertEquals(out.kvBytesFull, Math.max(...kv.map((x) => x[1])));
  console.log(
    `  layers/token ${out.results[0].layers.join(",")}; layerSpeedup ${out.layerSpeedup} ` +
      `(= 384/264), flopSpeedup ${out.flopSpeedup.toFixed(4)} (hand ${
        (full / planned).toFixed(4)
      }), ` +
      `KV ${out.kvBytes} of ${out.kvBytesFull} bytes`,
  );
  // The logits really came from the plan's sets: an uncached forward with them agrees.
  for (const k of [0, 2]) {
    const r = out.results[k];
    const p = out.plans[Math.floor(k / 2)];
    const P = p.promptLength;
    // Row k alone, left-padded to its batch's P, so that columns line up with the plan.
    const row = [...r.promptIds, ...r.ids.slice(0, 31)];
    const pad = P - r.promptIds.length;
    const rows = [row];
    if (pad > 0) rows.push(Array.from({ length: row.length + pad }, () => 3)); // forces P
    const fwd = await model.backend.forward({ rows, sets: p.sets, padTokenId: cfg.padTokenId });
    assertEquals(fwd.length, P + 31);
    const V = cfg.vocabSize;
    let worst = 0;
    for (let i = 0; i < 32; i++) {
      const c = P - 1 + i;
      const e = relL2(r.logits![i], fwd.logits.subarray(c * V, (c + 1) * V));
      worst = Math.max(worst, e);
      assertLess(e, 1e-5, `prompt ${k} token ${i}: engine logits vs forward with plan sets`);
    }
    console.log(`  prompt ${k}: engine logits == forward(plan sets), max rel err ${worst}`);
  }
});

Deno.test("engine accounting: earlyexit runs exactly the bottom layers and differs from skipdecode", async () => {
  const opts = { maxNewTokens: 32, stopAtEos: false, batchSize: 3 };
  const skip = await generate(model, PROMPTS, { ...opts, policy: LINEAR });
  const ee = await generate(model, PROMPTS, { ...opts, policy: "earlyexit:" + LINEAR });
  const p = ee.plans[0], P = p.promptLength;
  for (let i = 0; i < 32; i++) {
    const n = EXPECTED_LAYERS[i]; // same budgets: earlyexit keeps the wrapped budget
    assertEquals(p.sets[P - 1 + i], Array.from({ length: n }, (_, l) => l), `token ${i}`);
  }
  for (let c = 0; c < P; c++) assertEquals(p.sets[c].length, 12, `prompt column ${c}`);
  assertAlmostEquals(ee.layerSpeedup, EXPECTED_LAYER_SPEEDUP, 1e-12);
  ee.results.forEach((r) => assertEquals(r.layers, EXPECTED_LAYERS));
  const differ = ee.results.filter((r, k) => r.ids.join() !== skip.results[k].ids.join()).length;
  assert(differ > 0, "early exit should change some output");
  // The SkipDecode sets are not the bottom layers: e.g. budget 4 = warm-up 0 + top 3.
  assertEquals(skip.plans[0].sets[P - 1 + 31], [0, 9, 10, 11]);
  assertEquals(p.sets[P - 1 + 31], [0, 1, 2, 3]);
  for (const [k, r] of ee.results.entries()) {
    console.log(`  earlyexit  ${k}: ${JSON.stringify(r.text)}`);
    console.log(`  skipdecode ${k}: ${JSON.stringify(skip.results[k].text)}`);
  }
  console.log(`  ${differ} of ${PROMPTS.length} outputs differ`);
});

Deno.test("engine accounting: full through the engine == plain backend decode, bit for bit", async () => {
  const out = await generate(model, PROMPTS, {
    policy: "full",
    maxNewTokens: 32,
    batchSize: 3,
    recordLogits: true,
    logitsTopK: 5,
  });
  assertEquals(out.layerSpeedup, 1);
  assertEquals(out.flopSpeedup, 1);
  assertEquals(out.kvBytes, out.kvBytesFull);
  const prompts = PROMPTS.map((t) => model.tokenizer.encode(t));
  const P = Math.max(...prompts.map((p) => p.length));
  const plain = await model.backend.decode({
    prompts,
    maxNewTokens: 32,
    sets: fullPlanSets(12, P + 31),
    eosTokenId: cfg.eosTokenId,
    padTokenId: cfg.padTokenId,
    recordLogits: true,
  });
  out.results.forEach((r, k) => {
    assertEquals(r.promptIds, prompts[k]);
    assertEquals(r.ids, plain.tokens[k]);
    assertEquals(r.finish, plain.finish[k]);
    assertEquals(r.layers, r.ids.map(() => 12));
    assertEquals(r.text, model.tokenizer.decode(plain.tokens[k]));
    assertEquals(r.logits!.length, plain.logits![k].length);
    r.logits!.forEach((l, i) => {
      const ref = plain.logits![k][i];
      assert(
        l.every((v, j) => Object.is(v, ref[j])),
        `prompt ${k} step ${i}: logits not identical`,
      );
      // logitsTopK: the 5 largest logits, highest first; greedy picks the first.
      const top = r.topk![i];
      assertEquals(top.length, 5);
      assertEquals(top[0][0], r.ids[i]);
      top.forEach(([id, v], j) => {
        assertEquals(v, l[id]);
        if (j > 0) assert(v <= top[j - 1][1]);
      });
      const fifth = top[4][1];
      assert(l.filter((v) => v > fifth).length <= 4, "a larger logit was left out");
    });
  });
  console.log(
    `  full: ${out.results.map((r) => `${r.ids.length} tokens (${r.finish})`).join(", ")}; ` +
      `ids, finish and logits bit-identical to backend.decode with fullPlanSets`,
  );
});
