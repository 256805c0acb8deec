/**
 * The WGSL kernels of training, compiled once per device: the forward ops that keep
 * activations and the gradients of everything OPT's forward uses. Each kernel lives in the
 * folder of its op beside its inference kernels and its CPU reference, with a `train.ts`
 * that dispatches it by named arguments:
 *
 * | op | kernels | dispatcher |
 * | --- | --- | --- |
 * | matmul | `train_matmul.wgsl` (NT, NN, TN), `train_bias_grad.wgsl` | `matmul/train.ts` |
 * | layernorm | `wgsl.ts` (the inference forward, keeping `xhat` and `rstd`), `train_backward.wgsl`, `train_param_grads.wgsl` | `layernorm/train.ts` |
 * | attention | `train_forward.wgsl`, `train_backward_q.wgsl`, `train_backward_kv.wgsl` | `attention/train.ts` |
 * | embedding | `train_forward.wgsl`, `train_segment_sum.wgsl`, `train_gather_rows.wgsl`, `train_scatter_rows.wgsl` | `embedding/train.ts` |
 * | elementwise | `axpy.wgsl`, `relu.wgsl` | `elementwise/train.ts` |
 * | cross_entropy | `cross_entropy.wgsl` | `cross_entropy/train.ts` |
 * | adamw | `sumsq.wgsl`, `norm_finalize.wgsl`, `adamw.wgsl` | `adamw/train.ts` |
 *
 * Bindings and uniforms are declared once, in the WGSL (`declare.ts` reads them). All
 * buffers are f32 (`u32`/`i32` for indices); sizes may be anything (not multiples of a
 * tile); large element counts use a 2D grid. {@linkcode TrainKernels} records dispatches
 * into a {@linkcode Recorder} (parameters through its arena, consecutive dispatches in one
 * pass).
 *
 * @example
 * ```ts
 * import { requestGpu } from "./device.ts";
 * import { ParamArena } from "./uniforms.ts";
 * import { Recorder } from "./encode.ts";
 * import { TrainKernels } from "./train.ts";
 * const gpu = await requestGpu();
 * const k = await TrainKernels.create(gpu);
 * const rec = new Recorder(gpu, new ParamArena(gpu));
 * rec.begin();
 * // k.matmul(rec, { kind: "NT", a, b, c, m, k: kk, n });   c[m, n] = a[m, kk] · b[n, kk]^T
 * gpu.device.queue.submit([rec.finish()]);
 * ```
 *
 * @module
 */
import { createDeclaredKernel, type DeclaredKernel, type KernelSet } from "./declare.ts";
import type { GpuContext } from "./device.ts";
import type { Recorder } from "./encode.ts";
import {
  type BiasGradArgs,
  encodeBiasGrad,
  encodeTrainMatmul,
  MATMUL_TRAIN_WGSL,
  type TrainMatmulArgs,
} from "./matmul/train.ts";
import {
  encodeLayerNormBackward,
  encodeLayerNormForward,
  encodeLnParamGrads,
  LAYERNORM_TRAIN_WGSL,
  type LayerNormBackwardArgs,
  type LayerNormForwardArgs,
  type LnParamGradsArgs,
} from "./layernorm/train.ts";
import {
  ATTENTION_TRAIN_WGSL,
  type AttentionBackwardArgs,
  type AttentionForwardArgs,
  encodeAttentionBackward,
  encodeAttentionForward,
} from "./attention/train.ts";
import {
  EMBEDDING_TRAIN_WGSL,
  type EmbedForwardArgs,
  encodeEmbedForward,
  encodeGatherRows,
  encodeScatterRows,
  encodeSegmentSum,
  type GatherRowsArgs,
  type ScatterRowsArgs,
  type SegmentSumArgs,
} from "./embedding/train.ts";
import {
  type AxpyArgs,
  ELEMENTWISE_TRAIN_WGSL,
  encodeAxpy,
  encodeRelu,
  encodeReluBackward,
  type ReluArgs,
  type ReluBackwardArgs,
} from "./elementwise/train.ts";
import {
  CROSS_ENTROPY_TRAIN_WGSL,
  type CrossEntropyArgs,
  encodeCrossEntropy,
} from "./cross_entropy/train.ts";
import {
  ADAMW_TRAIN_WGSL,
  type AdamWArgs,
  encodeAdamW,
  encodeNormFinalize,
  encodeSumSquares,
  type NormFinalizeArgs,
  type SumSquaresArgs,
} from "./adamw/train.ts";

export { segments } from "./embedding/train.ts";
export type { MatmulKind, TrainMatmulArgs } from "./matmul/train.ts";

/** Every training kernel's WGSL, by kernel name. */
const TRAIN_WGSL: Record<string, string> = {
  ...MATMUL_TRAIN_WGSL,
  ...LAYERNORM_TRAIN_WGSL,
  ...ATTENTION_TRAIN_WGSL,
  ...EMBEDDING_TRAIN_WGSL,
  ...ELEMENTWISE_TRAIN_WGSL,
  ...CROSS_ENTROPY_TRAIN_WGSL,
  ...ADAMW_TRAIN_WGSL,
};

/**
 * The compiled training kernels of one device; each method records one op (nothing when
 * its row count is 0). Shapes and semantics are in each argument type's docs.
 *
 * @example
 * ```ts
 * import { requestGpu } from "./device.ts";
 * const kernels = await TrainKernels.create(await requestGpu());
 * ```
 */
export class TrainKernels {
  /** The device. */
  readonly gpu: GpuContext;
  #set: KernelSet;

  private constructor(gpu: GpuContext, kernels: Map<string, DeclaredKernel>) {
    this.gpu = gpu;
    const spare = gpu.device.createBuffer({
      label: "unused binding",
      size: 16,
      usage: GPUBufferUsage.STORAGE,
    });
    this.#set = {
      spare,
      get(name) {
        const k = kernels.get(name);
        if (!k) throw new Error(`no training kernel named ${name}`);
        return k;
      },
    };
  }

  /**
   * Compiles every training kernel on a device.
   *
   * @throws {GpuError} naming the kernel when one fails to compile.
   */
  static async create(gpu: GpuContext): Promise<TrainKernels> {
    const compiled = await Promise.all(
      Object.entries(TRAIN_WGSL).map(([name, code]) => createDeclaredKernel(gpu, name, code)),
    );
    return new TrainKernels(gpu, new Map(compiled.map((k) => [k.kernel.name, k])));
  }

  /** Frees the kernels' own buffer. */
  destroy(): void {
    this.#set.spare.destroy();
  }

  /** `c (+)= alpha · (A · B + bias)` in layout NT, NN or TN ({@linkcode TrainMatmulArgs}). */
  matmul(rec: Recorder, a: TrainMatmulArgs): void {
    encodeTrainMatmul(this.#set, rec, a);
  }

  /** Bias gradient `db[N] += Σ_i dy[i, :]`. */
  biasGrad(rec: Recorder, a: BiasGradArgs): void {
    encodeBiasGrad(this.#set, rec, a);
  }

  /** LayerNorm of `x[M, D]` keeping `xhat` and `rstd`. */
  layerNormForward(rec: Recorder, a: LayerNormForwardArgs): void {
    encodeLayerNormForward(this.#set, rec, a);
  }

  /** LayerNorm input gradient. */
  layerNormBackward(rec: Recorder, a: LayerNormBackwardArgs): void {
    encodeLayerNormBackward(this.#set, rec, a);
  }

  /** LayerNorm parameter gradients. */
  lnParamGrads(rec: Recorder, a: LnParamGradsArgs): void {
    encodeLnParamGrads(this.#set, rec, a);
  }

  /** Causal attention over packed rows, keeping the probabilities. */
  attentionForward(rec: Recorder, a: AttentionForwardArgs): void {
    encodeAttentionForward(this.#set, rec, a);
  }

  /** Attention backward: `dq`, `dk`, `dv` from `dctx`. */
  attentionBackward(rec: Recorder, a: AttentionBackwardArgs): void {
    encodeAttentionBackward(this.#set, rec, a);
  }

  /** `out[i, :] = src[idx[i], :]`. */
  gatherRows(rec: Recorder, a: GatherRowsArgs): void {
    encodeGatherRows(this.#set, rec, a);
  }

  /** `dst[idx[i], :] = rows[i, :]` (or `+=`). */
  scatterRows(rec: Recorder, a: ScatterRowsArgs): void {
    encodeScatterRows(this.#set, rec, a);
  }

  /** `y += alpha · x`. */
  axpy(rec: Recorder, a: AxpyArgs): void {
    encodeAxpy(this.#set, rec, a);
  }

  /** `out = max(u, 0)`. */
  relu(rec: Recorder, a: ReluArgs): void {
    encodeRelu(this.#set, rec, a);
  }

  /** In place `dz = u > 0 ? dz : 0`. */
  reluBackward(rec: Recorder, a: ReluBackwardArgs): void {
    encodeReluBackward(this.#set, rec, a);
  }

  /** Token rows, or position rows added; zero rows on padding. */
  embedForward(rec: Recorder, a: EmbedForwardArgs): void {
    encodeEmbedForward(this.#set, rec, a);
  }

  /** Segmented row sums without atomics (see {@linkcode segments}). */
  segmentSum(rec: Recorder, a: SegmentSumArgs): void {
    encodeSegmentSum(this.#set, rec, a);
  }

  /** NLL per row and, with `train`, the logits' gradient in place. */
  crossEntropy(rec: Recorder, a: CrossEntropyArgs): void {
    encodeCrossEntropy(this.#set, rec, a);
  }

  /** Partials of a sum of squares; returns their count. */
  sumSquares(rec: Recorder, a: SumSquaresArgs): number {
    return encodeSumSquares(this.#set, rec, a);
  }

  /** The global norm and its clip factor from the partials. */
  normFinalize(rec: Recorder, a: NormFinalizeArgs): void {
    encodeNormFinalize(this.#set, rec, a);
  }

  /** One AdamW update of a tensor. */
  adamw(rec: Recorder, a: AdamWArgs): void {
    encodeAdamW(this.#set, rec, a);
  }
}
