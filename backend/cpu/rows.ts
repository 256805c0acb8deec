/**
 * The CPU reference of {@linkcode RowBatch}: sequences at their own positions (continuous
 * batching, speculative verification). Simple and exact on purpose: every token is computed
 * with the same arithmetic as the column-wise decode (`model.ts`), so a row's logits equal
 * its solo decode's bit for bit.
 *
 * A `run` call embeds all tokens of all entries at their slots' own positions (OPT table row
 * `p + 2`), then per layer gathers the tokens that run it (`tokensRunning`, entry by entry),
 * runs one batched layer over them, writes their KV and scatters the outputs back; a token
 * that skips the layer keeps its hidden state (identity). Attention of a token at position
 * `p` of a slot reads that slot's KV of the layer at positions `0 .. p` (all present: the
 * nesting rule, checked per slot by `NestingTracker` before any work).
 *
 * KV layout: per (slot, layer) a list of pages of {@linkcode KV_PAGE} positions (`[KV_PAGE, d]`
 * keys and values each), a page allocated when the slot's plan first runs the layer at a
 * position of that page, freed by `truncate` (pages past the kept length) and `release`.
 * Memory therefore follows what each slot's plan actually ran: a layer a row stopped running
 * holds no new pages.
 *
 * Shapes in comments: m tokens of a layer, d = hiddenSize, V = vocabSize.
 *
 * @example
 * ```ts
 * import { createCpuBackend } from "./backend.ts";
 * import { loadWeights } from "../../model/mod.ts";
 * const cpu = createCpuBackend(await loadWeights("bundled/models/tiny-opt-e2e"));
 * const rows = cpu.openRows({ capacity: 2, maxLength: 64 });
 * const all = [...Array(12).keys()];
 * const [r] = await rows.run([{ slot: 0, tokens: [2, 100, 101], sets: [all, all, all] }]);
 * const [s] = await rows.run([{ slot: 0, tokens: [r.tokens[0]], sets: [all.slice(4)], step: 1 }]);
 * console.log(rows.length(0), rows.stats().kvWrites); // 4 44
 * ```
 *
 * @module
 */
import type { OptConfig } from "../../model/types.ts";
import type { RowBatch, RowBatchOptions, RowBatchStats, RowResult, RowWork } from "../types.ts";
import { NestingTracker, tokensRunning } from "../../schedule/active.ts";
import { validateRowWork } from "../requests.ts";
import { selectToken } from "../sampling.ts";
import { checkFiniteLogits } from "../finite.ts";
import { attendOne, topK } from "./ops.ts";
import { type KvDtype, kvElementBytes, roundKv } from "../../kernels/attention/kv_dtype.ts";
import { applyHead, type CpuModel, embed, layerForward } from "./model.ts";

/** Positions per KV page of one (slot, layer). */
export const KV_PAGE = 16;

/** One (slot, layer)'s KV pages: `k[i]`, `v[i]` hold positions `i*KV_PAGE ..`, `[KV_PAGE, d]`. */
interface PagedKv {
  k: Float32Array[];
  v: Float32Array[];
}

/**
 * The CPU backend's {@linkcode RowBatch}; made by `CpuBackend.openRows`.
 *
 * @example
 * ```ts
 * import { createCpuBackend } from "./backend.ts";
 * import { loadWeights } from "../../model/mod.ts";
 * const cpu = createCpuBackend(await loadWeights("bundled/models/tiny-opt-e2e"));
 * const rows = cpu.openRows({ capacity: 4, maxLength: 128 });
 * rows.release(0);
 * rows.dispose();
 * ```
 */
export class CpuRowBatch implements RowBatch {
  /** Slots held at once. */
  readonly capacity: number;
  #model: CpuModel;
  #cfg: OptConfig;
  #maxLength: number;
  #tracker: NestingTracker;
  #kv: PagedKv[][]; // [slot][layer]
  #pages = 0;
  #peakPages = 0;
  #disposed = false;
  #kvDtype: KvDtype;

  /** Checks the options and prepares empty slots (no KV allocated yet). */
  constructor(
    model: CpuModel,
    cfg: OptConfig,
    options: RowBatchOptions,
    kvDtype: KvDtype = "f32",
  ) {
    this.#kvDtype = kvDtype;
    if (typeof options !== "object" || options === null) {
      throw new RangeError("openRows: options { capacity, maxLength } are required");
    }
    const { capacity, maxLength } = options;
    if (!Number.isInteger(capacity) || capacity < 1) {
      throw new RangeError(`openRows: capacity must be an integer >= 1, got ${capacity}`);
    }
    const table = cfg.maxPositionEmbeddings;
    if (!Number.isInteger(maxLength) || maxLength < 1 || maxLength > table) {
      throw new RangeError(
        `openRows: maxLength must be an integer in 1..${table} (max_position_embeddings), ` +
          `got ${maxLength}`,
      );
    }
    this.capacity = capacity;
    this.#model = model;
    this.#cfg = cfg;
    this.#maxLength = maxLength;
    const L = cfg.numHiddenLayers;
    this.#tracker = new NestingTracker(capacity, L, maxLength);
    this.#kv = Array.from(
      { length: capacity },
      () => Array.from({ length: L }, () => ({ k: [], v: [] })),
    );
  }

  /** Runs the entries as one batched forward; see the module documentation. */
  run(entries: readonly RowWork[]): Promise<RowResult[]> {
    try {
      return Promise.resolve(this.#run(entries));
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /** Tokens run so far in `slot`. */
  length(slot: number): number {
    this.#alive("length");
    return this.#tracker.length(slot);
  }

  /** Keeps the first `length` positions of `slot`; frees its KV pages beyond them. */
  truncate(slot: number, length: number): void {
    this.#alive("truncate");
    this.#tracker.truncate(slot, length);
    const keep = Math.ceil(length / KV_PAGE);
    for (const kv of this.#kv[slot]) this.#free(kv, keep);
  }

  /** Frees `slot` and its KV pages. */
  release(slot: number): void {
    this.#alive("release");
    this.#tracker.release(slot);
    for (const kv of this.#kv[slot]) this.#free(kv, 0);
  }

  /** Counters since the batch was opened. */
  stats(): RowBatchStats {
    const page = 2 * KV_PAGE * this.#cfg.hiddenSize * kvElementBytes(this.#kvDtype);
    return {
      ...this.#tracker.counters(),
      kvBytes: this.#pages * page,
      peakKvBytes: this.#peakPages * page,
    };
  }

  /**
   * A copy of `slot`'s KV at layer `l` for the positions that have it (`0 .. n - 1`): keys and
   * values `[n, d]` (tests compare caches with it).
   */
  readKv(slot: number, l: number): { keys: Float32Array; values: Float32Array } {
    this.#alive("readKv");
    const n = this.#tracker.kvLength(slot, l);
    const { keys, vals } = this.#gather(slot, l, n);
    return { keys, values: vals };
  }

  /** Drops every slot; the batch cannot be used afterwards. */
  dispose(): void {
    if (this.#disposed) return;
    for (let s = 0; s < this.capacity; s++) for (const kv of this.#kv[s]) this.#free(kv, 0);
    this.#disposed = true;
  }

  #run(entries: readonly RowWork[]): RowResult[] {
    this.#alive("run");
    const cfg = this.#cfg, M = this.#model;
    const d = cfg.hiddenSize, H = cfg.numAttentionHeads, V = cfg.vocabSize;
    validateRowWork(entries, {
      ...cfg,
      capacity: this.capacity,
      maxLength: this.#maxLength,
      lengthOf: (slot) => this.#tracker.length(slot),
    });
    this.#tracker.check(entries); // nesting per slot, before any work
    if (entries.length === 0) return [];
    // Flat token list: entry e's token t is row base[e] + t, at position start[e] + t.
    const base: number[] = [], start: number[] = [];
    let n = 0;
    for (const e of entries) {
      base.push(n);
      start.push(this.#tracker.length(e.slot));
      n += e.tokens.length;
    }
    const ids = new Int32Array(n); // [n]
    const pos = new Int32Array(n); // [n] the slot's own positions
    entries.forEach((e, i) => {
      e.tokens.forEach((id, t) => {
        ids[base[i] + t] = id;
        pos[base[i] + t] = start[i] + t;
      });
    });
    const x = embed(M, cfg, ids, (i) => pos[i]); // [n, d]
    for (let l = 0; l < M.layers.length; l++) {
      const refs = tokensRunning(entries, l); // the tokens that run layer l, in a fixed order
      if (refs.length === 0) continue; // every token skips it: identity
      const m = refs.length;
      const rows = refs.map((r) => base[r.entry] + r.token);
      const h = new Float32Array(m * d); // [m, d]
      rows.forEach((row, i) => h.set(x.subarray(row * d, (row + 1) * d), i * d));
      const out = layerForward(cfg, M.layers[l], h, m, (q, k, v, att) => {
        refs.forEach((r, i) => {
          const slot = entries[r.entry].slot, p = pos[rows[i]];
          this.#write(slot, l, p, k.subarray(i * d, (i + 1) * d), v.subarray(i * d, (i + 1) * d));
        });
        // Attention per entry over its slot's KV of layer l (contiguous copy of the pages).
        let i = 0;
        while (i < m) {
          const entry = refs[i].entry;
          let j = i;
          while (j < m && refs[j].entry === entry) j++;
          const slot = entries[entry].slot;
          const span = pos[rows[j - 1]] + 1; // positions 0 .. last of this entry at layer l
          const { keys, vals } = this.#gather(slot, l, span);
          for (let r = i; r < j; r++) {
            attendOne(
              q.subarray(r * d, (r + 1) * d),
              keys,
              vals,
              pos[rows[r]] + 1,
              d,
              H,
              () => true,
              att.subarray(r * d, (r + 1) * d),
            );
          }
          i = j;
        }
      });
      rows.forEach((row, i) => x.set(out.subarray(i * d, (i + 1) * d), row * d));
    }
    // Head on the wanted tokens only: the last of each entry, or all with want "all".
    const wanted: number[] = [];
    const first: number[] = [];
    entries.forEach((e, i) => {
      first.push(wanted.length);
      if (e.want === "all") e.tokens.forEach((_, t) => wanted.push(base[i] + t));
      else wanted.push(base[i] + e.tokens.length - 1);
    });
    const hsel = new Float32Array(wanted.length * d); // [w, d]
    wanted.forEach((row, i) => hsel.set(x.subarray(row * d, (row + 1) * d), i * d));
    const logits = applyHead(M, cfg, hsel, wanted.length); // [w, V]
    const results = entries.map((e, i): RowResult => {
      const count = e.want === "all" ? e.tokens.length : 1;
      const res: RowResult = { tokens: [] };
      if (e.logitsTopK) res.topk = [];
      if (e.recordLogits) res.logits = [];
      for (let c = 0; c < count; c++) {
        const w = first[i] + c;
        const row = logits.subarray(w * V, (w + 1) * V);
        checkFiniteLogits(row, V, "cpu backend (rows)", () => `slot ${e.slot}, choice ${c}`);
        // The draw depends on (seed, step) only: row 0, as a solo decode's only row.
        res.tokens.push(selectToken(row, e.sampling ?? {}, 0, (e.step ?? 0) + c));
        res.topk?.push(topK(row, e.logitsTopK!));
        res.logits?.push(row.slice());
      }
      return res;
    });
    this.#tracker.commit(entries);
    return results;
  }

  /** Stores one token's key and value of layer `l` at position `p` of `slot`. */
  #write(slot: number, l: number, p: number, k: Float32Array, v: Float32Array): void {
    const kv = this.#kv[slot][l], d = this.#cfg.hiddenSize;
    const page = Math.floor(p / KV_PAGE);
    while (kv.k.length <= page) {
      kv.k.push(new Float32Array(KV_PAGE * d));
      kv.v.push(new Float32Array(KV_PAGE * d));
      this.#pages++;
      this.#peakPages = Math.max(this.#peakPages, this.#pages);
    }
    const at = (p % KV_PAGE) * d;
    kv.k[page].set(k, at);
    kv.v[page].set(v, at);
    roundKv(kv.k[page].subarray(at, at + k.length), this.#kvDtype); // what an f16 page holds
    roundKv(kv.v[page].subarray(at, at + v.length), this.#kvDtype);
    this.#tracker.noteWrite(slot, l, p);
  }

  /** Keys and values `[span, d]` of `slot` at layer `l`, positions `0 .. span - 1`. */
  #gather(slot: number, l: number, span: number): { keys: Float32Array; vals: Float32Array } {
    const kv = this.#kv[slot][l], d = this.#cfg.hiddenSize;
    const keys = new Float32Array(span * d), vals = new Float32Array(span * d);
    for (let pg = 0; pg * KV_PAGE < span; pg++) {
      const len = Math.min(KV_PAGE, span - pg * KV_PAGE) * d;
      keys.set(kv.k[pg].subarray(0, len), pg * KV_PAGE * d);
      vals.set(kv.v[pg].subarray(0, len), pg * KV_PAGE * d);
    }
    return { keys, vals };
  }

  /** Keeps the first `keep` pages of one (slot, layer). */
  #free(kv: PagedKv, keep: number): void {
    if (kv.k.length <= keep) return;
    this.#pages -= kv.k.length - keep;
    kv.k.length = keep;
    kv.v.length = keep;
  }

  #alive(op: string): void {
    if (this.#disposed) throw new Error(`RowBatch.${op}: the batch was disposed`);
  }
}
