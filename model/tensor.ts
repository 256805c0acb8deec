/**
 * Tensors as the checkpoint readers hand them out: {@linkcode shapeSize},
 * {@linkcode memoryTensor} (bytes already in memory) and {@linkcode renameTensor} (a tensor
 * under another name, sharing its reader). Element types and their conversions are in
 * `dtype.ts`, file formats in `safetensors.ts` and `torch_bin.ts`.
 *
 * @module
 */
import { DTYPE_SIZES } from "./dtype.ts";
import type { DType, Tensor } from "./types.ts";

/**
 * Product of a shape, or `undefined` when it is not a safe integer.
 *
 * @example
 * ```ts
 * import { elementCount } from "./tensor.ts";
 * console.log(elementCount([2, 3]), elementCount([2 ** 40, 2 ** 40])); // 6 undefined
 * ```
 */
export function elementCount(shape: readonly number[]): number | undefined {
  let n = 1;
  for (const d of shape) {
    n *= d;
    if (!Number.isSafeInteger(n)) return undefined;
  }
  return n;
}

/**
 * Number of elements of a shape (1 for a scalar `[]`).
 *
 * @example
 * ```ts
 * import { shapeSize } from "./tensor.ts";
 * console.log(shapeSize([2, 3])); // 6
 * ```
 */
export function shapeSize(shape: readonly number[]): number {
  const n = elementCount(shape);
  if (n === undefined) throw new RangeError(`shape [${shape.join(", ")}] is too large`);
  return n;
}

/**
 * A tensor whose bytes are already in memory (tests, synthesised LayerNorm weights).
 * `bytes()` returns a fresh copy each time, aligned at offset 0.
 *
 * @throws {RangeError} when `data` has the wrong length for `shape` and `dtype`.
 *
 * @example
 * ```ts
 * import { memoryTensor } from "./tensor.ts";
 * const t = memoryTensor("b", "F32", [2], new Uint8Array(8));
 * console.log(t.bytes().byteLength); // 8
 * ```
 */
export function memoryTensor(
  name: string,
  dtype: DType,
  shape: readonly number[],
  data: Uint8Array,
): Tensor {
  const expected = shapeSize(shape) * DTYPE_SIZES[dtype];
  if (data.byteLength !== expected) {
    throw new RangeError(
      `tensor ${name}: ${data.byteLength} bytes given, shape [${shape}] ${dtype} needs ${expected}`,
    );
  }
  const copy = data.slice();
  const frozenShape = Object.freeze([...shape]);
  return { name, dtype, shape: frozenShape, bytes: () => copy.slice() };
}

/**
 * Gives a file tensor another name, sharing its reader (used to normalise names).
 *
 * @example
 * ```ts
 * import { memoryTensor, renameTensor } from "./tensor.ts";
 * const t = renameTensor(memoryTensor("model.x", "F32", [1], new Uint8Array(4)), "x");
 * console.log(t.name); // "x"
 * ```
 */
export function renameTensor<T extends Tensor>(t: T, name: string): T {
  const out = Object.create(Object.getPrototypeOf(t));
  Object.defineProperties(out, Object.getOwnPropertyDescriptors(t));
  Object.defineProperty(out, "name", { value: name, enumerable: true });
  return out as T;
}
