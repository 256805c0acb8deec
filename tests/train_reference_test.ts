/**
 * The CPU reference of training: its forward equals the inference backend's logits under
 * the same per-column layer sets, and its backward equals central finite differences in f64
 * on tiny pre-LN and post-LN (project_in/out) models with skipping and padding.
 */
import { assert, assertEquals, assertLess, assertThrows } from "@std/assert";
import { collate, exampleSets, paddedBatch } from "../train/batch.ts";
import { backward, forward, forwardLogits } from "../train/reference.ts";
import { modelView, type ParamSet, paramsFromWeights } from "../train/param_set.ts";
import { CpuBackend } from "../backend/cpu/backend.ts";
import { loadWeightsSync } from "../model/checkpoint.ts";
import { writeRandomCheckpoint } from "../model/fixture.ts";
import type { OptConfig } from "../model/types.ts";
import { parsePolicy } from "../schedule/mod.ts";
import { plannedExamples, randomParams, relL2, sharedPath, tinyConfig } from "./train_helpers.ts";
import { loadTokenizer } from "../tokenizer/mod.ts";
import { e2eExamples } from "../train/data.ts";
import { evaluateNll } from "../train/evaluate.ts";
import { parsePolicySource } from "../train/policies.ts";
import { teacherForcedNll } from "../eval/nll.ts";
import type { TrainBatch } from "../train/batch.ts";

/** Mean NLL of the planned examples under parameters. */
function meanLoss(params: ParamSet, config: OptConfig, seed: number): number {
  const batch = collate(plannedExamples(config, seed), config.numHiddenLayers, 1);
  return forward(modelView(params), batch, { train: false }).loss / batch.targetCount;
}

for (
  const [kind, extra] of [
    ["pre", {}],
    ["post", {}],
    ["pre", { tieWordEmbeddings: false }],
  ] as const
) {
  const label = `${kind}-LN${"tieWordEmbeddings" in extra ? ", untied head" : ""}`;
  Deno.test(`reference backward equals central differences in f64 (${label})`, () => {
    const config = tinyConfig(kind, extra);
    const params = randomParams(config, 11, "f64");
    const grads = params.zerosLike();
    const batch = collate(plannedExamples(config, 5), config.numHiddenLayers, 1);
    // the batch really skips layers and pads rows
    const L = config.numHiddenLayers, N = batch.rows * batch.length;
    let skipped = 0;
    for (let i = 0; i < N; i++) {
      if (batch.positions[i] < 0) continue;
      for (let l = 0; l < L; l++) if (!batch.active[l * N + i]) skipped++;
    }
    assert(skipped >= 8, `only ${skipped} skipped layer-columns`);
    assert(batch.positions.includes(-1), "no padding");
    const s = forward(modelView(params), batch);
    backward(modelView(params), modelView(grads), s, 1 / batch.targetCount);
    const eps = 1e-5;
    const seen = new Set<string>();
    params.specs.forEach((spec, t) => {
      const p = params.arrays[t], g = grads.arrays[t];
      // a sample of elements: the largest gradients plus evenly spread ones
      const order = [...g.keys()].sort((a, b) => Math.abs(g[b]) - Math.abs(g[a]));
      const pick = new Set([...order.slice(0, 4), 0, p.length - 1, Math.floor(p.length / 3)]);
      const fd: number[] = [], an: number[] = [];
      for (const i of pick) {
        const keep = p[i];
        p[i] = keep + eps;
        const up = meanLoss(params, config, 5);
        p[i] = keep - eps;
        const down = meanLoss(params, config, 5);
        p[i] = keep;
        fd.push((up - down) / (2 * eps));
        an.push(g[i]);
      }
      // relative error; k_proj.bias has an exactly zero gradient (softmax ignores a shift
      // common to all keys), so an absolute floor of 5e-9 (the noise of the differences) covers it
      const diff = Math.hypot(...an.map((a, i) => a - fd[i]));
      const size = Math.hypot(...fd);
      assertLess(
        diff,
        1e-6 * size + 5e-9,
        `${spec.name}: |analytic - fd| = ${diff}, |fd| = ${size} (fd ${fd}, analytic ${an})`,
      );
      if (!spec.name.includes("k_proj.bias")) assert(size > 1e-6, `${spec.name}: tiny gradients`);
      seen.add(spec.name.replace(/layers\.\d+\./, "layers.N."));
    });
    // every tensor kind was checked
    for (
      const kindName of [
        "decoder.embed_tokens.weight",
        "decoder.embed_positions.weight",
        "decoder.layers.N.self_attn.q_proj.weight",
        "decoder.layers.N.self_attn.k_proj.bias",
        "decoder.layers.N.self_attn.v_proj.weight",
        "decoder.layers.N.self_attn.out_proj.bias",
        "decoder.layers.N.self_attn_layer_norm.weight",
        "decoder.layers.N.final_layer_norm.bias",
        "decoder.layers.N.fc1.weight",
        "decoder.layers.N.fc2.bias",
        ...(kind === "post"
          ? ["decoder.project_in.weight", "decoder.project_out.weight"]
          : ["decoder.final_layer_norm.weight"]),
        ...("tieWordEmbeddings" in extra ? ["lm_head.weight"] : []),
      ]
    ) assert(seen.has(kindName), `${kindName} not checked`);
  });
}

Deno.test("a layer no column runs gets no gradient; skipped columns pass gradients through", () => {
  const config = tinyConfig("pre");
  const params = randomParams(config, 3, "f64");
  const grads = params.zerosLike();
  // layer 1 skipped by every column of every row
  const sets = (n: number) => Array.from({ length: n }, () => [0, 2, 3]);
  const batch = collate(
    [
      { prompt: [2, 5, 6], target: [7, 2], sets: sets(4) },
      { prompt: [2, 9], target: [2], sets: sets(2) },
    ],
    4,
    1,
  );
  const s = forward(modelView(params), batch);
  backward(modelView(params), modelView(grads), s, 1);
  const l1 = grads.specs.filter((x) => x.name.startsWith("decoder.layers.1."));
  for (const spec of l1) assert(grads.get(spec.name).every((v) => v === 0), spec.name);
  const l0 = grads.get("decoder.layers.0.fc1.weight");
  assert(l0.some((v) => v !== 0), "layer 0 got no gradient through the skipped layer 1");
  // the loss equals the loss of a model whose layer 1 is deleted (identity)
  const other = params.clone();
  for (const spec of l1) other.get(spec.name).fill(1e3); // garbage weights, never used
  const s2 = forward(modelView(other), batch, { train: false });
  assertEquals(s2.loss, s.loss);
});

Deno.test("training forward equals the CPU inference backend's logits under the same sets", async () => {
  for (const kind of ["pre", "post"] as const) {
    const dir = Deno.makeTempDirSync();
    const shape = kind === "pre"
      ? { vocabSize: 37, hiddenSize: 24, numAttentionHeads: 3, ffnDim: 40, numHiddenLayers: 5 }
      : {
        vocabSize: 37,
        hiddenSize: 24,
        wordEmbedProjDim: 16,
        numAttentionHeads: 3,
        ffnDim: 40,
        numHiddenLayers: 5,
        doLayerNormBefore: false,
      };
    writeRandomCheckpoint(dir, { shape, seed: 4, dtype: "F32" });
    const weights = loadWeightsSync(dir);
    const params = paramsFromWeights(weights);
    const cpu = new CpuBackend(weights);
    const rows = [[2, 5, 9, 11, 4, 30, 7], [2, 8, 3], [2, 17, 21, 5, 6]];
    const sets = exampleSets(parsePolicy("linear:max=5,min=2,warmup=1,horizon=3"), 5, 3, 5);
    const batch = paddedBatch(rows, sets, 5, 1);
    const mine = forwardLogits(modelView(params), batch);
    const theirs = (await cpu.forward({ rows, sets, padTokenId: 1 })).logits;
    const err = relL2(mine, theirs);
    assertLess(err, 1e-6, `${kind}-LN: relative L2 ${err}`);
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("forward reports bad token ids and over-long rows with row and column", () => {
  const config = tinyConfig("pre");
  const m = modelView(randomParams(config, 1, "f32"));
  const bad = collate([{ prompt: [2, 99], target: [2], sets: [[0, 1, 2, 3], [0, 1, 2, 3]] }], 4, 1);
  assertThrows(() => forward(m, bad), RangeError, "token id 99 at row 0, column 1");
  const long = Array.from({ length: 30 }, () => [0, 1, 2, 3]);
  const tooLong = collate([{ prompt: [2], target: Array(30).fill(5), sets: long }], 4, 1);
  assertThrows(() => forward(m, tooLong), RangeError, "position table");
});

Deno.test("training NLL equals eval's teacher-forced NLL on tiny-opt-e2e (same layer sets)", async () => {
  const dir = sharedPath("models/tiny-opt-e2e");
  const weights = loadWeightsSync(dir);
  const tokenizer = await loadTokenizer(dir);
  const items = [
    {
      mr: "name[Alimentum], area[city centre], familyFriendly[no]",
      refs: ["Alimentum is not family-friendly ."],
    },
    { mr: "name[Aromi], eatType[coffee shop]", refs: ["Aromi is a coffee shop ."] },
  ];
  const { examples } = e2eExamples(items, tokenizer);
  const policy = "linear:max=6,min=2,warmup=1,horizon=16";
  const params = paramsFromWeights(weights);
  const scorer = {
    score: (b: TrainBatch) => Promise.resolve(forward(modelView(params), b, { train: false }).nll),
  };
  const mine = await evaluateNll(scorer, examples, parsePolicySource(policy), 12, 1, 2);
  const theirs = await teacherForcedNll(
    { config: weights.config, backend: new CpuBackend(weights), tokenizer },
    items.map((it) => ({ prompt: `${it.mr}\n`, reference: it.refs[0] })),
    { policy, batchSize: 1 },
  );
  assertEquals(mine.tokens, theirs.tokens);
  assertLess(Math.abs(mine.nll - theirs.meanNll), 1e-5 * theirs.meanNll);
});
