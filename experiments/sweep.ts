/**
 * Policy sweeps: run a list of exit policies over a dataset (column-wise batches, any
 * backend) and collect one table: layer speedup, FLOP speedup, measured speedup (decode
 * wall time per step of `full` over the policy's, same batches, same backend, same run),
 * BLEU, ROUGE-L, teacher-forced NLL of the references and agreement with the full model's
 * tokens, with 95% bootstrap intervals over items (seeded) for BLEU, ROUGE-L and the layer
 * speedup; the fixed-token speedups (each policy's plan on the full model's own outputs, so
 * longer outputs cannot make a policy look faster, see `fit.ts`), the mean output length
 * and the share of outputs cut at the length cap; agreement by position. Optionally the
 * oracle depth of the full model's outputs, its monotone bound (the best nested schedule
 * at or above the depths) and a decode under that bound.
 *
 * Indices: `i` is the generated-token index (token `i` comes from column `P - 1 + i`); a
 * policy's own input index `j = c - P` is one less (`i = j + 1`). Per-position figures here
 * are by `i`.
 *
 * Generations run batch by batch, every policy on a batch before the next one (rotating
 * the order), so that load changes on a shared machine affect all policies alike.
 *
 * Results are cached on disk (see `cache.ts`): generations with their timings, NLLs and
 * oracle depths, keyed by the model (folder, configuration, weight files' sizes and
 * times), the backend, the policy (its command-line form and its layer sets on the
 * sweep's batches), the prompts (and references), `maxNewTokens` and `batchSize`. A rerun
 * with the same inputs reuses them. Every entry records the run that measured it: a
 * measured speedup is flagged (`timedInSameRun: false`, `†` in Markdown) when the policy's
 * and the full model's timings come from different runs.
 *
 * @example
 * ```ts
 * import { loadModel } from "../decode/mod.ts";
 * import { E2E_DEVSET_URL, loadE2eCsv } from "../data/datasets.ts";
 * import { runSweep, sweepItemsFromE2e, sweepToMarkdown } from "./sweep.ts";
 * const model = await loadModel("bundled/models/tiny-opt-e2e", { backend: "cpu" });
 * const items = sweepItemsFromE2e((await loadE2eCsv(E2E_DEVSET_URL)).slice(0, 16));
 * const result = await runSweep(model, items, [
 *   "full", "linear:max=12,min=4,warmup=1", "earlyexit:linear:max=12,min=4",
 * ], { maxNewTokens: 48 });
 * console.log(sweepToMarkdown(result));
 * model.dispose();
 * ```
 * @module
 */
import type { Model } from "../decode/model.ts";
import { sourceKey } from "../model/convert.ts";
import { generate, type GenerateOutput, resolvePolicy } from "../decode/engine.ts";
import { parsePolicy, type Policy, setsForColumns } from "../schedule/mod.ts";
import { corpusBleu } from "../eval/bleu.ts";
import { corpusRougeL } from "../eval/rouge.ts";
import { applyTemplate, E2E_TEMPLATE, type E2eItem } from "../data/datasets.ts";
import { type NllResult, summarizeNll, teacherForcedNll } from "../eval/nll.ts";
import { tokenAgreement } from "../eval/agreement.ts";
import { oracleDepths, type OracleResult } from "../eval/oracle.ts";
import {
  bootstrapBleu,
  bootstrapRatio,
  bootstrapRougeL,
  type Interval,
} from "../eval/bootstrap.ts";
import { boundLayerSpeedup, boundPolicy, fixedTokenSpeedup, monotoneBound } from "../eval/fit.ts";
import { defaultCacheDir, hashKey, ResultCache } from "../io/cache.ts";
import {
  createProgress,
  type ProgressDisplay,
  type ProgressMode,
  type ProgressState,
} from "../io/progress.ts";

/** One input of a sweep: the prompt text and the references its output is scored against. */
export interface SweepItem {
  /** Prompt text (BOS is prepended by the tokenizer). */
  prompt: string;
  /** One or more references. */
  refs: string[];
  /** The input the prompt was made from (the data's input column), when known. */
  input?: string;
}

/** Options of {@linkcode runSweep}. */
export interface SweepOptions {
  /** Tokens to generate per prompt at most; also the plans' horizon for NLL (default 64). */
  maxNewTokens?: number;
  /** Rows per batch (default 8). */
  batchSize?: number;
  /**
   * Cache folder, or `false` for none. Default: `$SKIPDECODE_CACHE_DIR`, else
   * `.cache/skipdecode/` at the repository root.
   */
  cacheDir?: string | false;
  /** Teacher-forced NLL of the references (default `"first"`: each item's first; `false`: skip). */
  nll?: "first" | "all" | false;
  /**
   * Oracle depth of the full model's outputs: `false` (default), `true` (all items) or
   * `{ items, warmup }` (the first `items` items; warm-up default 1).
   */
  oracle?: boolean | { items?: number; warmup?: number };
  /**
   * Progress display: a mode of `createProgress` (default `"auto"`: a terminal line, or an
   * updating output in Jupyter), a display of your own, or `false`.
   */
  progress?: ProgressMode | ProgressDisplay | false;
  /** Also called with every progress state. */
  onProgress?: (state: ProgressState) => void;
  /** Custom policies that policy strings may name. */
  customPolicies?: readonly Policy[];
  /** Receives one-line notes (cache trouble, implicit horizons). Default: stderr. */
  onNote?: (note: string) => void;
  /** Bootstrap resamples of the confidence intervals (default 1000). */
  resamples?: number;
  /** Seed of the bootstrap (default 0). */
  seed?: number;
}

/** One row of the sweep table. */
export interface SweepRow {
  /** The policy's command-line form. */
  policy: string;
  /** `Σ L / Σ layers` over the generated tokens (the paper's headline figure). */
  layerSpeedup: number;
  /** Full-model FLOPs over the policy's on the same generated tokens. */
  flopSpeedup: number;
  /**
   * Layer speedup of the policy's plan on the full model's own outputs (teacher forced:
   * the same tokens for every policy), so longer outputs cannot make a policy look
   * faster; `full` gets 1, and two policies with the same budgets per position get the
   * same figure.
   */
  fixedLayerSpeedup: number;
  /** FLOP speedup on the full model's outputs, as `fixedLayerSpeedup`. */
  fixedFlopSpeedup: number;
  /** 95% bootstrap interval of `layerSpeedup` over items (seeded). */
  layerSpeedupCI: Interval;
  /**
   * Decode wall time per step of `full` over this policy's, same batches, same backend,
   * same run (see `timedInSameRun`). A step is one generated column of a batch (a batch
   * runs until its longest output ends), so policies whose outputs differ in length
   * compare fairly; the prompt prefill is left out, as the FLOP speedup leaves out the
   * prompt columns.
   */
  measuredSpeedup: number;
  /**
   * How `measuredSpeedup` was timed: one pass over the items after an untimed warm-up,
   * every policy run on a batch before the next batch (rotating order), so load changes hit
   * all alike; this is the range of the per-batch ratios (its spread) over
   * `measuredBatches` batches, absent when the timings come from different runs or fewer
   * than 2 batches.
   */
  measuredSpeedupRange?: Interval;
  /** Batches behind `measuredSpeedupRange`. */
  measuredBatches?: number;
  /** Corpus BLEU, 0 to 100 (sacreBLEU defaults). */
  bleu: number;
  /** 95% bootstrap interval of `bleu` over items (seeded). */
  bleuCI: Interval;
  /** Corpus ROUGE-L F, 0 to 1. */
  rougeL: number;
  /** 95% bootstrap interval of `rougeL` over items (seeded). */
  rougeLCI: Interval;
  /** Teacher-forced NLL per reference token (nats), `null` when not computed. */
  nll: number | null;
  /** `exp(nll)`, `null` when not computed. */
  perplexity: number | null;
  /** Share of generated tokens equal to the full model's (see `agreement.ts`). */
  agreement: number;
  /** Items whose output equals the full model's exactly. */
  exactMatches: number;
  /** Generated tokens per item (EOS included). */
  meanLength: number;
  /** Share of items stopped by `maxNewTokens` rather than EOS. */
  capShare: number;
  /** Mean prompt FLOPs per item under the plan (columns before the first producing one). */
  prefillFlops: number;
  /** Tokens generated (EOS included). */
  generatedTokens: number;
  /** Wall milliseconds of the whole generation (tokenising, prefill, decode). */
  generateMs: number;
  /** Milliseconds of the decode loops (all batches). */
  decodeMs: number;
  /** Decode steps run: per batch, its longest output minus one (the prefill gives the first). */
  decodeSteps: number;
  /** Generated tokens per second of prefill + decode. */
  tokensPerSecond: number;
  /** The generation came from the cache. */
  cached: boolean;
  /** This policy's and `full`'s timings were measured in the same run. */
  timedInSameRun: boolean;
}

/** The oracle of a sweep: depths, their monotone bound and a decode with it. */
export interface SweepOracle extends OracleResult {
  /** Per item, the suffix maximum of its depths (`monotoneBound`). */
  monotoneBound: number[][];
  /** `Σ L·positions / Σ bound`: the layer speedup of the best monotone schedule. */
  boundLayerSpeedup: number;
  /**
   * The oracle items decoded under their own bound schedules (depths were found one
   * budget at a time, so the bound need not reproduce the full outputs).
   */
  boundDecode: {
    /** Agreement with the full model's tokens. */
    agreement: number;
    /** Items equal to the full model's output. */
    exactMatches: number;
    /** Layer speedup of the generated tokens. */
    layerSpeedup: number;
    /** BLEU of the bound outputs on the oracle items. */
    bleu: number;
    /** BLEU of the full model's outputs on the same items. */
    fullBleu: number;
    /** The bound outputs. */
    outputs: string[];
  };
}

/** One policy's outputs, in item order. */
export interface SweepGeneration {
  /** The policy's command-line form. */
  policy: string;
  /**
   * Generated text, ids, why each stopped, and the active layers summed over its tokens
   * (absent in cache entries written before it was recorded).
   */
  outputs: { text: string; ids: number[]; finish: "eos" | "length"; layers?: number }[];
}

/** What {@linkcode runSweep} returns. */
export interface SweepResult {
  /** One row per policy, `full` first. */
  rows: SweepRow[];
  /** The model: where it came from and its shape. */
  model: { source: string; dir: string; layers: number; hiddenSize: number; params: number };
  /** Backend name. */
  backend: string;
  /** Items scored. */
  items: number;
  /** Generation length limit. */
  maxNewTokens: number;
  /** Rows per batch. */
  batchSize: number;
  /** Outputs of every policy. */
  generations: SweepGeneration[];
  /**
   * Budget per generated index `i` of each policy: the mean over items of their batch
   * plan's budget (batches differ under prompt decay, whose budgets depend on the prompt
   * length).
   */
  budgets: { policy: string; budgets: number[] }[];
  /** Teacher-forced NLL per generated index of each policy (when NLL was computed). */
  positionNll: { policy: string; nll: number[]; counts: number[] }[];
  /** Per-token teacher-forced NLL of every scored reference, per policy (not in the JSON). */
  nllItems: { policy: string; perToken: number[][] }[];
  /** Agreement with `full` per generated index `i`, and the items compared there. */
  agreementByPosition: { policy: string; agreement: number[]; counts: number[] }[];
  /** Oracle depths of the full model's outputs with their monotone bound, when asked. */
  oracle?: SweepOracle;
  /** Identifier of this run (stored with every fresh cache entry). */
  runId: string;
  /** ISO time the run began. */
  startedAt: string;
  /** Wall milliseconds of the whole sweep. */
  wallMs: number;
  /** Cache entries reused. */
  cacheHits: number;
}

/**
 * Sweep items from E2E items: the prompt from a template (default the tiny model's
 * `"{mr}\n"`), every reference kept.
 *
 * @param items E2E items (`loadE2eCsv`)
 * @param template prompt template (`applyTemplate`)
 * @returns the sweep items
 * @example
 * ```ts
 * import { sweepItemsFromE2e } from "./sweep.ts";
 * sweepItemsFromE2e([{ mr: "name[Aromi]", refs: ["Aromi."] }]);
 * // [{ prompt: "name[Aromi]\n", refs: ["Aromi."] }]
 * ```
 */
export function sweepItemsFromE2e(
  items: readonly E2eItem[],
  template: string = E2E_TEMPLATE,
): SweepItem[] {
  return items.map((it) => ({ prompt: applyTemplate(template, it), refs: [...it.refs] }));
}

/** A policy's generations over all items with their figures (a cache entry). */
export interface GenEntry {
  /** The run that measured the times. */
  runId: string;
  /** ISO time the entry was made. */
  createdAt: string;
  /** `Σ L / Σ layers` over the generated tokens. */
  layerSpeedup: number;
  /** Full-model FLOPs over the plan's on the generated tokens. */
  flopSpeedup: number;
  /** Wall milliseconds of the generations. */
  totalMs: number;
  /** Milliseconds of the decode loops. */
  decodeMs: number;
  /** Decode steps run (`decodeSteps`). */
  decodeSteps: number;
  /** Per batch: decode milliseconds and steps (absent in older cache entries). */
  batches?: { decodeMs: number; steps: number }[];
  /** Generated tokens per second of prefill + decode. */
  tokensPerSecond: number;
  /** Tokens generated (EOS included). */
  generatedTokens: number;
  /** Budget per generated input index of the first batch's plan. */
  budgets: number[];
  /** The outputs, in item order (with their active layers summed over their tokens). */
  outputs: { text: string; ids: number[]; finish: "eos" | "length"; layers?: number }[];
}

interface NllEntry {
  perToken: number[][];
}

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === "object" && v !== null && !Array.isArray(v);
const isNumber = (v: unknown) => typeof v === "number" && Number.isFinite(v);
const isIds = (v: unknown) =>
  Array.isArray(v) && v.every((x) => Number.isInteger(x) && (x as number) >= 0);

/** The shape of a cached generation entry of `items` outputs; a problem or `undefined`. */
function checkGenEntry(v: unknown, items: number): string | undefined {
  if (!isObject(v)) return "not an object";
  for (const k of ["layerSpeedup", "flopSpeedup", "totalMs", "decodeMs", "tokensPerSecond"]) {
    if (!isNumber(v[k]) || (v[k] as number) < 0) return `"${k}" is not a number >= 0`;
  }
  for (const k of ["decodeSteps", "generatedTokens"]) {
    if (!Number.isInteger(v[k]) || (v[k] as number) < 0) return `"${k}" is not a whole number`;
  }
  if (typeof v.runId !== "string") return `"runId" is not a string`;
  if (!isIds(v.budgets)) return `"budgets" is not a list of whole numbers`;
  const outs = v.outputs;
  if (!Array.isArray(outs) || outs.length !== items) return `"outputs" is not ${items} outputs`;
  for (const [i, o] of outs.entries()) {
    if (
      !isObject(o) || typeof o.text !== "string" || !isIds(o.ids) ||
      (o.finish !== "eos" && o.finish !== "length")
    ) return `output ${i} needs text, ids and finish`;
  }
  const tokens = outs.reduce((a, o) => a + (o.ids as number[]).length, 0);
  if (tokens !== v.generatedTokens) return `"generatedTokens" is not the outputs' ${tokens}`;
  return undefined;
}

/** The shape of a cached NLL entry of `pairs` references. */
function checkNllEntry(v: unknown, pairs: number): string | undefined {
  if (!isObject(v) || !Array.isArray(v.perToken) || v.perToken.length !== pairs) {
    return `"perToken" is not ${pairs} lists`;
  }
  if (!v.perToken.every((p) => Array.isArray(p) && p.length > 0 && p.every(isNumber))) {
    return `"perToken" holds a list that is empty or not numbers`;
  }
  return undefined;
}

/** The shape of a cached oracle result of `items` outputs. */
function checkOracleEntry(v: unknown, items: number): string | undefined {
  if (!isObject(v)) return "not an object";
  if (!Array.isArray(v.depths) || v.depths.length !== items || !v.depths.every(isIds)) {
    return `"depths" is not ${items} lists of whole numbers`;
  }
  if (!Array.isArray(v.byPosition) || !v.byPosition.every(isIds)) {
    return `"byPosition" is not lists of whole numbers`;
  }
  if (!Array.isArray(v.meanByPosition) || !v.meanByPosition.every(isNumber)) {
    return `"meanByPosition" is not numbers`;
  }
  for (const k of ["meanDepth", "unmatched", "layers", "warmup", "forwards"]) {
    if (!isNumber(v[k])) return `"${k}" is not a number`;
  }
  return undefined;
}

/**
 * Decode steps of a generation: per batch of `batchSize` consecutive outputs, the longest
 * output's length minus one (its first token comes from the prefill).
 *
 * @param lengths generated tokens per item, in input order
 * @param batchSize rows per batch
 * @returns the steps summed over batches
 * @example
 * ```ts
 * import { decodeSteps } from "./sweep.ts";
 * decodeSteps([3, 5, 2, 1], 2); // (5 - 1) + (2 - 1) = 5
 * ```
 */
export function decodeSteps(lengths: readonly number[], batchSize: number): number {
  let steps = 0;
  for (let b = 0; b < lengths.length; b += batchSize) {
    steps += Math.max(0, Math.max(...lengths.slice(b, b + batchSize)) - 1);
  }
  return steps;
}

/** Decode ms per step of `full` over the policy's (tokens/s ratio when nothing was decoded). */
function measuredSpeedup(full: GenEntry, p: GenEntry): number {
  if (full.decodeSteps > 0 && p.decodeSteps > 0 && full.decodeMs > 0 && p.decodeMs > 0) {
    return (full.decodeMs / full.decodeSteps) / (p.decodeMs / p.decodeSteps);
  }
  return p.tokensPerSecond / full.tokensPerSecond;
}

/**
 * The spread of the measured speedup over batches: per batch, `full`'s decode ms per step
 * over the policy's (batches where either decoded nothing left out); the range and the
 * number of batches. `undefined` when the entries lack per-batch times or come from
 * different runs, or fewer than 2 batches have both.
 */
function measuredSpread(
  full: GenEntry,
  p: GenEntry,
): { range: Interval; batches: number } | undefined {
  if (!full.batches || !p.batches || full.runId !== p.runId) return undefined;
  if (full.batches.length !== p.batches.length) return undefined;
  const ratios: number[] = [];
  full.batches.forEach((f, b) => {
    const q = p.batches![b];
    if (f.steps > 0 && q.steps > 0 && f.decodeMs > 0 && q.decodeMs > 0) {
      ratios.push((f.decodeMs / f.steps) / (q.decodeMs / q.steps));
    }
  });
  if (ratios.length < 2) return undefined;
  return { range: [Math.min(...ratios), Math.max(...ratios)], batches: ratios.length };
}

/** One generated item of a policy with the engine's accounting for it. */
export interface SweepGenItem {
  /** Generated text. */
  text: string;
  /** Generated ids (EOS included). */
  ids: number[];
  /** Why it stopped. */
  finish: "eos" | "length";
  /** Active layers summed over its generated tokens. */
  layers: number;
  /** FLOPs of its generated tokens under the plan. */
  flops: number;
  /** Full-model FLOPs of the same tokens. */
  fullFlops: number;
}

/**
 * One policy's generations over consecutive batches, item by item: what a single run
 * gathers over all batches and a work unit over its block. Blocks of whole batches
 * concatenated ({@linkcode concatGenParts}) give exactly the single run's part, and
 * {@linkcode finishGenPart} sums it in item order, so both give the same figures.
 */
export interface SweepGenPart {
  /** Per item, in input order. */
  items: SweepGenItem[];
  /** Budget per generated input index of the first batch's plan. */
  budgets?: number[];
  /** Wall milliseconds of the generations (tokenising, prefill, decode). */
  totalMs: number;
  /** Milliseconds of the prefills. */
  prefillMs: number;
  /** Milliseconds of the decode loops. */
  decodeMs: number;
  /** Per batch, in order: milliseconds of its decode loop and its decode steps. */
  batches?: { decodeMs: number; steps: number }[];
}

/**
 * An empty generation part.
 *
 * @returns a part with no items and zero times
 * @example
 * ```ts
 * import { newGenPart } from "./sweep.ts";
 * newGenPart().items.length; // 0
 * ```
 */
export function newGenPart(): SweepGenPart {
  return { items: [], totalMs: 0, prefillMs: 0, decodeMs: 0, batches: [] };
}

/**
 * Adds one batch's generation (the engine's own accounting, per item).
 *
 * @param a the part, changed in place
 * @param out one `generate` call's output (one batch)
 * @example
 * ```ts
 * import { accumulateGen, newGenPart } from "./sweep.ts";
 * const part = newGenPart();
 * // accumulateGen(part, await generate(model, prompts, { policy, maxNewTokens: 8 }));
 * ```
 */
export function accumulateGen(a: SweepGenPart, out: GenerateOutput): void {
  const p = out.plans[0];
  a.budgets ??= p.generatedLayers;
  a.totalMs += out.timing.totalMs;
  a.prefillMs += out.timing.prefillMs;
  a.decodeMs += out.timing.decodeMs;
  (a.batches ??= []).push({
    decodeMs: out.timing.decodeMs,
    steps: Math.max(0, Math.max(0, ...out.results.map((r) => r.ids.length)) - 1),
  });
  const full = p.accounting!.fullColumnFlops;
  for (const r of out.results) {
    a.items.push({
      text: r.text,
      ids: r.ids,
      finish: r.finish,
      layers: r.layers.reduce((x, y) => x + y, 0),
      flops: r.flops.reduce((x, y) => x + y, 0),
      fullFlops: full.slice(p.promptLength - 1, p.promptLength - 1 + r.ids.length)
        .reduce((x, y) => x + y, 0),
    });
  }
}

/**
 * Concatenates the parts of consecutive blocks (in item order): budgets from the first,
 * times summed.
 *
 * @param parts the blocks' parts, first block first
 * @returns one part over all their items
 * @example
 * ```ts
 * import { concatGenParts, newGenPart } from "./sweep.ts";
 * concatGenParts([newGenPart(), newGenPart()]).items.length; // 0
 * ```
 */
export function concatGenParts(parts: readonly SweepGenPart[]): SweepGenPart {
  const out = newGenPart();
  for (const p of parts) {
    out.items.push(...p.items);
    out.budgets ??= p.budgets;
    out.totalMs += p.totalMs;
    out.prefillMs += p.prefillMs;
    out.decodeMs += p.decodeMs;
    out.batches!.push(...(p.batches ?? []));
  }
  return out;
}

/**
 * The figures of a policy's generations (the sums taken in item order).
 *
 * @param a the part over all items
 * @param layers the model's `L`
 * @param runId the run that measured the times
 * @param batchSize rows per batch (for the decode steps)
 * @returns the cacheable generation entry
 */
function finishGenPart(
  a: SweepGenPart,
  layers: number,
  runId: string,
  batchSize: number,
): GenEntry {
  let tokens = 0, layersRun = 0, flops = 0, fullFlops = 0;
  for (const it of a.items) {
    tokens += it.ids.length;
    layersRun += it.layers;
    flops += it.flops;
    fullFlops += it.fullFlops;
  }
  const outputs = a.items.map((it) => ({
    text: it.text,
    ids: it.ids,
    finish: it.finish,
    layers: it.layers,
  }));
  return {
    runId,
    createdAt: new Date().toISOString(),
    layerSpeedup: layersRun ? (tokens * layers) / layersRun : 1,
    flopSpeedup: flops ? fullFlops / flops : 1,
    totalMs: a.totalMs,
    decodeMs: a.decodeMs,
    decodeSteps: decodeSteps(outputs.map((o) => o.ids.length), batchSize),
    batches: a.batches,
    tokensPerSecond: tokens / Math.max((a.prefillMs + a.decodeMs) / 1000, 1e-9),
    generatedTokens: tokens,
    budgets: a.budgets ?? [],
    outputs,
  };
}

/** Identity of a model for cache keys: folder, configuration, weight files' size and time. */
async function modelKey(model: Model): Promise<unknown> {
  return { config: model.config, weights: await sourceKey(model.weights) };
}

function paramCount(model: Model): number {
  const c = model.config;
  const d = c.hiddenSize, f = c.ffnDim;
  const perLayer = 4 * d * d + 4 * d + 2 * d * f + f + d + 4 * d;
  return c.numHiddenLayers * perLayer + c.vocabSize * c.wordEmbedProjDim +
    (c.maxPositionEmbeddings + 2) * d;
}

/** Everything the steps of a sweep share (built by {@linkcode prepareSweep}). */
interface SweepContext {
  model: Model;
  items: readonly SweepItem[];
  options: SweepOptions;
  resolved: Policy[];
  names: string[];
  N: number;
  batchSize: number;
  L: number;
  cache: ResultCache;
  display?: ProgressDisplay;
  mKey: unknown;
  backendName: string;
  prompts: string[];
  promptLengths: number[];
  nllPairs: SweepNllPair[];
  oracleCount: number;
  oracleWarmup: number;
  setsKey: (p: Policy) => Promise<string>;
  runId: string;
  startedAt: string;
  t0: number;
  cacheHits: number;
  unitsDone: number;
  report: (label: string, done: number, total: number, weight: number, base: number) => void;
  note: (line: string) => void;
}

// Progress units (measured on the tiny model): a generated item or a scored reference
// costs about one forward of a batch row, an oracle item about four (and its bound decode
// about one more).
const ORACLE_UNITS = 5;

/** Policies whose linear decay has no horizon: it falls back to `maxNewTokens`. */
function implicitHorizon(p: Policy): boolean {
  const j = p.toJSON() as unknown as Record<string, unknown>;
  if (j.kind === "earlyexit") {
    return (j.inner as Record<string, unknown>).kind === "linear" &&
      (j.inner as Record<string, unknown>).horizon === undefined;
  }
  return j.kind === "linear" && j.horizon === undefined;
}

/**
 * A sweep's policies in its order: parsed, `full` first (added when missing).
 *
 * @param policies policies or their command-line forms
 * @param customPolicies custom policies the strings may name
 * @returns the policies
 * @throws RangeError for a policy listed twice
 * @example
 * ```ts
 * import { sweepPolicies } from "./sweep.ts";
 * sweepPolicies(["constant:n=4"]).map(String); // ["full", "constant:n=4"]
 * ```
 */
export function sweepPolicies(
  policies: readonly (Policy | string)[],
  customPolicies: readonly Policy[] = [],
): Policy[] {
  const lookup = { custom: customPolicies };
  const resolved = policies.map((p) => typeof p === "string" ? parsePolicy(p, lookup) : p);
  if (!resolved.some((p) => String(p) === "full")) resolved.unshift(resolvePolicy("full"));
  else resolved.sort((a, b) => (String(a) === "full" ? -1 : String(b) === "full" ? 1 : 0));
  const names = resolved.map(String);
  const dup = names.find((n, i) => names.indexOf(n) !== i);
  if (dup) throw new RangeError(`runSweep: policy "${dup}" is listed twice`);
  return resolved;
}

/** Step 0: checks the inputs and sets up the cache, progress and cache keys. */
async function prepareSweep(
  model: Model,
  items: readonly SweepItem[],
  policies: readonly (Policy | string)[],
  options: SweepOptions,
): Promise<SweepContext> {
  const t0 = performance.now();
  const startedAt = new Date().toISOString();
  const runId = `${startedAt}-${crypto.randomUUID().slice(0, 8)}`;
  if (items.length === 0) throw new RangeError("runSweep: no items");
  items.forEach((it, i) => {
    if (typeof it.prompt !== "string" || !Array.isArray(it.refs) || it.refs.length === 0) {
      throw new RangeError(`runSweep: item ${i} needs a prompt string and at least one reference`);
    }
  });
  const N = options.maxNewTokens ?? 64;
  const batchSize = options.batchSize ?? 8;
  const resolved = sweepPolicies(policies, options.customPolicies);
  const names = resolved.map(String);
  const note = options.onNote ?? ((n: string) => console.error(`note: ${n}`));
  for (const p of resolved) {
    if (implicitHorizon(p)) {
      note(
        `${
          String(p)
        } has no horizon: its decay spans maxNewTokens = ${N} (add horizon=H to fix it)`,
      );
    }
  }
  const cache = new ResultCache(
    options.cacheDir === undefined ? defaultCacheDir() : options.cacheDir,
    options.onNote,
  );
  const display = options.progress === false
    ? undefined
    : typeof options.progress === "object"
    ? options.progress
    : createProgress(options.progress ?? "auto");
  const L = model.config.numHiddenLayers;
  const nllMode = options.nll ?? "first";
  const oracleOpt = options.oracle === true ? {} : options.oracle || undefined;
  const oracleCount = oracleOpt ? Math.min(oracleOpt.items ?? items.length, items.length) : 0;
  const oracleWarmup = oracleOpt?.warmup ?? 1;
  const nllPairs = sweepNllPairs(items, nllMode);
  const totalUnits = resolved.length * (items.length + nllPairs.length) +
    oracleCount * ORACLE_UNITS;
  const report = (label: string, done: number, total: number, weight: number, base: number) => {
    const state: ProgressState = {
      label,
      done,
      total,
      overall: (base + weight * done) / totalUnits,
    };
    display?.update(state);
    options.onProgress?.(state);
  };
  const prompts = items.map((it) => it.prompt);
  const promptLengths = prompts.map((p) => model.tokenizer.encode(p).length);
  // Before any plan is built (a plan holds a layer set per column: 1e9 columns is no plan).
  if (!Number.isInteger(N) || N < 1 || !Number.isInteger(batchSize) || batchSize < 1) {
    throw new RangeError(
      `runSweep: maxNewTokens and batchSize must be whole numbers >= 1, got ${N}, ${batchSize}`,
    );
  }
  const longest = Math.max(...promptLengths);
  if (longest + N - 1 > model.config.maxPositionEmbeddings) {
    throw new RangeError(
      `runSweep: maxNewTokens ${N} with a ${longest}-token prompt needs ${longest + N - 1} ` +
        `positions; the model has ${model.config.maxPositionEmbeddings} (max_position_embeddings)`,
    );
  }
  const batchP = [
    ...new Set(
      Array.from(
        { length: Math.ceil(items.length / batchSize) },
        (_, b) => Math.max(...promptLengths.slice(b * batchSize, (b + 1) * batchSize)),
      ),
    ),
  ].sort((a, b) => a - b);
  const setsKey = async (p: Policy) =>
    await hashKey(
      batchP.map((P) =>
        setsForColumns(p, { layers: L, promptLength: P, maxNewTokens: N, columns: P + N - 1 })
      ),
    );
  return {
    model,
    items,
    options,
    resolved,
    names,
    N,
    batchSize,
    L,
    cache,
    display,
    mKey: await modelKey(model),
    backendName: model.backend.name,
    prompts,
    promptLengths,
    nllPairs,
    oracleCount,
    oracleWarmup,
    setsKey,
    runId,
    startedAt,
    t0,
    cacheHits: 0,
    unitsDone: 0,
    report,
    note,
  };
}

/**
 * Step 1: generations. Cached ones are read; the others run batch by batch, every missing
 * policy on a batch before the next batch (in a rotating order), so that load changes on a
 * shared machine hit all of them alike and the measured speedups compare like with like.
 */
async function sweepGenerations(
  ctx: SweepContext,
): Promise<{ entry: GenEntry; cached: boolean }[]> {
  const { model, resolved, names, prompts, N, batchSize, cache, items } = ctx;
  const keys = [];
  for (let k = 0; k < resolved.length; k++) {
    keys.push({
      kind: "generate",
      model: ctx.mKey,
      backend: ctx.backendName,
      policy: names[k],
      sets: await ctx.setsKey(resolved[k]),
      prompts,
      maxNewTokens: N,
      batchSize,
    });
  }
  const found: (GenEntry | undefined)[] = [];
  for (const key of keys) {
    found.push(await cache.get<GenEntry>(key, (v) => checkGenEntry(v, items.length)));
  }
  ctx.cacheHits += found.filter(Boolean).length;
  const todo = resolved.map((_, k) => k).filter((k) => !found[k]);
  if (todo.length > 0) {
    // Untimed warm-up (JIT, shader compilation) so the first timed policy is not penalised.
    await generate(model, prompts.slice(0, Math.min(batchSize, 2)), { maxNewTokens: 2, batchSize });
    const acc = new Map(todo.map((k) => [k, newGenPart()]));
    const batches = Math.ceil(items.length / batchSize);
    const label = `generate ${todo.length} ${todo.length === 1 ? "policy" : "policies"}`;
    const base = ctx.unitsDone;
    ctx.report(label, 0, items.length, todo.length, base);
    for (let b = 0; b < batches; b++) {
      const rows = prompts.slice(b * batchSize, (b + 1) * batchSize);
      for (let i = 0; i < todo.length; i++) {
        const k = todo[(b + i) % todo.length];
        const out = await generate(model, rows, {
          policy: resolved[k],
          maxNewTokens: N,
          batchSize,
        });
        accumulateGen(acc.get(k)!, out);
      }
      ctx.report(
        label,
        Math.min((b + 1) * batchSize, items.length),
        items.length,
        todo.length,
        base,
      );
    }
    for (const k of todo) {
      const entry = finishGenPart(acc.get(k)!, ctx.L, ctx.runId, batchSize);
      await cache.put(keys[k], entry);
      found[k] = entry;
    }
  }
  ctx.unitsDone += resolved.length * items.length;
  return found.map((entry, k) => ({ entry: entry!, cached: !todo.includes(k) }));
}

/** A reference scored by teacher forcing, with the index of its item in the sweep. */
export interface SweepNllPair {
  /** The item's prompt. */
  prompt: string;
  /** The reference scored. */
  reference: string;
  /** Index of the item in the sweep's items. */
  item: number;
}

/**
 * The references a sweep scores: each item's first (`"first"`), all (`"all"`) or none.
 *
 * @param items the sweep's items
 * @param mode the NLL mode
 * @param offset index of `items[0]` in the whole sweep (for a block of it)
 * @returns the pairs, in item order
 * @example
 * ```ts
 * import { sweepNllPairs } from "./sweep.ts";
 * sweepNllPairs([{ prompt: "a\n", refs: ["A.", "B."] }], "all").length; // 2
 * ```
 */
export function sweepNllPairs(
  items: readonly SweepItem[],
  mode: "first" | "all" | false,
  offset = 0,
): SweepNllPair[] {
  if (mode === false) return [];
  return items.flatMap((it, i) =>
    (mode === "all" ? it.refs : it.refs.slice(0, 1)).map((r) => ({
      prompt: it.prompt,
      reference: r,
      item: offset + i,
    }))
  );
}

/**
 * Teacher-forced NLL of a sweep's references, batched by the sweep's item batches (the
 * references of the items of one generation batch, `batchSize` at a time), so that a block
 * of whole item batches scores exactly as the same items do inside the whole sweep.
 *
 * @param model the model
 * @param pairs references with their item indices (`sweepNllPairs`)
 * @param o the policy, the plans' horizon, rows per batch, progress
 * @returns the NLL result over all pairs, in order
 * @example
 * ```ts
 * import { nllByItemBatch } from "./sweep.ts";
 * // await nllByItemBatch(model, pairs, { policy: "full", horizon: 32, batchSize: 8 });
 * ```
 */
export async function nllByItemBatch(
  model: Model,
  pairs: readonly SweepNllPair[],
  o: {
    policy: Policy;
    horizon: number;
    batchSize: number;
    onProgress?: (done: number, total: number) => void;
  },
): Promise<NllResult> {
  const items: NllResult["items"] = [];
  for (let s = 0; s < pairs.length;) {
    const group = Math.floor(pairs[s].item / o.batchSize);
    let e = s;
    while (e < pairs.length && Math.floor(pairs[e].item / o.batchSize) === group) e++;
    const r = await teacherForcedNll(model, pairs.slice(s, e), {
      policy: o.policy,
      horizon: o.horizon,
      batchSize: o.batchSize,
    });
    items.push(...r.items);
    s = e;
    o.onProgress?.(s, pairs.length);
  }
  return summarizeNll(String(o.policy), items);
}

/** Step 2: teacher-forced NLL of the references under each policy's plan (horizon N). */
async function sweepNll(ctx: SweepContext): Promise<(NllResult | undefined)[]> {
  const { resolved, names, nllPairs, N, batchSize, cache, model } = ctx;
  const nlls: (NllResult | undefined)[] = [];
  for (let k = 0; k < resolved.length; k++) {
    if (nllPairs.length === 0) {
      nlls.push(undefined);
      continue;
    }
    const label = `nll ${names[k]} (${k + 1}/${resolved.length})`;
    const key = {
      kind: "nll",
      model: ctx.mKey,
      backend: ctx.backendName,
      policy: names[k],
      sets: await ctx.setsKey(resolved[k]),
      pairs: nllPairs,
      horizon: N,
      batchSize,
      grouping: "item-batch",
    };
    const base = ctx.unitsDone;
    const hit = await cache.get<NllEntry>(key, (v) => checkNllEntry(v, nllPairs.length));
    let result: NllResult;
    if (hit) {
      ctx.cacheHits++;
      result = summarizeNll(
        names[k],
        hit.perToken.map((p) => ({
          nll: p.reduce((a, b) => a + b, 0),
          tokens: p.length,
          perToken: p,
        })),
      );
    } else {
      ctx.report(label, 0, nllPairs.length, 1, base);
      result = await nllByItemBatch(model, nllPairs, {
        policy: resolved[k],
        horizon: N,
        batchSize,
        onProgress: (done, total) => ctx.report(label, done, total, 1, base),
      });
      await cache.put(key, { perToken: result.items.map((i) => i.perToken) } as NllEntry);
    }
    ctx.report(label, nllPairs.length, nllPairs.length, 1, base);
    ctx.unitsDone += nllPairs.length;
    nlls.push(result);
  }
  return nlls;
}

/**
 * Step 3: oracle depth of the full model's outputs, their monotone bound, and a decode
 * of every oracle item under its own bound schedule (one item per batch), scored for
 * agreement with the full model.
 */
async function sweepOracle(
  ctx: SweepContext,
  fullEntry: GenEntry,
): Promise<SweepOracle | undefined> {
  const { oracleCount, oracleWarmup, prompts, model, batchSize, cache, N } = ctx;
  if (oracleCount === 0) return undefined;
  const fullOut = fullEntry.outputs.slice(0, oracleCount);
  const oItems = fullOut.map((o, i) => ({ prompt: prompts[i], tokens: o.ids }));
  const key = {
    kind: "oracle",
    model: ctx.mKey,
    backend: ctx.backendName,
    items: oItems,
    warmup: oracleWarmup,
    setKind: "skipdecode",
    batchSize,
  };
  const base = ctx.unitsDone;
  const label = `oracle depth (w=${oracleWarmup})`;
  let oracle = await cache.get<OracleResult>(key, (v) => checkOracleEntry(v, oracleCount));
  if (oracle) ctx.cacheHits++;
  else {
    ctx.report(label, 0, oracleCount, ORACLE_UNITS, base);
    oracle = await oracleDepths(model, oItems, {
      warmup: oracleWarmup,
      batchSize,
      onProgress: (done, total) => ctx.report(label, done, total, ORACLE_UNITS - 1, base),
    });
    await cache.put(key, oracle);
  }
  const boundItems = await boundDecodeItems(model, prompts.slice(0, oracleCount), oracle, {
    maxNewTokens: N,
    onItem: (done) =>
      ctx.report(
        "decode with the monotone bound",
        done,
        oracleCount,
        1,
        base + (ORACLE_UNITS - 1) * oracleCount,
      ),
  });
  ctx.unitsDone += oracleCount * ORACLE_UNITS;
  return assembleOracle(
    oracle,
    boundItems,
    fullOut,
    ctx.items.slice(0, oracleCount).map((it) => it.refs),
  );
}

/** One oracle item decoded under its own monotone bound schedule. */
export interface BoundItem {
  /** Generated ids. */
  ids: number[];
  /** Generated text, trimmed. */
  text: string;
  /** Active layers summed over its tokens. */
  layers: number;
}

/**
 * Decodes every oracle item alone under the monotone bound of its own depths (its plan
 * depends on its own bound, so one item per batch).
 *
 * @param model the model
 * @param prompts the oracle items' prompts
 * @param oracle their oracle depths
 * @param o `maxNewTokens`, progress per item
 * @returns per item, the ids, text and layers run
 * @example
 * ```ts
 * import { boundDecodeItems } from "./sweep.ts";
 * // const items = await boundDecodeItems(model, prompts, oracle, { maxNewTokens: 32 });
 * ```
 */
export async function boundDecodeItems(
  model: Model,
  prompts: readonly string[],
  oracle: OracleResult,
  o: { maxNewTokens: number; onItem?: (done: number) => void },
): Promise<BoundItem[]> {
  const bound = monotoneBound(oracle.depths);
  const out: BoundItem[] = [];
  for (let i = 0; i < bound.length; i++) {
    if (bound[i].length === 0) out.push({ ids: [], text: "", layers: 0 });
    else {
      const g = await generate(model, [prompts[i]], {
        policy: boundPolicy(bound[i], { layers: oracle.layers, warmup: oracle.warmup }),
        maxNewTokens: o.maxNewTokens,
        batchSize: 1,
      });
      const r = g.results[0];
      out.push({ ids: r.ids, text: r.text.trim(), layers: r.layers.reduce((a, b) => a + b, 0) });
    }
    o.onItem?.(i + 1);
  }
  return out;
}

/**
 * A sweep's oracle section from the depths, the bound decodes and the full model's
 * outputs (pure: a single run and a merge of units build it alike).
 *
 * @param oracle the oracle depths of the full outputs
 * @param boundItems the bound decodes, per item
 * @param fullOutputs the full model's outputs on those items
 * @param refs their references
 * @returns the oracle with its monotone bound and the bound decode's scores
 * @example
 * ```ts
 * import { assembleOracle } from "./sweep.ts";
 * // const o = assembleOracle(oracle, boundItems, fullOutputs, refs);
 * ```
 */
export function assembleOracle(
  oracle: OracleResult,
  boundItems: readonly BoundItem[],
  fullOutputs: readonly { ids: number[]; text: string }[],
  refs: readonly string[][],
): SweepOracle {
  const bound = monotoneBound(oracle.depths);
  let layersRun = 0, tokens = 0;
  for (const b of boundItems) {
    layersRun += b.layers;
    tokens += b.ids.length;
  }
  const agree = tokenAgreement(boundItems.map((b) => b.ids), fullOutputs.map((o) => o.ids));
  return {
    ...oracle,
    monotoneBound: bound,
    boundLayerSpeedup: boundLayerSpeedup(bound, oracle.layers),
    boundDecode: {
      agreement: agree.agreement,
      exactMatches: agree.exactMatches,
      layerSpeedup: layersRun ? (tokens * oracle.layers) / layersRun : 1,
      bleu: corpusBleu(boundItems.map((b) => b.text), refs).score,
      fullBleu: corpusBleu(fullOutputs.map((o) => o.text.trim()), refs).score,
      outputs: boundItems.map((b) => b.text),
    },
  };
}

/** Step 4: the table (with fixed-token speedups and bootstrap intervals) and per-position data. */
function sweepRows(
  ctx: SweepAssembly,
  gens: { entry: GenEntry; cached: boolean }[],
): {
  rows: SweepRow[];
  agreementByPosition: SweepResult["agreementByPosition"];
  budgets: SweepResult["budgets"];
} {
  const { items, names, N, batchSize, promptLengths, config, nlls } = ctx;
  const model = { config };
  const refs = items.map((it) => it.refs);
  const full = gens[0].entry;
  const fullIds = full.outputs.map((o) => o.ids);
  const fullLengths = fullIds.map((ids) => ids.length);
  const boot = { resamples: ctx.resamples ?? 1000, seed: ctx.seed ?? 0 };
  const agreementByPosition: SweepResult["agreementByPosition"] = [];
  const budgets: SweepResult["budgets"] = [];
  const rows: SweepRow[] = gens.map(({ entry, cached }, k) => {
    const hyps = entry.outputs.map((o) => o.text.trim());
    const agree = tokenAgreement(entry.outputs.map((o) => o.ids), fullIds);
    agreementByPosition.push({
      policy: names[k],
      agreement: agree.byPosition,
      counts: agree.positionCounts,
    });
    const nll = nlls[k];
    const opts = { config: model.config, promptLengths, batchSize, maxNewTokens: N };
    const fixedTok = fixedTokenSpeedup(ctx.resolved[k], { ...opts, lengths: fullLengths });
    const own = fixedTokenSpeedup(ctx.resolved[k], {
      ...opts,
      lengths: entry.outputs.map((o) => o.ids.length),
    });
    budgets.push({ policy: names[k], budgets: own.meanBudgets });
    return {
      policy: names[k],
      layerSpeedup: entry.layerSpeedup,
      flopSpeedup: entry.flopSpeedup,
      fixedLayerSpeedup: fixedTok.layerSpeedup,
      fixedFlopSpeedup: fixedTok.flopSpeedup,
      measuredSpeedup: measuredSpeedup(full, entry),
      ...(() => {
        const sp = measuredSpread(full, entry);
        return sp ? { measuredSpeedupRange: sp.range, measuredBatches: sp.batches } : {};
      })(),
      bleu: corpusBleu(hyps, refs).score,
      bleuCI: bootstrapBleu(hyps, refs, boot),
      rougeL: corpusRougeL(hyps, refs).fmeasure,
      rougeLCI: bootstrapRougeL(hyps, refs, boot),
      layerSpeedupCI: bootstrapRatio(
        own.items.map((x) => x.fullLayers),
        own.items.map((x) => x.layers),
        boot,
      ),
      nll: nll ? nll.meanNll : null,
      perplexity: nll ? nll.perplexity : null,
      agreement: agree.agreement,
      exactMatches: agree.exactMatches,
      meanLength: entry.generatedTokens / items.length,
      capShare: entry.outputs.filter((o) => o.finish === "length").length / items.length,
      prefillFlops: own.prefillFlops,
      generatedTokens: entry.generatedTokens,
      generateMs: entry.totalMs,
      decodeMs: entry.decodeMs,
      decodeSteps: entry.decodeSteps,
      tokensPerSecond: entry.tokensPerSecond,
      cached,
      timedInSameRun: entry.runId === full.runId,
    };
  });
  return { rows, agreementByPosition, budgets };
}

/**
 * Runs a list of policies over items and builds the sweep table (see the module
 * documentation). `full` is added first when missing: it is the reference of the
 * measured speedup, the fixed-token speedups and the agreement. The work runs in named
 * steps: prepare (checks, cache keys), generations, NLL, oracle (with the monotone bound
 * and its decode), table.
 *
 * @param model a loaded model (`loadModel`)
 * @param items prompts with references
 * @param policies policies or their command-line forms
 * @param options generation length, batch size, cache, NLL, oracle, progress
 * @returns the table, the outputs, and the per-position figures for the charts
 * @throws RangeError for duplicate policies or no items
 * @example
 * ```ts
 * import { loadModel } from "../decode/mod.ts";
 * import { runSweep } from "./sweep.ts";
 * const model = await loadModel("bundled/models/tiny-opt-e2e", { backend: "cpu" });
 * const r = await runSweep(model, [{ prompt: "name[Aromi]\n", refs: ["Aromi is a place."] }],
 *   ["linear:max=12,min=4,warmup=1"], { maxNewTokens: 24, progress: false });
 * console.log(r.rows.map((x) => [x.policy, x.layerSpeedup, x.fixedLayerSpeedup, x.bleu]));
 * ```
 */
export async function runSweep(
  model: Model,
  items: readonly SweepItem[],
  policies: readonly (Policy | string)[],
  options: SweepOptions = {},
): Promise<SweepResult> {
  const ctx = await prepareSweep(model, items, policies, options);
  const gens = await sweepGenerations(ctx);
  const nlls = await sweepNll(ctx);
  const oracle = await sweepOracle(ctx, gens[0].entry);
  await ctx.display?.finish(
    `sweep: ${ctx.resolved.length} policies x ${items.length} items on ${ctx.backendName}` +
      (ctx.cacheHits ? `, ${ctx.cacheHits} cached results reused` : ""),
  );
  return assembleSweep({
    model: sweepModelInfo(model),
    config: model.config,
    backend: ctx.backendName,
    items,
    promptLengths: ctx.promptLengths,
    names: ctx.names,
    resolved: ctx.resolved,
    N: ctx.N,
    batchSize: ctx.batchSize,
    gens: gens.map((g) => ({ ...g, part: undefined })),
    nlls,
    oracle,
    runId: ctx.runId,
    startedAt: ctx.startedAt,
    wallMs: performance.now() - ctx.t0,
    cacheHits: ctx.cacheHits,
    resamples: options.resamples,
    seed: options.seed,
  });
}

/**
 * Where a sweep's model came from and its shape (`SweepResult.model`).
 *
 * @param model a loaded model
 * @returns source, folder, layers, hidden size, parameters
 * @example
 * ```ts
 * import { sweepModelInfo } from "./sweep.ts";
 * // sweepModelInfo(model).layers; // 12
 * ```
 */
export function sweepModelInfo(model: Model): SweepResult["model"] {
  return {
    source: model.source,
    dir: model.dir,
    layers: model.config.numHiddenLayers,
    hiddenSize: model.config.hiddenSize,
    params: paramCount(model),
  };
}

/**
 * Everything a sweep's table is computed from: per-policy generations (a cached entry or
 * a part gathered item by item), per-policy NLL results, and the run's settings. A single
 * run and a merge of work units both build their result from it ({@linkcode assembleSweep}).
 */
export interface SweepAssembly {
  /** `SweepResult.model`. */
  model: SweepResult["model"];
  /** The model's configuration (for the fixed-token speedups). */
  config: Model["config"];
  /** Backend name. */
  backend: string;
  /** The items, in order. */
  items: readonly SweepItem[];
  /** Prompt tokens per item (BOS included). */
  promptLengths: readonly number[];
  /** Policies' command-line forms, `full` first. */
  names: readonly string[];
  /** The policies, in the same order. */
  resolved: readonly Policy[];
  /** `maxNewTokens`. */
  N: number;
  /** Rows per batch. */
  batchSize: number;
  /** Per policy: a cached entry, or a part over all items (with the run that timed it). */
  gens: { entry?: GenEntry; part?: SweepGenPart; runId?: string; cached: boolean }[];
  /** Per policy, the NLL result (`undefined` without NLL). */
  nlls: (NllResult | undefined)[];
  /** The oracle, when computed. */
  oracle?: SweepOracle;
  /** Identifier of the run. */
  runId: string;
  /** ISO time the run began. */
  startedAt: string;
  /** Wall milliseconds. */
  wallMs: number;
  /** Cache entries reused. */
  cacheHits: number;
  /** Bootstrap resamples (default 1000). */
  resamples?: number;
  /** Bootstrap seed (default 0). */
  seed?: number;
}

/**
 * Builds a sweep's result (table with bootstrap intervals, per-position figures, outputs)
 * from its per-item data. Pure: the same data gives the same rows, whether it was
 * gathered in one process or merged from work units.
 *
 * @param a the per-item data and settings
 * @returns the sweep result
 * @example
 * ```ts
 * import { assembleSweep } from "./sweep.ts";
 * // const result = assembleSweep({ ...settings, gens, nlls });
 * ```
 */
export function assembleSweep(a: SweepAssembly): SweepResult {
  const L = a.config.numHiddenLayers;
  const gens = a.gens.map((g) => ({
    entry: g.entry ?? finishGenPart(g.part!, L, g.runId ?? a.runId, a.batchSize),
    cached: g.cached,
  }));
  const { rows, agreementByPosition, budgets } = sweepRows(a, gens);
  return {
    rows,
    model: a.model,
    backend: a.backend,
    items: a.items.length,
    maxNewTokens: a.N,
    batchSize: a.batchSize,
    generations: gens.map(({ entry }, k) => ({ policy: a.names[k], outputs: entry.outputs })),
    budgets,
    positionNll: a.nlls.flatMap((n, k) =>
      n ? [{ policy: a.names[k], nll: n.positionNll, counts: n.positionCounts }] : []
    ),
    nllItems: a.nlls.flatMap((n, k) =>
      n ? [{ policy: a.names[k], perToken: n.items.map((i) => i.perToken) }] : []
    ),
    agreementByPosition,
    oracle: a.oracle,
    runId: a.runId,
    startedAt: a.startedAt,
    wallMs: a.wallMs,
    cacheHits: a.cacheHits,
  };
}

/**
 * The sweep table as plain JSON: the run's settings and one object per policy.
 *
 * @param result a sweep result
 * @returns `{ model, backend, items, maxNewTokens, batchSize, startedAt, wallMs, rows }`
 * @example
 * ```ts
 * import { sweepToJson } from "./sweep.ts";
 * // await Deno.writeTextFile("sweep.json", JSON.stringify(sweepToJson(result), null, 2));
 * ```
 */
export function sweepToJson(result: SweepResult): Record<string, unknown> {
  return {
    model: result.model,
    backend: result.backend,
    items: result.items,
    maxNewTokens: result.maxNewTokens,
    batchSize: result.batchSize,
    startedAt: result.startedAt,
    wallMs: result.wallMs,
    cacheHits: result.cacheHits,
    rows: result.rows,
    agreementByPosition: result.agreementByPosition,
    ...(result.oracle
      ? {
        oracle: {
          meanDepth: result.oracle.meanDepth,
          meanByPosition: result.oracle.meanByPosition,
          warmup: result.oracle.warmup,
          items: result.oracle.depths.length,
          depths: result.oracle.depths,
          monotoneBound: result.oracle.monotoneBound,
          boundLayerSpeedup: result.oracle.boundLayerSpeedup,
          boundAgreement: result.oracle.boundDecode.agreement,
          boundDecode: { ...result.oracle.boundDecode, outputs: undefined },
        },
      }
      : {}),
  };
}

const fixed = (x: number | null, digits: number) => x === null ? "–" : x.toFixed(digits);
const ci = (x: Interval, digits: number) =>
  Number.isFinite(x[0]) ? ` [${x[0].toFixed(digits)}, ${x[1].toFixed(digits)}]` : "";

/**
 * The sweep table in Markdown: policy, layer / FLOP / measured speedup, BLEU, ROUGE-L,
 * NLL, agreement. A measured speedup whose timings come from different runs (cache) is
 * marked `†` with a footnote.
 *
 * @param result a sweep result
 * @returns the Markdown table and its notes
 * @example
 * ```ts
 * import { sweepToMarkdown } from "./sweep.ts";
 * // console.log(sweepToMarkdown(result));
 * ```
 */
export function sweepToMarkdown(result: SweepResult): string {
  const lines = [
    "| policy | layer speedup [95% CI] | fixed-token layer speedup | FLOP speedup | " +
    "fixed-token FLOP speedup | measured speedup, single pass [batch range] | BLEU [95% CI] | ROUGE-L [95% CI] | NLL | " +
    "agreement | mean length | at cap |",
    "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
  ];
  let mixed = false;
  for (const r of result.rows) {
    const mark = r.timedInSameRun ? "" : "†";
    mixed ||= !r.timedInSameRun;
    lines.push(
      `| \`${r.policy}\` | ${r.layerSpeedup.toFixed(2)}x${ci(r.layerSpeedupCI, 2)} | ` +
        `${r.fixedLayerSpeedup.toFixed(2)}x | ${r.flopSpeedup.toFixed(2)}x | ` +
        `${r.fixedFlopSpeedup.toFixed(2)}x | ${r.measuredSpeedup.toFixed(2)}x${mark}${
          r.measuredSpeedupRange
            ? ` [${r.measuredSpeedupRange[0].toFixed(2)}, ${r.measuredSpeedupRange[1].toFixed(2)}]`
            : ""
        } | ` +
        `${r.bleu.toFixed(2)}${ci(r.bleuCI, 1)} | ${r.rougeL.toFixed(4)}${ci(r.rougeLCI, 3)} | ` +
        `${fixed(r.nll, 4)} | ${(100 * r.agreement).toFixed(1)}% | ${r.meanLength.toFixed(1)} | ` +
        `${(100 * r.capShare).toFixed(0)}% |`,
    );
  }
  const notes = [
    "",
    `${result.items} items, at most ${result.maxNewTokens} new tokens, batches of ` +
    `${result.batchSize}, ${result.backend} backend. BLEU: sacreBLEU defaults (0-100); ` +
    `ROUGE-L: F-measure (0-1); intervals: 95% bootstrap over items (seeded); NLL: ` +
    `teacher-forced nats per reference token under the policy's plan; agreement: share of ` +
    `generated tokens equal to \`full\`'s; layer and FLOP speedup: on the tokens each ` +
    `policy generated; fixed-token speedups: the policy's plan on \`full\`'s own outputs ` +
    `(the same tokens for every policy: longer outputs cannot make a policy look faster); ` +
    `measured speedup: \`full\`'s decode time per step over the policy's, from a single ` +
    `timed pass (after an untimed warm-up, policies interleaved batch by batch), not ` +
    `repeated: the bracket is the range of the per-batch ratios, the spread to read it ` +
    `with (a difference inside it is noise; \`deno task bench\` times repeated runs); mean length: ` +
    `generated tokens per item; at cap: share of items stopped by the length limit.`,
  ];
  if (result.oracle) {
    const o = result.oracle;
    notes.push(
      "",
      `Best monotone schedule (suffix maximum of the oracle depths, ${o.depths.length} items): ` +
        `layer speedup ${o.boundLayerSpeedup.toFixed(2)}x on \`full\`'s tokens; decoded with ` +
        `it, agreement ${(100 * o.boundDecode.agreement).toFixed(1)}% ` +
        `(${o.boundDecode.exactMatches}/${o.depths.length} outputs identical), BLEU ` +
        `${o.boundDecode.bleu.toFixed(2)} against \`full\`'s ${
          o.boundDecode.fullBleu.toFixed(2)
        } on those items.`,
    );
  }
  if (mixed) {
    notes.push(
      "",
      "† timings of this policy and of `full` come from different runs (cached, or work " +
        "units of other processes): rerun in one process without the cache for a same-run " +
        "measurement.",
    );
  }
  return [...lines, ...notes].join("\n") + "\n";
}
