/**
 * Matrix products for OPT's linear layers on WebGPU: `Y[M, N] = X[M, K] · W[N, K]^T + b[N]`,
 * optionally followed by ReLU and a residual add, with `W` resident on the device.
 *
 * Several variants implement the same contract (see `kernels/matmul/README.md` for their
 * measured speeds); `variant: "auto"` picks one per adapter.
 *
 * Buffer rules for {@linkcode LinearArgs}: `x`, `y` and `residual` are f32 storage buffers;
 * `x` must not be the same buffer as `y` or `residual` (WebGPU forbids binding one buffer
 * both read-only and writable in a dispatch); `residual` is either a different buffer from
 * `y`, or exactly `y` at `yOffset` (then `y += relu?(x W^T + b)`).
 *
 * @example
 * ```ts
 * import { createMatmulKernels } from "./mod.ts";
 * const adapter = await navigator.gpu.requestAdapter();
 * const device = await adapter!.requestDevice();
 * const mm = createMatmulKernels(device, { adapterInfo: adapter!.info });
 * await mm.ready();
 * const w = { name: "w", dtype: "F32" as const, shape: [2, 3],
 *   bytes: () => new Uint8Array(new Float32Array([1, 2, 3, 4, 5, 6]).buffer) };
 * const lin = mm.uploadLinear(w);
 * const x = device.createBuffer({ size: 12, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST });
 * const y = device.createBuffer({ size: 8, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC });
 * device.queue.writeBuffer(x, 0, new Float32Array([1, 1, 1]));
 * const enc = device.createCommandEncoder();
 * mm.encode(enc, { x, y, m: 1, linear: lin }); // y = [6, 15]
 * device.queue.submit([enc.finish()]);
 * ```
 * @module
 */
import type { Tensor } from "../../model/types.ts";
import type { RowTable } from "../tables.ts";
import { type AdapterProfile, adapterProfile } from "../profile.ts";
import { hostLinear } from "./host.ts";
import type { ResolvedArgs, Variant, VariantContext, VariantLinear } from "./types.ts";
import { StorageVariant } from "./storage.ts";
import { TextureVariant } from "./texture.ts";
import naiveCode from "./v1_storage_naive.wgsl" with { type: "text" };
import tiledCode from "./v3_storage_tiled.wgsl" with { type: "text" };

/** Weights `W[N, K]` (+ bias `b[N]`) resident on the device in the variant's layout. */
export interface DeviceLinear {
  /** Output width `N` (rows of `W`). */
  readonly n: number;
  /** Input width `K` (columns of `W`). */
  readonly k: number;
  /** Name of the variant whose layout holds the weights. */
  readonly variant: string;
  /** Device memory held, in bytes. */
  readonly bytes: number;
  /** Frees the device memory (after the last submission using it); later encodes throw. */
  destroy(): void;
}

/** Arguments of one product `Y = act(X W^T + b) (+ R)`. */
export interface LinearArgs {
  /** f32 storage buffer holding `X[M, K]` row-major. */
  x: GPUBuffer;
  /** Byte offset of `X` in `x` (a multiple of 256 is recommended; 4 is required). */
  xOffset?: number;
  /** f32 storage buffer receiving `Y[M, N]` row-major; must not be `x`. */
  y: GPUBuffer;
  /** Byte offset of `Y` in `y` (multiple of 4). */
  yOffset?: number;
  /** Rows `M` (decode: the batch; prefill: batch x columns). */
  m: number;
  /** The weights, from {@linkcode MatmulKernels.uploadLinear} of the same kernels object. */
  linear: DeviceLinear;
  /** `Y = relu(X W^T + b)` (applied before any residual). */
  relu?: boolean;
  /** `R[M, N]` added after the activation: a buffer other than `x`, or `y` itself at `yOffset`. */
  residual?: GPUBuffer;
  /** Byte offset of `R` (multiple of 4). */
  residualOffset?: number;
  /**
   * The caller promises that `X` (same buffer, offset and `m`) was also the input of the
   * previous encode on this encoder and nothing wrote it since (q, k and v of one layer).
   * The texture variant then reuses its repacked copy of `X` instead of repacking it again
   * (one dispatch fewer); it repacks anyway when its last repack was of another `X`.
   */
  xUnchanged?: boolean;
  /**
   * Normalise each row of `X` first: `Y = (LN(X) W^T + b) ...` with LayerNorm parameters
   * `w`, `b` (f32 `[K]`) and `eps` (default 1e-5), biased variance as PyTorch. Only for
   * linears where {@linkcode MatmulKernels.canNormalise} is true (the texture variant
   * folds it into its repack of `X`: one dispatch instead of two).
   */
  layerNorm?: { w: GPUBuffer; b: GPUBuffer; eps?: number };
}

/** A set of compiled matmul kernels on one device. */
export interface MatmulKernels {
  /** The variant new weights are uploaded for (e.g. `v3_texture_uniform`). */
  readonly variant: string;
  /**
   * Uploads `weight [N, K]` (+ `bias [N]`): F16 stays f16 (packed pairs or an f16 texture),
   * F32 stays f32, BF16 is converted to f32 exactly. Too-large weights are split by rows.
   */
  uploadLinear(weight: Tensor, bias?: Tensor, label?: string): DeviceLinear;
  /**
   * The weights `W[N, K]` of `linear` read as a `[N, K]` row table by the embedding kernel,
   * without a second copy (a tied LM head is then uploaded and held once): the texture
   * variant's textures or the storage variants' buffers. The table stays valid as long as
   * `linear`; `null` where the variant's layout is not readable so.
   */
  rowTable(linear: DeviceLinear, label?: string): RowTable | null;
  /**
   * Records the product into `encoder` (one or more passes). Any number of encodes may share
   * one submission: per-call parameters live in immutable cached uniforms.
   */
  encode(encoder: GPUCommandEncoder, args: LinearArgs): void;
  /** Whether `encode` accepts `layerNorm` for this linear (its variant folds it in). */
  canNormalise(linear: DeviceLinear): boolean;
  /**
   * What `encode` dispatches for `m` rows of `linear`: kernel, dispatches and workgroups per
   * dispatch (`null` for the texture variant, whose shape is its row groups).
   */
  dispatchShape(
    linear: DeviceLinear,
    m: number,
  ): { kernel: string; dispatches: number; workgroups: number[] } | null;
  /** Resolves once every pipeline compiled; rejects with an error naming a failed kernel. */
  ready(): Promise<void>;
}

/** Options of {@linkcode createMatmulKernels}. */
export interface MatmulOptions {
  /** `"auto"` (default) or a name from {@linkcode MATMUL_VARIANTS}. */
  variant?: "auto" | string;
  /**
   * The adapter profile (`kernels/profile.ts`), used by `"auto"`: `kernels: "software"` gets
   * the texture variant, `"gpu"` the storage GEMV; and `subgroups` for the GEMV reduction.
   */
  profile?: AdapterProfile;
  /** The adapter's info, profiled when no `profile` is given (older callers). */
  adapterInfo?: GPUAdapterInfo;
  /** Largest storage binding to use, bytes (default: the device limit); for testing splits. */
  maxBindingBytes?: number;
  /** Largest texture side to use, texels (default: the device limit); for testing splits. */
  maxTextureDim?: number;
}

/**
 * Names of the available variants.
 *
 * @example
 * ```ts
 * MATMUL_VARIANTS.includes("v2_texture_uniform"); // true
 * ```
 */
export const MATMUL_VARIANTS: readonly string[] = [
  "v1_storage_naive",
  "v2_texture_uniform",
  "v3_storage_tiled",
  "v4_storage_gemv",
];

/** The storage-buffer variant used where the chosen one cannot hold a weight (huge K). */
const FALLBACK_VARIANT = "v3_storage_tiled";

/**
 * The variant `"auto"` picks, by the adapter profile's kernel family: the texture/uniform
 * one for `"software"` (llvmpipe, SwiftShader, fallback adapters), the storage GEMV (tiled
 * above 64 rows) for `"gpu"`. Given adapter info instead of a profile, it profiles it (the
 * one classification of `kernels/profile.ts`, `SKIPDECODE_KERNELS` included).
 *
 * @example
 * ```ts
 * autoVariant(undefined); // the storage variant
 * ```
 */
export function autoVariant(source: AdapterProfile | GPUAdapterInfo | undefined): string {
  const profile = source && "kernels" in source
    ? source
    : adapterProfile({ info: source ?? {}, features: new Set(), limits: {} });
  return profile.kernels === "software" ? "v2_texture_uniform" : "v4_storage_gemv";
}

/**
 * The variants to try, best first, for a profile or adapter info: the adapter
 * validation (`kernels/validate.ts`) keeps the first whose self-check passes.
 *
 * @example
 * ```ts
 * variantCandidates(undefined)[0]; // "v4_storage_gemv"
 * ```
 */
export function variantCandidates(source: AdapterProfile | GPUAdapterInfo | undefined): string[] {
  const first = autoVariant(source);
  return first === "v3_storage_tiled" ? [first] : [first, "v3_storage_tiled"];
}

function makeVariant(name: string, ctx: VariantContext): Variant {
  switch (name) {
    case "v1_storage_naive":
      return new StorageVariant(ctx, {
        name,
        code: naiveCode,
        kAlign: 2,
        colsPerGroup: 64,
        rowsPerGroup: 1,
        colAlign: 1,
      });
    case "v3_storage_tiled":
      return new StorageVariant(ctx, {
        name,
        code: tiledCode,
        kAlign: 16,
        colsPerGroup: 64,
        rowsPerGroup: 64,
        colAlign: 1,
      });
    case "v4_storage_gemv":
      return new StorageVariant(ctx, {
        name,
        code: tiledCode, // above gemvMaxRows rows: v3's tiles on the same layout
        kAlign: 16,
        colsPerGroup: 64,
        rowsPerGroup: 64,
        colAlign: 1,
        gemvMaxRows: 64,
      });
    case "v2_texture_uniform":
      return new TextureVariant(ctx);
    default:
      throw new Error(
        `unknown matmul variant "${name}" (known: auto, ${MATMUL_VARIANTS.join(", ")})`,
      );
  }
}

function checkOffset(name: string, off: number | undefined): number {
  const o = off ?? 0;
  if (!Number.isInteger(o) || o < 0 || o % 4 !== 0) {
    throw new Error(`matmul: ${name} must be a non-negative multiple of 4, got ${off}`);
  }
  return o;
}

/**
 * Creates the matmul kernels for `device`.
 *
 * @example
 * ```ts
 * import { loadWeights } from "../../model/mod.ts";
 * declare const adapter: GPUAdapter, device: GPUDevice, x: GPUBuffer, y: GPUBuffer;
 * const weights = await loadWeights("bundled/models/tiny-opt-e2e");
 * const mm = createMatmulKernels(device, { variant: "auto", adapterInfo: adapter.info });
 * const lin = mm.uploadLinear(weights.layers[0].fc1.weight, weights.layers[0].fc1.bias);
 * const encoder = device.createCommandEncoder();
 * mm.encode(encoder, { x, y, m: 8, linear: lin, relu: true });
 * ```
 */
export function createMatmulKernels(device: GPUDevice, options: MatmulOptions = {}): MatmulKernels {
  const ctx: VariantContext = {
    device,
    maxBindingBytes: Math.min(
      Number(device.limits.maxStorageBufferBindingSize),
      options.maxBindingBytes ?? Infinity,
    ),
    maxTextureDim: Math.min(
      Number(device.limits.maxTextureDimension2D),
      options.maxTextureDim ?? Infinity,
    ),
    subgroups: options.profile?.subgroups ?? false,
  };
  const requested = options.variant ?? "auto";
  const name = requested === "auto"
    ? autoVariant(options.profile ?? options.adapterInfo)
    : requested;
  const variants = new Map<string, Variant>();
  const variantFor = (n: string): Variant => {
    let v = variants.get(n);
    if (!v) {
      v = makeVariant(n, ctx);
      variants.set(n, v);
    }
    return v;
  };
  const main = variantFor(name);
  const owner = new WeakMap<VariantLinear, Variant>();
  let count = 0;

  return {
    variant: name,
    uploadLinear(weight: Tensor, bias?: Tensor, label?: string): DeviceLinear {
      const host = hostLinear(weight, bias, label ?? weight.name ?? `linear${count}`);
      count++;
      let v = main;
      const reason = main.unsupported?.(host);
      if (reason) v = variantFor(FALLBACK_VARIANT);
      const lin = v.upload(host);
      owner.set(lin, v);
      return lin;
    },
    encode(encoder: GPUCommandEncoder, args: LinearArgs): void {
      const lin = args.linear as VariantLinear;
      const v = owner.get(lin);
      if (!v) throw new Error("matmul: linear was not uploaded by this kernels object");
      const label = (lin as { label?: string }).label ?? "linear";
      if ((lin as { destroyed?: boolean }).destroyed) {
        throw new Error(`matmul: linear ${label} was destroyed`);
      }
      const m = args.m;
      if (!Number.isInteger(m) || m < 1) {
        throw new Error(`matmul ${label}: m must be a positive integer, got ${m}`);
      }
      const xOffset = checkOffset("xOffset", args.xOffset);
      const yOffset = checkOffset("yOffset", args.yOffset);
      const residualOffset = checkOffset("residualOffset", args.residualOffset);
      const need = (buf: GPUBuffer, off: number, bytes: number, what: string) => {
        if (off + bytes > buf.size) {
          throw new Error(
            `matmul ${label}: ${what} needs ${bytes} bytes at offset ${off}, buffer ${
              buf.label || "(unlabelled)"
            } has ${buf.size}`,
          );
        }
      };
      need(args.x, xOffset, m * lin.k * 4, `x [${m}, ${lin.k}]`);
      need(args.y, yOffset, m * lin.n * 4, `y [${m}, ${lin.n}]`);
      if (args.x === args.y) throw new Error(`matmul ${label}: x and y must be different buffers`);
      let residual: GPUBuffer | null = null;
      let accumulate = false;
      if (args.residual) {
        if (args.residual === args.x) {
          throw new Error(`matmul ${label}: residual must not be the x buffer`);
        }
        if (args.residual === args.y) {
          if (residualOffset !== yOffset) {
            throw new Error(
              `matmul ${label}: a residual in the y buffer must sit at yOffset (${yOffset}), got ${residualOffset}`,
            );
          }
          accumulate = true;
        } else {
          need(args.residual, residualOffset, m * lin.n * 4, `residual [${m}, ${lin.n}]`);
          residual = args.residual;
        }
      }
      const resolved: { -readonly [P in keyof ResolvedArgs]: ResolvedArgs[P] } = {
        x: args.x,
        xOffset,
        y: args.y,
        yOffset,
        m,
        relu: !!args.relu,
        residual,
        residualOffset,
        accumulate,
        xUnchanged: !!args.xUnchanged,
        layerNorm: null,
      };
      if (args.layerNorm) {
        if (!v.layerNorm) {
          throw new Error(`matmul ${label}: variant ${v.name} has no LayerNorm prologue`);
        }
        const { w, b } = args.layerNorm;
        need(w, 0, lin.k * 4, `layerNorm w [${lin.k}]`);
        need(b, 0, lin.k * 4, `layerNorm b [${lin.k}]`);
        if (w === args.y || b === args.y) {
          throw new Error(`matmul ${label}: layerNorm parameters must not be the y buffer`);
        }
        resolved.layerNorm = { w, b, eps: args.layerNorm.eps ?? 1e-5 };
      }
      v.encode(encoder, lin, resolved);
    },
    rowTable(linear: DeviceLinear, label?: string): RowTable | null {
      const v = owner.get(linear as VariantLinear);
      if (!v) throw new Error("matmul: linear was not uploaded by this kernels object");
      const name = label ?? (linear as { label?: string }).label ?? "linear";
      return v.rowTable?.(linear as VariantLinear, name) ?? null;
    },
    canNormalise(linear: DeviceLinear): boolean {
      return !!owner.get(linear as VariantLinear)?.layerNorm;
    },
    dispatchShape(linear: DeviceLinear, m: number) {
      const v = owner.get(linear as VariantLinear);
      if (!v) throw new Error("matmul: linear was not uploaded by this kernels object");
      return v.dispatchShape?.(linear as VariantLinear, m) ?? null;
    },
    async ready(): Promise<void> {
      await Promise.all([...variants.values()].map((v) => v.ready()));
    },
  };
}
