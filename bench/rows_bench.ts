/**
 * What the WebGPU per-row engine (`RowBatch`, `backend/webgpu/rows.ts`) costs against the
 * column-batched decode, on the same work in one process, interleaved: `B` prompts of `P`
 * tokens decoded lock-step for `N` tokens under one plan, three ways:
 *
 * - **decode chunk 16**: `Backend.decode` (16 steps per submission and readback);
 * - **decode chunk 1**: `Backend.decode` with one step per submission, i.e. the same number
 *   of awaited round trips as the row engine (isolates the engine's own overhead from the
 *   readback batching that lock-step decoding allows);
 * - **rows**: one `RowBatch.run` per step (all `B` prefills in the first call), the way a
 *   continuous-batching scheduler drives it.
 *
 * Each repeat runs the three in rotating order; medians (and minima) of milliseconds per
 * generated token step are printed with their ratios and the load average. The tokens of the
 * three are checked equal.
 *
 * ```sh
 * deno run --allow-read=. --allow-env=XDG_RUNTIME_DIR --allow-sys=loadavg \
 *   bench/rows_bench.ts [--batch 1,8] [--prompt 16] [--tokens 16] [--repeats 5]
 * ```
 *
 * @module
 */
import { createWebGpuBackend } from "../backend/webgpu/mod.ts";
import type { Backend, RowWork } from "../backend/types.ts";
import { quietVulkanRuntimeDir } from "../kernels/device.ts";
import { loadWeights } from "../model/mod.ts";
import { parsePolicy, plan } from "../schedule/mod.ts";

const TINY = "bundled/models/tiny-opt-e2e";

function flag(name: string, fallback: string): string {
  const i = Deno.args.indexOf(`--${name}`);
  if (i < 0) return fallback;
  const v = Deno.args[i + 1];
  if (v === undefined || v.startsWith("--")) throw new Error(`--${name} needs a value`);
  return v;
}

function positiveInts(name: string, text: string): number[] {
  const xs = text.split(",").map(Number);
  if (xs.some((x) => !Number.isInteger(x) || x < 1)) {
    throw new Error(`--${name} must be positive integers separated by commas, got ${text}`);
  }
  return xs;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const min = (xs: number[]) => Math.min(...xs);

/** One decode of `prompts` through a row batch, one call per step; returns the tokens. */
async function viaRows(
  backend: Backend,
  prompts: number[][],
  sets: number[][],
  N: number,
): Promise<number[][]> {
  const P = prompts[0].length;
  const rows = backend.openRows({ capacity: prompts.length, maxLength: P + N });
  try {
    const out: number[][] = prompts.map(() => []);
    let work: RowWork[] = prompts.map((p, slot) => ({ slot, tokens: p, sets: sets.slice(0, P) }));
    for (let j = 0; j < N; j++) {
      const results = await rows.run(work);
      results.forEach((r, b) => out[b].push(r.tokens[0]));
      if (j === N - 1) break;
      work = prompts.map((_, slot) => ({
        slot,
        tokens: [out[slot][j]],
        sets: [sets[P + j]],
        step: j + 1,
      }));
    }
    return out;
  } finally {
    rows.dispose();
  }
}

if (import.meta.main) {
  quietVulkanRuntimeDir();
  const batches = positiveInts("batch", flag("batch", "1,8"));
  const [P] = positiveInts("prompt", flag("prompt", "16"));
  const [N] = positiveInts("tokens", flag("tokens", "16"));
  const [repeats] = positiveInts("repeats", flag("repeats", "5"));
  const weights = await loadWeights(TINY);
  const L = weights.config.numHiddenLayers;
  const backend = await createWebGpuBackend(weights, { warmup: true });
  const policies = ["full", `linear:max=${L},min=4,warmup=1`];
  console.log(
    `WebGPU per-row engine vs column decode: tiny-opt-e2e on "${backend.gpu.info.description}", ` +
      `prompt ${P}, ${N} tokens, ${repeats} repeats, load ${Deno.loadavg().join(" ")}`,
  );
  console.log(
    "policy | batch | decode chunk 16 ms/step | decode chunk 1 | rows | rows / chunk 1 | rows / chunk 16",
  );
  try {
    for (const text of policies) {
      const sets = plan(parsePolicy(text), { layers: L, promptLength: P, maxNewTokens: N }).sets;
      for (const B of batches) {
        const prompts = Array.from(
          { length: B },
          (_, b) => [2, ...Array.from({ length: P - 1 }, (_, i) => 3 + ((b * 131 + i * 17) % 900))],
        );
        const run = {
          "chunk 16": async () =>
            (await backend.decode({ prompts, maxNewTokens: N, sets, padTokenId: 1, chunkSize: 16 }))
              .tokens,
          "chunk 1": async () =>
            (await backend.decode({ prompts, maxNewTokens: N, sets, padTokenId: 1, chunkSize: 1 }))
              .tokens,
          rows: () => viaRows(backend, prompts, sets, N),
        };
        const names = Object.keys(run) as (keyof typeof run)[];
        const times: Record<string, number[]> = { "chunk 16": [], "chunk 1": [], rows: [] };
        const tokens: Record<string, string> = {};
        await run.rows(); // first-use costs (shader compilation of the row kernels)
        for (let r = 0; r < repeats; r++) {
          for (let k = 0; k < names.length; k++) {
            const name = names[(r + k) % names.length];
            const t0 = performance.now();
            const out = await run[name]();
            times[name].push((performance.now() - t0) / N);
            tokens[name] = JSON.stringify(out);
          }
        }
        if (tokens.rows !== tokens["chunk 16"] || tokens.rows !== tokens["chunk 1"]) {
          throw new Error(`${text}, batch ${B}: the row engine's tokens differ from decode's`);
        }
        const [a, c, rw] = [
          median(times["chunk 16"]),
          median(times["chunk 1"]),
          median(times.rows),
        ];
        console.log(
          `${text} | ${B} | ${a.toFixed(1)} (min ${min(times["chunk 16"]).toFixed(1)}) | ` +
            `${c.toFixed(1)} (min ${min(times["chunk 1"]).toFixed(1)}) | ${rw.toFixed(1)} ` +
            `(min ${min(times.rows).toFixed(1)}) | ${(rw / c).toFixed(2)} | ${(rw / a).toFixed(2)}`,
        );
      }
    }
  } finally {
    backend.dispose();
  }
  console.log(`load after: ${Deno.loadavg().join(" ")}`);
}
