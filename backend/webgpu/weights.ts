/**
 * An OPT model's weights on the GPU: embedding tables in checkpoint precision (split across
 * bindings when needed), LayerNorm parameters as f32 buffers, and every linear map (q, k, v,
 * out, fc1, fc2, project_in/out, the LM head) uploaded by the matmul kernels, which keep f16
 * weights f16 and split large ones (the tied LM head) themselves. Allocation failures name
 * the tensor at fault.
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
import { type DeviceTable, uploadTable } from "../../kernels/tables.ts";
import { tensorToFloat32 } from "../../model/safetensors.ts";
import {
  mapOptTree,
  type OptLayerTree,
  type OptTree,
  type ParamKinds,
  type TensorKinds,
} from "../../model/tree.ts";
import type { LayerNormWeights, LinearWeights, OptWeights, Tensor } from "../../model/types.ts";

/** A LayerNorm's f32 parameters on the device. */
export interface DeviceLayerNorm {
  /** `[d]` scale. */
  w: GPUBuffer;
  /** `[d]` shift. */
  b: GPUBuffer;
}

/** The element types of the model on the device, one per kind of parameter group. */
export interface DeviceKinds extends ParamKinds {
  /** Embedding tables in checkpoint precision. */
  table: DeviceTable;
  /** `project_in`, `project_out` and the LM head (a separate upload of a tied embedding). */
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
  /** Device bytes held. */
  bytes: number;
  /** Frees everything. */
  destroy(): void;
};

/** Options of {@linkcode uploadModel}. */
export interface UploadOptions {
  /** Largest bytes per table buffer (forces the split path in tests). */
  maxBindingBytes?: number;
}

/**
 * Uploads all weights; one awaited check of the allocation scopes at the end.
 *
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
  const group = new AllocationGroup(gpu);
  const owned: { destroy(): void }[] = [];
  let bytes = 0;
  const table = (t: Tensor): DeviceTable => {
    const [rows, cols] = t.shape;
    const dt = uploadTable(
      gpu,
      group,
      { label: t.name, rows, cols, dtype: t.dtype, bytes: t.bytes() },
      { maxBindingBytes: options.maxBindingBytes },
    );
    owned.push(dt);
    bytes += dt.bytes;
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
    return lin;
  };
  try {
    const model: DeviceModel = {
      ...mapOptTree<TensorKinds, DeviceKinds>(weights, {
        table,
        matrix: linear,
        linear,
        layerNorm: ln,
      }),
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
