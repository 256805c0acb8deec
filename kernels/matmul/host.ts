/**
 * Host-side preparation of linear weights: checks a checkpoint {@linkcode Tensor} against the
 * shape `[N, K]` it must have, and turns its bytes into the arrays the variants upload
 * (F16 stays raw halves, F32 stays f32, BF16 becomes f32 exactly).
 *
 * @module
 */
import type { Tensor } from "../../model/types.ts";

/** A linear map `y = x W^T + b` in host memory, weights `W[N, K]` row-major. */
export interface HostLinear {
  /** Output width `N` (rows of `W`). */
  readonly n: number;
  /** Input width `K` (columns of `W`). */
  readonly k: number;
  /** Name used in error messages and GPU labels. */
  readonly label: string;
  /** `W` as raw IEEE halves `[N * K]` when the checkpoint stored F16, else `null`. */
  readonly f16: Uint16Array<ArrayBuffer> | null;
  /** `W` as f32 `[N * K]` when the checkpoint stored F32 or BF16, else `null`. */
  readonly f32: Float32Array<ArrayBuffer> | null;
  /** `b[N]` as f32, or `null` when there is no bias. */
  readonly bias: Float32Array<ArrayBuffer> | null;
}

function aligned(bytes: Uint8Array, align: number): Uint8Array<ArrayBuffer> {
  return bytes.byteOffset % align === 0 && bytes.buffer instanceof ArrayBuffer
    ? bytes as Uint8Array<ArrayBuffer>
    : bytes.slice();
}

/** Reads a tensor of any supported dtype as f32 (F16 and BF16 convert exactly). */
function toF32(t: Tensor, count: number): Float32Array<ArrayBuffer> {
  const bytes = t.bytes();
  const size = t.dtype === "F32" ? 4 : 2;
  if (bytes.byteLength !== count * size) {
    throw new Error(
      `tensor ${t.name}: ${t.dtype} ${JSON.stringify(t.shape)} needs ${
        count * size
      } bytes, got ${bytes.byteLength}`,
    );
  }
  if (t.dtype === "F32") {
    const b = aligned(bytes, 4);
    return new Float32Array(b.buffer, b.byteOffset, count).slice();
  }
  const h = aligned(bytes, 2);
  const halves = new Uint16Array(h.buffer, h.byteOffset, count);
  const out = new Float32Array(count);
  if (t.dtype === "BF16") {
    const u = new Uint32Array(out.buffer);
    for (let i = 0; i < count; i++) u[i] = halves[i] << 16;
  } else {
    for (let i = 0; i < count; i++) out[i] = halfToFloat(halves[i]);
  }
  return out;
}

/**
 * Converts one IEEE binary16 bit pattern to a number (exact).
 *
 * @example
 * ```ts
 * halfToFloat(0x3c00); // 1
 * ```
 */
export function halfToFloat(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const f = h & 0x3ff;
  if (e === 0) return s * f * 2 ** -24;
  if (e === 31) return f ? NaN : s * Infinity;
  return s * (1 + f / 1024) * 2 ** (e - 15);
}

/**
 * Checks `weight [N, K]` (and `bias [N]`) and converts them for upload.
 *
 * @example
 * ```ts
 * const w = { name: "w", dtype: "F32" as const, shape: [1, 2], bytes: () => new Uint8Array(8) };
 * const h = hostLinear(w, undefined, "w");
 * // h.n === 1, h.k === 2, h.f32!.length === 2
 * ```
 */
export function hostLinear(weight: Tensor, bias: Tensor | undefined, label: string): HostLinear {
  const shape = weight.shape;
  if (shape.length !== 2 || !shape.every((d) => Number.isInteger(d) && d >= 1)) {
    throw new Error(
      `linear ${label}: weight ${weight.name} must have shape [N, K] with N, K >= 1, got ${
        JSON.stringify(shape)
      }`,
    );
  }
  const [n, k] = shape;
  if (!["F16", "F32", "BF16"].includes(weight.dtype)) {
    throw new Error(`linear ${label}: weight ${weight.name} has unsupported dtype ${weight.dtype}`);
  }
  let b: Float32Array<ArrayBuffer> | null = null;
  if (bias) {
    if (bias.shape.length !== 1 || bias.shape[0] !== n) {
      throw new Error(
        `linear ${label}: bias ${bias.name} must have shape [${n}] to match weight ${weight.name} ${
          JSON.stringify(shape)
        }, got ${JSON.stringify(bias.shape)}`,
      );
    }
    b = toF32(bias, n);
  }
  if (weight.dtype === "F16") {
    const bytes = weight.bytes();
    if (bytes.byteLength !== n * k * 2) {
      throw new Error(
        `tensor ${weight.name}: F16 ${JSON.stringify(shape)} needs ${
          n * k * 2
        } bytes, got ${bytes.byteLength}`,
      );
    }
    const h = aligned(bytes, 2);
    return { n, k, label, f16: new Uint16Array(h.buffer, h.byteOffset, n * k), f32: null, bias: b };
  }
  return { n, k, label, f16: null, f32: toF32(weight, n * k), bias: b };
}

/** A contiguous range of output columns `[n0, n0 + n)` handled by one weight part. */
export interface Part {
  /** First output column. */
  readonly n0: number;
  /** Number of output columns. */
  readonly n: number;
}

/**
 * Splits `n` output columns into parts of at most `maxCols` columns (a multiple of `align`
 * unless it is the last part).
 *
 * @example
 * ```ts
 * splitColumns(10, 4, 1); // [{n0: 0, n: 4}, {n0: 4, n: 4}, {n0: 8, n: 2}]
 * ```
 */
export function splitColumns(n: number, maxCols: number, align: number): Part[] {
  const step = Math.floor(maxCols / align) * align;
  if (step < 1) throw new Error(`cannot split ${n} columns into parts of ${maxCols}`);
  const parts: Part[] = [];
  for (let n0 = 0; n0 < n; n0 += step) parts.push({ n0, n: Math.min(step, n - n0) });
  return parts;
}
