/**
 * The CPU reference of training: OPT's forward pass over a {@linkcode TrainBatch} keeping
 * every activation the backward needs, and the backward pass for the whole model (pre-LN,
 * and post-LN with `project_in`/`project_out` as in opt-350m), the tied (or untied) LM head
 * and cross-entropy on target tokens only.
 *
 * Per-column layer masks work exactly as at inference (docs/DESIGN.md §2): a column that skips layer
 * `l` passes its hidden state through unchanged, so in the backward its gradient passes
 * straight through too; the keys and values of layer `l` come only from the columns of the
 * same row that run it (with nesting, a prefix of the row).
 *
 * Generic over f32 and f64 (the arrays of the {@linkcode ParamSet}); the f64 form is what
 * the finite-difference test checks.
 *
 * Shapes: `B` rows, `T` columns, `N = B*T`, `m` active columns of a layer, `n` targets,
 * `d` hidden, `dp` embedding width, `f` MLP width, `V` vocabulary, `H` heads.
 *
 * @module
 */
import type { TrainBatch } from "./batch.ts";
import { packActive } from "../schedule/active.ts";
import {
  attentionBackward,
  attentionForward,
  axpy,
  crossEntropy,
  gatherRows,
  layerNormBackward,
  layerNormForward,
  type LnSaved,
  relu,
  scatterRows,
} from "./ops.ts";
import { type LinearOps, TYPESCRIPT_LINEAR } from "./blas.ts";
import { allocLike, type FloatArray, type LinearArrays, type ModelArrays } from "./param_set.ts";

/** The activations of one layer that the backward needs (`m` active columns). */
export interface LayerSaved {
  /** `[m]` flat positions `b*T + c` of the active columns, ascending. */
  idx: Int32Array;
  /** `[m]` packed index of the first active column of the same row. */
  start: Int32Array;
  /** `[m, d]` input of q/k/v (LN1 output pre-LN, the residual post-LN). */
  a: FloatArray;
  /** LN1 (of the input pre-LN, of `h + attn` post-LN). */
  ln1: LnSaved;
  /** `[m, d]` queries, already scaled by `headDim ** -0.5`. */
  q: FloatArray;
  /** `[m, d]` keys. */
  k: FloatArray;
  /** `[m, d]` values. */
  v: FloatArray;
  /** Attention probabilities (layout of `attentionForward`). */
  probs: FloatArray;
  /** `[m + 1]` offsets of each query's probabilities. */
  off: Int32Array;
  /** `[m, d]` attention context (input of out_proj). */
  ctx: FloatArray;
  /** LN2 (of `r1` pre-LN, of `r1 + mlp` post-LN). */
  ln2: LnSaved;
  /** `[m, d]` input of fc1. */
  a2: FloatArray;
  /** `[m, f]` fc1 output before ReLU. */
  u: FloatArray;
  /** `[m, f]` after ReLU. */
  z: FloatArray;
}

/** A forward pass kept for the backward. */
export interface ForwardState {
  /** The batch. */
  batch: TrainBatch;
  /** `[N, dp]` token embeddings (input of project_in). */
  emb: FloatArray;
  /** Per layer. */
  layers: LayerSaved[];
  /** `[n]` flat positions of the target columns, ascending. */
  tgtIdx: Int32Array;
  /** `[n]` their targets. */
  tgt: Int32Array;
  /** Final LN of the target columns, when the model has it. */
  lnf?: LnSaved;
  /** `[n, d]` input of project_out. */
  hf: FloatArray;
  /** `[n, dp]` input of the LM head. */
  hp: FloatArray;
  /** `[n, V]` softmax − onehot (the NLL gradient per target), when kept for training. */
  dlogits?: FloatArray;
  /** `[n]` NLL of each target (nats). */
  nll: Float64Array;
  /** Σ nll. */
  loss: number;
  /** The linear maps' products the forward ran on (the backward runs on them too). */
  linear: LinearOps;
  /** The factor `dlogits` already carries ({@linkcode ForwardOptions.gradScale}). */
  dlogitsScale: number;
}

/** Options of {@linkcode forward}. */
export interface ForwardOptions {
  /** Keep the logits' gradient for {@linkcode backward} (default true). */
  train?: boolean;
  /** Where the linear maps' products run (default: the TypeScript loops, f32 or f64). */
  linear?: LinearOps;
  /**
   * The `scale` the backward will be called with, applied to the logits' gradient in the
   * cross-entropy pass (default 1); a backward with another scale rescales a copy.
   */
  gradScale?: number;
}

/**
 * Active columns of a layer and, per column, its row's first active column: the packing of
 * `schedule/active.ts` (`packActive`), viewed as the `Int32Array`s the ops take.
 */
function activeColumns(batch: TrainBatch, l: number): { idx: Int32Array; start: Int32Array } {
  const N = batch.rows * batch.length;
  const p = packActive(batch.active.subarray(l * N, (l + 1) * N), batch.rows, batch.length);
  return { idx: new Int32Array(p.idx.buffer), start: new Int32Array(p.start.buffer) };
}

function lin(ops: LinearOps, l: LinearArrays, x: FloatArray, m: number): FloatArray {
  return ops.forward(x, l.w, l.b, m, l.in, l.out);
}

/** `dx += dy W`, `dW += dy^T x`, `db += Σ dy` for a linear map and its gradient arrays. */
function linBack(
  ops: LinearOps,
  p: LinearArrays,
  g: LinearArrays,
  dy: FloatArray,
  x: FloatArray,
  m: number,
  dx?: FloatArray,
): void {
  ops.backwardParams(dy, x, m, p.in, p.out, g.w, g.b);
  if (dx) ops.backwardInput(dy, p.w, m, p.in, p.out, dx);
}

/**
 * Embeds a batch: `x[N, d] = project_in(embed_tokens[ids]) + embed_positions[pos + 2]`
 * (zero rows on padding). Also returns the token embeddings before `project_in`.
 */
function embed(
  m: ModelArrays,
  batch: TrainBatch,
  ops: LinearOps,
): { x: FloatArray; emb: FloatArray } {
  const c = m.config;
  const d = c.hiddenSize, dp = c.wordEmbedProjDim, V = c.vocabSize;
  const N = batch.rows * batch.length;
  const emb = allocLike(m.embedTokens, N * dp);
  for (let i = 0; i < N; i++) {
    if (batch.positions[i] < 0) continue;
    const t = batch.tokens[i];
    if (!(t >= 0 && t < V)) {
      throw new RangeError(
        `token id ${t} at row ${Math.floor(i / batch.length)}, column ${i % batch.length} ` +
          `is outside the vocabulary 0..${V - 1}`,
      );
    }
    emb.set(m.embedTokens.subarray(t * dp, t * dp + dp), i * dp);
  }
  const x = m.projectIn ? lin(ops, m.projectIn, emb, N) : emb.slice();
  const maxPos = c.maxPositionEmbeddings;
  for (let i = 0; i < N; i++) {
    const p = batch.positions[i];
    if (p < 0) {
      x.fill(0, i * d, i * d + d);
      continue;
    }
    if (p >= maxPos) {
      throw new RangeError(
        `row ${Math.floor(i / batch.length)} has ${p + 1} tokens, more than the position ` +
          `table (max_position_embeddings = ${maxPos})`,
      );
    }
    const o = (p + 2) * d;
    for (let e = 0; e < d; e++) x[i * d + e] += m.embedPositions[o + e];
  }
  return { x, emb };
}

/** Runs the decoder layers in place on `x[N, d]`, returning what the backward needs. */
function runLayers(
  m: ModelArrays,
  batch: TrainBatch,
  x: FloatArray,
  ops: LinearOps,
): LayerSaved[] {
  const c = m.config;
  const d = c.hiddenSize, H = c.numAttentionHeads;
  const scale = (d / H) ** -0.5;
  const pre = c.doLayerNormBefore;
  const saved: LayerSaved[] = [];
  for (let l = 0; l < c.numHiddenLayers; l++) {
    const W = m.layers[l];
    const { idx, start } = activeColumns(batch, l);
    const n = idx.length;
    const h = gatherRows(x, d, idx); // [m, d]
    let a: FloatArray, ln1: LnSaved;
    if (pre) {
      const r = layerNormForward(h, W.selfAttnLayerNorm.w, W.selfAttnLayerNorm.b, n, d);
      a = r.y;
      ln1 = r;
    } else {
      a = h;
      ln1 = undefined as unknown as LnSaved; // set after the attention block
    }
    const q = lin(ops, W.qProj, a, n);
    for (let i = 0; i < q.length; i++) q[i] *= scale;
    const k = lin(ops, W.kProj, a, n);
    const v = lin(ops, W.vProj, a, n);
    const { ctx, probs, off } = attentionForward(q, k, v, start, n, d, H);
    const r1 = lin(ops, W.outProj, ctx, n);
    axpy(r1, h); // r1 = h + attn
    let res1 = r1;
    if (!pre) {
      const r = layerNormForward(r1, W.selfAttnLayerNorm.w, W.selfAttnLayerNorm.b, n, d);
      ln1 = r;
      res1 = r.y;
    }
    let a2: FloatArray, ln2: LnSaved;
    if (pre) {
      const r = layerNormForward(res1, W.finalLayerNorm.w, W.finalLayerNorm.b, n, d);
      a2 = r.y;
      ln2 = r;
    } else {
      a2 = res1;
      ln2 = undefined as unknown as LnSaved;
    }
    const u = lin(ops, W.fc1, a2, n);
    const z = relu(u, allocLike(u, u.length));
    const out = lin(ops, W.fc2, z, n);
    axpy(out, res1);
    let y = out;
    if (!pre) {
      const r = layerNormForward(out, W.finalLayerNorm.w, W.finalLayerNorm.b, n, d);
      ln2 = r;
      y = r.y;
    }
    scatterRows(y, d, idx, x);
    saved.push({ idx, start, a, ln1, q, k, v, probs, off, ctx, ln2, a2, u, z });
  }
  return saved;
}

/** Final LN and project_out of the rows `idx` of `x`. */
function headInput(
  m: ModelArrays,
  x: FloatArray,
  idx: Int32Array,
  ops: LinearOps,
): { lnf?: LnSaved; hf: FloatArray; hp: FloatArray } {
  const d = m.config.hiddenSize;
  const n = idx.length;
  let hf = gatherRows(x, d, idx);
  let lnf: LnSaved | undefined;
  if (m.finalLayerNorm) {
    const r = layerNormForward(hf, m.finalLayerNorm.w, m.finalLayerNorm.b, n, d);
    lnf = r;
    hf = r.y;
  }
  const hp = m.projectOut ? lin(ops, m.projectOut, hf, n) : hf;
  return { lnf, hf, hp };
}

/**
 * The forward pass of a batch with its per-column layer masks, keeping activations.
 * Returns the NLL of every target and, for training, the logits' gradient.
 *
 * @throws {RangeError} naming the row and column of a token outside the vocabulary or a
 *   sequence longer than the position table.
 *
 * @example
 * ```ts
 * import { writeRandomCheckpoint, loadWeightsSync } from "../model/mod.ts";
 * import { paramsFromWeights, modelView } from "./param_set.ts";
 * import { collate } from "./batch.ts";
 * const dir = Deno.makeTempDirSync();
 * writeRandomCheckpoint(dir, { seed: 1 });
 * const m = modelView(paramsFromWeights(loadWeightsSync(dir)));
 * const batch = collate([{ prompt: [2, 5], target: [6, 2], sets: [[0, 1], [0, 1], [1]] }], 2, 1);
 * console.log(forward(m, batch).loss / batch.targetCount);
 * ```
 */
export function forward(
  m: ModelArrays,
  batch: TrainBatch,
  options: ForwardOptions = {},
): ForwardState {
  const c = m.config;
  if (batch.layers !== c.numHiddenLayers) {
    throw new RangeError(
      `the batch's layer masks cover ${batch.layers} layers, the model has ${c.numHiddenLayers}`,
    );
  }
  const V = c.vocabSize, dp = c.wordEmbedProjDim;
  const ops = options.linear ?? TYPESCRIPT_LINEAR;
  const { x, emb } = embed(m, batch, ops);
  const layers = runLayers(m, batch, x, ops);
  const N = batch.rows * batch.length;
  const tgtIdx = new Int32Array(batch.targetCount);
  const tgt = new Int32Array(batch.targetCount);
  let j = 0;
  for (let i = 0; i < N; i++) {
    if (batch.targets[i] < 0) continue;
    if (batch.positions[i] < 0) {
      throw new RangeError(
        `padding column ${i % batch.length} of row ${Math.floor(i / batch.length)} has a target`,
      );
    }
    tgtIdx[j] = i;
    tgt[j++] = batch.targets[i];
  }
  if (j !== batch.targetCount) {
    throw new RangeError(`batch.targetCount is ${batch.targetCount} but ${j} targets are set`);
  }
  const n = tgtIdx.length;
  const { lnf, hf, hp } = headInput(m, x, tgtIdx, ops);
  const logits = ops.forward(hp, m.lmHead.w, undefined, n, dp, V);
  const train = options.train ?? true;
  const gradScale = options.gradScale ?? 1;
  const nll = crossEntropy(logits, tgt, n, V, train, gradScale);
  let loss = 0;
  for (let i = 0; i < n; i++) loss += nll[i];
  return {
    batch,
    emb,
    layers,
    tgtIdx,
    tgt,
    lnf,
    hf,
    hp,
    dlogits: train ? logits : undefined,
    nll,
    loss,
    linear: ops,
    dlogitsScale: gradScale,
  };
}

/**
 * Logits of every real column (`[B*T, V]`, zero rows on padding), for comparing the training
 * forward with a backend's `forward()`.
 *
 * @example
 * ```ts
 * import { modelView, type ParamSet } from "./param_set.ts";
 * import type { TrainBatch } from "./batch.ts";
 * declare const params: ParamSet, batch: TrainBatch; // see CpuEngine's example
 * const logits = forwardLogits(modelView(params), batch);
 * ```
 */
export function forwardLogits(m: ModelArrays, batch: TrainBatch): FloatArray {
  const c = m.config;
  const ops = TYPESCRIPT_LINEAR;
  const { x } = embed(m, batch, ops);
  runLayers(m, batch, x, ops);
  const N = batch.rows * batch.length;
  const real: number[] = [];
  for (let i = 0; i < N; i++) if (batch.positions[i] >= 0) real.push(i);
  const idx = Int32Array.from(real);
  const { hp } = headInput(m, x, idx, ops);
  const V = c.vocabSize;
  const logits = ops.forward(hp, m.lmHead.w, undefined, idx.length, c.wordEmbedProjDim, V);
  const out = allocLike(logits, N * V);
  scatterRows(logits, V, idx, out);
  return out;
}

/**
 * The backward pass: adds `scale * d(Σ NLL)/dθ` into `g` (a view of the gradient set).
 * Use `scale = 1 / targets` for the mean NLL of one batch, or `1 / (total targets)` to
 * accumulate a mean over several micro-batches.
 *
 * @throws {Error} when the forward was run with `train: false`.
 *
 * @example
 * ```ts
 * import { modelView, type ParamSet } from "./param_set.ts";
 * import type { TrainBatch } from "./batch.ts";
 * declare const params: ParamSet, grads: ParamSet, batch: TrainBatch;
 * const s = forward(modelView(params), batch);
 * backward(modelView(params), modelView(grads), s, 1 / batch.targetCount);
 * ```
 */
export function backward(m: ModelArrays, g: ModelArrays, s: ForwardState, scale: number): void {
  if (!s.dlogits) throw new Error("backward needs a forward run with train: true");
  const c = m.config;
  const d = c.hiddenSize, dp = c.wordEmbedProjDim, V = c.vocabSize, H = c.numAttentionHeads;
  const batch = s.batch;
  const N = batch.rows * batch.length;
  const n = s.tgtIdx.length;
  const ops = s.linear;
  let dlog = s.dlogits;
  if (scale !== s.dlogitsScale) {
    const f = scale / s.dlogitsScale;
    dlog = allocLike(s.dlogits, s.dlogits.length);
    for (let i = 0; i < dlog.length; i++) dlog[i] = s.dlogits[i] * f;
  }
  // LM head: logits = hp · head^T
  const dhp = allocLike(dlog, n * dp);
  ops.backwardParams(dlog, s.hp, n, dp, V, g.lmHead.w);
  ops.backwardInput(dlog, m.lmHead.w, n, dp, V, dhp);
  let dhf = dhp;
  if (m.projectOut) {
    dhf = allocLike(dlog, n * d);
    linBack(ops, m.projectOut, g.projectOut!, dhp, s.hf, n, dhf);
  }
  if (m.finalLayerNorm) {
    const dh = allocLike(dlog, n * d);
    layerNormBackward(
      dhf,
      s.lnf!,
      m.finalLayerNorm.w,
      n,
      d,
      dh,
      g.finalLayerNorm!.w,
      g.finalLayerNorm!.b,
    );
    dhf = dh;
  }
  const dx = allocLike(dlog, N * d); // gradient of the residual stream
  scatterRows(dhf, d, s.tgtIdx, dx);
  const pre = c.doLayerNormBefore;
  const scaleQ = (d / H) ** -0.5;
  for (let l = c.numHiddenLayers - 1; l >= 0; l--) {
    const S = s.layers[l], W = m.layers[l], G = g.layers[l];
    const k = S.idx.length;
    if (k === 0) continue;
    let dy = gatherRows(dx, d, S.idx); // gradient of the layer's output
    // MLP block
    let dres1: FloatArray;
    if (pre) {
      dres1 = dy;
    } else {
      dres1 = allocLike(dy, k * d);
      layerNormBackward(
        dy,
        S.ln2,
        W.finalLayerNorm.w,
        k,
        d,
        dres1,
        G.finalLayerNorm.w,
        G.finalLayerNorm.b,
      );
      dy = dres1;
    }
    const dz = allocLike(dy, k * c.ffnDim);
    linBack(ops, W.fc2, G.fc2, dy, S.z, k, dz);
    for (let i = 0; i < dz.length; i++) if (!(S.u[i] > 0)) dz[i] = 0;
    const da2 = allocLike(dy, k * d);
    linBack(ops, W.fc1, G.fc1, dz, S.a2, k, da2);
    const dr1 = dres1.slice(); // residual path
    if (pre) {
      layerNormBackward(
        da2,
        S.ln2,
        W.finalLayerNorm.w,
        k,
        d,
        dr1,
        G.finalLayerNorm.w,
        G.finalLayerNorm.b,
      );
    } else axpy(dr1, da2);
    // Attention block: r1 = h + out_proj(ctx) (post-LN: res1 = LN1(r1))
    let dsum: FloatArray = dr1;
    if (!pre) {
      dsum = allocLike(dy, k * d);
      layerNormBackward(
        dr1,
        S.ln1,
        W.selfAttnLayerNorm.w,
        k,
        d,
        dsum,
        G.selfAttnLayerNorm.w,
        G.selfAttnLayerNorm.b,
      );
    }
    const dctx = allocLike(dy, k * d);
    linBack(ops, W.outProj, G.outProj, dsum, S.ctx, k, dctx);
    const dq = allocLike(dy, k * d), dk = allocLike(dy, k * d), dv = allocLike(dy, k * d);
    attentionBackward(dctx, S.q, S.k, S.v, S.probs, S.off, S.start, k, d, H, dq, dk, dv);
    for (let i = 0; i < dq.length; i++) dq[i] *= scaleQ;
    const da = allocLike(dy, k * d);
    linBack(ops, W.qProj, G.qProj, dq, S.a, k, da);
    linBack(ops, W.kProj, G.kProj, dk, S.a, k, da);
    linBack(ops, W.vProj, G.vProj, dv, S.a, k, da);
    const dh = dsum.slice();
    if (pre) {
      layerNormBackward(
        da,
        S.ln1,
        W.selfAttnLayerNorm.w,
        k,
        d,
        dh,
        G.selfAttnLayerNorm.w,
        G.selfAttnLayerNorm.b,
      );
    } else axpy(dh, da);
    scatterRows(dh, d, S.idx, dx); // skipped columns keep their gradient: identity
  }
  // Embeddings: x = project_in(embed[ids]) + pos[p + 2]
  const de = m.projectIn ? allocLike(dx, N * dp) : dx;
  if (m.projectIn) linBack(ops, m.projectIn, g.projectIn!, dx, s.emb, N, de);
  for (let i = 0; i < N; i++) {
    const p = batch.positions[i];
    if (p < 0) continue;
    const po = (p + 2) * d, xo = i * d;
    for (let e = 0; e < d; e++) g.embedPositions[po + e] += dx[xo + e];
    const to = batch.tokens[i] * dp, eo = i * dp;
    for (let e = 0; e < dp; e++) g.embedTokens[to + e] += de[eo + e];
  }
}
