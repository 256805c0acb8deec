/**
 * The WebGPU backend on `bundled/models/tiny-opt-e2e` under a nested SkipDecode-style
 * plan (warm-up layer 0 plus a shrinking set of top layers): greedy tokens identical to the
 * CPU reference on 8 E2E devset prompts, alone and in one left-padded batch of 8.
 */
import { checkTinyOptE2e } from "./webgpu_e2e_shared.ts";
import { GPU_TEST } from "./webgpu_helpers.ts";

Deno.test({
  name: "webgpu on tiny-opt-e2e, skip plan: greedy tokens equal the CPU (batch 1 and 8)",
  ...GPU_TEST,
  fn: () => checkTinyOptE2e("skip", false),
});
