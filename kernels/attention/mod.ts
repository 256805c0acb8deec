/**
 * Dispatch of the attention kernel (see `wgsl.ts`).
 *
 * @example
 * ```ts
 * import { createAttention } from "./mod.ts";
 * // const att = await createAttention(gpu, 256);
 * // att.encode(rec, { q, k, v, pad, out, m: 6, d: 64, heads: 4, batch: 2, colStart: 0 });
 * ```
 *
 * @module
 */
import { createDeclaredKernel } from "../declare.ts";
import { type GpuContext, GpuError, type Kernel } from "../device.ts";
import type { Recorder } from "../encode.ts";
import { attentionLanesWgsl, attentionVec4Wgsl, attentionWgsl, MAX_HEAD_DIM } from "./wgsl.ts";

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
  /**
   * The one-invocation-per-(row, head) kernels by head size (software adapters, head
   * sizes given in `options.headDims`); they take precedence over `vec4` for those sizes.
   */
  lanes: Map<number, Kernel>;
  /** Which kernel a head size and width use: `"lanes"`, `"vec4"` or `"scalar"`. */
  kindFor(headDim: number, d: number): "lanes" | "vec4" | "scalar";
  /** Largest key count (columns) it handles. */
  maxKeys: number;
  /** Records one dispatch. */
  encode(rec: Recorder, args: AttentionArgs): void;
}

/** Options of {@linkcode createAttention}. */
export interface AttentionOptions {
  /**
   * Head sizes (multiples of 4) for which to compile the "lanes" kernel
   * (`attentionLanesWgsl`), used instead of the vec4 kernel when `lanes` is on.
   */
  headDims?: number[];
  /** Use the lanes kernel for `headDims` (default: on software adapters). */
  lanes?: boolean;
}

/**
 * Compiles the attention kernel for sequences of up to `maxKeys` columns. `wg` is the
 * workgroup size of the vec4 kernel: 8 on software adapters (one 256-bit SIMD group on
 * llvmpipe, so barriers are cheap; measured slightly faster than 64), 64 elsewhere. On
 * software adapters, head sizes listed in `options.headDims` use the lanes kernel (one
 * invocation per row and head, online softmax, no workgroup memory).
 *
 * @throws {GpuError} when the score array would not fit workgroup memory.
 *
 * @example
 * ```ts
 * import { createAttention } from "./mod.ts";
 * // const att = await createAttention(gpu, 2048);
 * ```
 */
export async function createAttention(
  ctx: GpuContext,
  maxKeys: number,
  wg = ctx.profile.kernels === "software" ? 8 : 64,
  options: AttentionOptions = {},
): Promise<AttentionKernel> {
  const useLanes = options.lanes ?? ctx.profile.kernels === "software";
  const laneDims = useLanes
    ? [...new Set(options.headDims ?? [])].filter((hd) =>
      Number.isInteger(hd) && hd > 0 && hd % 4 === 0 && hd <= MAX_HEAD_DIM
    )
    : [];
  const keys = Math.max(64, Math.ceil(maxKeys / 64) * 64);
  const bytes = (keys + MAX_HEAD_DIM + 64) * 4;
  if (bytes > ctx.limits.maxComputeWorkgroupStorageSize) {
    throw new GpuError(
      `attention over ${maxKeys} columns needs ${bytes} bytes of workgroup memory; ` +
        `"${ctx.info.description}" has ${ctx.limits.maxComputeWorkgroupStorageSize}`,
      "too-large",
    );
  }
  // bindings q, k, v, pad, out and Params m, d, headDim, batch, colStart, scale, as each
  // variant in `wgsl.ts` declares them
  const [scalar, vec4, ...laneKernels] = await Promise.all([
    createDeclaredKernel(ctx, `attention(maxKeys=${keys})`, attentionWgsl(keys)),
    createDeclaredKernel(
      ctx,
      `attention-vec4(maxKeys=${keys}, wg=${wg})`,
      attentionVec4Wgsl(keys, wg),
    ),
    ...laneDims.map((hd) =>
      createDeclaredKernel(ctx, `attention-lanes(headDim=${hd})`, attentionLanesWgsl(hd / 4))
    ),
  ]);
  const lanes = new Map(laneDims.map((hd, i) => [hd, laneKernels[i]]));
  const kindFor = (hd: number, d: number) =>
    hd % 4 !== 0 || d % 4 !== 0
      ? "scalar" as const
      : lanes.has(hd)
      ? "lanes" as const
      : "vec4" as const;
  return {
    kernel: scalar.kernel,
    vec4: vec4.kernel,
    lanes: new Map([...lanes].map(([hd, k]) => [hd, k.kernel])),
    kindFor,
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
      const kind = kindFor(hd, a.d);
      const args = {
        q: a.q,
        k: a.k,
        v: a.v,
        pad: a.pad,
        out: a.out,
        m: a.m,
        d: a.d,
        headDim: hd,
        batch: a.batch,
        colStart: a.colStart,
        scale: 1 / Math.sqrt(hd),
      };
      if (kind === "lanes") {
        const groups = Math.ceil((a.m * a.heads) / 8);
        const x = Math.min(groups, 32768);
        lanes.get(hd)!.dispatch(rec, args, [x, Math.ceil(groups / x)], "attention");
        return;
      }
      (kind === "vec4" ? vec4 : scalar).dispatch(rec, args, [a.heads, a.m], "attention");
    },
  };
}
