/**
 * Bootstrap confidence intervals over items (percentile method, seeded): resample the
 * items with replacement `resamples` times, recompute the corpus figure on each resample,
 * and take the 2.5th and 97.5th percentiles. Corpus BLEU is recomputed from per-item
 * sufficient statistics (so a resample costs no tokenizing), ROUGE-L as the mean of
 * per-item scores, a speedup as a ratio of sums (`Σ L·tokens / Σ layers` over the drawn
 * items), a per-position mean from the items present at that position.
 *
 * @example
 * ```ts
 * import { bootstrapBleu, bootstrapMean } from "./bootstrap.ts";
 * const ci = bootstrapMean([1, 2, 3, 4, 5], { seed: 1 });
 * console.log(ci); // about [1.8, 4.2]
 * const b = bootstrapBleu(["a b c d"], [["a b c d"]]);
 * console.log(b); // [100, 100]
 * ```
 * @module
 */
import { computeBleu, corpusBleu, MAX_NGRAM_ORDER } from "./bleu.ts";
import { rougeLMulti } from "./rouge.ts";
import { seededRandom } from "../model/random.ts";

/** A 95% interval `[lo, hi]`. */
export type Interval = [number, number];

/** Options of the bootstrap functions. */
export interface BootstrapOptions {
  /** Resamples (default 1000). */
  resamples?: number;
  /** Seed of the resampling (default 0): same seed, same interval. */
  seed?: number;
  /** Coverage (default 0.95). */
  level?: number;
}

function percentile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return NaN;
  const pos = q * (sorted.length - 1);
  const lo = Math.floor(pos), hi = Math.ceil(pos);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo);
}

/**
 * The percentile interval of a statistic over item resamples.
 *
 * @param count items `n`
 * @param statistic the figure of one resample, given its `n` drawn item indices
 * @param options resamples, seed, level
 * @returns `[lo, hi]` (`[NaN, NaN]` with no items)
 * @example
 * ```ts
 * import { bootstrapInterval } from "./bootstrap.ts";
 * const x = [3, 1, 4, 1, 5];
 * bootstrapInterval(x.length, (idx) => Math.max(...idx.map((i) => x[i])), { seed: 2 });
 * ```
 */
export function bootstrapInterval(
  count: number,
  statistic: (indices: number[]) => number,
  options: BootstrapOptions = {},
): Interval {
  const B = options.resamples ?? 1000;
  const level = options.level ?? 0.95;
  if (!Number.isInteger(B) || B < 1) {
    throw new RangeError(`bootstrap resamples must be a whole number >= 1, got ${B}`);
  }
  if (!(level > 0 && level < 1)) throw new RangeError(`bootstrap level must be in (0, 1)`);
  if (count === 0) return [NaN, NaN];
  const random = seededRandom(options.seed ?? 0); // the project's one generator (mulberry32)
  const values: number[] = [];
  const idx = new Array<number>(count);
  for (let b = 0; b < B; b++) {
    for (let i = 0; i < count; i++) idx[i] = Math.floor(random() * count);
    const v = statistic(idx);
    if (Number.isFinite(v)) values.push(v);
  }
  values.sort((a, b) => a - b);
  return [percentile(values, (1 - level) / 2), percentile(values, 1 - (1 - level) / 2)];
}

/**
 * Interval of a mean over items.
 *
 * @param values one figure per item
 * @param options resamples, seed, level
 * @returns `[lo, hi]`
 * @example
 * ```ts
 * import { bootstrapMean } from "./bootstrap.ts";
 * bootstrapMean([0.2, 0.4, 0.9], { resamples: 200 });
 * ```
 */
export function bootstrapMean(values: readonly number[], options: BootstrapOptions = {}): Interval {
  return bootstrapInterval(
    values.length,
    (idx) => idx.reduce((a, i) => a + values[i], 0) / idx.length,
    options,
  );
}

/**
 * Interval of a ratio of sums, `Σ num / Σ den` over the drawn items (e.g. a layer speedup:
 * `num = L · tokens`, `den = layers run`).
 *
 * @param num numerator per item
 * @param den denominator per item
 * @param options resamples, seed, level
 * @returns `[lo, hi]`
 * @example
 * ```ts
 * import { bootstrapRatio } from "./bootstrap.ts";
 * bootstrapRatio([12, 24], [6, 10]); // around the 36 / 16 of the whole corpus
 * ```
 */
export function bootstrapRatio(
  num: readonly number[],
  den: readonly number[],
  options: BootstrapOptions = {},
): Interval {
  if (num.length !== den.length) {
    throw new RangeError(`bootstrapRatio: ${num.length} numerators but ${den.length} denominators`);
  }
  return bootstrapInterval(num.length, (idx) => {
    let n = 0, d = 0;
    for (const i of idx) {
      n += num[i];
      d += den[i];
    }
    return d > 0 ? n / d : NaN;
  }, options);
}

/**
 * Interval of corpus BLEU (sacreBLEU defaults) over items: per-item sufficient statistics
 * summed over each resample.
 *
 * @param hyps one hypothesis per item
 * @param refs the references of each item
 * @param options resamples, seed, level
 * @returns `[lo, hi]`, 0 to 100
 * @example
 * ```ts
 * import { bootstrapBleu } from "./bootstrap.ts";
 * bootstrapBleu(["the cat sat", "a dog"], [["the cat sat"], ["the dog ran"]]);
 * ```
 */
export function bootstrapBleu(
  hyps: readonly string[],
  refs: readonly (readonly string[])[],
  options: BootstrapOptions = {},
): Interval {
  const stats = hyps.map((h, i) => {
    const s = corpusBleu([h], [refs[i]]);
    return [s.sysLen, s.refLen, ...s.counts, ...s.totals];
  });
  const K = 2 + 2 * MAX_NGRAM_ORDER;
  return bootstrapInterval(hyps.length, (idx) => {
    const sum = new Array<number>(K).fill(0);
    for (const i of idx) for (let k = 0; k < K; k++) sum[k] += stats[i][k];
    return computeBleu(
      sum.slice(2, 2 + MAX_NGRAM_ORDER),
      sum.slice(2 + MAX_NGRAM_ORDER),
      sum[0],
      sum[1],
    ).score;
  }, options);
}

/**
 * Interval of corpus ROUGE-L F (the mean of per-item best-reference F-measures).
 *
 * @param hyps one hypothesis per item
 * @param refs the references of each item
 * @param options resamples, seed, level
 * @returns `[lo, hi]`, 0 to 1
 * @example
 * ```ts
 * import { bootstrapRougeL } from "./bootstrap.ts";
 * bootstrapRougeL(["the cat sat", "a dog"], [["the cat sat"], ["the dog ran"]]);
 * ```
 */
export function bootstrapRougeL(
  hyps: readonly string[],
  refs: readonly (readonly string[])[],
  options: BootstrapOptions = {},
): Interval {
  return bootstrapMean(hyps.map((h, i) => rougeLMulti(h, refs[i]).fmeasure), options);
}

/**
 * Per-position mean and interval of a figure measured on items of different lengths
 * (`values[item][position]`): at each position, the items that reach it.
 *
 * @param values per item, one figure per position
 * @param options resamples, seed, level; `minItems` (default 1): positions with fewer
 *   items are left out
 * @returns one `{ position, mean, ci, items }` per position kept
 * @example
 * ```ts
 * import { positionIntervals } from "./bootstrap.ts";
 * positionIntervals([[4, 2, 2], [6, 3]], { resamples: 100 });
 * ```
 */
export function positionIntervals(
  values: readonly (readonly number[])[],
  options: BootstrapOptions & { minItems?: number } = {},
): { position: number; mean: number; ci: Interval; items: number }[] {
  const longest = Math.max(0, ...values.map((v) => v.length));
  const out = [];
  for (let j = 0; j < longest; j++) {
    const at = values.filter((v) => v.length > j).map((v) => v[j]);
    if (at.length < (options.minItems ?? 1)) break;
    out.push({
      position: j,
      mean: at.reduce((a, b) => a + b, 0) / at.length,
      ci: bootstrapMean(at, { ...options, seed: (options.seed ?? 0) + j }),
      items: at.length,
    });
  }
  return out;
}
