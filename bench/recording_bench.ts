/**
 * Host recording time per decode step against the step index: one decode of 257 tokens at
 * batch 1 with `chunkSize: 1` (one submission per step), on a random checkpoint of the bundled
 * model's shape (12 layers, d = 128, 4 heads, ffn 512; 320 positions, so that step 256
 * exists; vocabulary 512 to keep the GPU work small: recording does not depend on it), for
 * the adapter's own kernels and for the GPU kernels forced. Prints the recording time of
 * steps 1, 64 and 256 (median of the 5 steps around each) and their ratio: recording is
 * constant in the number of steps when the ratio stays near 1.
 *
 * Run: `deno run --allow-read=.,../shared --allow-write=./.cache --allow-env
 *   bench/recording_bench.ts` (also part of `deno task bench`, after the roofline).
 *
 * @example
 * ```ts
 * import { measureRecording } from "./recording_bench.ts";
 * const r = await measureRecording("gpu");
 * console.log(r.atSteps); // [[1, ms], [64, ms], [256, ms]]
 * ```
 *
 * @module
 */
import type { KernelClass } from "../kernels/profile.ts";

/** Steps whose recording time is printed. */
export const RECORDING_STEPS: readonly number[] = [1, 64, 256];

/** Recording times of one decode. */
export interface RecordingFigures {
  /** Matmul variant used. */
  matmul: string;
  /** `[step, median ms of the 5 steps around it]` for each of {@linkcode RECORDING_STEPS}. */
  atSteps: [number, number][];
  /** Recording ms of every decode step, in order (step `j` at index `j - 1`). */
  perStep: number[];
}

/**
 * Decodes 257 tokens one step per submission and returns the recording time per step (see
 * the module doc). `dir` defaults to a random checkpoint written under `.cache/bench`.
 *
 * @example
 * ```ts
 * import { measureRecording } from "./recording_bench.ts";
 * console.log((await measureRecording(undefined)).matmul);
 * ```
 */
export async function measureRecording(
  kernels: KernelClass | undefined,
  dir?: string,
): Promise<RecordingFigures> {
  const { createWebGpuBackend } = await import("../backend/webgpu/backend.ts");
  const { loadWeights, writeRandomCheckpoint } = await import("../model/mod.ts");
  const { requestGpu } = await import("../kernels/device.ts");
  const folder = dir ?? ".cache/bench/recording-opt";
  if (!dir) {
    try {
      Deno.statSync(`${folder}/config.json`);
    } catch {
      Deno.mkdirSync(folder, { recursive: true });
      writeRandomCheckpoint(folder, {
        shape: {
          hiddenSize: 128,
          numAttentionHeads: 4,
          ffnDim: 512,
          numHiddenLayers: 12,
          vocabSize: 512,
          maxPositionEmbeddings: 320,
        },
        seed: 7,
      });
    }
  }
  const weights = await loadWeights(folder);
  const cfg = weights.config;
  const gpu = await requestGpu();
  const backend = await createWebGpuBackend(weights, { gpu, kernels, warmup: true });
  try {
    const last = RECORDING_STEPS[RECORDING_STEPS.length - 1];
    const N = last + 1, P = 2, L = cfg.numHiddenLayers;
    const all = Array.from({ length: L }, (_, l) => l);
    const out = await backend.decode({
      prompts: [[cfg.bosTokenId, 4]],
      maxNewTokens: N,
      sets: Array.from({ length: P + N }, () => all),
      padTokenId: cfg.padTokenId,
      chunkSize: 1,
    });
    const perStep = out.chunkEncodeMs;
    const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
    const atSteps = RECORDING_STEPS.map((s): [number, number] => {
      const lo = Math.max(0, s - 3), hi = Math.min(perStep.length, s + 2);
      return [s, median(perStep.slice(lo, hi))];
    });
    return { matmul: backend.matmul.variant, atSteps, perStep };
  } finally {
    backend.dispose();
    gpu.device.destroy();
  }
}

/**
 * Prints the recording table for the adapter's kernels and the GPU kernels (one Markdown
 * table).
 *
 * @example
 * ```ts
 * import { recordingBenchMain } from "./recording_bench.ts";
 * await recordingBenchMain();
 * ```
 */
export async function recordingBenchMain(): Promise<void> {
  const lines = [
    "| kernels | matmul | " + RECORDING_STEPS.map((s) => `step ${s} ms`).join(" | ") +
    ` | step ${RECORDING_STEPS.at(-1)} / step 1 |`,
    `|${" --- |".repeat(RECORDING_STEPS.length + 3)}`,
  ];
  for (const kernels of [undefined, "gpu"] as const) {
    const r = await measureRecording(kernels);
    const v = r.atSteps.map(([, ms]) => ms);
    lines.push(
      `| ${kernels ?? "adapter's own"} | ${r.matmul} | ${
        v.map((x) => x.toFixed(2)).join(" | ")
      } | ${(v[v.length - 1] / v[0]).toFixed(2)} |`,
    );
  }
  let load = "";
  try {
    load = `, load ${Deno.loadavg().map((x) => x.toFixed(2)).join(" ")}`;
  } catch { /* no --allow-sys */ }
  console.log(
    `\nHost recording per decode step (batch 1, chunkSize 1, 12 layers, median of 5 steps` +
      `${load}):\n\n${lines.join("\n")}`,
  );
}

if (import.meta.main) await recordingBenchMain();
