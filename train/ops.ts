/**
 * The CPU reference ops the training reference (`reference.ts`) composes, forward and
 * backward. Each op has one implementation, in `kernels/<op>/reference.ts` beside its WGSL
 * kernels, generic over `Float32Array` (training) and `Float64Array` (the finite-difference
 * check) and shared with the CPU inference backend (`backend/cpu/ops.ts`): the forwards
 * here (`layerNorm`, `attendOne`, `gatherRows`, `relu`) are the ones inference runs; a
 * linear map's forward is `linearForward`, the matrix product of its backward (faster at
 * training sizes than inference's `linear`, see `kernels/matmul/reference.ts`). Every
 * backward function *adds* into its gradient outputs.
 *
 * @example
 * ```ts
 * import { linear, linearBackwardInput } from "./ops.ts";
 * const w = new Float64Array([3, 4]);
 * const y = linear(new Float64Array([1, 2]), w, undefined, 1, 2, 1); // [11]
 * const dx = new Float64Array(2);
 * linearBackwardInput(new Float64Array([1]), w, 1, 2, 1, dx); // dx = [3, 4]
 * ```
 *
 * @module
 */
export {
  linear,
  linearBackwardInput,
  linearBackwardParams,
  linearForward,
  matmulNT,
  transpose,
} from "../kernels/matmul/reference.ts";
export {
  layerNorm,
  layerNormBackward,
  layerNormForward,
  type LnSaved,
} from "../kernels/layernorm/reference.ts";
export { attendOne, attentionBackward, attentionForward } from "../kernels/attention/reference.ts";
export { crossEntropy } from "../kernels/cross_entropy/reference.ts";
export { gatherRows, scatterRows } from "../kernels/embedding/reference.ts";
export { axpy, relu } from "../kernels/elementwise/reference.ts";
