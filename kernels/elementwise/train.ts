/**
 * Dispatch of the training elementwise kernels: `axpy.wgsl` (residual adds and gradient
 * accumulation) and `relu.wgsl` (forward, and the backward mask in place). Their CPU
 * reference is `reference.ts` beside this file (`axpy`, `relu`).
 *
 * @example
 * ```ts
 * import { ELEMENTWISE_TRAIN_WGSL } from "./train.ts";
 * console.log(Object.keys(ELEMENTWISE_TRAIN_WGSL)); // ["train_axpy", "train_relu"]
 * ```
 *
 * @module
 */
import { grid, type KernelSet } from "../declare.ts";
import type { Binding, Recorder } from "../encode.ts";
import axpyCode from "./axpy.wgsl" with { type: "text" };
import reluCode from "./relu.wgsl" with { type: "text" };

/**
 * The WGSL of this folder's training kernels, by kernel name.
 *
 * @example
 * ```ts
 * console.log(ELEMENTWISE_TRAIN_WGSL.train_relu.includes("max(")); // true
 * ```
 */
export const ELEMENTWISE_TRAIN_WGSL: Record<string, string> = {
  train_axpy: axpyCode,
  train_relu: reluCode,
};

/** Arguments of {@linkcode encodeAxpy}: `y[i] += alpha · x[i]` for `n` elements. */
export interface AxpyArgs {
  /** Added. */
  x: Binding;
  /** Accumulated in place. */
  y: Binding;
  /** Elements. */
  n: number;
  /** Factor (default 1). */
  alpha?: number;
}

/**
 * Records `y += alpha · x`.
 *
 * @example
 * ```ts
 * import type { KernelSet } from "../declare.ts";
 * import type { Recorder } from "../encode.ts";
 * // the kernel set, a recording pass and the device buffers and sizes of the dispatch
 * declare const set: KernelSet, rec: Recorder;
 * declare const x: AxpyArgs["x"], y: AxpyArgs["y"], n: AxpyArgs["n"];
 * encodeAxpy(set, rec, { x, y, n });
 * ```
 */
export function encodeAxpy(set: KernelSet, rec: Recorder, a: AxpyArgs): void {
  if (a.n === 0) return;
  const g = grid(a.n, 64);
  set.get("train_axpy").dispatch(
    rec,
    { ...a, alpha: a.alpha ?? 1, stride: g.stride },
    g.groups,
    "train_elementwise",
  );
}

/** Arguments of {@linkcode encodeRelu}: `out = max(u, 0)` for `n` elements. */
export interface ReluArgs {
  /** Input. */
  u: Binding;
  /** Output (written). */
  out: Binding;
  /** Elements. */
  n: number;
}

/**
 * Records the ReLU forward.
 *
 * @example
 * ```ts
 * import type { KernelSet } from "../declare.ts";
 * import type { Recorder } from "../encode.ts";
 * // the kernel set, a recording pass and the device buffers and sizes of the dispatch
 * declare const set: KernelSet, rec: Recorder;
 * declare const u: ReluArgs["u"], out: ReluArgs["out"], n: ReluArgs["n"];
 * encodeRelu(set, rec, { u, out, n });
 * ```
 */
export function encodeRelu(set: KernelSet, rec: Recorder, a: ReluArgs): void {
  if (a.n === 0) return;
  const g = grid(a.n, 64);
  set.get("train_relu").dispatch(
    rec,
    { ...a, stride: g.stride, mode: 0 },
    g.groups,
    "train_elementwise",
  );
}

/** Arguments of {@linkcode encodeReluBackward}: in place `dz = u > 0 ? dz : 0`. */
export interface ReluBackwardArgs {
  /** The forward's input. */
  u: Binding;
  /** The gradient, masked in place. */
  dz: Binding;
  /** Elements. */
  n: number;
}

/**
 * Records the ReLU backward mask.
 *
 * @example
 * ```ts
 * import type { KernelSet } from "../declare.ts";
 * import type { Recorder } from "../encode.ts";
 * // the kernel set, a recording pass and the device buffers and sizes of the dispatch
 * declare const set: KernelSet, rec: Recorder;
 * declare const u: ReluBackwardArgs["u"], dz: ReluBackwardArgs["dz"], n: ReluBackwardArgs["n"];
 * encodeReluBackward(set, rec, { u, dz, n });
 * ```
 */
export function encodeReluBackward(set: KernelSet, rec: Recorder, a: ReluBackwardArgs): void {
  if (a.n === 0) return;
  const g = grid(a.n, 64);
  set.get("train_relu").dispatch(
    rec,
    { u: a.u, out: a.dz, n: a.n, stride: g.stride, mode: 1 },
    g.groups,
    "train_elementwise",
  );
}
