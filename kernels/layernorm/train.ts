/**
 * Dispatch of the training LayerNorm kernels: the forward that keeps `xhat` and `rstd`
 * (the inference kernel of `wgsl.ts` with `keep`), the input gradient (`train_backward.wgsl`) and the parameter
 * gradients (`train_param_grads.wgsl`). Their CPU reference is `reference.ts` beside this
 * file (`layerNormForward`, `layerNormBackward`).
 *
 * @example
 * ```ts
 * import { LAYERNORM_TRAIN_WGSL } from "./train.ts";
 * console.log(Object.keys(LAYERNORM_TRAIN_WGSL).length); // 3
 * ```
 *
 * @module
 */
import { type KernelSet, rowGroups } from "../declare.ts";
import type { Binding, Recorder } from "../encode.ts";
import { layerNormWgsl } from "./wgsl.ts";
import backwardCode from "./train_backward.wgsl" with { type: "text" };
import paramGradsCode from "./train_param_grads.wgsl" with { type: "text" };

/**
 * The WGSL of this folder's training kernels, by kernel name.
 *
 * @example
 * ```ts
 * console.log(LAYERNORM_TRAIN_WGSL.train_layernorm_forward.length > 0); // true
 * ```
 */
export const LAYERNORM_TRAIN_WGSL: Record<string, string> = {
  // the inference kernel's source, also writing xhat and rstd
  train_layernorm_forward: layerNormWgsl(64, true),
  train_layernorm_backward: backwardCode,
  train_ln_param_grads: paramGradsCode,
};

/** Arguments of {@linkcode encodeLayerNormForward}: LayerNorm of `x[M, D]`. */
export interface LayerNormForwardArgs {
  /** `[M, D]` input. */
  x: Binding;
  /** `[D]` scale. */
  w: Binding;
  /** `[D]` shift. */
  b: Binding;
  /** `[M, D]` output (written). */
  y: Binding;
  /** `[M, D]` normalised input (written). */
  xhat: Binding;
  /** `[M]` `1 / sqrt(var + eps)` (written). */
  rstd: Binding;
  /** Rows. */
  m: number;
  /** Width. */
  d: number;
  /** Epsilon (default 1e-5). */
  eps?: number;
}

/**
 * Records the training LayerNorm forward (one workgroup per row).
 *
 * @example
 * ```ts
 * import type { KernelSet } from "../declare.ts";
 * import type { Recorder } from "../encode.ts";
 * // the kernel set, a recording pass and the device buffers and sizes of the dispatch
 * declare const set: KernelSet, rec: Recorder;
 * declare const x: LayerNormForwardArgs["x"], w: LayerNormForwardArgs["w"],
 *   b: LayerNormForwardArgs["b"], y: LayerNormForwardArgs["y"],
 *   xhat: LayerNormForwardArgs["xhat"], rstd: LayerNormForwardArgs["rstd"],
 *   m: LayerNormForwardArgs["m"], d: LayerNormForwardArgs["d"];
 * encodeLayerNormForward(set, rec, { x, w, b, y, xhat, rstd, m, d });
 * ```
 */
export function encodeLayerNormForward(
  set: KernelSet,
  rec: Recorder,
  a: LayerNormForwardArgs,
): void {
  if (a.m === 0) return;
  set.get("train_layernorm_forward").dispatch(
    rec,
    { ...a, out: a.y, inRow: 0, outRow: 0, eps: a.eps ?? 1e-5 },
    rowGroups(a.m),
    "train_layernorm",
  );
}

/** Arguments of {@linkcode encodeLayerNormBackward}: the input gradient `dx[M, D]`. */
export interface LayerNormBackwardArgs {
  /** `[M, D]` output gradient. */
  dy: Binding;
  /** `[M, D]` from the forward. */
  xhat: Binding;
  /** `[M]` from the forward. */
  rstd: Binding;
  /** `[D]` scale. */
  w: Binding;
  /** `[M, D]` input gradient, written (or added with `accumulate`). */
  dx: Binding;
  /** Rows. */
  m: number;
  /** Width. */
  d: number;
  /** Add into `dx` instead of overwriting it. */
  accumulate: boolean;
}

/**
 * Records the LayerNorm input gradient (one workgroup per row).
 *
 * @example
 * ```ts
 * import type { KernelSet } from "../declare.ts";
 * import type { Recorder } from "../encode.ts";
 * // the kernel set, a recording pass and the device buffers and sizes of the dispatch
 * declare const set: KernelSet, rec: Recorder;
 * declare const dy: LayerNormBackwardArgs["dy"], xhat: LayerNormBackwardArgs["xhat"],
 *   rstd: LayerNormBackwardArgs["rstd"], w: LayerNormBackwardArgs["w"],
 *   dx: LayerNormBackwardArgs["dx"], m: LayerNormBackwardArgs["m"], d: LayerNormBackwardArgs["d"];
 * encodeLayerNormBackward(set, rec, { dy, xhat, rstd, w, dx, m, d, accumulate: false });
 * ```
 */
export function encodeLayerNormBackward(
  set: KernelSet,
  rec: Recorder,
  a: LayerNormBackwardArgs,
): void {
  if (a.m === 0) return;
  set.get("train_layernorm_backward").dispatch(rec, { ...a }, rowGroups(a.m), "train_layernorm");
}

/**
 * Arguments of {@linkcode encodeLnParamGrads}: `dw[D] += Σ dy·xhat`, `db[D] += Σ dy` over
 * `M` rows.
 */
export interface LnParamGradsArgs {
  /** `[M, D]` output gradient. */
  dy: Binding;
  /** `[M, D]` from the forward. */
  xhat: Binding;
  /** `[D]` scale gradient (accumulated). */
  dw: Binding;
  /** `[D]` shift gradient (accumulated). */
  db: Binding;
  /** Rows. */
  m: number;
  /** Width. */
  d: number;
}

/**
 * Records the LayerNorm parameter gradients.
 *
 * @example
 * ```ts
 * import type { KernelSet } from "../declare.ts";
 * import type { Recorder } from "../encode.ts";
 * // the kernel set, a recording pass and the device buffers and sizes of the dispatch
 * declare const set: KernelSet, rec: Recorder;
 * declare const dy: LnParamGradsArgs["dy"], xhat: LnParamGradsArgs["xhat"],
 *   dw: LnParamGradsArgs["dw"], db: LnParamGradsArgs["db"], m: LnParamGradsArgs["m"],
 *   d: LnParamGradsArgs["d"];
 * encodeLnParamGrads(set, rec, { dy, xhat, dw, db, m, d });
 * ```
 */
export function encodeLnParamGrads(set: KernelSet, rec: Recorder, a: LnParamGradsArgs): void {
  if (a.m === 0) return;
  set.get("train_ln_param_grads").dispatch(
    rec,
    { ...a },
    [Math.ceil(a.d / 64)],
    "train_layernorm",
  );
}
