/**
 * Corpus BLEU as sacreBLEU computes it with its defaults (docs/DESIGN.md §8): `13a`
 * tokenisation, maximum n-gram order 4, case-sensitive, `exp` smoothing, no effective
 * order, brevity penalty from the closest reference length per segment (ties go to the
 * shorter one), any number of references per segment. Scores are on the 0 to 100 scale.
 *
 * Ported from sacreBLEU 2.x (`sacrebleu/metrics/bleu.py`,
 * `sacrebleu/tokenizers/tokenizer_13a.py`, `tokenizer_re.py`) and checked against
 * sacreBLEU 2.6.0.
 *
 * @example
 * ```ts
 * import { corpusBleu } from "./bleu.ts";
 * const r = corpusBleu(["The cat sat on the mat."], [["The cat sat on the mat."]]);
 * console.log(r.score); // 100.00000000000004 (as in sacreBLEU)
 * ```
 * @module
 */

/**
 * BLEU's maximum n-gram order (sacreBLEU's `MAX_NGRAM_ORDER`).
 *
 * @example
 * ```ts
 * import { corpusBleu, MAX_NGRAM_ORDER } from "./bleu.ts";
 * console.log(corpusBleu(["a b"], [["a b"]]).counts.length === MAX_NGRAM_ORDER); // true
 * ```
 */
export const MAX_NGRAM_ORDER = 4;

/** A BLEU result with the sufficient statistics it came from. */
export interface BleuScore {
  /** BLEU on the 0 to 100 scale. */
  score: number;
  /** Modified n-gram precisions for n = 1..4, in percent (after smoothing). */
  precisions: number[];
  /** Brevity penalty, in [0, 1]. */
  bp: number;
  /** Hypothesis tokens over the corpus (after 13a tokenisation). */
  sysLen: number;
  /** Closest-reference tokens summed over the corpus. */
  refLen: number;
  /** Clipped n-gram matches for n = 1..4. */
  counts: number[];
  /** Hypothesis n-grams for n = 1..4. */
  totals: number[];
}

/** Options of {@linkcode corpusBleu} and {@linkcode sentenceBleu}. */
export interface BleuOptions {
  /**
   * Use only the n-gram orders that have hypothesis n-grams (sacreBLEU's
   * `effective_order`). Default `false` for {@linkcode corpusBleu}, `true` for
   * {@linkcode sentenceBleu}, as in sacreBLEU.
   */
  effectiveOrder?: boolean;
  /** Lower-case hypotheses and references first (sacreBLEU's `-lc`). Default `false`. */
  lowercase?: boolean;
}

// Python's str.isspace() characters: what str.split() and str.rstrip() use. JavaScript's
// `\s` differs (it includes U+FEFF and lacks U+001C..U+001F and U+0085).
const PY_SPACE = "\\t\\n\\v\\f\\r\\x1c-\\x1f \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029" +
  "\\u202f\\u205f\\u3000";
const PY_SPLIT_RE = new RegExp(`[${PY_SPACE}]+`, "u");
const PY_RSTRIP_RE = new RegExp(`[${PY_SPACE}]+$`, "u");

/** Python's `s.split()`: split on runs of whitespace, no empty strings. */
function pySplit(s: string): string[] {
  return s.split(PY_SPLIT_RE).filter((t) => t.length > 0);
}

// tokenizer_re.py, in order. The first class is sacreBLEU's
// `[\{-\~\[-\` -\&\(-\+\:-\@\/]`, i.e. the ASCII ranges { to ~, [ to `, space to &,
// ( to +, : to @, and /, written without escapes that the `u` flag rejects.
const RE_13A: [RegExp, string][] = [
  [/([{-~[-` -&(-+:-@/])/gu, " $1 "],
  // period and comma unless preceded by a digit
  [/([^0-9])([.,])/gu, "$1 $2 "],
  // period and comma unless followed by a digit
  [/([.,])([^0-9])/gu, " $1 $2"],
  // dash when preceded by a digit
  [/([0-9])(-)/gu, "$1 $2 "],
];

/**
 * sacreBLEU's `13a` tokeniser (mteval-v13a): drops `<skipped>`, joins `-\n`, turns
 * newlines into spaces, unescapes `&quot; &amp; &lt; &gt;` (in that order), splits
 * punctuation off, and collapses whitespace.
 *
 * @param line one segment
 * @returns the tokens joined by single spaces
 * @example
 * ```ts
 * import { tokenize13a } from "./bleu.ts";
 * console.log(tokenize13a("It wasn't 3.5-4 \"mins\"."));
 * // It wasn't 3.5 - 4 " mins " .   (apostrophes are not split)
 * ```
 */
export function tokenize13a(line: string): string {
  line = line.replaceAll("<skipped>", "").replaceAll("-\n", "").replaceAll("\n", " ");
  if (line.includes("&")) {
    line = line.replaceAll("&quot;", '"').replaceAll("&amp;", "&").replaceAll("&lt;", "<")
      .replaceAll("&gt;", ">");
  }
  line = ` ${line} `;
  for (const [re, rep] of RE_13A) line = line.replace(re, rep);
  return pySplit(line).join(" ");
}

/** sacreBLEU's `_preprocess_segment`: optional lower-casing, `rstrip()`, then 13a. */
function preprocess(sent: string, lowercase: boolean): string {
  if (lowercase) sent = sent.toLowerCase();
  return tokenize13a(sent.replace(PY_RSTRIP_RE, ""));
}

/** n-gram counts for n = 1..maxOrder, keyed by the tokens joined with a space. */
function ngramCounts(tokens: string[], maxOrder: number): Map<string, number> {
  const counts = new Map<string, number>();
  for (let n = 1; n <= maxOrder; n++) {
    for (let i = 0; i + n <= tokens.length; i++) {
      // Tokens never contain spaces, so joining with one keeps n-grams distinct.
      const key = tokens.slice(i, i + n).join(" ");
      counts.set(key, (counts.get(key) ?? 0) + 1);
    }
  }
  return counts;
}

/** sacreBLEU's `_get_closest_ref_len`: closest length, ties to the shorter. */
function closestRefLen(hypLen: number, refLens: number[]): number {
  let bestDiff = -1;
  let best = -1;
  for (const r of refLens) {
    const diff = Math.abs(hypLen - r);
    if (bestDiff === -1 || diff < bestDiff) {
      bestDiff = diff;
      best = r;
    } else if (diff === bestDiff && r < best) {
      best = r;
    }
  }
  return best;
}

/** Sufficient statistics of one segment: `[hypLen, refLen, ...counts, ...totals]`. */
function segmentStats(
  hyp: string,
  refs: readonly string[],
  lowercase: boolean,
  maxOrder: number,
): number[] {
  const refMax = new Map<string, number>();
  const refLens: number[] = [];
  for (const ref of refs) {
    const toks = pySplit(preprocess(ref, lowercase));
    refLens.push(toks.length);
    for (const [g, c] of ngramCounts(toks, maxOrder)) {
      if (c > (refMax.get(g) ?? 0)) refMax.set(g, c);
    }
  }
  const hypToks = pySplit(preprocess(hyp, lowercase));
  const correct = new Array<number>(maxOrder).fill(0);
  const total = new Array<number>(maxOrder).fill(0);
  for (const [g, c] of ngramCounts(hypToks, maxOrder)) {
    const n = g.split(" ").length - 1;
    total[n] += c;
    const r = refMax.get(g);
    if (r !== undefined) correct[n] += Math.min(c, r);
  }
  return [hypToks.length, closestRefLen(hypToks.length, refLens), ...correct, ...total];
}

/** Python's `my_log`: log, floored to -9999999999 at 0. */
function myLog(x: number): number {
  return x === 0 ? -9999999999 : Math.log(x);
}

/**
 * BLEU from sufficient statistics with `exp` smoothing, exactly as sacreBLEU's
 * `BLEU.compute_bleu(..., smooth_method="exp")`: an order with no match gets precision
 * `100 / (2^k * total)` where `k` counts the zero-match orders so far; an order with no
 * hypothesis n-grams ends the loop (its precision stays 0, which zeroes the score unless
 * `effectiveOrder`); no match at all gives 0.
 *
 * @param counts clipped matches for n = 1..4
 * @param totals hypothesis n-grams for n = 1..4
 * @param sysLen hypothesis length over the corpus
 * @param refLen closest reference length over the corpus
 * @param effectiveOrder average only over orders with hypothesis n-grams
 * @returns the score and its statistics
 * @example
 * ```ts
 * import { computeBleu } from "./bleu.ts";
 * // sacreBLEU's test_case_scoring: 83.75922397
 * console.log(computeBleu([9, 7, 5, 3], [10, 8, 6, 4], 11, 11).score);
 * ```
 */
export function computeBleu(
  counts: readonly number[],
  totals: readonly number[],
  sysLen: number,
  refLen: number,
  effectiveOrder = false,
): BleuScore {
  const maxOrder = counts.length;
  if (totals.length !== maxOrder) {
    throw new RangeError(
      `computeBleu: counts has ${maxOrder} orders but totals has ${totals.length}`,
    );
  }
  let bp = 1.0;
  if (sysLen < refLen) bp = sysLen > 0 ? Math.exp(1 - refLen / sysLen) : 0.0;
  const precisions = new Array<number>(maxOrder).fill(0);
  const base = { bp, sysLen, refLen, counts: [...counts], totals: [...totals], precisions };
  if (!counts.some((c) => c !== 0)) return { score: 0, ...base };
  let smoothMteval = 1.0;
  let effOrder = maxOrder;
  for (let n = 1; n <= maxOrder; n++) {
    if (totals[n - 1] === 0) break;
    if (effectiveOrder) effOrder = n;
    if (counts[n - 1] === 0) {
      smoothMteval *= 2;
      precisions[n - 1] = 100 / (smoothMteval * totals[n - 1]);
    } else {
      precisions[n - 1] = (100 * counts[n - 1]) / totals[n - 1];
    }
  }
  let logSum = 0;
  for (let n = 0; n < effOrder; n++) logSum += myLog(precisions[n]);
  return { score: bp * Math.exp(logSum / effOrder), ...base };
}

/**
 * Corpus BLEU with sacreBLEU's defaults.
 *
 * @param hyps one hypothesis per segment
 * @param refs per segment, its references (`refs[i]` are the references of `hyps[i]`;
 *   segments may have different numbers). Note: sacreBLEU's Python API takes the
 *   transpose (one stream per reference).
 * @param opts see {@linkcode BleuOptions}
 * @returns the score (0 to 100) and its statistics; an empty corpus scores 0
 * @example
 * ```ts
 * import { corpusBleu } from "./bleu.ts";
 * const r = corpusBleu(
 *   ["The dog bit the man.", "It wasn't surprising.", "The man had just bitten him."],
 *   [
 *     ["The dog bit the man.", "The dog had bit the man."],
 *     ["It was not unexpected.", "No one was surprised."],
 *     ["The man bit him first.", "The man had bitten the dog."],
 *   ],
 * );
 * console.log(r.score.toFixed(6)); // 48.530827 (sacreBLEU's README example)
 * ```
 */
export function corpusBleu(
  hyps: readonly string[],
  refs: readonly (readonly string[])[],
  opts: BleuOptions = {},
): BleuScore {
  if (hyps.length !== refs.length) {
    throw new RangeError(
      `corpusBleu: ${hyps.length} hypotheses but ${refs.length} reference sets`,
    );
  }
  const lowercase = opts.lowercase ?? false;
  const stats = new Array<number>(2 + 2 * MAX_NGRAM_ORDER).fill(0);
  for (let i = 0; i < hyps.length; i++) {
    if (typeof hyps[i] !== "string") {
      throw new TypeError(`corpusBleu: hypothesis ${i} is not a string`);
    }
    if (refs[i].length === 0) throw new RangeError(`corpusBleu: segment ${i} has no references`);
    refs[i].forEach((r, k) => {
      if (typeof r !== "string") {
        throw new TypeError(`corpusBleu: reference ${k} of segment ${i} is not a string`);
      }
    });
    const s = segmentStats(hyps[i], refs[i], lowercase, MAX_NGRAM_ORDER);
    for (let k = 0; k < s.length; k++) stats[k] += s[k];
  }
  return computeBleu(
    stats.slice(2, 2 + MAX_NGRAM_ORDER),
    stats.slice(2 + MAX_NGRAM_ORDER),
    stats[0],
    stats[1],
    opts.effectiveOrder ?? false,
  );
}

/**
 * Sentence BLEU as `sacrebleu.sentence_bleu` (exp smoothing, effective order on by
 * default).
 *
 * @param hyp the hypothesis
 * @param refs its references
 * @param opts see {@linkcode BleuOptions}
 * @returns the score (0 to 100) and its statistics
 * @example
 * ```ts
 * import { sentenceBleu } from "./bleu.ts";
 * console.log(sentenceBleu("a test", ["a test"]).score); // ~100
 * ```
 */
export function sentenceBleu(
  hyp: string,
  refs: readonly string[],
  opts: BleuOptions = {},
): BleuScore {
  return corpusBleu([hyp], [refs], {
    effectiveOrder: opts.effectiveOrder ?? true,
    lowercase: opts.lowercase,
  });
}
