/**
 * The tiny-opt-e2e checks shared by `webgpu_e2e_test.ts` (full plan, forward logits) and
 * `webgpu_e2e_skip_test.ts` (a nested SkipDecode-style plan): greedy tokens of the WebGPU
 * backend equal the CPU reference's on 8 E2E devset prompts, one at a time and in one
 * left-padded batch of 8.
 *
 * @module
 */
import { assertEquals, assertLess } from "@std/assert";
import { createCpuBackend } from "../backend/cpu/backend.ts";
import { createWebGpuBackend } from "../backend/webgpu/mod.ts";
import { E2E_TEMPLATE, loadE2eCsv } from "../data/datasets.ts";
import { loadWeights } from "../model/mod.ts";
import { loadTokenizer } from "../tokenizer/mod.ts";
import type { KernelClass } from "../kernels/profile.ts";
import { fullPlan, relL2, sharedPath, skipPlan, testGpu } from "./webgpu_helpers.ts";

/**
 * Runs the checks under the `full` or `skip` plan (and, with `forward`, the logits check);
 * `kernels: "gpu"` forces the real-GPU kernels (storage GEMV) on this adapter, with 3
 * prompts in the batch and 1 alone, 8 new tokens (the storage kernels are slow on llvmpipe).
 */
export async function checkTinyOptE2e(
  plan: "full" | "skip",
  forward: boolean,
  kernels?: KernelClass,
): Promise<void> {
  const gpu = await testGpu();
  if (!gpu) return;
  const dir = sharedPath("models/tiny-opt-e2e");
  const weights = await loadWeights(dir);
  const tok = await loadTokenizer(dir);
  const items = (await loadE2eCsv(sharedPath("data/e2e/devset.csv"))).slice(0, kernels ? 3 : 8);
  const prompts = items.map((it) => tok.encode(E2E_TEMPLATE.replace("{mr}", it.mr)));
  const L = weights.config.numHiddenLayers;
  const cpu = createCpuBackend(weights);
  const wg = await createWebGpuBackend(weights, { gpu, kernels });
  try {
    if (forward) {
      // logits of every column of two padded rows
      const rows = [prompts[0], prompts[Math.min(5, prompts.length - 1)]];
      const T = Math.max(...rows.map((r) => r.length));
      const plans: [string, number[][]][] = [
        ["full", fullPlan(L, T)],
        ["skip", skipPlan(L, T, 4, 1, 3)],
      ];
      for (const [name, sets] of plans) {
        const f1 = await cpu.forward({ rows, sets, padTokenId: 1 });
        const f2 = await wg.forward({ rows, sets, padTokenId: 1 });
        const err = relL2(f2.logits, f1.logits);
        console.log(
          `tiny-opt-e2e forward (${name} plan, 2 rows x ${T}): rel L2 ${err.toExponential(2)}`,
        );
        assertLess(err, 1e-4);
      }
    }
    const N = kernels ? 8 : 24; // the storage kernels are slow on llvmpipe
    const P = Math.max(...prompts.map((p) => p.length));
    const planFor = (p: number) =>
      plan === "full" ? fullPlan(L, p + N) : skipPlan(L, p + N, p, 3, 4);
    const req = { maxNewTokens: N, padTokenId: 1, eosTokenId: 2, logitsTopK: 1 };
    const batch = { ...req, prompts, sets: planFor(P) };
    const b1 = await cpu.decode(batch);
    const t0 = performance.now();
    const b2 = await wg.decode(batch);
    const ms = performance.now() - t0;
    assertEquals(b2.tokens, b1.tokens, `${plan}: padded batch of ${prompts.length}`);
    assertEquals(b2.finish, b1.finish);
    let maxLogitDiff = 0;
    b1.topk!.forEach((r, b) =>
      r.forEach((s, i) => {
        maxLogitDiff = Math.max(maxLogitDiff, Math.abs(s[0][1] - b2.topk![b][i][0][1]));
      })
    );
    console.log(
      `tiny-opt-e2e ${plan} plan, batch ${prompts.length}: ${b2.tokens.flat().length} tokens identical; ` +
        `webgpu ${ms.toFixed(0)} ms (${b2.timing.readbacks} readbacks); max |top logit diff| ` +
        `${maxLogitDiff.toExponential(2)}; row 0: ${JSON.stringify(tok.decode(b2.tokens[0]))}`,
    );
    const alone = kernels ? 1 : prompts.length;
    for (let i = 0; i < alone; i++) {
      const one = { ...req, prompts: [prompts[i]], sets: planFor(prompts[i].length) };
      const o2 = await wg.decode(one);
      if (plan === "full") {
        // the CPU is row-independent (its own tests), so its batched row is the reference
        assertEquals(o2.tokens[0], b1.tokens[i], `${plan}: prompt ${i} alone`);
      } else {
        // the plan depends on the row's own prompt length: a separate CPU run
        assertEquals(o2.tokens, (await cpu.decode(one)).tokens, `${plan}: prompt ${i} alone`);
      }
    }
    console.log(
      `tiny-opt-e2e ${plan} plan, batch 1: ${alone} prompts identical (${
        kernels ?? gpu.profile.kernels
      } kernels, matmul ${wg.matmul.variant})`,
    );
  } finally {
    wg.dispose();
  }
}
