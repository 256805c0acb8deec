/**
 * Hand-written WGSL kernels for OPT inference on WebGPU and the device plumbing they share.
 *
 * - Device: {@linkcode requestGpu}, {@linkcode gpuAvailable}, {@linkcode createKernel},
 *   {@linkcode AllocationGroup}, {@linkcode GpuError}.
 * - Encoding: {@linkcode ParamArena} (per-dispatch uniforms, dynamic offsets),
 *   {@linkcode Recorder} (passes, bind groups), {@linkcode TimestampProfiler}.
 * - Tables: {@linkcode uploadTable} (f16/bf16/f32 rows split across bindings).
 * - Kernels (each a `*_wgsl.ts` template plus its dispatcher): embedding, LayerNorm,
 *   attention (prefill and decode over a column-major KV cache), next-token selection
 *   (argmax and seeded sampling). Matrix products live in `kernels/matmul/`.
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
} from "./device.ts";
export {
  type AdapterCheck,
  AdapterRejectedError,
  type AdapterValidation,
  assertAdapterValid,
  validateAdapter,
  type ValidateOptions,
  VALIDATION_HELP,
} from "./validate.ts";
export { PARAM_BINDING_BYTES, PARAM_SLICE_BYTES, ParamArena } from "./params.ts";
export { type Binding, Recorder } from "./encode.ts";
export { type FamilyTime, TimestampProfiler } from "./profiler.ts";
export {
  type DeviceTable,
  type TableFormat,
  tableKey,
  type TableOptions,
  type TableSource,
  tableWgsl,
  uploadTable,
} from "./tables.ts";
export {
  createEmbedding,
  type EmbeddingArgs,
  type EmbeddingKernel,
  type EmbeddingMode,
} from "./embedding.ts";
export { embeddingWgsl, type TableShape } from "./embedding_wgsl.ts";
export { createLayerNorm, type LayerNormArgs, type LayerNormKernel } from "./layernorm.ts";
export { layerNormWgsl } from "./layernorm_wgsl.ts";
export { type AttentionArgs, type AttentionKernel, createAttention } from "./attention.ts";
export { attentionVec4Wgsl, attentionWgsl, MAX_HEAD_DIM } from "./attention_wgsl.ts";
export { createSelect, type SelectArgs, type SelectKernel } from "./select.ts";
export { SELECT_WGSL } from "./select_wgsl.ts";
export type { DType } from "../model/types.ts";
export type { SamplingOptions } from "../backend/types.ts";
