/**
 * The optimiser: AdamW with decoupled weight decay (the update of PyTorch's
 * `torch.optim.AdamW`, in its order of operations, in f32 arithmetic), global-norm gradient
 * clipping folded into the update, and a warm-up then cosine learning-rate schedule.
 *
 * Weight decay applies to linear weights and the token and position embeddings, not to
 * biases or LayerNorm weights (the split of Hugging Face's `Trainer`; see `ParamSpec.decay`).
 *
 * @module
 */
import type { FloatArray, ParamSet } from "./param_set.ts";

/** AdamW hyper-parameters. */
export interface AdamWOptions {
  /** β1 (default 0.9). */
  beta1?: number;
  /** β2 (default 0.98, as the tiny model was trained). */
  beta2?: number;
  /** ε added to `sqrt(v̂)` (default 1e-8). */
  eps?: number;
  /** Decoupled weight decay λ (default 0.01). */
  weightDecay?: number;
}

/** AdamW's state: the moments (f32, like the master weights) and the step count. */
export interface AdamState {
  /** First moments, shaped as the parameters. */
  m: ParamSet;
  /** Second moments. */
  v: ParamSet;
  /** Updates done so far. */
  step: number;
}

/** Resolved AdamW hyper-parameters. */
export type AdamWConfig = Required<AdamWOptions>;

/**
 * Fills in AdamW defaults and checks ranges.
 *
 * @throws {RangeError} naming the field out of range.
 *
 * @example
 * ```ts
 * adamWConfig({ weightDecay: 0 }).beta2; // 0.98
 * ```
 */
export function adamWConfig(o: AdamWOptions = {}): AdamWConfig {
  const c = {
    beta1: o.beta1 ?? 0.9,
    beta2: o.beta2 ?? 0.98,
    eps: o.eps ?? 1e-8,
    weightDecay: o.weightDecay ?? 0.01,
  };
  for (const k of ["beta1", "beta2"] as const) {
    if (!(c[k] >= 0 && c[k] < 1)) throw new RangeError(`${k} must be in [0, 1), got ${c[k]}`);
  }
  if (!(c.eps > 0)) throw new RangeError(`eps must be > 0, got ${c.eps}`);
  if (!(c.weightDecay >= 0)) {
    throw new RangeError(`weightDecay must be >= 0, got ${c.weightDecay}`);
  }
  return c;
}

/**
 * Fresh AdamW state (zero moments, step 0) for a parameter set.
 *
 * @example
 * ```ts
 * import { adamState } from "./optim.ts";
 * import { ParamSet } from "./param_set.ts";
 * import { TINY_OPT_SHAPE } from "../model/fixture.ts";
 * const state = adamState(new ParamSet(TINY_OPT_SHAPE, "f32"));
 * console.log(state.step); // 0
 * ```
 */
export function adamState(params: ParamSet): AdamState {
  return { m: params.zerosLike("f32"), v: params.zerosLike("f32"), step: 0 };
}

/**
 * The global L2 norm of a gradient set (summed in doubles).
 *
 * @example
 * ```ts
 * import { gradNorm } from "./optim.ts";
 * import { ParamSet } from "./param_set.ts";
 * import { TINY_OPT_SHAPE } from "../model/fixture.ts";
 * const grads = new ParamSet(TINY_OPT_SHAPE, "f32");
 * grads.arrays[0][0] = 3;
 * grads.arrays[1][0] = 4;
 * console.log(gradNorm(grads)); // 5
 * ```
 */
export function gradNorm(grads: ParamSet): number {
  let s = 0;
  for (const g of grads.arrays) for (let i = 0; i < g.length; i++) s += g[i] * g[i];
  return Math.sqrt(s);
}

/**
 * The factor `torch.nn.utils.clip_grad_norm_` multiplies gradients by:
 * `min(1, maxNorm / (norm + 1e-6))`; 1 when `maxNorm` is 0 or infinite (no clipping).
 *
 * @example
 * ```ts
 * clipCoefficient(10, 1); // ≈ 0.1
 * ```
 */
export function clipCoefficient(norm: number, maxNorm: number): number {
  if (!(maxNorm > 0) || maxNorm === Infinity) return 1;
  return Math.min(1, maxNorm / (norm + 1e-6));
}

/**
 * One AdamW update of every tensor, in place, on f32 master weights, with the gradients
 * multiplied by `gradScale` first (clipping). PyTorch's order of operations:
 * `p *= 1 - lr·λ` (decay tensors only); `m = β1 m + (1 - β1) g`;
 * `v = β2 v + (1 - β2) g²`; `p -= (lr / (1 - β1^t)) · m / (sqrt(v) / sqrt(1 - β2^t) + ε)`.
 * Every intermediate is rounded to f32, as an f32 kernel (PyTorch's, or the WGSL one of
 * `kernels/train.ts`) computes it.
 *
 * @example
 * ```ts
 * import { adamState, adamWConfig, adamWStep, clipCoefficient, gradNorm } from "./optim.ts";
 * import { ParamSet } from "./param_set.ts";
 * import { TINY_OPT_SHAPE } from "../model/fixture.ts";
 * const params = new ParamSet(TINY_OPT_SHAPE, "f32");
 * const grads = new ParamSet(TINY_OPT_SHAPE, "f32");
 * grads.arrays[0].fill(0.5);
 * const state = adamState(params);
 * adamWStep(params, grads, state, 1e-3, adamWConfig(), clipCoefficient(gradNorm(grads), 1));
 * console.log(state.step, params.arrays[0][0] < 0); // 1 true
 * ```
 */
export function adamWStep(
  params: ParamSet,
  grads: ParamSet,
  state: AdamState,
  lr: number,
  config: AdamWConfig,
  gradScale = 1,
): void {
  state.step++;
  const t = state.step;
  const { beta1, beta2, eps, weightDecay } = config;
  const bc1 = 1 - beta1 ** t;
  const bc2 = 1 - beta2 ** t;
  const stepSize = lr / bc1;
  const bc2Sqrt = Math.sqrt(bc2);
  params.specs.forEach((spec, k) => {
    const p = params.arrays[k], g = grads.arrays[k];
    const m = state.m.arrays[k], v = state.v.arrays[k];
    const decay = spec.decay && weightDecay > 0 ? 1 - lr * weightDecay : 1;
    updateTensor(p, g, m, v, decay, beta1, beta2, stepSize, bc2Sqrt, eps, gradScale);
  });
}

function updateTensor(
  p: FloatArray,
  g: FloatArray,
  m: FloatArray,
  v: FloatArray,
  decay: number,
  beta1: number,
  beta2: number,
  stepSize: number,
  bc2Sqrt: number,
  eps: number,
  gradScale: number,
): void {
  const f = Math.fround;
  for (let i = 0; i < p.length; i++) {
    const gi = f(g[i] * gradScale);
    const pi = decay === 1 ? p[i] : f(p[i] * decay);
    const mi = f(f(beta1 * m[i]) + f((1 - beta1) * gi));
    const vi = f(f(beta2 * v[i]) + f(f((1 - beta2) * gi) * gi));
    m[i] = mi;
    v[i] = vi;
    const denom = f(f(Math.sqrt(vi) / bc2Sqrt) + eps);
    p[i] = f(pi - f(stepSize * f(mi / denom)));
  }
}

/** The learning-rate schedule. */
export interface LrSchedule {
  /** Peak learning rate. */
  lr: number;
  /** Linear warm-up steps (default 0). */
  warmupSteps?: number;
  /** Total optimiser steps (the cosine reaches its floor at the last one). */
  totalSteps: number;
  /** Floor as a fraction of the peak (default 0). */
  minLrRatio?: number;
}

/**
 * Learning rate of optimiser step `s` (0-based): linear warm-up `lr · (s + 1) / warmup`
 * (so no step is wasted at 0, unlike Hugging Face's schedule), then a cosine from `lr` down
 * to `lr · minLrRatio` at the last step.
 *
 * @example
 * ```ts
 * const sched = { lr: 1e-3, warmupSteps: 10, totalSteps: 100 };
 * learningRate(sched, 4); // 5e-4
 * learningRate(sched, 99); // 0
 * ```
 */
export function learningRate(schedule: LrSchedule, s: number): number {
  const { lr, totalSteps } = schedule;
  const warmup = schedule.warmupSteps ?? 0;
  const floor = lr * (schedule.minLrRatio ?? 0);
  if (s < warmup) return (lr * (s + 1)) / warmup;
  const span = totalSteps - 1 - warmup;
  if (span <= 0) return lr;
  const progress = Math.min(1, Math.max(0, (s - warmup) / span));
  return floor + (lr - floor) * 0.5 * (1 + Math.cos(Math.PI * progress));
}
