/**
 * AdamW (against PyTorch's formula computed by hand), no decay on biases and LayerNorm
 * weights, gradient clipping, the learning-rate schedule, and gradient accumulation.
 */
import { assert, assertAlmostEquals, assertEquals, assertLess, assertThrows } from "@std/assert";
import {
  adamState,
  adamWConfig,
  adamWStep,
  clipCoefficient,
  gradNorm,
  learningRate,
} from "../train/optim.ts";
import { collate } from "../train/batch.ts";
import { backward, forward } from "../train/reference.ts";
import { modelView } from "../train/param_set.ts";
import { plannedExamples, randomParams, relL2, tinyConfig } from "./train_helpers.ts";

Deno.test("AdamW: two steps equal PyTorch's update computed by hand", () => {
  const config = tinyConfig("pre");
  const params = randomParams(config, 1, "f32");
  const grads = params.zerosLike();
  const w = "decoder.layers.0.fc1.weight", b = "decoder.layers.0.fc1.bias";
  const ln = "decoder.layers.1.self_attn_layer_norm.weight";
  const cfg = adamWConfig({ beta1: 0.9, beta2: 0.98, eps: 1e-8, weightDecay: 0.1 });
  const state = adamState(params);
  const lr = 0.01;
  const gs = [[0.5, -2], [0.25, 1]]; // gradients of element 3 at steps 1 and 2
  const p0 = { w: params.get(w)[3], b: params.get(b)[3], ln: params.get(ln)[3] };
  const ref = { w: p0.w, b: p0.b, ln: p0.ln };
  const mom = { w: [0, 0], b: [0, 0], ln: [0, 0] };
  for (let t = 1; t <= 2; t++) {
    grads.zero();
    grads.get(w)[3] = gs[t - 1][0];
    grads.get(b)[3] = gs[t - 1][1];
    grads.get(ln)[3] = gs[t - 1][0];
    adamWStep(params, grads, state, lr, cfg);
    for (const k of ["w", "b", "ln"] as const) {
      const g = k === "b" ? gs[t - 1][1] : gs[t - 1][0];
      const decay = k === "w" ? 0.1 : 0; // no decay for biases and LayerNorm weights
      let p = ref[k] * (1 - lr * decay);
      mom[k][0] = 0.9 * mom[k][0] + 0.1 * g;
      mom[k][1] = 0.98 * mom[k][1] + 0.02 * g * g;
      const mh = mom[k][0] / (1 - 0.9 ** t);
      const vh = mom[k][1] / (1 - 0.98 ** t);
      p -= lr * mh / (Math.sqrt(vh) + 1e-8);
      ref[k] = p;
    }
  }
  assertAlmostEquals(params.get(w)[3], ref.w, 1e-6);
  assertAlmostEquals(params.get(b)[3], ref.b, 1e-6);
  assertAlmostEquals(params.get(ln)[3], ref.ln, 1e-6);
  assertEquals(state.step, 2);
  // an element with zero gradient: weights decay, biases stay
  const w0 = randomParams(config, 1, "f32").get(w)[0];
  assertAlmostEquals(params.get(w)[0], w0 * (1 - lr * 0.1) ** 2, 1e-7);
  assertEquals(params.get(b)[0], randomParams(config, 1, "f32").get(b)[0]);
  // the decay split: embeddings decay, LayerNorm biases do not
  const specs = new Map(params.specs.map((s) => [s.name, s.decay]));
  assert(specs.get("decoder.embed_tokens.weight"));
  assert(specs.get("decoder.embed_positions.weight"));
  assert(!specs.get("decoder.final_layer_norm.bias"));
  assert(!specs.get("decoder.final_layer_norm.weight"));
});

Deno.test("clipping: coefficient as torch's clip_grad_norm_, folded into the update", () => {
  assertAlmostEquals(clipCoefficient(10, 1), 1 / (10 + 1e-6), 1e-12);
  assertEquals(clipCoefficient(0.5, 1), 1);
  assertEquals(clipCoefficient(10, 0), 1);
  const config = tinyConfig("pre");
  const a = randomParams(config, 2, "f32"), b = a.clone();
  const ga = a.zerosLike();
  ga.arrays.forEach((g, i) => g.fill(0.01 * (i + 1)));
  const gb = ga.clone();
  const norm = gradNorm(ga);
  const c = clipCoefficient(norm, norm / 4);
  // clipped through gradScale == gradients scaled beforehand
  gb.arrays.forEach((g) => g.forEach((x, i) => (g[i] = Math.fround(x * c))));
  adamWStep(a, ga, adamState(a), 1e-3, adamWConfig(), c);
  adamWStep(b, gb, adamState(b), 1e-3, adamWConfig(), 1);
  a.arrays.forEach((x, i) => assertLess(relL2(x, b.arrays[i]), 1e-7));
});

Deno.test("learning rate: linear warm-up, cosine to the floor at the last step", () => {
  const s = { lr: 1e-3, warmupSteps: 4, totalSteps: 14, minLrRatio: 0.1 };
  assertAlmostEquals(learningRate(s, 0), 2.5e-4, 1e-15);
  assertAlmostEquals(learningRate(s, 3), 1e-3, 1e-15);
  assertAlmostEquals(learningRate(s, 4), 1e-3, 1e-15); // cosine starts at the peak
  // a third of the way through the cosine: 0.5 * (1 + cos(pi / 3)) = 0.75
  assertAlmostEquals(learningRate(s, 7), 1e-4 + 0.9e-3 * 0.75, 1e-15);
  assertAlmostEquals(learningRate(s, 13), 1e-4, 1e-15);
  for (let i = 5; i < 14; i++) assertLess(learningRate(s, i), learningRate(s, i - 1));
  assertEquals(learningRate({ lr: 1, totalSteps: 1 }, 0), 1);
  assertThrows(() => adamWConfig({ beta2: 1 }), RangeError, "beta2");
});

Deno.test("gradient accumulation over micro-batches equals one batch (mean over targets)", () => {
  const config = tinyConfig("pre");
  const params = randomParams(config, 7, "f64");
  const ex = plannedExamples(config, 9, [[3, 4], [2, 5], [4, 2], [2, 3]]);
  const L = config.numHiddenLayers;
  const whole = collate(ex, L, 1);
  const g1 = params.zerosLike();
  backward(
    modelView(params),
    modelView(g1),
    forward(modelView(params), whole),
    1 / whole.targetCount,
  );
  const parts = [collate(ex.slice(0, 1), L, 1), collate(ex.slice(1), L, 1)];
  const total = parts[0].targetCount + parts[1].targetCount;
  assertEquals(total, whole.targetCount);
  const g2 = params.zerosLike();
  for (const p of parts) {
    backward(modelView(params), modelView(g2), forward(modelView(params), p), 1 / total);
  }
  g1.arrays.forEach((a, i) => {
    // k_proj.bias has an exactly zero gradient (rounding noise only): compare absolutely
    const norm = Math.hypot(...a);
    const diff = Math.hypot(...a.map((x, j) => x - g2.arrays[i][j]));
    assertLess(diff, 1e-12 * norm + 1e-15, g1.specs[i].name);
  });
});
