/**
 * The OPT forward pass as a sequence of GPU commands: embedding, decoder layers (pre-LN or
 * post-LN), final LayerNorm, `project_out`, LM head and token selection, recorded into a
 * {@linkcode Recorder} over the buffers of a {@linkcode Workspace}.
 *
 * Activations are laid out column-major over the batch: row `c * B + b` is column `c` of
 * batch row `b`. By the nesting invariant the columns that run layer `l` are a prefix, so
 * a layer over columns `0 .. Q-1` is one product over rows `0 .. Q*B - 1`, and layer `l`'s
 * KV cache `[slots, B, d]` is written by the `k`/`v` products directly at `colStart * B` (an
 * f16 cache, `kvDtype: "f16"`, through `kv_pack`; on the GPU path q/k/v are one product,
 * `kernels/matmul/qkv.ts`, whose epilogue writes f32 or f16 caches itself).
 *
 * @example
 * ```ts
 * import { createGraph, type Workspace } from "./graph.ts";
 * import type { GpuContext, Recorder } from "../../kernels/mod.ts";
 * import type { MatmulKernels } from "../../kernels/matmul/mod.ts";
 * import type { DeviceModel } from "./weights.ts";
 * declare const gpu: GpuContext, mm: MatmulKernels, model: DeviceModel;
 * declare const rec: Recorder, ws: Workspace, P: number, B: number;
 * const graph = await createGraph(gpu, mm, model);
 * graph.embed(rec, ws, 0, P); // the prompt's P columns
 * for (let l = 0; l < model.config.numHiddenLayers; l++) graph.layer(rec, ws, l, P * B, 0);
 * ```
 *
 * @module
 */
import {
  type AttentionKernel,
  createAttention,
  createKvPack,
  type KvPackKernel,
} from "../../kernels/attention/mod.ts";
import { type KvDtype, kvElementBytes } from "../../kernels/attention/kv_dtype.ts";
import { createEmbedding, type EmbeddingKernel } from "../../kernels/embedding/mod.ts";
import { type GpuContext, GpuError } from "../../kernels/device.ts";
import type { Recorder } from "../../kernels/encode.ts";
import { createLayerNorm, type LayerNormKernel } from "../../kernels/layernorm/mod.ts";
import type { DeviceLinear, LinearArgs, MatmulKernels } from "../../kernels/matmul/mod.ts";
import { createQkvKernel } from "../../kernels/matmul/qkv.ts";
import { storageLayout } from "../../kernels/matmul/storage.ts";
import { createSelect, type SelectKernel } from "../../kernels/select/mod.ts";
import type { SamplingOptions } from "../types.ts";
import type { DeviceModel } from "./weights.ts";

/** Buffers of one decode or forward call. */
export interface Workspace {
  /** Rows of the batch `B`. */
  batch: number;
  /** Rows the activation buffers hold (largest `columns * B` of one call). */
  rows: number;
  /** u32 id grid `[columns, B]`. */
  ids: GPUBuffer;
  /** u32 left padding `[B]`. */
  pad: GPUBuffer;
  /** u32 EOS flags `[B]`. */
  done: GPUBuffer;
  /** f32 residual stream `[rows, d]`. */
  h: GPUBuffer;
  /** f32 normalised stream `[rows, d]`. */
  hn: GPUBuffer;
  /** f32 queries `[rows, d]`. */
  q: GPUBuffer;
  /** f32 attention output `[rows, d]`. */
  att: GPUBuffer;
  /** f32 MLP hidden `[rows, f]`. */
  f: GPUBuffer;
  /** f32 token rows before `project_in` `[rows, dp]`. */
  tok?: GPUBuffer;
  /** f32 position rows `[rows, d]` (with `project_in`). */
  posb?: GPUBuffer;
  /** f32 `project_out` output `[headRows, dp]`. */
  proj?: GPUBuffer;
  /** f32 logits `[headRows, V]`. */
  logits: GPUBuffer;
  /** f32 sampling scratch `[B, V]` (a small buffer when greedy). */
  probs: GPUBuffer;
  /** KV caches `[slots_l, B, d]` per layer (f32, or f16 with `kvDtype: "f16"`). */
  k: GPUBuffer[];
  /** See {@linkcode k}. */
  v: GPUBuffer[];
  /** f32 fresh keys `[rows, d]` before the f16 cache store (f16 caches only). */
  kNew?: GPUBuffer;
  /** f32 fresh values `[rows, d]` (f16 caches only). */
  vNew?: GPUBuffer;
  /** Bytes of the KV caches `k` and `v` together. */
  kvBytes: number;
}

/** Where a layer's `k`/`v` projections go: two buffers and a byte offset into both. */
export interface KvTarget {
  /** Keys `[m, d]` from `offset`. */
  k: GPUBuffer;
  /** Values. */
  v: GPUBuffer;
  /** Byte offset of row 0. */
  offset: number;
  /** The targets hold f16 (the f16 caches; only the GPU path's fused q/k/v writes them). */
  f16?: boolean;
}

/** Where the input of the LM head lives: a buffer and its first row. */
export interface RowSource {
  /** The buffer. */
  buf: GPUBuffer;
  /** First row. */
  row: number;
}

/** The compiled kernels of one model, with the encode steps of its forward pass. */
export interface Graph {
  /** The model. */
  model: DeviceModel;
  /** Largest column count the attention kernel accepts. */
  maxColumns: number;
  /** Storage type of the KV caches this graph's kernels read and write. */
  kvDtype: KvDtype;
  /** Arena slices one column block uses at most (embedding + layers + head + select). */
  slicesPerStep: number;
  /**
   * Embeds columns `colStart .. colStart + columns - 1` into `ws.h` rows `0 ..`; with
   * `positions`, `ws.pad` holds each row's position (rows at their own positions).
   */
  embed(
    rec: Recorder,
    ws: Workspace,
    colStart: number,
    columns: number,
    positions?: boolean,
  ): void;
  /** Runs layer `l` on rows `0 .. m-1` (columns from `colStart`), in place on `ws.h`. */
  layer(rec: Recorder, ws: Workspace, l: number, m: number, colStart: number): void;
  /**
   * Runs layer `l` on rows `0 .. m-1` of `ws.h` in place, writing the `k`/`v` projections
   * to `kv` and letting `attend` record the attention (reading `ws.q` and the keys, writing
   * `ws.att`): the layer body shared by the column-batched decode ({@linkcode layer}) and
   * the per-row engine (`rows.ts`, paged KV).
   */
  layerWith(
    rec: Recorder,
    ws: Workspace,
    l: number,
    m: number,
    kv: KvTarget,
    attend: () => void,
  ): void;
  /** Final LayerNorm of `m` rows of `ws.h` from `inRow` (into `ws.hn`), if the model has one. */
  finalNorm(rec: Recorder, ws: Workspace, inRow: number, m: number): RowSource;
  /** `project_out` (if any) and the LM head of `m` rows of `src` into `ws.logits`. */
  logits(rec: Recorder, ws: Workspace, src: RowSource, m: number): void;
  /** Chooses each row's next token from `ws.logits` into `ws.ids[outIndex + b]`. */
  select(
    rec: Recorder,
    ws: Workspace,
    outIndex: number,
    step: number,
    sampling: SamplingOptions | undefined,
    eos: number | undefined,
  ): void;
}

/**
 * Compiles the kernels a model needs (attention for up to `maxPositionEmbeddings` columns,
 * capped by workgroup memory) and returns its graph. With `kvDtype` `"f16"` (a device with
 * `shader-f16`; see `resolveKvDtype`) the caches hold f16: the k/v products write f32 rows to
 * `ws.kNew`/`ws.vNew` and `kv_pack` rounds them into the caches (one dispatch more per layer).
 *
 * @example
 * ```ts
 * import type { GpuContext } from "../../kernels/mod.ts";
 * import type { MatmulKernels } from "../../kernels/matmul/mod.ts";
 * import type { DeviceModel } from "./weights.ts";
 * declare const gpu: GpuContext, mm: MatmulKernels, model: DeviceModel; // see uploadModel
 * const graph = await createGraph(gpu, mm, model);
 * ```
 */
export async function createGraph(
  gpu: GpuContext,
  mm: MatmulKernels,
  model: DeviceModel,
  kvDtype: KvDtype = "f32",
): Promise<Graph> {
  const cfg = model.config;
  const d = cfg.hiddenSize, dp = cfg.wordEmbedProjDim, V = cfg.vocabSize;
  const pre = cfg.doLayerNormBefore;
  // Largest score array that fits workgroup memory next to the head and reduction arrays.
  const fit = Math.floor(gpu.limits.maxComputeWorkgroupStorageSize / 4) - 256 - 64;
  const maxColumns = Math.min(cfg.maxPositionEmbeddings, Math.floor(fit / 64) * 64);
  const [emb, ln, att, sel, pack]: [
    EmbeddingKernel,
    LayerNormKernel,
    AttentionKernel,
    SelectKernel,
    KvPackKernel | undefined,
  ] = await Promise.all([
    createEmbedding(gpu, model.embedTokens, model.embedPositions),
    createLayerNorm(gpu),
    createAttention(gpu, maxColumns, undefined, {
      headDims: [d / cfg.numAttentionHeads],
      kvDtype,
    }),
    createSelect(gpu),
    kvDtype === "f32" ? undefined : createKvPack(gpu, kvDtype),
  ]);
  await mm.ready();
  // the GPU path's q/k/v: one product (with LN1 in its prologue on pre-LN layers)
  const qkvLinears = model.qkv;
  const qkv = qkvLinears
    ? await createQkvKernel(gpu, {
      f16: storageLayout(qkvLinears[0])?.f16 ?? false,
      ln: pre,
      kv16: kvDtype === "f16",
    })
    : undefined;

  const matmul = (rec: Recorder, family: string, args: LinearArgs) =>
    rec.foreign(family, (enc) => mm.encode(enc, args));
  const lin = (
    rec: Recorder,
    linear: DeviceLinear,
    x: GPUBuffer,
    y: GPUBuffer,
    m: number,
    extra: Partial<LinearArgs> = {},
  ) => matmul(rec, "matmul", { x, y, m, linear, ...extra });

  // Pre-LN layers fold their two LayerNorms into the products that read them (q/k/v and
  // fc1) where the matmul variant can (the texture variant normalises while it repacks X):
  // two dispatches fewer per layer, and ws.hn is not written.
  const fuseLn = pre &&
    model.layers.every((W, l) =>
      mm.canNormalise(qkvLinears ? qkvLinears[l] : W.qProj) && mm.canNormalise(W.fc1)
    );

  const layerWith = (
    rec: Recorder,
    ws: Workspace,
    l: number,
    m: number,
    kv: KvTarget,
    attend: () => void,
  ): void => {
    const W = model.layers[l];
    if (pre && !fuseLn) {
      ln.encode(rec, {
        x: ws.h,
        w: W.selfAttnLayerNorm.w,
        b: W.selfAttnLayerNorm.b,
        out: ws.hn,
        m,
        d,
      });
    }
    const src = pre && !fuseLn ? ws.hn : ws.h;
    const ln1 = fuseLn ? { layerNorm: W.selfAttnLayerNorm } : {};
    if (qkv) {
      // one dispatch: columns 0..d-1 to ws.q, d..2d-1 to the keys, 2d..3d-1 to the values
      qkv.encode(rec, {
        kv16: kv.f16,
        x: src,
        q: ws.q,
        k: kv.k,
        v: kv.v,
        kvOffset: kv.offset,
        m,
        linear: qkvLinears![l],
        ...ln1,
      });
    } else {
      lin(rec, W.qProj, src, ws.q, m, ln1);
      // k and v read the same X as q: the texture matmul reuses its repacked copy
      lin(rec, W.kProj, src, kv.k, m, { yOffset: kv.offset, xUnchanged: true, ...ln1 });
      lin(rec, W.vProj, src, kv.v, m, { yOffset: kv.offset, xUnchanged: true, ...ln1 });
    }
    attend(); // q, kv -> ws.att
    lin(rec, W.outProj, ws.att, ws.h, m, { residual: ws.h }); // h += attn
    if (pre && fuseLn) {
      lin(rec, W.fc1, ws.h, ws.f, m, { relu: true, layerNorm: W.finalLayerNorm });
      lin(rec, W.fc2, ws.f, ws.h, m, { residual: ws.h }); // h += mlp
    } else if (pre) {
      ln.encode(rec, { x: ws.h, w: W.finalLayerNorm.w, b: W.finalLayerNorm.b, out: ws.hn, m, d });
      lin(rec, W.fc1, ws.hn, ws.f, m, { relu: true });
      lin(rec, W.fc2, ws.f, ws.h, m, { residual: ws.h }); // h += mlp
    } else {
      ln.encode(rec, {
        x: ws.h,
        w: W.selfAttnLayerNorm.w,
        b: W.selfAttnLayerNorm.b,
        out: ws.hn,
        m,
        d,
      });
      lin(rec, W.fc1, ws.hn, ws.f, m, { relu: true });
      lin(rec, W.fc2, ws.f, ws.hn, m, { residual: ws.hn }); // hn += mlp
      ln.encode(rec, { x: ws.hn, w: W.finalLayerNorm.w, b: W.finalLayerNorm.b, out: ws.h, m, d });
    }
  };

  return {
    model,
    maxColumns,
    kvDtype,
    // per layer: up to 3 LayerNorms and the attention, plus the fused q/k/v on the GPU path
    // or the f16 pack
    slicesPerStep: 2 + (qkv || pack ? 5 : 3) * cfg.numHiddenLayers + 2,

    embed(rec, ws, colStart, columns, positions = false) {
      const base = { ids: ws.ids, pad: ws.pad, batch: ws.batch, colStart, columns, positions };
      const m = columns * ws.batch;
      if (model.projectIn) {
        emb.encode(rec, { ...base, out: ws.tok!, mode: "token" });
        emb.encode(rec, { ...base, out: ws.posb!, mode: "position" });
        matmul(rec, "embedding", {
          x: ws.tok!,
          y: ws.h,
          m,
          linear: model.projectIn,
          residual: ws.posb!,
        });
      } else {
        emb.encode(rec, { ...base, out: ws.h, mode: "sum" });
      }
    },

    layer(rec, ws, l, m, colStart) {
      const offset = colStart * ws.batch * d; // elements
      // f32 caches: the products write into them; f16: into kNew/vNew, packed before attention
      // (the GPU path's fused q/k/v writes f16 caches itself: no pack dispatch)
      const direct = !pack || !!qkv;
      const kv = direct
        ? { k: ws.k[l], v: ws.v[l], offset: offset * kvElementBytes(kvDtype), f16: !!pack }
        : { k: ws.kNew!, v: ws.vNew!, offset: 0 };
      layerWith(rec, ws, l, m, kv, () => {
        if (!direct) {
          pack!.encode(rec, {
            kin: ws.kNew!,
            vin: ws.vNew!,
            kout: ws.k[l],
            vout: ws.v[l],
            n: m * d,
            offset,
          });
        }
        att.encode(rec, {
          q: ws.q,
          k: ws.k[l],
          v: ws.v[l],
          pad: ws.pad,
          out: ws.att,
          m,
          d,
          heads: cfg.numAttentionHeads,
          batch: ws.batch,
          colStart,
        });
      });
    },

    layerWith,

    finalNorm(rec, ws, inRow, m) {
      if (!model.finalLayerNorm) return { buf: ws.h, row: inRow };
      const { w, b } = model.finalLayerNorm;
      ln.encode(rec, { x: ws.h, w, b, out: ws.hn, m, d, inRow, outRow: 0 });
      return { buf: ws.hn, row: 0 };
    },

    logits(rec, ws, src, m) {
      let x = src.buf, xOffset = src.row * d * 4;
      if (model.projectOut) {
        matmul(rec, "lm head", { x, xOffset, y: ws.proj!, m, linear: model.projectOut });
        x = ws.proj!;
        xOffset = 0;
      }
      matmul(rec, "lm head", { x, xOffset, y: ws.logits, m, linear: model.lmHead });
      void dp;
    },

    select(rec, ws, outIndex, step, sampling, eos) {
      sel.encode(rec, {
        logits: ws.logits,
        ids: ws.ids,
        done: ws.done,
        probs: ws.probs,
        batch: ws.batch,
        vocab: V,
        outIndex,
        step,
        sampling,
        eos,
      });
    },
  };
}

/** Sizes of a workspace. */
export interface WorkspaceShape {
  /** Rows of the batch. */
  batch: number;
  /** Largest `columns * B` run at once. */
  rows: number;
  /** Columns of the id grid. */
  columns: number;
  /** Rows of one LM-head block (`B` for decode). */
  headRows: number;
  /** KV slots per layer (0: the layer never runs). */
  slots: number[];
  /** Whether the sampler needs its scratch buffer. */
  sampling: boolean;
  /** Storage type of the KV caches (default `"f32"`). */
  kvDtype?: KvDtype;
}

/**
 * Allocates a workspace; returns it with a function freeing it.
 *
 * @throws {GpuError} naming the buffer that exceeds the device limits.
 *
 * @example
 * ```ts
 * import type { AllocationGroup, GpuContext } from "../../kernels/mod.ts";
 * import type { DeviceModel } from "./weights.ts";
 * declare const gpu: GpuContext, model: DeviceModel, group: AllocationGroup;
 * declare const shape: WorkspaceShape;
 * const ws = allocateWorkspace(gpu, model, group, shape);
 * ```
 */
export function allocateWorkspace(
  gpu: GpuContext,
  model: DeviceModel,
  group: { buffer(r: { label: string; size: number; bindWhole?: boolean }): GPUBuffer },
  shape: WorkspaceShape,
): { ws: Workspace; destroy(): void } {
  const cfg = model.config;
  const d = cfg.hiddenSize, dp = cfg.wordEmbedProjDim, V = cfg.vocabSize, f = cfg.ffnDim;
  const { batch: B, rows, headRows } = shape;
  const all: GPUBuffer[] = [];
  const buf = (label: string, elements: number, bytes = 4): GPUBuffer => {
    // storage bindings are whole 4-byte words (an odd count of f16 rounds up)
    const size = Math.ceil((Math.max(1, elements) * bytes) / 4) * 4;
    const b = group.buffer({ label, size, bindWhole: true });
    all.push(b);
    return b;
  };
  const kvDtype = shape.kvDtype ?? "f32";
  const kvb = kvElementBytes(kvDtype);
  if (shape.columns * B > gpu.limits.maxStorageBufferBindingSize / 4) {
    throw new GpuError(`id grid of ${shape.columns} columns x ${B} rows is too large`, "too-large");
  }
  const ws: Workspace = {
    batch: B,
    rows,
    ids: buf("id grid [columns, B]", shape.columns * B),
    pad: buf("padding [B]", B),
    done: buf("EOS flags [B]", B),
    h: buf(`hidden state [${rows}, ${d}]`, rows * d),
    hn: buf(`normalised hidden state [${rows}, ${d}]`, rows * d),
    q: buf(`queries [${rows}, ${d}]`, rows * d),
    att: buf(`attention output [${rows}, ${d}]`, rows * d),
    f: buf(`MLP hidden [${rows}, ${f}]`, rows * f),
    tok: model.projectIn ? buf(`token rows [${rows}, ${dp}]`, rows * dp) : undefined,
    posb: model.projectIn ? buf(`position rows [${rows}, ${d}]`, rows * d) : undefined,
    proj: model.projectOut
      ? buf(`project_out rows [${headRows}, ${dp}]`, headRows * dp)
      : undefined,
    logits: buf(`logits [${headRows}, ${V}]`, headRows * V),
    probs: buf(`sampling scratch [${B}, ${V}]`, shape.sampling ? B * V : 1),
    k: shape.slots.map((s, l) =>
      buf(`layer ${l} ${kvDtype} key cache [${s}, ${B}, ${d}]`, s * B * d, kvb)
    ),
    v: shape.slots.map((s, l) =>
      buf(`layer ${l} ${kvDtype} value cache [${s}, ${B}, ${d}]`, s * B * d, kvb)
    ),
    kNew: kvDtype === "f32" ? undefined : buf(`fresh keys [${rows}, ${d}]`, rows * d),
    vNew: kvDtype === "f32" ? undefined : buf(`fresh values [${rows}, ${d}]`, rows * d),
    kvBytes: 0,
  };
  ws.kvBytes = [...ws.k, ...ws.v].reduce((s, b) => s + b.size, 0);
  return { ws, destroy: () => all.forEach((b) => b.destroy()) };
}
