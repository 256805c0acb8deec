/**
 * The per-row engine on WebGPU ({@linkcode RowBatch}): sequences at their own positions,
 * each token with its own active-layer set, KV in pages (`kv_pages.ts`).
 *
 * One {@linkcode WebGpuRowBatch.run} call is one submission and one awaited readback. The
 * call's `T` tokens (every entry's tokens, in entry order) are embedded at their own
 * positions into `h [T, d]`. For each layer `l`, the `M_l` tokens whose set holds `l`
 * (in token order) are gathered into a compact block `hc [M_l, d]` (no gather when all `T`
 * run it), run through the same LayerNorm/matmul dispatchers as the column decode with
 * `M = M_l` (`Graph.layerWith`), their keys and values written into their slots' pages,
 * attention reading each token's own slot at positions `0 .. p` (`kernels/attention/
 * paged.ts`), and scattered back into `h`; a token that skips `l` keeps its hidden state.
 * Then the wanted rows (each entry's last token, or all of them) are gathered, go through
 * the model's head (final LayerNorm, `project_out`, LM head) and the greedy selection
 * kernel; the ids (and the logits of entries that sample or asked for logits) are read
 * back. Sampling runs on the host with `backend/sampling.ts`'s `selectToken` keyed by
 * `(seed, row 0, step)`, the draw a solo decode of the same sequence makes.
 *
 * Every call is checked whole before anything is recorded or any state changes, by the
 * validator both backends share (`backend/requests.ts` `validateRowWork`: slots, ids, sets,
 * lengths, options) and the per-slot nesting tracker (`schedule/active.ts`
 * `NestingTracker`: a position may run layer `l` only if every earlier position of its slot
 * did; a break names the slot, the position and the layer). Which tokens run layer `l` is
 * `schedule/active.ts`'s `tokensRunning`, as on the CPU.
 *
 * @example
 * ```ts
 * import { createWebGpuBackend } from "./backend.ts";
 * import { loadWeights } from "../../model/mod.ts";
 * const gpu = await createWebGpuBackend(await loadWeights("bundled/models/tiny-opt-e2e"));
 * const rows = gpu.openRows({ capacity: 2, maxLength: 64 });
 * const all = [...Array(12).keys()];
 * const [first] = await rows.run([{ slot: 0, tokens: [2, 100, 101], sets: [all, all, all] }]);
 * const [next] = await rows.run([{ slot: 0, tokens: first.tokens, sets: [[0, 10, 11]] }]);
 * console.log(next.tokens, rows.stats());
 * rows.dispose();
 * gpu.dispose();
 * ```
 *
 * @module
 */
import { AllocationGroup, assertAlive, type GpuContext, GpuError } from "../../kernels/device.ts";
import { createDeclaredKernel, type KernelSet } from "../../kernels/declare.ts";
import { Recorder } from "../../kernels/encode.ts";
import { ParamArena } from "../../kernels/uniforms.ts";
import {
  EMBEDDING_TRAIN_WGSL,
  encodeGatherRows,
  encodeScatterRows,
} from "../../kernels/embedding/train.ts";
import { createPagedAttention, type PagedAttentionKernels } from "../../kernels/attention/paged.ts";
import { topK } from "../cpu/ops.ts";
import { selectToken } from "../sampling.ts";
import { checkFiniteLogits } from "../finite.ts";
import { NONFINITE_ID } from "../../kernels/select/mod.ts";
import { nonFiniteOnGpu } from "./decode_loop.ts";
import type { RowBatch, RowBatchOptions, RowBatchStats, RowResult, RowWork } from "../types.ts";
import { allocateWorkspace, type Graph, type Workspace } from "./graph.ts";
import type { DeviceModel } from "./weights.ts";
import { KvPages } from "./kv_pages.ts";
import { type KvDtype, kvElementBytes } from "../../kernels/attention/kv_dtype.ts";
import { NestingTracker, tokensRunning } from "../../schedule/active.ts";
import { validateRowWork } from "../requests.ts";

/** Kernels the per-row engine adds to the graph's: gather/scatter of rows, paged attention. */
export interface RowKernels {
  /** `train_gather_rows` and `train_scatter_rows` (`kernels/embedding/`). */
  rows: KernelSet;
  /** KV write and paged attention for the model's head size. */
  paged: PagedAttentionKernels;
}

/**
 * Compiles the {@linkcode RowKernels} of a model.
 *
 * @example
 * ```ts
 * import type { GpuContext } from "../../kernels/device.ts";
 * declare const gpu: GpuContext;
 * const kernels = await createRowKernels(gpu, 32);
 * ```
 */
export async function createRowKernels(
  gpu: GpuContext,
  headDim: number,
  kvDtype: KvDtype = "f32",
): Promise<RowKernels> {
  const names = ["train_gather_rows", "train_scatter_rows"];
  const [gather, scatter, paged] = await Promise.all([
    createDeclaredKernel(gpu, names[0], EMBEDDING_TRAIN_WGSL[names[0]]),
    createDeclaredKernel(gpu, names[1], EMBEDDING_TRAIN_WGSL[names[1]]),
    createPagedAttention(gpu, headDim, kvDtype),
  ]);
  const spare = gpu.device.createBuffer({ size: 16, usage: GPUBufferUsage.STORAGE });
  const byName = new Map([[names[0], gather], [names[1], scatter]]);
  const rows: KernelSet = {
    spare,
    get(name) {
      const k = byName.get(name);
      if (!k) throw new Error(`row kernels: no kernel ${name}`);
      return k;
    },
  };
  return {
    rows,
    paged,
  };
}

/** One token of a call. */
interface CallToken {
  slot: number;
  pos: number;
  set: readonly number[];
}

/** Scratch buffers of a call, grown to the largest call so far. */
interface Scratch {
  tokens: number;
  heads: number;
  ws: Workspace;
  hc: GPUBuffer;
  kc: GPUBuffer;
  vc: GPUBuffer;
  slot: GPUBuffer;
  idx: GPUBuffer;
  idxWords: number;
  outIds: GPUBuffer;
  outDone: GPUBuffer;
  destroy(): void;
}

/**
 * {@linkcode RowBatch} on the WebGPU backend (see the module documentation); made by
 * `WebGpuBackend.openRows`.
 *
 * @example
 * ```ts
 * import { createWebGpuBackend } from "./backend.ts";
 * import { loadWeights } from "../../model/mod.ts";
 * const gpu = await createWebGpuBackend(await loadWeights("bundled/models/tiny-opt-e2e"));
 * const rows = gpu.openRows({ capacity: 4, maxLength: 128 });
 * const all = [...Array(12).keys()];
 * // two sequences in one call: a prompt of three tokens and another of one
 * const [a, b] = await rows.run([
 *   { slot: 0, tokens: [2, 100, 101], sets: [all, all, all] },
 *   { slot: 3, tokens: [2], sets: [all] },
 * ]);
 * console.log(a.tokens, b.tokens, rows.length(0), rows.length(3)); // ... 3 1
 * rows.dispose();
 * gpu.dispose();
 * ```
 */
export class WebGpuRowBatch implements RowBatch {
  /** Slots held at once. */
  readonly capacity: number;
  #gpu: GpuContext;
  #graph: Graph;
  #model: DeviceModel;
  #kernels: Promise<RowKernels>;
  #maxLength: number;
  #tracker: NestingTracker;
  #pages: KvPages;
  #peakKvBytes = 0;
  #scratch?: Scratch;
  #tableBuf: GPUBuffer;
  #rec: Recorder;
  #arena: ParamArena;
  #busy = false;
  #disposed = false;
  #broken?: Error;
  #alive: (operation: string) => void;

  /** Use `WebGpuBackend.openRows`. */
  constructor(
    gpu: GpuContext,
    graph: Graph,
    kernels: Promise<RowKernels>,
    options: RowBatchOptions,
    alive: (operation: string) => void,
  ) {
    const cfg = graph.model.config;
    const { capacity, maxLength } = options ?? {};
    if (!Number.isInteger(capacity) || capacity < 1) {
      throw new RangeError(`openRows: capacity must be a positive integer, got ${capacity}`);
    }
    if (!Number.isInteger(maxLength) || maxLength < 1 || maxLength > cfg.maxPositionEmbeddings) {
      throw new RangeError(
        `openRows: maxLength must be an integer in 1..${cfg.maxPositionEmbeddings} ` +
          `(the model's max_position_embeddings), got ${maxLength}`,
      );
    }
    this.capacity = capacity;
    this.#gpu = gpu;
    this.#graph = graph;
    this.#model = graph.model;
    this.#kernels = kernels;
    this.#maxLength = maxLength;
    this.#alive = alive;
    const L = cfg.numHiddenLayers;
    this.#tracker = new NestingTracker(capacity, L, maxLength);
    this.#pages = new KvPages(gpu, {
      layers: L,
      capacity,
      maxLength,
      width: cfg.hiddenSize,
      elementBytes: kvElementBytes(graph.kvDtype),
    });
    this.#tableBuf = gpu.device.createBuffer({
      label: `KV page tables [${L}, ${capacity}, ${this.#pages.maxPages}]`,
      size: this.#pages.table.byteLength,
      usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST,
    });
    this.#arena = new ParamArena(gpu, 16 * L + 32);
    this.#rec = new Recorder(gpu, this.#arena);
  }

  #usable(operation: string): void {
    if (this.#disposed) throw new GpuError(`${operation}: the row batch was disposed`, "device");
    if (this.#broken) {
      throw new GpuError(
        `${operation}: the row batch failed earlier (${this.#broken.message})`,
        "device",
      );
    }
    if (this.#busy) {
      throw new Error(`${operation}: another run of this row batch is in flight (await it first)`);
    }
    this.#alive(operation);
  }

  /** Tokens run so far in `slot`. */
  length(slot: number): number {
    return this.#tracker.length(slot);
  }

  /** Keeps the first `length` positions of `slot`, giving back the pages beyond them. */
  truncate(slot: number, length: number): void {
    this.#usable("truncate");
    this.#tracker.truncate(slot, length);
    for (let l = 0; l < this.#tracker.layers; l++) {
      this.#pages.shrink(slot, l, this.#tracker.kvLength(slot, l));
    }
  }

  /** Frees `slot` and its pages. */
  release(slot: number): void {
    this.#usable("release");
    this.#tracker.release(slot);
    for (let l = 0; l < this.#tracker.layers; l++) this.#pages.shrink(slot, l, 0);
  }

  /** Counters since the batch was opened. */
  stats(): RowBatchStats {
    return {
      ...this.#tracker.counters(),
      kvBytes: this.#pages.bytesHeld,
      peakKvBytes: this.#peakKvBytes,
    };
  }

  /** Frees the device memory. */
  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    this.#scratch?.destroy();
    this.#pages.destroy();
    this.#tableBuf.destroy();
    this.#arena.destroy();
  }

  /** Scratch buffers for `T` tokens and `W` head rows (reallocated when larger). */
  async #scratchFor(T: number, W: number, idxWords: number): Promise<Scratch> {
    const s = this.#scratch;
    if (s && s.tokens >= T && s.heads >= W && s.idxWords >= idxWords) return s;
    s?.destroy();
    this.#scratch = undefined;
    const cfg = this.#model.config;
    const L = cfg.numHiddenLayers, d = cfg.hiddenSize;
    const tokens = Math.max(T, s?.tokens ?? 0), heads = Math.max(W, s?.heads ?? 0);
    const words = Math.max(idxWords, s?.idxWords ?? 0);
    const group = new AllocationGroup(this.#gpu);
    const all: { destroy(): void }[] = [];
    try {
      const handle = allocateWorkspace(this.#gpu, this.#model, group, {
        batch: tokens,
        rows: tokens,
        columns: 1,
        headRows: heads,
        slots: new Array<number>(L).fill(0),
        sampling: false,
      });
      all.push(handle);
      const buf = (label: string, elements: number) => {
        const b = group.buffer({ label, size: Math.max(1, elements) * 4, bindWhole: true });
        all.push(b);
        return b;
      };
      const scratch: Scratch = {
        tokens,
        heads,
        ws: handle.ws,
        hc: buf(`gathered rows [${tokens}, ${d}]`, tokens * d),
        kc: buf(`keys of the gathered rows [${tokens}, ${d}]`, tokens * d),
        vc: buf(`values of the gathered rows [${tokens}, ${d}]`, tokens * d),
        slot: buf(`slot of each token [${tokens}]`, tokens),
        idx: buf(`row indices per layer [${words}]`, words),
        idxWords: words,
        outIds: buf(`chosen ids [${heads}]`, heads),
        outDone: buf(`EOS flags [${heads}]`, heads),
        destroy: () => all.forEach((b) => b.destroy()),
      };
      await group.check();
      this.#scratch = scratch;
      return scratch;
    } catch (e) {
      all.forEach((b) => b.destroy());
      await group.check().catch(() => {});
      throw e;
    }
  }

  /** Runs the entries as one submission (see the module documentation). */
  async run(entries: readonly RowWork[]): Promise<RowResult[]> {
    this.#usable("run");
    // compiled once per backend at the first run; awaited before the checks, so that nothing
    // (a release, another run) can change the state between the checks and the recording
    const kernels = await this.#kernels;
    this.#usable("run");
    const cfg = this.#model.config;
    const L = cfg.numHiddenLayers, V = cfg.vocabSize;
    validateRowWork(entries, {
      ...cfg,
      capacity: this.capacity,
      maxLength: this.#maxLength,
      lengthOf: (slot) => this.#tracker.length(slot),
    });
    this.#tracker.check(entries); // nesting per slot, before any work
    if (entries.length === 0) return [];
    // the call's tokens: entry i's token j is row base[i] + j, at its slot's next positions
    const tokens: CallToken[] = [];
    const base: number[] = [];
    const wanted: number[] = []; // rows whose next-token choice is returned
    const after = new Map<number, number[]>(); // slot -> per-layer KV prefix after the call
    for (const e of entries) {
      base.push(tokens.length);
      const p0 = this.#tracker.length(e.slot);
      const kv = Array.from({ length: L }, (_, l) => this.#tracker.kvLength(e.slot, l));
      e.sets.forEach((set, j) => {
        if (e.want === "all" || j === e.tokens.length - 1) wanted.push(tokens.length);
        tokens.push({ slot: e.slot, pos: p0 + j, set });
        for (const l of set) kv[l] = p0 + j + 1;
      });
      after.set(e.slot, kv);
    }
    const T = tokens.length;
    // the rows each layer runs, in the order schedule/ gives (entry by entry, tokens in order)
    const active = Array.from(
      { length: L },
      (_, l) => tokensRunning(entries, l).map((r) => base[r.entry] + r.token),
    );
    const W = wanted.length;
    const maxHead = Math.floor(this.#gpu.limits.maxStorageBufferBindingSize / (V * 4));
    if (W > maxHead) {
      throw new GpuError(
        `run: ${W} next-token choices need ${W} x ${V} logits; one binding of ` +
          `"${this.#gpu.info.description}" holds ${maxHead} rows`,
        "too-large",
      );
    }
    for (let l = 0; l < L; l++) {
      const lengths = new Map<number, number>();
      for (const [s, filled] of after) lengths.set(s, filled[l]);
      this.#pages.checkFits(l, this.#pages.neededPages(l, lengths));
    }
    // 256-byte aligned segments of the index buffer: one per layer, then the head's
    const seg = (n: number) => Math.ceil(Math.max(n, 1) / 64) * 64;
    const offsets: number[] = [];
    let words = 0;
    for (let l = 0; l <= L; l++) {
      offsets.push(words);
      words += seg(l < L ? active[l].length : W);
    }
    this.#busy = true; // no await between the checks above and this
    let taken = false, ran = false;
    let staging: { buffer: GPUBuffer; logitsOffset: number } | undefined;
    try {
      const sc = await this.#scratchFor(T, W, words);
      // state: take the pages the call writes (from here on a failure leaves the batch unusable:
      // pools may have been replaced in a submission that did not run)
      taken = true;
      for (const [s, filled] of after) {
        for (let l = 0; l < L; l++) this.#pages.grow(s, l, filled[l]);
      }
      const idx = new Uint32Array(words);
      for (let l = 0; l < L; l++) idx.set(active[l], offsets[l]);
      idx.set(wanted, offsets[L]);
      const q = this.#gpu.device.queue;
      q.writeBuffer(sc.ws.ids, 0, new Uint32Array(entries.flatMap((e) => e.tokens)));
      q.writeBuffer(sc.ws.pad, 0, new Uint32Array(tokens.map((t) => t.pos)));
      q.writeBuffer(sc.slot, 0, new Uint32Array(tokens.map((t) => t.slot)));
      q.writeBuffer(sc.idx, 0, idx);
      q.writeBuffer(this.#tableBuf, 0, this.#pages.table);
      staging = this.#record(kernels, sc, T, W, active, offsets, entries);
      const data = await this.#submit(staging.buffer);
      ran = true;
      this.#commit(entries, tokens); // the host state follows what the GPU wrote
      return this.#results(entries, data, staging.logitsOffset, W, V);
    } catch (e) {
      if (taken && !ran) this.#broken = e as Error;
      throw e;
    } finally {
      this.#busy = false;
      staging?.buffer.destroy(); // unmaps it too
      this.#pages.afterSubmit();
    }
  }

  /** Records a call that ran: the tracker's lengths, prefixes and counted KV writes. */
  #commit(entries: readonly RowWork[], tokens: CallToken[]): void {
    this.#tracker.commit(entries);
    for (const t of tokens) for (const l of t.set) this.#tracker.noteWrite(t.slot, l, t.pos);
    this.#peakKvBytes = Math.max(this.#peakKvBytes, this.#pages.bytesHeld);
  }

  /** Records the call; returns the staging buffer the results are copied into. */
  #record(
    k: RowKernels,
    sc: Scratch,
    T: number,
    W: number,
    active: number[][],
    offsets: number[],
    entries: readonly RowWork[],
  ): { buffer: GPUBuffer; logitsOffset: number } {
    const cfg = this.#model.config;
    const L = cfg.numHiddenLayers, V = cfg.vocabSize, d = cfg.hiddenSize;
    const g = this.#graph, rec = this.#rec, pages = this.#pages;
    const needLogits = entries.some((e) =>
      (e.sampling?.temperature ?? 0) > 0 || (e.logitsTopK ?? 0) > 0 || e.recordLogits
    );
    const logitsOffset = Math.ceil((W * 4) / 256) * 256;
    const staging = this.#gpu.device.createBuffer({
      label: `row batch readback (${W} choices)`,
      size: logitsOffset + (needLogits ? W * V * 4 : 0),
      usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
    });
    const range = (buf: GPUBuffer, words: number, n: number) => ({
      buffer: buf,
      offset: words * 4,
      size: Math.max(n, 1) * 4,
    });
    this.#gpu.device.pushErrorScope("validation");
    const enc = rec.begin(`row batch: ${T} tokens`);
    pages.ensure(enc);
    const ws: Workspace = { ...sc.ws, batch: T };
    g.embed(rec, ws, 0, 1, true);
    for (let l = 0; l < L; l++) {
      const m = active[l].length;
      if (m === 0) continue;
      const gather = m !== T; // all T tokens, in order: run in place
      const rows = range(sc.idx, offsets[l], m);
      if (gather) {
        encodeGatherRows(k.rows, rec, { src: ws.h, idx: rows, out: sc.hc, n: m, width: d });
      }
      const view: Workspace = gather ? { ...ws, h: sc.hc } : ws;
      const pools = pages.pools(l);
      const layout = {
        rows,
        slot: sc.slot,
        pos: ws.pad,
        table: range(this.#tableBuf, l * pages.layerStride, this.capacity * pages.maxPages),
        kpool: pools.k,
        vpool: pools.v,
        pageSize: pages.pageSize,
        maxPages: pages.maxPages,
      };
      g.layerWith(rec, view, l, m, { k: sc.kc, v: sc.vc, offset: 0 }, () => {
        k.paged.write(rec, { ...layout, kin: sc.kc, vin: sc.vc, m, d });
        k.paged.attend(rec, {
          ...layout,
          q: ws.q,
          out: ws.att,
          m,
          d,
          heads: cfg.numAttentionHeads,
        });
      });
      if (gather) {
        encodeScatterRows(k.rows, rec, { rows: sc.hc, idx: rows, dst: ws.h, n: m, width: d });
      }
    }
    // the head on the wanted rows
    const identity = W === T; // every token wanted, in order
    if (!identity) {
      encodeGatherRows(k.rows, rec, {
        src: ws.h,
        idx: range(sc.idx, offsets[L], W),
        out: sc.hc,
        n: W,
        width: d,
      });
    }
    const head: Workspace = {
      ...ws,
      h: identity ? ws.h : sc.hc,
      batch: W,
      ids: sc.outIds,
      done: sc.outDone,
    };
    g.logits(rec, head, g.finalNorm(rec, head, 0, W), W);
    g.select(rec, head, 0, 0, undefined, undefined);
    rec.endPass();
    enc.copyBufferToBuffer(sc.outIds, 0, staging, 0, W * 4);
    if (needLogits) enc.copyBufferToBuffer(head.logits, 0, staging, logitsOffset, W * V * 4);
    return { buffer: staging, logitsOffset };
  }

  /** Submits what was recorded and maps the staging buffer. */
  async #submit(staging: GPUBuffer): Promise<ArrayBuffer> {
    const device = this.#gpu.device;
    device.queue.submit([this.#rec.finish()]);
    const validation = device.popErrorScope();
    const mapped = staging.mapAsync(GPUMapMode.READ);
    const [err, mapErr] = await Promise.all([validation, mapped.then(() => null, (e) => e)]);
    assertAlive(this.#gpu, "run");
    if (err) throw new GpuError(`run: GPU validation error: ${err.message}`, "validation");
    if (mapErr) {
      throw new GpuError(`run: readback failed: ${(mapErr as Error).message}`, "device", {
        cause: mapErr,
      });
    }
    return staging.getMappedRange();
  }

  /** Turns the readback into one result per entry. */
  #results(
    entries: readonly RowWork[],
    data: ArrayBuffer,
    logitsOffset: number,
    W: number,
    V: number,
  ): RowResult[] {
    const ids = new Uint32Array(data, 0, W);
    const results: RowResult[] = [];
    let w = 0;
    entries.forEach((e) => {
      const n = e.want === "all" ? e.tokens.length : 1;
      const sampled = (e.sampling?.temperature ?? 0) > 0;
      const kTop = e.logitsTopK ?? 0;
      const r: RowResult = { tokens: [] };
      if (kTop > 0) r.topk = [];
      if (e.recordLogits) r.logits = [];
      for (let c = 0; c < n; c++, w++) {
        const logits = sampled || kTop > 0 || e.recordLogits
          ? new Float32Array(data, logitsOffset + w * V * 4, V)
          : undefined;
        if (logits) {
          const label = `slot ${e.slot}, choice ${c}`;
          checkFiniteLogits(logits, V, "webgpu backend (rows)", () => label);
        } else if (ids[w] === NONFINITE_ID) {
          throw nonFiniteOnGpu("rows", `slot ${e.slot}, choice ${c}`);
        }
        r.tokens.push(sampled ? selectToken(logits!, e.sampling!, 0, (e.step ?? 0) + c) : ids[w]);
        if (kTop > 0) r.topk!.push(topK(logits!, kTop));
        if (e.recordLogits) r.logits!.push(logits!.slice());
      }
      results.push(r);
    });
    return results;
  }
}
