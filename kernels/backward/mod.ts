/**
 * WGSL kernels of training: the forward ops that keep activations and the gradients of
 * everything OPT's forward uses (matrix products for both operands, LayerNorm, causal
 * attention, ReLU, bias, residual, token and position embeddings without float atomics,
 * cross-entropy over the vocabulary), the global gradient norm and AdamW. Each `.wgsl`
 * file here says what it computes in its header comment.
 *
 * {@linkcode TrainKernels} compiles them once per device and records dispatches into a
 * {@linkcode Recorder} (parameters through its arena, consecutive dispatches in one pass).
 * All buffers are f32 (`u32`/`i32` for indices) storage buffers; shapes in the method docs.
 * Sizes may be anything (not multiples of a tile); large element counts use a 2D grid.
 *
 * @example
 * ```ts
 * import { requestGpu } from "../device.ts";
 * import { ParamArena } from "../params.ts";
 * import { Recorder } from "../encode.ts";
 * import { TrainKernels } from "./mod.ts";
 * const gpu = await requestGpu();
 * const k = await TrainKernels.create(gpu);
 * const rec = new Recorder(gpu, new ParamArena(gpu));
 * rec.begin();
 * // k.matmul(rec, "NT", a, b, c, m, kk, n);   c[m, n] = a[m, kk] · b[n, kk]^T
 * gpu.device.queue.submit([rec.finish()]);
 * ```
 *
 * @module
 */
import { type BindingKind, createKernel, type GpuContext, type Kernel } from "../device.ts";
import type { Binding, Recorder } from "../encode.ts";

import matmulCode from "./matmul.wgsl" with { type: "text" };
import lnForwardCode from "./layernorm_forward.wgsl" with { type: "text" };
import lnBackwardCode from "./layernorm_backward.wgsl" with { type: "text" };
import lnParamsCode from "./ln_param_grads.wgsl" with { type: "text" };
import biasGradCode from "./bias_grad.wgsl" with { type: "text" };
import attnForwardCode from "./attention_forward.wgsl" with { type: "text" };
import attnBackQCode from "./attention_backward_q.wgsl" with { type: "text" };
import attnBackKvCode from "./attention_backward_kv.wgsl" with { type: "text" };
import gatherCode from "./gather_rows.wgsl" with { type: "text" };
import scatterCode from "./scatter_rows.wgsl" with { type: "text" };
import axpyCode from "./axpy.wgsl" with { type: "text" };
import reluCode from "./relu.wgsl" with { type: "text" };
import embedCode from "./embed_forward.wgsl" with { type: "text" };
import segmentCode from "./segment_sum.wgsl" with { type: "text" };
import ceCode from "./cross_entropy.wgsl" with { type: "text" };
import sumsqCode from "./sumsq.wgsl" with { type: "text" };
import normCode from "./norm_finalize.wgsl" with { type: "text" };
import adamwCode from "./adamw.wgsl" with { type: "text" };

/** Layout of a matrix product (see `matmul.wgsl`). */
export type MatmulKind = "NT" | "NN" | "TN";

/** Options of {@linkcode TrainKernels.matmul}. */
export interface MatmulOptions {
  /** `[N]` bias added to every row. */
  bias?: GPUBuffer;
  /** Add into `c` instead of overwriting it. */
  accumulate?: boolean;
  /** Factor on the product plus bias (default 1). */
  alpha?: number;
}

const INDEX: Record<MatmulKind, [string, string]> = {
  NT: ["i * p.k + k", "j * p.k + k"],
  NN: ["i * p.k + k", "k * p.n + j"],
  TN: ["k * p.m + i", "k * p.n + j"],
};

/** Elements per 2D-grid row: x groups (at most 65535) times the workgroup size. */
function grid(n: number, wg: number): { groups: [number, number]; stride: number } {
  const total = Math.max(1, Math.ceil(n / wg));
  const x = Math.min(total, 65535);
  return { groups: [x, Math.ceil(total / x)], stride: x * wg };
}

/** Workgroups for one workgroup per row (2D past 65535 rows, as the kernels expect). */
function rowGroups(rows: number): [number, number] {
  return rows <= 65535 ? [rows, 1] : [65535, Math.ceil(rows / 65535)];
}

const R: BindingKind = "read", S: BindingKind = "storage", U: BindingKind = "uniform";

/**
 * The compiled training kernels of one device.
 *
 * @example
 * ```ts
 * import { requestGpu } from "../device.ts";
 * const kernels = await TrainKernels.create(await requestGpu());
 * ```
 */
export class TrainKernels {
  /** The device. */
  readonly gpu: GpuContext;
  #k: Record<string, Kernel>;
  #dummy: GPUBuffer;

  private constructor(gpu: GpuContext, kernels: Record<string, Kernel>) {
    this.gpu = gpu;
    this.#k = kernels;
    this.#dummy = gpu.device.createBuffer({
      label: "unused binding",
      size: 16,
      usage: GPUBufferUsage.STORAGE,
    });
  }

  /**
   * Compiles every training kernel on a device.
   *
   * @throws {GpuError} naming the kernel when one fails to compile.
   */
  static async create(gpu: GpuContext): Promise<TrainKernels> {
    const specs: [string, string, BindingKind[]][] = [
      ...(["NT", "NN", "TN"] as const).map((kind): [string, string, BindingKind[]] => [
        `train_matmul_${kind}`,
        matmulCode.replace("A_INDEX", INDEX[kind][0]).replace("B_INDEX", INDEX[kind][1]),
        [U, R, R, R, S],
      ]),
      ["train_layernorm_forward", lnForwardCode, [U, R, R, R, S, S, S]],
      ["train_layernorm_backward", lnBackwardCode, [U, R, R, R, R, S]],
      ["train_ln_param_grads", lnParamsCode, [U, R, R, S, S]],
      ["train_bias_grad", biasGradCode, [U, R, S]],
      ["train_attention_forward", attnForwardCode, [U, R, R, R, R, S, S]],
      ["train_attention_backward_q", attnBackQCode, [U, R, R, R, R, R, S, S]],
      ["train_attention_backward_kv", attnBackKvCode, [U, R, R, R, R, R, R, S, S]],
      ["train_gather_rows", gatherCode, [U, R, R, S]],
      ["train_scatter_rows", scatterCode, [U, R, R, S]],
      ["train_axpy", axpyCode, [U, R, S]],
      ["train_relu", reluCode, [U, R, S]],
      ["train_embed_forward", embedCode, [U, R, R, R, S]],
      ["train_segment_sum", segmentCode, [U, R, R, R, R, S]],
      ["train_cross_entropy", ceCode, [U, R, S, S]],
      ["train_sumsq", sumsqCode, [U, R, S]],
      ["train_norm_finalize", normCode, [U, R, S]],
      ["train_adamw", adamwCode, [U, R, R, S, S, S]],
    ];
    const compiled = await Promise.all(
      specs.map(([name, code, b]) => createKernel(gpu, name, code, b)),
    );
    return new TrainKernels(gpu, Object.fromEntries(compiled.map((k) => [k.name, k])));
  }

  /** Frees the kernels' own buffer. */
  destroy(): void {
    this.#dummy.destroy();
  }

  /**
   * `c[M, N] (+)= alpha · (A · B + bias[N])` with `A`, `B` laid out as `kind` says:
   * NT `a[M, K]`, `b[N, K]` (forward); NN `a[M, K]`, `b[K, N]` (input gradient `dy · W`);
   * TN `a[K, M]`, `b[K, N]` (weight gradient `dyᵀ · x`). `c` must not alias `a` or `b`.
   */
  matmul(
    rec: Recorder,
    kind: MatmulKind,
    a: Binding,
    b: Binding,
    c: Binding,
    m: number,
    k: number,
    n: number,
    o: MatmulOptions = {},
  ): void {
    if (m === 0 || n === 0) return;
    rec.dispatch(
      this.#k[`train_matmul_${kind}`],
      [a, b, o.bias ?? this.#dummy, c],
      [m, k, n, o.accumulate ? 1 : 0, o.bias ? 1 : 0],
      [o.alpha ?? 1],
      [Math.ceil(n / 32), Math.ceil(m / 32)],
      "train_matmul",
    );
  }

  /** LayerNorm of `x[M, D]`: writes `y`, `xhat` `[M, D]` and `rstd[M]`. */
  layerNormForward(
    rec: Recorder,
    x: Binding,
    w: Binding,
    b: Binding,
    y: Binding,
    xhat: Binding,
    rstd: Binding,
    m: number,
    d: number,
    eps = 1e-5,
  ): void {
    if (m === 0) return;
    rec.dispatch(
      this.#k.train_layernorm_forward,
      [x, w, b, y, xhat, rstd],
      [m, d],
      [eps],
      rowGroups(m),
      "train_layernorm",
    );
  }

  /** LayerNorm input gradient: `dx[M, D]` written (or added with `accumulate`). */
  layerNormBackward(
    rec: Recorder,
    dy: Binding,
    xhat: Binding,
    rstd: Binding,
    w: Binding,
    dx: Binding,
    m: number,
    d: number,
    accumulate: boolean,
  ): void {
    if (m === 0) return;
    rec.dispatch(
      this.#k.train_layernorm_backward,
      [dy, xhat, rstd, w, dx],
      [m, d, accumulate ? 1 : 0],
      [],
      rowGroups(m),
      "train_layernorm",
    );
  }

  /** LayerNorm parameter gradients: `dw[D] += Σ dy·xhat`, `db[D] += Σ dy` over `M` rows. */
  lnParamGrads(
    rec: Recorder,
    dy: Binding,
    xhat: Binding,
    dw: Binding,
    db: Binding,
    m: number,
    d: number,
  ): void {
    if (m === 0) return;
    rec.dispatch(
      this.#k.train_ln_param_grads,
      [dy, xhat, dw, db],
      [m, d],
      [],
      [Math.ceil(d / 64)],
      "train_layernorm",
    );
  }

  /** Bias gradient: `db[N] += Σ_i dy[i, :]` over `M` rows. */
  biasGrad(rec: Recorder, dy: Binding, db: Binding, m: number, n: number): void {
    if (m === 0) return;
    rec.dispatch(this.#k.train_bias_grad, [dy, db], [m, n], [], [Math.ceil(n / 64)], "train_bias");
  }

  /**
   * Causal attention over packed rows: `q, k, v[M, D]`, `start[M]` (u32); writes
   * `probs[M, H, tmax]` and `ctx[M, D]`.
   */
  attentionForward(
    rec: Recorder,
    q: Binding,
    k: Binding,
    v: Binding,
    start: Binding,
    probs: Binding,
    ctx: Binding,
    m: number,
    d: number,
    heads: number,
    tmax: number,
  ): void {
    if (m === 0) return;
    rec.dispatch(
      this.#k.train_attention_forward,
      [q, k, v, start, probs, ctx],
      [m, d, heads, tmax],
      [],
      [Math.ceil((m * heads) / 64)],
      "train_attention",
    );
  }

  /**
   * Attention backward: from `dctx[M, D]` writes `ds[M, H, tmax]` and `dq[M, D]` (times
   * `scale`), then `dk`, `dv[M, D]`; `rowEnd[M]` (u32) is the last packed index of each
   * query's sequence.
   */
  attentionBackward(
    rec: Recorder,
    dctx: Binding,
    q: Binding,
    k: Binding,
    v: Binding,
    probs: Binding,
    start: Binding,
    rowEnd: Binding,
    ds: Binding,
    dq: Binding,
    dk: Binding,
    dv: Binding,
    m: number,
    d: number,
    heads: number,
    tmax: number,
    scale: number,
  ): void {
    if (m === 0) return;
    rec.dispatch(
      this.#k.train_attention_backward_q,
      [dctx, k, v, probs, start, ds, dq],
      [m, d, heads, tmax],
      [scale],
      [Math.ceil((m * heads) / 64)],
      "train_attention",
    );
    const g = grid(m * d, 64);
    rec.dispatch(
      this.#k.train_attention_backward_kv,
      [dctx, q, probs, ds, start, rowEnd, dk, dv],
      [m, d, heads, tmax, g.stride],
      [],
      g.groups,
      "train_attention",
    );
  }

  /** `out[i, :] = src[idx[i], :]` for `n` rows of `width`. */
  gatherRows(
    rec: Recorder,
    src: Binding,
    idx: Binding,
    out: Binding,
    n: number,
    width: number,
  ): void {
    if (n === 0) return;
    const g = grid(n * width, 64);
    rec.dispatch(
      this.#k.train_gather_rows,
      [src, idx, out],
      [n, width, g.stride],
      [],
      g.groups,
      "train_rows",
    );
  }

  /** `dst[idx[i], :] = rows[i, :]` (or `+=`) for `n` distinct rows of `width`. */
  scatterRows(
    rec: Recorder,
    rows: Binding,
    idx: Binding,
    dst: Binding,
    n: number,
    width: number,
    accumulate = false,
  ): void {
    if (n === 0) return;
    const g = grid(n * width, 64);
    rec.dispatch(
      this.#k.train_scatter_rows,
      [rows, idx, dst],
      [n, width, accumulate ? 1 : 0, g.stride],
      [],
      g.groups,
      "train_rows",
    );
  }

  /** `y[i] += alpha · x[i]` for `n` elements. */
  axpy(rec: Recorder, x: Binding, y: Binding, n: number, alpha = 1): void {
    if (n === 0) return;
    const g = grid(n, 64);
    rec.dispatch(this.#k.train_axpy, [x, y], [n, g.stride], [alpha], g.groups, "train_elementwise");
  }

  /** `out = max(u, 0)` for `n` elements. */
  relu(rec: Recorder, u: Binding, out: Binding, n: number): void {
    if (n === 0) return;
    const g = grid(n, 64);
    rec.dispatch(this.#k.train_relu, [u, out], [n, g.stride, 0], [], g.groups, "train_elementwise");
  }

  /** In place `dz = u > 0 ? dz : 0` for `n` elements. */
  reluBackward(rec: Recorder, u: Binding, dz: Binding, n: number): void {
    if (n === 0) return;
    const g = grid(n, 64);
    rec.dispatch(this.#k.train_relu, [u, dz], [n, g.stride, 1], [], g.groups, "train_elementwise");
  }

  /**
   * Token rows `out[i, :] = table[tokens[i], :]` (`mode: "tokens"`) or position rows added,
   * `out[i, :] += table[positions[i] + 2, :]` (`mode: "positions"`); zero rows on padding
   * (`positions[i] < 0`). `tokens` u32, `positions` i32, `n` positions of `width`.
   */
  embedForward(
    rec: Recorder,
    mode: "tokens" | "positions",
    table: Binding,
    tokens: Binding,
    positions: Binding,
    out: Binding,
    n: number,
    width: number,
  ): void {
    if (n === 0) return;
    const g = grid(n * width, 64);
    rec.dispatch(
      this.#k.train_embed_forward,
      [table, tokens, positions, out],
      [n, width, mode === "tokens" ? 0 : 1, g.stride],
      [],
      g.groups,
      "train_embedding",
    );
  }

  /**
   * Segmented row sums without atomics: `dst[ids[u], :] += Σ_{s in seg u} src[order[s], :]`
   * for `units` distinct rows (see {@linkcode segments}).
   */
  segmentSum(
    rec: Recorder,
    ids: Binding,
    seg: Binding,
    order: Binding,
    src: Binding,
    dst: Binding,
    units: number,
    width: number,
  ): void {
    if (units === 0) return;
    const g = grid(units * width, 64);
    rec.dispatch(
      this.#k.train_segment_sum,
      [ids, seg, order, src, dst],
      [units, width, g.stride],
      [],
      g.groups,
      "train_embedding",
    );
  }

  /**
   * Cross-entropy of `logits[rows, V]` against `targets[rows]` (u32): `nll[rows]`, and
   * with `train` the logits become `(softmax − onehot) · scale` in place.
   */
  crossEntropy(
    rec: Recorder,
    targets: Binding,
    logits: Binding,
    nll: Binding,
    rows: number,
    vocab: number,
    train: boolean,
    scale: number,
  ): void {
    if (rows === 0) return;
    rec.dispatch(
      this.#k.train_cross_entropy,
      [targets, logits, nll],
      [rows, vocab, train ? 1 : 0],
      [scale],
      rowGroups(rows),
      "train_cross_entropy",
    );
  }

  /** Partials of the sum of squares of `x[n]` into `partials[offset ..]`; returns their count. */
  sumSquares(rec: Recorder, x: Binding, partials: Binding, n: number, offset: number): number {
    const groups = Math.ceil(n / 2048);
    if (groups === 0) return 0;
    rec.dispatch(
      this.#k.train_sumsq,
      [x, partials],
      [n, offset],
      [],
      rowGroups(groups),
      "train_optimizer",
    );
    return groups;
  }

  /** `out[0] = sqrt(Σ partials[0 .. count))`, `out[1]` = the clip factor for `maxNorm`. */
  normFinalize(
    rec: Recorder,
    partials: Binding,
    out: Binding,
    count: number,
    maxNorm: number,
  ): void {
    rec.dispatch(
      this.#k.train_norm_finalize,
      [partials, out],
      [count],
      [maxNorm],
      [1],
      "train_optimizer",
    );
  }

  /** One AdamW update of a tensor of `n` elements (see `adamw.wgsl`). */
  adamw(
    rec: Recorder,
    grad: Binding,
    norm: Binding,
    param: Binding,
    m: Binding,
    v: Binding,
    n: number,
    h: {
      decay: number;
      beta1: number;
      beta2: number;
      stepSize: number;
      bc2Sqrt: number;
      eps: number;
    },
  ): void {
    if (n === 0) return;
    const g = grid(n, 64);
    rec.dispatch(
      this.#k.train_adamw,
      [grad, norm, param, m, v],
      [n, g.stride],
      [h.decay, h.beta1, h.beta2, h.stepSize, h.bc2Sqrt, h.eps],
      g.groups,
      "train_optimizer",
    );
  }
}

/**
 * Groups positions by row id for {@linkcode TrainKernels.segmentSum}: `ids` (distinct, in
 * ascending order), `seg` (`ids.length + 1` offsets) and `order` (positions sorted by id,
 * ascending within an id).
 *
 * @example
 * ```ts
 * segments([7, 3, 7, -1, 3], (i) => i !== 3);
 * // ids [3, 7], seg [0, 2, 4], order [1, 4, 0, 2]
 * ```
 */
export function segments(
  rowOf: ArrayLike<number>,
  use: (i: number) => boolean = () => true,
): { ids: Uint32Array; seg: Uint32Array; order: Uint32Array } {
  const pos: number[] = [];
  for (let i = 0; i < rowOf.length; i++) if (use(i)) pos.push(i);
  pos.sort((a, b) => rowOf[a] - rowOf[b] || a - b);
  const ids: number[] = [], seg: number[] = [];
  pos.forEach((p, k) => {
    if (k === 0 || rowOf[p] !== rowOf[pos[k - 1]]) {
      ids.push(rowOf[p]);
      seg.push(k);
    }
  });
  seg.push(pos.length);
  return { ids: Uint32Array.from(ids), seg: Uint32Array.from(seg), order: Uint32Array.from(pos) };
}
