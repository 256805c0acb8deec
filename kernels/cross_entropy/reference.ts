/**
 * The CPU reference of cross-entropy (the training loss), generic over
 * `Float32Array`/`Float64Array`: per row, the NLL of the target and, in place, the gradient
 * `softmax - onehot(target)`. The WGSL kernel is `cross_entropy.wgsl` beside this file.
 *
 * @example
 * ```ts
 * import { crossEntropy } from "./reference.ts";
 * console.log(crossEntropy(new Float64Array([0, 0]), Int32Array.of(1), 1, 2, false)); // [ln 2]
 * ```
 *
 * @module
 */
import type { FloatArray } from "../float.ts";

/**
 * Cross-entropy of logits rows against targets, in place: each row `[V]` of `logits[M, V]`
 * becomes `scale · (softmax - onehot(target))` (the gradient of the row's NLL times `scale`,
 * e.g. `1 / targets` of a step, so the backward needs no scaled copy of `[M, V]`) when `grad`
 * is true. Returns each row's NLL `logsumexp - logit[target]`. One `exp` per logit: the
 * gradient pass stores `exp(logit - max)` and multiplies it by `scale / Σ`.
 *
 * @example
 * ```ts
 * const nll = crossEntropy(new Float64Array([0, 0]), Int32Array.of(1), 1, 2, false);
 * // nll = [ln 2]
 * ```
 */
export function crossEntropy(
  logits: FloatArray,
  targets: Int32Array,
  m: number,
  vocab: number,
  grad: boolean,
  scale = 1,
): Float64Array {
  const nll = new Float64Array(m);
  for (let i = 0; i < m; i++) {
    const o = i * vocab;
    const tgt = targets[i];
    if (!(tgt >= 0 && tgt < vocab)) {
      throw new RangeError(`target ${tgt} of row ${i} is outside the vocabulary 0..${vocab - 1}`);
    }
    let max = -Infinity;
    for (let j = 0; j < vocab; j++) if (logits[o + j] > max) max = logits[o + j];
    const target = logits[o + tgt];
    let sum = 0;
    if (grad) {
      for (let j = 0; j < vocab; j++) {
        const e = Math.exp(logits[o + j] - max);
        logits[o + j] = e;
        sum += e;
      }
    } else {
      for (let j = 0; j < vocab; j++) sum += Math.exp(logits[o + j] - max);
    }
    const lse = max + Math.log(sum);
    nll[i] = lse - target;
    if (grad) {
      const f = scale / sum;
      for (let j = 0; j < vocab; j++) logits[o + j] *= f;
      logits[o + tgt] -= scale;
    }
  }
  return nll;
}
