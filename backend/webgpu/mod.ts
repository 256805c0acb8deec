/**
 * The WebGPU backend and its device helpers: {@linkcode createWebGpuBackend} loads an OPT
 * model onto a WebGPU device; {@linkcode requestGpu} and {@linkcode gpuAvailable} set up
 * and probe the device; {@linkcode GpuError} is the error every failure here throws.
 *
 * @example
 * ```ts
 * import { createWebGpuBackend, gpuAvailable } from "./mod.ts";
 * import { loadWeights } from "../../model/mod.ts";
 * if (await gpuAvailable()) {
 *   const backend = await createWebGpuBackend(await loadWeights("bundled/models/tiny-opt-e2e"));
 *   backend.dispose();
 * }
 * ```
 *
 * @module
 */
export {
  createWebGpuBackend,
  WebGpuBackend,
  type WebGpuBackendOptions,
  type WebGpuDecodeOutput,
} from "./backend.ts";
export { KV_PAGE_SIZE, KvPages, type KvPagesShape } from "./kv_pages.ts";
export {
  assertAlive,
  gpuAvailable,
  type GpuContext,
  GpuError,
  type GpuErrorKind,
  type GpuLimits,
  requestGpu,
  type RequestGpuOptions,
  withKernels,
} from "../../kernels/device.ts";
export {
  type AdapterProfile,
  adapterProfile,
  describeProfile,
  type KernelClass,
  type ProfileSource,
} from "../../kernels/profile.ts";
export {
  type AdapterCheck,
  AdapterRejectedError,
  type AdapterValidation,
  assertAdapterValid,
  validateAdapter,
  type ValidateOptions,
} from "../../kernels/validate.ts";
export type { FamilyTime } from "../../kernels/profiler.ts";
export type {
  DeviceKinds,
  DeviceLayer,
  DeviceLayerNorm,
  DeviceModel,
  UploadOptions,
} from "./weights.ts";
export type {
  OptLayerTree,
  OptTree,
  ParamKind,
  ParamKinds,
  TensorKinds,
} from "../../model/tree.ts";
export type { DeviceTable, RowTable, TableFormat, TextureTable } from "../../kernels/tables.ts";
export type { DeviceLinear, LinearArgs, MatmulKernels } from "../../kernels/matmul/mod.ts";
export type {
  Backend,
  ColumnLayerSets,
  DecodeOutput,
  DecodeRequest,
  DecodeTiming,
  ForwardOutput,
  ForwardRequest,
  RowBatch,
  RowBatchOptions,
  RowBatchStats,
  RowResult,
  RowWork,
  SamplingOptions,
} from "../types.ts";
export type {
  DType,
  LayerNormWeights,
  LinearWeights,
  OptConfig,
  OptLayerWeights,
  OptWeights,
  Tensor,
} from "../../model/types.ts";
