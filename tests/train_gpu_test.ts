/**
 * The WebGPU training engine against the CPU reference: every gradient of a batch with
 * skipping and padding (pre-LN, post-LN with project_in/out, untied head; the LM head in
 * several logits chunks) within 1e-4 relative, the same NLLs, and one optimiser step
 * (clipping and AdamW) giving the same weights within 1e-5 relative.
 */
import { assertAlmostEquals, assertEquals, assertLess } from "@std/assert";
import { collate } from "../train/batch.ts";
import { CpuEngine } from "../train/engine.ts";
import { createGpuEngine } from "../train/gpu_engine.ts";
import { modelView } from "../train/param_set.ts";
import { backward, forward } from "../train/reference.ts";
import { TrainKernels } from "../kernels/train.ts";
import type { OptConfig } from "../model/types.ts";
import { writeRandomCheckpoint } from "../model/fixture.ts";
import { resolveTrainConfig } from "../train/config.ts";
import { train } from "../train/trainer.ts";
import { GPU_TEST, testGpu } from "./webgpu_helpers.ts";
import { plannedExamples, randomParams, relL2, sharedPath, tinyConfig } from "./train_helpers.ts";

let kernels: TrainKernels | undefined;

const cases: [string, OptConfig][] = [
  ["pre-LN", tinyConfig("pre")],
  ["post-LN, project_in/out", tinyConfig("post")],
  ["pre-LN, untied head", tinyConfig("pre", { tieWordEmbeddings: false })],
];

for (const [label, config] of cases) {
  Deno.test({
    name: `GPU gradients equal the CPU reference (${label})`,
    ...GPU_TEST,
    fn: async () => {
      const gpu = await testGpu();
      if (!gpu) return;
      kernels ??= await TrainKernels.create(gpu);
      const params = randomParams(config, 21, "f32");
      const L = config.numHiddenLayers;
      const batch = collate(plannedExamples(config, 8, [[3, 6], [5, 2], [2, 7], [4, 4]]), L, 1);
      // CPU reference in f64 from the same (f32) weights
      const p64 = params.clone("f64");
      const g64 = p64.zerosLike();
      const s = forward(modelView(p64), batch);
      backward(modelView(p64), modelView(g64), s, 1 / batch.targetCount);
      // 3 logits rows per chunk: the head runs in several chunks
      const engine = await createGpuEngine(params.clone(), {}, undefined, {
        gpu,
        kernels,
        maxLogitsBytes: 3 * config.vocabSize * 4,
      });
      try {
        const loss = await engine.accumulate(batch, 1 / batch.targetCount);
        assertAlmostEquals(loss, s.loss, 1e-4 * s.loss);
        const g = await engine.gradients();
        g64.specs.forEach((spec, i) => {
          const want = g64.arrays[i], got = g.arrays[i];
          const norm = Math.hypot(...want);
          const diff = Math.hypot(...got.map((x, j) => x - want[j]));
          // k_proj.bias has an exactly zero gradient: only rounding noise on both sides
          const floor = spec.name.includes("k_proj.bias") ? 1e-6 : 0;
          assertLess(diff, 1e-4 * norm + floor, `${spec.name}: relative error ${diff / norm}`);
        });
        const nll = await engine.score(batch);
        assertEquals(nll.length, batch.targetCount);
        assertLess(relL2(nll, s.nll), 1e-5);
      } finally {
        engine.dispose();
      }
    },
  });
}

Deno.test({
  name: "one optimiser step (two micro-batches, clipping, AdamW) on the GPU equals the CPU",
  ...GPU_TEST,
  fn: async () => {
    const gpu = await testGpu();
    if (!gpu) return;
    kernels ??= await TrainKernels.create(gpu);
    const config = tinyConfig("post");
    const params = randomParams(config, 31, "f32");
    const L = config.numHiddenLayers;
    const ex = plannedExamples(config, 3, [[3, 5], [4, 3], [2, 6]]);
    const parts = [collate(ex.slice(0, 2), L, 1), collate(ex.slice(2), L, 1)];
    const total = parts[0].targetCount + parts[1].targetCount;
    const opts = { weightDecay: 0.1, beta2: 0.98 };
    const cpu = new CpuEngine(params.clone(), opts);
    const gpuEngine = await createGpuEngine(params.clone(), opts, undefined, { gpu, kernels });
    try {
      for (let step = 0; step < 2; step++) {
        for (const b of parts) {
          await cpu.accumulate(b, 1 / total);
          await gpuEngine.accumulate(b, 1 / total);
        }
        const rc = await cpu.step(3e-3, 0.5); // clipping active
        const rg = await gpuEngine.step(3e-3, 0.5);
        assertLess(Math.abs(rg.gradNorm - rc.gradNorm) / rc.gradNorm, 1e-4);
        assertLess(rc.clip, 1);
        assertLess(Math.abs(rg.clip - rc.clip) / rc.clip, 1e-4);
      }
      const a = await cpu.snapshot(), b = await gpuEngine.snapshot();
      assertEquals(b.adam.step, 2);
      a.params.specs.forEach((spec, i) => {
        if (spec.name.includes("k_proj.bias")) {
          // Its gradient is exactly zero (softmax ignores a shift common to all keys), so
          // both devices hold rounding noise (~1e-9) there, and Adam divides it by its own
          // size: updates of up to lr that differ per device. Bound them instead.
          const init = params.arrays[i];
          for (const w of [a.params.arrays[i], b.params.arrays[i]]) {
            w.forEach((x, j) => assertLess(Math.abs(x - init[j]), 2 * 3e-3 + 1e-7));
          }
          return;
        }
        const err = relL2(b.params.arrays[i], a.params.arrays[i]);
        assertLess(err, 1e-5, `${spec.name}: weights differ by ${err} (relative)`);
      });
      // the step really moved the weights (far more than the tolerance)
      const moved = relL2(
        a.params.get("decoder.layers.0.fc1.weight"),
        params.get("decoder.layers.0.fc1.weight"),
      );
      assertLess(1e-4, moved);
    } finally {
      gpuEngine.dispose();
    }
  },
});

Deno.test({
  name: "the training loop on WebGPU follows the CPU run (losses, held-out NLL)",
  ...GPU_TEST,
  fn: async () => {
    const gpu = await testGpu();
    if (!gpu) return;
    kernels ??= await TrainKernels.create(gpu);
    const src = Deno.makeTempDirSync({ prefix: "train-gpu-" });
    writeRandomCheckpoint(src, {
      shape: {
        vocabSize: 50272,
        hiddenSize: 16,
        numAttentionHeads: 2,
        ffnDim: 24,
        numHiddenLayers: 3,
        maxPositionEmbeddings: 128,
      },
      seed: 3,
      dtype: "F32",
      tokenizerDir: sharedPath("tokenizers/opt"),
    });
    const base = {
      model: src,
      policy: "linear:max=3,min=2,warmup=1,horizon=8",
      steps: 3,
      batchSize: 3,
      lr: 3e-3,
      warmupSteps: 1,
      heldOut: 10,
      evalExamples: 4,
      evalEvery: 0,
      maxLength: 40,
    };
    const runs = [];
    for (const backend of ["cpu", "webgpu"] as const) {
      const out = Deno.makeTempDirSync();
      runs.push(
        await train(resolveTrainConfig([{ ...base, out, backend }]), {
          engine: backend === "webgpu"
            ? (p, c, adam) =>
              createGpuEngine(p, { weightDecay: c.weightDecay, beta2: c.beta2 }, adam, {
                gpu,
                kernels,
              })
            : undefined,
        }),
      );
    }
    const [c, g] = runs;
    assertLess(relL2(g.state.history.map((h) => h.loss), c.state.history.map((h) => h.loss)), 1e-4);
    const nll = (r: typeof c) => r.state.evals.flatMap((e) => e.results.map((x) => x.nll));
    assertLess(relL2(nll(g), nll(c)), 1e-4);
    assertEquals(g.state.step, 3);
  },
});

Deno.test({
  name: "a GPU engine resumed from CPU AdamW state continues like the CPU engine",
  ...GPU_TEST,
  fn: async () => {
    const gpu = await testGpu();
    if (!gpu) return;
    kernels ??= await TrainKernels.create(gpu);
    const config = tinyConfig("pre");
    const L = config.numHiddenLayers;
    const batch = collate(plannedExamples(config, 12), L, 1);
    const cpu = new CpuEngine(randomParams(config, 41, "f32"));
    await cpu.accumulate(batch, 1 / batch.targetCount);
    await cpu.step(1e-3, 1);
    const snap = await cpu.snapshot();
    const resumed = await createGpuEngine(snap.params.clone(), {}, {
      m: snap.adam.m.clone(),
      v: snap.adam.v.clone(),
      step: snap.adam.step,
    }, { gpu, kernels });
    try {
      for (const e of [cpu, resumed]) {
        await e.accumulate(batch, 1 / batch.targetCount);
        await e.step(1e-3, 1);
      }
      const a = await cpu.snapshot(), b = await resumed.snapshot();
      assertEquals(b.adam.step, 2);
      a.params.specs.forEach((spec, i) => {
        if (spec.name.includes("k_proj.bias")) return; // zero gradient: see the test above
        assertLess(relL2(b.params.arrays[i], a.params.arrays[i]), 1e-5, spec.name);
        assertLess(relL2(b.adam.v.arrays[i], a.adam.v.arrays[i]), 1e-3, spec.name);
      });
    } finally {
      resumed.dispose();
    }
  },
});
