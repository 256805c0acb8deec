/**
 * The float arrays the CPU references work on: `Float32Array` (inference, training) or
 * `Float64Array` (the finite-difference gradient check). Every reference in
 * `kernels/<op>/reference.ts` is generic over both and returns arrays of its input's type.
 *
 * @example
 * ```ts
 * import { allocLike } from "./float.ts";
 * console.log(allocLike(new Float64Array(1), 3)); // Float64Array [0, 0, 0]
 * ```
 *
 * @module
 */

/** A float buffer: f32 for inference and training, f64 for exact gradient checks. */
export type FloatArray = Float32Array | Float64Array;

/**
 * A zeroed array of `n` elements of the same type as `like`.
 *
 * @example
 * ```ts
 * allocLike(new Float64Array(1), 3); // Float64Array [0, 0, 0]
 * ```
 */
export function allocLike<A extends FloatArray>(like: A, n: number): A {
  return (like instanceof Float64Array ? new Float64Array(n) : new Float32Array(n)) as A;
}
