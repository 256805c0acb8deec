/**
 * Quality metrics and evaluation data (docs/DESIGN.md §8).
 *
 * - {@linkcode corpusBleu}: corpus BLEU with sacreBLEU's defaults (13a, exp smoothing,
 *   case-sensitive, several references per segment), 0 to 100.
 * - {@linkcode corpusRougeL}: ROUGE-L F as Google's `rouge-score` computes it by default,
 *   best over references, mean over segments, 0 to 1.
 * - {@linkcode loadE2eCsv}: the E2E `mr,ref` CSV grouped into multi-reference items;
 *   {@linkcode loadPrompts} and {@linkcode applyTemplate} for prompts.
 * - {@linkcode scoreFiles}: the `score` command (hypothesis file against reference files).
 *
 * @example
 * ```ts
 * import { applyTemplate, E2E_DEVSET_URL, E2E_TEMPLATE, loadE2eCsv, scoreCorpus } from "./mod.ts";
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
export {
  applyTemplate,
  type CsvRecord,
  DataError,
  E2E_DEVSET_URL,
  E2E_TEMPLATE,
  type E2eItem,
  loadE2eCsv,
  loadPrompts,
  parseCsv,
  parseE2eCsv,
  readText,
  splitLines,
} from "./data.ts";
// A researcher's own data: CSV/TSV/JSONL/Parquet or hf: dataset splits, by column.
export {
  type DataFormat,
  fillTemplate,
  loadTable,
  parseDelimited,
  parseJsonl,
  parseParquet,
  type Table,
  tableFormat,
  type TableItem,
  type TableItemOptions,
  tableItems,
  templatePlaceholders,
  truncateItems,
  type TruncateSide,
  type TruncateTokenizer,
} from "./table.ts";
// Provenance of run folders: manifest.json, items.csv, Reproduce commands.
export {
  buildManifest,
  csvField,
  type HashedFile,
  ITEMS_CSV_FILE,
  type ManifestInput,
  manifestJson,
  reproduceCommand,
  type ReproduceOption,
  RUN_MANIFEST_FILE,
  type RunManifest,
  shellQuote,
  shellWords,
  toCsv,
} from "./manifest.ts";
export { type CorpusScores, scoreCorpus, scoreFiles } from "./score.ts";
// Self-speculative decoding: SkipDecode drafts against early-exit and constant-skip drafts.
export {
  compareDrafts,
  type CompareDraftsOptions,
  draftComparisonMarkdown,
  type DraftComparisonRow,
  type PositionFigure,
} from "./speculative.ts";
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
export { CACHE_VERSION, canonicalJson, defaultCacheDir, hashKey, ResultCache } from "./cache.ts";
export {
  atomicWrite,
  checkOutputPath,
  commitFileSet,
  type CommitOptions,
  completePendingCommit,
  type FileSetManifest,
  JOURNAL_FILE,
  LOCK_FILE,
  MANIFEST_FILE,
  type OpenOutputOptions,
  OutputError,
  OutputFolder,
  readFileSet,
  sha256File,
  withInterruptsHeld,
} from "./output.ts";
export {
  createProgress,
  formatDuration,
  type ProgressDisplay,
  type ProgressMode,
  type ProgressOptions,
  type ProgressState,
  progressText,
} from "./progress.ts";
export {
  accumulateGen,
  assembleOracle,
  assembleSweep,
  boundDecodeItems,
  type BoundItem,
  concatGenParts,
  decodeSteps,
  type GenEntry,
  newGenPart,
  nllByItemBatch,
  runSweep,
  type SweepAssembly,
  type SweepGeneration,
  type SweepGenItem,
  type SweepGenPart,
  type SweepItem,
  sweepItemsFromE2e,
  sweepModelInfo,
  type SweepNllPair,
  sweepNllPairs,
  type SweepOptions,
  type SweepOracle,
  sweepPolicies,
  type SweepResult,
  type SweepRow,
  sweepToJson,
  sweepToMarkdown,
} from "./sweep.ts";
// Sweeps split over processes and machines: work units, shards, merge.
export {
  checkUnitManifests,
  computeSweepUnit,
  contentHashes,
  fileSha256,
  holdShardLock,
  manifestDifference,
  parseShard,
  readUnit,
  runSweepShard,
  type Shard,
  shardFromEnv,
  shardUnits,
  type SweepShardOptions,
  type SweepShardReport,
  type SweepUnitConfig,
  sweepUnits,
  toolkitInfo,
  type UnitBody,
  UnitError,
  type UnitFile,
  unitId,
  type UnitManifest,
  unitPath,
  UNITS_DIR,
  warmUp,
  type WorkUnit,
} from "./units.ts";
export {
  assembleSweepUnits,
  describeUnits,
  type MergedSweep,
  type MergeOptions,
  mergeSweepUnits,
} from "./merge.ts";
export {
  afterConfig,
  isProcedureRun,
  type MergedProcedure,
  mergeProcedureUnits,
  type ProcedureManifest,
  type ProcedureShardOptions,
  type ProcedureUnitConfig,
  procedureUnitIds,
  runProcedureShard,
  type TuneUnitFile,
} from "./procedure_units.ts";
export {
  type FrontierMetric,
  type FrontierSpeedup,
  policyLabel,
  type ReportFiles,
  type ReportOptions,
  SWEEP_ITEM_COLUMNS,
  type SweepFigureOptions,
  type SweepFigures,
  sweepFigures,
  sweepItemRows,
  writeSweepReport,
} from "./report.ts";
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
export {
  fineTuneCopy,
  isTunedPolicy,
  type LaterTokens,
  laterTokens,
  overlappingItems,
  type PositionSeries,
  type ProcedureAfter,
  procedureFigures,
  type ProcedureOptions,
  procedureOracle,
  procedurePolicyOrder,
  type ProcedureReportOptions,
  type ProcedureResult,
  procedureTable,
  procedureToJson,
  runProcedure,
  writeProcedureReport,
} from "./procedure.ts";
