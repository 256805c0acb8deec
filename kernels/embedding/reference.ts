/**
 * The CPU reference of the embedding lookups, generic over `Float32Array`/`Float64Array`:
 * {@linkcode gatherRows} (token and position rows; also how the training reference packs
 * the active columns of a layer), {@linkcode scatterRows} (its inverse, which writes rows
 * back) and OPT's {@linkcode positionIds}.
 *
 * @example
 * ```ts
 * import { gatherRows } from "./reference.ts";
 * console.log(gatherRows(new Float32Array([0, 0, 5, 6]), 2, [1])); // [5, 6]
 * ```
 *
 * @module
 */
import { allocLike, type FloatArray } from "../float.ts";

/**
 * Gathers rows of `table[rows, D]`: `out[i] = table[ids[i]]`.
 *
 * @example
 * ```ts
 * gatherRows(new Float32Array([0, 0, 5, 6]), 2, [1]); // [5, 6]
 * ```
 */
export function gatherRows<A extends FloatArray>(
  table: A,
  d: number,
  ids: ArrayLike<number>,
  out: A = allocLike(table, ids.length * d),
): A {
  for (let i = 0; i < ids.length; i++) {
    out.set(table.subarray(ids[i] * d, ids[i] * d + d), i * d);
  }
  return out;
}

/**
 * Writes row `i` of `rows[n, D]` to row `ids[i]` of `dst` (the inverse of
 * {@linkcode gatherRows}).
 *
 * @example
 * ```ts
 * const dst = new Float64Array(3);
 * scatterRows(new Float64Array([5]), 1, Int32Array.of(1), dst); // dst = [0, 5, 0]
 * ```
 */
export function scatterRows(
  rows: FloatArray,
  d: number,
  ids: ArrayLike<number>,
  dst: FloatArray,
): void {
  for (let i = 0; i < ids.length; i++) {
    dst.set(rows.subarray(i * d, i * d + d), ids[i] * d);
  }
}

/**
 * OPT position ids from an attention mask (one row): `cumsum(mask) * mask - 1`, so padding
 * gets `-1` and the first real token `0`. Add OPT's offset of 2 before the table lookup.
 *
 * @example
 * ```ts
 * positionIds([0, 0, 1, 1]); // [-1, -1, 0, 1]
 * ```
 */
export function positionIds(mask: ArrayLike<number>): Int32Array {
  const out = new Int32Array(mask.length);
  let s = 0;
  for (let i = 0; i < mask.length; i++) {
    s += mask[i];
    out[i] = s * mask[i] - 1;
  }
  return out;
}
