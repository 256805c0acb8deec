/**
 * Teacher-forced negative log-likelihood and perplexity of references under a plan
 * (docs/DESIGN.md §8): one uncached forward per batch, no sampling, the same per-column layer sets
 * the engine would use.
 *
 * Layout of one batch (docs/DESIGN.md §3): each item is `prompt` (BOS included) followed by its
 * target `reference tokens + EOS`. Prompts are left-padded to the batch's longest prompt
 * `P`, so target token `i` of every row is produced by column `P - 1 + i`, exactly where a
 * generation would produce generated token `i`. Shorter targets are right-extended with
 * filler tokens up to the batch's longest target `R`; attention is causal, so columns after
 * a row's last target never change that row's scored logits, and they are not scored.
 * The forward therefore runs `T = P + R - 1` columns (the last target token is never an
 * input) with the policy's sets for those columns.
 *
 * Per-token NLL at one column: `logsumexp(logits) - logits[target]` in nats (float64).
 *
 * @example
 * ```ts
 * import { loadModel } from "../decode/mod.ts";
 * import { teacherForcedNll } from "./nll.ts";
 * const model = await loadModel("bundled/models/tiny-opt-e2e", { backend: "cpu" });
 * const out = await teacherForcedNll(model, [
 *   { prompt: "name[Alimentum], area[city centre]\n", reference: "Alimentum is in the city centre." },
 * ], { policy: "linear:max=12,min=4,warmup=1", horizon: 64 });
 * console.log(out.meanNll, out.perplexity);
 * model.dispose();
 * ```
 * @module
 */
import type { Backend } from "../backend/types.ts";
import type { OptConfig } from "../model/types.ts";
import { type Policy, type PromptMode, setsForColumns } from "../schedule/mod.ts";
import { resolvePolicy } from "../decode/engine.ts";

/** What the NLL functions need of a model (a `Model` of `decode/` fits). */
export interface ScoringModel {
  /** The OPT configuration (layers, EOS, pad, position table). */
  config: OptConfig;
  /** The backend that runs the uncached forward. */
  backend: Backend;
  /** Encodes text; `encode(text)` prepends BOS, `{ addBos: false }` does not. */
  tokenizer: { encode(text: string, options?: { addBos?: boolean }): number[] };
}

/** One item to score: a prompt and the reference that should follow it. */
export interface NllItem {
  /** Prompt text (BOS is prepended) or ids (BOS included). */
  prompt: string | readonly number[];
  /** Reference text (encoded without BOS) or ids; EOS is appended unless `appendEos` is false. */
  reference: string | readonly number[];
}

/** Options of {@linkcode teacherForcedNll}. */
export interface NllOptions {
  /** A policy or its command-line form (default `"full"`). */
  policy?: Policy | string;
  /** Overrides the policy's prompt mode. */
  promptMode?: PromptMode;
  /**
   * The `maxNewTokens` the plan is built with (the default horizon of `linear` and the
   * `H` of prompt decay). Pass the generation length to score under the plan a
   * generation used; default: each batch's longest target `R`.
   */
  horizon?: number;
  /** Rows per forward (default 8). */
  batchSize?: number;
  /** Append EOS to every reference (default true, as the tiny model was trained). */
  appendEos?: boolean;
  /** Called after each batch with items done and total. */
  onProgress?: (done: number, total: number) => void;
}

/** The NLL of one item. */
export interface ItemNll {
  /** Σ NLL over the target tokens, nats. */
  nll: number;
  /** Target tokens scored (reference tokens, plus EOS when appended). */
  tokens: number;
  /** NLL of each target token `i` (generated index), nats. */
  perToken: number[];
}

/** What {@linkcode teacherForcedNll} returns. */
export interface NllResult {
  /** The policy's command-line form. */
  policy: string;
  /** One entry per item, in input order. */
  items: ItemNll[];
  /** Corpus NLL per token: `Σ nll / Σ tokens` (nats). */
  meanNll: number;
  /** `exp(meanNll)`. */
  perplexity: number;
  /** Tokens scored in all. */
  tokens: number;
  /** Mean NLL at generated token `i` over the items that have a token there. */
  positionNll: number[];
  /** How many items have a token at index `j`. */
  positionCounts: number[];
}

/** A batch laid out for teacher forcing (see the module documentation). */
export interface TeacherForcingBatch {
  /** Rows to pass to `Backend.forward` (each `P_b + R - 1` long before left padding). */
  rows: number[][];
  /** Common prompt length `P` after left padding. */
  promptLength: number;
  /** Longest target `R`. */
  targetLength: number;
  /** Columns of the padded batch, `P + R - 1`. */
  columns: number;
}

/**
 * Lays out prompts and targets for one teacher-forced forward: row `b` is
 * `prompt_b + target_b[0 .. R_b - 2]` plus `R - R_b` filler ids, so after the backend's
 * left padding every prompt ends at column `P - 1` and target token `i` is predicted by
 * column `P - 1 + i`.
 *
 * @param prompts prompt ids per row (BOS included), non-empty
 * @param targets target ids per row (what follows the prompt), non-empty
 * @param fillerId id appended after short targets (never scored; the pad id works)
 * @returns the rows and the batch's `P`, `R` and column count
 * @throws RangeError naming the row when a prompt or target is empty
 * @example
 * ```ts
 * import { teacherForcingBatch } from "./nll.ts";
 * const b = teacherForcingBatch([[2, 5, 6], [2, 7]], [[8, 2], [9, 10, 2]], 1);
 * // b.rows = [[2, 5, 6, 8, 1], [2, 7, 9, 10]], P = 3, R = 3, columns = 5
 * ```
 */
export function teacherForcingBatch(
  prompts: readonly (readonly number[])[],
  targets: readonly (readonly number[])[],
  fillerId: number,
): TeacherForcingBatch {
  if (prompts.length === 0) throw new RangeError("teacherForcingBatch: no rows");
  if (prompts.length !== targets.length) {
    throw new RangeError(
      `teacherForcingBatch: ${prompts.length} prompts but ${targets.length} targets`,
    );
  }
  prompts.forEach((p, b) => {
    if (p.length === 0) throw new RangeError(`row ${b}: empty prompt (it needs at least BOS)`);
  });
  targets.forEach((t, b) => {
    if (t.length === 0) throw new RangeError(`row ${b}: empty target: nothing to score`);
  });
  const P = Math.max(...prompts.map((p) => p.length));
  const R = Math.max(...targets.map((t) => t.length));
  const rows = prompts.map((p, b) => {
    const t = targets[b];
    return [...p, ...t.slice(0, -1), ...new Array<number>(R - t.length).fill(fillerId)];
  });
  return { rows, promptLength: P, targetLength: R, columns: P + R - 1 };
}

/**
 * `logsumexp(logits) - logits[target]`: the NLL (nats) of one token under one column's
 * logits, computed in float64.
 *
 * @param logits one column's logits `[V]`
 * @param target the token scored, `0 <= target < V`
 * @returns the negative log-probability of `target`
 * @throws RangeError when `target` is outside the logits
 * @example
 * ```ts
 * import { tokenNll } from "./nll.ts";
 * tokenNll(new Float32Array([0, 0]), 1); // Math.log(2)
 * ```
 */
export function tokenNll(logits: ArrayLike<number>, target: number): number {
  const V = logits.length;
  if (!Number.isInteger(target) || target < 0 || target >= V) {
    throw new RangeError(`target id ${target} is outside the ${V} logits`);
  }
  let max = -Infinity;
  for (let v = 0; v < V; v++) if (logits[v] > max) max = logits[v];
  let sum = 0;
  for (let v = 0; v < V; v++) sum += Math.exp(logits[v] - max);
  return max + Math.log(sum) - logits[target];
}

/**
 * Teacher-forced NLL of references under a policy's plan: items are split into batches of
 * `batchSize`, each batch is one uncached `Backend.forward` with the per-column sets of
 * `setsForColumns(policy, { promptLength: P, maxNewTokens: horizon ?? R, columns: P + R - 1 })`.
 *
 * @param model config, backend and tokenizer (a loaded `Model`)
 * @param items prompts and references
 * @param options policy, horizon, batch size, EOS handling, progress
 * @returns per-item and corpus NLL, perplexity and mean NLL per generated position
 * @throws RangeError naming the item that is empty or does not fit the position table
 * @example
 * ```ts
 * import { loadModel } from "../decode/mod.ts";
 * import { teacherForcedNll } from "./nll.ts";
 * const model = await loadModel("bundled/models/tiny-opt-e2e", { backend: "cpu" });
 * const full = await teacherForcedNll(model, [{ prompt: "name[Aromi]\n", reference: "Aromi." }]);
 * console.log(full.items[0].perToken);
 * ```
 */
export async function teacherForcedNll(
  model: ScoringModel,
  items: readonly NllItem[],
  options: NllOptions = {},
): Promise<NllResult> {
  const { config, backend, tokenizer } = model;
  const policy = resolvePolicy(options.policy, options.promptMode);
  const batchSize = options.batchSize ?? 8;
  if (!Number.isInteger(batchSize) || batchSize < 1) {
    throw new RangeError(`batchSize must be an integer >= 1, got ${batchSize}`);
  }
  if (
    options.horizon !== undefined && (!Number.isInteger(options.horizon) || options.horizon < 1)
  ) {
    throw new RangeError(`horizon must be an integer >= 1, got ${options.horizon}`);
  }
  const appendEos = options.appendEos ?? true;
  const maxPos = config.maxPositionEmbeddings;
  const encoded = items.map((it, i) => {
    const prompt = typeof it.prompt === "string" ? tokenizer.encode(it.prompt) : [...it.prompt];
    const ref = typeof it.reference === "string"
      ? tokenizer.encode(it.reference, { addBos: false })
      : [...it.reference];
    const target = appendEos ? [...ref, config.eosTokenId] : ref;
    if (prompt.length === 0) throw new RangeError(`item ${i}: empty prompt (it needs BOS)`);
    if (target.length === 0) throw new RangeError(`item ${i}: empty reference, nothing to score`);
    if (prompt.length + target.length - 1 > maxPos) {
      throw new RangeError(
        `item ${i}: prompt (${prompt.length}) + reference (${target.length}) tokens need ` +
          `${prompt.length + target.length - 1} positions but the model has ${maxPos} ` +
          `(max_position_embeddings)`,
      );
    }
    return { prompt, target };
  });
  const L = config.numHiddenLayers;
  const V = config.vocabSize;
  const out: ItemNll[] = [];
  for (let b0 = 0; b0 < encoded.length; b0 += batchSize) {
    const chunk = encoded.slice(b0, b0 + batchSize);
    const batch = teacherForcingBatch(
      chunk.map((e) => e.prompt),
      chunk.map((e) => e.target),
      config.padTokenId,
    );
    const { promptLength: P, targetLength: R, columns: T } = batch;
    if (T > maxPos) {
      throw new RangeError(
        `items ${b0}..${b0 + chunk.length - 1}: the batch needs ${T} columns (longest prompt ` +
          `${P} + longest reference ${R} - 1) but the model has ${maxPos} positions: use a ` +
          `smaller batchSize`,
      );
    }
    const sets = setsForColumns(policy, {
      layers: L,
      promptLength: P,
      maxNewTokens: options.horizon ?? R,
      columns: T,
    });
    const fwd = await backend.forward({ rows: batch.rows, sets, padTokenId: config.padTokenId });
    if (fwd.length !== T) {
      throw new RangeError(`backend ${backend.name} returned ${fwd.length} columns, expected ${T}`);
    }
    chunk.forEach((e, r) => {
      const perToken = e.target.map((id, i) => {
        const off = (r * T + P - 1 + i) * V;
        return tokenNll(fwd.logits.subarray(off, off + V), id);
      });
      out.push({ nll: perToken.reduce((a, x) => a + x, 0), tokens: perToken.length, perToken });
    });
    options.onProgress?.(Math.min(b0 + batchSize, encoded.length), encoded.length);
  }
  return summarizeNll(String(policy), out);
}

/**
 * Corpus figures of per-item NLLs: `Σ nll / Σ tokens`, its `exp`, and the mean NLL at each
 * generated index over the items long enough to have a token there.
 *
 * @param policy the policy's name for the result
 * @param items per-item NLLs
 * @returns the {@linkcode NllResult}
 * @example
 * ```ts
 * import { summarizeNll } from "./nll.ts";
 * const s = summarizeNll("full", [
 *   { nll: 3, tokens: 2, perToken: [1, 2] },
 *   { nll: 3, tokens: 1, perToken: [3] },
 * ]);
 * // s.meanNll = 2, s.positionNll = [2, 2], s.positionCounts = [2, 1]
 * ```
 */
export function summarizeNll(policy: string, items: ItemNll[]): NllResult {
  let nll = 0, tokens = 0;
  const sums: number[] = [];
  const counts: number[] = [];
  for (const it of items) {
    nll += it.nll;
    tokens += it.tokens;
    it.perToken.forEach((x, j) => {
      sums[j] = (sums[j] ?? 0) + x;
      counts[j] = (counts[j] ?? 0) + 1;
    });
  }
  const meanNll = tokens ? nll / tokens : NaN;
  return {
    policy,
    items,
    meanNll,
    perplexity: Math.exp(meanNll),
    tokens,
    positionNll: sums.map((s, j) => s / counts[j]),
    positionCounts: counts,
  };
}
