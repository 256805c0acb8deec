/**
 * Dispatch of the attention kernel (see `attention_wgsl.ts`).
 *
 * @example
 * ```ts
 * import { createAttention } from "./attention.ts";
 * // const att = await createAttention(gpu, 256);
 * // att.encode(rec, { q, k, v, pad, out, m: 6, d: 64, heads: 4, batch: 2, colStart: 0 });
 * ```
 *
 * @module
 */
import { createKernel, type GpuContext, GpuError, type Kernel } from "./device.ts";
import type { Recorder } from "./encode.ts";
import { attentionVec4Wgsl, attentionWgsl, MAX_HEAD_DIM } from "./attention_wgsl.ts";

/** Arguments of one attention dispatch. */
export interface AttentionArgs {
  /** f32 queries `[m, d]`, as `q_proj` wrote them (unscaled). */
  q: GPUBuffer;
  /** f32 key cache `[slots, B, d]`. */
  k: GPUBuffer;
  /** f32 value cache `[slots, B, d]`. */
  v: GPUBuffer;
  /** u32 left padding per row `[B]`. */
  pad: GPUBuffer;
  /** f32 output `[m, d]`. */
  out: GPUBuffer;
  /** Query rows (`columns * B`). */
  m: number;
  /** Model width. */
  d: number;
  /** Heads. */
  heads: number;
  /** Rows of the batch. */
  batch: number;
  /** Column of query row 0. */
  colStart: number;
}

/** The attention kernel. */
export interface AttentionKernel {
  /** The compiled kernel (any head size). */
  kernel: Kernel;
  /** The vec4 kernel, used when the head size and width are multiples of 4. */
  vec4: Kernel;
  /** Largest key count (columns) it handles. */
  maxKeys: number;
  /** Records one dispatch. */
  encode(rec: Recorder, args: AttentionArgs): void;
}

/**
 * Compiles the attention kernel for sequences of up to `maxKeys` columns. `wg` is the
 * workgroup size of the vec4 kernel: 8 on software adapters (one 256-bit SIMD group on
 * llvmpipe, so barriers are cheap; measured slightly faster than 64), 64 elsewhere.
 *
 * @throws {GpuError} when the score array would not fit workgroup memory.
 *
 * @example
 * ```ts
 * import { createAttention } from "./attention.ts";
 * // const att = await createAttention(gpu, 2048);
 * ```
 */
export async function createAttention(
  ctx: GpuContext,
  maxKeys: number,
  wg = ctx.isFallbackAdapter ? 8 : 64,
): Promise<AttentionKernel> {
  const keys = Math.max(64, Math.ceil(maxKeys / 64) * 64);
  const bytes = (keys + MAX_HEAD_DIM + 64) * 4;
  if (bytes > ctx.limits.maxComputeWorkgroupStorageSize) {
    throw new GpuError(
      `attention over ${maxKeys} columns needs ${bytes} bytes of workgroup memory; ` +
        `"${ctx.info.description}" has ${ctx.limits.maxComputeWorkgroupStorageSize}`,
      "too-large",
    );
  }
  const bindings = ["uniform", "read", "read", "read", "read", "storage"] as const;
  const [kernel, vec4] = await Promise.all([
    createKernel(ctx, `attention(maxKeys=${keys})`, attentionWgsl(keys), bindings),
    createKernel(
      ctx,
      `attention-vec4(maxKeys=${keys}, wg=${wg})`,
      attentionVec4Wgsl(keys, wg),
      bindings,
    ),
  ]);
  return {
    kernel,
    vec4,
    maxKeys: keys,
    encode(rec, a) {
      const hd = a.d / a.heads;
      if (!Number.isInteger(hd) || hd > MAX_HEAD_DIM) {
        throw new GpuError(
          `attention: head size ${hd} (d ${a.d} / ${a.heads} heads) must be an integer <= ${MAX_HEAD_DIM}`,
          "validation",
        );
      }
      const lastColumn = a.colStart + Math.ceil(a.m / a.batch) - 1;
      if (lastColumn >= keys) {
        throw new GpuError(
          `attention: column ${lastColumn} is beyond the ${keys} keys this kernel was built for`,
          "validation",
        );
      }
      rec.dispatch(
        hd % 4 === 0 && a.d % 4 === 0 ? vec4 : kernel,
        [a.q, a.k, a.v, a.pad, a.out],
        [a.m, a.d, hd, a.batch, a.colStart],
        [1 / Math.sqrt(hd)],
        [a.heads, a.m],
        "attention",
      );
    },
  };
}
