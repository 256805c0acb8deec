/**
 * Dispatch of the training matrix products (`train_matmul.wgsl`: one source, three layouts)
 * and of the bias gradient (`train_bias_grad.wgsl`). Their CPU reference is `reference.ts`
 * beside this file (`matmulNT`, `linearBackwardParams`).
 *
 * @example
 * ```ts
 * import { MATMUL_TRAIN_WGSL } from "./train.ts";
 * console.log(Object.keys(MATMUL_TRAIN_WGSL)); // train_matmul_NT, _NN, _TN, train_bias_grad
 * ```
 *
 * @module
 */
import type { KernelSet } from "../declare.ts";
import type { Binding, Recorder } from "../encode.ts";
import matmulCode from "./train_matmul.wgsl" with { type: "text" };
import biasGradCode from "./train_bias_grad.wgsl" with { type: "text" };

/** Layout of a matrix product (see `train_matmul.wgsl`). */
export type MatmulKind = "NT" | "NN" | "TN";

const INDEX: Record<MatmulKind, [string, string]> = {
  NT: ["i * p.k + k", "j * p.k + k"],
  NN: ["i * p.k + k", "k * p.n + j"],
  TN: ["k * p.m + i", "k * p.n + j"],
};

/**
 * The WGSL of this folder's training kernels, by kernel name.
 *
 * @example
 * ```ts
 * console.log(MATMUL_TRAIN_WGSL.train_matmul_NT.includes("@binding(4)")); // true
 * ```
 */
export const MATMUL_TRAIN_WGSL: Record<string, string> = {
  ...Object.fromEntries(
    (["NT", "NN", "TN"] as const).map((kind) => [
      `train_matmul_${kind}`,
      matmulCode.replace("A_INDEX", INDEX[kind][0]).replace("B_INDEX", INDEX[kind][1]),
    ]),
  ),
  train_bias_grad: biasGradCode,
};

/**
 * Arguments of {@linkcode encodeTrainMatmul}: `c[M, N] (+)= alpha · (A · B + bias[N])`
 * with NT `a[M, K]`, `b[N, K]` (forward); NN `a[M, K]`, `b[K, N]` (input gradient `dy · W`);
 * TN `a[K, M]`, `b[K, N]` (weight gradient `dyᵀ · x`).
 */
export interface TrainMatmulArgs {
  /** Layout of `a` and `b`. */
  kind: MatmulKind;
  /** Left operand. */
  a: Binding;
  /** Right operand. */
  b: Binding;
  /** Output `[M, N]`; must not alias `a` or `b`. */
  c: Binding;
  /** Rows of `c`. */
  m: number;
  /** Inner dimension. */
  k: number;
  /** Columns of `c`. */
  n: number;
  /** `[N]` bias added to every row. */
  bias?: GPUBuffer;
  /** Add into `c` instead of overwriting it. */
  accumulate?: boolean;
  /** Factor on the product plus bias (default 1). */
  alpha?: number;
}

/**
 * Records one training matrix product (nothing when `m` or `n` is 0).
 *
 * @example
 * ```ts
 * import type { KernelSet } from "../declare.ts";
 * import type { Recorder } from "../encode.ts";
 * // the kernel set, a recording pass and the device buffers and sizes of the dispatch
 * declare const set: KernelSet, rec: Recorder;
 * declare const x: TrainMatmulArgs["a"], w: TrainMatmulArgs["b"], y: TrainMatmulArgs["c"],
 *   m: TrainMatmulArgs["m"], k: TrainMatmulArgs["k"], n: TrainMatmulArgs["n"],
 *   bias: TrainMatmulArgs["bias"];
 * encodeTrainMatmul(set, rec, { kind: "NT", a: x, b: w, c: y, m, k, n, bias });
 * ```
 */
export function encodeTrainMatmul(set: KernelSet, rec: Recorder, a: TrainMatmulArgs): void {
  if (a.m === 0 || a.n === 0) return;
  set.get(`train_matmul_${a.kind}`).dispatch(
    rec,
    {
      a: a.a,
      b: a.b,
      bias: a.bias ?? set.spare,
      c: a.c,
      m: a.m,
      k: a.k,
      n: a.n,
      accumulate: a.accumulate ?? false,
      has_bias: a.bias !== undefined,
      alpha: a.alpha ?? 1,
    },
    [Math.ceil(a.n / 32), Math.ceil(a.m / 32)],
    "train_matmul",
  );
}

/** Arguments of {@linkcode encodeBiasGrad}: `db[N] += Σ_i dy[i, :]` over `M` rows. */
export interface BiasGradArgs {
  /** `[M, N]` output gradient. */
  dy: Binding;
  /** `[N]` bias gradient (accumulated). */
  db: Binding;
  /** Rows. */
  m: number;
  /** Columns. */
  n: number;
}

/**
 * Records one bias-gradient dispatch.
 *
 * @example
 * ```ts
 * import type { KernelSet } from "../declare.ts";
 * import type { Recorder } from "../encode.ts";
 * // the kernel set, a recording pass and the device buffers and sizes of the dispatch
 * declare const set: KernelSet, rec: Recorder;
 * declare const dy: BiasGradArgs["dy"], db: BiasGradArgs["db"], m: BiasGradArgs["m"],
 *   n: BiasGradArgs["n"];
 * encodeBiasGrad(set, rec, { dy, db, m, n });
 * ```
 */
export function encodeBiasGrad(set: KernelSet, rec: Recorder, a: BiasGradArgs): void {
  if (a.m === 0) return;
  set.get("train_bias_grad").dispatch(rec, { ...a }, [Math.ceil(a.n / 64)], "train_bias");
}
