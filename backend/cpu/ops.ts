/**
 * The CPU reference ops the CPU backend composes. Each op has one implementation, in
 * `kernels/<op>/reference.ts` beside its WGSL kernels, generic over `Float32Array` and
 * `Float64Array` and shared with the training reference (`train/ops.ts`): this module only
 * gathers the ones inference uses. They are the oracle every WGSL kernel is tested against.
 *
 * @example
 * ```ts
 * import { layerNorm, linear } from "./ops.ts";
 * const y = linear(new Float32Array([1, 2]), new Float32Array([3, 4]), undefined, 1, 2, 1); // [11]
 * console.log(layerNorm(y, new Float32Array([1]), new Float32Array([0]), 1, 1)); // [0]
 * ```
 *
 * @module
 */
export { linear } from "../../kernels/matmul/reference.ts";
export { layerNorm } from "../../kernels/layernorm/reference.ts";
export { attendOne } from "../../kernels/attention/reference.ts";
export { gatherRows, positionIds } from "../../kernels/embedding/reference.ts";
export { axpy, relu } from "../../kernels/elementwise/reference.ts";
export { argmax, topK } from "../../kernels/select/reference.ts";
