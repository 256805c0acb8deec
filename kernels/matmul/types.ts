/**
 * Internal types shared by the matmul variants and `mod.ts`.
 *
 * @module
 */
import type { HostLinear } from "./host.ts";
import type { RowTable } from "../tables.ts";

/** Encode arguments after validation (see `LinearArgs` in `mod.ts`). */
export interface ResolvedArgs {
  /** Activations `X[M, K]` (f32). */
  readonly x: GPUBuffer;
  /** Byte offset of `X`. */
  readonly xOffset: number;
  /** Output `Y[M, N]` (f32). */
  readonly y: GPUBuffer;
  /** Byte offset of `Y`. */
  readonly yOffset: number;
  /** Rows `M`. */
  readonly m: number;
  /** Apply ReLU before the residual. */
  readonly relu: boolean;
  /** A separate residual buffer `R[M, N]`, or `null`. */
  readonly residual: GPUBuffer | null;
  /** Byte offset of `R`. */
  readonly residualOffset: number;
  /** `Y += ...` (the residual is `Y` itself). */
  readonly accumulate: boolean;
  /** The caller promises `X` is unchanged since the previous encode (see `LinearArgs`). */
  readonly xUnchanged: boolean;
  /** LayerNorm of each row of `X` before the product (variants with `layerNorm` only). */
  readonly layerNorm: { w: GPUBuffer; b: GPUBuffer; eps: number } | null;
}

/** What a variant needs from the device and the caller's options. */
export interface VariantContext {
  /** The device. */
  readonly device: GPUDevice;
  /** Largest storage binding to use (bytes): the device limit or a smaller test limit. */
  readonly maxBindingBytes: number;
  /** Largest 2D texture side to use (texels): the device limit or a smaller test limit. */
  readonly maxTextureDim: number;
  /** The device has `subgroups` (the GEMV kernel reduces with `subgroupAdd`). */
  readonly subgroups?: boolean;
}

/** A device-resident linear as a variant keeps it. */
export interface VariantLinear {
  /** Output width `N`. */
  readonly n: number;
  /** Input width `K`. */
  readonly k: number;
  /** Name of the variant that owns it. */
  readonly variant: string;
  /** Device bytes held (weights and bias). */
  readonly bytes: number;
  /** Frees the device memory; later encodes throw. */
  destroy(): void;
}

/** One matmul implementation. */
export interface Variant {
  /** Its name (e.g. `v1_storage_naive`). */
  readonly name: string;
  /** Why this variant cannot hold `host` (the caller then falls back), or `null`. */
  unsupported?(host: HostLinear): string | null;
  /** Uploads host weights. */
  upload(host: HostLinear): VariantLinear;
  /** Records `Y = X W^T + b` for a linear this variant uploaded. */
  encode(encoder: GPUCommandEncoder, linear: VariantLinear, args: ResolvedArgs): void;
  /** Resolves when every pipeline made so far compiled; rejects naming the failed kernel. */
  ready(): Promise<void>;
  /** Whether `encode` takes a LayerNorm prologue (`ResolvedArgs.layerNorm`). */
  readonly layerNorm?: boolean;
  /** `W[N, K]` of a linear it uploaded as a row table (`N` rows of `K`), or `null`. */
  rowTable?(linear: VariantLinear, label: string): RowTable | null;
  /** What `encode` dispatches for `m` rows (storage variants; for benchmarks). */
  dispatchShape?(linear: VariantLinear, m: number): {
    kernel: string;
    dispatches: number;
    workgroups: number[];
  };
}
