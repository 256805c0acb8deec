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
import { createDeclaredKernel } from "../declare.ts";
import type { GpuContext, Kernel } from "../device.ts";
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
  // bindings x, w, b, out and Params m, d, inRow, outRow, eps as `wgsl.ts` declares them
  const ln = await createDeclaredKernel(ctx, `layernorm(wg=${wg})`, layerNormWgsl(wg));
  return {
    kernel: ln.kernel,
    encode(rec, a) {
      ln.dispatch(
        rec,
        {
          x: a.x,
          w: a.w,
          b: a.b,
          out: a.out,
          m: a.m,
          d: a.d,
          inRow: a.inRow ?? 0,
          outRow: a.outRow ?? 0,
          eps: a.eps ?? 1e-5,
        },
        [a.m],
        a.family ?? "layernorm",
      );
    },
  };
}
