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
import { createKernel, type GpuContext, GpuError, type Kernel } from "../device.ts";
import type { Recorder } from "../encode.ts";
import { createDeclaredKernel, grid } from "../declare.ts";
import { type KvDtype, withKvDtype } from "./kv_dtype.ts";
import kvPackCode from "./kv_pack.wgsl" with { type: "text" };
import { attentionLanesWgsl, attentionVec4Wgsl, attentionWgsl, MAX_HEAD_DIM } from "./wgsl.ts";

/** Arguments of one attention dispatch. */
export interface AttentionArgs {
  /** f32 queries `[m, d]`, as `q_proj` wrote them (unscaled). */
  q: GPUBuffer;
  /** Key cache `[slots, B, d]` (f32, or f16 for a kernel built with `kvDtype: "f16"`). */
  k: GPUBuffer;
  /** Value cache `[slots, B, d]`, as `k`. */
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
  /** Storage type of the KV cache the kernels read (default `"f32"`; see `kv_dtype.ts`). */
  kvDtype?: KvDtype;
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
  const bindings = ["uniform", "read", "read", "read", "read", "storage"] as const;
  const kv = options.kvDtype ?? "f32";
  const tag = kv === "f32" ? "" : `, kv=${kv}`;
  const [kernel, vec4, ...laneKernels] = await Promise.all([
    createKernel(
      ctx,
      `attention(maxKeys=${keys}${tag})`,
      withKvDtype(attentionWgsl(keys), kv),
      bindings,
    ),
    createKernel(
      ctx,
      `attention-vec4(maxKeys=${keys}, wg=${wg}${tag})`,
      withKvDtype(attentionVec4Wgsl(keys, wg), kv),
      bindings,
    ),
    ...laneDims.map((hd) =>
      createKernel(
        ctx,
        `attention-lanes(headDim=${hd}${tag})`,
        withKvDtype(attentionLanesWgsl(hd / 4), kv),
        bindings,
      )
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
    kernel,
    vec4,
    lanes,
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
      const buffers = [a.q, a.k, a.v, a.pad, a.out];
      const params = [a.m, a.d, hd, a.batch, a.colStart];
      if (kind === "lanes") {
        const groups = Math.ceil((a.m * a.heads) / 8);
        const x = Math.min(groups, 32768);
        rec.dispatch(lanes.get(hd)!, buffers, params, [1 / Math.sqrt(hd)], [
          x,
          Math.ceil(groups / x),
        ], "attention");
        return;
      }
      rec.dispatch(
        kind === "vec4" ? vec4 : kernel,
        buffers,
        params,
        [1 / Math.sqrt(hd)],
        [a.heads, a.m],
        "attention",
      );
    },
  };
}

/** Arguments of {@linkcode KvPackKernel.encode}. */
export interface KvPackArgs {
  /** f32 keys `[n]` (rows `[n / d, d]` a `k` product wrote). */
  kin: GPUBuffer;
  /** f32 values `[n]`. */
  vin: GPUBuffer;
  /** Key cache `[slots, B, d]` of the kernel's `KV` type. */
  kout: GPUBuffer;
  /** Value cache, as `kout`. */
  vout: GPUBuffer;
  /** Elements to store. */
  n: number;
  /** First cache element written (`colStart * B * d`). */
  offset: number;
}

/** The KV pack kernel (`kv_pack.wgsl`) of one storage type. */
export interface KvPackKernel {
  /** Records the store of `n` keys and values into the caches from `offset`, rounded. */
  encode(rec: Recorder, a: KvPackArgs): void;
}

/**
 * Compiles `kv_pack.wgsl` for a KV storage type: the store of a layer's fresh f32 keys and
 * values into an f16 (or f32) column cache, for the column-batched decode with `kvDtype`
 * `"f16"` (the k/v products write f32 rows; this rounds them into the cache).
 *
 * @example
 * ```ts
 * import { createKvPack } from "./mod.ts";
 * import type { GpuContext } from "../device.ts";
 * declare const gpu: GpuContext;
 * const pack = await createKvPack(gpu, "f16");
 * ```
 */
export async function createKvPack(ctx: GpuContext, kvDtype: KvDtype): Promise<KvPackKernel> {
  const k = await createDeclaredKernel(
    ctx,
    `kv_pack(${kvDtype})`,
    withKvDtype(kvPackCode, kvDtype),
  );
  return {
    encode(rec, a) {
      if (a.n === 0) return;
      const g = grid(a.n, 64);
      k.dispatch(rec, { ...a, stride: g.stride }, g.groups, "attention");
    },
  };
}
