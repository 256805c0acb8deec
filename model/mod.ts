/**
 * Reading and writing Hugging Face OPT checkpoints exactly.
 *
 * - {@linkcode resolveModel} / {@linkcode loadCheckpoint}: a folder or hub id (`facebook/opt-125m`)
 *   to a local folder, via the Hugging Face cache, downloading safetensors or, as
 *   transformers does when a repository has none, PyTorch `.bin` weights.
 * - {@linkcode loadWeights}: a folder (`config.json` + `model.safetensors`, sharded
 *   safetensors, `pytorch_model.bin` or `.bin` shards) to {@linkcode OptWeights}, names
 *   normalised, shapes checked, bytes read lazily.
 * - {@linkcode openTorchBin}: PyTorch `.bin` files (ZIP, ZIP64 or legacy) through a
 *   restricted unpickler that never executes anything.
 * - {@linkcode convertCheckpoint}: any checkpoint to a standard Hugging Face folder with
 *   `model.safetensors`; {@linkcode convertedCopy}: the same, cached by source identity.
 * - {@linkcode parseOptConfig}, {@linkcode optConfigToJson}, {@linkcode OPT_SHAPES}: configs.
 * - {@linkcode openSafetensors}, {@linkcode writeSafetensors}: the safetensors format;
 *   {@linkcode tensorToFloat32}, {@linkcode float32ToBytes} (`dtype.ts`): exact f16/bf16/f32
 *   conversions; {@linkcode memoryTensor} (`tensor.ts`): tensors held in memory.
 * - {@linkcode writeRandomCheckpoint}: deterministic random checkpoints for tests.
 *
 * Every failure is a {@linkcode CheckpointError} naming the file, tensor or field at fault.
 *
 * @example
 * ```ts
 * import { describeModel, loadCheckpoint, tensorToFloat32 } from "./mod.ts";
 * const { weights } = await loadCheckpoint("bundled/models/tiny-opt-e2e");
 * console.log(describeModel(weights).summary);
 * const fc1 = tensorToFloat32(weights.layers[0].fc1.weight); // [ffn, d] row-major
 * ```
 *
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
} from "./types.ts";
export { CheckpointError } from "./errors.ts";
export {
  checkInputFile,
  createExclusive,
  ensureRealDir,
  fileKind,
  modelFile,
  PathRuleError,
  readInputFile,
  type ReadInputOptions,
  refuseLink,
  tempNameBeside,
} from "./paths.ts";
export { checkFiniteTensor, checkFiniteWeights, firstNonFinite } from "./finite.ts";
export { mulberry32Bits, type SeededRandom, seededRandom } from "./random.ts";
export type { CheckpointErrorDetails, CheckpointErrorKind } from "./errors.ts";
export { OPT_SHAPES, optConfigToJson, parseOptConfig, readOptConfig } from "./config.ts";
export type { OptShapeName } from "./config.ts";
export * from "./dtype.ts";
export {
  checkModelFits,
  memAvailableBytes,
  MEMORY_LIMIT_ENV,
  memoryOnOffer,
  type ModelFitOptions,
  ModelTooLargeError,
  parseMemorySize,
  peakResidentBytes,
  residentWeightBytes,
  type WeightLayout,
} from "./memory.ts";
export * from "./tensor.ts";
export {
  MAX_HEADER_BYTES,
  openSafetensors,
  parseSafetensorsHeader,
  writeSafetensors,
} from "./safetensors.ts";
export type {
  FileTensor,
  SafetensorsEntry,
  SafetensorsFile,
  SafetensorsHeader,
  SafetensorsWriteEntry,
} from "./safetensors.ts";
export {
  allTensors,
  describeModel,
  findWeightFile,
  hasFinalLayerNorm,
  loadWeights,
  loadWeightsSync,
  normalizeWeightName,
  optTensorSpecs,
  SAFE_WEIGHTS_INDEX_NAME,
  SAFE_WEIGHTS_NAME,
  WEIGHTS_INDEX_NAME,
  WEIGHTS_NAME,
} from "./checkpoint.ts";
export { openTorchBin } from "./torch_bin.ts";
export type { TorchBinFile } from "./torch_bin.ts";
export { ALLOWED_GLOBALS } from "./torch_pickle.ts";
export {
  convertCheckpoint,
  convertedCopy,
  sourceKey,
  standardName,
  weightFilesIdentity,
  writeStandardFolder,
} from "./convert.ts";
export type { ConvertResult } from "./convert.ts";
export type { LoadedWeights, ModelDescription, OptTensorSpec } from "./checkpoint.ts";
export {
  buildOptTree,
  LAYER_PARAMS,
  mapOptTree,
  MODEL_PARAMS,
  paramSites,
  siteTensors,
  treeEntries,
  walkSites,
} from "./tree.ts";
export type {
  LayerDecls,
  LayerParamName,
  ModelDecls,
  ModelParamName,
  OptionalModelParam,
  OptLayerTree,
  OptTree,
  ParamDecl,
  ParamKind,
  ParamKinds,
  ParamSite,
  RequiredModelParam,
  TensorKinds,
  TreeBuilder,
  TreeMapper,
} from "./tree.ts";
export {
  hubCacheDir,
  loadCheckpoint,
  offlineFromEnv,
  OPTIONAL_MODEL_FILES,
  repoFolderName,
  resolveModel,
} from "./hub.ts";
export type { DownloadProgress, ResolvedModel, ResolveModelOptions } from "./hub.ts";
export {
  fixtureConfig,
  fixtureTensors,
  fixtureValues,
  TINY_OPT_SHAPE,
  writeRandomCheckpoint,
} from "./fixture.ts";
export type { RandomCheckpoint, RandomCheckpointOptions } from "./fixture.ts";
