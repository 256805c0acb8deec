/**
 * A training engine owns the f32 master weights, their gradients and AdamW's state on one
 * device, and does the three things the loop needs: accumulate the gradient of a batch,
 * take an optimiser step, and score a batch. {@linkcode CpuEngine} runs the CPU reference
 * (`reference.ts`); `gpu_engine.ts` runs the WGSL kernels of `kernels/train.ts`.
 *
 * @module
 */
import type { TrainBatch } from "./batch.ts";
import {
  type AdamState,
  adamState,
  type AdamWConfig,
  adamWConfig,
  type AdamWOptions,
  adamWStep,
  clipCoefficient,
  gradNorm,
} from "./optim.ts";
import { modelView, type ParamSet } from "./param_set.ts";
import { backward, forward } from "./reference.ts";
import { blasLinearOps, type LinearOps, TYPESCRIPT_LINEAR } from "./blas.ts";

/** What one optimiser step reports. */
export interface StepReport {
  /** Global gradient norm before clipping. */
  gradNorm: number;
  /** The factor gradients were multiplied by (1 = not clipped). */
  clip: number;
}

/** A device that trains one model. */
export interface TrainEngine {
  /** `"cpu"` or `"webgpu"`. */
  readonly name: string;
  /**
   * Adds `scale · ∇(Σ NLL of the batch's targets)` to the gradients; returns Σ NLL (nats).
   * Use `scale = 1 / (targets of all micro-batches of the step)` for a mean.
   */
  accumulate(batch: TrainBatch, scale: number): Promise<number>;
  /** Clips (global norm `clipNorm`, 0 = off), updates with AdamW at `lr`, zeroes gradients. */
  step(lr: number, clipNorm: number): Promise<StepReport>;
  /** The NLL of each target of a batch (no gradient). */
  score(batch: TrainBatch): Promise<Float64Array>;
  /** The master weights and AdamW state (a copy on devices that keep them elsewhere). */
  snapshot(): Promise<{ params: ParamSet; adam: AdamState }>;
  /** Frees device memory. */
  dispose(): void;
}

/**
 * The CPU reference as a training engine (f32 master weights, gradients in f32).
 *
 * @example
 * ```ts
 * import { CpuEngine } from "./engine.ts";
 * import { collate } from "./batch.ts";
 * import { ParamSet } from "./param_set.ts";
 * import { TINY_OPT_SHAPE } from "../model/fixture.ts";
 * import { seededRandom } from "../model/random.ts";
 * import { fullPlanSets } from "../schedule/mod.ts";
 * const config = TINY_OPT_SHAPE;
 * const params = new ParamSet(config, "f32");
 * const r = seededRandom(1);
 * for (const a of params.arrays) a.forEach((_, i) => a[i] = (r() - 0.5) / 10);
 * const L = config.numHiddenLayers;
 * const example = { prompt: [2, 5, 6], target: [7, 2], sets: fullPlanSets(L, 4) };
 * const batch = collate([example], L, config.padTokenId);
 * const engine = new CpuEngine(params, { weightDecay: 0.01 });
 * const nll = await engine.accumulate(batch, 1 / 2);
 * const report = await engine.step(1e-3, 1.0);
 * console.log(nll > 0, report.gradNorm > 0); // true true
 * ```
 */
export class CpuEngine implements TrainEngine {
  /** Always `"cpu"`. */
  readonly name = "cpu";
  /** The master weights (updated in place). */
  readonly params: ParamSet;
  /** Accumulated gradients. */
  readonly grads: ParamSet;
  /** AdamW moments and step. */
  readonly adam: AdamState;
  /** AdamW hyper-parameters. */
  readonly config: AdamWConfig;
  /**
   * Where the linear maps run: OpenBLAS when the process may load it (`train/blas.ts`,
   * about 25x faster on the tiny fixtures), else the reference's TypeScript loops.
   */
  readonly linear: LinearOps;

  /**
   * Takes ownership of `params` (f32); starts from `adam` when resuming; `linear` picks the
   * products' implementation (default: {@linkcode blasLinearOps} when available).
   */
  constructor(
    params: ParamSet,
    options: AdamWOptions = {},
    adam?: AdamState,
    linear: LinearOps = blasLinearOps() ?? TYPESCRIPT_LINEAR,
  ) {
    if (params.precision !== "f32") throw new TypeError("CpuEngine trains f32 master weights");
    this.params = params;
    this.grads = params.zerosLike();
    this.adam = adam ?? adamState(params);
    this.config = adamWConfig(options);
    this.linear = linear;
  }

  /** Forward and backward of one batch on the CPU. */
  accumulate(batch: TrainBatch, scale: number): Promise<number> {
    const s = forward(modelView(this.params), batch, {
      linear: this.linear,
      gradScale: scale,
    });
    backward(modelView(this.params), modelView(this.grads), s, scale);
    return Promise.resolve(s.loss);
  }

  /** Clipping and AdamW on the CPU. */
  step(lr: number, clipNorm: number): Promise<StepReport> {
    const norm = gradNorm(this.grads);
    const clip = clipCoefficient(norm, clipNorm);
    adamWStep(this.params, this.grads, this.adam, lr, this.config, clip);
    this.grads.zero();
    return Promise.resolve({ gradNorm: norm, clip });
  }

  /** Per-target NLL without keeping gradients. */
  score(batch: TrainBatch): Promise<Float64Array> {
    return Promise.resolve(
      forward(modelView(this.params), batch, { train: false, linear: this.linear }).nll,
    );
  }

  /** The live weights and state (no copy). */
  snapshot(): Promise<{ params: ParamSet; adam: AdamState }> {
    return Promise.resolve({ params: this.params, adam: this.adam });
  }

  /** Nothing to free. */
  dispose(): void {}
}
