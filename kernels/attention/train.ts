/**
 * Dispatch of the training attention kernels: causal attention over packed rows keeping
 * the probabilities (`train_forward.wgsl`) and its backward in two passes (`dq` and the
 * score gradients in `train_backward_q.wgsl`, then `dk`, `dv` in `train_backward_kv.wgsl`).
 * Their CPU reference is `reference.ts` beside this file (`attentionForward`,
 * `attentionBackward`).
 *
 * @example
 * ```ts
 * import { ATTENTION_TRAIN_WGSL } from "./train.ts";
 * console.log(Object.keys(ATTENTION_TRAIN_WGSL).length); // 3
 * ```
 *
 * @module
 */
import { grid, type KernelSet } from "../declare.ts";
import type { Binding, Recorder } from "../encode.ts";
import forwardCode from "./train_forward.wgsl" with { type: "text" };
import backwardQCode from "./train_backward_q.wgsl" with { type: "text" };
import backwardKvCode from "./train_backward_kv.wgsl" with { type: "text" };

/**
 * The WGSL of this folder's training kernels, by kernel name.
 *
 * @example
 * ```ts
 * console.log("train_attention_forward" in ATTENTION_TRAIN_WGSL); // true
 * ```
 */
export const ATTENTION_TRAIN_WGSL: Record<string, string> = {
  train_attention_forward: forwardCode,
  train_attention_backward_q: backwardQCode,
  train_attention_backward_kv: backwardKvCode,
};

/** Shapes shared by the attention dispatches. */
export interface AttentionShape {
  /** Packed query rows. */
  m: number;
  /** Model width. */
  d: number;
  /** Heads. */
  heads: number;
  /** Longest row of keys a query sees (the probabilities' last axis). */
  tmax: number;
}

/**
 * Arguments of {@linkcode encodeAttentionForward}: `q, k, v[M, D]`, `start[M]` (u32; query
 * `i` attends to keys `start[i] .. i`); writes `probs[M, H, tmax]` and `ctx[M, D]`.
 */
export interface AttentionForwardArgs extends AttentionShape {
  /** `[M, D]` queries (already scaled). */
  q: Binding;
  /** `[M, D]` keys. */
  k: Binding;
  /** `[M, D]` values. */
  v: Binding;
  /** `[M]` first key of each query's row. */
  start: Binding;
  /** `[M, H, tmax]` probabilities (written). */
  probs: Binding;
  /** `[M, D]` context (written). */
  ctx: Binding;
}

/**
 * Records the training attention forward (one invocation per query and head).
 *
 * @example
 * ```ts
 * import type { KernelSet } from "../declare.ts";
 * import type { Recorder } from "../encode.ts";
 * // the kernel set, a recording pass and the device buffers and sizes of the dispatch
 * declare const set: KernelSet, rec: Recorder;
 * declare const q: AttentionForwardArgs["q"], k: AttentionForwardArgs["k"],
 *   v: AttentionForwardArgs["v"], start: AttentionForwardArgs["start"],
 *   probs: AttentionForwardArgs["probs"], ctx: AttentionForwardArgs["ctx"],
 *   m: AttentionForwardArgs["m"], d: AttentionForwardArgs["d"],
 *   heads: AttentionForwardArgs["heads"], tmax: AttentionForwardArgs["tmax"];
 * encodeAttentionForward(set, rec, { q, k, v, start, probs, ctx, m, d, heads, tmax });
 * ```
 */
export function encodeAttentionForward(
  set: KernelSet,
  rec: Recorder,
  a: AttentionForwardArgs,
): void {
  if (a.m === 0) return;
  set.get("train_attention_forward").dispatch(
    rec,
    { ...a },
    [Math.ceil((a.m * a.heads) / 64)],
    "train_attention",
  );
}

/**
 * Arguments of {@linkcode encodeAttentionBackward}: from `dctx[M, D]` writes
 * `ds[M, H, tmax]` and `dq[M, D]` (times `scale`), then `dk`, `dv[M, D]`.
 */
export interface AttentionBackwardArgs extends AttentionShape {
  /** `[M, D]` context gradient. */
  dctx: Binding;
  /** `[M, D]` queries of the forward. */
  q: Binding;
  /** `[M, D]` keys. */
  k: Binding;
  /** `[M, D]` values. */
  v: Binding;
  /** `[M, H, tmax]` probabilities of the forward. */
  probs: Binding;
  /** `[M]` first key of each query's row. */
  start: Binding;
  /** `[M]` (u32) last packed index of each query's row. */
  rowEnd: Binding;
  /** `[M, H, tmax]` score gradients (scratch, written). */
  ds: Binding;
  /** `[M, D]` query gradient (written). */
  dq: Binding;
  /** `[M, D]` key gradient (written). */
  dk: Binding;
  /** `[M, D]` value gradient (written). */
  dv: Binding;
  /** Factor on `dq` (the query scale `headDim ** -0.5`). */
  scale: number;
}

/**
 * Records the attention backward (two dispatches).
 *
 * @example
 * ```ts
 * import type { KernelSet } from "../declare.ts";
 * import type { Recorder } from "../encode.ts";
 * // the kernel set, a recording pass and the device buffers and sizes of the dispatch
 * declare const set: KernelSet, rec: Recorder;
 * declare const dctx: AttentionBackwardArgs["dctx"], q: AttentionBackwardArgs["q"],
 *   k: AttentionBackwardArgs["k"], v: AttentionBackwardArgs["v"],
 *   probs: AttentionBackwardArgs["probs"], start: AttentionBackwardArgs["start"],
 *   rowEnd: AttentionBackwardArgs["rowEnd"], ds: AttentionBackwardArgs["ds"],
 *   dq: AttentionBackwardArgs["dq"], dk: AttentionBackwardArgs["dk"],
 *   dv: AttentionBackwardArgs["dv"], m: AttentionBackwardArgs["m"], d: AttentionBackwardArgs["d"],
 *   heads: AttentionBackwardArgs["heads"], tmax: AttentionBackwardArgs["tmax"],
 *   scale: AttentionBackwardArgs["scale"];
 * encodeAttentionBackward(set, rec, {
 *   dctx, q, k, v, probs, start, rowEnd, ds, dq, dk, dv, m, d, heads, tmax, scale,
 * });
 * ```
 */
export function encodeAttentionBackward(
  set: KernelSet,
  rec: Recorder,
  a: AttentionBackwardArgs,
): void {
  if (a.m === 0) return;
  set.get("train_attention_backward_q").dispatch(
    rec,
    { ...a },
    [Math.ceil((a.m * a.heads) / 64)],
    "train_attention",
  );
  const g = grid(a.m * a.d, 64);
  set.get("train_attention_backward_kv").dispatch(
    rec,
    { ...a, row_end: a.rowEnd, stride: g.stride },
    g.groups,
    "train_attention",
  );
}
