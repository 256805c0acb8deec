/**
 * Experiments: the runs that turn a model, policies and data into reports. Sweeps
 * ({@linkcode runSweep}, split into work units by {@linkcode runSweepShard} and put back by
 * {@linkcode mergeSweepUnits}), their reports ({@linkcode writeSweepReport}), the paper's
 * procedure, the one runner that fine-tunes and measures again (before, fine-tune per
 * policy, after: {@linkcode runProcedure}), and the comparison of speculative drafts
 * ({@linkcode compareDrafts}). They build on the metrics of `eval/`, the data of `data/` and
 * the output files of `io/`.
 *
 * @example
 * ```ts
 * import { loadModel } from "../decode/mod.ts";
 * import { E2E_DEVSET_URL, loadE2eCsv } from "../data/mod.ts";
 * import { runSweep, sweepItemsFromE2e, sweepToMarkdown } from "./mod.ts";
 * const model = await loadModel("bundled/models/tiny-opt-e2e", { backend: "cpu" });
 * const items = sweepItemsFromE2e((await loadE2eCsv(E2E_DEVSET_URL)).slice(0, 2));
 * const result = await runSweep(model, items, ["full"], { maxNewTokens: 4, progress: false });
 * console.log(sweepToMarkdown(result));
 * ```
 * @module
 */
// Self-speculative decoding: SkipDecode drafts against early-exit and constant-skip drafts.
export {
  compareDrafts,
  type CompareDraftsOptions,
  draftComparisonMarkdown,
  type DraftComparisonRow,
  type PositionFigure,
} from "./speculative.ts";
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
  type SweepFigureOptions,
  type SweepFigures,
  sweepFigures,
  writeSweepReport,
} from "./report.ts";
export {
  type DataItem,
  fineTuneCopy,
  isTunedPolicy,
  type LaterTokens,
  laterTokens,
  overlappingItems,
  type PositionSeries,
  type ProcedureAfter,
  procedureData,
  procedureFigures,
  procedureItems,
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
