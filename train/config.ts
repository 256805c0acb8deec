/**
 * The training configuration: every field with its default, checks with messages naming
 * the field, and the merge of a JSON config file, command-line flags and a resumed run's
 * stored configuration.
 *
 * @module
 */

/**
 * An error in a training run's input (configuration, output folder, resume state) or a
 * run that diverged; the command line prints its one-line message and exits with 2.
 *
 * @example
 * ```ts
 * import { TrainError } from "./config.ts";
 * try {
 *   throw new TrainError("--out out/x is not empty");
 * } catch (e) {
 *   console.log(e instanceof TrainError); // true
 * }
 * ```
 */
export class TrainError extends Error {
  /** Makes a training error. */
  constructor(message: string) {
    super(message);
    this.name = "TrainError";
  }
}

/** Everything a training run needs. Field names are the JSON config file's keys. */
export interface TrainConfig {
  /** Source model folder (Hugging Face layout). */
  model: string;
  /** Output folder: the final model (a resumable checkpoint) plus `checkpoint-N/`, charts. */
  out: string;
  /**
   * `"e2e"` (the shared E2E devset), a `.csv` file in E2E's `mr,ref` format, or a plain text
   * file (documents separated by blank lines).
   */
  data: string;
  /** E2E: meaning representations held out for evaluation; text: held-out examples. */
  heldOut: number;
  /** Examples scored per evaluation at most (from the held-out ones). */
  evalExamples: number;
  /** `random[:fields]` (random linear plans per example) or one fixed policy. */
  policy: string;
  /** Policies evaluated; default: the training policy when fixed, and `full`. */
  evalPolicies: string[];
  /** Optimiser steps. */
  steps: number;
  /** Examples per micro-batch. */
  batchSize: number;
  /** Micro-batches per optimiser step (gradient accumulation). */
  gradAccum: number;
  /** Peak learning rate. */
  lr: number;
  /** Linear warm-up steps. */
  warmupSteps: number;
  /** Cosine floor as a fraction of `lr`. */
  minLrRatio: number;
  /** AdamW decoupled weight decay. */
  weightDecay: number;
  /** AdamW β1. */
  beta1: number;
  /** AdamW β2. */
  beta2: number;
  /** AdamW ε. */
  eps: number;
  /** Global gradient-norm clip (0: off). */
  clipNorm: number;
  /** Longest example in tokens (prompt + target); longer ones are dropped. */
  maxLength: number;
  /** Steps between evaluations (0: only before and after training). */
  evalEvery: number;
  /** Steps between checkpoints in `out/checkpoint-N` (0: only the final one). */
  saveEvery: number;
  /** Stored dtype of saved weights. */
  dtype: "F32" | "F16";
  /** Seed of data order and random policies. */
  seed: number;
  /** `"cpu"` (the reference) or `"webgpu"`. */
  backend: "cpu" | "webgpu";
  /** A checkpoint folder to resume from (weights, optimizer and trainer state). */
  resume?: string;
}

/** Defaults of every field but `model` and `out`. */
export const TRAIN_DEFAULTS: Readonly<Omit<TrainConfig, "model" | "out" | "resume">> = Object
  .freeze({
    data: "e2e",
    heldOut: 50,
    evalExamples: 64,
    policy: "random",
    evalPolicies: [],
    steps: 100,
    batchSize: 8,
    gradAccum: 1,
    lr: 1e-4,
    warmupSteps: 10,
    minLrRatio: 0.1,
    weightDecay: 0.01,
    beta1: 0.9,
    beta2: 0.98,
    eps: 1e-8,
    clipNorm: 1,
    maxLength: 256,
    evalEvery: 50,
    saveEvery: 0,
    dtype: "F32",
    seed: 0,
    backend: "cpu",
  });

const INTS = [
  "heldOut",
  "evalExamples",
  "steps",
  "batchSize",
  "gradAccum",
  "warmupSteps",
  "maxLength",
  "evalEvery",
  "saveEvery",
  "seed",
] as const;
const NUMBERS = ["lr", "minLrRatio", "weightDecay", "beta1", "beta2", "eps", "clipNorm"] as const;
/**
 * Largest value of every numeric field: beyond these a run cannot fit in memory or time
 * (a batch of 1e9 examples), or is certain to diverge (a learning rate above 10).
 */
export const TRAIN_LIMITS: Readonly<
  Record<(typeof INTS)[number] | (typeof NUMBERS)[number], number>
> = Object.freeze({
  heldOut: 1_000_000,
  evalExamples: 100_000,
  steps: 10_000_000,
  batchSize: 1024,
  gradAccum: 1024,
  warmupSteps: 10_000_000,
  maxLength: 65_536,
  evalEvery: 10_000_000,
  saveEvery: 10_000_000,
  seed: 2 ** 32 - 1,
  lr: 10,
  minLrRatio: 1,
  weightDecay: 10,
  beta1: 1,
  beta2: 1,
  eps: 1,
  clipNorm: 1_000_000,
});
const MAX = TRAIN_LIMITS;
const STRINGS = ["model", "out", "data", "policy", "resume"] as const;
const KEYS = new Set<string>([
  ...INTS,
  ...NUMBERS,
  ...STRINGS,
  "evalPolicies",
  "dtype",
  "backend",
]);

/**
 * Merges partial configurations (later ones win), fills defaults and validates.
 *
 * @throws {RangeError} naming the field (and `source`) for an unknown key or a bad value.
 *
 * @example
 * ```ts
 * const c = resolveTrainConfig([{ model: "m", out: "o" }, { steps: 20 }]);
 * console.log(c.steps, c.batchSize); // 20 8
 * ```
 */
export function resolveTrainConfig(
  parts: readonly Record<string, unknown>[],
  source = "training config",
): TrainConfig {
  const merged: Record<string, unknown> = { ...TRAIN_DEFAULTS };
  for (const p of parts) {
    for (const [k, v] of Object.entries(p)) {
      if (!KEYS.has(k)) {
        throw new RangeError(
          `${source}: unknown field "${k}" (known: ${[...KEYS].sort().join(", ")})`,
        );
      }
      if (v !== undefined) merged[k] = v;
    }
  }
  for (const k of INTS) {
    const v = merged[k];
    const lo = k === "steps" || k === "batchSize" || k === "gradAccum" || k === "maxLength" ? 1 : 0;
    const hi = MAX[k];
    if (typeof v !== "number" || !Number.isInteger(v) || v < lo || v > hi) {
      throw new RangeError(
        `${source}: ${k} must be a whole number from ${lo} to ${hi}, got ${JSON.stringify(v)}`,
      );
    }
  }
  for (const k of NUMBERS) {
    const v = merged[k];
    const hi = MAX[k];
    if (typeof v !== "number" || !Number.isFinite(v) || v < 0 || v > hi) {
      throw new RangeError(
        `${source}: ${k} must be a number from 0 to ${hi}, got ${JSON.stringify(v)}`,
      );
    }
  }
  if (!((merged.lr as number) > 0)) throw new RangeError(`${source}: lr must be > 0`);
  if ((merged.beta1 as number) >= 1 || (merged.beta2 as number) >= 1) {
    throw new RangeError(`${source}: beta1 and beta2 must be below 1`);
  }
  for (const k of STRINGS) {
    const v = merged[k];
    if (v !== undefined && (typeof v !== "string" || v === "")) {
      throw new RangeError(`${source}: ${k} must be a non-empty string, got ${JSON.stringify(v)}`);
    }
  }
  for (const k of ["model", "out"] as const) {
    if (merged[k] === undefined) throw new RangeError(`${source}: "${k}" is required`);
  }
  const ep = merged.evalPolicies;
  if (!Array.isArray(ep) || !ep.every((x) => typeof x === "string" && x !== "")) {
    throw new RangeError(`${source}: evalPolicies must be an array of policy strings`);
  }
  if (merged.dtype !== "F32" && merged.dtype !== "F16") {
    throw new RangeError(
      `${source}: dtype must be "F32" or "F16", got ${JSON.stringify(merged.dtype)}`,
    );
  }
  if (merged.backend !== "cpu" && merged.backend !== "webgpu") {
    throw new RangeError(
      `${source}: backend must be "cpu" or "webgpu", got ${JSON.stringify(merged.backend)}`,
    );
  }
  return merged as unknown as TrainConfig;
}
