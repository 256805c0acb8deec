/**
 * Quality metrics (docs/DESIGN.md §8): what a run's outputs are worth. The runs themselves
 * (sweeps, the procedure, reports) are in `experiments/`, the data sets in `data/`.
 *
 * - {@linkcode corpusBleu}: corpus BLEU with sacreBLEU's defaults (13a, exp smoothing,
 *   case-sensitive, several references per segment), 0 to 100.
 * - {@linkcode corpusRougeL}: ROUGE-L F as Google's `rouge-score` computes it by default,
 *   best over references, mean over segments, 0 to 1.
 * - {@linkcode scoreFiles}: the `score` command (hypothesis file against reference files).
 *
 * @example
 * ```ts
 * import { applyTemplate, E2E_DEVSET_URL, E2E_TEMPLATE, loadE2eCsv } from "../data/mod.ts";
 * import { scoreCorpus } from "./mod.ts";
 * const items = (await loadE2eCsv(E2E_DEVSET_URL)).slice(0, 10);
 * const prompts = items.map((it) => applyTemplate(E2E_TEMPLATE, it));
 * const hyps = items.map((it) => it.refs[0]); // stand-in for generated text
 * const { bleu, rougeL } = scoreCorpus(hyps, items.map((it) => it.refs));
 * console.log(prompts.length, bleu.score, rougeL.fmeasure);
 * ```
 * @module
 */
export {
  type BleuOptions,
  type BleuScore,
  computeBleu,
  corpusBleu,
  MAX_NGRAM_ORDER,
  sentenceBleu,
  tokenize13a,
} from "./bleu.ts";
export {
  corpusRougeL,
  type CorpusRougeScore,
  lcsLength,
  rougeL,
  rougeLMulti,
  type RougeScore,
  rougeTokenize,
} from "./rouge.ts";
export { type CorpusScores, scoreCorpus, scoreFiles } from "./score.ts";
// Research workflow: teacher-forced NLL, agreement, oracle depth, sweeps and their reports.
export {
  type ItemNll,
  type NllItem,
  type NllOptions,
  type NllResult,
  type ScoringModel,
  summarizeNll,
  teacherForcedNll,
  type TeacherForcingBatch,
  teacherForcingBatch,
  tokenNll,
} from "./nll.ts";
export { type AgreementResult, type ItemAgreement, tokenAgreement } from "./agreement.ts";
export {
  oracleDepths,
  type OracleItem,
  type OracleOptions,
  type OracleResult,
  oracleSets,
} from "./oracle.ts";
export {
  CALM_NOTE,
  calmExit,
  type CalmItem,
  type CalmOptions,
  type CalmResult,
  type CalmRow,
  calmTable,
  evaluateCalm,
  type ReadoutGeneration,
  readoutGeneration,
  type ReadoutGenerationOptions,
  type ReadoutModel,
} from "./readout.ts";
// Reference points and intervals: fixed-token speedups, the monotone bound, fitPolicy,
// bootstrap intervals; the paper's procedure (before, fine-tune per policy, after).
export {
  bootstrapBleu,
  bootstrapInterval,
  bootstrapMean,
  type BootstrapOptions,
  bootstrapRatio,
  bootstrapRougeL,
  type Interval,
  positionIntervals,
} from "./bootstrap.ts";
export {
  boundLayerSpeedup,
  boundPolicy,
  type FitOptions,
  fitPolicy,
  type FitResult,
  type FixedTokenItem,
  type FixedTokenSpeedup,
  fixedTokenSpeedup,
  monotoneBound,
} from "./fit.ts";
