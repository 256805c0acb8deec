/**
 * The paper's procedure (SkipDecode, §4): measure every policy on held-out data before any
 * adaptation, fine-tune one copy of the model per SkipDecode policy with that policy
 * active, and measure each policy again on its own fine-tuned copy. `full` and the
 * early-exit baselines are measured but not fine-tuned (their `after` rows repeat the
 * `before` ones, marked `fineTuned: false`).
 *
 * Besides the sweep figures (fixed-token speedups, bootstrap intervals, oracle bound) it
 * asks whether "later tokens are easier" holds: the oracle depth and the teacher-forced
 * NLL gap (policy − full) by generated position, with bootstrap intervals, before and
 * after fine-tuning, and a plain sentence on the trend.
 *
 * @example
 * ```ts
 * import { runProcedure } from "./procedure.ts";
 * // Minutes on a CPU: a model fine-tuned per policy.
 * // const r = await runProcedure({
 * //   model: "bundled/models/tiny-opt-e2e-dense",
 * //   train: "bundled/data/e2e/devset.csv",
 * //   test: "bundled/data/e2e/testset-part2.csv", // or holdout: 64 (MRs split off train)
 * //   policies: ["full", "linear:max=8,min=2,warmup=1,horizon=16"],
 * //   steps: 4, items: 4, modelsDir: "out/procedure-models",
 * // });
 * // console.log(r.after.map((x) => [x.row.policy, x.row.bleu]));
 * ```
 * @module
 */
import { loadModel } from "../decode/mod.ts";
import { parsePolicy } from "../schedule/mod.ts";
import { resolveTrainConfig } from "../train/config.ts";
import { type StepLog, train } from "../train/trainer.ts";
import { splitItems } from "../train/data.ts";
import { loadTable, type TableItemOptions, tableItems } from "../data/table.ts";
import { bootstrapMean, type Interval, positionIntervals } from "../eval/bootstrap.ts";
import type { ProgressMode } from "../io/progress.ts";
import { frontierChart, intervalChart } from "../plots/charts.ts";
import type { Figure } from "../plots/figure.ts";
import type { OutputFolder } from "../io/output.ts";
import { policyLabel, SWEEP_ITEM_COLUMNS, sweepItemRows, writeCharts } from "./report.ts";
import {
  buildManifest,
  ITEMS_CSV_FILE,
  type ManifestInput,
  manifestJson,
  RUN_MANIFEST_FILE,
  toCsv,
} from "./manifest.ts";
import { runSweep, type SweepItem, type SweepResult, type SweepRow } from "./sweep.ts";

/** What {@linkcode runProcedure} needs. */
export interface ProcedureOptions {
  /** The model folder (a dense checkpoint, as a pretrained OPT; the report says "base model"). */
  model: string;
  /**
   * Training data: a CSV, TSV, JSONL or Parquet file, or a Hugging Face dataset split
   * `hf:OWNER/NAME[:CONFIG]:SPLIT` (read as a sweep's `--data`, `data/table.ts`).
   */
  train: string;
  /** Test data, in any of those forms; should share no input with `train`. Unused with `holdout`. */
  test: string;
  /**
   * The columns and prompt template of both files (as a sweep's `--input-column`,
   * `--ref-column`, `--template`; default the E2E form: `mr`, `ref`, `"{input}\n"`).
   */
  columns?: TableItemOptions;
  /** Never download an `hf:` dataset (default: `$HF_HUB_OFFLINE`). */
  offline?: boolean;
  /**
   * Hold out this many MRs of `train` (a seeded split by MR, {@linkcode HOLDOUT_SEED}) as
   * the test data: they are never fine-tuned on, and `test` is not read. Default 0 (test
   * on `test`).
   */
  holdout?: number;
  /** Policies; `full` is added when missing. */
  policies: readonly string[];
  /** Optimiser steps per fine-tuning. */
  steps: number;
  /** Test MRs used (the first `items`). */
  items: number;
  /** Where the fine-tuned copies go (one folder per policy). */
  modelsDir: string;
  /** Tokens to generate per prompt (default 64). */
  maxNewTokens?: number;
  /** Rows per generation batch (default 8). */
  batchSize?: number;
  /** Examples per training micro-batch (default 8). */
  trainBatchSize?: number;
  /** Peak learning rate (default 1e-4). */
  lr?: number;
  /** Warm-up steps of each fine-tuning (default a tenth of `steps`, 1 to 10). */
  warmupSteps?: number;
  /** Backend of the trainer (default `"cpu"`). */
  trainBackend?: "cpu" | "webgpu";
  /** Called after every optimiser step of each fine-tuning, with the policy being tuned. */
  onStep?: (policy: string, log: StepLog) => void;
  /** Oracle items (default: all test items, at most 32). */
  oracleItems?: number;
  /**
   * Fine-tuned copies whose oracle depth is computed too (the first ones in policy order;
   * default 2): the oracle costs several forwards per item.
   */
  afterOracle?: number;
  /** Generation backend (default `"auto"`). */
  backend?: "auto" | "cpu" | "webgpu";
  /** Result cache (default the sweep's; `false`: none). */
  cacheDir?: string | false;
  /** Bootstrap resamples (default 1000). */
  resamples?: number;
  /** One-line notes (progress, the overlap warning). Default: stderr. */
  onNote?: (line: string) => void;
  /** Sweep progress display (default `false`). */
  progress?: false | ProgressMode;
}

/** One policy's figures after the procedure. */
export interface ProcedureAfter {
  /** The row, measured on the copy fine-tuned for this policy (or the `before` row). */
  row: SweepRow & { fineTuned: boolean };
  /** The sweep on the fine-tuned copy (`full` of that copy and the policy); none when not tuned. */
  sweep?: SweepResult;
  /** The fine-tuned copy's folder. */
  modelDir?: string;
  /** Training wall seconds. */
  trainSeconds?: number;
  /** The fine-tuning's steps (loss, learning rate, tokens, wall time of each). */
  history?: StepLog[];
}

/** Per-position mean and interval. */
export interface PositionSeries {
  /** Label (e.g. `before` or a policy). */
  name: string;
  /** Generated index `i`. */
  x: number[];
  /** Mean at each position. */
  mean: number[];
  /** 95% interval ends. */
  lo: number[];
  /** 95% interval ends. */
  hi: number[];
}

/** "Later tokens are easier?": the figures and the sentence. */
export interface LaterTokens {
  /** Oracle depth by position: the dense model, then each fine-tuned copy. */
  depth: PositionSeries[];
  /** NLL gap (policy − full) by position, before and after, per SkipDecode policy. */
  nllGap: PositionSeries[];
  /** Mean oracle depth over early positions (1-4) minus late ones, per item, with interval. */
  depthDrop: { mean: number; ci: Interval; items: number } | null;
  /** The plain sentence for the report. */
  sentence: string;
}

/** What {@linkcode runProcedure} returns. */
export interface ProcedureResult {
  /** The settings. */
  options: ProcedureOptions;
  /** Policies in order, `full` first. */
  policies: string[];
  /** The sweep before any adaptation. */
  before: SweepResult;
  /** One per policy, in order. */
  after: ProcedureAfter[];
  /** Test MRs also in the training file (0 for held-out data). */
  overlap: number;
  /** Whether the test data are held out from the fine-tuning data. */
  heldOut: boolean;
  /** Per-position analysis. */
  laterTokens: LaterTokens;
  /** Wall seconds of the whole procedure. */
  wallSeconds: number;
}

/**
 * Whether the procedure fine-tunes for a policy: SkipDecode policies yes; `full` and the
 * early-exit baselines no.
 *
 * @param policy a policy's command-line form
 * @returns true for a SkipDecode policy
 * @example
 * ```ts
 * import { isTunedPolicy } from "./procedure.ts";
 * isTunedPolicy("earlyexit:linear:max=10,min=2"); // false
 * ```
 */
export function isTunedPolicy(policy: string): boolean {
  const p = String(parsePolicy(policy));
  return p !== "full" && !p.startsWith("earlyexit:");
}

/**
 * Test items that share an MR (or, after templating, a prompt) with the training data.
 *
 * @param train training items
 * @param test test items
 * @returns the indices of the test items also in training
 * @example
 * ```ts
 * import { overlappingItems } from "./procedure.ts";
 * overlappingItems([{ mr: "a", refs: ["x"] }], [{ mr: "a", refs: ["y"] }, { mr: "b", refs: ["z"] }]); // [0]
 * ```
 */
export function overlappingItems<T extends DataItem, U extends DataItem>(
  train: readonly T[],
  test: readonly U[],
): number[] {
  const norm = (t: DataItem) => ("input" in t ? t.input : t.mr).trim().replace(/\s+/g, " ");
  const seen = new Set(train.map(norm));
  return test.flatMap((t, i) => seen.has(norm(t)) ? [i] : []);
}

/** An item of a data table (its `input` column) or of an E2E file (its `mr`). */
export type DataItem = { input: string } | { mr: string };

/**
 * The items of one of the procedure's data files (any format a sweep reads), grouped by
 * input, with the prompts its columns and template make.
 *
 * @param file a CSV, TSV, JSONL or Parquet file, or `hf:OWNER/NAME[:CONFIG]:SPLIT`
 * @param o the columns, template and offline mode
 * @returns the items (`prompt`, `refs`, `input`), with `files`: the files read
 * @throws DataError naming the file and the column, placeholder or row at fault
 * @example
 * ```ts
 * import { procedureItems } from "./procedure.ts";
 * const items = await procedureItems("bundled/data/e2e/testset-part2.csv", {});
 * items[0].prompt.endsWith("\n"); // true
 * ```
 */
export async function procedureItems(
  file: string,
  o: Pick<ProcedureOptions, "columns" | "offline">,
): Promise<(SweepItem & { input: string })[] & { files: string[] }> {
  const table = await loadTable(file, { offline: o.offline });
  const items = tableItems(table, o.columns ?? {}).map((t) => ({
    prompt: t.prompt,
    refs: t.refs,
    input: t.input,
  }));
  return Object.assign(items, { files: table.files });
}

/** The seed of `--holdout`'s split by MR (the trainer's default seed, so both agree). */
export const HOLDOUT_SEED = 0;

/**
 * The procedure's data: the test items (the first `items` of `test`, or with `holdout` the
 * first `items` of the MRs held out of `train`), the items fine-tuning sees, and which test
 * items also appear there (none with `holdout`).
 *
 * @param o the procedure's options (`train`, `test`, `holdout`, `items`)
 * @returns training items, test items and the indices of test items found in training
 * @example
 * ```ts
 * import { procedureData } from "./procedure.ts";
 * // const { test, overlap } = await procedureData({ train, test, holdout: 64, items: 64 });
 * ```
 */
export async function procedureData(
  o: Pick<ProcedureOptions, "train" | "test" | "holdout" | "items" | "columns" | "offline">,
): Promise<{ train: SweepItem[]; test: SweepItem[]; overlap: number[]; files: string[] }> {
  const all = await procedureItems(o.train, o);
  const n = o.holdout ?? 0;
  if (n > 0) {
    if (n >= all.length) {
      throw new RangeError(
        `--holdout ${n}: ${o.train} has only ${all.length} MRs (some must remain for fine-tuning)`,
      );
    }
    // the trainer makes the same split (heldOut n, seed HOLDOUT_SEED) and never trains on it
    const split = splitItems(all, n, HOLDOUT_SEED);
    const test = split.heldOut.slice(0, o.items);
    return {
      train: split.train,
      test,
      overlap: overlappingItems(split.train, test),
      files: all.files,
    };
  }
  const tests = await procedureItems(o.test, o);
  const test = tests.slice(0, o.items);
  return {
    train: all,
    test,
    overlap: overlappingItems(all, test),
    files: [...new Set([...all.files, ...tests.files])],
  };
}

/** Per-item NLL gap (policy − full) by position of one sweep, for one policy. */
function gapValues(sweep: SweepResult, policy: string): number[][] | undefined {
  const full = sweep.nllItems.find((n) => n.policy === "full");
  const p = sweep.nllItems.find((n) => n.policy === policy);
  if (!full || !p) return undefined;
  return p.perToken.map((row, k) => row.map((v, j) => v - full.perToken[k][j]));
}

function series(
  name: string,
  values: readonly (readonly number[])[],
  minItems: number,
  resamples: number,
): PositionSeries {
  const pos = positionIntervals(values, { minItems, resamples, seed: 7 });
  return {
    name,
    x: pos.map((p) => p.position),
    mean: pos.map((p) => p.mean),
    lo: pos.map((p) => p.ci[0]),
    hi: pos.map((p) => p.ci[1]),
  };
}

/**
 * The "later tokens are easier" analysis of a procedure's sweeps.
 *
 * @param before the sweep of the dense model
 * @param after the fine-tuned policies' sweeps
 * @param resamples bootstrap resamples
 * @returns depth and NLL-gap series with intervals, the early-late depth drop, a sentence
 * @example
 * ```ts
 * import { laterTokens } from "./procedure.ts";
 * // const lt = laterTokens(result.before, result.after, 1000);
 * ```
 */
export function laterTokens(
  before: SweepResult,
  after: readonly ProcedureAfter[],
  resamples = 1000,
): LaterTokens {
  const minItems = (n: number) => Math.min(n, Math.max(3, Math.ceil(n * 0.1)));
  const depth: PositionSeries[] = [];
  if (before.oracle) {
    const d = before.oracle.depths;
    depth.push(series("base model", d, minItems(d.length), resamples));
  }
  const nllGap: PositionSeries[] = [];
  let gaps = 0;
  for (const a of after) {
    if (!a.sweep || !a.row.fineTuned) continue;
    const o = a.sweep.oracle;
    if (o) {
      depth.push(
        series(
          `fine-tuned for ${policyLabel(a.row.policy)}`,
          o.depths,
          minItems(o.depths.length),
          resamples,
        ),
      );
    }
    if (gaps++ >= 3) continue; // the NLL-gap chart shows the first three tuned policies
    const g0 = gapValues(before, a.row.policy);
    const g1 = gapValues(a.sweep, a.row.policy);
    if (g0) {
      nllGap.push(
        series(`before: ${policyLabel(a.row.policy)}`, g0, minItems(g0.length), resamples),
      );
    }
    if (g1) {
      nllGap.push(
        series(`after: ${policyLabel(a.row.policy)}`, g1, minItems(g1.length), resamples),
      );
    }
  }
  // Early positions 1-4 (position 0 is produced by the last prompt column) against the
  // positions from 12 on, per item that has both.
  let depthDrop: LaterTokens["depthDrop"] = null;
  let sentence = "No oracle depths were computed, so the trend by position is not known.";
  if (before.oracle) {
    const diffs = before.oracle.depths.filter((d) => d.length > 12).map((d) => {
      const early = d.slice(1, 5), late = d.slice(12);
      const m = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
      return m(early) - m(late);
    });
    if (diffs.length >= 2) {
      const ci = bootstrapMean(diffs, { resamples, seed: 11 });
      const mean = diffs.reduce((a, b) => a + b, 0) / diffs.length;
      depthDrop = { mean, ci, items: diffs.length };
      const L = before.model.layers;
      const what = ci[0] > 0
        ? "holds here: the full model's tokens need fewer layers later in the output"
        : ci[1] < 0
        ? "is reversed here: later tokens need more layers than early ones"
        : "is not supported here: the oracle depth shows no clear trend by position";
      sentence = `"Later tokens are easier" ${what} (oracle depth at positions 1-4 minus ` +
        `positions ≥ 12: ${mean.toFixed(2)} of ${L} layers, 95% CI [${ci[0].toFixed(2)}, ` +
        `${ci[1].toFixed(2)}], ${diffs.length} outputs of the base model).`;
    } else {
      sentence = "Too few outputs reach position 12 to compare early and late oracle depths.";
    }
  }
  return { depth, nllGap, depthDrop, sentence };
}

/**
 * Runs the procedure (see the module documentation): loads and checks the data (a test
 * file sharing MRs with the training file is reported as not held out, with a loud
 * warning), sweeps the dense model, fine-tunes one copy per SkipDecode policy on the
 * training file with that policy active, and sweeps each copy.
 *
 * @param o model, data, policies, sizes (see {@linkcode ProcedureOptions})
 * @returns before and after sweeps, the held-out status, the per-position analysis
 * @example
 * ```ts
 * import { runProcedure } from "./procedure.ts";
 * // const r = await runProcedure({ model, train, test, policies, steps: 50, items: 100, modelsDir });
 * ```
 */
export async function runProcedure(o: ProcedureOptions): Promise<ProcedureResult> {
  const t0 = performance.now();
  const note = o.onNote ?? ((l: string) => console.error(l));
  const { test, overlap } = await procedureData(o);
  if (overlap.length > 0) {
    note(
      `WARNING: ${overlap.length} of ${test.length} test MRs of ${o.test} are also in the ` +
        `training file ${o.train}: the figures are NOT held out`,
    );
  }
  const policies = procedurePolicyOrder(o.policies);
  const items: SweepItem[] = test;
  const sweepOpts = {
    maxNewTokens: o.maxNewTokens ?? 64,
    batchSize: o.batchSize ?? 8,
    cacheDir: o.cacheDir,
    oracle: procedureOracle(o, items.length),
    progress: o.progress ?? false,
    resamples: o.resamples,
    onNote: note,
  } as const;
  note(`before: ${policies.length} policies on ${items.length} test items (${o.model})`);
  const base = await loadModel(o.model, { backend: o.backend ?? "auto", onNote: note });
  let before: SweepResult;
  try {
    before = await runSweep(base, items, policies, sweepOpts);
  } finally {
    base.dispose();
  }
  const after: ProcedureAfter[] = [];
  let tunedCount = 0;
  for (const [k, policy] of policies.entries()) {
    const row0 = before.rows.find((r) => r.policy === policy)!;
    if (!isTunedPolicy(policy)) {
      after.push({ row: { ...row0, fineTuned: false } });
      continue;
    }
    const { dir, trainSeconds, history } = await fineTuneCopy(o, k, policy);
    const tuned = await loadModel(dir, { backend: o.backend ?? "auto", onNote: note });
    try {
      const withOracle = tunedCount++ < (o.afterOracle ?? 2);
      const sweep = await runSweep(tuned, items, ["full", policy], {
        ...sweepOpts,
        oracle: withOracle ? sweepOpts.oracle : false,
      });
      const row = sweep.rows.find((r) => r.policy === policy)!;
      after.push({
        row: { ...row, fineTuned: true },
        sweep,
        modelDir: dir,
        trainSeconds,
        history,
      });
      note(
        `after: ${policy}: BLEU ${row0.bleu.toFixed(2)} -> ${row.bleu.toFixed(2)} ` +
          `(${trainSeconds.toFixed(0)} s of training)`,
      );
    } finally {
      tuned.dispose();
    }
  }
  return {
    options: o,
    policies,
    before,
    after,
    overlap: overlap.length,
    heldOut: overlap.length === 0,
    laterTokens: laterTokens(before, after, o.resamples ?? 1000),
    wallSeconds: (performance.now() - t0) / 1000,
  };
}

/** A folder name for a policy. */
function slug(policy: string): string {
  return policy.replace(/[^A-Za-z0-9.=-]+/g, "_").slice(0, 80);
}

/**
 * The procedure's policies in its order: parsed, `full` added first when missing.
 *
 * @param policies the policies' command-line forms
 * @returns their canonical forms
 * @example
 * ```ts
 * import { procedurePolicyOrder } from "./procedure.ts";
 * procedurePolicyOrder(["constant:n=4"]); // ["full", "constant:n=4"]
 * ```
 */
export function procedurePolicyOrder(policies: readonly string[]): string[] {
  const out = [...policies].map((p) => String(parsePolicy(p)));
  if (!out.includes("full")) out.unshift("full");
  return out;
}

/**
 * The oracle of the procedure's sweeps: the first `oracleItems` items (default 32), warm-up 1.
 *
 * @param o the procedure's options
 * @param items the number of test items
 * @returns the sweep's oracle option
 * @example
 * ```ts
 * import { procedureOracle } from "./procedure.ts";
 * procedureOracle({ oracleItems: 4 }, 10); // { items: 4, warmup: 1 }
 * ```
 */
export function procedureOracle(
  o: Pick<ProcedureOptions, "oracleItems">,
  items: number,
): { items: number; warmup: number } {
  return { items: Math.min(o.oracleItems ?? 32, items), warmup: 1 };
}

/**
 * Fine-tunes one copy of the model for a policy (the policy active; the CPU trainer unless
 * `trainBackend` says otherwise) into `modelsDir/<k>-<policy>`, replacing what a previous
 * run left there.
 *
 * @param o the procedure's options
 * @param k the policy's index in the procedure's order
 * @param policy the policy's command-line form
 * @returns the copy's folder, the training wall seconds and the steps' log
 * @example
 * ```ts
 * import { fineTuneCopy } from "./procedure.ts";
 * // const { dir } = await fineTuneCopy(options, 1, "linear:max=8,min=2,warmup=1,horizon=16");
 * ```
 */
export async function fineTuneCopy(
  o: ProcedureOptions,
  k: number,
  policy: string,
): Promise<{ dir: string; trainSeconds: number; history: StepLog[] }> {
  const note = o.onNote ?? ((l: string) => console.error(l));
  const dir = `${o.modelsDir}/${String(k).padStart(2, "0")}-${slug(policy)}`;
  note(`fine-tuning for ${policy}: ${o.steps} steps on ${o.train} -> ${dir}`);
  const t = performance.now();
  const items = await procedureItems(o.train, o); // split below as procedureData splits them
  const result = await train(
    resolveTrainConfig([{
      model: o.model,
      out: dir,
      data: o.train,
      heldOut: o.holdout ?? 0, // the MRs procedureData tests on are never trained on
      seed: HOLDOUT_SEED,
      policy,
      steps: o.steps,
      batchSize: o.trainBatchSize ?? 8,
      lr: o.lr ?? 1e-4,
      warmupSteps: o.warmupSteps ?? Math.min(10, Math.max(1, Math.floor(o.steps / 10))),
      evalEvery: 0,
      backend: o.trainBackend ?? "cpu",
    }]),
    {
      overwrite: true,
      onNote: note,
      items,
      onStep: o.onStep && ((log) => o.onStep!(policy, log)),
    },
  );
  return {
    dir,
    trainSeconds: (performance.now() - t) / 1000,
    history: result.state.history,
  };
}

/** Options of {@linkcode writeProcedureReport}. */
export interface ProcedureReportOptions {
  /** The command line that reproduces the run (shown in the report). */
  command?: string;
  /** Render PNGs with headless Chromium (`"auto"`: when installed). */
  png?: boolean | "auto";
  /** Notes (PNG trouble). Default: stderr. */
  onNote?: (line: string) => void;
  /**
   * The run's provenance: with it the folder also gets `manifest.json` and `items.csv`
   * (one row per phase x policy x test item: before fine-tuning, and after it for the
   * fine-tuned policies).
   */
  manifest?: ManifestInput;
}

/**
 * The charts of a procedure: BLEU against fixed-token layer speedup before and after
 * (error bars, the dense model's monotone bound), oracle depth and NLL gap by position.
 *
 * @param r a procedure result
 * @returns chart name to figure
 * @example
 * ```ts
 * import { procedureFigures } from "./procedure.ts";
 * // const { frontier } = procedureFigures(result);
 * ```
 */
export function procedureFigures(r: ProcedureResult): Record<string, Figure> {
  const label = (p: string) => policyLabel(p);
  // x: the fixed-token speedup on the dense model's outputs (a plan's figure; the same
  // tokens before and after), y: BLEU of the model measured.
  const fixed = (p: string) => r.before.rows.find((b) => b.policy === p)!.fixedLayerSpeedup;
  const point = (row: SweepRow, prefix: string) => ({
    name: `${prefix}${label(row.policy)}`,
    speedup: fixed(row.policy),
    quality: row.bleu,
    metric: "BLEU",
    qualityCI: row.bleuCI,
  });
  const pts = [
    ...r.before.rows.map((row) => point(row, "before: ")),
    ...r.after.filter((a) => a.row.fineTuned).map((a) => point(a.row, "after: ")),
  ];
  const o = r.before.oracle;
  const figs: Record<string, Figure> = {
    frontier: frontierChart(pts, {
      title: `${r.heldOut ? "Held-out BLEU" : "BLEU (NOT held out)"} against fixed-token ` +
        `layer speedup, before and after fine-tuning (${r.before.items} items)`,
      speedupLabel: "layer speedup on the full model's own outputs (fixed tokens)",
      ...(o
        ? {
          reference: {
            name: `best monotone schedule (base model, ${o.depths.length} of ` +
              `${r.before.items} items)`,
            ...(o.depths.length < r.before.items ? { baseline: o.boundDecode.fullBleu } : {}),
            speedup: o.boundLayerSpeedup,
            quality: o.boundDecode.bleu,
          },
        }
        : {}),
    }),
  };
  if (r.laterTokens.depth.length > 0) {
    figs.oracle_depth = intervalChart(r.laterTokens.depth, {
      title: "Oracle depth by position (mean, 95% bootstrap CI)",
      yTitle: "smallest budget reproducing the full model's token",
    });
  }
  if (r.laterTokens.nllGap.length > 0) {
    figs.nll_gap = intervalChart(r.laterTokens.nllGap, {
      title: "Teacher-forced NLL gap (policy − full) by position, before and after fine-tuning",
      yTitle: "NLL gap (nats/token)",
    });
  }
  return figs;
}

const f2 = (x: number) => x.toFixed(2);
const ciText = (c: Interval, d = 1) =>
  Number.isFinite(c[0]) ? ` [${c[0].toFixed(d)}, ${c[1].toFixed(d)}]` : "";

/**
 * The procedure's table in Markdown: per policy, whether it was fine-tuned, BLEU before
 * and after with intervals, generated-token and fixed-token speedups, NLL, agreement,
 * mean length and share of outputs at the length cap.
 *
 * @param r a procedure result
 * @returns the table
 * @example
 * ```ts
 * import { procedureTable } from "./procedure.ts";
 * // console.log(procedureTable(result));
 * ```
 */
export function procedureTable(r: ProcedureResult): string {
  const lines = [
    "| policy | fine-tuned | BLEU before [95% CI] | BLEU after [95% CI] | layer speedup " +
    "(generated tokens) before → after | fixed-token layer speedup | fixed-token FLOP speedup | " +
    "NLL before → after | agreement before → after | mean length before → after | at cap " +
    "before → after |",
    "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
  ];
  r.after.forEach((a) => {
    const b = r.before.rows.find((x) => x.policy === a.row.policy)!;
    const x = a.row;
    const nll = (v: number | null) => v === null ? "–" : v.toFixed(3);
    lines.push(
      `| \`${x.policy}\` | ${a.row.fineTuned ? "yes" : "no"} | ${b.bleu.toFixed(2)}${
        ciText(b.bleuCI)
      } | ${a.row.fineTuned ? `${x.bleu.toFixed(2)}${ciText(x.bleuCI)}` : "(not tuned)"} | ` +
        `${f2(b.layerSpeedup)}x → ${f2(x.layerSpeedup)}x | ${f2(b.fixedLayerSpeedup)}x | ` +
        `${f2(b.fixedFlopSpeedup)}x | ${nll(b.nll)} → ${nll(x.nll)} | ` +
        `${(100 * b.agreement).toFixed(1)}% → ${(100 * x.agreement).toFixed(1)}% | ` +
        `${b.meanLength.toFixed(1)} → ${x.meanLength.toFixed(1)} | ` +
        `${(100 * b.capShare).toFixed(0)}% → ${(100 * x.capShare).toFixed(0)}% |`,
    );
  });
  lines.push(
    "",
    "Fixed-token speedups: each policy's plan on the base model's `full` outputs, the " +
      "same tokens for every policy (a fine-tuned copy's `full` writes other tokens; its " +
      "figures are in `procedure.json`).",
  );
  return lines.join("\n") + "\n";
}

/**
 * Writes a procedure's report folder as one unit: `report.md` (data and whether it is
 * held out, the commands, the table, the charts, the later-tokens sentence),
 * `procedure.json` (`{ before: [rows], after: [rows] }` plus settings), and the charts as
 * HTML (and PNG with Chromium).
 *
 * @param r a procedure result
 * @param folder an output folder the caller holds
 * @param options command line, PNG, notes
 * @returns file names written
 * @example
 * ```ts
 * import { writeProcedureReport } from "./procedure.ts";
 * // await writeProcedureReport(result, OutputFolder.open("reports/procedure"), { command });
 * ```
 */
export async function writeProcedureReport(
  r: ProcedureResult,
  folder: OutputFolder,
  options: ProcedureReportOptions = {},
): Promise<{ report: string; json: string; html: string[]; png: string[] }> {
  const note = options.onNote ?? ((n: string) => console.error(`note: ${n}`));
  const stage = folder.staging();
  const set: Record<string, string> = {};
  const figs = procedureFigures(r);
  const { html, png } = await writeCharts(Object.entries(figs), set, stage, {
    png: options.png ?? "auto",
    width: 1100,
    height: 650,
    note,
  });
  set["procedure.json"] = JSON.stringify(procedureToJson(r), null, 1) + "\n";
  const o = r.options;
  const heldOutLine = r.heldOut
    ? o.holdout
      ? `**Held out**: the ${o.holdout} test MRs were split off the training file (seed ` +
        `${HOLDOUT_SEED}) and never fine-tuned on.`
      : `**Held out**: no test MR appears in the training file.`
    : `**NOT HELD OUT**: ${r.overlap} of ${r.before.items} test MRs are also in the training ` +
      `file, so these figures flatter the model.`;
  const out = [
    "# The SkipDecode procedure: before and after fine-tuning per policy",
    "",
    `- Model: \`${o.model}\` (${r.before.model.layers} layers, hidden ${r.before.model.hiddenSize})`,
    o.holdout
      ? `- Training data: \`${o.train}\` less ${o.holdout} MRs held out; test data: the first ` +
        `${r.before.items} of those held-out MRs`
      : `- Training data: \`${o.train}\`; test data: \`${o.test}\` (first ${r.before.items} MRs)`,
    `- ${heldOutLine}`,
    `- Fine-tuning: ${o.steps} steps per SkipDecode policy, batch ${o.trainBatchSize ?? 8}, ` +
    `lr ${o.lr ?? 1e-4}, the policy active (CPU trainer); \`full\` and the early-exit ` +
    `baselines are measured but **not fine-tuned** (their after figures are the before ones).`,
    `- Generation: greedy, at most ${r.before.maxNewTokens} new tokens, batches of ` +
    `${r.before.batchSize}, ${r.before.backend} backend; ${r.wallSeconds.toFixed(0)} s in all`,
    "",
    "## Reproduce",
    "",
    "```sh",
    options.command ?? "deno task skipdecode procedure ...",
    "```",
    "",
    "## Results",
    "",
    procedureTable(r),
    "BLEU: sacreBLEU defaults with 95% bootstrap intervals over items (seeded). The " +
    "layer speedup on generated tokens depends on how long each policy's outputs are; the " +
    "fixed-token speedups count each policy's plan on the full model's own outputs (the " +
    "same tokens for every policy), so a policy cannot look faster by writing longer outputs.",
    "",
  ];
  const ob = r.before.oracle;
  if (ob) {
    out.push(
      `Best monotone schedule of the base model (suffix maximum of the oracle depths, ` +
        `${ob.depths.length} items): ${f2(ob.boundLayerSpeedup)}x layer speedup; decoded with ` +
        `it, agreement with full ${(100 * ob.boundDecode.agreement).toFixed(1)}%, BLEU ` +
        `${f2(ob.boundDecode.bleu)} (full: ${f2(ob.boundDecode.fullBleu)}) on those items.`,
      "",
    );
  }
  out.push("## Later tokens are easier?", "", r.laterTokens.sentence, "");
  const titles: Record<string, string> = {
    frontier: "BLEU against fixed-token layer speedup",
    oracle_depth: "Oracle depth by position",
    nll_gap: "NLL gap by position",
  };
  out.push("## Charts", "");
  for (const name of Object.keys(figs)) {
    out.push(`### ${titles[name] ?? name}`, "");
    if (png.includes(`${name}.png`)) out.push(`![${titles[name]}](${name}.png)`, "");
    out.push(`Interactive: [${name}.html](${name}.html)`, "");
  }
  set["report.md"] = out.join("\n");
  if (options.manifest) {
    // the items measured: the first of --test, or of the MRs held out of --train
    const test = (await procedureData(o)).test.slice(0, r.before.items);
    const rows = [
      ...sweepItemRows(r.before, test).map((x) => ({ phase: "before", ...x })),
      ...r.after.flatMap((a) =>
        a.sweep && a.row.fineTuned
          ? sweepItemRows(a.sweep, test).filter((x) => x.policy === a.row.policy)
            .map((x) => ({ phase: "after", ...x }))
          : []
      ),
    ];
    set[ITEMS_CSV_FILE] = toCsv(["phase", ...SWEEP_ITEM_COLUMNS], rows);
    set[RUN_MANIFEST_FILE] = manifestJson(buildManifest(options.manifest));
  }
  folder.writeSet(set, stage);
  return { report: "report.md", json: "procedure.json", html, png };
}

/**
 * The procedure as JSON: `{ before: [rows], after: [rows], ... }`, rows shaped as
 * `sweep --json` rows (each `after` row measured on the copy fine-tuned for its own policy,
 * with `fineTuned`), plus the held-out status and the later-tokens analysis.
 *
 * @param r a procedure result
 * @returns plain JSON
 * @example
 * ```ts
 * import { procedureToJson } from "./procedure.ts";
 * // console.log(JSON.stringify(procedureToJson(result)));
 * ```
 */
export function procedureToJson(r: ProcedureResult): Record<string, unknown> {
  return {
    before: r.before.rows,
    after: r.after.map((a) => a.row),
    model: r.options.model,
    train: r.options.train,
    test: r.options.test,
    items: r.before.items,
    steps: r.options.steps,
    ...(r.options.holdout ? { holdout: r.options.holdout, holdoutSeed: HOLDOUT_SEED } : {}),
    heldOut: r.heldOut,
    overlap: r.overlap,
    oracle: r.before.oracle
      ? {
        boundLayerSpeedup: r.before.oracle.boundLayerSpeedup,
        boundAgreement: r.before.oracle.boundDecode.agreement,
        meanByPosition: r.before.oracle.meanByPosition,
      }
      : undefined,
    laterTokens: r.laterTokens,
    wallSeconds: r.wallSeconds,
  };
}
