/**
 * What an f16 KV cache buys the WebGPU backend (`kvDtype`, `kernels/attention/kv_dtype.ts`):
 * the same checkpoint decoded by a backend with an f32 cache and one with an f16 cache on
 * one device, interleaved in one run (alternating order per repeat), per batch size: median
 * decode time and tokens/s (prefill included), the KV cache bytes each allocated (the
 * decode's `kvCacheBytes` counter), the time ratio, and how many steps' top-3 ids agree.
 * Needs an adapter with `shader-f16` (llvmpipe has it).
 *
 * Run: `deno task bench --kv-dtype` (the tiny checkpoint and the OPT-125m-shaped fixture;
 * `--quick`: the tiny one only), or `deno run --allow-read=. --allow-env --allow-sys=loadavg
 * bench/kv_dtype_bench.ts [CHECKPOINT_DIR]`.
 *
 * @example
 * ```ts
 * import { kvDtypeBench } from "./kv_dtype_bench.ts";
 * const lines = await kvDtypeBench("bundled/models/tiny-opt-e2e", { batches: [1], repeats: 1 });
 * console.log(lines.join("\n"));
 * ```
 *
 * @module
 */
import { loadWeights } from "../model/mod.ts";
import { createWebGpuBackend, type WebGpuDecodeOutput } from "../backend/webgpu/mod.ts";
import { requestGpu } from "../kernels/device.ts";
import type { KernelClass } from "../kernels/profile.ts";
import { dimsFromConfig, full, plan } from "../schedule/mod.ts";

/** Options of {@linkcode kvDtypeBench}. */
export interface KvDtypeBenchOptions {
  /** Batch sizes (default 1 and 8). */
  batches?: number[];
  /** Interleaved repeats per engine (default 3). */
  repeats?: number;
  /** Prompt columns (default 32). */
  promptLength?: number;
  /** Generated tokens (default 32). */
  tokens?: number;
  /** Kernel family (default: by the adapter, or `SKIPDECODE_KERNELS`). */
  kernels?: KernelClass;
}

/**
 * Times the f32 and f16 KV caches interleaved; returns one line per batch size.
 *
 * @throws {GpuError} when the adapter lacks `shader-f16`.
 *
 * @example
 * ```ts
 * import { kvDtypeBench } from "./kv_dtype_bench.ts";
 * await kvDtypeBench("bundled/models/tiny-opt-e2e", { batches: [1], repeats: 1, tokens: 4 });
 * ```
 */
export async function kvDtypeBench(
  dir: string,
  options: KvDtypeBenchOptions = {},
): Promise<string[]> {
  const w = await loadWeights(dir);
  const cfg = w.config;
  const gpu = await requestGpu();
  const kinds = ["f32", "f16"] as const;
  const engines = [];
  try {
    for (const kvDtype of kinds) {
      engines.push(await createWebGpuBackend(w, { gpu, kernels: options.kernels, kvDtype }));
    }
    const P = options.promptLength ?? 32, N = options.tokens ?? 32;
    const repeats = options.repeats ?? 3;
    const lines: string[] = [];
    for (const batch of options.batches ?? [1, 8]) {
      const p = plan(full(), { ...dimsFromConfig(cfg), promptLength: P, maxNewTokens: N });
      const prompts = Array.from({ length: batch }, (_, r) => [
        cfg.bosTokenId,
        ...Array.from({ length: P - 1 }, (_, i) => 10 + ((r * 31 + i * 7) % (cfg.vocabSize - 10))),
      ]);
      const req = { prompts, maxNewTokens: N, sets: p.sets, padTokenId: cfg.padTokenId };
      // one untimed decode each: shader compilation happens at the first dispatch
      for (const e of engines) await e.decode({ ...req, maxNewTokens: 2, sets: p.sets });
      const ms: number[][] = [[], []];
      const out: WebGpuDecodeOutput[] = [];
      for (let rep = 0; rep < repeats; rep++) {
        for (const e of rep % 2 ? [1, 0] : [0, 1]) {
          const t = performance.now();
          out[e] = await engines[e].decode({ ...req, logitsTopK: 3 });
          ms[e].push(performance.now() - t);
        }
      }
      const med = (x: number[]) => [...x].sort((a, b) => a - b)[Math.floor(x.length / 2)];
      const tps = (e: number) => (batch * N) / (med(ms[e]) / 1000);
      let same = 0, steps = 0;
      out[0].topk!.forEach((row, b) =>
        row.forEach((step, s) => {
          steps++;
          const ids = (x: [number, number][]) => x.map(([id]) => id).join();
          if (ids(step) === ids(out[1].topk![b][s])) same++;
        })
      );
      lines.push(
        `batch ${batch}, ${P} + ${N} columns: f32 KV ${tps(0).toFixed(1)} tok/s ` +
          `(${out[0].kvCacheBytes} bytes), f16 KV ${tps(1).toFixed(1)} tok/s ` +
          `(${out[1].kvCacheBytes} bytes), f16 / f32 time ${
            (med(ms[1]) / med(ms[0])).toFixed(2)
          }x, KV bytes ${(out[1].kvCacheBytes / out[0].kvCacheBytes).toFixed(2)}x, ` +
          `top-3 ids equal in ${same}/${steps} steps`,
      );
    }
    return lines;
  } finally {
    engines.forEach((e) => e.dispose());
    gpu.device.destroy();
  }
}

if (import.meta.main) {
  const dir = Deno.args[0] ?? "bundled/models/tiny-opt-e2e";
  console.log(`WebGPU backend, ${dir}: f32 vs f16 KV cache (interleaved)`);
  for (const line of await kvDtypeBench(dir)) console.log(line);
  console.log(`load average: ${Deno.loadavg().map((x) => x.toFixed(2)).join(" ")}`);
}
