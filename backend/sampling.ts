/**
 * Next-token selection shared by every backend: greedy argmax, or seeded sampling with
 * temperature, top-k and top-p. The random number of a step comes from a counter-based
 * hash of `(seed, row, step)`, not from a stateful generator, so the WGSL sampler computes
 * the same uniform and a row's draw never depends on the other rows of its batch.
 *
 * @module
 */
import type { SamplingOptions } from "./types.ts";
import { argmax, topK as topKEntries } from "./cpu/ops.ts";

/**
 * PCG-style 32-bit hash (the same integer arithmetic is written in WGSL).
 *
 * @example
 * ```ts
 * hash32(0) !== hash32(1); // true
 * ```
 */
export function hash32(x: number): number {
  const state = (Math.imul(x >>> 0, 747796405) + 2891336453) >>> 0;
  const word = Math.imul(((state >>> ((state >>> 28) + 4)) ^ state) >>> 0, 277803737) >>> 0;
  return ((word >>> 22) ^ word) >>> 0;
}

/**
 * The uniform in `[0, 1)` used for row `row` at generation step `step`.
 *
 * @example
 * ```ts
 * const u = stepUniform(42, 0, 3); // 0 <= u < 1
 * ```
 */
export function stepUniform(seed: number, row: number, step: number): number {
  const h = hash32((seed >>> 0) ^ hash32((row >>> 0) ^ hash32(step >>> 0)));
  return (h >>> 8) / 16777216; // 24 random bits
}

/**
 * Picks the next token from one row's logits.
 *
 * @example
 * ```ts
 * selectToken(new Float32Array([0, 3, 1]), {}, 0, 0); // 1 (greedy)
 * ```
 */
export function selectToken(
  logits: Float32Array,
  options: SamplingOptions,
  row: number,
  step: number,
): number {
  const temperature = options.temperature ?? 0;
  if (!(temperature > 0)) return argmax(logits);
  const topK = options.topK && options.topK > 0 ? Math.min(options.topK, logits.length) : 0;
  const topP = options.topP ?? 1;
  // Candidates sorted by logit, highest first (ties: lower index first).
  let order = rankedIds(logits, topK);
  const max = logits[order[0]];
  const probs = order.map((i) => Math.exp((logits[i] - max) / temperature));
  let total = probs.reduce((a, b) => a + b, 0);
  if (topP < 1) {
    let cum = 0;
    let keep = probs.length;
    for (let i = 0; i < probs.length; i++) {
      cum += probs[i] / total;
      if (cum >= topP) {
        keep = i + 1;
        break;
      }
    }
    order = order.slice(0, keep);
    probs.length = keep;
    total = probs.reduce((a, b) => a + b, 0);
  }
  const target = stepUniform(options.seed ?? 0, row, step) * total;
  let cum = 0;
  for (let i = 0; i < order.length; i++) {
    cum += probs[i];
    if (target < cum) return order[i];
  }
  return order[order.length - 1];
}

const INDEX_SPAN = 1 << 20; // vocabularies up to 2^20 ids use the packed-key sort
const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/**
 * Ids ordered by logit descending, index ascending on ties; only the first `k` when
 * `0 < k < V`. Same order as sorting with `(a, b) => logits[b] - logits[a] || a - b`, but
 * a partial selection for top-k and a native numeric sort of packed `(rank, index)` keys
 * otherwise (a comparator sort of 50k ids took ~40 ms per token).
 */
function rankedIds(logits: Float32Array, k: number): number[] {
  const n = logits.length;
  if (k > 0 && k < n) return topKEntries(logits, k).map(([id]) => id);
  if (n > INDEX_SPAN) {
    return Array.from(logits.keys()).sort((a, b) => logits[b] - logits[a] || a - b);
  }
  const keys = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    f32[0] = logits[i] === 0 ? 0 : logits[i]; // -0 ties with +0, as in the comparator
    const bits = u32[0];
    const ascending = bits & 0x80000000 ? ~bits >>> 0 : (bits | 0x80000000) >>> 0;
    keys[i] = (0xffffffff - ascending) * INDEX_SPAN + i; // < 2^52: exact in a double
  }
  keys.sort();
  return Array.from(keys, (key) => key % INDEX_SPAN);
}

/**
 * Checks sampling options, naming the bad field.
 *
 * @example
 * ```ts
 * validateSampling({ temperature: 0.7, topP: 0.9 });
 * ```
 */
export function validateSampling(options: SamplingOptions): void {
  const { temperature = 0, topK = 0, topP = 1 } = options;
  if (!(temperature >= 0) || !Number.isFinite(temperature)) {
    throw new RangeError(`sampling.temperature must be >= 0, got ${temperature}`);
  }
  if (!Number.isInteger(topK) || topK < 0) {
    throw new RangeError(`sampling.topK must be a non-negative integer, got ${topK}`);
  }
  if (!(topP > 0 && topP <= 1)) {
    throw new RangeError(`sampling.topP must be in (0, 1], got ${topP}`);
  }
}
