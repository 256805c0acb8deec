/**
 * Benchmarks: the matrix-product kernels against the plain TypeScript matmul, and
 * end-to-end decode of `full` against linear plans at about 2x and 3x layer speedup on
 * both backends and, side by side, on a PyTorch eager reference (`torch_decode.py`) when
 * `/usr/bin/python3` has `torch`. `deno task bench` runs both (`--quick` in under a minute).
 *
 * @example
 * ```ts
 * import { decodeBenchMarkdown, runDecodeBench } from "./mod.ts";
 * const rows = await runDecodeBench({
 *   models: [{ label: "tiny", dir: "bundled/models/tiny-opt-e2e" }], backends: ["cpu"],
 *   batches: [1], targets: [2], promptLength: 8, maxNewTokens: 8, repeats: 1,
 * });
 * console.log(decodeBenchMarkdown(rows));
 * ```
 * @module
 */
export {
  decodeBenchMarkdown,
  type DecodeBenchOptions,
  type DecodeBenchRow,
  ensureOpt125mFixture,
  linearForSpeedup,
  runDecodeBench,
  sideBySideMarkdown,
  skipNeverSlowerCheck,
} from "./decode_bench.ts";
export {
  startTorchEngine,
  TORCH_PYTHON,
  type TorchDecodeOutput,
  type TorchDecodeRequest,
  type TorchEngine,
  type TorchEngineOptions,
} from "./torch_engine.ts";
export { type BenchRow, matmulBenchMain } from "./matmul_bench.ts";
export {
  DENSE_FIXTURE,
  runTrainBench,
  trainBenchMarkdown,
  type TrainBenchOptions,
  type TrainBenchResult,
  type TrainBenchRow,
  type TrainerName,
} from "./train_bench.ts";
export {
  runServeBench,
  serveBenchMarkdown,
  type ServeBenchOptions,
  type ServeBenchResult,
  type ServeBenchRow,
} from "./serve_bench.ts";
export type { BackendName } from "../backend/mod.ts";
export type * from "../schedule/mod.ts";
export type { DType } from "../model/types.ts";
