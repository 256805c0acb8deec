/**
 * Dispatch of the cross-entropy kernel (`cross_entropy.wgsl`, one workgroup per row). Its
 * CPU reference is `reference.ts` beside this file (`crossEntropy`).
 *
 * @example
 * ```ts
 * import { CROSS_ENTROPY_TRAIN_WGSL } from "./train.ts";
 * console.log(Object.keys(CROSS_ENTROPY_TRAIN_WGSL)); // ["train_cross_entropy"]
 * ```
 *
 * @module
 */
import { type KernelSet, rowGroups } from "../declare.ts";
import type { Binding, Recorder } from "../encode.ts";
import code from "./cross_entropy.wgsl" with { type: "text" };

/**
 * The WGSL of this folder's kernel, by kernel name.
 *
 * @example
 * ```ts
 * console.log(CROSS_ENTROPY_TRAIN_WGSL.train_cross_entropy.length > 0); // true
 * ```
 */
export const CROSS_ENTROPY_TRAIN_WGSL: Record<string, string> = { train_cross_entropy: code };

/**
 * Arguments of {@linkcode encodeCrossEntropy}: cross-entropy of `logits[rows, V]` against
 * `targets[rows]`; with `train` the logits become `(softmax − onehot) · scale` in place.
 */
export interface CrossEntropyArgs {
  /** `[rows]` (u32) targets. */
  targets: Binding;
  /** `[rows, vocab]` logits (replaced by their gradient with `train`). */
  logits: Binding;
  /** `[rows]` NLL (written). */
  nll: Binding;
  /** Rows. */
  rows: number;
  /** Vocabulary size. */
  vocab: number;
  /** Whether to write the gradient. */
  train: boolean;
  /** Factor on the gradient (e.g. `1 / targets` for a mean). */
  scale: number;
}

/**
 * Records one cross-entropy dispatch.
 *
 * @example
 * ```ts
 * import type { KernelSet } from "../declare.ts";
 * import type { Recorder } from "../encode.ts";
 * // the kernel set, a recording pass and the device buffers and sizes of the dispatch
 * declare const set: KernelSet, rec: Recorder;
 * declare const targets: CrossEntropyArgs["targets"], logits: CrossEntropyArgs["logits"],
 *   nll: CrossEntropyArgs["nll"], rows: CrossEntropyArgs["rows"],
 *   vocab: CrossEntropyArgs["vocab"], scale: CrossEntropyArgs["scale"];
 * encodeCrossEntropy(set, rec, { targets, logits, nll, rows, vocab, train: true, scale });
 * ```
 */
export function encodeCrossEntropy(set: KernelSet, rec: Recorder, a: CrossEntropyArgs): void {
  if (a.rows === 0) return;
  set.get("train_cross_entropy").dispatch(
    rec,
    { ...a },
    rowGroups(a.rows),
    "train_cross_entropy",
  );
}
