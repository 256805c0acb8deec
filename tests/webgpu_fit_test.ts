/**
 * The WebGPU backend refuses a model that cannot fit before it reads a single tensor (on a
 * software adapter its memory is the host's: `MemAvailable`, `SKIPDECODE_MEMORY_LIMIT`, or
 * here the `memoryLimitBytes` option, since the variable is process-wide),
 * and the streamed upload (largest tensor first, staging released as it goes) gives the same
 * logits as the CPU reference.
 */
import { assert, assertEquals, assertRejects } from "@std/assert";
import { createWebGpuBackend } from "../backend/webgpu/mod.ts";
import { createCpuBackend } from "../backend/mod.ts";
import { ModelTooLargeError, residentWeightBytes } from "../model/mod.ts";
import { uploadModel } from "../backend/webgpu/weights.ts";
import { createMatmulKernels } from "../kernels/matmul/mod.ts";
import { GPU_TEST, relL2, testGpu } from "./webgpu_helpers.ts";
import { awkwardWeights, countingReads } from "./model_test_helpers.ts";

Deno.test({
  name: "WebGPU: a memory limit refuses the model in one line before any read",
  ...GPU_TEST,
  fn: async () => {
    const gpu = await testGpu();
    if (!gpu) return;
    const { weights, reads } = countingReads(await awkwardWeights());
    const mm = createMatmulKernels(gpu.device, { adapterInfo: gpu.info });
    const e = await assertRejects(
      () => uploadModel(gpu, mm, weights, { memoryLimitBytes: 2048 }),
      ModelTooLargeError,
    );
    assert(!e.message.includes("\n"), e.message);
    assert(e.message.includes(`${residentWeightBytes(weights, "webgpu")} bytes`), e.message);
    assert(e.message.includes("2048 bytes"), e.message);
    assert(e.message.includes(gpu.info.description || "WebGPU"), e.message);
    assertEquals(reads(), 0);
  },
});

Deno.test({
  name: "WebGPU: the streamed upload gives the CPU reference's logits (awkward sizes, tied head)",
  ...GPU_TEST,
  fn: async () => {
    const gpu = await testGpu();
    if (!gpu) return;
    const { weights, reads } = countingReads(await awkwardWeights());
    const backend = await createWebGpuBackend(weights, { gpu, validate: false });
    const cpu = createCpuBackend(weights);
    try {
      // each tensor read once by the upload (the tied head too: the embedding reads the
      // head's uploaded weights), then once by the CPU backend
      const tensors = 2 + 3 * 16 + 2;
      assertEquals(reads(), tensors + tensors);
      const L = weights.config.numHiddenLayers;
      const all = Array.from({ length: L }, (_, l) => l);
      const req = {
        prompts: [[2, 40, 7, 99], [2, 3]],
        maxNewTokens: 4,
        sets: [all, all, all, all, [0, 2], [2], [2]],
        padTokenId: 1,
        recordLogits: true,
      };
      const [g, c] = [await backend.decode(req), await cpu.decode(req)];
      assertEquals(g.tokens, c.tokens);
      g.logits!.forEach((row, i) =>
        row.forEach((step, j) => {
          const err = relL2(step, c.logits![i][j]);
          assert(err < 1e-4, `row ${i} step ${j}: relative L2 ${err}`);
        })
      );
    } finally {
      backend.dispose();
      await cpu.dispose();
    }
  },
});
