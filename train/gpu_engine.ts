/**
 * The WebGPU training engine: f32 master weights, gradients and AdamW moments live on the
 * device; a micro-batch is one submission (forward keeping activations, cross-entropy with
 * its gradient, LM-head and layer backward, embedding gradients) and one readback (the
 * NLLs); an optimiser step is one submission (global norm, clipping and AdamW without a
 * round trip) and one readback (the norm). It mirrors the CPU reference (`reference.ts`)
 * op for op, with the training kernels of `kernels/train.ts`.
 *
 * The LM head runs in chunks of target rows so a chunk's logits `[rows, V]` fit one
 * storage binding.
 *
 * @module
 */
import { type GpuContext, requestGpu } from "../kernels/device.ts";
import type { Binding } from "../kernels/encode.ts";
import { Recorder } from "../kernels/encode.ts";
import { ParamArena } from "../kernels/uniforms.ts";
import { segments, TrainKernels } from "../kernels/train.ts";
import type { TrainBatch } from "./batch.ts";
import { packActive, type PackedActive } from "../schedule/active.ts";
import type { StepReport, TrainEngine } from "./engine.ts";
import { type AdamState, type AdamWConfig, adamWConfig, type AdamWOptions } from "./optim.ts";
import { ParamSet } from "./param_set.ts";
import { buildOptTree, type OptTree, type ParamKinds, type ParamSite } from "../model/tree.ts";

/** Options of {@linkcode createGpuEngine}. */
export interface GpuEngineOptions {
  /** A device to use (default: a new one from `requestGpu()`). */
  gpu?: GpuContext;
  /** Compiled kernels to share (default: compiled for the device). */
  kernels?: TrainKernels;
  /** Largest logits chunk in bytes (default 64 MiB, capped by the binding limit). */
  maxLogitsBytes?: number;
}

interface LinBufs {
  w: GPUBuffer;
  b?: GPUBuffer;
  out: number;
  in: number;
}
interface LnBufs {
  w: GPUBuffer;
  b: GPUBuffer;
}
/** Device buffers of the parameter tree (model/tree.ts), one element type per kind. */
interface BufKinds extends ParamKinds {
  table: GPUBuffer;
  matrix: LinBufs;
  linear: LinBufs;
  layerNorm: LnBufs;
}
type ModelBufs = OptTree<BufKinds>;

/** Activations of one layer kept for the backward (GPU buffers, `m` active columns). */
interface LayerActs {
  m: number;
  tmax: number;
  idx: GPUBuffer;
  start: GPUBuffer;
  rowEnd: GPUBuffer;
  a: GPUBuffer;
  xhat1: GPUBuffer;
  rstd1: GPUBuffer;
  q: GPUBuffer;
  k: GPUBuffer;
  v: GPUBuffer;
  probs: GPUBuffer;
  ctx: GPUBuffer;
  xhat2: GPUBuffer;
  rstd2: GPUBuffer;
  a2: GPUBuffer;
  u: GPUBuffer;
  z: GPUBuffer;
}

/** What the forward leaves for the backward. */
interface ForwardOut {
  N: number;
  n: number;
  nll: GPUBuffer;
  acts: (LayerActs | undefined)[];
  emb: GPUBuffer;
  tgtIdx: GPUBuffer;
  hfl: GPUBuffer;
  xhatf: GPUBuffer;
  rstdf: GPUBuffer;
  dhp?: GPUBuffer;
}

const USAGE = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST;

/** The WebGPU implementation of {@linkcode TrainEngine}. */
export class GpuEngine implements TrainEngine {
  /** Always `"webgpu"`. */
  readonly name = "webgpu";
  /** The device. */
  readonly gpu: GpuContext;
  /** The kernels. */
  readonly kernels: TrainKernels;
  /** AdamW hyper-parameters. */
  readonly config: AdamWConfig;
  readonly #params: ParamSet; // host shapes (arrays not kept in sync; see snapshot)
  #p: GPUBuffer[];
  #g: GPUBuffer[];
  #m: GPUBuffer[];
  #v: GPUBuffer[];
  #step: number;
  #P: ModelBufs;
  #G: ModelBufs;
  #partials: GPUBuffer;
  #partialCount: number;
  #norm: GPUBuffer;
  #rec: Recorder;
  #maxLogitsBytes: number;
  #temps: GPUBuffer[] = [];
  #ownsKernels: boolean;
  #ownsDevice: boolean;

  /** Use {@linkcode createGpuEngine}. */
  constructor(
    gpu: GpuContext,
    kernels: TrainKernels,
    params: ParamSet,
    options: AdamWOptions,
    adam: AdamState | undefined,
    maxLogitsBytes: number,
    ownsKernels: boolean,
    ownsDevice = false,
  ) {
    if (params.precision !== "f32") throw new TypeError("GpuEngine trains f32 master weights");
    this.gpu = gpu;
    this.kernels = kernels;
    this.config = adamWConfig(options);
    this.#params = params;
    this.#ownsKernels = ownsKernels;
    this.#ownsDevice = ownsDevice;
    const make = (label: string, data?: Float32Array, size?: number) => {
      const n = data ? data.length : size!;
      const buf = gpu.device.createBuffer({ label, size: Math.max(16, n * 4), usage: USAGE });
      if (data) gpu.device.queue.writeBuffer(buf, 0, data as Float32Array<ArrayBuffer>);
      return buf;
    };
    const specs = params.specs;
    this.#p = specs.map((s, i) => make(s.name, params.arrays[i] as Float32Array));
    this.#g = specs.map((s) => make(`grad ${s.name}`, undefined, s.size));
    this.#m = specs.map((s, i) =>
      adam
        ? make(`exp_avg ${s.name}`, adam.m.arrays[i] as Float32Array)
        : make(`exp_avg ${s.name}`, undefined, s.size)
    );
    this.#v = specs.map((s, i) =>
      adam
        ? make(`exp_avg_sq ${s.name}`, adam.v.arrays[i] as Float32Array)
        : make(`exp_avg_sq ${s.name}`, undefined, s.size)
    );
    this.#step = adam?.step ?? 0;
    this.#P = this.#view(this.#p);
    this.#G = this.#view(this.#g);
    this.#partialCount = specs.reduce((a, s) => a + Math.ceil(s.size / 2048), 0);
    this.#partials = make("gradient norm partials", undefined, this.#partialCount);
    this.#norm = make("gradient norm", undefined, 2);
    this.#rec = new Recorder(gpu, new ParamArena(gpu, 1024));
    this.#maxLogitsBytes = Math.min(maxLogitsBytes, gpu.limits.maxStorageBufferBindingSize);
  }

  #view(bufs: GPUBuffer[]): ModelBufs {
    const index = new Map(this.#params.specs.map((s, i) => [s.name, i]));
    const get = (n: string) => bufs[index.get(n)!];
    const lin = (s: ParamSite): LinBufs => ({
      w: get(`${s.source}.weight`),
      b: index.has(`${s.source}.bias`) ? get(`${s.source}.bias`) : undefined,
      out: s.shape[0],
      in: s.shape[1],
    });
    return buildOptTree<BufKinds>(this.#params.config, {
      table: (s) => get(`${s.source}.weight`),
      matrix: lin,
      linear: lin,
      layerNorm: (s) => ({ w: get(`${s.name}.weight`), b: get(`${s.name}.bias`) }),
    });
  }

  /** A temporary f32 buffer of `n` elements, freed after the current submission. */
  #tmp(n: number, label = "activation"): GPUBuffer {
    const b = this.gpu.device.createBuffer({ label, size: Math.max(16, n * 4), usage: USAGE });
    this.#temps.push(b);
    return b;
  }

  /** A temporary buffer holding `data` (u32 or i32 indices, or f32). */
  #upload(data: Uint32Array | Int32Array | Float32Array, label = "indices"): GPUBuffer {
    const b = this.gpu.device.createBuffer({
      label,
      size: Math.max(16, data.byteLength),
      usage: USAGE,
    });
    this.gpu.device.queue.writeBuffer(b, 0, data as Uint32Array<ArrayBuffer>);
    this.#temps.push(b);
    return b;
  }

  #freeTemps(): void {
    for (const b of this.#temps.splice(0)) b.destroy();
  }

  #copy(src: GPUBuffer, srcOff: number, dst: GPUBuffer, dstOff: number, bytes: number): void {
    if (bytes === 0) return;
    this.#rec.foreign(
      "train_copy",
      (enc) => enc.copyBufferToBuffer(src, srcOff, dst, dstOff, bytes),
    );
  }

  #clear(buf: GPUBuffer): void {
    this.#rec.foreign("train_copy", (enc) => enc.clearBuffer(buf));
  }

  /** `y[m, out] = (x W^T + b) * alpha`. */
  #linear(l: LinBufs, x: Binding, m: number, alpha = 1): GPUBuffer {
    const y = this.#tmp(m * l.out);
    this.kernels.matmul(this.#rec, {
      kind: "NT",
      a: x,
      b: l.w,
      c: y,
      m,
      k: l.in,
      n: l.out,
      bias: l.b,
      alpha,
    });
    return y;
  }

  /** Weight and bias gradients of a linear map; `dx` written (or added) when given. */
  #linearBack(
    p: LinBufs,
    g: LinBufs,
    dy: GPUBuffer,
    x: GPUBuffer,
    m: number,
    dx?: GPUBuffer,
    accumulateDx = false,
  ): void {
    const k = this.kernels, rec = this.#rec;
    k.matmul(rec, { kind: "TN", a: dy, b: x, c: g.w, m: p.out, k: m, n: p.in, accumulate: true });
    if (g.b) k.biasGrad(rec, { dy, db: g.b, m, n: p.out });
    if (dx) {
      k.matmul(rec, {
        kind: "NN",
        a: dy,
        b: p.w,
        c: dx,
        m,
        k: p.out,
        n: p.in,
        accumulate: accumulateDx,
      });
    }
  }

  /** Records the forward of a batch; returns what the backward needs. */
  #forward(batch: TrainBatch, train: boolean, scale: number): ForwardOut {
    const c = this.#params.config, k = this.kernels, rec = this.#rec, P = this.#P;
    const d = c.hiddenSize,
      dp = c.wordEmbedProjDim,
      V = c.vocabSize,
      H = c.numAttentionHeads,
      f = c.ffnDim;
    const N = batch.rows * batch.length;
    for (let i = 0; i < N; i++) {
      if (batch.positions[i] < 0) continue;
      const t = batch.tokens[i];
      if (!(t >= 0 && t < V)) {
        throw new RangeError(
          `token id ${t} at row ${Math.floor(i / batch.length)}, column ${i % batch.length} ` +
            `is outside the vocabulary 0..${V - 1}`,
        );
      }
      if (batch.positions[i] >= c.maxPositionEmbeddings) {
        throw new RangeError(
          `row ${Math.floor(i / batch.length)} has ${batch.positions[i] + 1} tokens, more than ` +
            `the position table (max_position_embeddings = ${c.maxPositionEmbeddings})`,
        );
      }
    }
    const tokens = this.#upload(Uint32Array.from(batch.tokens, (t) => Math.max(0, t)));
    const positions = this.#upload(batch.positions);
    const emb = this.#tmp(N * dp);
    k.embedForward(rec, {
      mode: "tokens",
      table: P.embedTokens,
      tokens,
      positions,
      out: emb,
      n: N,
      width: dp,
    });
    let x: GPUBuffer;
    if (P.projectIn) x = this.#linear(P.projectIn, emb, N);
    else {
      x = this.#tmp(N * d);
      this.#copy(emb, 0, x, 0, N * d * 4);
    }
    k.embedForward(rec, {
      mode: "positions",
      table: P.embedPositions,
      tokens,
      positions,
      out: x,
      n: N,
      width: d,
    });
    const pre = c.doLayerNormBefore;
    const scaleQ = (d / H) ** -0.5;
    const acts: (LayerActs | undefined)[] = [];
    for (let l = 0; l < c.numHiddenLayers; l++) {
      const W = P.layers[l];
      const cols = activeColumns(batch, l);
      const m = cols.idx.length;
      if (m === 0) {
        acts.push(undefined);
        continue;
      }
      const idx = this.#upload(cols.idx),
        start = this.#upload(cols.start),
        rowEnd = this.#upload(cols.rowEnd);
      const h = this.#tmp(m * d);
      k.gatherRows(rec, { src: x, idx, out: h, n: m, width: d });
      const xhat1 = this.#tmp(m * d), rstd1 = this.#tmp(m);
      let a = h;
      if (pre) {
        a = this.#tmp(m * d);
        k.layerNormForward(rec, {
          x: h,
          w: W.selfAttnLayerNorm.w,
          b: W.selfAttnLayerNorm.b,
          y: a,
          xhat: xhat1,
          rstd: rstd1,
          m,
          d,
        });
      }
      const q = this.#linear(W.qProj, a, m, scaleQ);
      const kk = this.#linear(W.kProj, a, m);
      const v = this.#linear(W.vProj, a, m);
      const probs = this.#tmp(m * H * cols.tmax), ctx = this.#tmp(m * d);
      k.attentionForward(rec, { q, k: kk, v, start, probs, ctx, m, d, heads: H, tmax: cols.tmax });
      const r1 = this.#linear(W.outProj, ctx, m);
      k.axpy(rec, { x: h, y: r1, n: m * d });
      let res1 = r1;
      if (!pre) {
        res1 = this.#tmp(m * d);
        k.layerNormForward(rec, {
          x: r1,
          w: W.selfAttnLayerNorm.w,
          b: W.selfAttnLayerNorm.b,
          y: res1,
          xhat: xhat1,
          rstd: rstd1,
          m,
          d,
        });
      }
      const xhat2 = this.#tmp(m * d), rstd2 = this.#tmp(m);
      let a2 = res1;
      if (pre) {
        a2 = this.#tmp(m * d);
        k.layerNormForward(rec, {
          x: res1,
          w: W.finalLayerNorm.w,
          b: W.finalLayerNorm.b,
          y: a2,
          xhat: xhat2,
          rstd: rstd2,
          m,
          d,
        });
      }
      const u = this.#linear(W.fc1, a2, m);
      const z = this.#tmp(m * f);
      k.relu(rec, { u, out: z, n: m * f });
      const out = this.#linear(W.fc2, z, m);
      k.axpy(rec, { x: res1, y: out, n: m * d });
      let y = out;
      if (!pre) {
        y = this.#tmp(m * d);
        k.layerNormForward(rec, {
          x: out,
          w: W.finalLayerNorm.w,
          b: W.finalLayerNorm.b,
          y,
          xhat: xhat2,
          rstd: rstd2,
          m,
          d,
        });
      }
      k.scatterRows(rec, { rows: y, idx, dst: x, n: m, width: d });
      acts.push({
        m,
        tmax: cols.tmax,
        idx,
        start,
        rowEnd,
        a,
        xhat1,
        rstd1,
        q,
        k: kk,
        v,
        probs,
        ctx,
        xhat2,
        rstd2,
        a2,
        u,
        z,
      });
    }
    // Head over the target columns, in chunks of rows whose logits fit one binding.
    const tgtPos: number[] = [], tgt: number[] = [];
    for (let i = 0; i < N; i++) {
      if (batch.targets[i] < 0) continue;
      const t = batch.targets[i];
      if (!(t < V)) throw new RangeError(`target ${t} is outside the vocabulary 0..${V - 1}`);
      tgtPos.push(i);
      tgt.push(t);
    }
    const n = tgtPos.length;
    const nll = this.#tmp(n, "nll");
    const tgtIdx = this.#upload(Uint32Array.from(tgtPos));
    const hf = this.#tmp(n * d);
    k.gatherRows(rec, { src: x, idx: tgtIdx, out: hf, n, width: d });
    let hfl = hf;
    const xhatf = this.#tmp(n * d), rstdf = this.#tmp(n);
    if (P.finalLayerNorm) {
      hfl = this.#tmp(n * d);
      k.layerNormForward(rec, {
        x: hf,
        w: P.finalLayerNorm.w,
        b: P.finalLayerNorm.b,
        y: hfl,
        xhat: xhatf,
        rstd: rstdf,
        m: n,
        d,
      });
    }
    const hp = P.projectOut ? this.#linear(P.projectOut, hfl, n) : hfl;
    const dhp = train ? this.#tmp(n * dp) : undefined;
    const rows = Math.max(1, Math.min(n, Math.floor(this.#maxLogitsBytes / (V * 4))));
    const logits = this.#tmp(Math.min(n, rows) * V, "logits chunk");
    const hpChunk = this.#tmp(Math.min(n, rows) * dp), dhpChunk = this.#tmp(Math.min(n, rows) * dp);
    for (let r0 = 0; r0 < n; r0 += rows) {
      const nc = Math.min(rows, n - r0);
      this.#copy(hp, r0 * dp * 4, hpChunk, 0, nc * dp * 4);
      const tgtChunk = this.#upload(Uint32Array.from(tgt.slice(r0, r0 + nc)));
      const nllChunk = this.#tmp(nc, "nll chunk");
      k.matmul(rec, { kind: "NT", a: hpChunk, b: P.lmHead.w, c: logits, m: nc, k: dp, n: V });
      k.crossEntropy(rec, {
        targets: tgtChunk,
        logits,
        nll: nllChunk,
        rows: nc,
        vocab: V,
        train,
        scale,
      });
      this.#copy(nllChunk, 0, nll, r0 * 4, nc * 4);
      if (train) {
        // dhp = dlogits · head, dhead += dlogitsᵀ · hp (TN: [V, dp])
        k.matmul(rec, { kind: "NN", a: logits, b: P.lmHead.w, c: dhpChunk, m: nc, k: V, n: dp });
        k.matmul(rec, {
          kind: "TN",
          a: logits,
          b: hpChunk,
          c: this.#G.lmHead.w,
          m: V,
          k: nc,
          n: dp,
          accumulate: true,
        });
        this.#copy(dhpChunk, 0, dhp!, r0 * dp * 4, nc * dp * 4);
      }
    }
    return { N, n, nll, acts, emb, tgtIdx, hfl, xhatf, rstdf, dhp };
  }

  /** Records the backward after {@linkcode GpuEngine.#forward} with `train`. */
  #backward(batch: TrainBatch, s: ForwardOut): void {
    const c = this.#params.config, k = this.kernels, rec = this.#rec, P = this.#P, G = this.#G;
    const d = c.hiddenSize, dp = c.wordEmbedProjDim, H = c.numAttentionHeads, f = c.ffnDim;
    const { N, n } = s;
    let dhf = s.dhp!;
    if (P.projectOut) {
      dhf = this.#tmp(n * d);
      this.#linearBack(P.projectOut, G.projectOut!, s.dhp!, s.hfl, n, dhf);
    }
    if (P.finalLayerNorm) {
      const dh = this.#tmp(n * d);
      k.layerNormBackward(rec, {
        dy: dhf,
        xhat: s.xhatf,
        rstd: s.rstdf,
        w: P.finalLayerNorm.w,
        dx: dh,
        m: n,
        d,
        accumulate: false,
      });
      k.lnParamGrads(rec, {
        dy: dhf,
        xhat: s.xhatf,
        dw: G.finalLayerNorm!.w,
        db: G.finalLayerNorm!.b,
        m: n,
        d,
      });
      dhf = dh;
    }
    const dx = this.#tmp(N * d, "residual gradient");
    this.#clear(dx);
    k.scatterRows(rec, { rows: dhf, idx: s.tgtIdx, dst: dx, n, width: d });
    const pre = c.doLayerNormBefore;
    for (let l = c.numHiddenLayers - 1; l >= 0; l--) {
      const A = s.acts[l];
      if (!A) continue;
      const W = P.layers[l], Gl = G.layers[l], m = A.m;
      const dy = this.#tmp(m * d);
      k.gatherRows(rec, { src: dx, idx: A.idx, out: dy, n: m, width: d });
      let dres1 = dy;
      if (!pre) {
        dres1 = this.#tmp(m * d);
        k.layerNormBackward(rec, {
          dy,
          xhat: A.xhat2,
          rstd: A.rstd2,
          w: W.finalLayerNorm.w,
          dx: dres1,
          m,
          d,
          accumulate: false,
        });
        k.lnParamGrads(rec, {
          dy,
          xhat: A.xhat2,
          dw: Gl.finalLayerNorm.w,
          db: Gl.finalLayerNorm.b,
          m,
          d,
        });
      }
      const dz = this.#tmp(m * f);
      this.#linearBack(W.fc2, Gl.fc2, dres1, A.z, m, dz);
      k.reluBackward(rec, { u: A.u, dz, n: m * f });
      const da2 = this.#tmp(m * d);
      this.#linearBack(W.fc1, Gl.fc1, dz, A.a2, m, da2);
      const dr1 = this.#tmp(m * d);
      this.#copy(dres1, 0, dr1, 0, m * d * 4);
      if (pre) {
        k.layerNormBackward(rec, {
          dy: da2,
          xhat: A.xhat2,
          rstd: A.rstd2,
          w: W.finalLayerNorm.w,
          dx: dr1,
          m,
          d,
          accumulate: true,
        });
        k.lnParamGrads(rec, {
          dy: da2,
          xhat: A.xhat2,
          dw: Gl.finalLayerNorm.w,
          db: Gl.finalLayerNorm.b,
          m,
          d,
        });
      } else {
        k.axpy(rec, { x: da2, y: dr1, n: m * d });
      }
      let dsum = dr1;
      if (!pre) {
        dsum = this.#tmp(m * d);
        k.layerNormBackward(rec, {
          dy: dr1,
          xhat: A.xhat1,
          rstd: A.rstd1,
          w: W.selfAttnLayerNorm.w,
          dx: dsum,
          m,
          d,
          accumulate: false,
        });
        k.lnParamGrads(rec, {
          dy: dr1,
          xhat: A.xhat1,
          dw: Gl.selfAttnLayerNorm.w,
          db: Gl.selfAttnLayerNorm.b,
          m,
          d,
        });
      }
      const dctx = this.#tmp(m * d);
      this.#linearBack(W.outProj, Gl.outProj, dsum, A.ctx, m, dctx);
      const ds = this.#tmp(m * H * A.tmax);
      const dq = this.#tmp(m * d), dk = this.#tmp(m * d), dv = this.#tmp(m * d);
      k.attentionBackward(rec, {
        dctx,
        q: A.q,
        k: A.k,
        v: A.v,
        probs: A.probs,
        start: A.start,
        rowEnd: A.rowEnd,
        ds,
        dq,
        dk,
        dv,
        m,
        d,
        heads: H,
        tmax: A.tmax,
        scale: (d / H) ** -0.5,
      });
      const da = this.#tmp(m * d);
      this.#linearBack(W.qProj, Gl.qProj, dq, A.a, m, da, false);
      this.#linearBack(W.kProj, Gl.kProj, dk, A.a, m, da, true);
      this.#linearBack(W.vProj, Gl.vProj, dv, A.a, m, da, true);
      const dh = this.#tmp(m * d);
      this.#copy(dsum, 0, dh, 0, m * d * 4);
      if (pre) {
        k.layerNormBackward(rec, {
          dy: da,
          xhat: A.xhat1,
          rstd: A.rstd1,
          w: W.selfAttnLayerNorm.w,
          dx: dh,
          m,
          d,
          accumulate: true,
        });
        k.lnParamGrads(rec, {
          dy: da,
          xhat: A.xhat1,
          dw: Gl.selfAttnLayerNorm.w,
          db: Gl.selfAttnLayerNorm.b,
          m,
          d,
        });
      } else {
        k.axpy(rec, { x: da, y: dh, n: m * d });
      }
      k.scatterRows(rec, { rows: dh, idx: A.idx, dst: dx, n: m, width: d }); // skipped columns keep theirs: identity
    }
    // Embeddings: x = project_in(embed[ids]) + pos[p + 2]; sums per row id, no atomics
    let de = dx;
    if (P.projectIn) {
      de = this.#tmp(N * dp);
      this.#linearBack(P.projectIn, G.projectIn!, dx, s.emb, N, de);
    }
    const real = (i: number) => batch.positions[i] >= 0;
    const ts = segments(batch.tokens, real);
    k.segmentSum(rec, {
      ids: this.#upload(ts.ids),
      seg: this.#upload(ts.seg),
      order: this.#upload(ts.order),
      src: de,
      dst: G.embedTokens,
      units: ts.ids.length,
      width: dp,
    });
    const ps = segments(Int32Array.from(batch.positions, (p) => p + 2), real);
    k.segmentSum(rec, {
      ids: this.#upload(ps.ids),
      seg: this.#upload(ps.seg),
      order: this.#upload(ps.order),
      src: dx,
      dst: G.embedPositions,
      units: ps.ids.length,
      width: d,
    });
  }

  async #readNll(nll: GPUBuffer, n: number): Promise<Float64Array> {
    const staging = this.gpu.device.createBuffer({
      size: Math.max(16, n * 4),
      usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
    });
    const enc = this.gpu.device.createCommandEncoder();
    if (n > 0) enc.copyBufferToBuffer(nll, 0, staging, 0, n * 4);
    this.gpu.device.queue.submit([enc.finish()]);
    await staging.mapAsync(GPUMapMode.READ);
    const out = Float64Array.from(new Float32Array(staging.getMappedRange().slice(0, n * 4)));
    staging.unmap();
    staging.destroy();
    return out;
  }

  #begin(batch: TrainBatch): void {
    // generous: about 60 dispatches per layer and a few per logits chunk
    this.#rec.arena.reserve(64 * (this.#params.config.numHiddenLayers + 2) + 8 * batch.targetCount);
    this.#rec.begin("train");
  }

  /** Forward and backward of one batch on the device; returns Σ NLL. */
  async accumulate(batch: TrainBatch, scale: number): Promise<number> {
    try {
      this.#begin(batch);
      const s = this.#forward(batch, true, scale);
      this.#backward(batch, s);
      this.gpu.device.queue.submit([this.#rec.finish()]);
      const nll = await this.#readNll(s.nll, s.n);
      let sum = 0;
      for (const x of nll) sum += x;
      return sum;
    } finally {
      this.#freeTemps();
    }
  }

  /** Per-target NLL of a batch (forward only). */
  async score(batch: TrainBatch): Promise<Float64Array> {
    try {
      this.#begin(batch);
      const s = this.#forward(batch, false, 1);
      this.gpu.device.queue.submit([this.#rec.finish()]);
      return await this.#readNll(s.nll, s.n);
    } finally {
      this.#freeTemps();
    }
  }

  /** Global norm, clipping and AdamW on the device, then zeroed gradients. */
  async step(lr: number, clipNorm: number): Promise<StepReport> {
    const k = this.kernels, rec = this.#rec, cfg = this.config;
    this.#step++;
    const t = this.#step;
    const specs = this.#params.specs;
    rec.arena.reserve(2 * specs.length + 8);
    rec.begin("optimizer step");
    let off = 0;
    specs.forEach((
      s,
      i,
    ) => (off += k.sumSquares(rec, {
      x: this.#g[i],
      partials: this.#partials,
      n: s.size,
      offset: off,
    })));
    k.normFinalize(rec, {
      partials: this.#partials,
      out: this.#norm,
      count: off,
      maxNorm: clipNorm,
    });
    const h = {
      beta1: cfg.beta1,
      beta2: cfg.beta2,
      stepSize: lr / (1 - cfg.beta1 ** t),
      bc2Sqrt: Math.sqrt(1 - cfg.beta2 ** t),
      eps: cfg.eps,
    };
    specs.forEach((s, i) => {
      const decay = s.decay && cfg.weightDecay > 0 ? 1 - lr * cfg.weightDecay : 1;
      k.adamw(rec, {
        grad: this.#g[i],
        norm: this.#norm,
        param: this.#p[i],
        m: this.#m[i],
        v: this.#v[i],
        n: s.size,
        hyper: {
          ...h,
          decay,
        },
      });
    });
    for (const g of this.#g) this.#clear(g);
    const staging = this.gpu.device.createBuffer({
      size: 16,
      usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
    });
    rec.foreign("train_copy", (enc) => enc.copyBufferToBuffer(this.#norm, 0, staging, 0, 8));
    this.gpu.device.queue.submit([rec.finish()]);
    await staging.mapAsync(GPUMapMode.READ);
    const [norm, clip] = new Float32Array(staging.getMappedRange().slice(0, 8));
    staging.unmap();
    staging.destroy();
    return { gradNorm: norm, clip };
  }

  async #readAll(bufs: GPUBuffer[]): Promise<Float32Array[]> {
    const specs = this.#params.specs;
    const total = specs.reduce((a, s) => a + s.size, 0);
    const staging = this.gpu.device.createBuffer({
      size: total * 4,
      usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
    });
    const enc = this.gpu.device.createCommandEncoder();
    let off = 0;
    specs.forEach((s, i) => {
      enc.copyBufferToBuffer(bufs[i], 0, staging, off * 4, s.size * 4);
      off += s.size;
    });
    this.gpu.device.queue.submit([enc.finish()]);
    await staging.mapAsync(GPUMapMode.READ);
    const all = new Float32Array(staging.getMappedRange().slice(0));
    staging.unmap();
    staging.destroy();
    off = 0;
    return specs.map((s) => {
      const a = all.slice(off, off + s.size);
      off += s.size;
      return a;
    });
  }

  /** Reads the gradients accumulated so far (tests). */
  async gradients(): Promise<ParamSet> {
    return new ParamSet(this.#params.config, "f32", await this.#readAll(this.#g));
  }

  /** Reads weights and AdamW state back to the host. */
  async snapshot(): Promise<{ params: ParamSet; adam: AdamState }> {
    const cfg = this.#params.config;
    const [p, m, v] = [
      await this.#readAll(this.#p),
      await this.#readAll(this.#m),
      await this.#readAll(this.#v),
    ];
    return {
      params: new ParamSet(cfg, "f32", p),
      adam: { m: new ParamSet(cfg, "f32", m), v: new ParamSet(cfg, "f32", v), step: this.#step },
    };
  }

  /** Frees every device buffer, and the device when the engine requested it itself. */
  dispose(): void {
    for (const b of [...this.#p, ...this.#g, ...this.#m, ...this.#v, this.#partials, this.#norm]) {
      b.destroy();
    }
    this.#rec.arena.destroy();
    if (this.#ownsKernels) this.kernels.destroy();
    if (this.#ownsDevice) this.gpu.device.destroy();
  }
}

/** Active columns of layer `l`, packed, with each one's row start and end and the longest row. */
function activeColumns(batch: TrainBatch, l: number): PackedActive {
  const N = batch.rows * batch.length;
  return packActive(batch.active.subarray(l * N, (l + 1) * N), batch.rows, batch.length);
}

/**
 * Puts a model's f32 master weights (and AdamW state, when resuming) on a WebGPU device.
 *
 * @throws {GpuError} when no adapter exists or a kernel fails to compile.
 *
 * @example
 * ```ts
 * import type { ParamSet } from "./param_set.ts";
 * import type { TrainBatch } from "./batch.ts";
 * declare const params: ParamSet, batch: TrainBatch; // see CpuEngine's example
 * const engine = await createGpuEngine(params, { weightDecay: 0.01 });
 * const loss = await engine.accumulate(batch, 1 / batch.targetCount);
 * await engine.step(1e-4, 1);
 * ```
 */
export async function createGpuEngine(
  params: ParamSet,
  options: AdamWOptions = {},
  adam?: AdamState,
  engineOptions: GpuEngineOptions = {},
): Promise<GpuEngine> {
  const gpu = engineOptions.gpu ?? await requestGpu();
  const kernels = engineOptions.kernels ?? await TrainKernels.create(gpu);
  return new GpuEngine(
    gpu,
    kernels,
    params,
    options,
    adam,
    engineOptions.maxLogitsBytes ?? 64 * 1024 * 1024,
    !engineOptions.kernels,
    !engineOptions.gpu,
  );
}
