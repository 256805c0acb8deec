/**
 * The one owner of "which columns / rows run layer `l`" (docs/DESIGN.md §2 and "Rows at their
 * own positions"). Every backend, engine and trainer asks these helpers instead of writing
 * the loop again:
 *
 * - column plans (`sets[c]`, one set per column of a padded batch): {@linkcode columnsRunning}
 *   (the columns of `c0 .. c1 - 1` that run `l`), {@linkcode layerPrefix} (`P_l`, the leading
 *   columns that run `l`; a prefix by the nesting invariant), {@linkcode layerCapacity}
 *   (KV slots per layer);
 * - packed training masks (`active[l][row * T + c]`): {@linkcode packActive};
 * - per-row work (sequences at their own positions, `RowWork`): {@linkcode tokensRunning}
 *   (which `(entry, token)` pairs run `l`, in a fixed order) and the per-slot nesting tracker
 *   {@linkcode NestingTracker} (per slot and layer: leading positions with KV; `check` before
 *   any work, `commit` after, `truncate`, `release`, counters).
 *
 * @example
 * ```ts
 * import { columnsRunning, layerCapacity, layerPrefix, tokensRunning } from "./active.ts";
 * const sets = [[0, 1, 2], [0, 2], [2]];
 * console.log(columnsRunning(sets, 0, 0, 3)); // [0, 1]
 * console.log(layerPrefix(sets, 1)); // 1
 * console.log(layerCapacity(sets, 3)); // [2, 1, 3]
 * const work = [{ tokens: [5, 6], sets: [[0, 2], [2]] }, { tokens: [7], sets: [[0, 1, 2]] }];
 * console.log(tokensRunning(work, 0)); // [{ entry: 0, token: 0 }, { entry: 1, token: 0 }]
 * ```
 *
 * @module
 */

/** Active layers per column (or per token), ascending: the shape of `ColumnLayerSets`. */
export type LayerSets = readonly (readonly number[])[];

/**
 * Whether a set (ascending layer indices) contains layer `l`.
 *
 * @example
 * ```ts
 * import { runsLayer } from "./active.ts";
 * console.log(runsLayer([0, 3, 5], 3)); // true
 * ```
 */
export function runsLayer(set: readonly number[], l: number): boolean {
  return set.includes(l);
}

/**
 * The columns `c0 .. c1 - 1` whose set contains layer `l`, ascending.
 *
 * @example
 * ```ts
 * import { columnsRunning } from "./active.ts";
 * console.log(columnsRunning([[0, 1], [1], [1]], 1, 1, 3)); // [1, 2]
 * ```
 */
export function columnsRunning(sets: LayerSets, l: number, c0: number, c1: number): number[] {
  const out: number[] = [];
  for (let c = c0; c < c1; c++) if (runsLayer(sets[c], l)) out.push(c);
  return out;
}

/**
 * `P_l`: how many leading columns of `0 .. columns - 1` run layer `l` without a gap. Under the
 * nesting invariant these are all the columns that run `l` (a prefix).
 *
 * @example
 * ```ts
 * import { layerPrefix } from "./active.ts";
 * console.log(layerPrefix([[0, 1], [1], [1]], 0)); // 1
 * ```
 */
export function layerPrefix(sets: LayerSets, l: number, columns: number = sets.length): number {
  let q = 0;
  while (q < columns && runsLayer(sets[q], l)) q++;
  return q;
}

/**
 * KV capacity per layer: how many of columns `0 .. columns - 1` run each layer `0 .. layers - 1`
 * (equal to `P_l` for a nested plan).
 *
 * @example
 * ```ts
 * import { layerCapacity } from "./active.ts";
 * console.log(layerCapacity([[0, 1], [1]], 2)); // [1, 2]
 * ```
 */
export function layerCapacity(
  sets: LayerSets,
  layers: number,
  columns: number = sets.length,
): number[] {
  const cap = new Array<number>(layers).fill(0);
  for (let c = 0; c < columns; c++) for (const l of sets[c]) cap[l]++;
  return cap;
}

/**
 * One past the last of columns `0 .. columns - 1` that runs layer `l` (0 when none does): the
 * KV slots a column-indexed cache of layer `l` needs, nested plan or not (an uncached forward
 * may run any sets).
 *
 * @example
 * ```ts
 * import { layerExtent } from "./active.ts";
 * console.log(layerExtent([[0, 1], [1], [0]], 0)); // 3
 * ```
 */
export function layerExtent(sets: LayerSets, l: number, columns: number = sets.length): number {
  let end = 0;
  for (let c = 0; c < columns; c++) if (runsLayer(sets[c], l)) end = c + 1;
  return end;
}

/** Active entries of one layer of a packed training mask: see {@linkcode packActive}. */
export interface PackedActive {
  /** `[m]` flat index `row * length + c` of each active column, row-major. */
  idx: Uint32Array;
  /** `[m]` position in `idx` of the first active column of the same row. */
  start: Uint32Array;
  /** `[m]` position in `idx` of the last active column of the same row. */
  rowEnd: Uint32Array;
  /** The most active columns of any row. */
  tmax: number;
}

/**
 * The active columns of one layer's mask `mask[row * length + c]` (1: runs the layer), packed
 * row by row, with each one's row start and end in the packing (for attention over a row's
 * active columns).
 *
 * @example
 * ```ts
 * import { packActive } from "./active.ts";
 * const p = packActive(new Uint8Array([1, 0, 1, 0, 1, 1]), 2, 3);
 * console.log(p.idx, p.start, p.rowEnd, p.tmax); // [0, 2, 4, 5] [0, 0, 2, 2] [1, 1, 3, 3] 2
 * ```
 */
export function packActive(mask: ArrayLike<number>, rows: number, length: number): PackedActive {
  const idx: number[] = [], start: number[] = [], rowEnd: number[] = [];
  let tmax = 0;
  for (let r = 0; r < rows; r++) {
    const first = idx.length;
    for (let c = 0; c < length; c++) if (mask[r * length + c]) idx.push(r * length + c);
    const count = idx.length - first;
    tmax = Math.max(tmax, count);
    for (let j = 0; j < count; j++) {
      start.push(first);
      rowEnd.push(first + count - 1);
    }
  }
  return {
    idx: Uint32Array.from(idx),
    start: Uint32Array.from(start),
    rowEnd: Uint32Array.from(rowEnd),
    tmax,
  };
}

/** A token of a per-row call: entry `entry`'s token `token`. */
export interface TokenRef {
  /** Index of the entry (a `RowWork`) in the call. */
  entry: number;
  /** Index of the token within the entry. */
  token: number;
}

/**
 * The `(entry, token)` pairs of a per-row call that run layer `l`, entry by entry, tokens in
 * order: the rows of that layer's batched product (gather, compute, scatter back).
 *
 * @example
 * ```ts
 * import { tokensRunning } from "./active.ts";
 * // two tokens of entry 0: both run layer 1, only the first runs layer 0
 * console.log(tokensRunning([{ sets: [[0, 1], [1]] }], 1)); // [{ entry: 0, token: 0 }, { entry: 0, token: 1 }]
 * ```
 */
export function tokensRunning(
  entries: readonly { readonly sets: LayerSets }[],
  l: number,
): TokenRef[] {
  const out: TokenRef[] = [];
  entries.forEach((e, entry) => {
    e.sets.forEach((set, token) => {
      if (runsLayer(set, l)) out.push({ entry, token });
    });
  });
  return out;
}

/** What {@linkcode NestingTracker} checks and commits: a slot and its tokens' sets. */
export interface SlotWork {
  /** The slot. */
  readonly slot: number;
  /** Active layers of each token run at the slot's next positions. */
  readonly sets: LayerSets;
}

/** The counters of a {@linkcode NestingTracker} (the no-recompute figures of `RowBatchStats`). */
export interface NestingCounters {
  /** KV entries written (slot, layer, position). */
  kvWrites: number;
  /** Writes to a (slot, layer, position) already written since it last started or truncated. */
  kvRewrites: number;
  /** Layer evaluations of tokens. */
  layerSteps: number;
}

/**
 * Per slot and layer, how many leading positions have KV, and the per-slot nesting rule of
 * sequences at their own positions: running layer `l` at position `p` needs positions
 * `0 .. p - 1` to have run `l` (so the KV of `l` is a prefix and is never recomputed).
 * {@linkcode check} refuses a call before any work; {@linkcode commit} records it afterwards;
 * {@linkcode noteWrite} counts every KV write the backend actually does (rewrites included,
 * from its own record of written entries, independent of the prefix lengths).
 *
 * @example
 * ```ts
 * import { NestingTracker } from "./active.ts";
 * const t = new NestingTracker(2, 3, 16);
 * const work = [{ slot: 0, sets: [[0, 1, 2], [0, 2]] }];
 * t.check(work);
 * t.commit(work);
 * console.log(t.length(0), t.kvLength(0, 1)); // 2 1
 * try {
 *   t.check([{ slot: 0, sets: [[1, 2]] }]);
 * } catch (e) {
 *   console.log((e as Error).message); // "slot 0, position 2: runs layer 1, ..."
 * }
 * ```
 */
export class NestingTracker {
  /** Slots tracked. */
  readonly capacity: number;
  /** Decoder layers. */
  readonly layers: number;
  /** Positions a slot may reach. */
  readonly maxLength: number;
  #length: number[];
  #kv: Int32Array; // [capacity, layers]: leading positions with KV
  #written: Uint8Array[]; // per slot: [layers, maxLength], allocated on first use
  #counters: NestingCounters = { kvWrites: 0, kvRewrites: 0, layerSteps: 0 };

  /** Tracks `capacity` empty slots of a model with `layers` layers. */
  constructor(capacity: number, layers: number, maxLength: number) {
    this.capacity = capacity;
    this.layers = layers;
    this.maxLength = maxLength;
    this.#length = new Array<number>(capacity).fill(0);
    this.#kv = new Int32Array(capacity * layers);
    this.#written = new Array<Uint8Array>(capacity);
  }

  /** Tokens run so far in `slot` (its next position). */
  length(slot: number): number {
    this.#slot(slot);
    return this.#length[slot];
  }

  /** Leading positions of `slot` with KV at layer `l`. */
  kvLength(slot: number, l: number): number {
    this.#slot(slot);
    return this.#kv[slot * this.layers + l];
  }

  /**
   * Refuses work that breaks the nesting rule, before any of it runs: a `RangeError` naming
   * the slot, the position and the layer.
   */
  check(work: readonly SlotWork[]): void {
    for (const w of work) {
      this.#slot(w.slot);
      const kv = this.#kv.slice(w.slot * this.layers, (w.slot + 1) * this.layers);
      const p0 = this.#length[w.slot];
      w.sets.forEach((set, i) => {
        const p = p0 + i;
        for (const l of set) {
          if (kv[l] !== p) {
            throw new RangeError(
              `slot ${w.slot}, position ${p}: runs layer ${l}, but that layer's KV covers ` +
                `positions 0..${kv[l] - 1} only (position ${kv[l]} skipped it): a row's ` +
                `plan must nest along its positions (docs/DESIGN.md §2)`,
            );
          }
          kv[l] = p + 1;
        }
      });
    }
  }

  /** Records checked work as run: lengths, KV prefixes and layer steps. */
  commit(work: readonly SlotWork[]): void {
    for (const w of work) {
      const p0 = this.#length[w.slot];
      w.sets.forEach((set, i) => {
        for (const l of set) this.#kv[w.slot * this.layers + l] = p0 + i + 1;
        this.#counters.layerSteps += set.length;
      });
      this.#length[w.slot] = p0 + w.sets.length;
    }
  }

  /** Counts one KV write of `slot` at layer `l`, position `p` (a rewrite if already written). */
  noteWrite(slot: number, l: number, p: number): void {
    let w = this.#written[slot];
    if (!w) w = this.#written[slot] = new Uint8Array(this.layers * this.maxLength);
    const at = l * this.maxLength + p;
    if (w[at]) this.#counters.kvRewrites++;
    w[at] = 1;
    this.#counters.kvWrites++;
  }

  /** Keeps the first `length` positions of `slot`, at every layer. */
  truncate(slot: number, length: number): void {
    this.#slot(slot);
    if (!Number.isInteger(length) || length < 0 || length > this.#length[slot]) {
      throw new RangeError(
        `truncate: slot ${slot} holds ${this.#length[slot]} positions; ` +
          `length must be an integer in 0..${this.#length[slot]}, got ${length}`,
      );
    }
    for (let l = 0; l < this.layers; l++) {
      const at = slot * this.layers + l;
      this.#kv[at] = Math.min(this.#kv[at], length);
      this.#written[slot]?.fill(0, l * this.maxLength + length, (l + 1) * this.maxLength);
    }
    this.#length[slot] = length;
  }

  /** Empties `slot`: its next work starts at position 0. */
  release(slot: number): void {
    this.#slot(slot);
    this.#length[slot] = 0;
    this.#kv.fill(0, slot * this.layers, (slot + 1) * this.layers);
    this.#written[slot]?.fill(0);
  }

  /** The counters since the tracker was made. */
  counters(): NestingCounters {
    return { ...this.#counters };
  }

  #slot(slot: number): void {
    if (!Number.isInteger(slot) || slot < 0 || slot >= this.capacity) {
      throw new RangeError(`slot ${slot} is not an integer in 0..${this.capacity - 1}`);
    }
  }
}
