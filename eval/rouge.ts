/**
 * ROUGE-L as Google's `rouge-score` package computes it by default (docs/DESIGN.md §8):
 * text is lower-cased, every run of characters outside `[a-z0-9]` becomes a space, tokens
 * are split on whitespace (no stemming); precision and recall are the longest common
 * subsequence over the hypothesis and reference lengths, F = 2PR / (P + R) (0 when
 * either side has no tokens). With several references the one with the highest F wins
 * (first on ties, like `score_multi`'s `np.argmax`); the corpus figure is the mean over
 * segments, on the 0 to 1 scale.
 *
 * Ported from google-research `rouge/tokenize.py` and `rouge/rouge_scorer.py`
 * (`_score_lcs`, `score_multi`, `scoring.fmeasure`).
 *
 * Argument order: hypothesis first, reference(s) second, as in `corpusBleu`
 * (rouge-score's `score(target, prediction)` takes them the other way round).
 *
 * @example
 * ```ts
 * import { rougeL } from "./rouge.ts";
 * console.log(rougeL("testing two", "testing one two").fmeasure); // 0.8
 * ```
 * @module
 */

/** Precision, recall and F-measure, each in [0, 1]. */
export interface RougeScore {
  /** LCS length over the hypothesis length. */
  precision: number;
  /** LCS length over the reference length. */
  recall: number;
  /** Harmonic mean of precision and recall (0 when both are 0). */
  fmeasure: number;
}

/** Corpus ROUGE-L: means over segments, plus each segment's best-reference score. */
export interface CorpusRougeScore extends RougeScore {
  /** Per segment, the score against its best reference (highest F). */
  segments: RougeScore[];
}

/**
 * rouge-score's default tokeniser (no stemming): lower-case, replace each run of
 * characters other than `a-z0-9` by a space, split on whitespace, keep only
 * `^[a-z0-9]+$` tokens.
 *
 * @param text any text
 * @returns its tokens
 * @example
 * ```ts
 * import { rougeTokenize } from "./rouge.ts";
 * console.log(rougeTokenize("The Eagle's café, 3-star!")); // ["the","eagle","s","caf","3","star"]
 * ```
 */
export function rougeTokenize(text: string): string[] {
  return text.toLowerCase().replace(/[^a-z0-9]+/g, " ").split(/\s+/).filter((t) =>
    /^[a-z0-9]+$/.test(t)
  );
}

/**
 * Length of the longest common subsequence of two token lists (dynamic programming,
 * O(|a| |b|) time, O(|b|) memory).
 *
 * @param a first sequence
 * @param b second sequence
 * @returns the LCS length
 * @example
 * ```ts
 * import { lcsLength } from "./rouge.ts";
 * console.log(lcsLength(["1", "2", "3", "4", "5"], ["2", "5", "3", "4"])); // 3
 * ```
 */
export function lcsLength(a: readonly string[], b: readonly string[]): number {
  // prev/cur: [b.length + 1], row i of the (|a|+1) x (|b|+1) table.
  let prev = new Int32Array(b.length + 1);
  let cur = new Int32Array(b.length + 1);
  for (let i = 1; i <= a.length; i++) {
    const ai = a[i - 1];
    for (let j = 1; j <= b.length; j++) {
      cur[j] = ai === b[j - 1] ? prev[j - 1] + 1 : Math.max(prev[j], cur[j - 1]);
    }
    [prev, cur] = [cur, prev];
  }
  return prev[b.length];
}

/** rouge-score's `scoring.fmeasure`. */
function fmeasure(p: number, r: number): number {
  return p + r > 0 ? (2 * p * r) / (p + r) : 0;
}

function scoreTokens(hypToks: readonly string[], refToks: readonly string[]): RougeScore {
  if (hypToks.length === 0 || refToks.length === 0) {
    return { precision: 0, recall: 0, fmeasure: 0 };
  }
  const lcs = lcsLength(refToks, hypToks);
  const precision = lcs / hypToks.length;
  const recall = lcs / refToks.length;
  return { precision, recall, fmeasure: fmeasure(precision, recall) };
}

/**
 * ROUGE-L of one hypothesis against one reference.
 *
 * @param hyp the hypothesis (rouge-score's `prediction`)
 * @param ref the reference (rouge-score's `target`)
 * @returns precision, recall and F-measure
 * @example
 * ```ts
 * import { rougeL } from "./rouge.ts";
 * console.log(rougeL("testing one", "testing one two")); // P 1, R 2/3, F 0.8
 * ```
 */
export function rougeL(hyp: string, ref: string): RougeScore {
  return scoreTokens(rougeTokenize(hyp), rougeTokenize(ref));
}

function bestOf(hypToks: string[], refs: readonly string[], what: string): RougeScore {
  if (refs.length === 0) throw new RangeError(`${what} has no references`);
  let best: RougeScore | undefined;
  for (const ref of refs) {
    const s = scoreTokens(hypToks, rougeTokenize(ref));
    if (best === undefined || s.fmeasure > best.fmeasure) best = s;
  }
  return best!;
}

/**
 * ROUGE-L against several references: the reference with the highest F-measure (the
 * first one on ties), as rouge-score's `score_multi`.
 *
 * @param hyp the hypothesis
 * @param refs its references (at least one)
 * @returns the best reference's precision, recall and F-measure
 * @example
 * ```ts
 * import { rougeLMulti } from "./rouge.ts";
 * console.log(rougeLMulti("a b", ["c d", "a b"]).fmeasure); // 1
 * ```
 */
export function rougeLMulti(hyp: string, refs: readonly string[]): RougeScore {
  return bestOf(rougeTokenize(hyp), refs, "rougeLMulti: the hypothesis");
}

/**
 * Corpus ROUGE-L: each segment's best-reference score, averaged over segments. An empty
 * corpus scores 0.
 *
 * @param hyps one hypothesis per segment
 * @param refs per segment, its references (`refs[i]` belong to `hyps[i]`)
 * @returns mean precision, recall and F-measure (0 to 1) and the per-segment scores
 * @example
 * ```ts
 * import { corpusRougeL } from "./rouge.ts";
 * const r = corpusRougeL(["a b", "x"], [["a b"], ["y"]]);
 * console.log(r.fmeasure); // 0.5
 * ```
 */
export function corpusRougeL(
  hyps: readonly string[],
  refs: readonly (readonly string[])[],
): CorpusRougeScore {
  if (hyps.length !== refs.length) {
    throw new RangeError(
      `corpusRougeL: ${hyps.length} hypotheses but ${refs.length} reference sets`,
    );
  }
  const segments = hyps.map((h, i) =>
    bestOf(rougeTokenize(h), refs[i], `corpusRougeL: segment ${i}`)
  );
  const mean = (k: keyof RougeScore) =>
    segments.length === 0 ? 0 : segments.reduce((s, x) => s + x[k], 0) / segments.length;
  return {
    precision: mean("precision"),
    recall: mean("recall"),
    fmeasure: mean("fmeasure"),
    segments,
  };
}
