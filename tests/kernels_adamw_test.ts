/**
 * The optimizer kernels (`kernels/adamw/train.ts`: global norm, clipping, AdamW) against the
 * CPU optimizer of `train/optim.ts`.
 */
import { assert, assertEquals, assertLess } from "@std/assert";
import { adamState, adamWConfig, adamWStep, clipCoefficient, gradNorm } from "../train/optim.ts";
import { GPU_TEST, poisoned, randomF32, readF32, upload } from "./webgpu_helpers.ts";
import { randomParams, relL2, tinyConfig } from "./train_helpers.ts";
import { run, setup } from "./train_kernel_harness.ts";

Deno.test({
  name: "global gradient norm, clipping and AdamW equal the CPU optimizer",
  ...GPU_TEST,
  fn: async () => {
    const s = await setup();
    if (!s) return;
    const { gpu, k } = s;
    const config = tinyConfig("post");
    const params = randomParams(config, 4, "f32");
    const grads = randomParams(config, 5, "f32");
    const adam = adamState(params);
    adam.m.arrays.forEach((a, i) => a.set(randomF32(a.length, 10 + i, 0.01)));
    adam.v.arrays.forEach((a, i) => a.set(randomF32(a.length, 50 + i, 0.01).map(Math.abs)));
    adam.step = 3;
    const cfg = adamWConfig({ weightDecay: 0.1 });
    const lr = 2e-3;
    const norm = gradNorm(grads);
    const maxNorm = norm / 3; // clipping active
    const bufs = params.specs.map((_, i) => ({
      g: upload(gpu, grads.arrays[i] as Float32Array),
      p: upload(gpu, params.arrays[i] as Float32Array),
      m: upload(gpu, adam.m.arrays[i] as Float32Array),
      v: upload(gpu, adam.v.arrays[i] as Float32Array),
    }));
    const partialCount = params.specs.reduce((a, s) => a + Math.ceil(s.size / 2048), 0);
    const partials = poisoned(gpu, partialCount), normBuf = poisoned(gpu, 2);
    const t = adam.step + 1;
    await run(gpu, (rec) => {
      let off = 0;
      params.specs.forEach((
        s,
        i,
      ) => (off += k.sumSquares(rec, { x: bufs[i].g, partials, n: s.size, offset: off })));
      assertEquals(off, partialCount);
      k.normFinalize(rec, { partials, out: normBuf, count: off, maxNorm });
      params.specs.forEach((s, i) =>
        k.adamw(rec, {
          grad: bufs[i].g,
          norm: normBuf,
          param: bufs[i].p,
          m: bufs[i].m,
          v: bufs[i].v,
          n: s.size,
          hyper: {
            decay: s.decay ? 1 - lr * cfg.weightDecay : 1,
            beta1: cfg.beta1,
            beta2: cfg.beta2,
            stepSize: lr / (1 - cfg.beta1 ** t),
            bc2Sqrt: Math.sqrt(1 - cfg.beta2 ** t),
            eps: cfg.eps,
          },
        })
      );
    });
    const gotNorm = await readF32(gpu, normBuf);
    assertLess(Math.abs(gotNorm[0] - norm) / norm, 1e-5);
    assertLess(Math.abs(gotNorm[1] - clipCoefficient(norm, maxNorm)), 1e-6);
    adamWStep(params, grads, adam, lr, cfg, clipCoefficient(norm, maxNorm));
    for (let i = 0; i < params.specs.length; i++) {
      const name = params.specs[i].name;
      assertLess(
        relL2(await readF32(gpu, bufs[i].p, params.specs[i].size), params.arrays[i]),
        1e-6,
        name,
      );
      assertLess(
        relL2(await readF32(gpu, bufs[i].m, params.specs[i].size), adam.m.arrays[i]),
        1e-5,
        name,
      );
      assertLess(
        relL2(await readF32(gpu, bufs[i].v, params.specs[i].size), adam.v.arrays[i]),
        1e-5,
        name,
      );
    }
    assert(partialCount > params.specs.length - 1);
  },
});
