/**
 * Skip-aware fine-tuning of OPT checkpoints: the model is trained with the exit policy's
 * per-column layer masks active (a skipped layer is the identity, so its gradient passes
 * straight through), as the SkipDecode paper fine-tunes its models.
 *
 * - {@linkcode train} runs a {@linkcode TrainConfig} (see {@linkcode resolveTrainConfig}):
 *   E2E pairs or plain text, a fixed policy or random SkipDecode plans per example, AdamW
 *   with clipping, warm-up + cosine, gradient accumulation, periodic held-out NLL under each
 *   evaluation policy, Hugging Face checkpoints and exact resume.
 * - The CPU reference: {@linkcode forward} (keeps activations) and {@linkcode backward},
 *   generic over f32/f64; engines ({@linkcode CpuEngine}, {@linkcode createGpuEngine} with
 *   the WGSL kernels of `kernels/train.ts`) own weights, gradients and optimizer state on
 *   a device; the CPU engine's linear maps run on OpenBLAS when the process may load it
 *   ({@linkcode blasLinearOps}, `--allow-ffi`), else on TypeScript loops.
 * - Measuring a model before and after fine-tuning is the procedure of `experiments/`
 *   (`procedure.ts`: before, fine-tune per policy, after).
 * - Pieces: {@linkcode collate} (left-padded batches with layer masks),
 *   {@linkcode adamWStep}, {@linkcode learningRate}, {@linkcode e2eExamples},
 *   {@linkcode planExamples}, {@linkcode evaluateNll}, {@linkcode saveCheckpoint}.
 *
 * @example Fine-tune the tiny E2E model for a fixed linear policy (about 3x layer speedup)
 * ```ts
 * import { resolveTrainConfig, train } from "./mod.ts";
 * const result = await train(resolveTrainConfig([{
 *   model: "bundled/models/tiny-opt-e2e",
 *   out: "out/ft-linear6",
 *   policy: "linear:max=6,min=2,warmup=1,horizon=32",
 *   steps: 50,
 *   batchSize: 8,
 *   lr: 1e-4,
 * }]), { onStep: (s) => console.log(s.step, s.loss.toFixed(3)) });
 * console.log(result.state.evals.at(-1));
 * ```
 *
 * @module
 */
export type { LnSaved } from "./ops.ts";
export {
  collate,
  type Example,
  exampleSets,
  paddedBatch,
  type PlannedExample,
  type TrainBatch,
} from "./batch.ts";
export {
  loadTrainingCheckpoint,
  OPTIMIZER_FILE,
  saveCheckpoint,
  type SaveCheckpointOptions,
  TOKENIZER_FILES,
  TRAINER_STATE_FILE,
  type TrainingCheckpoint,
  verifyCheckpointSet,
} from "./checkpoint.ts";
export { resolveTrainConfig, TRAIN_DEFAULTS, type TrainConfig, TrainError } from "./config.ts";
export {
  e2eExamples,
  lengthBatches,
  promptExamples,
  shuffled,
  splitItems,
  type TextEncoder,
  textExamples,
} from "./data.ts";
export { CpuEngine, type StepReport, type TrainEngine } from "./engine.ts";
export { blasLinearOps, DEFAULT_BLAS_PATH, type LinearOps, TYPESCRIPT_LINEAR } from "./blas.ts";
export { createGpuEngine, GpuEngine, type GpuEngineOptions } from "./gpu_engine.ts";
export { evaluateNll, type TrainNllResult } from "./evaluate.ts";
export {
  type AdamState,
  adamState,
  type AdamWConfig,
  adamWConfig,
  type AdamWOptions,
  adamWStep,
  clipCoefficient,
  gradNorm,
  learningRate,
  type LrSchedule,
} from "./optim.ts";
export {
  allocFloat,
  allocLike,
  type FloatArray,
  type LayerArrays,
  type LinearArrays,
  type LnArrays,
  type ModelArrays,
  modelView,
  ParamSet,
  paramsFromWeights,
  type ParamSpec,
  paramSpecs,
  type Precision,
  weightsFromParams,
} from "./param_set.ts";
export {
  checkRandomPlanOptions,
  parsePolicySource,
  planExamples,
  type PolicySource,
  policySourceToString,
  RANDOM_PLAN_DEFAULTS,
  type RandomPlanOptions,
  randomPolicy,
} from "./policies.ts";
export {
  backward,
  forward,
  forwardLogits,
  type ForwardOptions,
  type ForwardState,
  type LayerSaved,
} from "./reference.ts";
export {
  type EvalLog,
  evalPolicySources,
  SHARED_E2E_DEVSET,
  type StepLog,
  storedTrainConfig,
  train,
  type TrainerState,
  type TrainHooks,
  type TrainResult,
} from "./trainer.ts";
