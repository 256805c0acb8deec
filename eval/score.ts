/**
 * The `score` command's logic: BLEU and ROUGE-L of a hypothesis file against one or more
 * line-aligned reference files (like `sacrebleu hyp.txt -i ref1.txt ref2.txt`).
 *
 * @example
 * ```ts
 * import { scoreFiles } from "./score.ts";
 * const { bleu, rougeL } = await scoreFiles("out/hyps.txt", ["refs0.txt", "refs1.txt"]);
 * console.log(bleu.score.toFixed(2), rougeL.fmeasure.toFixed(4));
 * ```
 * @module
 */
import { type BleuScore, corpusBleu } from "./bleu.ts";
import { corpusRougeL, type CorpusRougeScore } from "./rouge.ts";
import { DataError, readText, splitLines } from "../data/datasets.ts";

/** BLEU (0 to 100) and ROUGE-L (0 to 1) of one corpus. */
export interface CorpusScores {
  /** Corpus BLEU with sacreBLEU's defaults. */
  bleu: BleuScore;
  /** Corpus ROUGE-L: mean over segments of the best-reference score. */
  rougeL: CorpusRougeScore;
}

/**
 * BLEU and ROUGE-L of hypotheses against their references.
 *
 * @param hyps one hypothesis per segment
 * @param refs per segment, its references (`refs[i]` belong to `hyps[i]`)
 * @returns both metrics
 * @example
 * ```ts
 * import { scoreCorpus } from "./score.ts";
 * const s = scoreCorpus(["the cat sat"], [["the cat sat", "a cat sat"]]);
 * console.log(s.rougeL.fmeasure); // 1
 * ```
 */
export function scoreCorpus(
  hyps: readonly string[],
  refs: readonly (readonly string[])[],
): CorpusScores {
  return { bleu: corpusBleu(hyps, refs), rougeL: corpusRougeL(hyps, refs) };
}

/**
 * Scores a hypothesis file against reference files: one segment per line, reference file
 * `k`'s line `i` is the `k`-th reference of hypothesis line `i`. A final line break is
 * not a segment; an empty line is an empty segment (as in sacreBLEU).
 *
 * @param hypPath the hypothesis file
 * @param refPaths one or more reference files, line-aligned with it
 * @returns BLEU and ROUGE-L
 * @throws DataError naming a missing, empty or non-UTF-8 file, or a reference file whose
 *   line count differs
 * @example
 * ```ts
 * import { scoreFiles } from "./score.ts";
 * const s = await scoreFiles("hyps.txt", ["refs.txt"]);
 * ```
 */
export async function scoreFiles(
  hypPath: string,
  refPaths: readonly string[],
): Promise<CorpusScores> {
  if (refPaths.length === 0) throw new DataError("scoreFiles: no reference files given");
  const hyps = splitLines(await readText(hypPath, "hypothesis file"));
  if (hyps.length === 0) {
    throw new DataError(`hypothesis file ${hypPath} is empty: nothing to score`);
  }
  const streams: string[][] = [];
  for (const p of refPaths) {
    const lines = splitLines(await readText(p, "reference file"));
    if (lines.length !== hyps.length) {
      throw new DataError(
        `reference file ${p} has ${lines.length} lines but hypothesis file ${hypPath} has ${hyps.length}`,
      );
    }
    streams.push(lines);
  }
  // streams: [refFile][segment] -> refs: [segment][refFile]
  const refs = hyps.map((_, i) => streams.map((s) => s[i]));
  return scoreCorpus(hyps, refs);
}
