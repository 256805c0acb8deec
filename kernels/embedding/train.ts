/**
 * Dispatch of the training embedding kernels: token and position rows
 * (`train_forward.wgsl`), their gradients as segmented row sums without float atomics
 * (`train_segment_sum.wgsl`, grouped on the host by {@linkcode segments}), and the row
 * gather and scatter that pack a layer's active columns (`train_gather_rows.wgsl`,
 * `train_scatter_rows.wgsl`). Their CPU reference is `reference.ts` beside this file
 * (`gatherRows`, `scatterRows`).
 *
 * @example
 * ```ts
 * import { segments } from "./train.ts";
 * console.log(segments([7, 3, 7]).ids); // Uint32Array [3, 7]
 * ```
 *
 * @module
 */
import { grid, type KernelSet } from "../declare.ts";
import type { Binding, Recorder } from "../encode.ts";
import forwardCode from "./train_forward.wgsl" with { type: "text" };
import segmentSumCode from "./train_segment_sum.wgsl" with { type: "text" };
import gatherCode from "./train_gather_rows.wgsl" with { type: "text" };
import scatterCode from "./train_scatter_rows.wgsl" with { type: "text" };

/**
 * The WGSL of this folder's training kernels, by kernel name.
 *
 * @example
 * ```ts
 * console.log(Object.keys(EMBEDDING_TRAIN_WGSL).length); // 4
 * ```
 */
export const EMBEDDING_TRAIN_WGSL: Record<string, string> = {
  train_embed_forward: forwardCode,
  train_segment_sum: segmentSumCode,
  train_gather_rows: gatherCode,
  train_scatter_rows: scatterCode,
};

/** Arguments of {@linkcode encodeGatherRows}: `out[i, :] = src[idx[i], :]`. */
export interface GatherRowsArgs {
  /** Source rows. */
  src: Binding;
  /** `[n]` (u32) row indices. */
  idx: Binding;
  /** `[n, width]` (written). */
  out: Binding;
  /** Rows gathered. */
  n: number;
  /** Row width. */
  width: number;
}

/**
 * Records a row gather.
 *
 * @example
 * ```ts
 * import type { KernelSet } from "../declare.ts";
 * import type { Recorder } from "../encode.ts";
 * // the kernel set, a recording pass and the device buffers and sizes of the dispatch
 * declare const set: KernelSet, rec: Recorder;
 * declare const src: GatherRowsArgs["src"], idx: GatherRowsArgs["idx"],
 *   out: GatherRowsArgs["out"], n: GatherRowsArgs["n"], width: GatherRowsArgs["width"];
 * encodeGatherRows(set, rec, { src, idx, out, n, width });
 * ```
 */
export function encodeGatherRows(set: KernelSet, rec: Recorder, a: GatherRowsArgs): void {
  if (a.n === 0) return;
  const g = grid(a.n * a.width, 64);
  set.get("train_gather_rows").dispatch(rec, { ...a, stride: g.stride }, g.groups, "train_rows");
}

/** Arguments of {@linkcode encodeScatterRows}: `dst[idx[i], :] = rows[i, :]` (or `+=`). */
export interface ScatterRowsArgs {
  /** `[n, width]` rows. */
  rows: Binding;
  /** `[n]` (u32) distinct destination rows. */
  idx: Binding;
  /** Destination. */
  dst: Binding;
  /** Rows scattered. */
  n: number;
  /** Row width. */
  width: number;
  /** Add instead of overwrite. */
  accumulate?: boolean;
}

/**
 * Records a row scatter.
 *
 * @example
 * ```ts
 * import type { KernelSet } from "../declare.ts";
 * import type { Recorder } from "../encode.ts";
 * // the kernel set, a recording pass and the device buffers and sizes of the dispatch
 * declare const set: KernelSet, rec: Recorder;
 * declare const rows: ScatterRowsArgs["rows"], idx: ScatterRowsArgs["idx"],
 *   dst: ScatterRowsArgs["dst"], n: ScatterRowsArgs["n"], width: ScatterRowsArgs["width"];
 * encodeScatterRows(set, rec, { rows, idx, dst, n, width });
 * ```
 */
export function encodeScatterRows(set: KernelSet, rec: Recorder, a: ScatterRowsArgs): void {
  if (a.n === 0) return;
  const g = grid(a.n * a.width, 64);
  set.get("train_scatter_rows").dispatch(
    rec,
    { ...a, accumulate: a.accumulate ?? false, stride: g.stride },
    g.groups,
    "train_rows",
  );
}

/**
 * Arguments of {@linkcode encodeEmbedForward}: token rows `out[i, :] = table[tokens[i], :]`
 * (`mode: "tokens"`) or position rows added, `out[i, :] += table[positions[i] + 2, :]`
 * (`mode: "positions"`); zero rows on padding (`positions[i] < 0`).
 */
export interface EmbedForwardArgs {
  /** Which table. */
  mode: "tokens" | "positions";
  /** The table `[rows, width]`. */
  table: Binding;
  /** `[n]` (u32) token ids. */
  tokens: Binding;
  /** `[n]` (i32) position ids, negative on padding. */
  positions: Binding;
  /** `[n, width]` (written, or added for positions). */
  out: Binding;
  /** Positions. */
  n: number;
  /** Row width. */
  width: number;
}

/**
 * Records an embedding lookup.
 *
 * @example
 * ```ts
 * import type { KernelSet } from "../declare.ts";
 * import type { Recorder } from "../encode.ts";
 * // the kernel set, a recording pass and the device buffers and sizes of the dispatch
 * declare const set: KernelSet, rec: Recorder;
 * declare const table: EmbedForwardArgs["table"], tokens: EmbedForwardArgs["tokens"],
 *   positions: EmbedForwardArgs["positions"], out: EmbedForwardArgs["out"],
 *   n: EmbedForwardArgs["n"], width: EmbedForwardArgs["width"];
 * encodeEmbedForward(set, rec, { mode: "tokens", table, tokens, positions, out, n, width });
 * ```
 */
export function encodeEmbedForward(set: KernelSet, rec: Recorder, a: EmbedForwardArgs): void {
  if (a.n === 0) return;
  const g = grid(a.n * a.width, 64);
  set.get("train_embed_forward").dispatch(
    rec,
    { ...a, mode: a.mode === "tokens" ? 0 : 1, stride: g.stride },
    g.groups,
    "train_embedding",
  );
}

/**
 * Arguments of {@linkcode encodeSegmentSum}: `dst[ids[u], :] += Σ_{s in seg u}
 * src[order[s], :]` for `units` distinct rows (see {@linkcode segments}).
 */
export interface SegmentSumArgs {
  /** `[units]` (u32) destination rows. */
  ids: Binding;
  /** `[units + 1]` (u32) offsets into `order`. */
  seg: Binding;
  /** (u32) source rows, grouped by destination. */
  order: Binding;
  /** Source rows. */
  src: Binding;
  /** Destination (accumulated). */
  dst: Binding;
  /** Distinct destination rows. */
  units: number;
  /** Row width. */
  width: number;
}

/**
 * Records a segmented row sum.
 *
 * @example
 * ```ts
 * import type { KernelSet } from "../declare.ts";
 * import type { Recorder } from "../encode.ts";
 * // the kernel set, a recording pass and the device buffers and sizes of the dispatch
 * declare const set: KernelSet, rec: Recorder;
 * declare const ids: SegmentSumArgs["ids"], seg: SegmentSumArgs["seg"],
 *   order: SegmentSumArgs["order"], src: SegmentSumArgs["src"], dst: SegmentSumArgs["dst"],
 *   units: SegmentSumArgs["units"], width: SegmentSumArgs["width"];
 * encodeSegmentSum(set, rec, { ids, seg, order, src, dst, units, width });
 * ```
 */
export function encodeSegmentSum(set: KernelSet, rec: Recorder, a: SegmentSumArgs): void {
  if (a.units === 0) return;
  const g = grid(a.units * a.width, 64);
  set.get("train_segment_sum").dispatch(
    rec,
    { ...a, stride: g.stride },
    g.groups,
    "train_embedding",
  );
}

/**
 * Groups positions by row id for {@linkcode encodeSegmentSum}: `ids` (distinct, in
 * ascending order), `seg` (`ids.length + 1` offsets) and `order` (positions sorted by id,
 * ascending within an id).
 *
 * @example
 * ```ts
 * segments([7, 3, 7, -1, 3], (i) => i !== 3);
 * // ids [3, 7], seg [0, 2, 4], order [1, 4, 0, 2]
 * ```
 */
export function segments(
  rowOf: ArrayLike<number>,
  use: (i: number) => boolean = () => true,
): { ids: Uint32Array; seg: Uint32Array; order: Uint32Array } {
  const pos: number[] = [];
  for (let i = 0; i < rowOf.length; i++) if (use(i)) pos.push(i);
  pos.sort((a, b) => rowOf[a] - rowOf[b] || a - b);
  const ids: number[] = [], seg: number[] = [];
  pos.forEach((p, k) => {
    if (k === 0 || rowOf[p] !== rowOf[pos[k - 1]]) {
      ids.push(rowOf[p]);
      seg.push(k);
    }
  });
  seg.push(pos.length);
  return { ids: Uint32Array.from(ids), seg: Uint32Array.from(seg), order: Uint32Array.from(pos) };
}
