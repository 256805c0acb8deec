/**
 * An OPT model's weights on the GPU: embedding tables in checkpoint precision (split across
 * bindings when needed), LayerNorm parameters as f32 buffers, and every linear map (q, k, v,
 * out, fc1, fc2, project_in/out, the LM head) uploaded by the matmul kernels, which keep f16
 * weights f16 and split large ones (the tied LM head) themselves. A tied LM head is uploaded
 * once: the embedding kernel reads the token rows from the head's weights
 * (`MatmulKernels.rowTable`). Allocation failures name the tensor at fault.
 *
 * @example
 * ```ts
 * import { requestGpu } from "../../kernels/device.ts";
 * import { createMatmulKernels } from "../../kernels/matmul/mod.ts";
 * import { loadWeights } from "../../model/mod.ts";
 * import { uploadModel } from "./weights.ts";
 * const gpu = await requestGpu();
 * const mm = createMatmulKernels(gpu.device, { adapterInfo: gpu.info });
 * const model = await uploadModel(gpu, mm, await loadWeights("bundled/models/tiny-opt-e2e"));
 * console.log(model.bytes);
 * model.destroy();
 * ```
 *
 * @module
 */
import { AllocationGroup, type GpuContext } from "../../kernels/device.ts";
import type { DeviceLinear, MatmulKernels } from "../../kernels/matmul/mod.ts";
import { type RowTable, uploadTable } from "../../kernels/tables.ts";
import { tensorToFloat32 } from "../../model/safetensors.ts";
import {
  mapOptTree,
  type OptLayerTree,
  type OptTree,
  type ParamKinds,
  type TensorKinds,
  treeEntries,
} from "../../model/tree.ts";
import type { LayerNormWeights, LinearWeights, OptWeights, Tensor } from "../../model/types.ts";
import { fuseLinears } from "../../kernels/matmul/qkv.ts";
import { checkModelFits, memoryOnOffer, residentWeightBytes } from "../../model/memory.ts";

/** A LayerNorm's f32 parameters on the device. */
export interface DeviceLayerNorm {
  /** `[d]` scale. */
  w: GPUBuffer;
  /** `[d]` shift. */
  b: GPUBuffer;
}

/** The element types of the model on the device, one per kind of parameter group. */
export interface DeviceKinds extends ParamKinds {
  /** Embedding tables in checkpoint precision (a tied one: the LM head's weights). */
  table: RowTable;
  /** `project_in`, `project_out` and the LM head (a tied one also serves the embedding). */
  matrix: DeviceLinear;
  /** Linear maps with their biases. */
  linear: DeviceLinear;
  /** LayerNorm parameters in f32. */
  layerNorm: DeviceLayerNorm;
}

/** One decoder layer on the device (fields as in `model/tree.ts`). */
export type DeviceLayer = OptLayerTree<DeviceKinds>;

/** The whole model on the device: the parameter tree plus its size and a destructor. */
export type DeviceModel = OptTree<DeviceKinds> & {
  /**
   * With `fuseQkv`: each layer's q, k and v as one `[3 d, d]` linear (rows q, then k, then
   * v); the layer's `qProj`/`kProj`/`vProj` are then views without weights of their own.
   */
  qkv?: DeviceLinear[];
  /** Device bytes held. */
  bytes: number;
  /** Frees everything. */
  destroy(): void;
};

/** Bytes uploaded between waits for the queue (which let wgpu free staging copies). */
const WAIT_EVERY_BYTES = 256 << 20;

function entryBytes(v: TensorKinds[keyof TensorKinds]): number {
  const one = (t: Tensor) => t.shape.reduce((a, b) => a * b, 1) * (t.dtype === "F32" ? 4 : 2);
  if ("dtype" in v) return one(v);
  const g = v as { weight: Tensor; bias?: Tensor }; // linear or LayerNorm
  return one(g.weight) + (g.bias ? one(g.bias) : 0);
}

/** A q, k or v linear held inside a fused q/k/v upload (no weights of its own). */
function fusedView(part: LinearWeights, fused: DeviceLinear): DeviceLinear {
  const [n, k] = part.weight.shape;
  return { n, k, variant: `${fused.variant} (fused q/k/v)`, bytes: 0, destroy() {} };
}

/** Options of {@linkcode uploadModel}. */
export interface UploadOptions {
  /** Largest bytes per table buffer (forces the split path in tests). */
  maxBindingBytes?: number;
  /** Memory on offer in bytes for {@linkcode checkDeviceFit} (tests), instead of the default. */
  memoryLimitBytes?: number;
  /**
   * Upload each layer's q, k and v as one stacked linear (`DeviceModel.qkv`, for the fused
   * q/k/v kernel of the GPU path, `kernels/matmul/qkv.ts`) instead of three: same bytes.
   */
  fuseQkv?: boolean;
}

/**
 * Refuses, before any tensor is read, weights that cannot fit: on a software adapter
 * (llvmpipe, SwiftShader: its memory is the host's) against `MemAvailable` or
 * `SKIPDECODE_MEMORY_LIMIT`; on a hardware adapter, which does not report its memory,
 * against `SKIPDECODE_MEMORY_LIMIT` when set. Single tensors larger than the adapter's
 * buffer and binding limits are split by the uploads, not refused.
 *
 * @throws {ModelTooLargeError} one line naming the bytes needed and available.
 *
 * @example
 * ```ts
 * import { requestGpu } from "../../kernels/device.ts";
 * import { loadWeights } from "../../model/mod.ts";
 * import { checkDeviceFit } from "./weights.ts";
 * const gpu = await requestGpu();
 * checkDeviceFit(gpu, await loadWeights("bundled/models/tiny-opt-e2e"));
 * ```
 */
export function checkDeviceFit(
  gpu: GpuContext,
  weights: OptWeights,
  limitBytes?: number,
): void {
  const desc = gpu.info.description || gpu.info.device || "";
  const software = gpu.info.isFallbackAdapter === true ||
    /llvmpipe|lavapipe|swiftshader/i.test(`${desc} ${gpu.info.device ?? ""}`);
  const offer = limitBytes !== undefined
    ? { bytes: limitBytes, source: "memoryLimitBytes" }
    : memoryOnOffer();
  if (!offer || (!software && offer.source === "MemAvailable of /proc/meminfo")) return;
  const cfg = weights.config;
  checkModelFits(residentWeightBytes(weights, "webgpu"), {
    what: `the model (${cfg.numHiddenLayers} layers, d = ${cfg.hiddenSize}) on the WebGPU ` +
      `adapter "${desc || "unknown"}"${software ? " (software: its memory is the host's)" : ""}`,
    limitBytes: offer.bytes,
    limitSource: offer.source,
  });
}

/**
 * Uploads all weights, one tensor at a time (read by range, converted, uploaded, its host
 * copy released), after {@linkcode checkDeviceFit}; one awaited check of the allocation
 * scopes at the end.
 *
 * @throws {ModelTooLargeError} before anything is read when the model cannot fit.
 * @throws {GpuError} naming the tensor that does not fit (too large for the device limits,
 *   or out of memory).
 *
 * @example
 * ```ts
 * import { requestGpu } from "../../kernels/mod.ts";
 * import { createMatmulKernels } from "../../kernels/matmul/mod.ts";
 * import { loadWeights } from "../../model/mod.ts";
 * const gpu = await requestGpu();
 * const mm = createMatmulKernels(gpu.device);
 * const weights = await loadWeights("bundled/models/tiny-opt-e2e");
 * const model = await uploadModel(gpu, mm, weights, { maxBindingBytes: 32 << 20 });
 * ```
 */
export async function uploadModel(
  gpu: GpuContext,
  mm: MatmulKernels,
  weights: OptWeights,
  options: UploadOptions = {},
): Promise<DeviceModel> {
  checkDeviceFit(gpu, weights, options.memoryLimitBytes);
  const group = new AllocationGroup(gpu);
  const owned: { destroy(): void }[] = [];
  let bytes = 0;
  /** What is uploaded, by kind and source object. */
  const done = new Map<string, Map<unknown, unknown>>();
  // Hands the staged writes to the queue after each large tensor: wgpu keeps a write's
  // staging copy until a submission carries it, and reclaims it when the device is polled
  // after that submission, so without this every staged byte of the model lives until the
  // first decode (on a software adapter the host then holds the weights twice).
  const flush = () => gpu.device.queue.submit([]);
  const table = (t: Tensor): RowTable => {
    const [rows, cols] = t.shape;
    // A tied LM head (uploaded before, see the order below) holds these very rows.
    const head = done.get("matrix")?.get(t) as DeviceLinear | undefined;
    const shared = head && mm.rowTable(head, t.name);
    if (shared && shared.rows === rows && shared.cols === cols) return shared;
    const dt: RowTable = uploadTable(
      gpu,
      group,
      { label: t.name, rows, cols, dtype: t.dtype, bytes: t.bytes() },
      { maxBindingBytes: options.maxBindingBytes },
    );
    owned.push(dt);
    bytes += dt.bytes;
    flush();
    return dt;
  };
  const f32 = (t: Tensor): GPUBuffer => {
    const data = tensorToFloat32(t);
    const buf = group.buffer({ label: t.name, size: data.byteLength, bindWhole: true });
    group.run(
      `upload of ${t.name}`,
      () => gpu.device.queue.writeBuffer(buf, 0, data as Float32Array<ArrayBuffer>),
    );
    owned.push(buf);
    bytes += buf.size;
    return buf;
  };
  const ln = (w: LayerNormWeights): DeviceLayerNorm => ({ w: f32(w.weight), b: f32(w.bias) });
  const linear = (w: LinearWeights | Tensor): DeviceLinear => {
    const weight = "weight" in w ? w.weight : w;
    const bias = "weight" in w ? w.bias : undefined;
    const lin = group.run(weight.name, () => mm.uploadLinear(weight, bias, weight.name));
    owned.push(lin);
    bytes += lin.bytes;
    flush();
    return lin;
  };
  try {
    // Largest first: a tensor's transient host copies (its bytes, the staging blocks) then
    // sit on top of little resident data; the tied LM head of an OPT-6.7b is 412 MB. Every
    // upload is keyed by kind and object; a tied head goes first as a matrix, and the table
    // of the same tensor then reads its rows from it instead of uploading them again.
    const mappers: { [K in keyof DeviceKinds]: (v: TensorKinds[K]) => DeviceKinds[K] } = {
      table,
      matrix: linear,
      linear,
      layerNorm: ln,
    };
    const qkv = options.fuseQkv
      ? weights.layers.map((W, l) => {
        const fused = linear(
          fuseLinears(`decoder.layers.${l}.self_attn.qkv_proj`, [W.qProj, W.kProj, W.vProj]),
        );
        const views = done.get("linear") ?? new Map<unknown, unknown>();
        done.set("linear", views);
        for (const part of [W.qProj, W.kProj, W.vProj]) views.set(part, fusedView(part, fused));
        return fused;
      })
      : undefined;
    const jobs = treeEntries<TensorKinds>(weights).map(({ site, value }) => ({
      kind: site.decl.kind,
      value,
      size: entryBytes(value),
    })).sort((a, b) =>
      b.size - a.size || Number(a.kind !== "matrix") - Number(b.kind !== "matrix")
    );
    let sinceWait = 0;
    for (const job of jobs) {
      const byKind = done.get(job.kind) ?? new Map<unknown, unknown>();
      done.set(job.kind, byKind);
      if (byKind.has(job.value)) continue;
      byKind.set(job.value, (mappers[job.kind] as (v: unknown) => unknown)(job.value));
      sinceWait += job.size;
      if (sinceWait >= WAIT_EVERY_BYTES) {
        // let the device finish the copies so wgpu frees their staging memory
        await gpu.device.queue.onSubmittedWorkDone();
        sinceWait = 0;
      }
    }
    const uploaded = <K extends keyof DeviceKinds>(kind: K) => (v: TensorKinds[K]) =>
      done.get(kind)!.get(v) as DeviceKinds[K];
    const model: DeviceModel = {
      ...mapOptTree<TensorKinds, DeviceKinds>(weights, {
        table: uploaded("table"),
        matrix: uploaded("matrix"),
        linear: uploaded("linear"),
        layerNorm: uploaded("layerNorm"),
      }),
      qkv,
      bytes: 0,
      destroy: () => owned.forEach((o) => o.destroy()),
    };
    await group.check();
    model.bytes = bytes;
    return model;
  } catch (e) {
    owned.forEach((o) => o.destroy());
    // pop whatever scopes are still open so the device stays usable
    await group.check().catch(() => {});
    throw e;
  }
}
