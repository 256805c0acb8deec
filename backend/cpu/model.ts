/**
 * The CPU reference's model arithmetic, shared by the column-wise decode/forward
 * (`backend.ts`) and the per-row engine (`rows.ts`) so both compute every token the same way
 * (bit for bit: `linear` gives every row the same sums whatever the batch): the weights
 * ({@linkcode loadCpuModel}), the embedding ({@linkcode embed}), one decoder layer on the rows
 * that run it ({@linkcode layerForward}, attention supplied by the caller, who owns the KV
 * layout) and the head ({@linkcode applyHead}).
 *
 * F16 matrices and tables stay IEEE halves (`Uint16Array`), half the memory of f32 (an
 * OPT-2.7b holds 5.3 GB instead of 10.6 GB), and are widened block by block of rows into a
 * small f32 scratch right before each product ({@linkcode apply}); the widening is exact
 * and every output is the same sum in the same order, so results are bit-identical to an
 * all-f32 copy. F32 and BF16 weights, biases and LayerNorms are f32.
 *
 * Shapes in comments: m rows, d = hiddenSize, f = ffnDim, dp = wordEmbedProjDim,
 * V = vocabSize.
 *
 * @example
 * ```ts
 * import { applyHead, embed, loadCpuModel } from "./model.ts";
 * import { loadWeights } from "../../model/mod.ts";
 * const w = await loadWeights("bundled/models/tiny-opt-e2e");
 * const model = loadCpuModel(w);
 * const x = embed(model, w.config, Int32Array.from([2, 100]), (i) => i); // [2, 128]
 * const logits = applyHead(model, w.config, x, 2); // [2, 50272]
 * ```
 *
 * @module
 */
import type { OptConfig, OptWeights, Tensor } from "../../model/types.ts";
import { mapOptTree, type OptTree, type ParamKinds, type TensorKinds } from "../../model/tree.ts";
import { halvesToFloat32, tensorToFloat32 } from "../../model/dtype.ts";
import { axpy, gatherRows, layerNorm, linear, relu } from "./ops.ts";

/** Weights on the CPU: f32 values, or IEEE half bit patterns (F16 checkpoints). */
export type CpuArray = Float32Array | Uint16Array;

/** A linear map's arrays. */
export interface Lin {
  /** `[out, in]`, f32 or f16 halves. */
  w: CpuArray;
  /** `[out]`. */
  b?: Float32Array;
  /** Output width. */
  out: number;
  /** Input width. */
  in: number;
}
/** A LayerNorm's f32 arrays. */
export interface Ln {
  /** `[d]` scale. */
  w: Float32Array;
  /** `[d]` shift. */
  b: Float32Array;
}
/** The model's arrays, one field per entry of model/tree.ts. */
export interface CpuKinds extends ParamKinds {
  /** An embedding table, f32 or f16 halves. */
  table: CpuArray;
  /** A bias-free matrix (LM head, projections). */
  matrix: Lin;
  /** A linear map. */
  linear: Lin;
  /** A LayerNorm. */
  layerNorm: Ln;
}
/** The model on the CPU: arrays (f16 weights kept as f16) in `model/tree.ts`'s tree. */
export type CpuModel = OptTree<CpuKinds>;
/** One decoder layer's arrays. */
export type CpuLayer = CpuModel["layers"][number];

/**
 * Reads the weights one tensor at a time: F16 matrices and tables stay halves, everything
 * else becomes f32 (exact for bf16); a tied head shares the embedding's array.
 *
 * @example
 * ```ts
 * import { loadCpuModel } from "./model.ts";
 * import { loadWeights } from "../../model/mod.ts";
 * const model = loadCpuModel(await loadWeights("bundled/models/tiny-opt-e2e"));
 * console.log(model.layers.length); // 12
 * ```
 */
export function loadCpuModel(
  weights: OptWeights,
  options: { widenF16?: boolean } = {},
): CpuModel {
  const arrays = new Map<Tensor, CpuArray>();
  const keep = (t: Tensor, halves: boolean): CpuArray => {
    let a = arrays.get(t);
    if (!a) {
      if (halves && t.dtype === "F16") {
        const bytes = t.bytes();
        a = bytes.byteOffset % 2 === 0
          ? new Uint16Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 2)
          : new Uint16Array(bytes.slice().buffer);
      } else a = tensorToFloat32(t);
      arrays.set(t, a);
    }
    return a;
  };
  const f32 = (t: Tensor) => keep(t, false) as Float32Array;
  const mat = (t: Tensor) => keep(t, !options.widenF16);
  return mapOptTree<TensorKinds, CpuKinds>(weights, {
    table: mat,
    matrix: (t) => ({ w: mat(t), out: t.shape[0], in: t.shape[1] }),
    linear: (l) => ({
      w: mat(l.weight),
      b: l.bias ? f32(l.bias) : undefined,
      out: l.weight.shape[0],
      in: l.weight.shape[1],
    }),
    layerNorm: (n) => ({ w: f32(n.weight), b: f32(n.bias) }),
  });
}

/**
 * `y[m, out] = x[m, in] W^T + b`.
 *
 * @example
 * ```ts
 * import { apply } from "./model.ts";
 * apply({ w: new Float32Array([1, 2]), out: 1, in: 2 }, new Float32Array([3, 4]), 1); // [11]
 * ```
 */
export function apply(l: Lin, x: Float32Array, m: number): Float32Array {
  if (l.w instanceof Float32Array) return linear(x, l.w, l.b, m, l.in, l.out);
  if (m === 1) return gemvHalves(l.w, l.b, x, l.in, l.out);
  // f16: widen BLOCK_FLOATS worth of whole weight rows at a time, multiply, scatter.
  const w = l.w, k = l.in, n = l.out;
  const out = new Float32Array(m * n); // [m, n]
  const rows = Math.max(1, Math.min(n, Math.floor(BLOCK_FLOATS / k)));
  const wf = scratch(0, rows * k); // [rows, k]
  const y = scratch(1, m * rows); // [m, rows]
  for (let j0 = 0; j0 < n; j0 += rows) {
    const r = Math.min(rows, n - j0);
    halvesToFloat32(w, j0 * k, r * k, wf);
    const b = l.b?.subarray(j0, j0 + r);
    const yb = linear(x, wf.subarray(0, r * k), b, m, k, r, y.subarray(0, m * r));
    if (m === 1) out.set(yb, j0);
    else for (let i = 0; i < m; i++) out.set(yb.subarray(i * r, i * r + r), i * n + j0);
  }
  return out;
}

/**
 * One row through f16 weights, each half widened by table lookup inside the dot product
 * (no scratch pass: a single row reuses no widened weight). The sums are those of
 * `linear` for one row (four partial sums, same order), so the result is bit-identical.
 */
function gemvHalves(
  w: Uint16Array, // [n, k] halves
  b: Float32Array | undefined, // [n]
  x: Float32Array, // [k]
  k: number,
  n: number,
): Float32Array {
  const T = f16Table();
  const out = new Float32Array(n);
  const k4 = k - (k % 4);
  for (let j = 0; j < n; j++) {
    const wo = j * k;
    let s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    let t = 0;
    for (; t < k4; t += 4) {
      s0 += x[t] * T[w[wo + t]];
      s1 += x[t + 1] * T[w[wo + t + 1]];
      s2 += x[t + 2] * T[w[wo + t + 2]];
      s3 += x[t + 3] * T[w[wo + t + 3]];
    }
    for (; t < k; t++) s0 += x[t] * T[w[wo + t]];
    out[j] = (s0 + s1) + (s2 + s3) + (b ? b[j] : 0);
  }
  return out;
}

let table: Float32Array | undefined;
function f16Table(): Float32Array {
  if (!table) {
    table = new Float32Array(65536);
    halvesToFloat32(Uint16Array.from({ length: 65536 }, (_, i) => i), 0, 65536, table);
  }
  return table;
}

/** Floats of f16 weights widened at once (256 KiB of f32: stays in cache). */
const BLOCK_FLOATS = 1 << 16;
const scratches: Float32Array[] = [new Float32Array(0), new Float32Array(0)];
function scratch(slot: number, n: number): Float32Array {
  if (scratches[slot].length < n) scratches[slot] = new Float32Array(n);
  return scratches[slot];
}

/**
 * Rows `ids` of a `[rows, width]` table (f32 or f16 halves) as f32 `[ids.length, width]`.
 *
 * @example
 * ```ts
 * import { tableRows } from "./model.ts";
 * tableRows(new Uint16Array([0x3c00, 0x4000]), 1, Int32Array.from([1])); // [2]
 * ```
 */
export function tableRows(table: CpuArray, width: number, ids: ArrayLike<number>): Float32Array {
  if (table instanceof Float32Array) return gatherRows(table, width, ids);
  const out = new Float32Array(ids.length * width);
  for (let i = 0; i < ids.length; i++) {
    halvesToFloat32(table, ids[i] * width, width, out.subarray(i * width, (i + 1) * width));
  }
  return out;
}

/**
 * The embedding of `ids.length` tokens: `x[m, d] = project_in(embed_tokens[ids]) +
 * embed_positions[position(i) + 2]` (OPT's offset of 2).
 *
 * @example
 * ```ts
 * import { embed, loadCpuModel } from "./model.ts";
 * import { loadWeights } from "../../model/mod.ts";
 * const w = await loadWeights("bundled/models/tiny-opt-e2e");
 * const x = embed(loadCpuModel(w), w.config, Int32Array.from([2, 100, 101]), (i) => i);
 * ```
 */
export function embed(
  M: CpuModel,
  cfg: OptConfig,
  ids: Int32Array,
  position: (i: number) => number,
): Float32Array {
  const d = cfg.hiddenSize, dp = cfg.wordEmbedProjDim;
  const m = ids.length;
  let x: Float32Array = tableRows(M.embedTokens, dp, ids); // [m, dp]
  if (M.projectIn) x = apply(M.projectIn, x, m);
  const pos = tableRows(M.embedPositions, d, Array.from({ length: m }, (_, i) => position(i) + 2));
  for (let i = 0; i < m; i++) axpy(x.subarray(i * d, (i + 1) * d), pos.subarray(i * d, i * d + d));
  return x;
}

/**
 * Attention of a layer's `m` rows: given the queries (already scaled by `headDim ** -0.5`),
 * keys and values `[m, d]` of the rows, store the keys/values in the cache and write each
 * row's attention output into `att[m, d]`.
 */
export type AttentionStep = (
  q: Float32Array,
  k: Float32Array,
  v: Float32Array,
  att: Float32Array,
) => void;

/**
 * One decoder layer on `m` rows `h[m, d]` of the residual stream (pre-LN or post-LN as the
 * config says); attention by `attend`. Returns the layer's output `[m, d]`.
 *
 * @example
 * ```ts
 * import { attendOne } from "./ops.ts";
 * import { embed, layerForward, loadCpuModel } from "./model.ts";
 * import { loadWeights } from "../../model/mod.ts";
 * const w = await loadWeights("bundled/models/tiny-opt-e2e");
 * const M = loadCpuModel(w), cfg = w.config, d = cfg.hiddenSize;
 * const h = embed(M, cfg, Int32Array.from([2]), (i) => i); // one token at position 0
 * const out = layerForward(cfg, M.layers[0], h, 1, (q, k, v, att) => {
 *   attendOne(q, k, v, 1, d, cfg.numAttentionHeads, () => true, att);
 * });
 * ```
 */
export function layerForward(
  cfg: OptConfig,
  W: CpuLayer,
  h: Float32Array,
  m: number,
  attend: AttentionStep,
): Float32Array {
  const d = cfg.hiddenSize, H = cfg.numAttentionHeads;
  const scale = (d / H) ** -0.5;
  const pre = cfg.doLayerNormBefore;
  // Attention block
  const a = pre ? layerNorm(h, W.selfAttnLayerNorm.w, W.selfAttnLayerNorm.b, m, d) : h;
  const q = apply(W.qProj, a, m);
  for (let i = 0; i < q.length; i++) q[i] *= scale;
  const k = apply(W.kProj, a, m);
  const v = apply(W.vProj, a, m);
  const att = new Float32Array(m * d);
  attend(q, k, v, att);
  const o = apply(W.outProj, att, m);
  axpy(o, h); // o = h + attn
  const r1 = pre ? o : layerNorm(o, W.selfAttnLayerNorm.w, W.selfAttnLayerNorm.b, m, d);
  // MLP block
  const a2 = pre ? layerNorm(r1, W.finalLayerNorm.w, W.finalLayerNorm.b, m, d) : r1;
  const f = apply(W.fc2, relu(apply(W.fc1, a2, m)), m);
  axpy(f, r1);
  return pre ? f : layerNorm(f, W.finalLayerNorm.w, W.finalLayerNorm.b, m, d);
}

/**
 * The model's head on `m` rows of the residual stream: final LN, project_out, LM head.
 * Returns `[m, V]` logits.
 *
 * @example
 * ```ts
 * import { applyHead, loadCpuModel } from "./model.ts";
 * import { loadWeights } from "../../model/mod.ts";
 * const w = await loadWeights("bundled/models/tiny-opt-e2e");
 * const logits = applyHead(loadCpuModel(w), w.config, new Float32Array(128), 1);
 * ```
 */
export function applyHead(M: CpuModel, cfg: OptConfig, h: Float32Array, m: number): Float32Array {
  const d = cfg.hiddenSize;
  if (M.finalLayerNorm) h = layerNorm(h, M.finalLayerNorm.w, M.finalLayerNorm.b, m, d);
  if (M.projectOut) h = apply(M.projectOut, h, m);
  return apply(M.lmHead, h, m);
}
