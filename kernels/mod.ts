/**
 * Hand-written WGSL kernels for OPT inference on WebGPU and the device plumbing they share.
 *
 * - Device: {@linkcode requestGpu}, {@linkcode gpuAvailable}, {@linkcode createKernel},
 *   {@linkcode AllocationGroup}, {@linkcode GpuError}.
 * - Encoding: {@linkcode ParamArena} (per-dispatch uniforms, dynamic offsets),
 *   {@linkcode Recorder} (passes, bind groups), {@linkcode TimestampProfiler}.
 * - Tables: {@linkcode uploadTable} (f16/bf16/f32 rows split across bindings).
 * - Kernels grouped by op, one folder each (`attention/`, `layernorm/`, `embedding/`,
 *   `select/`, `matmul/`, `elementwise/`, `cross_entropy/`, `adamw/`): the inference
 *   kernel (`wgsl.ts` template plus its dispatcher `mod.ts`; `matmul/` has its own README
 *   and variants), the training kernels (`*.wgsl` plus `train.ts`, gathered by
 *   {@linkcode TrainKernels}) and the op's one CPU reference (`reference.ts`, generic over
 *   `Float32Array`/`Float64Array`, shared by the CPU backend and the training reference).
 * - {@linkcode createDeclaredKernel}: bindings and uniforms read from the WGSL, so the
 *   dispatch takes named arguments that cannot drift from the shader.
 * - Adapter validation: {@linkcode validateAdapter} runs every family once on a small known
 *   problem; {@linkcode assertAdapterValid} refuses an adapter that computes wrong numbers.
 *
 * @example
 * ```ts
 * import { createLayerNorm, ParamArena, Recorder, requestGpu } from "./mod.ts";
 * const gpu = await requestGpu();
 * const ln = await createLayerNorm(gpu);
 * const rec = new Recorder(gpu, new ParamArena(gpu));
 * rec.begin();
 * // ln.encode(rec, { x, w, b, out, m: 4, d: 768 });
 * gpu.device.queue.submit([rec.finish()]);
 * ```
 *
 * @module
 */
export {
  AllocationGroup,
  assertAlive,
  type BindingKind,
  type BufferRequest,
  checkBufferSize,
  createKernel,
  gpuAvailable,
  type GpuContext,
  GpuError,
  type GpuErrorKind,
  type GpuLimits,
  type Kernel,
  requestGpu,
  type RequestGpuOptions,
  setShaderTransform,
  shaderSource,
  withKernels,
} from "./device.ts";
export {
  type AdapterProfile,
  adapterProfile,
  describeProfile,
  type KernelClass,
  kernelsFromEnv,
  type ProfileSource,
  withKernelClass,
} from "./profile.ts";
export {
  type AdapterCheck,
  AdapterRejectedError,
  type AdapterValidation,
  assertAdapterValid,
  validateAdapter,
  type ValidateOptions,
  VALIDATION_HELP,
} from "./validate.ts";
export { PARAM_BINDING_BYTES, PARAM_SLICE_BYTES, ParamArena } from "./uniforms.ts";
export { type Binding, Recorder } from "./encode.ts";
export { type FamilyTime, TimestampProfiler } from "./profiler.ts";
export {
  type DeviceTable,
  type RowTable,
  tableBindingKinds,
  tableBindings,
  type TableFormat,
  tableKey,
  type TableOptions,
  tableShape,
  type TableSource,
  tableWgsl,
  type TextureTable,
  uploadTable,
} from "./tables.ts";
export {
  createEmbedding,
  type EmbeddingArgs,
  type EmbeddingKernel,
  type EmbeddingMode,
} from "./embedding/mod.ts";
export { embeddingWgsl, type TableShape } from "./embedding/wgsl.ts";
export { createLayerNorm, type LayerNormArgs, type LayerNormKernel } from "./layernorm/mod.ts";
export { layerNormWgsl } from "./layernorm/wgsl.ts";
export {
  type AttentionArgs,
  type AttentionKernel,
  createAttention,
  createKvPack,
  type KvPackArgs,
  type KvPackKernel,
} from "./attention/mod.ts";
export {
  checkKvDtype,
  KV_ALIAS,
  type KvDtype,
  type KvDtypeOption,
  kvElementBytes,
  resolveKvDtype,
  roundKv,
  withKvDtype,
} from "./attention/kv_dtype.ts";
export { attentionVec4Wgsl, attentionWgsl, balancedSum, MAX_HEAD_DIM } from "./attention/wgsl.ts";
export {
  createPagedAttention,
  type KvWriteArgs,
  type PagedAttendArgs,
  type PagedAttentionKernels,
  pagedAttentionWgsl,
  type PagedLayout,
} from "./attention/paged.ts";
export { createSelect, NONFINITE_ID, type SelectArgs, type SelectKernel } from "./select/mod.ts";
export { SELECT_WGSL } from "./select/wgsl.ts";
export {
  createDeclaredKernel,
  declaredBindings,
  type DeclaredKernel,
  declaredParams,
  type DispatchArgs,
  grid,
  type KernelSet,
  rowGroups,
  type WgslInterface,
  wgslInterface,
} from "./declare.ts";
export { segments, TrainKernels } from "./train.ts";
export type { MatmulKind, TrainMatmulArgs } from "./train.ts";
export type {
  LayerNormBackwardArgs,
  LayerNormForwardArgs,
  LnParamGradsArgs,
} from "./layernorm/train.ts";
export type {
  AttentionBackwardArgs,
  AttentionForwardArgs,
  AttentionShape,
} from "./attention/train.ts";
export type {
  EmbedForwardArgs,
  GatherRowsArgs,
  ScatterRowsArgs,
  SegmentSumArgs,
} from "./embedding/train.ts";
export type { AxpyArgs, ReluArgs, ReluBackwardArgs } from "./elementwise/train.ts";
export type { CrossEntropyArgs } from "./cross_entropy/train.ts";
export type { AdamWArgs, AdamWHyper, NormFinalizeArgs, SumSquaresArgs } from "./adamw/train.ts";
export type { BiasGradArgs } from "./matmul/train.ts";
export { allocLike, type FloatArray } from "./float.ts";
export * from "./matmul/reference.ts";
export * from "./layernorm/reference.ts";
export * from "./attention/reference.ts";
export * from "./embedding/reference.ts";
export * from "./elementwise/reference.ts";
export * from "./select/reference.ts";
export * from "./cross_entropy/reference.ts";
export type { DType } from "../model/types.ts";
export type { SamplingOptions } from "./select/sampling.ts";
