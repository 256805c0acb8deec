import { assert, assertLess } from "@std/assert";
import { layerNorm } from "../kernels/layernorm/reference.ts";
import { createLayerNorm } from "../kernels/layernorm/mod.ts";
import {
  GPU_TEST,
  maxAbsDiff,
  poisoned,
  randomF32,
  readF32,
  recorder,
  testGpu,
  upload,
} from "./webgpu_helpers.ts";

Deno.test({
  name: "layernorm kernel matches the CPU reference on awkward sizes and row offsets",
  ...GPU_TEST,
  fn: async () => {
    const gpu = await testGpu();
    if (!gpu) return;
    for (const wg of [8, 64]) {
      const ln = await createLayerNorm(gpu, wg);
      for (const [m, d, inRow, outRow] of [[7, 203, 0, 0], [3, 33, 2, 1], [1, 1000, 4, 0]]) {
        const x = randomF32((inRow + m) * d, 11 + d, 3);
        for (let i = 0; i < x.length; i++) x[i] += 0.5; // non-zero mean
        const w = randomF32(d, 12 + d, 1);
        const b = randomF32(d, 13 + d, 0.5);
        const outRows = outRow + m;
        const out = poisoned(gpu, outRows * d);
        const rec = recorder(gpu);
        rec.begin();
        ln.encode(rec, {
          x: upload(gpu, x),
          w: upload(gpu, w),
          b: upload(gpu, b),
          out,
          m,
          d,
          inRow,
          outRow,
        });
        gpu.device.queue.submit([rec.finish()]);
        const got = (await readF32(gpu, out)).subarray(outRow * d, outRows * d);
        const want = layerNorm(x.subarray(inRow * d), w, b, m, d);
        const err = maxAbsDiff(got, want);
        console.log(
          `layernorm (wg ${wg}) m=${m} d=${d} inRow=${inRow} outRow=${outRow}: max |diff| ${err}`,
        );
        assertLess(err, 2e-5);
        // rows before outRow were not written: still poisoned
        if (outRow > 0) assert(Number.isNaN((await readF32(gpu, out))[0]));
      }
    }
  },
});
