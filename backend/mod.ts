/**
 * Backends run an OPT model with per-column active-layer sets: the CPU reference
 * ({@linkcode createCpuBackend}) and WebGPU. {@linkcode createBackend} picks one by name,
 * `"auto"` meaning WebGPU when an adapter exists, else the CPU with a note.
 *
 * @example
 * ```ts
 * import { createBackend } from "./mod.ts";
 * import { loadWeights } from "../model/mod.ts";
 * const backend = await createBackend(await loadWeights("bundled/models/tiny-opt-e2e"), { backend: "cpu" });
 * ```
 * @module
 */
import type { OptWeights } from "../model/types.ts";
import type { Backend } from "./types.ts";
import { createCpuBackend } from "./cpu/backend.ts";
import type { WebGpuBackendOptions } from "./webgpu/backend.ts";

export type * from "./types.ts";
export { CpuBackend, type CpuBackendOptions, createCpuBackend } from "./cpu/backend.ts";
// The CPU reference ops under one name: `linear` here is the matmul reference, while
// `linear` at the top level (mod.ts) is the exit policy of schedule/.
export * as cpuOps from "./cpu/ops.ts";
export { hash32, selectToken, stepUniform, validateSampling } from "./sampling.ts";
export { checkFiniteLogits, NonFiniteError } from "./finite.ts";
export { checkColumns, checkTokenIds, type PaddedBatch, padLeft } from "./batch.ts";
export * from "./requests.ts";
export {
  ReadoutBuilder,
  readoutColumns,
  type ReadoutEntry,
  readoutEntry,
  type ReducedLogits,
  reduceLogits,
} from "./readout.ts";

/**
 * Which backend to run: `"auto"` picks WebGPU when an adapter exists and passes the adapter
 * validation (`kernels/validate.ts`), else the CPU, with a one-line note saying why.
 */
export type BackendName = "auto" | "cpu" | "webgpu";

/** Options of {@linkcode createBackend}. */
export interface CreateBackendOptions {
  /** Default `"auto"`. */
  backend?: BackendName;
  /** Called with a one-line note (e.g. why `auto` fell back to the CPU). */
  onNote?: (note: string) => void;
  /** Options of the WebGPU backend (device, matmul variant, profiling, warm-up, chunks). */
  webgpu?: WebGpuBackendOptions;
}

/**
 * Loads weights onto the named backend.
 *
 * @example
 * ```ts
 * import { loadWeights } from "../model/mod.ts";
 * const weights = await loadWeights("bundled/models/tiny-opt-e2e");
 * const backend = await createBackend(weights, { backend: "auto", onNote: console.error });
 * console.log(backend.name); // "webgpu" or "cpu"
 * backend.dispose();
 * ```
 */
export async function createBackend(
  weights: OptWeights,
  options: CreateBackendOptions = {},
): Promise<Backend> {
  const name = options.backend ?? "auto";
  if (name === "cpu") return createCpuBackend(weights);
  if (name !== "webgpu" && name !== "auto") {
    throw new RangeError(`unknown backend "${name}": use auto, cpu or webgpu`);
  }
  const webgpu = await import("./webgpu/mod.ts");
  if (name === "auto" && !(await webgpu.gpuAvailable())) {
    options.onNote?.("no WebGPU adapter found: using the CPU backend");
    return createCpuBackend(weights);
  }
  try {
    return await webgpu.createWebGpuBackend(weights, options.webgpu);
  } catch (e) {
    // An adapter that computes wrong numbers is refused; "auto" then runs on the CPU.
    if (name !== "auto" || !(e instanceof webgpu.AdapterRejectedError)) throw e;
    options.onNote?.(
      `the WebGPU adapter "${e.report.adapter}" computes wrong results ` +
        `(${e.failed.join(", ")}): using the CPU backend (for WebGPU: apt-get install -y ` +
        "--no-install-recommends libvulkan1 mesa-vulkan-drivers)",
    );
    return createCpuBackend(weights);
  }
}
