/**
 * The WebGPU training engine (work in progress).
 *
 * @module
 */
import type { TrainEngine } from "./engine.ts";
import type { AdamState, AdamWOptions } from "./optim.ts";
import type { ParamSet } from "./params.ts";

/**
 * Creates the WebGPU training engine.
 *
 * @example
 * ```ts
 * // const engine = await createGpuEngine(params, {});
 * ```
 */
export function createGpuEngine(
  _params: ParamSet,
  _options: AdamWOptions,
  _adam?: AdamState,
): Promise<TrainEngine> {
  return Promise.reject(new Error("WebGPU training is not available yet: use --backend cpu"));
}
