/**
 * The tensor element types this toolkit reads and writes (`F16`, `BF16`, `F32`) and exact
 * conversions between them: IEEE half and bfloat16 bits to and from f32 (round to nearest
 * even), little-endian tensor bytes to and from f32 arrays, and {@linkcode tensorToFloat32}.
 * The checkpoint readers (`safetensors.ts`, `torch_bin.ts`) and writers use these; nothing
 * here knows a file format.
 *
 * @example
 * ```ts
 * import { bytesToFloat32, float32ToBytes } from "./dtype.ts";
 * const bytes = float32ToBytes(new Float32Array([1, 0.5]), "F16");
 * console.log(bytesToFloat32(bytes, "F16")); // Float32Array [1, 0.5]
 * ```
 *
 * @module
 */
import type { DType, Tensor } from "./types.ts";

/** Bytes per element of each supported dtype. */
export const DTYPE_SIZES: Readonly<Record<DType, number>> = Object.freeze({
  F16: 2,
  BF16: 2,
  F32: 4,
});

/**
 * Whether a string is a dtype this toolkit reads.
 *
 * @example
 * ```ts
 * import { isDType } from "./dtype.ts";
 * console.log(isDType("F16"), isDType("I8")); // true false
 * ```
 */
export function isDType(s: unknown): s is DType {
  return s === "F16" || s === "BF16" || s === "F32";
}

if (new Uint8Array(new Uint16Array([1]).buffer)[0] !== 1) {
  throw new Error("model/dtype.ts assumes a little-endian host");
}

const f32Scratch = new Float32Array(1);
const u32Scratch = new Uint32Array(f32Scratch.buffer);
let f16Table: Float32Array | undefined;

function buildF16Table(): Float32Array {
  const table = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const sign = h & 0x8000 ? -1 : 1;
    const exp = (h >> 10) & 0x1f;
    const mant = h & 0x3ff;
    if (exp === 0) table[h] = sign * mant * 2 ** -24;
    else if (exp === 0x1f) table[h] = mant ? NaN : sign * Infinity;
    else table[h] = sign * (1 + mant / 1024) * 2 ** (exp - 15);
  }
  return table;
}

/**
 * Converts IEEE half-precision bits to a number (exact: every f16 is an f32).
 *
 * @example
 * ```ts
 * import { f16BitsToFloat32 } from "./dtype.ts";
 * console.log(f16BitsToFloat32(0x3c00)); // 1
 * ```
 */
export function f16BitsToFloat32(bits: number): number {
  f16Table ??= buildF16Table();
  return f16Table[bits & 0xffff];
}

/**
 * Widens `count` IEEE halves of `src` from `offset` into `out[0 .. count)` (exact), by table
 * lookup: the block conversion of the CPU backend, which keeps f16 weights as halves.
 *
 * @example
 * ```ts
 * import { halvesToFloat32 } from "./dtype.ts";
 * const out = new Float32Array(2);
 * halvesToFloat32(new Uint16Array([0x3c00, 0xc000, 0x3800]), 1, 2, out);
 * console.log(out); // Float32Array [-2, 0.5]
 * ```
 */
export function halvesToFloat32(
  src: Uint16Array,
  offset: number,
  count: number,
  out: Float32Array,
): Float32Array {
  const table = f16Table ??= buildF16Table();
  for (let i = 0; i < count; i++) out[i] = table[src[offset + i]];
  return out;
}

/**
 * Rounds a number to the nearest IEEE half (ties to even; overflow gives infinity, NaN
 * stays NaN) and returns its 16 bits.
 *
 * @example
 * ```ts
 * import { float32ToF16Bits } from "./dtype.ts";
 * console.log(float32ToF16Bits(1).toString(16)); // "3c00"
 * ```
 */
export function float32ToF16Bits(value: number): number {
  f32Scratch[0] = value;
  const b = u32Scratch[0];
  const sign = (b >>> 16) & 0x8000;
  const exp = (b >>> 23) & 0xff;
  const mant = b & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 | (mant >>> 13) : 0);
  const e = exp - 112; // rebias 127 -> 15
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    const full = mant | 0x800000;
    const shift = 14 - e;
    const half = 1 << (shift - 1);
    const rem = full & ((1 << shift) - 1);
    let m = full >>> shift;
    if (rem > half || (rem === half && (m & 1) === 1)) m++;
    return sign | m;
  }
  let h = sign | (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && (h & 1) === 1)) h++;
  return h;
}

/**
 * Converts bfloat16 bits to a number (exact).
 *
 * @example
 * ```ts
 * import { bf16BitsToFloat32 } from "./dtype.ts";
 * console.log(bf16BitsToFloat32(0x3f80)); // 1
 * ```
 */
export function bf16BitsToFloat32(bits: number): number {
  u32Scratch[0] = (bits & 0xffff) << 16;
  return f32Scratch[0];
}

/**
 * Rounds a number to the nearest bfloat16 (ties to even; NaN stays NaN) and returns its bits.
 *
 * @example
 * ```ts
 * import { float32ToBf16Bits } from "./dtype.ts";
 * console.log(float32ToBf16Bits(1).toString(16)); // "3f80"
 * ```
 */
export function float32ToBf16Bits(value: number): number {
  f32Scratch[0] = value;
  const b = u32Scratch[0];
  if ((b & 0x7f800000) === 0x7f800000 && (b & 0x7fffff) !== 0) return ((b >>> 16) | 0x40) & 0xffff;
  return ((b + 0x7fff + ((b >>> 16) & 1)) >>> 16) & 0xffff;
}

/**
 * Decodes little-endian tensor bytes of a dtype to f32 values (exact for all three).
 *
 * @example
 * ```ts
 * import { bytesToFloat32 } from "./dtype.ts";
 * console.log(bytesToFloat32(new Uint8Array([0x00, 0x3c]), "F16")); // Float32Array [1]
 * ```
 */
export function bytesToFloat32(bytes: Uint8Array, dtype: DType): Float32Array {
  const size = DTYPE_SIZES[dtype];
  if (bytes.byteLength % size !== 0) {
    throw new RangeError(`${bytes.byteLength} bytes is not a whole number of ${dtype} values`);
  }
  const n = bytes.byteLength / size;
  // Copy when unaligned so that typed views are legal.
  const src = bytes.byteOffset % size === 0 ? bytes : bytes.slice();
  if (dtype === "F32") {
    return new Float32Array(src.buffer.slice(src.byteOffset, src.byteOffset + n * 4));
  }
  const u16 = new Uint16Array(src.buffer, src.byteOffset, n);
  const out = new Float32Array(n);
  if (dtype === "F16") {
    const table = f16Table ??= buildF16Table();
    for (let i = 0; i < n; i++) out[i] = table[u16[i]];
  } else {
    const outBits = new Uint32Array(out.buffer);
    for (let i = 0; i < n; i++) outBits[i] = u16[i] << 16;
  }
  return out;
}

/**
 * Encodes f32 values as little-endian bytes of a dtype (F16/BF16 round to nearest even).
 *
 * @example
 * ```ts
 * import { float32ToBytes } from "./dtype.ts";
 * console.log(float32ToBytes(new Float32Array([1]), "BF16")); // Uint8Array [0x80, 0x3f]
 * ```
 */
export function float32ToBytes(values: ArrayLike<number>, dtype: DType): Uint8Array {
  const n = values.length;
  if (dtype === "F32") return new Uint8Array(Float32Array.from(values).buffer);
  const u16 = new Uint16Array(n);
  const f32 = values instanceof Float32Array ? values : Float32Array.from(values);
  const bits = new Uint32Array(f32.buffer, f32.byteOffset, n);
  if (dtype === "BF16") {
    for (let i = 0; i < n; i++) {
      const b = bits[i];
      u16[i] = (b & 0x7fffffff) > 0x7f800000
        ? (b >>> 16) | 0x40
        : (b + 0x7fff + ((b >>> 16) & 1)) >>> 16;
    }
  } else {
    for (let i = 0; i < n; i++) {
      const b = bits[i];
      const e = ((b >>> 23) & 0xff) - 112;
      if (e > 0 && e < 0x1f) {
        // Normal half: round the 13 dropped mantissa bits to nearest even.
        const h = ((b >>> 16) & 0x8000) | (e << 10) | ((b >>> 13) & 0x3ff);
        const rem = b & 0x1fff;
        u16[i] = rem > 0x1000 || (rem === 0x1000 && (h & 1) === 1) ? h + 1 : h;
      } else {
        u16[i] = float32ToF16Bits(f32[i]);
      }
    }
  }
  return new Uint8Array(u16.buffer);
}

/**
 * Reads a tensor and widens it to f32 (exact for F16, BF16 and F32).
 *
 * @example
 * ```ts
 * import { tensorToFloat32 } from "./dtype.ts";
 * import { memoryTensor } from "./tensor.ts";
 * const t = memoryTensor("x", "BF16", [1], new Uint8Array([0x80, 0x3f]));
 * console.log(tensorToFloat32(t)); // Float32Array [1]
 * ```
 */
export function tensorToFloat32(t: Tensor): Float32Array {
  return bytesToFloat32(t.bytes(), t.dtype);
}
