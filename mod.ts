/**
 * skipdecode: SkipDecode (Del Corro et al., arXiv 2307.02628) for OPT models on Deno's
 * WebGPU, with a plain TypeScript CPU reference backend.
 *
 * Data flows one way (docs/ARCHITECTURE.md): checkpoint ({@linkcode loadWeights}) -> backend
 * ({@linkcode createBackend}) -> engine ({@linkcode generate} under a {@linkcode Policy}'s
 * {@linkcode plan}) -> results -> metrics ({@linkcode corpusBleu}, {@linkcode corpusRougeL})
 * -> runs and reports ({@linkcode runSweep}, {@linkcode runProcedure}) and charts
 * ({@linkcode frontierChart}, {@linkcode toHtml}).
 *
 * @example Generate under a linear exit policy
 * ```ts
 * import { generate, loadModel } from "./mod.ts";
 * const model = await loadModel("bundled/models/tiny-opt-e2e", { backend: "auto" });
 * const out = await generate(model, ["name[Alimentum], area[city centre]\n"], {
 *   policy: "linear:max=12,min=4,warmup=1,horizon=32",
 * });
 * console.log(out.results[0].text, out.layerSpeedup.toFixed(2));
 * model.dispose();
 * ```
 *
 * @example Write your own policy
 * ```ts
 * import { customPolicy, plan, skipDecodeSet } from "./mod.ts";
 * // full depth for the first 8 generated tokens: token i comes from column P - 1 + i
 * const step = customPolicy({
 *   name: "step8",
 *   layerSet: ({ column, promptLength, layers }) =>
 *     skipDecodeSet(layers, column - promptLength + 1 < 8 ? layers : 6, 1),
 * });
 * const p = plan(step, { layers: 12, promptLength: 4, maxNewTokens: 16 });
 * console.log(p.generatedLayers.join(" ")); // 12 12 12 12 12 12 12 12 6 6 6 6 6 6 6 6
 * console.log(p.layerSpeedup.toFixed(3)); // 1.333
 * ```
 * @module
 */
export * from "./model/mod.ts";
export * from "./tokenizer/mod.ts";
export * from "./backend/mod.ts";
export * from "./backend/webgpu/mod.ts";
export * from "./schedule/mod.ts";
export * from "./decode/mod.ts";
export * from "./serve/mod.ts";
export * from "./data/mod.ts";
export * from "./io/mod.ts";
export * from "./eval/mod.ts";
export * from "./experiments/mod.ts";
export * from "./plots/mod.ts";
// Skip-aware fine-tuning (train/): its entry points and the types they use; train/mod.ts
// has the rest.
export {
  type AdamState,
  type EvalLog,
  type Example,
  type FloatArray,
  loadTrainingCheckpoint,
  type ParamSet,
  type ParamSpec as TrainParamSpec,
  type Precision,
  resolveTrainConfig,
  saveCheckpoint,
  type SaveCheckpointOptions,
  type StepLog,
  type StepReport,
  train,
  TRAIN_DEFAULTS,
  type TrainBatch,
  type TrainConfig,
  type TrainEngine,
  TrainError,
  type TrainerState,
  type TrainHooks,
  type TrainingCheckpoint,
  type TrainNllResult,
  type TrainResult,
} from "./train/mod.ts";
