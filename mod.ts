/**
 * skipdecode: SkipDecode (Del Corro et al., arXiv 2307.02628) for OPT models on Deno's
 * WebGPU, with a plain TypeScript CPU reference backend.
 *
 * Data flows one way: checkpoint ({@linkcode loadWeights}) -> backend
 * ({@linkcode createBackend}) -> engine ({@linkcode generate} under a {@linkcode Policy}'s
 * {@linkcode plan}) -> results -> metrics ({@linkcode corpusBleu}, {@linkcode corpusRougeL})
 * and charts ({@linkcode frontierChart}, {@linkcode toHtml}).
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
 * const step = customPolicy({
 *   name: "step8",
 *   layerSet: ({ column, promptLength, layers }) =>
 *     skipDecodeSet(layers, column - promptLength < 8 ? layers : 6, 1),
 * });
 * console.log(plan(step, { layers: 12, promptLength: 4, maxNewTokens: 16 }).layerSpeedup);
 * ```
 * @module
 */
export type {
  DType,
  LayerNormWeights,
  LinearWeights,
  OptConfig,
  OptLayerWeights,
  OptWeights,
  Tensor,
} from "./model/types.ts";
export {
  CheckpointError,
  convertCheckpoint,
  describeModel,
  loadModel as loadCheckpoint,
  loadWeights,
  openSafetensors,
  openTorchBin,
  OPT_SHAPES,
  parseOptConfig,
  resolveModel,
  tensorToFloat32,
  writeRandomCheckpoint,
  writeSafetensors,
} from "./model/mod.ts";
export type {
  CheckpointErrorDetails,
  CheckpointErrorKind,
  ConvertResult,
  DownloadProgress,
  FileTensor,
  LoadedWeights,
  ModelDescription,
  OptShapeName,
  RandomCheckpoint,
  RandomCheckpointOptions,
  ResolvedModel,
  ResolveModelOptions,
  SafetensorsEntry,
  SafetensorsFile,
  SafetensorsHeader,
  SafetensorsWriteEntry,
  TorchBinFile,
} from "./model/mod.ts";
export { loadTokenizer, OptTokenizer, TokenizerError } from "./tokenizer/mod.ts";
export type {
  AddedTokenJson,
  DecodeOptions,
  EncodeOptions,
  LoadTokenizerOptions,
  TokenizerConfigJson,
  TokenizerJson,
  TokenStreamDecoder,
} from "./tokenizer/mod.ts";
export {
  type Backend,
  type BackendName,
  type ColumnLayerSets,
  CpuBackend,
  createBackend,
  type CreateBackendOptions,
  createCpuBackend,
  type DecodeOutput,
  type DecodeRequest,
  type DecodeTiming,
  type ForwardOutput,
  type ForwardRequest,
  type SamplingOptions,
} from "./backend/mod.ts";
export {
  type AdapterCheck,
  AdapterRejectedError,
  type AdapterValidation,
  createWebGpuBackend,
  type DeviceLayer,
  type DeviceLayerNorm,
  type DeviceLinear,
  type DeviceModel,
  type DeviceTable,
  type FamilyTime,
  gpuAvailable,
  type GpuContext,
  GpuError,
  type GpuErrorKind,
  type GpuLimits,
  type LinearArgs,
  type MatmulKernels,
  requestGpu,
  type RequestGpuOptions,
  type TableFormat,
  type UploadOptions,
  validateAdapter,
  type ValidateOptions,
  WebGpuBackend,
  type WebGpuBackendOptions,
  type WebGpuDecodeOutput,
} from "./backend/webgpu/mod.ts";
export * from "./schedule/mod.ts";
export * from "./decode/mod.ts";
export * from "./eval/mod.ts";
export * from "./plots/mod.ts";
// Skip-aware fine-tuning (train/): its entry points; train/mod.ts has the rest.
export {
  type EvalLog,
  type ExperimentReport,
  finetuneExperiment,
  loadTrainingCheckpoint,
  type PolicyQuality,
  policyQuality,
  resolveTrainConfig,
  saveCheckpoint,
  type StepLog,
  train,
  TRAIN_DEFAULTS,
  type TrainConfig,
  TrainError,
  type TrainHooks,
  type TrainResult,
} from "./train/mod.ts";
