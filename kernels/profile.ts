/**
 * The adapter profile: what every kernel factory needs to know about the adapter, computed
 * once when the device is requested (`requestGpu` in `device.ts`) and carried on the
 * `GpuContext`. It holds the ONE software/hardware classification of the toolkit (llvmpipe,
 * lavapipe and SwiftShader are software; Deno builds differ on whether `isFallbackAdapter`
 * sits on the adapter or on its info, so both are read), the vendor from the PCI id, the
 * `shader-f16` and `subgroups` features (with subgroup sizes where exposed) and the limits.
 *
 * `kernels` says which kernel family the ops use: `"software"` (the llvmpipe-tuned kernels:
 * texture matmul, 8-wide workgroups, lanes attention) or `"gpu"` (storage-buffer GEMV,
 * 64-wide workgroups). It follows `software` unless the environment variable
 * `SKIPDECODE_KERNELS` (`gpu` or `software`) or an explicit override says otherwise, so CI
 * can validate the GPU kernels on llvmpipe.
 *
 * @example
 * ```ts
 * import { adapterProfile } from "./profile.ts";
 * const p = adapterProfile({
 *   info: { vendor: "4318", description: "NVIDIA H100" },
 *   features: new Set(["shader-f16"]),
 *   limits: {},
 * });
 * console.log(p.vendor, p.software, p.kernels); // nvidia false gpu
 * ```
 *
 * @module
 */

/** Which kernel family the ops use. */
export type KernelClass = "software" | "gpu";

/** What the kernel factories know about the adapter. */
export interface AdapterProfile {
  /** A software rasteriser (llvmpipe, lavapipe, SwiftShader, a fallback adapter). */
  readonly software: boolean;
  /** The kernel family every op uses: by `software` unless overridden. */
  readonly kernels: KernelClass;
  /** Where `kernels` came from. */
  readonly kernelsFrom: "adapter" | "SKIPDECODE_KERNELS" | "option";
  /** Vendor name from the PCI id (`nvidia`, `amd`, `intel`, `apple`, `mesa`, ...) or `unknown`. */
  readonly vendor: string;
  /** The PCI vendor id, or `null` when the adapter does not expose one. */
  readonly vendorId: number | null;
  /** The adapter's description (or vendor/architecture when empty). */
  readonly description: string;
  /** `shader-f16` is enabled on the device. */
  readonly f16: boolean;
  /** `subgroups` is enabled on the device. */
  readonly subgroups: boolean;
  /** Smallest and largest subgroup size, where the adapter exposes them (else `null`). */
  readonly subgroupSizes: readonly [number, number] | null;
  /** Device limits as numbers. */
  readonly limits: Readonly<Record<string, number>>;
}

/** What {@linkcode adapterProfile} reads (a `GPUAdapter`, or its parts). */
export interface ProfileSource {
  /** The adapter info. */
  info: Partial<GPUAdapterInfo> & { isFallbackAdapter?: boolean };
  /** Features enabled on the device (or offered by the adapter). */
  features: ReadonlySet<string> | GPUSupportedFeatures;
  /** Limits (numbers or BigInts). */
  limits: Record<string, unknown> | GPUSupportedLimits;
  /** Some Deno builds put the flag on the adapter itself. */
  isFallbackAdapter?: boolean;
}

const VENDORS: Record<number, string> = {
  0x10de: "nvidia",
  0x1002: "amd",
  0x1022: "amd",
  0x8086: "intel",
  0x106b: "apple",
  0x5143: "qualcomm",
  0x13b5: "arm",
  0x1010: "imagination",
  0x10005: "mesa",
  0x1ae0: "google",
  0x1414: "microsoft",
};

const SOFTWARE_NAMES = /llvmpipe|lavapipe|swiftshader|softpipe|basic render driver/;

/** The PCI vendor id of `vendor` (a decimal or `0x` hex string), else `null`. */
function pciId(vendor: string | undefined): number | null {
  if (!vendor) return null;
  const s = vendor.trim().toLowerCase();
  const n = /^0x[0-9a-f]+$/.test(s) ? parseInt(s, 16) : /^[0-9]+$/.test(s) ? Number(s) : NaN;
  return Number.isFinite(n) ? n : null;
}

/**
 * Reads `SKIPDECODE_KERNELS` (`gpu` or `software`); `undefined` when unset or not readable
 * (no `--allow-env`).
 *
 * @throws {Error} naming the variable when it holds another value.
 *
 * @example
 * ```ts
 * import { kernelsFromEnv } from "./profile.ts";
 * console.log(kernelsFromEnv() ?? "by the adapter");
 * ```
 */
export function kernelsFromEnv(): KernelClass | undefined {
  let v: string | undefined;
  try {
    v = Deno.env.get("SKIPDECODE_KERNELS");
  } catch {
    return undefined;
  }
  if (v === undefined || v === "" || v === "auto") return undefined;
  if (v === "gpu" || v === "software") return v;
  throw new Error(`SKIPDECODE_KERNELS must be "gpu", "software" or "auto", got "${v}"`);
}

/**
 * Profiles an adapter (see the module doc). `kernels` overrides the kernel family (else
 * `SKIPDECODE_KERNELS`, else by the classification).
 *
 * @example
 * ```ts
 * import { adapterProfile } from "./profile.ts";
 * const p = adapterProfile({
 *   info: { vendor: "65541", description: "llvmpipe (LLVM 15.0.6, 256 bits)" },
 *   features: new Set(["shader-f16", "timestamp-query"]),
 *   limits: { maxBufferSize: 2147483647n },
 * }, "gpu");
 * console.log(p.software, p.kernels, p.vendor); // true gpu mesa
 * ```
 */
export function adapterProfile(src: ProfileSource, kernels?: KernelClass): AdapterProfile {
  const info = src.info;
  const description = info.description || [info.vendor, info.architecture].filter(Boolean)
    .join(" ") ||
    "unknown adapter";
  const text = `${info.description ?? ""} ${info.device ?? ""} ${info.architecture ?? ""}`
    .toLowerCase();
  const software = Boolean(src.isFallbackAdapter ?? info.isFallbackAdapter) ||
    SOFTWARE_NAMES.test(text);
  const vendorId = pciId(info.vendor);
  const vendor = vendorId !== null
    ? VENDORS[vendorId] ?? "unknown"
    : (info.vendor || "unknown").toLowerCase();
  const limits: Record<string, number> = {};
  const raw = src.limits as unknown as Record<string, unknown>;
  for (const key in raw) {
    const v = raw[key];
    if (typeof v === "number" || typeof v === "bigint") limits[key] = Number(v);
  }
  const env = kernels === undefined ? kernelsFromEnv() : undefined;
  const chosen: KernelClass = kernels ?? env ?? (software ? "software" : "gpu");
  const sgMin = Number((info as { subgroupMinSize?: number }).subgroupMinSize);
  const sgMax = Number((info as { subgroupMaxSize?: number }).subgroupMaxSize);
  return {
    software,
    kernels: chosen,
    kernelsFrom: kernels ? "option" : env ? "SKIPDECODE_KERNELS" : "adapter",
    vendor,
    vendorId,
    description,
    f16: src.features.has("shader-f16"),
    subgroups: src.features.has("subgroups"),
    subgroupSizes: sgMin > 0 && sgMax > 0 ? [sgMin, sgMax] : null,
    limits,
  };
}

/**
 * The same profile with another kernel family (what `SKIPDECODE_KERNELS` does, per call).
 *
 * @example
 * ```ts
 * import { adapterProfile, withKernelClass } from "./profile.ts";
 * const p = adapterProfile({ info: { description: "llvmpipe" }, features: new Set(), limits: {} });
 * console.log(withKernelClass(p, "gpu").kernels); // gpu
 * ```
 */
export function withKernelClass(profile: AdapterProfile, kernels: KernelClass): AdapterProfile {
  return { ...profile, kernels, kernelsFrom: "option" };
}

/**
 * One line for logs and benchmark headers.
 *
 * @example
 * ```ts
 * import { adapterProfile, describeProfile } from "./profile.ts";
 * const p = adapterProfile({ info: { description: "llvmpipe" }, features: new Set(), limits: {} });
 * console.log(describeProfile(p)); // llvmpipe: software adapter, software kernels, ...
 * ```
 */
export function describeProfile(p: AdapterProfile): string {
  const sg = p.subgroups
    ? `subgroups${p.subgroupSizes ? ` ${p.subgroupSizes[0]}-${p.subgroupSizes[1]}` : ""}`
    : "no subgroups";
  return `${p.description}: ${p.software ? "software" : "hardware"} adapter, ${p.kernels} ` +
    `kernels (${p.kernelsFrom}), vendor ${p.vendor}, ${p.f16 ? "shader-f16" : "no shader-f16"}, ` +
    sg;
}
