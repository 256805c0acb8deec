/**
 * The per-layer readout (logit lens) shared by the backends: which columns a layer's
 * readout must be computed for, the reduction of one column's logits to its top-k
 * probabilities, entropy and the probability of the next token, and reading entries back.
 * A backend computes `head(h_l)` (the model's own head) for the columns a layer ran and
 * hands the logits to a {@linkcode ReadoutBuilder}; columns that skipped the layer repeat
 * the previous layer's readout (a skipped layer is the identity, docs/DESIGN.md §2).
 *
 * @example
 * ```ts
 * import { ReadoutBuilder, readoutEntry } from "./readout.ts";
 * // one row of 2 tokens, a 1-layer model, vocabulary of 3
 * const b = new ReadoutBuilder([[0, 2]], [[0], [0]], 1, 2);
 * for (const [row, col] of b.columns(0)) {
 *   b.set(0, row, col, new Float32Array([0, 1, 2]));
 * }
 * b.repeatSkipped(0);
 * const r = b.finish();
 * console.log(readoutEntry(r, 0, 0, 0)); // top [[2, 0.665], [1, 0.245]], nextProb 0.665
 * ```
 * @module
 */
import type { ColumnLayerSets, Readout } from "./types.ts";
import { runsLayer } from "../schedule/active.ts";

/** Collects a forward's per-layer readout; see the module documentation. */
export class ReadoutBuilder {
  /** The readout being filled. */
  readonly readout: Readout;
  #sets: ColumnLayerSets;
  #pads: number[];
  #next: Int32Array; // [B, T]: the next column's token, -1 at the last column and in padding
  #done: Uint8Array; // [B, T]: computed at the current layer

  /**
   * Prepares an empty readout for a forward (padding columns stay empty).
   *
   * @param rows the forward's rows (not padded; left-padded to the longest)
   * @param sets active layers per column of the padded batch
   * @param layers decoder layers `L`
   * @param topK tokens kept per readout (an integer from 1)
   */
  constructor(
    rows: readonly (readonly number[])[],
    sets: ColumnLayerSets,
    layers: number,
    topK: number,
  ) {
    if (!Number.isInteger(topK) || topK < 1) {
      throw new RangeError(`readout.topK must be an integer >= 1, got ${topK}`);
    }
    const B = rows.length;
    const T = Math.max(0, ...rows.map((r) => r.length));
    this.#sets = sets;
    this.#pads = rows.map((r) => T - r.length);
    this.#next = new Int32Array(B * T).fill(-1);
    rows.forEach((r, b) => {
      for (let i = 0; i + 1 < r.length; i++) this.#next[b * T + this.#pads[b] + i] = r[i + 1];
    });
    this.#done = new Uint8Array(B * T);
    const n = B * T * layers;
    this.readout = {
      rows: B,
      length: T,
      layers,
      topK,
      topIds: new Int32Array(n * topK).fill(-1),
      topProbs: new Float32Array(n * topK),
      entropy: new Float32Array(n).fill(NaN),
      nextProb: new Float32Array(n).fill(NaN),
    };
  }

  /**
   * The `[row, column]` pairs whose readout at layer `l` must be computed: the real
   * (not padding) columns that ran layer `l`, and at layer 0 every real column.
   */
  columns(l: number): [number, number][] {
    const { rows: B, length: T } = this.readout;
    const out: [number, number][] = [];
    this.#done.fill(0);
    for (let c = 0; c < T; c++) {
      if (l > 0 && !runsLayer(this.#sets[c], l)) continue;
      for (let b = 0; b < B; b++) if (c >= this.#pads[b]) out.push([b, c]);
    }
    return out;
  }

  /** Reduces the logits (`vocabSize` values) of `row`, `col` at layer `l`. */
  set(l: number, row: number, col: number, logits: Float32Array): void {
    const { length: T, layers: L, topK: k } = this.readout;
    const at = (row * T + col) * L + l;
    const r = reduceLogits(logits, k, this.#next[row * T + col]);
    this.readout.entropy[at] = r.entropy;
    this.readout.nextProb[at] = r.nextProb;
    for (let i = 0; i < r.top.length; i++) {
      this.readout.topIds[at * k + i] = r.top[i][0];
      this.readout.topProbs[at * k + i] = r.top[i][1];
    }
    this.#done[row * T + col] = 1;
  }

  /** Copies layer `l - 1`'s readout to the real columns not computed at layer `l`. */
  repeatSkipped(l: number): void {
    const { rows: B, length: T, layers: L, topK: k } = this.readout;
    const r = this.readout;
    for (let b = 0; b < B; b++) {
      for (let c = this.#pads[b]; c < T; c++) {
        if (this.#done[b * T + c]) continue;
        if (l === 0) throw new Error(`readout: layer 0 of row ${b} column ${c} was not computed`);
        const at = (b * T + c) * L + l;
        r.entropy[at] = r.entropy[at - 1];
        r.nextProb[at] = r.nextProb[at - 1];
        r.topIds.copyWithin(at * k, (at - 1) * k, at * k);
        r.topProbs.copyWithin(at * k, (at - 1) * k, at * k);
      }
    }
  }

  /** The filled readout. */
  finish(): Readout {
    return this.readout;
  }
}

/** The reduction of one distribution: see {@linkcode reduceLogits}. */
export interface ReducedLogits {
  /** `[id, probability]` of the `k` most likely tokens, most likely first. */
  top: [number, number][];
  /** Entropy in nats. */
  entropy: number;
  /** Probability of `next`; NaN when `next` is negative. */
  nextProb: number;
}

/**
 * `softmax(logits)` reduced to its top `k` tokens (ties: lower id first), its entropy in
 * nats and the probability of token `next` (float64 sums, max-subtracted).
 *
 * @example
 * ```ts
 * import { reduceLogits } from "./readout.ts";
 * const r = reduceLogits(new Float32Array([0, 0]), 1, 1);
 * // r.top = [[0, 0.5]], r.entropy = ln 2, r.nextProb = 0.5
 * ```
 */
export function reduceLogits(logits: Float32Array, k: number, next: number): ReducedLogits {
  const n = logits.length;
  let max = -Infinity;
  for (let i = 0; i < n; i++) if (logits[i] > max) max = logits[i];
  let s = 0, sx = 0;
  for (let i = 0; i < n; i++) {
    const x = logits[i] - max;
    const e = Math.exp(x);
    s += e;
    sx += e * x;
  }
  const logS = Math.log(s);
  // H = -Σ p (x - max - log S) = log S - Σ e x / S
  const entropy = logS - sx / s;
  const top: [number, number][] = [];
  for (let i = 0; i < n; i++) {
    const v = logits[i];
    if (top.length === k && v <= top[k - 1][1]) continue;
    let p = top.length;
    while (p > 0 && top[p - 1][1] < v) p--;
    top.splice(p, 0, [i, v]);
    if (top.length > k) top.pop();
  }
  for (const t of top) t[1] = Math.exp(t[1] - max) / s;
  const nextProb = next >= 0 && next < n ? Math.exp(logits[next] - max) / s : NaN;
  return { top, entropy, nextProb };
}

/** One readout entry in plain numbers (JSON-ready). */
export interface ReadoutEntry {
  /** `[id, probability]`, most likely first. */
  top: [number, number][];
  /** Entropy, nats. */
  entropy: number;
  /** Probability of the token that follows the column; `null` at the last column. */
  nextProb: number | null;
}

/**
 * The readout of `layer` (0-based: the output of decoder layer `layer + 1`) at `col` of
 * `row`; `null` for a padding column.
 *
 * @example
 * ```ts
 * import { readoutEntry } from "./readout.ts";
 * // const e = readoutEntry(out.readout!, 0, 5, 11); // e.top[0][0]: top-1 id after layer 12
 * ```
 */
export function readoutEntry(
  r: Readout,
  row: number,
  col: number,
  layer: number,
): ReadoutEntry | null {
  const { length: T, layers: L, topK: k } = r;
  if (row < 0 || row >= r.rows || col < 0 || col >= T || layer < 0 || layer >= L) {
    throw new RangeError(
      `readoutEntry: row ${row}, column ${col}, layer ${layer} outside ` +
        `${r.rows} x ${T} x ${L}`,
    );
  }
  const at = (row * T + col) * L + layer;
  if (Number.isNaN(r.entropy[at])) return null;
  const top: [number, number][] = [];
  for (let i = 0; i < k && r.topIds[at * k + i] >= 0; i++) {
    top.push([r.topIds[at * k + i], r.topProbs[at * k + i]]);
  }
  const np = r.nextProb[at];
  return { top, entropy: r.entropy[at], nextProb: Number.isNaN(np) ? null : np };
}

/**
 * Every real column of `row`, each with one entry per layer: `columns[c][l]`, the shape
 * `skipdecode readout --json` prints (padding columns left out).
 *
 * @example
 * ```ts
 * import { readoutColumns } from "./readout.ts";
 * // const cols = readoutColumns(out.readout!, 0); cols[0][0].top[0]
 * ```
 */
export function readoutColumns(r: Readout, row: number): ReadoutEntry[][] {
  const out: ReadoutEntry[][] = [];
  for (let c = 0; c < r.length; c++) {
    const layers: ReadoutEntry[] = [];
    for (let l = 0; l < r.layers; l++) {
      const e = readoutEntry(r, row, c, l);
      if (e) layers.push(e);
    }
    if (layers.length) out.push(layers);
  }
  return out;
}
