/**
 * The check on activations at the LM head, shared by both backends: a logit that is NaN or
 * ±Infinity is an error naming the row and column, never a silent token 0 (the CPU's argmax
 * over NaN) or a different token on the GPU. Weights are checked once at load
 * (`model/finite.ts`); this catches what finite weights can still produce (an overflow).
 *
 * @example
 * ```ts
 * import { checkFiniteLogits } from "./finite.ts";
 * checkFiniteLogits(new Float32Array([0.5, 1, 2, 3]), 2, "cpu backend");
 * ```
 * @module
 */

/** Logits that are not finite; the message names the backend, row and column. */
export class NonFiniteError extends Error {
  /** Makes the error. */
  constructor(message: string) {
    super(message);
    this.name = "NonFiniteError";
  }
}

/**
 * Throws when any logit is NaN or ±Infinity.
 *
 * @param logits `[rows, V]` logits
 * @param V the vocabulary rows
 * @param where the backend and step, for the message
 * @param label optional name of row `r` (e.g. `row 0, column 5`)
 * @throws NonFiniteError naming the row, the vocabulary index and the value
 * @example
 * ```ts
 * import { checkFiniteLogits } from "./finite.ts";
 * checkFiniteLogits(new Float32Array([1, 2]), 2, "cpu backend");
 * ```
 */
export function checkFiniteLogits(
  logits: Float32Array,
  V: number,
  where: string,
  label: (r: number) => string = (r) => `row ${r}`,
): void {
  for (let i = 0; i < logits.length; i++) {
    const x = logits[i];
    if (x - x === 0) continue; // finite
    const r = Math.floor(i / V);
    throw new NonFiniteError(
      `${where}: the LM head produced ${x} for ${label(r)} (vocabulary index ${i % V}): an ` +
        `activation overflowed or a weight is not finite; the output would be garbage`,
    );
  }
}
