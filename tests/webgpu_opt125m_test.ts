/**
 * An OPT-125m-shaped random model (vocab 50272, hidden 768, 12 layers, 12 heads, ffn 3072,
 * f16) on the WebGPU backend with a forced 32 MiB binding limit, so the 77 MB f16 tied LM
 * head is split across bindings on the real shape by the storage variants (the texture
 * variant holds it in one texture); the token embedding reads its rows from the head's
 * weights (held once); 8 greedy tokens equal the CPU reference's and the logits match.
 */
import { assertEquals, assertGreater, assertLess } from "@std/assert";
import { createCpuBackend } from "../backend/cpu/backend.ts";
import { createWebGpuBackend } from "../backend/webgpu/mod.ts";
import { loadWeights, residentWeightBytes, writeRandomCheckpoint } from "../model/mod.ts";
import { tableBindings } from "../kernels/tables.ts";
import { GPU_TEST, relL2, skipPlan, testGpu } from "./webgpu_helpers.ts";

Deno.test({
  name:
    "webgpu: OPT-125m shape, f16, tied head held once (split across bindings), 8 tokens equal the CPU",
  ...GPU_TEST,
  fn: async () => {
    const gpu = await testGpu();
    if (!gpu) return;
    const dir = Deno.makeTempDirSync({ prefix: "webgpu-opt125m-" });
    try {
      let t = performance.now();
      writeRandomCheckpoint(dir, { shape: "opt-125m", dtype: "F16", seed: 125 });
      const weights = await loadWeights(dir);
      const cfg = weights.config;
      assertEquals(
        [cfg.vocabSize, cfg.hiddenSize, cfg.numHiddenLayers, cfg.numAttentionHeads, cfg.ffnDim],
        [50272, 768, 12, 12, 3072],
      );
      const writeMs = performance.now() - t;
      t = performance.now();
      const maxBindingBytes = 32 << 20;
      const wg = await createWebGpuBackend(weights, { gpu, maxBindingBytes });
      const loadMs = performance.now() - t;
      try {
        const tokens = wg.model.embedTokens;
        console.log(
          `opt-125m: checkpoint ${writeMs.toFixed(0)} ms, GPU load ${loadMs.toFixed(0)} ms ` +
            `(${(wg.model.bytes / 1048576).toFixed(0)} MiB on the device, matmul ` +
            `${wg.matmul.variant}); token embedding ${tokens.format} in ` +
            `${tableBindings(tokens).length} bindings (the tied head's weights)`,
        );
        // the tied head is held once: the table is the head's weights, no bytes of its own
        assertEquals(tokens.bytes, 0);
        assertEquals(tokens.format, "chunks" in tokens ? "f16" : "tex-f16");
        if ("chunks" in tokens) assertGreater(tokens.chunks.length, 1);
        const head = 50272 * 768 * 2;
        assertLess(wg.model.bytes, residentWeightBytes(weights, "webgpu") + head / 4);
        const cpu = createCpuBackend(weights);
        const prompts = [[2, 31414, 6, 127, 2335], [2, 100, 101]];
        const N = 8;
        const sets = skipPlan(12, 5 + N, 5, 2, 6);
        const req = { prompts, maxNewTokens: N, sets, padTokenId: 1, recordLogits: true };
        t = performance.now();
        const c = await cpu.decode(req);
        const cpuMs = performance.now() - t;
        t = performance.now();
        const g = await wg.decode(req);
        const gpuMs = performance.now() - t;
        let err = 0;
        for (let b = 0; b < prompts.length; b++) {
          for (let s = 0; s < N; s++) err = Math.max(err, relL2(g.logits![b][s], c.logits![b][s]));
        }
        console.log(
          `opt-125m decode of 2 x ${N} tokens: cpu ${cpuMs.toFixed(0)} ms, webgpu ` +
            `${gpuMs.toFixed(0)} ms (prefill ${g.timing.prefillMs.toFixed(0)} ms, ` +
            `${g.timing.readbacks} readbacks); max logits rel L2 ${err.toExponential(2)}; ` +
            `tokens ${JSON.stringify(g.tokens)}`,
        );
        assertEquals(g.tokens, c.tokens);
        assertLess(err, 1e-4);
      } finally {
        wg.dispose();
      }
    } finally {
      Deno.removeSync(dir, { recursive: true });
    }
  },
});
