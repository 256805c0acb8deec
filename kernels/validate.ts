/**
 * Adapter validation: before a WebGPU backend trusts an adapter, every kernel family runs
 * its self-check (`kernels/<op>/check.ts`, beside the op's CPU reference) on a small problem
 * whose answer the reference knows, all in one submission with one readback: the matmul
 * candidates for the adapter profile, best first (`variantCandidates`; a candidate that
 * fails to compile or to match falls back to the next that passed, reported in `skipped`),
 * and the storage variant the texture one hands huge weights to (f16 and f32 weights, bias,
 * ReLU, residual, awkward sizes), attention (the vec4
 * and the scalar kernel, padded rows), LayerNorm, the embedding (f16 token and f32 position
 * tables, left padding) and greedy selection (ties, EOS flags). An adapter whose drivers
 * compute a wrong number (wgpu's OpenGL backend on llvmpipe did, for the texture matmul) is
 * refused with an error naming each check that failed, instead of producing fluent-looking
 * garbage. Results are cached per device, kernel family and matmul request, so many backends on one
 * device validate once.
 *
 * Cost on the software adapter (2 cores, lavapipe): see `validationMs` in the report; the
 * kernels compiled here are the ones the model uses, so their compile time is not extra.
 *
 * @example
 * ```ts
 * import { requestGpu } from "./device.ts";
 * import { validateAdapter } from "./validate.ts";
 * const gpu = await requestGpu();
 * const report = await validateAdapter(gpu);
 * console.log(report.ok, report.ms.toFixed(0), report.checks.map((c) => c.name));
 * ```
 *
 * @module
 */
import { attentionSelfCheck } from "./attention/check.ts";
import type { SelfCheckContext } from "./check.ts";
import { type GpuContext, GpuError } from "./device.ts";
import { embeddingSelfCheck } from "./embedding/check.ts";
import { Recorder } from "./encode.ts";
import { layerNormSelfCheck } from "./layernorm/check.ts";
import { matmulSelfCheck } from "./matmul/check.ts";
import { createMatmulKernels, type MatmulKernels, variantCandidates } from "./matmul/mod.ts";
import { ParamArena } from "./uniforms.ts";
import { selectSelfCheck } from "./select/check.ts";
import type { Pending } from "./check.ts";

/**
 * The self-checks of the families besides matmul (whose candidates `validateAdapter` loops
 * over itself), each exported by its `kernels/<op>/check.ts` beside its reference: compile
 * the family's kernels, then record its cases.
 */
const FAMILY_CHECKS: ((gpu: GpuContext, ctx: SelfCheckContext) => Promise<() => void>)[] = [
  layerNormSelfCheck,
  attentionSelfCheck,
  embeddingSelfCheck,
  selectSelfCheck,
];

/** One check of {@linkcode validateAdapter}. */
export interface AdapterCheck {
  /** Kernel family and case, e.g. `matmul v2_texture_uniform f16`. */
  name: string;
  /** Largest absolute difference from the CPU reference (mismatches for integer outputs). */
  error: number;
  /** Largest accepted `error`. */
  tolerance: number;
  /** `error <= tolerance` (NaN fails). */
  ok: boolean;
}

/** What {@linkcode validateAdapter} found. */
export interface AdapterValidation {
  /** Every check passed. */
  ok: boolean;
  /** The adapter's description. */
  adapter: string;
  /**
   * The matmul variant to use: the first candidate whose self-checks passed (the backend
   * uses it); when none passed, the first candidate (and `ok` is false).
   */
  matmulVariant: string;
  /** Candidates tried before `matmulVariant` whose self-check failed (fell back from). */
  skipped: string[];
  /** Every check, in order. */
  checks: AdapterCheck[];
  /** Wall time of the validation, ms (kernel creation, upload, one round trip). */
  ms: number;
}

/** Options of {@linkcode validateAdapter}. */
export interface ValidateOptions {
  /**
   * The matmul variant the backend asks for: `"auto"` (default) tries the profile's
   * candidates best first (`variantCandidates`); a name tries it, then `v3_storage_tiled`.
   */
  matmulVariant?: string;
  /** The candidates to try, best first (overrides `matmulVariant`; for tests). */
  matmulCandidates?: string[];
}

/** What to install when an adapter computes wrong numbers. */
export const VALIDATION_HELP =
  "Install a Vulkan driver (on Debian: apt-get install -y --no-install-recommends libvulkan1 " +
  "mesa-vulkan-drivers), or run on the CPU (--backend cpu)";

/**
 * Runs every kernel family once on small known problems and compares with the CPU
 * reference (one submission, one readback). Never throws for wrong numbers: the report
 * says what failed; {@linkcode assertAdapterValid} turns it into an error.
 *
 * @throws {GpuError} when a kernel cannot even be created or the device is lost.
 *
 * @example
 * ```ts
 * import { requestGpu } from "./device.ts";
 * import { validateAdapter } from "./validate.ts";
 * const report = await validateAdapter(await requestGpu(), { matmulVariant: "auto" });
 * for (const c of report.checks) console.log(c.name, c.ok);
 * ```
 */
export async function validateAdapter(
  gpu: GpuContext,
  options: ValidateOptions = {},
): Promise<AdapterValidation> {
  const t0 = performance.now();
  const { device } = gpu;
  const created: { destroy(): void }[] = [];
  const buffer = (data: Float32Array | Uint32Array | Uint8Array, label: string) => {
    const buf = device.createBuffer({
      label: `validation ${label}`,
      size: Math.max(16, Math.ceil(data.byteLength / 16) * 16),
      usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST,
    });
    device.queue.writeBuffer(buf, 0, data as Uint8Array<ArrayBuffer>);
    created.push(buf);
    return buf;
  };
  const nan = (n: number, label: string) => buffer(new Float32Array(n).fill(NaN), label);
  const pending: Pending[] = [];
  const compileFailures: string[] = [];
  const arena = new ParamArena(gpu, 64);
  created.push(arena);
  const rec = new Recorder(gpu, arena);
  const check: SelfCheckContext = { buffer, nan, created, rec, pending };
  device.pushErrorScope("validation");
  const run = async (): Promise<AdapterValidation> => {
    // the other families compile their kernels (and upload their tables) concurrently
    const recorders = await Promise.all(FAMILY_CHECKS.map((f) => f(gpu, check)));
    const requested = options.matmulVariant ?? "auto";
    // "auto": the profile's candidates, best first (a failing one falls back to the next);
    // a named variant: that one only. The storage variant that takes the weights the
    // texture variant cannot hold (huge K) is checked too.
    const candidates = options.matmulCandidates ??
      (requested === "auto" ? variantCandidates(gpu.profile) : [requested]);
    const checked = [...new Set([...candidates, "v3_storage_tiled"])];
    // every candidate: compiled (a compile failure is a failed check, not an error) ...
    const variants: { name: string; mm: MatmulKernels }[] = [];
    for (const name of checked) {
      const mm = createMatmulKernels(device, { variant: name, profile: gpu.profile });
      try {
        await mm.ready();
        variants.push({ name, mm });
      } catch {
        compileFailures.push(name);
      }
    }
    rec.begin("adapter validation");
    // ... then checked with f16 and f32 weights and a LayerNorm prologue where it has one
    for (const { mm } of variants) matmulSelfCheck(check, mm);
    for (const record of recorders) record();

    // one staging buffer, one round trip
    rec.endPass();
    let offset = 0;
    const offsets = pending.map((p) => {
      const o = offset;
      offset += Math.ceil(p.bytes / 8) * 8;
      return o;
    });
    const staging = device.createBuffer({
      label: "validation readback",
      size: offset,
      usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
    });
    created.push(staging);
    pending.forEach((p, i) =>
      rec.encoder.copyBufferToBuffer(p.src, 0, staging, offsets[i], p.bytes)
    );
    device.queue.submit([rec.finish()]);
    await staging.mapAsync(GPUMapMode.READ);
    const data = staging.getMappedRange();
    const checks = pending.map((p, i): AdapterCheck => {
      const error = p.judge(data.slice(offsets[i], offsets[i] + p.bytes));
      return { name: p.name, error, tolerance: p.tolerance, ok: error <= p.tolerance };
    });
    staging.unmap();
    for (const name of compileFailures) {
      checks.unshift({ name: `matmul ${name} compiles`, error: Infinity, tolerance: 0, ok: false });
    }
    // the first candidate whose every check passed; the others' failures are fallbacks
    const passed = (v: string) =>
      !compileFailures.includes(v) &&
      checks.filter((c) => c.name.startsWith(`matmul ${v} `)).every((c) => c.ok);
    const chosen = candidates.find(passed);
    const skipped = chosen ? candidates.slice(0, candidates.indexOf(chosen)) : candidates;
    // keep the chosen variant's checks, the storage fallback's, and every failure
    const keep = (c: AdapterCheck) =>
      !c.name.startsWith("matmul ") || !c.ok || c.name.startsWith(`matmul ${chosen} `) ||
      c.name.startsWith("matmul v3_storage_tiled ");
    const ok = chosen !== undefined &&
      (chosen !== "v2_texture_uniform" || passed("v3_storage_tiled")) &&
      checks.filter((c) => !c.name.startsWith("matmul ")).every((c) => c.ok);
    return {
      ok,
      adapter: gpu.info.description || gpu.info.vendor || "unknown adapter",
      matmulVariant: chosen ?? candidates[0],
      skipped,
      checks: checks.filter(keep),
      ms: performance.now() - t0,
    };
  };
  let report: AdapterValidation | undefined;
  let failure: unknown;
  try {
    report = await run();
  } catch (e) {
    failure = e;
  }
  const err = await device.popErrorScope();
  for (const c of created) c.destroy();
  if (failure) throw failure;
  if (err) {
    throw new GpuError(`adapter validation: WebGPU validation error: ${err.message}`, "validation");
  }
  return report!;
}

/**
 * The error that refuses an adapter computing wrong results (kind `"adapter"`), with the
 * validation report.
 *
 * @example
 * ```ts
 * import { AdapterRejectedError } from "./validate.ts";
 * try {
 *   // await createWebGpuBackend(weights);
 * } catch (e) {
 *   if (e instanceof AdapterRejectedError) console.error(e.failed.join(", "));
 * }
 * ```
 */
export class AdapterRejectedError extends GpuError {
  /** The validation that failed. */
  readonly report: AdapterValidation;
  /** Names of the failed checks. */
  readonly failed: string[];
  /** Builds the message from a failed report. */
  constructor(report: AdapterValidation) {
    const bad = report.checks.filter((c) => !c.ok);
    super(
      `the WebGPU adapter "${report.adapter}" computes wrong results: ` +
        bad.map((c) => `${c.name} (error ${c.error}, tolerance ${c.tolerance})`).join("; ") +
        ` differ from the CPU reference. Refusing it rather than reporting wrong numbers. ` +
        `${VALIDATION_HELP}.`,
      "adapter",
    );
    this.name = "AdapterRejectedError";
    this.report = report;
    this.failed = bad.map((c) => c.name);
  }
}

const cache = new WeakMap<GPUDevice, Map<string, Promise<AdapterValidation>>>();

/**
 * Validates the adapter once per device and matmul variant (later calls reuse the result)
 * and throws when any check failed.
 *
 * @throws {AdapterRejectedError} (a {@linkcode GpuError} of kind `"adapter"`) naming the
 *   adapter, every failed check with its error, and what to do; a `GpuError` of another kind
 *   when validation could not run.
 *
 * @example
 * ```ts
 * import { requestGpu } from "./device.ts";
 * import { assertAdapterValid } from "./validate.ts";
 * const report = await assertAdapterValid(await requestGpu());
 * console.log(`validated in ${report.ms.toFixed(0)} ms`);
 * ```
 */
export async function assertAdapterValid(
  gpu: GpuContext,
  options: ValidateOptions = {},
): Promise<AdapterValidation> {
  let perDevice = cache.get(gpu.device);
  if (!perDevice) {
    perDevice = new Map();
    cache.set(gpu.device, perDevice);
  }
  const key = `${gpu.profile.kernels}:${
    (options.matmulCandidates ?? [options.matmulVariant ?? "auto"]).join(",")
  }`;
  let result = perDevice.get(key);
  if (!result) {
    result = validateAdapter(gpu, options);
    perDevice.set(key, result);
    result.catch(() => perDevice.delete(key)); // a failure to run is retried next time
  }
  const report = await result;
  if (!report.ok) throw new AdapterRejectedError(report);
  return report;
}
