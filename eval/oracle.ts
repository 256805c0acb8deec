/**
 * Oracle depth per position (docs/DESIGN.md §8): for each position of the full model's greedy
 * output, the smallest layer budget `n` whose greedy token there equals the full model's.
 * It tests the paper's assumption that later tokens need fewer layers.
 *
 * Method: the full model's output is teacher forced (prompt + its tokens, laid out as in
 * `nll.ts`) under constant plans `n = w + 1 .. L`, one uncached forward per budget and
 * batch, smallest budget first ({@linkcode oracleSets}): the prompt columns before the last
 * run all layers, and every column that produces a generated token (column `P - 1 + i` for
 * token `i`, so the last prompt column too) runs the SkipDecode set of budget `n` with `w`
 * warm-up layers (or the bottom `n` layers for `kind: "earlyexit"`). The depth at position
 * `i` is the first `n` whose argmax at column `P - 1 + i` is the full model's token `i`.
 * Every producing column before `i` also ran budget `n`, as under a schedule that stays at
 * `n`. When no budget below `L` matches and
 * the all-layer forward disagrees too (a near tie between cached and uncached numerics), the
 * depth is `L` and the position is counted in `unmatched`. A row leaves the batch once
 * every one of its positions has its depth (padding never changes a row's result), and
 * the loop over budgets stops when no row is left.
 *
 * @example
 * ```ts
 * import { generate, loadModel } from "../decode/mod.ts";
 * import { oracleDepths } from "./oracle.ts";
 * const model = await loadModel("bundled/models/tiny-opt-e2e", { backend: "cpu" });
 * const prompts = ["name[Aromi], eatType[coffee shop]\n"];
 * const full = await generate(model, prompts, { maxNewTokens: 32 });
 * const o = await oracleDepths(model, prompts.map((p, i) => ({
 *   prompt: p, tokens: full.results[i].ids,
 * })), { warmup: 1 });
 * console.log(o.depths[0], o.meanByPosition);
 * model.dispose();
 * ```
 * @module
 */
import { argmax } from "../backend/cpu/ops.ts";
import { earlyExitSet, skipDecodeSet } from "../schedule/mod.ts";
import { type ScoringModel, teacherForcingBatch } from "./nll.ts";

/** One sequence to analyse: a prompt and the full model's greedy output after it. */
export interface OracleItem {
  /** Prompt text (BOS prepended) or ids (BOS included). */
  prompt: string | readonly number[];
  /** The full model's generated ids (EOS included when produced). */
  tokens: readonly number[];
}

/** Options of {@linkcode oracleDepths}. */
export interface OracleOptions {
  /** Warm-up layers `w` of the SkipDecode sets (default 0); budgets run `w + 1 .. L`. */
  warmup?: number;
  /** `"skipdecode"` (default): skip lower-middle layers; `"earlyexit"`: bottom layers. */
  kind?: "skipdecode" | "earlyexit";
  /** Rows per forward (default 8). */
  batchSize?: number;
  /** Called after each batch with items done and total. */
  onProgress?: (done: number, total: number) => void;
}

/** What {@linkcode oracleDepths} returns. */
export interface OracleResult {
  /** `depths[item][i]`: oracle depth of generated position `i` of that item. */
  depths: number[][];
  /** `byPosition[i]`: the depths observed at generated token `i` (for `oracleDepthChart`). */
  byPosition: number[][];
  /** Mean depth at each generated index. */
  meanByPosition: number[];
  /** Mean depth over all positions. */
  meanDepth: number;
  /** Positions whose all-layer forward disagreed with the given full token (depth `L`). */
  unmatched: number;
  /** Decoder layers `L`. */
  layers: number;
  /** Warm-up layers used. */
  warmup: number;
  /** Layer sets used. */
  kind: "skipdecode" | "earlyexit";
  /** Forwards run (budgets tried, summed over batches). */
  forwards: number;
}

/**
 * The layer sets of one oracle forward: columns `0 .. P - 2` run all `L` layers, columns
 * `P - 1 .. columns - 1` (those producing generated tokens) the SkipDecode set of budget
 * `n` with `warmup` warm-up layers, or the bottom `n` layers for `kind: "earlyexit"`.
 * Budgets only shrink, so the sets nest (docs/DESIGN.md §2).
 *
 * @param o layers `L`, prompt length `P`, columns, budget `n`, warm-up `w`, set kind
 * @returns one ascending layer set per column
 * @example
 * ```ts
 * import { oracleSets } from "./oracle.ts";
 * oracleSets({ layers: 4, promptLength: 2, columns: 4, n: 2, warmup: 1 });
 * // [[0, 1, 2, 3], [0, 3], [0, 3], [0, 3]]
 * ```
 */
export function oracleSets(o: {
  layers: number;
  promptLength: number;
  columns: number;
  n: number;
  warmup?: number;
  kind?: "skipdecode" | "earlyexit";
}): number[][] {
  const all = earlyExitSet(o.layers, o.layers);
  const reduced = o.kind === "earlyexit"
    ? earlyExitSet(o.layers, o.n)
    : skipDecodeSet(o.layers, o.n, o.warmup ?? 0);
  return Array.from({ length: o.columns }, (_, c) => c < o.promptLength - 1 ? all : reduced);
}

/**
 * Oracle depth of every position of the full model's outputs (see the module
 * documentation for the method).
 *
 * @param model config, backend and tokenizer (a loaded `Model`)
 * @param items prompts with the full model's greedy outputs; empty outputs are skipped
 * @param options warm-up, set kind, batch size, progress
 * @returns depths per item and position, and their distribution by position
 * @throws RangeError for a warm-up outside `0 .. L-1` or an item that does not fit the
 *   position table (naming the item)
 * @example
 * ```ts
 * import { oracleDepths } from "./oracle.ts";
 * // model: a loaded Model; tokens: the full model's greedy output for the prompt
 * // const o = await oracleDepths(model, [{ prompt: "name[Aromi]\n", tokens }], { warmup: 1 });
 * ```
 */
export async function oracleDepths(
  model: ScoringModel,
  items: readonly OracleItem[],
  options: OracleOptions = {},
): Promise<OracleResult> {
  const { config, backend, tokenizer } = model;
  const L = config.numHiddenLayers;
  const V = config.vocabSize;
  const w = options.warmup ?? 0;
  const kind = options.kind ?? "skipdecode";
  const batchSize = options.batchSize ?? 8;
  if (!Number.isInteger(w) || w < 0 || w >= L) {
    throw new RangeError(`oracle warmup must be an integer in 0..${L - 1}, got ${w}`);
  }
  if (kind !== "skipdecode" && kind !== "earlyexit") {
    throw new RangeError(`oracle kind must be "skipdecode" or "earlyexit", got "${kind}"`);
  }
  if (!Number.isInteger(batchSize) || batchSize < 1) {
    throw new RangeError(`batchSize must be an integer >= 1, got ${batchSize}`);
  }
  const lo = kind === "earlyexit" ? 1 : w + 1;
  const encoded = items.map((it, i) => {
    const prompt = typeof it.prompt === "string" ? tokenizer.encode(it.prompt) : [...it.prompt];
    if (prompt.length === 0) throw new RangeError(`item ${i}: empty prompt (it needs BOS)`);
    if (prompt.length + it.tokens.length - 1 > config.maxPositionEmbeddings) {
      throw new RangeError(
        `item ${i}: ${prompt.length} prompt + ${it.tokens.length} generated tokens exceed the ` +
          `${config.maxPositionEmbeddings} positions of the model`,
      );
    }
    return { index: i, prompt, target: [...it.tokens] };
  });
  const depths: number[][] = items.map(() => []);
  let unmatched = 0, forwards = 0;
  const work = encoded.filter((e) => e.target.length > 0);
  for (let b0 = 0; b0 < work.length; b0 += batchSize) {
    const chunk = work.slice(b0, b0 + batchSize);
    const found: (number | undefined)[][] = chunk.map((e) => e.target.map(() => undefined));
    const left = chunk.map((e) => e.target.length);
    for (let n = lo; n <= L && left.some((x) => x > 0); n++) {
      // Rows with every position resolved leave the batch (padding never changes a row).
      const active = chunk.map((_, r) => r).filter((r) => left[r] > 0);
      const batch = teacherForcingBatch(
        active.map((r) => chunk[r].prompt),
        active.map((r) => chunk[r].target),
        config.padTokenId,
      );
      const { promptLength: P, columns: T } = batch;
      const sets = oracleSets({ layers: L, promptLength: P, columns: T, n, warmup: w, kind });
      const fwd = await backend.forward({ rows: batch.rows, sets, padTokenId: config.padTokenId });
      forwards++;
      active.forEach((r, a) => {
        chunk[r].target.forEach((id, i) => {
          if (found[r][i] !== undefined) return;
          const off = (a * T + P - 1 + i) * V;
          if (argmax(fwd.logits.subarray(off, off + V)) === id) {
            found[r][i] = n;
            left[r]--;
          }
        });
      });
    }
    chunk.forEach((e, r) => {
      depths[e.index] = found[r].map((d) => {
        if (d !== undefined) return d;
        unmatched++;
        return L;
      });
    });
    options.onProgress?.(Math.min(b0 + batchSize, work.length), work.length);
  }
  return oracleSummary(depths, { unmatched, forwards, layers: L, warmup: w, kind });
}

/**
 * The oracle result of per-item depths (by position, means), given the counts gathered
 * while finding them: what {@linkcode oracleDepths} returns, and what the merge of a
 * sharded sweep rebuilds from its units' depths.
 *
 * @param depths per item, the depth per generated position
 * @param o positions unmatched, forwards run, layers, warm-up, set kind
 * @returns the result
 * @example
 * ```ts
 * import { oracleSummary } from "./oracle.ts";
 * oracleSummary([[3, 1], [2]], { unmatched: 0, forwards: 4, layers: 4, warmup: 0, kind: "skipdecode" })
 *   .meanByPosition; // [2.5, 1]
 * ```
 */
export function oracleSummary(
  depths: number[][],
  o: Omit<OracleResult, "depths" | "byPosition" | "meanByPosition" | "meanDepth">,
): OracleResult {
  const byPosition: number[][] = [];
  for (const ds of depths) {
    ds.forEach((d, j) => (byPosition[j] ??= []).push(d));
  }
  const all = depths.flat();
  return {
    depths,
    byPosition,
    meanByPosition: byPosition.map((ds) => ds.reduce((a, b) => a + b, 0) / ds.length),
    meanDepth: all.length ? all.reduce((a, b) => a + b, 0) / all.length : NaN,
    unmatched: o.unmatched,
    layers: o.layers,
    warmup: o.warmup,
    kind: o.kind,
    forwards: o.forwards,
  };
}
