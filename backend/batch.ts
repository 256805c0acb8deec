/**
 * Left padding and OPT position ids for a batch of rows (docs/DESIGN.md §3), shared by backends.
 *
 * @module
 */

/** A left-padded batch: `B` rows of `length` columns. */
export interface PaddedBatch {
  /** Rows `B`. */
  batch: number;
  /** Columns `T` (the longest row). */
  length: number;
  /** `[B, T]` token ids, padding = `padTokenId`. */
  tokens: Int32Array;
  /** `[B, T]` 1 for real tokens, 0 for padding. */
  mask: Uint8Array;
  /** `[B, T]` OPT position ids (`cumsum(mask) * mask - 1`); add 2 for the table row. */
  positions: Int32Array;
  /** Real tokens per row. */
  lengths: number[];
}

/**
 * Left-pads rows to a common length and computes OPT position ids.
 *
 * @example
 * ```ts
 * const b = padLeft([[2, 5, 6], [2, 7]], 1);
 * // b.tokens = [2, 5, 6, 1, 2, 7], b.positions = [0, 1, 2, -1, 0, 1]
 * ```
 */
export function padLeft(
  rows: readonly (readonly number[])[],
  padTokenId: number,
  length?: number,
): PaddedBatch {
  if (rows.length === 0) throw new RangeError("batch has no rows");
  const lengths = rows.map((r) => r.length);
  const longest = Math.max(...lengths);
  const T = length ?? longest;
  if (T < longest) {
    throw new RangeError(`padded length ${T} is shorter than the longest row (${longest})`);
  }
  rows.forEach((r, b) => {
    if (r.length === 0) {
      throw new RangeError(`row ${b} is empty: every row needs at least one token (BOS)`);
    }
  });
  const B = rows.length;
  const tokens = new Int32Array(B * T).fill(padTokenId);
  const mask = new Uint8Array(B * T);
  const positions = new Int32Array(B * T).fill(-1);
  for (let b = 0; b < B; b++) {
    const off = b * T + (T - rows[b].length);
    for (let i = 0; i < rows[b].length; i++) {
      tokens[off + i] = rows[b][i];
      mask[off + i] = 1;
      positions[off + i] = i;
    }
  }
  return { batch: B, length: T, tokens, mask, positions, lengths };
}

/**
 * Throws a clear error when a plan's columns do not cover `columns` or a position would
 * fall outside the learned position table.
 *
 * @example
 * ```ts
 * checkColumns([[0], [0]], 2, 1, 2048);
 * ```
 */
export function checkColumns(
  sets: readonly (readonly number[])[],
  columns: number,
  layers: number,
  maxPositions: number,
): void {
  if (columns > maxPositions) {
    throw new RangeError(
      `sequence of ${columns} columns is longer than the position table ` +
        `(max_position_embeddings = ${maxPositions}): shorten the prompt or maxNewTokens`,
    );
  }
  if (sets.length < columns) {
    throw new RangeError(`plan covers ${sets.length} columns but ${columns} are needed`);
  }
  for (let c = 0; c < columns; c++) {
    const s = sets[c];
    if (!s || s.length === 0) throw new RangeError(`plan column ${c} has no active layer`);
    for (const l of s) {
      if (!Number.isInteger(l) || l < 0 || l >= layers) {
        throw new RangeError(
          `plan column ${c} names layer ${l}, but the model has layers 0..${layers - 1}`,
        );
      }
    }
  }
}

/**
 * Throws a clear error when a token id is not an integer in `0 .. vocabSize - 1` (an id
 * outside the embedding table would otherwise read as a silent zero embedding).
 *
 * @param rows token ids per row
 * @param vocabSize rows of the embedding table
 * @param what what a row is called in the message (`"prompt"`, `"row"`)
 * @example
 * ```ts
 * checkTokenIds([[2, 100]], 50272, "prompt"); // ok
 * // checkTokenIds([[2, 50272]], 50272, "prompt") throws:
 * // "prompt 0, token 1: id 50272 is not an integer in 0..50271 (vocab_size 50272)"
 * ```
 */
export function checkTokenIds(
  rows: readonly (readonly number[])[],
  vocabSize: number,
  what: string,
): void {
  rows.forEach((row, b) => {
    row.forEach((id, t) => {
      if (!Number.isInteger(id) || id < 0 || id >= vocabSize) {
        throw new RangeError(
          `${what} ${b}, token ${t}: id ${id} is not an integer in 0..${vocabSize - 1} ` +
            `(vocab_size ${vocabSize})`,
        );
      }
    });
  });
}
