/**
 * The continuous-batching scheduler on the WebGPU backend's RowBatch (tiny checkpoint): requests
 * with mixed policies arriving while others decode (per-row and aligned admission), each equal to
 * its solo decode on WebGPU (`generate`, batch size 1) and on the CPU; KV never rewritten. Skips
 * loudly without an adapter (fails under CI=true).
 */
import { assert, assertEquals } from "@std/assert";
import { fileURLToPath } from "node:url";
import { createCpuBackend } from "../backend/cpu/backend.ts";
import { createWebGpuBackend } from "../backend/webgpu/mod.ts";
import { generate } from "../decode/mod.ts";
import { loadWeights } from "../model/mod.ts";
import { loadTokenizer } from "../tokenizer/mod.ts";
import { type AdmissionMode, type Completion, Scheduler } from "../serve/mod.ts";
import { BUNDLED } from "./helpers.ts";
import { GPU_TEST, testGpu } from "./webgpu_helpers.ts";

const PROMPTS = [
  "name[Alimentum], area[city centre]\n",
  "name[The Eagle], food[French]\n",
  "name[Zizzi]\n",
  "name[Aromi], eatType[pub], customer rating[average]\n",
  "name[Cotto], food[Chinese]\n",
];
const POLICIES = [
  "full",
  "linear:max=12,min=4,warmup=1",
  "powerlaw:max=12,min=3,warmup=1,alpha=1,tau=4,prompt=decay",
  "earlyexit:constant:n=7",
];

for (const mode of ["per-row", "aligned"] as AdmissionMode[]) {
  Deno.test({
    name:
      `scheduler on webgpu (${mode}): mixed policies, mid-run admissions, each equals its solo decode`,
    ...GPU_TEST,
    fn: async () => {
      const gpu = await testGpu();
      if (!gpu) return;
      const dir = fileURLToPath(new URL("models/tiny-opt-e2e", BUNDLED));
      const weights = await loadWeights(dir);
      const tokenizer = await loadTokenizer(dir);
      const wg = await createWebGpuBackend(weights, { gpu });
      const cpu = createCpuBackend(weights);
      const gpuModel = { backend: wg, tokenizer, config: weights.config };
      const cpuModel = { backend: cpu, tokenizer, config: weights.config };
      try {
        const s = new Scheduler(gpuModel, { capacity: 3, mode });
        const jobs: { prompt: string; policy: string; n: number; done: Promise<Completion> }[] = [];
        const submit = (k: number) => {
          const prompt = PROMPTS[k % PROMPTS.length];
          const policy = POLICIES[(k * 3) % POLICIES.length];
          const n = 3 + ((k * 5) % 7);
          jobs.push({ prompt, policy, n, done: s.submit({ prompt, maxTokens: n, policy }).done });
        };
        for (let k = 0; k < 4; k++) submit(k);
        const first = await jobs[0].done; // the rest arrive while rows run
        assert(first.ids.length > 0);
        for (let k = 4; k < 8; k++) submit(k);
        const done = await Promise.all(jobs.map((j) => j.done));
        for (const [i, j] of jobs.entries()) {
          const opts = { policy: j.policy, maxNewTokens: j.n, batchSize: 1 };
          const g = (await generate(gpuModel, [j.prompt], opts)).results[0];
          const c = (await generate(cpuModel, [j.prompt], opts)).results[0];
          assertEquals(done[i].ids, g.ids, `request ${i} (${j.policy}) vs its webgpu solo decode`);
          assertEquals(done[i].ids, c.ids, `request ${i} (${j.policy}) vs its cpu solo decode`);
        }
        assertEquals(s.metrics().rows.kvRewrites, 0);
        await s.close();
        console.log(`  ${jobs.length} requests equal their webgpu and cpu solo decodes`);
      } finally {
        wg.dispose();
      }
    },
  });
}
