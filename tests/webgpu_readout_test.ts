/**
 * The WebGPU backend's per-layer readout against the CPU backend's and against the float64
 * layer-by-layer reference (`readout_helpers.ts`), on random awkward-sized checkpoints
 * (pre-LN f16, opt-350m-style post-LN with `project_in`/`project_out`, untied bf16 head),
 * padded batches, full and nested skip plans; the forward's logits are unchanged by the
 * readout; skipped layers repeat the previous readout; and on the tiny checkpoint the last
 * layer's top-1 is the token WebGPU generated greedily.
 */
import { assert, assertEquals, assertLess } from "@std/assert";
import { createCpuBackend } from "../backend/cpu/backend.ts";
import { readoutEntry } from "../backend/readout.ts";
import { createWebGpuBackend } from "../backend/webgpu/mod.ts";
import { readoutGeneration } from "../eval/readout.ts";
import { loadTokenizer } from "../tokenizer/mod.ts";
import { loadWeights, writeRandomCheckpoint } from "../model/mod.ts";
import { GPU_TEST, relL2, testGpu } from "./webgpu_helpers.ts";
import {
  assertMatchesReference,
  assertSkippedRepeat,
  READOUT_FIXTURES,
  READOUT_ROWS,
  readoutPlans,
} from "./readout_helpers.ts";

const GPU_TOL = { prob: 2e-4, entropy: 2e-3 };

for (const [name, options] of READOUT_FIXTURES) {
  Deno.test({
    name: `webgpu readout equals the CPU's and the float64 reference: ${name}`,
    ...GPU_TEST,
    fn: async () => {
      const gpu = await testGpu();
      if (!gpu) return;
      const dir = Deno.makeTempDirSync({ prefix: "webgpu-readout-" });
      try {
        writeRandomCheckpoint(dir, options);
        const w = await loadWeights(dir);
        const cpu = createCpuBackend(w);
        const wg = await createWebGpuBackend(w, { gpu });
        try {
          const L = w.config.numHiddenLayers;
          const T = Math.max(...READOUT_ROWS.map((r) => r.length));
          for (const [planName, sets] of readoutPlans(L, T)) {
            const what = `${name}, ${planName}`;
            const req = { rows: READOUT_ROWS, sets, padTokenId: 1 };
            const off = await wg.forward(req);
            const on = await wg.forward({ ...req, readout: { topK: 3 } });
            const ref = await cpu.forward({ ...req, readout: { topK: 3 } });
            assertEquals(off.readout, undefined);
            assertLess(relL2(on.logits, off.logits), 1e-6, `${what}: logits with readout`);
            assertLess(relL2(on.logits, ref.logits), 1e-4, `${what}: logits vs CPU`);
            const r = on.readout!, c = ref.readout!;
            assertEquals([r.rows, r.length, r.layers, r.topK], [c.rows, c.length, c.layers, 3]);
            // against the CPU readout, entry by entry
            for (let b = 0; b < r.rows; b++) {
              for (let col = 0; col < r.length; col++) {
                for (let l = 0; l < L; l++) {
                  const g = readoutEntry(r, b, col, l), e = readoutEntry(c, b, col, l);
                  if (!e) {
                    assertEquals(g, null, `${what}: padding b${b} c${col}`);
                    continue;
                  }
                  const where = `${what}: row ${b} column ${col} layer ${l + 1}`;
                  assert(g, where);
                  g.top.forEach(([id, p], i) => {
                    const close = e.top[i + 1] && e.top[i][1] - e.top[i + 1][1] < 10 * GPU_TOL.prob;
                    if (!close) assertEquals(id, e.top[i][0], `${where}: top ${i}`);
                    assertLess(Math.abs(p - e.top[i][1]), GPU_TOL.prob, `${where}: p ${i}`);
                  });
                  assertLess(Math.abs(g.entropy - e.entropy), GPU_TOL.entropy, where);
                  if (e.nextProb === null) assertEquals(g.nextProb, null);
                  else assertLess(Math.abs(g.nextProb! - e.nextProb), GPU_TOL.prob, where);
                }
              }
            }
            assertMatchesReference(r, w, READOUT_ROWS, sets, `webgpu ${what}`, GPU_TOL);
            const skipped = assertSkippedRepeat(r, sets, `webgpu ${what}`);
            if (planName !== "full") assert(skipped > 0);
          }
        } finally {
          wg.dispose();
        }
      } finally {
        Deno.removeSync(dir, { recursive: true });
      }
    },
  });
}

Deno.test({
  name: "webgpu readout on the tiny checkpoint: the last layer's top-1 is the generated token",
  ...GPU_TEST,
  fn: async () => {
    const gpu = await testGpu();
    if (!gpu) return;
    const dir = "bundled/models/tiny-opt-e2e";
    const weights = await loadWeights(dir);
    const backend = await createWebGpuBackend(weights, { gpu });
    try {
      const model = { config: weights.config, backend, tokenizer: await loadTokenizer(dir) };
      for (const policy of ["full", "linear:max=12,min=3,warmup=1"]) {
        const r = await readoutGeneration(model, "name[The Eagle], food[French]\n", {
          policy,
          maxNewTokens: 8,
          topK: 2,
        });
        const L = weights.config.numHiddenLayers;
        assert(r.ids.length > r.promptLength);
        for (let c = r.promptLength - 1; c + 1 < r.ids.length; c++) {
          assertEquals(r.columns[c][L - 1].top[0][0], r.ids[c + 1], `${policy}: column ${c}`);
        }
      }
    } finally {
      backend.dispose();
    }
  },
});
