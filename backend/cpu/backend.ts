/**
 * The CPU reference backend: OPT's forward pass in plain TypeScript with a KV cache,
 * left-padded batches, OPT position ids and per-column active-layer sets (a skipped layer
 * is the identity). Slow and simple on purpose: it is the oracle for every other backend.
 *
 * Shapes in comments: B rows, n columns in a call, d = hiddenSize, f = ffnDim,
 * dp = wordEmbedProjDim, V = vocabSize, H heads.
 *
 * @module
 */
import type { OptConfig, OptWeights } from "../../model/types.ts";
import type {
  Backend,
  ColumnLayerSets,
  DecodeOutput,
  DecodeRequest,
  ForwardOutput,
  ForwardRequest,
  RowBatch,
  RowBatchOptions,
} from "../types.ts";
import { checkColumns, checkTokenIds, type PaddedBatch, padLeft } from "../batch.ts";
import { ReadoutBuilder } from "../readout.ts";
import { checkFiniteLogits } from "../finite.ts";
import { selectToken } from "../sampling.ts";
import { columnsRunning, layerExtent } from "../../schedule/active.ts";
import { validateDecodeRequest } from "../requests.ts";
import { attendOne, topK } from "./ops.ts";
import { checkKvDtype, type KvDtype, roundKv } from "../../kernels/attention/kv_dtype.ts";
import { applyHead, type CpuModel, embed, layerForward, loadCpuModel } from "./model.ts";
import { checkModelFits, residentWeightBytes } from "../../model/memory.ts";
import { CpuRowBatch } from "./rows.ts";

/** One layer's KV cache: slot = column; `ran[c]` says whether column `c` ran the layer. */
interface LayerCache {
  k: Float32Array; // [B, cap, d]
  v: Float32Array; // [B, cap, d]
  cap: number;
  ran: Uint8Array; // [cap]
}

/** The state of one batch: its padding and its per-layer caches. */
interface Session {
  batch: PaddedBatch; // covers all columns the session may run
  caches: LayerCache[];
}

/**
 * The CPU reference implementation of {@linkcode Backend}.
 *
 * @example
 * ```ts
 * import { loadWeights } from "../../model/mod.ts";
 * const cpu = createCpuBackend(await loadWeights("bundled/models/tiny-opt-e2e"));
 * const out = await cpu.decode({ prompts: [[2, 100]], maxNewTokens: 4, sets: Array(5).fill([...Array(12).keys()]), padTokenId: 1 });
 * ```
 */
export class CpuBackend implements Backend {
  /** Always `"cpu"`. */
  readonly name = "cpu";
  /** The model configuration. */
  readonly config: OptConfig;
  /** Storage type of the KV cache (see {@linkcode CpuBackendOptions.kvDtype}). */
  readonly kvDtype: KvDtype;
  #model: CpuModel;

  /**
   * Reads the weights (F16 matrices stay halves unless `options.widenF16`); a model whose
   * weights need more memory than the machine offers is refused first
   * (`model/memory.ts`: `MemAvailable` or `SKIPDECODE_MEMORY_LIMIT`).
   *
   * @throws {ModelTooLargeError} naming the bytes needed and available.
   */
  constructor(weights: OptWeights, options: CpuBackendOptions = {}) {
    this.config = weights.config;
    this.kvDtype = checkKvDtype(options.kvDtype, "kvDtype") ?? "f32";
    const widen = options.widenF16 ?? false;
    checkModelFits(residentWeightBytes(weights, widen ? "cpu-f32" : "cpu"), {
      limitBytes: options.memoryLimitBytes,
      limitSource: "memoryLimitBytes",
      what:
        `the model (${weights.config.numHiddenLayers} layers, d = ${weights.config.hiddenSize}) on the CPU backend`,
    });
    this.#model = loadCpuModel(weights, { widenF16: widen });
  }

  /** Prefill + token loop with a KV cache sized by the plan. */
  decode(req: DecodeRequest): Promise<DecodeOutput> {
    return Promise.resolve(this.#decode(req));
  }

  /**
   * Uncached forward: every column's logits under per-column layer sets, and with
   * `readout` the per-layer readout (the model's head on every layer's output; a layer a
   * column skipped repeats the previous layer's readout there).
   */
  forward(req: ForwardRequest): Promise<ForwardOutput> {
    checkTokenIds(req.rows, this.config.vocabSize, "row");
    const batch = padLeft(req.rows, req.padTokenId);
    const T = batch.length;
    checkColumns(req.sets, T, this.config.numHiddenLayers, this.config.maxPositionEmbeddings);
    const session = this.#session(batch, req.sets, T);
    const cols = Array.from({ length: T }, (_, c) => c);
    const readout = req.readout
      ? new ReadoutBuilder(req.rows, req.sets, this.config.numHiddenLayers, req.readout.topK)
      : undefined;
    const logits = this.#run(
      session,
      0,
      T,
      batch.tokens,
      req.sets,
      cols,
      readout && ((l: number, x: Float32Array) => this.#readLayer(readout, l, x, T)),
    );
    const V = this.config.vocabSize;
    for (let b = 0; b < batch.batch; b++) {
      for (let c = 0; c < T; c++) {
        if (!batch.mask[b * T + c]) logits.fill(0, (b * T + c) * V, (b * T + c + 1) * V);
        else {
          checkFiniteLogits(
            logits.subarray((b * T + c) * V, (b * T + c + 1) * V),
            V,
            "cpu backend (forward)",
            () => `row ${b}, column ${c}`,
          );
        }
      }
    }
    if (readout) return Promise.resolve({ length: T, logits, readout: readout.finish() });
    return Promise.resolve({ length: T, logits });
  }

  /** The readout of layer `l` from the residual stream `x[B*T, d]` of a whole-sequence run. */
  #readLayer(readout: ReadoutBuilder, l: number, x: Float32Array, T: number): void {
    const d = this.config.hiddenSize, V = this.config.vocabSize;
    const todo = readout.columns(l);
    const block = 16; // rows per head call: bounds the logits scratch to 16 * V floats
    for (let i0 = 0; i0 < todo.length; i0 += block) {
      const part = todo.slice(i0, i0 + block);
      const h = new Float32Array(part.length * d);
      part.forEach(([b, c], i) => h.set(x.subarray((b * T + c) * d, (b * T + c + 1) * d), i * d));
      const logits = this.#applyHead(h, part.length);
      part.forEach(([b, c], i) => readout.set(l, b, c, logits.subarray(i * V, (i + 1) * V)));
    }
    readout.repeatSkipped(l);
  }

  /**
   * Sequences at their own positions (continuous batching, speculative verification): the
   * CPU reference of the {@linkcode RowBatch} contract, KV in pages per slot and layer
   * allocated as each slot's plan runs that layer (`rows.ts`).
   */
  openRows(options: RowBatchOptions): RowBatch {
    return new CpuRowBatch(this.#model, this.config, options, this.kvDtype);
  }

  /** Nothing to free on the CPU. */
  dispose(): void {}

  #decode(req: DecodeRequest): DecodeOutput {
    const cfg = this.config;
    // One validator for both backends: ids, sizes, fields, coverage and nesting of the plan.
    const { B, P, N, columns, sampling } = validateDecodeRequest(req, cfg); // columns: 0 .. P+N-2
    // One padded batch covers every column the loop may run: appending placeholder
    // generated tokens keeps each row's left padding and continues its positions.
    const full = padLeft(
      req.prompts.map((p) => [...p, ...new Array<number>(columns - P).fill(req.padTokenId)]),
      req.padTokenId,
      columns,
    );
    const prefillIds = new Int32Array(B * P); // [B, P]
    for (let b = 0; b < B; b++) {
      prefillIds.set(full.tokens.subarray(b * columns, b * columns + P), b * P);
    }
    const session = this.#session(full, req.sets, columns);
    const V = cfg.vocabSize;
    const tokens: number[][] = req.prompts.map(() => []);
    const finish: ("eos" | "length")[] = req.prompts.map(() => "length");
    const done = new Array<boolean>(B).fill(false);
    const topk: [number, number][][][] | undefined = req.logitsTopK
      ? req.prompts.map(() => [])
      : undefined;
    const allLogits: Float32Array[][] | undefined = req.recordLogits
      ? req.prompts.map(() => [])
      : undefined;

    const t0 = performance.now();
    let logits = this.#run(session, 0, P, prefillIds, req.sets, [P - 1]);
    const t1 = performance.now();
    let steps = 0;
    for (let i = 0; i < N; i++) {
      const next = new Int32Array(B);
      for (let b = 0; b < B; b++) {
        if (done[b]) {
          next[b] = req.eosTokenId ?? req.padTokenId;
          continue;
        }
        const row = logits.subarray(b * V, (b + 1) * V);
        checkFiniteLogits(row, V, "cpu backend (decode)", () => `row ${b}, new token ${i}`);
        if (topk) topk[b].push(topK(row, req.logitsTopK!));
        if (allLogits) allLogits[b].push(row.slice());
        const id = selectToken(row, sampling, b, i);
        tokens[b].push(id);
        next[b] = id;
        if (req.eosTokenId !== undefined && id === req.eosTokenId) {
          done[b] = true;
          finish[b] = "eos";
        }
      }
      if (i === N - 1 || done.every(Boolean)) break;
      const c = P + i;
      logits = this.#run(session, c, c + 1, next, req.sets, [c]);
      steps++;
    }
    const t2 = performance.now();
    return {
      tokens,
      finish,
      topk,
      logits: allLogits,
      promptLength: P,
      steps,
      timing: { prefillMs: t1 - t0, decodeMs: t2 - t1, readbacks: 0 },
    };
  }

  #session(batch: PaddedBatch, sets: ColumnLayerSets, columns: number): Session {
    const L = this.config.numHiddenLayers;
    const d = this.config.hiddenSize;
    const caches: LayerCache[] = [];
    for (let l = 0; l < L; l++) {
      const cap = layerExtent(sets, l, columns);
      caches.push({
        k: new Float32Array(batch.batch * cap * d),
        v: new Float32Array(batch.batch * cap * d),
        cap,
        ran: new Uint8Array(cap),
      });
    }
    return { batch, caches };
  }

  /**
   * Runs columns `c0 .. c1-1` of every row (`ids[B, c1-c0]`), updating the caches, and
   * returns the logits `[B, wanted.length, V]` of the `wanted` columns.
   */
  #run(
    s: Session,
    c0: number,
    c1: number,
    ids: Int32Array,
    sets: ColumnLayerSets,
    wanted: number[],
    onLayer?: (l: number, x: Float32Array) => void,
  ): Float32Array {
    const cfg = this.config;
    const { batch, caches } = s;
    const B = batch.batch, T = batch.length, n = c1 - c0;
    const d = cfg.hiddenSize, H = cfg.numAttentionHeads;
    const M = this.#model;
    // Embedding: x[B*n, d] at each token's OPT position
    const x = embed(M, cfg, ids, (i) => batch.positions[Math.floor(i / n) * T + c0 + (i % n)]);
    for (let l = 0; l < M.layers.length; l++) {
      const cols = columnsRunning(sets, l, c0, c1); // columns of this call that run layer l
      if (cols.length === 0) { // skipped layer: identity
        onLayer?.(l, x);
        continue;
      }
      const cache = caches[l];
      const m = B * cols.length;
      const h = new Float32Array(m * d); // [B, cols, d] residual stream of the active columns
      for (let b = 0; b < B; b++) {
        cols.forEach((c, i) =>
          h.set(
            x.subarray((b * n + c - c0) * d, (b * n + c - c0 + 1) * d),
            (b * cols.length + i) * d,
          )
        );
      }
      const out = layerForward(cfg, M.layers[l], h, m, (q, k, v, att) => {
        for (let b = 0; b < B; b++) {
          cols.forEach((c, i) => {
            const src = (b * cols.length + i) * d, dst = (b * cache.cap + c) * d;
            cache.k.set(k.subarray(src, src + d), dst);
            cache.v.set(v.subarray(src, src + d), dst);
            roundKv(cache.k.subarray(dst, dst + d), this.kvDtype); // what an f16 cache holds
            roundKv(cache.v.subarray(dst, dst + d), this.kvDtype);
            cache.ran[c] = 1;
          });
        }
        for (let b = 0; b < B; b++) {
          const keys = cache.k.subarray(b * cache.cap * d, (b + 1) * cache.cap * d);
          const vals = cache.v.subarray(b * cache.cap * d, (b + 1) * cache.cap * d);
          cols.forEach((c, i) => {
            const r = b * cols.length + i;
            attendOne(
              q.subarray(r * d, r * d + d),
              keys,
              vals,
              c + 1,
              d,
              H,
              (t) => cache.ran[t] === 1 && batch.mask[b * T + t] === 1,
              att.subarray(r * d, r * d + d),
            );
          });
        }
      });
      for (let b = 0; b < B; b++) {
        cols.forEach((c, i) =>
          x.set(
            out.subarray((b * cols.length + i) * d, (b * cols.length + i + 1) * d),
            (b * n + c - c0) * d,
          )
        );
      }
      onLayer?.(l, x);
    }
    // Head: final LN, project_out, LM head, for the wanted columns only.
    const w = wanted.length;
    const hsel: Float32Array = new Float32Array(B * w * d);
    for (let b = 0; b < B; b++) {
      wanted.forEach((c, i) =>
        hsel.set(x.subarray((b * n + c - c0) * d, (b * n + c - c0 + 1) * d), (b * w + i) * d)
      );
    }
    return this.#applyHead(hsel, B * w);
  }

  /** The model's head on `m` rows of the residual stream: final LN, project_out, LM head. */
  #applyHead(h: Float32Array, m: number): Float32Array {
    return applyHead(this.#model, this.config, h, m);
  }
}
/**
 * Makes the CPU reference backend for loaded weights.
 *
 * @example
 * ```ts
 * import { loadWeights } from "../../model/mod.ts";
 * const backend = createCpuBackend(await loadWeights("bundled/models/tiny-opt-e2e"));
 * ```
 */
export function createCpuBackend(weights: OptWeights, options: CpuBackendOptions = {}): CpuBackend {
  return new CpuBackend(weights, options);
}

/** Options of the CPU backend. */
export interface CpuBackendOptions {
  /**
   * Widen F16 weights to f32 once at load (twice the memory; the speed of the old CPU
   * backend) instead of block by block in every product (the default). Same results.
   */
  widenF16?: boolean;
  /** Memory on offer in bytes, instead of `SKIPDECODE_MEMORY_LIMIT` or `MemAvailable`. */
  memoryLimitBytes?: number;
  /**
   * Storage type of the KV cache (default `"f32"`): `"f16"` rounds every stored key and value
   * to the nearest f16 (arithmetic stays f32), the reference of the WebGPU backend's f16 KV.
   */
  kvDtype?: KvDtype;
}
