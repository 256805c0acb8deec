/**
 * The WebGPU backend on the bundled trained checkpoint `bundled/models/tiny-opt-e2e`, full
 * plan: logits match the CPU reference (relative L2 < 1e-4, full and skip plans) and greedy
 * tokens are identical on 8 E2E devset prompts, alone and in one left-padded batch of 8; the
 * same with the real-GPU kernels forced (`kernels: "gpu"`, as `SKIPDECODE_KERNELS=gpu`).
 */
import { checkTinyOptE2e } from "./webgpu_e2e_shared.ts";
import { GPU_TEST } from "./webgpu_helpers.ts";

Deno.test({
  name: "webgpu on tiny-opt-e2e, full plan: logits and greedy tokens equal the CPU (batch 1, 8)",
  ...GPU_TEST,
  fn: () => checkTinyOptE2e("full", true),
});

Deno.test({
  name:
    "webgpu on tiny-opt-e2e with the GPU kernels forced: logits and greedy tokens equal the CPU",
  ...GPU_TEST,
  fn: () => checkTinyOptE2e("full", true, "gpu"),
});
