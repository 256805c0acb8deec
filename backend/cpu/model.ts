/**
 * The CPU reference's model arithmetic, shared by the column-wise decode/forward
 * (`backend.ts`) and the per-row engine (`rows.ts`) so both compute every token the same way
 * (bit for bit: `linear` gives every row the same sums whatever the batch): the f32 weights
 * ({@linkcode loadCpuModel}), the embedding ({@linkcode embed}), one decoder layer on the rows
 * that run it ({@linkcode layerForward}, attention supplied by the caller, who owns the KV
 * layout) and the head ({@linkcode applyHead}).
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
import { tensorToFloat32 } from "../../model/safetensors.ts";
import { axpy, gatherRows, layerNorm, linear, relu } from "./ops.ts";

/** A linear map's f32 arrays. */
export interface Lin {
  /** `[out, in]`. */
  w: Float32Array;
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
  /** An embedding table. */
  table: Float32Array;
  /** A bias-free matrix (LM head, projections). */
  matrix: Lin;
  /** A linear map. */
  linear: Lin;
  /** A LayerNorm. */
  layerNorm: Ln;
}
/** The model on the CPU: f32 arrays in `model/tree.ts`'s tree. */
export type CpuModel = OptTree<CpuKinds>;
/** One decoder layer's arrays. */
export type CpuLayer = CpuModel["layers"][number];

/**
 * Converts all weights to f32 (exact for f16 and bf16); a tied head shares the array.
 *
 * @example
 * ```ts
 * import { loadCpuModel } from "./model.ts";
 * import { loadWeights } from "../../model/mod.ts";
 * const model = loadCpuModel(await loadWeights("bundled/models/tiny-opt-e2e"));
 * console.log(model.layers.length); // 12
 * ```
 */
export function loadCpuModel(weights: OptWeights): CpuModel {
  const arrays = new Map<Tensor, Float32Array>();
  const f32 = (t: Tensor) => {
    if (!arrays.has(t)) arrays.set(t, tensorToFloat32(t));
    return arrays.get(t)!;
  };
  return mapOptTree<TensorKinds, CpuKinds>(weights, {
    table: f32,
    matrix: (t) => ({ w: f32(t), out: t.shape[0], in: t.shape[1] }),
    linear: (l) => ({
      w: f32(l.weight),
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
  return linear(x, l.w, l.b, m, l.in, l.out);
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
  let x: Float32Array = gatherRows(M.embedTokens, dp, ids); // [m, dp]
  if (M.projectIn) x = apply(M.projectIn, x, m);
  for (let i = 0; i < m; i++) {
    const p = position(i) + 2;
    axpy(x.subarray(i * d, (i + 1) * d), M.embedPositions.subarray(p * d, p * d + d));
  }
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
