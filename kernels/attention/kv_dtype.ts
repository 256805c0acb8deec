/**
 * The storage type of the KV cache: `"f32"` (4 bytes per element) or `"f16"` (2 bytes, where
 * the device has `shader-f16`). Every kernel that reads or writes the cache (the column
 * attention kernels of `wgsl.ts`, the paged kernel and `kv_write.wgsl` of `paged.ts`,
 * `kv_pack.wgsl`) declares its cache element type once, as the line `alias KV = f32;`, and
 * converts on load (`f32(k[i])`, `vec4<f32>(v[i])`) and on store (`KV(x)`);
 * {@linkcode withKvDtype} turns that line into `enable f16; alias KV = f16;`. Arithmetic
 * stays f32: only the stored keys and values are rounded, to the nearest f16
 * ({@linkcode roundKv} is the CPU reference of that rounding).
 *
 * @example
 * ```ts
 * import { roundKv, withKvDtype } from "./kv_dtype.ts";
 * const code = withKvDtype("// k\nalias KV = f32;\nvar<private> x: KV;", "f16");
 * console.log(code.includes("enable f16;")); // true
 * console.log(roundKv(Float32Array.of(0.1), "f16")[0]); // 0.0999755859375
 * ```
 *
 * @module
 */
import { GpuError } from "../device.ts";
import type { AdapterProfile } from "../profile.ts";

/** Storage type of the KV cache. */
export type KvDtype = "f32" | "f16";

/** A backend's `kvDtype` option: a storage type, or `"auto"` (the adapter profile decides). */
export type KvDtypeOption = KvDtype | "auto";

/** The line every KV-touching kernel declares its cache element type with. */
export const KV_ALIAS = "alias KV = f32;";

/**
 * Bytes per stored KV element.
 *
 * @example
 * ```ts
 * import { kvElementBytes } from "./kv_dtype.ts";
 * console.log(kvElementBytes("f16")); // 2
 * ```
 */
export function kvElementBytes(dtype: KvDtype): number {
  return dtype === "f16" ? 2 : 4;
}

/**
 * The WGSL `code` with its cache element type set to `dtype` (the {@linkcode KV_ALIAS} line
 * replaced; `enable f16;` must precede every declaration, so the alias line sits before
 * them).
 *
 * @throws {Error} when `code` has no {@linkcode KV_ALIAS} line.
 *
 * @example
 * ```ts
 * import { withKvDtype } from "./kv_dtype.ts";
 * console.log(withKvDtype("alias KV = f32;", "f32")); // alias KV = f32;
 * ```
 */
export function withKvDtype(code: string, dtype: KvDtype): string {
  if (!code.includes(KV_ALIAS)) {
    throw new Error(`KV kernel source lacks the line "${KV_ALIAS}"`);
  }
  return dtype === "f32" ? code : code.replace(KV_ALIAS, "enable f16;\nalias KV = f16;");
}

/**
 * CPU reference of the stored rounding: `x` rounded in place to `dtype` (f16: nearest,
 * ties to even, as the kernels' `f16(x)` conversion; f32: unchanged). Returns `x`.
 *
 * @example
 * ```ts
 * import { roundKv } from "./kv_dtype.ts";
 * console.log(roundKv(Float32Array.of(1 / 3), "f16")[0]); // 0.333251953125
 * ```
 */
export function roundKv(x: Float32Array, dtype: KvDtype): Float32Array {
  if (dtype === "f16") { for (let i = 0; i < x.length; i++) x[i] = Math.f16round(x[i]); }
  return x;
}

/**
 * Checks an option value (`kvDtype` of the CPU backend; the WebGPU one also takes `"auto"`).
 *
 * @throws {RangeError} naming the option when `value` is neither `"f32"` nor `"f16"`.
 *
 * @example
 * ```ts
 * import { checkKvDtype } from "./kv_dtype.ts";
 * checkKvDtype("f16", "kvDtype"); // ok
 * ```
 */
export function checkKvDtype(value: unknown, option: string): KvDtype | undefined {
  if (value === undefined || value === "f32" || value === "f16") return value;
  throw new RangeError(`${option} must be "f32" or "f16", got ${JSON.stringify(value)}`);
}

/**
 * The KV storage type a WebGPU backend uses for its `kvDtype` option. Default `"f32"` on
 * every adapter: an f16 cache moves logits by 2.6e-4 to 7.7e-4 (relative L2, measured on
 * random checkpoints) from the f32 reference, beyond the 1e-4 CPU/GPU tolerance, so it is
 * asked for. `"auto"` lets the adapter profile decide: f16 on a hardware adapter running the
 * GPU kernel family with `shader-f16` (half the KV memory and bandwidth), else f32.
 *
 * @throws {GpuError} (kind `"device"`) naming the adapter when f16 is requested and the
 *   device lacks `shader-f16`; {@linkcode RangeError} for another value.
 *
 * @example
 * ```ts
 * import { resolveKvDtype } from "./kv_dtype.ts";
 * import { adapterProfile } from "../profile.ts";
 * const p = adapterProfile({ info: { description: "NVIDIA H100", vendor: "4318" }, features: new Set(["shader-f16"]), limits: {} });
 * console.log(resolveKvDtype(p), resolveKvDtype(p, "auto")); // f32 f16
 * ```
 */
export function resolveKvDtype(profile: AdapterProfile, requested?: KvDtypeOption): KvDtype {
  if (requested === "auto") {
    return profile.f16 && !profile.software && profile.kernels === "gpu" ? "f16" : "f32";
  }
  const want = checkKvDtype(requested, "kvDtype");
  if (want === "f16" && !profile.f16) {
    throw new GpuError(
      `kvDtype "f16" needs the "shader-f16" feature, which "${profile.description}" does not ` +
        `offer (or the device was created without it); use kvDtype "f32"`,
      "device",
    );
  }
  return want ?? "f32";
}
