/**
 * The request validators every backend shares: {@linkcode validateDecodeRequest} for a cached
 * column-wise decode (`Backend.decode`) and {@linkcode validateRowWork} for a call of
 * sequences at their own positions (`RowBatch.run`). One place decides what is valid, so the
 * backends refuse the same requests with the same one-line `RangeError` (or `PlanError` for a
 * plan that breaks the nesting invariant), naming the field, row, token, column or layer.
 *
 * @example
 * ```ts
 * import { validateDecodeRequest } from "./requests.ts";
 * const model = { vocabSize: 50, numHiddenLayers: 2, maxPositionEmbeddings: 32 };
 * const shape = validateDecodeRequest({
 *   prompts: [[2, 5, 6], [2, 7]], maxNewTokens: 3, sets: Array(5).fill([0, 1]), padTokenId: 1,
 * }, model);
 * console.log(shape.P, shape.columns); // 3 5
 * ```
 *
 * @module
 */
import type { DecodeRequest, RowWork, SamplingOptions } from "./types.ts";
import { checkColumns, checkTokenIds } from "./batch.ts";
import { validateSampling } from "./sampling.ts";
import { checkNesting } from "../schedule/plan.ts";

/** The model sizes a request is checked against (any `OptConfig` has them). */
export interface RequestLimits {
  /** Vocabulary rows `V`. */
  vocabSize: number;
  /** Decoder layers `L`. */
  numHiddenLayers: number;
  /** Rows of the learned position table. */
  maxPositionEmbeddings: number;
}

/** The sizes of a valid decode request: see {@linkcode validateDecodeRequest}. */
export interface DecodeShape {
  /** Rows. */
  B: number;
  /** Common (left-padded) prompt length. */
  P: number;
  /** Tokens to generate at most. */
  N: number;
  /** Columns run, `P + N - 1`. */
  columns: number;
  /** The sampling options (`{}` when absent: greedy). */
  sampling: SamplingOptions;
}

/**
 * Checks a decode request against the model before any work: sampling options, rows and
 * their token ids, `maxNewTokens`, `padTokenId`, `eosTokenId`, `logitsTopK`, `chunkSize`, the
 * plan's coverage of the `P + N - 1` columns, its layers, the position table, and the nesting
 * invariant (a `PlanError` naming the column and layer). Returns the request's sizes.
 *
 * @example
 * ```ts
 * import { validateDecodeRequest } from "./requests.ts";
 * const model = { vocabSize: 50, numHiddenLayers: 2, maxPositionEmbeddings: 32 };
 * try {
 *   validateDecodeRequest({ prompts: [[2]], maxNewTokens: 2, sets: [[1], [0, 1]], padTokenId: 1 }, model);
 * } catch (e) {
 *   console.log((e as Error).message); // "column 1 runs layer 0, which column 0 skipped: ..."
 * }
 * ```
 */
export function validateDecodeRequest(req: DecodeRequest, model: RequestLimits): DecodeShape {
  const V = model.vocabSize;
  const sampling = req.sampling ?? {};
  validateSampling(sampling);
  checkTokenIds(req.prompts, V, "prompt");
  if (req.prompts.length === 0) throw new RangeError("batch has no rows");
  req.prompts.forEach((p, b) => {
    if (p.length === 0) {
      throw new RangeError(`prompt ${b} is empty: every row needs at least one token (BOS)`);
    }
  });
  const N = req.maxNewTokens;
  if (!Number.isInteger(N) || N < 1) {
    throw new RangeError(`maxNewTokens must be an integer >= 1, got ${N}`);
  }
  checkId("padTokenId", req.padTokenId, V);
  if (req.eosTokenId !== undefined) checkId("eosTokenId", req.eosTokenId, V);
  const kTop = req.logitsTopK ?? 0;
  if (!Number.isInteger(kTop) || kTop < 0 || kTop > V) {
    throw new RangeError(`logitsTopK must be an integer in 0..${V}, got ${req.logitsTopK}`);
  }
  const chunk = req.chunkSize ?? 1;
  if (!Number.isInteger(chunk) || chunk < 1) {
    throw new RangeError(`chunkSize must be a positive integer, got ${req.chunkSize}`);
  }
  const B = req.prompts.length;
  const P = Math.max(...req.prompts.map((p) => p.length));
  const columns = P + N - 1;
  checkColumns(req.sets, columns, model.numHiddenLayers, model.maxPositionEmbeddings);
  checkNesting(req.sets.slice(0, columns));
  return { B, P, N, columns, sampling };
}

/** What {@linkcode validateRowWork} checks a call against. */
export interface RowWorkLimits extends RequestLimits {
  /** Slots of the batch. */
  capacity: number;
  /** Positions a slot may reach (at most the position table). */
  maxLength: number;
  /** Tokens run so far in a slot. */
  lengthOf(slot: number): number;
}

/**
 * Checks the entries of a `RowBatch.run` call before any work: distinct integer slots in
 * range, non-empty token lists of ids in the vocabulary, one non-empty ascending set of
 * layers in range per token, the slot's positions within `maxLength` (and so the position
 * table), `want`, `step`, `logitsTopK` and the sampling options. Each error is one line
 * naming the entry, slot, token or field. (The per-slot nesting rule is the tracker's
 * `check`, `schedule/active.ts`.)
 *
 * @example
 * ```ts
 * import { validateRowWork } from "./requests.ts";
 * const limits = {
 *   vocabSize: 50, numHiddenLayers: 2, maxPositionEmbeddings: 32,
 *   capacity: 2, maxLength: 16, lengthOf: () => 0,
 * };
 * validateRowWork([{ slot: 0, tokens: [2, 7], sets: [[0, 1], [1]] }], limits); // ok
 * ```
 */
export function validateRowWork(entries: readonly RowWork[], limits: RowWorkLimits): void {
  if (!Array.isArray(entries)) throw new RangeError("run: entries must be an array of RowWork");
  const V = limits.vocabSize, L = limits.numHiddenLayers;
  const maxLength = Math.min(limits.maxLength, limits.maxPositionEmbeddings);
  const seen = new Set<number>();
  entries.forEach((e, i) => {
    const at = `run entry ${i}`;
    if (typeof e !== "object" || e === null) throw new RangeError(`${at}: not a RowWork object`);
    const { slot } = e;
    if (!Number.isInteger(slot) || slot < 0 || slot >= limits.capacity) {
      throw new RangeError(`${at}: slot ${slot} is not an integer in 0..${limits.capacity - 1}`);
    }
    if (seen.has(slot)) {
      throw new RangeError(`${at}: slot ${slot} appears twice in one call (slots must differ)`);
    }
    seen.add(slot);
    const where = `${at} (slot ${slot})`;
    const tokens: readonly number[] = e.tokens, sets: readonly (readonly number[])[] = e.sets;
    if (!Array.isArray(tokens) || tokens.length === 0) {
      throw new RangeError(`${where}: tokens must be a non-empty array of ids`);
    }
    tokens.forEach((id, t) => {
      if (!Number.isInteger(id) || id < 0 || id >= V) {
        throw new RangeError(
          `${where}, token ${t}: id ${id} is not an integer in 0..${V - 1} (vocab_size ${V})`,
        );
      }
    });
    if (!Array.isArray(sets) || sets.length !== tokens.length) {
      throw new RangeError(
        `${where}: sets must hold one layer set per token (${tokens.length}), got ` +
          `${Array.isArray(sets) ? sets.length : typeof sets}`,
      );
    }
    sets.forEach((set, t) => {
      if (!Array.isArray(set) || set.length === 0) {
        throw new RangeError(`${where}, token ${t}: the layer set must be a non-empty array`);
      }
      set.forEach((l, k) => {
        if (!Number.isInteger(l) || l < 0 || l >= L) {
          throw new RangeError(
            `${where}, token ${t}: layer ${l} is not a layer index in 0..${L - 1}`,
          );
        }
        if (k > 0 && l <= set[k - 1]) {
          throw new RangeError(
            `${where}, token ${t}: layers must be ascending without duplicates ` +
              `(${set[k - 1]} then ${l})`,
          );
        }
      });
    });
    const end = limits.lengthOf(slot) + tokens.length;
    if (end > maxLength) {
      throw new RangeError(
        `${where}: positions up to ${end - 1} exceed the slot's maxLength ${maxLength} ` +
          `(position table ${limits.maxPositionEmbeddings})`,
      );
    }
    if (e.want !== undefined && e.want !== "last" && e.want !== "all") {
      throw new RangeError(`${where}: want must be "last" or "all", got ${String(e.want)}`);
    }
    if (e.step !== undefined && (!Number.isInteger(e.step) || e.step < 0)) {
      throw new RangeError(`${where}: step must be a non-negative integer, got ${e.step}`);
    }
    const kTop = e.logitsTopK ?? 0;
    if (!Number.isInteger(kTop) || kTop < 0 || kTop > V) {
      throw new RangeError(`${where}: logitsTopK must be an integer in 0..${V}, got ${kTop}`);
    }
    try {
      validateSampling(e.sampling ?? {});
    } catch (err) {
      throw new RangeError(`${where}: ${(err as Error).message}`);
    }
  });
}

function checkId(field: string, id: number, V: number): void {
  if (!Number.isInteger(id) || id < 0 || id >= V) {
    throw new RangeError(`${field} ${id} is not an id in 0..${V - 1}`);
  }
}
