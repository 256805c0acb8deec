/**
 * Reference points for a policy: the speedup of a policy's plan on a fixed set of tokens
 * (so that a policy cannot look faster by writing longer outputs), the best monotone
 * schedule above the oracle depths, and the linear or power-law policy closest to that
 * bound at a given speedup.
 *
 * Indices: `i` is the generated-token index (token `i` is produced by column `P - 1 + i`);
 * a policy's own input index `j` counts scheduled columns from `P` (`j = i - 1`), so under
 * prompt mode `full` token 0 always runs every layer.
 *
 * @example
 * ```ts
 * import { boundLayerSpeedup, fitPolicy, monotoneBound } from "./fit.ts";
 * const bound = monotoneBound([[12, 3, 5, 2, 2], [8, 2, 2]]); // [[12,5,5,2,2],[8,2,2]]
 * console.log(boundLayerSpeedup(bound, 12));
 * const fit = fitPolicy({ kind: "linear", targetSpeedup: 2, data: { bound, layers: 12 } });
 * console.log(fit.policy, fit.speedup);
 * ```
 * @module
 */
import {
  customPolicy,
  dimsFromConfig,
  type ModelDims,
  parsePolicy,
  plan as makePlan,
  type Policy,
  skipDecodeSet,
} from "../schedule/mod.ts";

/** Per-item figures of {@linkcode fixedTokenSpeedup}. */
export interface FixedTokenItem {
  /** Layers the plan runs on the item's tokens. */
  layers: number;
  /** `L` times the item's tokens. */
  fullLayers: number;
  /** FLOPs of the plan's columns producing the tokens. */
  flops: number;
  /** The same with every layer. */
  fullFlops: number;
  /** FLOPs of the prompt columns before the first producing column (`0 .. P - 2`). */
  prefillFlops: number;
}

/** What {@linkcode fixedTokenSpeedup} returns. */
export interface FixedTokenSpeedup {
  /** `Σ L·tokens / Σ layers` over the given lengths. */
  layerSpeedup: number;
  /** `Σ full FLOPs / Σ plan FLOPs` over the same columns. */
  flopSpeedup: number;
  /** Mean prompt FLOPs per item under the plan (columns `0 .. P - 2` of its batch). */
  prefillFlops: number;
  /** One entry per item. */
  items: FixedTokenItem[];
  /** Budget of generated index `i`, mean over the items whose batch plan reaches it. */
  meanBudgets: number[];
}

/**
 * The speedup of a policy's plan on fixed token counts: the items are batched as a sweep
 * batches them (`batchSize` consecutive items, left-padded to the batch's longest
 * prompt), and each item's first `lengths[k]` generated columns are counted. Given the
 * full model's output lengths, every policy is measured on the same tokens (teacher
 * forced: the plan does not depend on the tokens), so `full` gets 1 and two policies with
 * the same budgets per position get the same figure.
 *
 * @param policy a policy or its command-line form
 * @param o the model's sizes (`config`), `lengths` (tokens per item), `promptLengths`
 *   (BOS included), `batchSize`, `maxNewTokens` (the plans' `N`, default the longest length)
 * @returns layer and FLOP speedups, prompt FLOPs, per-item figures, mean budgets
 * @example
 * ```ts
 * import { fixedTokenSpeedup } from "./fit.ts";
 * const config = { numHiddenLayers: 12, hiddenSize: 64, ffnDim: 256, vocabSize: 100, wordEmbedProjDim: 64 };
 * const s = fixedTokenSpeedup("linear:max=12,min=2,warmup=1,horizon=8", {
 *   config, lengths: [10, 4], promptLengths: [5, 7], batchSize: 2, maxNewTokens: 16,
 * });
 * console.log(s.layerSpeedup > 1); // true
 * ```
 */
export function fixedTokenSpeedup(
  policy: Policy | string,
  o: {
    config: ModelDims & { numHiddenLayers: number };
    lengths: readonly number[];
    promptLengths: readonly number[];
    batchSize: number;
    maxNewTokens?: number;
  },
): FixedTokenSpeedup {
  const p = typeof policy === "string" ? parsePolicy(policy) : policy;
  if (o.lengths.length !== o.promptLengths.length) {
    throw new RangeError(
      `fixedTokenSpeedup: ${o.lengths.length} lengths but ${o.promptLengths.length} prompts`,
    );
  }
  const L = o.config.numHiddenLayers;
  const N = o.maxNewTokens ?? Math.max(1, ...o.lengths);
  const items: FixedTokenItem[] = [];
  const budgetSum: number[] = [], budgetCount: number[] = [];
  for (let b = 0; b < o.lengths.length; b += o.batchSize) {
    const P = Math.max(...o.promptLengths.slice(b, b + o.batchSize));
    const pl = makePlan(p, { ...dimsFromConfig(o.config), promptLength: P, maxNewTokens: N });
    const acc = pl.accounting!;
    const prefill = acc.columnFlops.slice(0, P - 1).reduce((a, x) => a + x, 0);
    for (let k = b; k < Math.min(b + o.batchSize, o.lengths.length); k++) {
      const n = Math.min(o.lengths[k], N);
      const sum = (xs: readonly number[]) => xs.reduce((a, x) => a + x, 0);
      items.push({
        layers: sum(pl.generatedLayers.slice(0, n)),
        fullLayers: n * L,
        flops: sum(acc.columnFlops.slice(P - 1, P - 1 + n)),
        fullFlops: sum(acc.fullColumnFlops.slice(P - 1, P - 1 + n)),
        prefillFlops: prefill,
      });
      pl.generatedLayers.forEach((g, i) => {
        budgetSum[i] = (budgetSum[i] ?? 0) + g;
        budgetCount[i] = (budgetCount[i] ?? 0) + 1;
      });
    }
  }
  const tot = (k: keyof FixedTokenItem) => items.reduce((a, x) => a + x[k], 0);
  return {
    layerSpeedup: tot("layers") > 0 ? tot("fullLayers") / tot("layers") : 1,
    flopSpeedup: tot("flops") > 0 ? tot("fullFlops") / tot("flops") : 1,
    prefillFlops: items.length ? tot("prefillFlops") / items.length : 0,
    items,
    meanBudgets: budgetSum.map((s, i) => s / budgetCount[i]),
  };
}

/**
 * The cheapest non-increasing schedule at or above each item's oracle depths: the suffix
 * maximum, `bound[i] = max(depths[i..])`. A monotone (nested) schedule that runs fewer
 * layers at some position than this bound runs fewer than the oracle depth at a later one.
 *
 * @param depths per item, the oracle depth per generated position
 * @returns per item, the bound per position
 * @example
 * ```ts
 * import { monotoneBound } from "./fit.ts";
 * monotoneBound([[3, 5, 2, 4, 1]]); // [[5, 5, 4, 4, 1]]
 * ```
 */
export function monotoneBound(depths: readonly (readonly number[])[]): number[][] {
  return depths.map((ds) => {
    const out = new Array<number>(ds.length);
    let m = 0;
    for (let i = ds.length - 1; i >= 0; i--) {
      m = Math.max(m, ds[i]);
      out[i] = m;
    }
    return out;
  });
}

/**
 * Layer speedup of per-item schedules: `Σ L·positions / Σ budgets`.
 *
 * @param bound per item, a budget per position
 * @param layers `L`
 * @returns the speedup (1 when there are no positions)
 * @example
 * ```ts
 * import { boundLayerSpeedup } from "./fit.ts";
 * boundLayerSpeedup([[12, 6], [6]], 12); // 36 / 24 = 1.5
 * ```
 */
export function boundLayerSpeedup(bound: readonly (readonly number[])[], layers: number): number {
  let n = 0, s = 0;
  for (const b of bound) {
    n += b.length;
    s += b.reduce((a, x) => a + x, 0);
  }
  return s > 0 ? (n * layers) / s : 1;
}

/**
 * A policy that runs one item's bound schedule: all layers on the prompt columns before
 * the first producing column, then at column `P - 1 + i` the SkipDecode set of budget
 * `bound[i]` with `warmup` warm-up layers (the oracle's own sets), the last budget past
 * the end. Prompt mode `decay` so that column `P - 1` follows the bound too, as in the
 * oracle. Decode one item per batch with it (its prompt length is the batch's).
 *
 * @param bound non-increasing budgets, one per generated position
 * @param o layers `L`, warm-up `w` (budgets must exceed it), a name
 * @returns the policy
 * @example
 * ```ts
 * import { boundPolicy } from "./fit.ts";
 * import { plan } from "../schedule/mod.ts";
 * const p = boundPolicy([12, 6, 3], { layers: 12, warmup: 1 });
 * plan(p, { layers: 12, promptLength: 3, maxNewTokens: 4 }).generatedLayers; // [12, 6, 3, 3]
 * ```
 */
export function boundPolicy(
  bound: readonly number[],
  o: { layers: number; warmup: number; name?: string },
): Policy {
  if (bound.length === 0) throw new RangeError("boundPolicy: the bound is empty");
  for (let i = 1; i < bound.length; i++) {
    if (bound[i] > bound[i - 1]) {
      throw new RangeError(`boundPolicy: the bound rises at position ${i}: it must not increase`);
    }
  }
  const all = Array.from({ length: o.layers }, (_, l) => l);
  return customPolicy({
    name: o.name ?? "monotone-bound",
    promptMode: "decay",
    layerSet: ({ column, promptLength }) => {
      const i = column - (promptLength - 1);
      if (i < 0) return all;
      return skipDecodeSet(o.layers, bound[Math.min(i, bound.length - 1)], o.warmup);
    },
  });
}

/** What {@linkcode fitPolicy} needs. */
export interface FitOptions {
  /** `"linear"` or `"powerlaw"`. */
  kind: "linear" | "powerlaw";
  /** The layer speedup to match (on the bound's positions). */
  targetSpeedup: number;
  /** The bound per item and position (`monotoneBound`) and the model's layers. */
  data: { bound: readonly (readonly number[])[]; layers: number };
  /** Warm-up layers of the fitted policy (default 1). */
  warmup?: number;
  /** Candidates within this relative distance of the target speedup compete (default 0.05). */
  tolerance?: number;
}

/** What {@linkcode fitPolicy} returns. */
export interface FitResult {
  /** The policy's command-line form. */
  policy: string;
  /** Its parameters. */
  params: Record<string, number>;
  /** Its layer speedup on the bound's positions. */
  speedup: number;
  /** Mean squared distance of its budgets to the bound over every position. */
  distance: number;
  /** Share of positions where its budget is at or above the bound. */
  coverage: number;
  /** Candidates tried. */
  candidates: number;
}

/**
 * The linear or power-law policy closest to the monotone bound at a target speedup: a
 * grid over the policy's parameters (`max`, `min`, and `horizon` or `alpha`/`tau`) with
 * `warmup` fixed; among the candidates whose layer speedup on the bound's positions is
 * within `tolerance` of the target (or, when none is, the ones nearest to it), the one
 * with the smallest mean squared distance to the bound (ties: higher coverage).
 *
 * @param o kind, target speedup, bound data, warm-up, tolerance
 * @returns the policy, its parameters, speedup, distance and coverage
 * @throws RangeError for an unknown kind, a speedup below 1 or an empty bound
 * @example
 * ```ts
 * import { fitPolicy } from "./fit.ts";
 * const bound = [[12, 8, 6, 4, 2, 2, 2, 2], [10, 6, 2, 2]];
 * fitPolicy({ kind: "powerlaw", targetSpeedup: 2.5, data: { bound, layers: 12 } }).policy;
 * ```
 */
export function fitPolicy(o: FitOptions): FitResult {
  const L = o.data.layers;
  const w = o.warmup ?? 1;
  const tol = o.tolerance ?? 0.05;
  if (o.kind !== "linear" && o.kind !== "powerlaw") {
    throw new RangeError(`fitPolicy: kind must be "linear" or "powerlaw", got "${o.kind}"`);
  }
  if (!(o.targetSpeedup >= 1)) {
    throw new RangeError(`fitPolicy: targetSpeedup must be >= 1, got ${o.targetSpeedup}`);
  }
  const bound = o.data.bound.filter((b) => b.length > 0);
  if (bound.length === 0) throw new RangeError("fitPolicy: the bound has no positions");
  const N = Math.max(...bound.map((b) => b.length));
  const specs: { spec: string; params: Record<string, number> }[] = [];
  for (let max = w + 1; max <= L; max++) {
    for (let min = w + 1; min <= max; min++) {
      if (o.kind === "linear") {
        for (const horizon of [2, 4, 6, 8, 12, 16, 24, 32, 48, 64]) {
          specs.push({
            spec: `linear:max=${max},min=${min},warmup=${w},horizon=${horizon}`,
            params: { max, min, warmup: w, horizon },
          });
        }
      } else {
        for (const alpha of [0.25, 0.5, 1, 1.5, 2, 3]) {
          for (const tau of [1, 2, 4, 8, 16]) {
            specs.push({
              spec: `powerlaw:max=${max},min=${min},warmup=${w},alpha=${alpha},tau=${tau}`,
              params: { max, min, warmup: w, alpha, tau },
            });
          }
        }
      }
    }
  }
  const scored = specs.map(({ spec, params }) => {
    const g = makePlan(parsePolicy(spec), { layers: L, promptLength: 1, maxNewTokens: N })
      .generatedLayers;
    let layers = 0, positions = 0, sq = 0, covered = 0;
    for (const b of bound) {
      b.forEach((d, i) => {
        layers += g[i];
        positions++;
        sq += (g[i] - d) ** 2;
        if (g[i] >= d) covered++;
      });
    }
    return {
      policy: spec,
      params,
      speedup: (positions * L) / layers,
      distance: sq / positions,
      coverage: covered / positions,
    };
  });
  const gap = (s: { speedup: number }) => Math.abs(s.speedup - o.targetSpeedup) / o.targetSpeedup;
  let pool = scored.filter((s) => gap(s) <= tol);
  if (pool.length === 0) {
    const best = Math.min(...scored.map(gap));
    pool = scored.filter((s) => gap(s) <= best + 1e-9);
  }
  pool.sort((a, b) => a.distance - b.distance || b.coverage - a.coverage);
  return { ...pool[0], candidates: specs.length };
}
