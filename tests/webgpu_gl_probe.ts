/**
 * Run by `tests/webgpu_gl_test.ts` in a subprocess whose environment hides every Vulkan
 * driver (`VK_ICD_FILENAMES=/nonexistent`), so that wgpu offers its OpenGL (EGL) adapter:
 * validates that adapter and compares a small random OPT's decode (f16 weights, a skip
 * plan, padded rows) with the CPU reference. Prints one JSON line on stdout.
 *
 * @module
 */
import { createCpuBackend } from "../backend/cpu/backend.ts";
import { createWebGpuBackend } from "../backend/webgpu/mod.ts";
import { requestGpu } from "../kernels/device.ts";
import { validateAdapter } from "../kernels/validate.ts";
import { loadWeights, writeRandomCheckpoint } from "../model/mod.ts";
import { skipPlan } from "./webgpu_helpers.ts";

const adapter = await navigator.gpu?.requestAdapter();
if (!adapter) {
  console.log(JSON.stringify({ adapter: null }));
  Deno.exit(0);
}
const gpu = await requestGpu();
const validation = await validateAdapter(gpu);
const dir = Deno.makeTempDirSync({ prefix: "webgpu-gl-" });
try {
  writeRandomCheckpoint(dir, {
    shape: { hiddenSize: 48, numAttentionHeads: 4, ffnDim: 72, numHiddenLayers: 3, vocabSize: 90 },
    seed: 12,
  });
  const weights = await loadWeights(dir);
  const L = weights.config.numHiddenLayers;
  const prompts = [[2, 5, 9, 33, 7], [2, 60, 3]];
  const N = 8;
  const req = {
    prompts,
    maxNewTokens: N,
    sets: skipPlan(L, 5 + N, 5, 2),
    padTokenId: 1,
  };
  const want = await createCpuBackend(weights).decode(req);
  const wg = await createWebGpuBackend(weights, { gpu, validate: false });
  const got = await wg.decode(req);
  wg.dispose();
  console.log(JSON.stringify({
    adapter: gpu.info.description,
    features: [...adapter.features],
    validation,
    tokens: { gpu: got.tokens, cpu: want.tokens },
  }));
} finally {
  Deno.removeSync(dir, { recursive: true });
  gpu.device.destroy();
}
