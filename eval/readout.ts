/**
 * Per-layer readout (logit lens) of a greedy generation, and the CALM-style
 * confidence-threshold baseline evaluated offline from it.
 *
 * {@linkcode readoutGeneration} decodes a prompt greedily under a policy (its plan), then
 * runs one uncached forward over the whole sequence (BOS, prompt, generated tokens) with the
 * same per-column layer sets and the backend's `readout` option: for every column and every
 * decoder layer `l = 1 .. L`, the model's own head on that layer's output, reduced to top-k,
 * entropy and the probability of the token that follows. The last layer's readout is the
 * model's distribution, so its top-1 at column `c` is the token generated at `c + 1`.
 *
 * {@linkcode evaluateCalm} is the confidence-threshold early exit of CALM (Schuster et al.,
 * 2022) evaluated offline: at each generated position it exits at the first layer (at or
 * after `minLayer`) whose top-1 probability reaches the threshold `λ`, and emits that
 * layer's top-1 token. Two caveats, stated wherever its figures are shown:
 * - it is **teacher forced on the full model's outputs**: position `i` sees the full
 *   model's tokens before it, not its own earlier choices, and BLEU is of the per-position
 *   choices read as one text;
 * - it is **an oracle-ish upper bound**: every layer ran at every earlier column, so the
 *   exited layers' keys and values exist; real CALM would have to fill the KV cache of the
 *   layers a token skipped (copying states or recomputing), which this does not pay for.
 *
 * @example
 * ```ts
 * import { loadModel } from "../decode/mod.ts";
 * import { readoutGeneration } from "./readout.ts";
 * const model = await loadModel("bundled/models/tiny-opt-e2e", { backend: "cpu" });
 * const r = await readoutGeneration(model, "name[Alimentum], area[city centre]\n", {
 *   maxNewTokens: 4,
 *   topK: 3,
 * });
 * console.log(r.ids.length, r.columns[0].length); // columns, layers
 * model.dispose();
 * ```
 * @module
 */
import { readoutColumns, type ReadoutEntry } from "../backend/readout.ts";
import type { Readout } from "../backend/types.ts";
import { generate, resolvePolicy } from "../decode/engine.ts";
import type { Model } from "../decode/model.ts";
import { fullPlanSets, type Policy, type PromptMode, setsForColumns } from "../schedule/mod.ts";
import { corpusBleu } from "./bleu.ts";

/** What the readout functions need of a model (a `Model` of `decode/` fits). */
export type ReadoutModel = Pick<Model, "backend" | "tokenizer" | "config">;

/** Options of {@linkcode readoutGeneration}. */
export interface ReadoutGenerationOptions {
  /** A policy or its command-line form (default `"full"`); its plan is used throughout. */
  policy?: Policy | string;
  /** Overrides the policy's prompt mode. */
  promptMode?: PromptMode;
  /** Tokens to generate at most (default 32; also the policy's default horizon). */
  maxNewTokens?: number;
  /** Tokens kept per readout (default 5). */
  topK?: number;
  /** Stop at EOS (default true). */
  stopAtEos?: boolean;
}

/** The readout of one generation. */
export interface ReadoutGeneration {
  /** Every token of the sequence: BOS, prompt, generated (EOS included when produced). */
  ids: number[];
  /** Prompt tokens, BOS included (`P`). */
  promptLength: number;
  /** `columns[c][l]`: the readout after decoder layer `l + 1` at column `c`. */
  columns: ReadoutEntry[][];
  /** Active layers of each column under the policy's plan. */
  activeLayers: number[];
  /** `layerSets[c]`: the decoder layers (0-based) column `c` runs under the plan. */
  layerSets: number[][];
  /** The policy's command-line form. */
  policy: string;
  /** Backend name. */
  backend: string;
}

/**
 * Greedy generation under a policy, then the per-layer readout of every column of the
 * resulting sequence under the same plan (see the module documentation). The column
 * holding the last generated token gets the set the plan gives that column (the policy
 * evaluated one column further, same horizon).
 *
 * @throws RangeError for an empty prompt or lengths beyond the position table
 * @example
 * ```ts
 * import { loadModel } from "../decode/mod.ts";
 * import { readoutGeneration } from "./readout.ts";
 * const model = await loadModel("bundled/models/tiny-opt-e2e", { backend: "cpu" });
 * const r = await readoutGeneration(model, "name[X]\n", { maxNewTokens: 2, topK: 1 });
 * console.log(r.columns.at(-2)!.at(-1)!.top[0][0] === r.ids.at(-1)); // true
 * model.dispose();
 * ```
 */
export async function readoutGeneration(
  model: ReadoutModel,
  prompt: string | readonly number[],
  options: ReadoutGenerationOptions = {},
): Promise<ReadoutGeneration> {
  const policy = resolvePolicy(options.policy, options.promptMode);
  const N = options.maxNewTokens ?? 32;
  const topK = options.topK ?? 5;
  const cfg = model.config;
  const gen = await generate(model, [prompt], {
    policy,
    maxNewTokens: N,
    batchSize: 1,
    stopAtEos: options.stopAtEos,
  });
  const r = gen.results[0];
  const P = r.promptIds.length;
  // The last generated token's column is one past the plan; it fits the position table
  // unless the generation used the table to its end.
  const ids = [...r.promptIds, ...r.ids].slice(0, cfg.maxPositionEmbeddings);
  const sets = setsForColumns(policy, {
    layers: cfg.numHiddenLayers,
    promptLength: P,
    maxNewTokens: N,
    columns: ids.length,
  });
  const out = await model.backend.forward({
    rows: [ids],
    sets,
    padTokenId: cfg.padTokenId,
    readout: { topK },
  });
  return {
    ids,
    promptLength: P,
    columns: readoutColumns(out.readout!, 0),
    activeLayers: sets.map((s) => s.length),
    layerSets: sets.map((s) => [...s]),
    policy: String(policy),
    backend: model.backend.name,
  };
}

/** One item of {@linkcode evaluateCalm}: a prompt and its references. */
export interface CalmItem {
  /** The prompt text (BOS is prepended). */
  prompt: string;
  /** Reference texts. */
  refs: string[];
}

/** Options of {@linkcode evaluateCalm}. */
export interface CalmOptions {
  /** Confidence thresholds `λ` in (0, 1]. */
  thresholds: readonly number[];
  /** First layer (1-based) at which an exit is allowed, the warm-up (default 1). */
  minLayer?: number;
  /** Tokens the full model generates per item at most (default 32). */
  maxNewTokens?: number;
  /** Rows per batch (default 8). */
  batchSize?: number;
}

/** One row of the CALM table: a threshold, or the full model (`threshold: null`). */
export interface CalmRow {
  /** `λ`; `null` for the full model's own row. */
  threshold: number | null;
  /** The warm-up layer: exits happen at this layer or later. */
  minLayer: number;
  /** Mean layers used per generated position. */
  meanLayers: number;
  /** `L / meanLayers`. */
  layerSpeedup: number;
  /** Share of positions whose token equals the full model's. */
  agreement: number;
  /** Corpus BLEU of the per-position choices (teacher forced), 0 to 100. */
  bleu: number;
  /** `layers[item][i]`: layers used at generated position `i`. */
  layers: number[][];
}

/** What {@linkcode evaluateCalm} returns. */
export interface CalmResult {
  /** The full model's row, then one per threshold. */
  rows: CalmRow[];
  /** Generated positions scored, all items. */
  positions: number;
  /** Decoder layers `L`. */
  layers: number;
  /** How to read the figures (teacher forced, upper bound). */
  note: string;
}

/** The caveat printed with every CALM table. */
export const CALM_NOTE: string =
  "CALM-style confidence exit evaluated offline from the per-layer readout: teacher forced " +
  "on the full model's outputs (each position sees the full model's earlier tokens), and an " +
  "upper bound, since every layer ran at every earlier column (real CALM must fill the KV " +
  "cache of the layers a token skipped).";

/**
 * The CALM exit of one position: the first layer `l >= minLayer` (1-based) whose top-1
 * probability is at least `threshold`, else the last layer; returns that layer and its
 * top-1 token.
 *
 * @param top1 `[id, probability]` of the top-1 token after each layer `1 .. L`
 * @example
 * ```ts
 * import { calmExit } from "./readout.ts";
 * calmExit([[5, 0.2], [7, 0.8], [7, 0.9]], 0.7, 1); // { layer: 2, token: 7 }
 * ```
 */
export function calmExit(
  top1: readonly (readonly [number, number])[],
  threshold: number,
  minLayer: number,
): { layer: number; token: number } {
  const L = top1.length;
  if (L === 0) throw new RangeError("calmExit: no layers");
  for (let l = Math.max(1, minLayer); l <= L; l++) {
    if (top1[l - 1][1] >= threshold) return { layer: l, token: top1[l - 1][0] };
  }
  return { layer: L, token: top1[L - 1][0] };
}

/**
 * The CALM-style confidence-threshold baseline on E2E-like items, offline: the full model
 * generates greedily, one readout forward per batch gives every layer's top-1 at every
 * generated position, and each threshold's exits are read from it. See the module
 * documentation for the two caveats (teacher forced; an upper bound).
 *
 * @throws RangeError for a threshold outside (0, 1] or a `minLayer` outside 1..L
 * @example
 * ```ts
 * import { loadModel } from "../decode/mod.ts";
 * import { evaluateCalm } from "./readout.ts";
 * const model = await loadModel("bundled/models/tiny-opt-e2e", { backend: "cpu" });
 * const r = await evaluateCalm(model, [{ prompt: "name[X]\n", refs: ["X is a place."] }], {
 *   thresholds: [0.9], maxNewTokens: 4,
 * });
 * console.log(r.rows[1].meanLayers, r.rows[1].agreement);
 * model.dispose();
 * ```
 */
export async function evaluateCalm(
  model: ReadoutModel,
  items: readonly CalmItem[],
  options: CalmOptions,
): Promise<CalmResult> {
  const cfg = model.config;
  const L = cfg.numHiddenLayers;
  const minLayer = options.minLayer ?? 1;
  if (!Number.isInteger(minLayer) || minLayer < 1 || minLayer > L) {
    throw new RangeError(`minLayer must be a whole number from 1 to ${L}, got ${minLayer}`);
  }
  for (const t of options.thresholds) {
    if (!(t > 0 && t <= 1)) throw new RangeError(`CALM threshold must be in (0, 1], got ${t}`);
  }
  const N = options.maxNewTokens ?? 32;
  const batchSize = options.batchSize ?? 8;
  const gen = await generate(model, items.map((it) => it.prompt), {
    maxNewTokens: N,
    batchSize,
  });
  // top1[item][i][l]: top-1 [id, prob] after layer l + 1 at the column producing token i
  const top1: [number, number][][][] = [];
  for (let b0 = 0; b0 < items.length; b0 += batchSize) {
    const results = gen.results.slice(b0, b0 + batchSize);
    // Sequences up to the last generated token's input column (that column produced it).
    const rows = results.map((r) => [...r.promptIds, ...r.ids.slice(0, -1)]);
    const out = await model.backend.forward({
      rows,
      sets: fullPlanSets(L, Math.max(...rows.map((r) => r.length))),
      padTokenId: cfg.padTokenId,
      readout: { topK: 1 },
    });
    const ro: Readout = out.readout!;
    results.forEach((r, b) => {
      const T = ro.length, pad = T - rows[b].length, P = r.promptIds.length;
      const perPos: [number, number][][] = [];
      for (let i = 0; i < r.ids.length; i++) {
        const c = pad + P - 1 + i;
        const layers: [number, number][] = [];
        for (let l = 0; l < L; l++) {
          const at = (b * T + c) * L + l;
          layers.push([ro.topIds[at], ro.topProbs[at]]);
        }
        perPos.push(layers);
      }
      top1.push(perPos);
    });
  }
  const decodeUntilEos = (ids: number[]): string => {
    const end = ids.indexOf(cfg.eosTokenId);
    return model.tokenizer.decode(end < 0 ? ids : ids.slice(0, end + 1));
  };
  const refs = items.map((it) => it.refs);
  const positions = top1.reduce((a, p) => a + p.length, 0);
  const row = (threshold: number | null): CalmRow => {
    let agree = 0, used = 0;
    const layers: number[][] = [];
    const hyps = top1.map((perPos, k) => {
      const full = gen.results[k].ids;
      const tokens: number[] = [];
      const ls: number[] = [];
      perPos.forEach((t, i) => {
        const e = threshold === null
          ? { layer: L, token: full[i] }
          : calmExit(t, threshold, minLayer);
        tokens.push(e.token);
        ls.push(e.layer);
        used += e.layer;
        if (e.token === full[i]) agree++;
      });
      layers.push(ls);
      return decodeUntilEos(tokens);
    });
    const meanLayers = positions ? used / positions : L;
    return {
      threshold,
      minLayer,
      meanLayers,
      layerSpeedup: L / meanLayers,
      agreement: positions ? agree / positions : 1,
      bleu: items.length ? corpusBleu(hyps, refs).score : 0,
      layers,
    };
  };
  return {
    rows: [row(null), ...options.thresholds.map((t) => row(t))],
    positions,
    layers: L,
    note: CALM_NOTE,
  };
}

/**
 * The CALM table as Markdown (one row per threshold, the full model first), with the
 * caveat under it.
 *
 * @example
 * ```ts
 * import { calmTable } from "./readout.ts";
 * // console.log(calmTable(await evaluateCalm(model, items, { thresholds: [0.5, 0.9] })));
 * ```
 */
export function calmTable(result: CalmResult): string {
  const lines = [
    "| exit rule | mean layers | layer speedup | agreement | BLEU (teacher forced) |",
    "| --- | ---: | ---: | ---: | ---: |",
  ];
  for (const r of result.rows) {
    const name = r.threshold === null
      ? `full (${result.layers} layers)`
      : `CALM λ=${r.threshold}, from layer ${r.minLayer}`;
    lines.push(
      `| ${name} | ${r.meanLayers.toFixed(2)} | ${r.layerSpeedup.toFixed(2)}x | ` +
        `${(100 * r.agreement).toFixed(1)}% | ${r.bleu.toFixed(2)} |`,
    );
  }
  lines.push("", `${result.positions} generated positions. ${result.note}`);
  return lines.join("\n");
}
