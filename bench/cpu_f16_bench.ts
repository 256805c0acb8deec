/**
 * What keeping f16 weights as halves costs the CPU backend: the same checkpoint decoded by a
 * CPU backend that widens per row block (the default, half the memory) and by one that
 * widened everything to f32 at load (`widenF16: true`), interleaved in one run, at batch 1
 * and 8; prints the time ratio and whether the top-3 logits of every step are identical.
 *
 * Run: `deno run --allow-read=. --allow-sys=loadavg bench/cpu_f16_bench.ts [CHECKPOINT_DIR]`
 * (default: the bundled tiny checkpoint).
 *
 * @example
 * ```ts
 * import { cpuF16Bench } from "./cpu_f16_bench.ts";
 * const lines = await cpuF16Bench("bundled/models/tiny-opt-e2e", { repeats: 1 });
 * console.log(lines.join("\n"));
 * ```
 *
 * @module
 */
import { loadWeights } from "../model/mod.ts";
import { createCpuBackend } from "../backend/mod.ts";
import { dimsFromConfig, full, plan } from "../schedule/mod.ts";

/**
 * Times both CPU weight layouts interleaved; returns one line per batch size.
 *
 * @example
 * ```ts
 * import { cpuF16Bench } from "./cpu_f16_bench.ts";
 * await cpuF16Bench("bundled/models/tiny-opt-e2e", { batches: [1], repeats: 1 });
 * ```
 */
export async function cpuF16Bench(
  dir: string,
  options: { batches?: number[]; repeats?: number; promptLength?: number; tokens?: number } = {},
): Promise<string[]> {
  const w = await loadWeights(dir);
  const cfg = w.config;
  const engines = [createCpuBackend(w), createCpuBackend(w, { widenF16: true })];
  const P = options.promptLength ?? 8, N = options.tokens ?? 8, repeats = options.repeats ?? 3;
  const lines: string[] = [];
  for (const batch of options.batches ?? [1, 8]) {
    const p = plan(full(), { ...dimsFromConfig(cfg), promptLength: P, maxNewTokens: N });
    const prompts = Array.from({ length: batch }, (_, r) => [
      cfg.bosTokenId,
      ...Array.from({ length: P - 1 }, (_, i) => 10 + r * 31 + i * 7),
    ]);
    const ms: number[][] = [[], []];
    const topk: string[] = ["", ""];
    for (let rep = 0; rep < repeats; rep++) {
      for (const e of rep % 2 ? [1, 0] : [0, 1]) {
        const t = performance.now();
        const o = await engines[e].decode({
          prompts,
          maxNewTokens: N,
          sets: p.sets,
          padTokenId: cfg.padTokenId,
          logitsTopK: 3,
        });
        ms[e].push(performance.now() - t);
        topk[e] = JSON.stringify(o.topk);
      }
    }
    const med = (x: number[]) => [...x].sort((a, b) => a - b)[Math.floor(x.length / 2)];
    lines.push(
      `batch ${batch}: f16 halves ${med(ms[0]).toFixed(0)} ms, f32 copy ${
        med(ms[1]).toFixed(0)
      } ms, halves / f32 time ${(med(ms[0]) / med(ms[1])).toFixed(2)}x, top-3 identical: ${
        topk[0] === topk[1]
      }`,
    );
  }
  await Promise.all(engines.map((e) => e.dispose()));
  return lines;
}

if (import.meta.main) {
  const dir = Deno.args[0] ?? "bundled/models/tiny-opt-e2e";
  console.log(`CPU backend, ${dir}: f16 kept as halves vs widened to f32 at load (interleaved)`);
  for (const line of await cpuF16Bench(dir)) console.log(line);
  console.log(`load average: ${Deno.loadavg().map((x) => x.toFixed(2)).join(" ")}`);
}
