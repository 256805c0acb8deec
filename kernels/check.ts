/**
 * What the per-op adapter self-checks share (`kernels/<op>/check.ts`, run together by
 * `kernels/validate.ts` in one submission with one readback): seeded awkward inputs, the
 * comparison helpers, and the context a check records its work and expected answer into.
 *
 * @example
 * ```ts
 * import { maxDiff, values } from "./check.ts";
 * const a = values(5, 1);
 * console.log(maxDiff(a, a)); // 0
 * ```
 *
 * @module
 */
import { bytesToFloat32 } from "../model/safetensors.ts";
import type { DType, Tensor } from "../model/types.ts";
import { seededRandom } from "../model/random.ts";
import type { Recorder } from "./encode.ts";

/** A pending result: the buffer holding it, its size, and how to judge it. */
export interface Pending {
  /** Check name, `<family> <case>` (e.g. `matmul v4_storage_gemv f16 weights`). */
  name: string;
  /** Buffer holding the result from offset 0. */
  src: GPUBuffer;
  /** Result bytes. */
  bytes: number;
  /** Largest accepted error. */
  tolerance: number;
  /** The error of the read-back bytes (largest difference, or mismatches). */
  judge: (data: ArrayBuffer) => number;
}

/** What a self-check gets: buffer helpers, the recorder, and where to put its results. */
export interface SelfCheckContext {
  /** A storage buffer holding `data` (freed after validation). */
  buffer(data: Float32Array | Uint32Array | Uint8Array, label: string): GPUBuffer;
  /** A storage buffer of `n` NaNs (an output nothing wrote stays NaN and fails). */
  nan(n: number, label: string): GPUBuffer;
  /** Anything else to free after validation. */
  created: { destroy(): void }[];
  /** The recorder of the validation submission (a pass is open). */
  rec: Recorder;
  /** Results to read back and judge. */
  pending: Pending[];
}

/**
 * `n` values in `[-scale, scale)`, never zero.
 *
 * @example
 * ```ts
 * import { values } from "./check.ts";
 * console.log(values(3, 7).every((v) => v !== 0)); // true
 * ```
 */
export function values(n: number, seed: number, scale = 1): Float32Array {
  const r = seededRandom(seed);
  return Float32Array.from({ length: n }, () => ((2 * r() - 1) || 0.5) * scale);
}

/**
 * `n` f16 values (as bytes) in ±[0.25, 2), and the exact f32 values they hold.
 *
 * @example
 * ```ts
 * import { halves } from "./check.ts";
 * console.log(halves(4, 1).bytes.length); // 8
 * ```
 */
export function halves(n: number, seed: number): { bytes: Uint8Array; f32: Float32Array } {
  const r = seededRandom(seed);
  const h = Uint16Array.from(
    { length: n },
    () => ((r() < 0.5 ? 1 : 0) << 15) | ((13 + Math.floor(r() * 3)) << 10) | Math.floor(r() * 1024),
  );
  const bytes = new Uint8Array(h.buffer);
  return { bytes, f32: bytesToFloat32(bytes, "F16") };
}

/**
 * A tensor over `bytes`.
 *
 * @example
 * ```ts
 * import { tensor } from "./check.ts";
 * console.log(tensor("w", "F32", [1], new Uint8Array(4)).shape); // [1]
 * ```
 */
export function tensor(name: string, dtype: DType, shape: number[], bytes: Uint8Array): Tensor {
  return { name, dtype, shape, bytes: () => bytes };
}

/**
 * Largest absolute difference (NaN counts as infinite).
 *
 * @example
 * ```ts
 * import { maxDiff } from "./check.ts";
 * console.log(maxDiff([1, NaN], [1, 2])); // Infinity
 * ```
 */
export function maxDiff(got: ArrayLike<number>, want: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < want.length; i++) {
    const d = Math.abs(got[i] - want[i]);
    if (!(d <= m)) m = Number.isNaN(d) ? Infinity : d;
  }
  return m;
}

/**
 * Number of unequal elements.
 *
 * @example
 * ```ts
 * import { mismatches } from "./check.ts";
 * console.log(mismatches([1, 2], [1, 3])); // 1
 * ```
 */
export function mismatches(got: ArrayLike<number>, want: ArrayLike<number>): number {
  let n = 0;
  for (let i = 0; i < want.length; i++) if (got[i] !== want[i]) n++;
  return n;
}
