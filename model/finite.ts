/**
 * Non-finite weights (NaN, ±Infinity) are found once, when a checkpoint is loaded, and
 * refused with an error naming the tensor, the file, the element and its value: one NaN in
 * a weight otherwise makes the CPU backend emit token 0 and the WebGPU backend something
 * else, silently. The scan reads the stored bits (no conversion): an element is non-finite
 * when all its exponent bits are set (f32 `0x7f800000`, f16 `0x7c00`, bf16 `0x7f80`).
 * Cost, measured (`tests/finite_test.ts` prints it): a few ms per MB of weights.
 *
 * @example
 * ```ts
 * import { checkFiniteWeights } from "./finite.ts";
 * import { loadWeightsSync } from "./checkpoint.ts";
 * checkFiniteWeights(loadWeightsSync("bundled/models/tiny-opt-e2e"));
 * ```
 * @module
 */
import { allTensors } from "./checkpoint.ts";
import { CheckpointError } from "./errors.ts";
import type { FileTensor } from "./safetensors.ts";
import type { OptWeights, Tensor } from "./types.ts";
import { bytesToFloat32 } from "./dtype.ts";

/**
 * The index of the first non-finite element of a tensor's stored bytes, or -1.
 *
 * @param dtype the element type
 * @param bytes the stored little-endian bytes
 * @returns the element index, or -1 when every element is finite
 * @example
 * ```ts
 * import { firstNonFinite } from "./finite.ts";
 * const b = new Uint8Array(new Float32Array([1, NaN]).buffer);
 * console.log(firstNonFinite("F32", b)); // 1
 * ```
 */
export function firstNonFinite(dtype: "F16" | "BF16" | "F32", bytes: Uint8Array): number {
  const aligned = bytes.byteOffset % 4 === 0 ? bytes : bytes.slice();
  if (dtype === "F32") {
    const u = new Uint32Array(aligned.buffer, aligned.byteOffset, aligned.byteLength >>> 2);
    for (let i = 0; i < u.length; i++) if ((u[i] & 0x7f800000) === 0x7f800000) return i;
    return -1;
  }
  const mask = dtype === "F16" ? 0x7c00 : 0x7f80;
  const u = new Uint16Array(aligned.buffer, aligned.byteOffset, aligned.byteLength >>> 1);
  for (let i = 0; i < u.length; i++) if ((u[i] & mask) === mask) return i;
  return -1;
}

/**
 * Checks every stored tensor of a checkpoint for NaN and ±Infinity (one pass over the
 * bytes, see the module documentation).
 *
 * @param weights the loaded weights (lazy tensors)
 * @throws {CheckpointError} `format`, naming the tensor, file, element and value
 * @example
 * ```ts
 * import { checkFiniteWeights } from "./finite.ts";
 * import { loadWeightsSync } from "./checkpoint.ts";
 * checkFiniteWeights(loadWeightsSync("bundled/models/tiny-opt-e2e"));
 * ```
 */
export function checkFiniteWeights(weights: OptWeights): void {
  for (const t of allTensors(weights)) checkFiniteTensor(t);
}

/**
 * Checks one tensor for NaN and ±Infinity.
 *
 * @param t the tensor
 * @throws {CheckpointError} naming the tensor, file, element and value
 * @example
 * ```ts
 * import { checkFiniteTensor } from "./finite.ts";
 * import { memoryTensor } from "./tensor.ts";
 * checkFiniteTensor(memoryTensor("x", "F32", [2], new Uint8Array(8)));
 * ```
 */
export function checkFiniteTensor(t: Tensor): void {
  const bytes = t.bytes();
  const i = firstNonFinite(t.dtype, bytes);
  if (i < 0) return;
  const size = t.dtype === "F32" ? 4 : 2;
  const value = bytesToFloat32(bytes.subarray(i * size, (i + 1) * size), t.dtype)[0];
  const file = (t as Partial<FileTensor>).file;
  const stored = (t as Partial<FileTensor>).storedName ?? t.name;
  const at = t.shape.length > 1 ? ` [${unravel(i, t.shape).join(", ")}]` : ` [${i}]`;
  throw new CheckpointError(
    `tensor ${stored}${file ? ` in ${file}` : ""} holds ${value} at element${at}: weights ` +
      `must be finite (a NaN or Infinity makes every later activation garbage)`,
    { file: file ?? t.name, kind: "format", tensor: stored },
  );
}

function unravel(i: number, shape: readonly number[]): number[] {
  const out: number[] = [];
  for (let k = shape.length - 1; k >= 0; k--) {
    out.unshift(i % shape[k]);
    i = Math.floor(i / shape[k]);
  }
  return out;
}
