/**
 * The CPU reference of the elementwise ops, generic over `Float32Array`/`Float64Array`:
 * {@linkcode relu} (the MLP's activation) and {@linkcode axpy} (the residual add and
 * gradient accumulation).
 *
 * @example
 * ```ts
 * import { axpy, relu } from "./reference.ts";
 * console.log(relu(new Float32Array([-1, 2])), axpy(new Float32Array([1]), new Float32Array([2]))); // [0, 2] [3]
 * ```
 *
 * @module
 */
import type { FloatArray } from "../float.ts";

/**
 * ReLU, `out[i] = max(x[i], 0)` (in place by default).
 *
 * @example
 * ```ts
 * relu(new Float32Array([-1, 2])); // [0, 2]
 * ```
 */
export function relu<A extends FloatArray>(x: FloatArray, out: A = x as A): A {
  for (let i = 0; i < x.length; i++) out[i] = x[i] < 0 ? 0 : x[i];
  return out;
}

/**
 * `a[i] += s * b[i]` in place (`s = 1`: the residual add).
 *
 * @example
 * ```ts
 * axpy(new Float64Array([1]), new Float64Array([2]), 3); // [7]
 * ```
 */
export function axpy<A extends FloatArray>(a: A, b: FloatArray, s = 1): A {
  for (let i = 0; i < a.length; i++) a[i] += s * b[i];
  return a;
}
