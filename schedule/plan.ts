/**
 * Plans (docs/DESIGN.md §2-3, §5): the per-column active-layer sets a policy gives a batch, checked
 * against the nesting invariant (`S(c) ⊆ S(c')` for all `c' < c`), with the figures the
 * engine and the benchmark report: layers run per generated token, the prefix of columns
 * each layer runs on (its KV-cache slots), FLOPs and the two speedups.
 *
 * A plan covers the columns actually run: `0 .. P + N - 2`, where column `P - 1 + i`
 * produces generated token `i` (`i = 0 .. N - 1`). The sets go to a backend's
 * `DecodeRequest.sets` as they are.
 *
 * @module
 */
import { PlanError, PolicyError } from "./errors.ts";
import { type ColumnContext, isPolicy, type Policy } from "./policy.ts";
import { layerCapacity } from "./active.ts";

/** The model sizes the compute accounting needs (docs/DESIGN.md §5). */
export interface ModelDims {
  /** Model width `d`. */
  hiddenSize: number;
  /** MLP width `f`. */
  ffnDim: number;
  /** Rows of the LM head `V`. */
  vocabSize: number;
  /** Embedding width `dp`; `project_in`/`project_out` exist when it differs from `d`. */
  wordEmbedProjDim: number;
}

/** What {@linkcode plan} needs: the shape of the run and, optionally, the model's sizes. */
export interface PlanOptions {
  /** Decoder layers `L`. */
  layers: number;
  /** Common (left-padded) prompt length `P >= 1`. */
  promptLength: number;
  /** Tokens to generate `N >= 1` (for teacher forcing: the reference length `R`). */
  maxNewTokens: number;
  /** Model width `d`; with `ffnDim` and `vocabSize` it enables FLOP accounting. */
  hiddenSize?: number;
  /** MLP width `f`. */
  ffnDim?: number;
  /** LM head rows `V`. */
  vocabSize?: number;
  /** Embedding width `dp` (default `d`: no `project_in`/`project_out`). */
  wordEmbedProjDim?: number;
  /** Rows of the batch, for KV-cache bytes (default 1). */
  batch?: number;
  /** Bytes of one cached element, for KV-cache bytes (default 4: f32). */
  bytesPerElement?: number;
}

/** FLOPs and KV-cache figures of a plan (present when the model sizes were given). */
export interface PlanAccounting {
  /** The sizes used. */
  dims: ModelDims;
  /** FLOPs of each column for one row of the batch under the plan. */
  columnFlops: number[];
  /** FLOPs of each column for one row with all layers. */
  fullColumnFlops: number[];
  /** Σ `columnFlops` over the generated-token columns `P-1 .. P+N-2`, one row. */
  generatedFlops: number;
  /** The same with all layers. */
  fullGeneratedFlops: number;
  /** Σ `columnFlops` over every column, one row. */
  totalFlops: number;
  /** The same with all layers. */
  fullTotalFlops: number;
  /** `fullGeneratedFlops / generatedFlops`: what wall time can reach. */
  flopSpeedup: number;
  /** Rows assumed for the KV-cache figures. */
  batch: number;
  /** Bytes per cached element assumed. */
  bytesPerElement: number;
  /** KV-cache bytes of the plan: `Σ_l P_l * 2 * d * bytesPerElement * batch`. */
  kvBytes: number;
  /** KV-cache bytes with every layer cached on every column. */
  fullKvBytes: number;
}

/** A validated plan: per-column active layers plus the figures derived from them. */
export interface Plan {
  /** The policy that made it. */
  readonly policy: Policy;
  /** Decoder layers `L`. */
  readonly layers: number;
  /** Prompt length `P`. */
  readonly promptLength: number;
  /** Generated tokens `N`. */
  readonly maxNewTokens: number;
  /** Columns covered, `P + N - 1`. */
  readonly columns: number;
  /** `sets[c]`: ascending active layers of column `c` (a `ColumnLayerSets`). */
  readonly sets: number[][];
  /** `budgets[c]`: the policy's budget of column `c` (= `sets[c].length`). */
  readonly budgets: number[];
  /** `generatedLayers[i] = |S(P - 1 + i)|`: layers run to produce generated token `i`. */
  readonly generatedLayers: number[];
  /** `prefix[l] = P_l`: columns `0 .. P_l - 1` run layer `l` (nesting makes it a prefix). */
  readonly prefix: number[];
  /** KV-cache slots per layer (equal to `prefix`). */
  readonly kvSlots: number[];
  /** `Σ L / Σ |S(c)|` over the generated-token columns (the paper's headline figure). */
  readonly layerSpeedup: number;
  /** FLOPs and KV bytes, when `hiddenSize`, `ffnDim` and `vocabSize` were given. */
  readonly accounting?: PlanAccounting;
}

/**
 * Builds and validates the plan of a policy for a run of `P` prompt columns and `N`
 * generated tokens: columns `0 .. P + N - 2`. Throws {@linkcode PlanError} when the sets
 * break the nesting invariant (naming the column and layer) or are malformed, and
 * {@linkcode PolicyError} when the policy does not fit the model (e.g. `max > L`).
 *
 * @example
 * ```ts
 * import { linear, plan } from "./mod.ts";
 * const p = plan(linear({ max: 12, min: 4, warmup: 1, horizon: 32 }), {
 *   layers: 12, promptLength: 5, maxNewTokens: 32,
 *   hiddenSize: 128, ffnDim: 512, vocabSize: 50272,
 * });
 * console.log(p.generatedLayers.slice(0, 4), p.layerSpeedup.toFixed(3));
 * console.log(p.accounting?.flopSpeedup);
 * ```
 */
export function plan(policy: Policy, options: PlanOptions): Plan {
  if (!isPolicy(policy)) {
    throw new PolicyError("plan: the first argument must be a Policy", "policy");
  }
  if (typeof options !== "object" || options === null) {
    throw new PlanError("plan: options { layers, promptLength, maxNewTokens } are required");
  }
  const L = planInt("layers", options.layers, 1);
  const P = planInt("promptLength", options.promptLength, 1);
  const N = planInt("maxNewTokens", options.maxNewTokens, 1);
  const columns = P + N - 1;
  const { sets, budgets } = evaluate(policy, L, P, N, columns);
  const generatedLayers = sets.slice(P - 1).map((s) => s.length);
  const prefix = layerCapacity(sets, L);
  const layerSpeedup = (N * L) / generatedLayers.reduce((a, b) => a + b, 0);
  const dims = dimsOf(options);
  const result: Plan = {
    policy,
    layers: L,
    promptLength: P,
    maxNewTokens: N,
    columns,
    sets,
    budgets,
    generatedLayers,
    prefix,
    kvSlots: [...prefix],
    layerSpeedup,
    ...(dims ? { accounting: account(sets, L, P, dims, options) } : {}),
  };
  return result;
}

/**
 * Active layers of columns `0 .. columns - 1` under a policy, validated. For teacher-forced
 * NLL of a reference of `R` tokens after a prompt of `P` columns, the uncached forward runs
 * `P + R` columns: pass `maxNewTokens: R` (the default horizon) and `columns: P + R`
 * (the last column's output is unused; `plan()` with `maxNewTokens: R` covers the
 * `P + R - 1` columns whose logits score the reference).
 *
 * @example
 * ```ts
 * import { linear, setsForColumns } from "./mod.ts";
 * const sets = setsForColumns(linear({ max: 12, min: 4 }), {
 *   layers: 12, promptLength: 6, maxNewTokens: 20, columns: 26,
 * });
 * console.log(sets.length); // 26
 * ```
 */
export function setsForColumns(
  policy: Policy,
  options: { layers: number; promptLength: number; maxNewTokens: number; columns: number },
): number[][] {
  if (!isPolicy(policy)) {
    throw new PolicyError("setsForColumns: the first argument must be a Policy", "policy");
  }
  if (typeof options !== "object" || options === null) {
    throw new PlanError("setsForColumns: options are required");
  }
  const L = planInt("layers", options.layers, 1);
  const P = planInt("promptLength", options.promptLength, 1);
  const N = planInt("maxNewTokens", options.maxNewTokens, 1);
  const columns = planInt("columns", options.columns, 1);
  return evaluate(policy, L, P, N, columns).sets;
}

/**
 * Sets that run every layer on every column.
 *
 * @example
 * ```ts
 * import { fullPlanSets } from "./mod.ts";
 * console.log(fullPlanSets(3, 2)); // [[0, 1, 2], [0, 1, 2]]
 * ```
 */
export function fullPlanSets(layers: number, columns: number): number[][] {
  const L = planInt("layers", layers, 1);
  const C = planInt("columns", columns, 0);
  return Array.from({ length: C }, () => Array.from({ length: L }, (_, l) => l));
}

/**
 * Checks per-column sets against the model: at least one column; every set a non-empty,
 * strictly ascending array of integer layers in `0 .. layers - 1`; and the nesting invariant
 * ({@linkcode checkNesting}). Throws a {@linkcode PlanError} naming the first offending
 * column (and layer).
 *
 * @example
 * ```ts
 * import { validatePlan } from "./mod.ts";
 * validatePlan([[0, 1, 2], [0, 2], [2]], 3); // ok
 * ```
 */
export function validatePlan(sets: readonly (readonly number[])[], layers: number): void {
  const L = planInt("layers", layers, 1);
  if (!Array.isArray(sets)) throw new PlanError("a plan must be an array of layer sets");
  if (sets.length === 0) throw new PlanError("a plan needs at least one column");
  for (let c = 0; c < sets.length; c++) {
    const set = sets[c];
    if (!Array.isArray(set)) {
      throw new PlanError(`column ${c}: the layer set must be an array`, { column: c });
    }
    if (set.length === 0) {
      throw new PlanError(
        `column ${c} has no active layers: every column needs a non-empty set (docs/DESIGN.md §2)`,
        { column: c },
      );
    }
    for (let k = 0; k < set.length; k++) {
      const l = set[k];
      if (typeof l !== "number" || !Number.isInteger(l) || l < 0 || l >= L) {
        throw new PlanError(
          `column ${c}: layer ${String(l)} is not a layer index in 0..${L - 1}`,
          { column: c, layer: typeof l === "number" ? l : undefined },
        );
      }
      if (k > 0 && l <= set[k - 1]) {
        throw new PlanError(
          `column ${c}: layers must be ascending without duplicates (${set[k - 1]} then ${l})`,
          { column: c, layer: l },
        );
      }
    }
  }
  checkNesting(sets);
}

/**
 * Checks the nesting invariant of docs/DESIGN.md §2: for all `c' < c`, `S(c) ⊆ S(c')`. Checking
 * neighbours suffices (⊆ is transitive). Throws a {@linkcode PlanError} naming the first
 * column that runs a layer its predecessor skipped.
 *
 * @example
 * ```ts
 * import { checkNesting } from "./mod.ts";
 * checkNesting([[0, 1, 2], [1, 2]]); // ok
 * // checkNesting([[1, 2], [0, 2]]) throws:
 * // "column 1 runs layer 0, which column 0 skipped: plans must nest (docs/DESIGN.md §2)"
 * ```
 */
export function checkNesting(sets: readonly (readonly number[])[]): void {
  for (let c = 1; c < sets.length; c++) {
    const before = new Set(sets[c - 1]);
    for (const l of sets[c]) {
      if (!before.has(l)) {
        throw new PlanError(
          `column ${c} runs layer ${l}, which column ${
            c - 1
          } skipped: plans must nest (docs/DESIGN.md §2)`,
          { column: c, layer: l },
        );
      }
    }
  }
}

/**
 * FLOPs of one column for one row (docs/DESIGN.md §5): per active layer `2 * (4 d^2 + 2 d f)` plus
 * `4 d * ctx` with `ctx = column + 1` keys (nesting: every earlier column ran the layer),
 * plus `2 d V` for the LM head, plus `2 d dp` each for `project_in`/`project_out` when
 * `dp != d`.
 *
 * @example
 * ```ts
 * import { columnFlops } from "./mod.ts";
 * const dims = { hiddenSize: 4, ffnDim: 8, vocabSize: 10, wordEmbedProjDim: 4 };
 * console.log(columnFlops(dims, 2, 0)); // 2 * (2 * (64 + 64) + 16) + 80 = 624
 * ```
 */
export function columnFlops(dims: ModelDims, activeLayers: number, column: number): number {
  const { hiddenSize: d, ffnDim: f, vocabSize: V, wordEmbedProjDim: dp } = dims;
  const perLayer = 2 * (4 * d * d + 2 * d * f) + 4 * d * (column + 1);
  const projections = dp !== d ? 2 * (2 * d * dp) : 0;
  return activeLayers * perLayer + 2 * d * V + projections;
}

/**
 * KV-cache bytes of a plan, `Σ_l P_l * 2 * d * bytesPerElement * batch`, and the full-cache
 * figure (`L * columns` slots). `hiddenSize` defaults to the plan's accounting dims.
 *
 * @example
 * ```ts
 * import { full, kvBytes, plan } from "./mod.ts";
 * const p = plan(full(), { layers: 2, promptLength: 3, maxNewTokens: 2 });
 * console.log(kvBytes(p, { hiddenSize: 8, batch: 2 })); // { bytes: 1024, fullBytes: 1024 }
 * ```
 */
export function kvBytes(
  plan: Plan,
  options: { hiddenSize?: number; batch?: number; bytesPerElement?: number } = {},
): { bytes: number; fullBytes: number } {
  const d = options.hiddenSize ?? plan.accounting?.dims.hiddenSize;
  if (d === undefined) {
    throw new PlanError("kvBytes: hiddenSize is needed (the plan has no model sizes)");
  }
  planInt("hiddenSize", d, 1);
  const batch = planInt("batch", options.batch ?? 1, 1);
  const bytes = planInt("bytesPerElement", options.bytesPerElement ?? 4, 1);
  const slots = plan.prefix.reduce((a, b) => a + b, 0);
  const unit = 2 * d * bytes * batch;
  return { bytes: slots * unit, fullBytes: plan.layers * plan.columns * unit };
}

/**
 * The accounting sizes and layer count of an OPT configuration (any object with the
 * `OptConfig` fields `numHiddenLayers`, `hiddenSize`, `ffnDim`, `vocabSize`,
 * `wordEmbedProjDim`), to spread into {@linkcode plan}'s options.
 *
 * @example
 * ```ts
 * import { dimsFromConfig, full, plan } from "./mod.ts";
 * // any OptConfig works; the tiny fixture's sizes:
 * const config = {
 *   numHiddenLayers: 12, hiddenSize: 128, ffnDim: 512, vocabSize: 50272, wordEmbedProjDim: 128,
 * };
 * const p = plan(full(), { ...dimsFromConfig(config), promptLength: 8, maxNewTokens: 32 });
 * ```
 */
export function dimsFromConfig(
  config: ModelDims & { numHiddenLayers: number },
): ModelDims & { layers: number } {
  return {
    layers: config.numHiddenLayers,
    hiddenSize: config.hiddenSize,
    ffnDim: config.ffnDim,
    vocabSize: config.vocabSize,
    wordEmbedProjDim: config.wordEmbedProjDim,
  };
}

// ---------------------------------------------------------------------------------------
// internals

function evaluate(
  policy: Policy,
  L: number,
  P: number,
  N: number,
  columns: number,
): { sets: number[][]; budgets: number[] } {
  const sets: number[][] = [];
  const budgets: number[] = [];
  for (let c = 0; c < columns; c++) {
    const ctx: ColumnContext = { column: c, promptLength: P, maxNewTokens: N, layers: L };
    const set = call(policy, "layerSet", ctx);
    if (!Array.isArray(set)) {
      throw new PlanError(
        `column ${c}: policy "${policy.name}" returned ${typeof set}, not an array of layers`,
        { column: c },
      );
    }
    sets.push([...set]);
    budgets.push(call(policy, "budget", { ...ctx }) as number);
  }
  validatePlan(sets, L);
  for (let c = 0; c < columns; c++) {
    if (budgets[c] !== sets[c].length) {
      throw new PlanError(
        `column ${c}: policy "${policy.name}" gives budget ${budgets[c]} but a layer set of ` +
          `${sets[c].length} layers`,
        { column: c },
      );
    }
  }
  return { sets, budgets };
}

/** Calls a policy method, adding the column to errors other than PolicyError/PlanError. */
function call(policy: Policy, method: "layerSet" | "budget", ctx: ColumnContext): unknown {
  try {
    return policy[method]({ ...ctx });
  } catch (e) {
    if (e instanceof PolicyError || e instanceof PlanError) throw e;
    throw new PlanError(
      `column ${ctx.column}: policy "${policy.name}" failed in ${method}: ${
        e instanceof Error ? e.message : String(e)
      }`,
      { column: ctx.column },
      { cause: e },
    );
  }
}

function dimsOf(o: PlanOptions): ModelDims | undefined {
  const given = ["hiddenSize", "ffnDim", "vocabSize"] as const;
  const present = given.filter((k) => o[k] !== undefined);
  if (present.length === 0) {
    if (o.wordEmbedProjDim !== undefined) {
      throw new PlanError("plan: wordEmbedProjDim needs hiddenSize, ffnDim and vocabSize too");
    }
    return undefined;
  }
  const missing = given.filter((k) => o[k] === undefined);
  if (missing.length > 0) {
    throw new PlanError(
      `plan: FLOP accounting needs hiddenSize, ffnDim and vocabSize; missing ${missing.join(", ")}`,
    );
  }
  const d = planInt("hiddenSize", o.hiddenSize, 1);
  return {
    hiddenSize: d,
    ffnDim: planInt("ffnDim", o.ffnDim, 1),
    vocabSize: planInt("vocabSize", o.vocabSize, 1),
    wordEmbedProjDim: planInt("wordEmbedProjDim", o.wordEmbedProjDim ?? d, 1),
  };
}

function account(
  sets: number[][],
  L: number,
  P: number,
  dims: ModelDims,
  o: PlanOptions,
): PlanAccounting {
  const columnF = sets.map((s, c) => columnFlops(dims, s.length, c));
  const fullF = sets.map((_, c) => columnFlops(dims, L, c));
  const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
  const generatedFlops = sum(columnF.slice(P - 1));
  const fullGeneratedFlops = sum(fullF.slice(P - 1));
  const batch = planInt("batch", o.batch ?? 1, 1);
  const bytesPerElement = planInt("bytesPerElement", o.bytesPerElement ?? 4, 1);
  const unit = 2 * dims.hiddenSize * bytesPerElement * batch;
  const slots = sum(sets.map((s) => s.length));
  return {
    dims,
    columnFlops: columnF,
    fullColumnFlops: fullF,
    generatedFlops,
    fullGeneratedFlops,
    totalFlops: sum(columnF),
    fullTotalFlops: sum(fullF),
    flopSpeedup: fullGeneratedFlops / generatedFlops,
    batch,
    bytesPerElement,
    kvBytes: slots * unit,
    fullKvBytes: L * sets.length * unit,
  };
}

function planInt(key: string, value: unknown, lo: number): number {
  if (typeof value !== "number" || !Number.isInteger(value) || value < lo) {
    throw new PlanError(`plan: ${key} must be an integer >= ${lo}, got ${String(value)}`);
  }
  return value;
}
