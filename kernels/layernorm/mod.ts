/**
 * Dispatch of the LayerNorm kernel (see `wgsl.ts`).
 *
 * @example
 * ```ts
 * import { createLayerNorm } from "./mod.ts";
 * // const ln = await createLayerNorm(gpu);
 * // ln.encode(rec, { x, w, b, out, m: 3, d: 100 });
 * ```
 *
 * @module
 */
import { createKernel, type GpuContext, type Kernel } from "../device.ts";
import type { Recorder } from "../encode.ts";
import { layerNormWgsl } from "./wgsl.ts";

/** Arguments of one LayerNorm dispatch. */
export interface LayerNormArgs {
  /** f32 input `[*, d]`. */
  x: GPUBuffer;
  /** f32 scale `[d]`. */
  w: GPUBuffer;
  /** f32 shift `[d]`. */
  b: GPUBuffer;
  /** f32 output `[*, d]` (must not be `x`). */
  out: GPUBuffer;
  /** Rows to normalise. */
  m: number;
  /** Width. */
  d: number;
  /** First input row (default 0). */
  inRow?: number;
  /** First output row (default 0). */
  outRow?: number;
  /** Epsilon (default 1e-5). */
  eps?: number;
  /** Profiling family (default "layernorm"). */
  family?: string;
}

/** The LayerNorm kernel. */
export interface LayerNormKernel {
  /** The compiled kernel. */
  kernel: Kernel;
  /** Records one dispatch. */
  encode(rec: Recorder, args: LayerNormArgs): void;
}

/**
 * Compiles the LayerNorm kernel with workgroup size `wg` (a power of two; default 8 on
 * software adapters, where one 256-bit SIMD group makes barriers cheap, else 64).
 *
 * @example
 * ```ts
 * import { createLayerNorm } from "./mod.ts";
 * // const ln = await createLayerNorm(gpu);
 * ```
 */
export async function createLayerNorm(
  ctx: GpuContext,
  wg = ctx.profile.kernels === "software" ? 8 : 64,
): Promise<LayerNormKernel> {
  const kernel = await createKernel(ctx, `layernorm(wg=${wg})`, layerNormWgsl(wg), [
    "uniform",
    "read",
    "read",
    "read",
    "storage",
  ]);
  return {
    kernel,
    encode(rec, a) {
      rec.dispatch(
        kernel,
        [a.x, a.w, a.b, a.out],
        [a.m, a.d, a.inRow ?? 0, a.outRow ?? 0],
        [a.eps ?? 1e-5],
        [a.m],
        a.family ?? "layernorm",
      );
    },
  };
}
