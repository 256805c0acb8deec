/**
 * Dispatch of the optimizer kernels: the global gradient norm in two stages without
 * atomics (`sumsq.wgsl`, `norm_finalize.wgsl`, which also computes the clipping factor)
 * and the AdamW update (`adamw.wgsl`). Their CPU reference is `train/optim.ts`
 * (`gradNorm`, `clipCoefficient`, `adamWStep`).
 *
 * @example
 * ```ts
 * import { ADAMW_TRAIN_WGSL } from "./train.ts";
 * console.log(Object.keys(ADAMW_TRAIN_WGSL)); // ["train_sumsq", "train_norm_finalize", "train_adamw"]
 * ```
 *
 * @module
 */
import { grid, type KernelSet, rowGroups } from "../declare.ts";
import type { Binding, Recorder } from "../encode.ts";
import sumsqCode from "./sumsq.wgsl" with { type: "text" };
import normCode from "./norm_finalize.wgsl" with { type: "text" };
import adamwCode from "./adamw.wgsl" with { type: "text" };

/**
 * The WGSL of this folder's kernels, by kernel name.
 *
 * @example
 * ```ts
 * console.log(ADAMW_TRAIN_WGSL.train_adamw.includes("step_size")); // true
 * ```
 */
export const ADAMW_TRAIN_WGSL: Record<string, string> = {
  train_sumsq: sumsqCode,
  train_norm_finalize: normCode,
  train_adamw: adamwCode,
};

/** Arguments of {@linkcode encodeSumSquares}: partial sums of squares of `x[n]`. */
export interface SumSquaresArgs {
  /** The tensor. */
  x: Binding;
  /** Partials, written at `offset ..`. */
  partials: Binding;
  /** Elements. */
  n: number;
  /** First partial written. */
  offset: number;
}

/**
 * Records the first stage of the norm; returns how many partials it writes.
 *
 * @example
 * ```ts
 * import type { KernelSet } from "../declare.ts";
 * import type { Recorder } from "../encode.ts";
 * // the kernel set, a recording pass and the device buffers and sizes of the dispatch
 * declare const set: KernelSet, rec: Recorder;
 * declare const x: SumSquaresArgs["x"], partials: SumSquaresArgs["partials"],
 *   n: SumSquaresArgs["n"], offset: SumSquaresArgs["offset"];
 * const count = encodeSumSquares(set, rec, { x, partials, n, offset });
 * ```
 */
export function encodeSumSquares(set: KernelSet, rec: Recorder, a: SumSquaresArgs): number {
  const groups = Math.ceil(a.n / 2048);
  if (groups === 0) return 0;
  set.get("train_sumsq").dispatch(
    rec,
    { x: a.x, partials: a.partials, n: a.n, out_offset: a.offset },
    rowGroups(groups),
    "train_optimizer",
  );
  return groups;
}

/**
 * Arguments of {@linkcode encodeNormFinalize}: `out[0] = sqrt(Σ partials[0 .. count))`,
 * `out[1]` = the clip factor for `maxNorm`.
 */
export interface NormFinalizeArgs {
  /** The partials. */
  partials: Binding;
  /** `[2]` norm and clip factor (written). */
  out: Binding;
  /** Partials to add. */
  count: number;
  /** Clipping threshold (`<= 0`: no clipping). */
  maxNorm: number;
}

/**
 * Records the second stage of the norm.
 *
 * @example
 * ```ts
 * import type { KernelSet } from "../declare.ts";
 * import type { Recorder } from "../encode.ts";
 * // the kernel set, a recording pass and the device buffers and sizes of the dispatch
 * declare const set: KernelSet, rec: Recorder;
 * declare const partials: NormFinalizeArgs["partials"], out: NormFinalizeArgs["out"],
 *   count: NormFinalizeArgs["count"];
 * encodeNormFinalize(set, rec, { partials, out, count, maxNorm: 1 });
 * ```
 */
export function encodeNormFinalize(set: KernelSet, rec: Recorder, a: NormFinalizeArgs): void {
  set.get("train_norm_finalize").dispatch(
    rec,
    { partials: a.partials, out: a.out, count: a.count, max_norm: a.maxNorm },
    [1],
    "train_optimizer",
  );
}

/** AdamW's per-step hyper-parameters (see `adamw.wgsl`). */
export interface AdamWHyper {
  /** `1 - lr * weight_decay`, or 1 without decay. */
  decay: number;
  /** First-moment decay. */
  beta1: number;
  /** Second-moment decay. */
  beta2: number;
  /** `lr / (1 - beta1^t)`. */
  stepSize: number;
  /** `sqrt(1 - beta2^t)`. */
  bc2Sqrt: number;
  /** Denominator epsilon. */
  eps: number;
}

/** Arguments of {@linkcode encodeAdamW}: one AdamW update of a tensor of `n` elements. */
export interface AdamWArgs {
  /** The gradient. */
  grad: Binding;
  /** `[2]` norm and clip factor (from {@linkcode encodeNormFinalize}). */
  norm: Binding;
  /** The parameter, updated in place. */
  param: Binding;
  /** First moment, updated in place. */
  m: Binding;
  /** Second moment, updated in place. */
  v: Binding;
  /** Elements. */
  n: number;
  /** Hyper-parameters of this step. */
  hyper: AdamWHyper;
}

/**
 * Records one AdamW update.
 *
 * @example
 * ```ts
 * import type { KernelSet } from "../declare.ts";
 * import type { Recorder } from "../encode.ts";
 * // the kernel set, a recording pass and the device buffers and sizes of the dispatch
 * declare const set: KernelSet, rec: Recorder;
 * declare const grad: AdamWArgs["grad"], norm: AdamWArgs["norm"], param: AdamWArgs["param"],
 *   m: AdamWArgs["m"], v: AdamWArgs["v"], n: AdamWArgs["n"], hyper: AdamWArgs["hyper"];
 * encodeAdamW(set, rec, { grad, norm, param, m, v, n, hyper });
 * ```
 */
export function encodeAdamW(set: KernelSet, rec: Recorder, a: AdamWArgs): void {
  if (a.n === 0) return;
  const g = grid(a.n, 64);
  const h = a.hyper;
  set.get("train_adamw").dispatch(
    rec,
    {
      grad: a.grad,
      norm: a.norm,
      param: a.param,
      m: a.m,
      v: a.v,
      n: a.n,
      stride: g.stride,
      decay: h.decay,
      beta1: h.beta1,
      beta2: h.beta2,
      step_size: h.stepSize,
      bc2_sqrt: h.bc2Sqrt,
      eps: h.eps,
    },
    g.groups,
    "train_optimizer",
  );
}
