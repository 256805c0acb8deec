/**
 * WebGPU device setup and the error handling every kernel shares: requesting an adapter and
 * a device with the adapter's maximum limits, compiling kernels with their compiler messages
 * in the error, allocating buffers with size checks and out-of-memory scopes that name the
 * tensor, and turning a lost device into an error on the next use.
 *
 * @example
 * ```ts
 * import { gpuAvailable, requestGpu } from "./device.ts";
 * if (await gpuAvailable()) {
 *   const gpu = await requestGpu();
 *   console.log(gpu.info.description, gpu.limits.maxStorageBufferBindingSize);
 *   gpu.device.destroy();
 * }
 * ```
 *
 * @module
 */

import {
  type AdapterProfile,
  adapterProfile,
  type KernelClass,
  withKernelClass,
} from "./profile.ts";

/** What went wrong, coarsely. */
export type GpuErrorKind =
  | "no-adapter"
  | "device"
  | "lost"
  | "too-large"
  | "out-of-memory"
  | "shader"
  | "validation"
  | "adapter";

/**
 * The one error type of the WebGPU layer; its message names the kernel, tensor or buffer at
 * fault and says what to do where there is something to do.
 *
 * @example
 * ```ts
 * import { GpuError } from "./device.ts";
 * const e = new GpuError("no adapter", "no-adapter");
 * console.log(e.kind); // "no-adapter"
 * ```
 */
export class GpuError extends Error {
  /** The coarse category. */
  readonly kind: GpuErrorKind;
  /** Makes an error of a kind, with an optional cause. */
  constructor(message: string, kind: GpuErrorKind, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "GpuError";
    this.kind = kind;
  }
}

/** Device limits as plain numbers (Deno may report some as BigInt). */
export interface GpuLimits {
  /** Largest buffer. */
  maxBufferSize: number;
  /** Largest storage-buffer binding. */
  maxStorageBufferBindingSize: number;
  /** Largest uniform-buffer binding. */
  maxUniformBufferBindingSize: number;
  /** Storage buffers one compute stage may bind. */
  maxStorageBuffersPerShaderStage: number;
  /** Workgroup memory in bytes. */
  maxComputeWorkgroupStorageSize: number;
  /** Invocations per workgroup. */
  maxComputeInvocationsPerWorkgroup: number;
  /** Workgroups per dispatch dimension. */
  maxComputeWorkgroupsPerDimension: number;
  /** Alignment of dynamic uniform offsets. */
  minUniformBufferOffsetAlignment: number;
  /** Alignment of storage binding offsets. */
  minStorageBufferOffsetAlignment: number;
  /** Every other limit, by its WebGPU name. */
  [name: string]: number;
}

/** An adapter and device ready for the kernels. */
export interface GpuContext {
  /** The adapter. */
  adapter: GPUAdapter;
  /** The device, created with the adapter's maximum limits. */
  device: GPUDevice;
  /** Adapter description (vendor, architecture, description). */
  info: GPUAdapterInfo;
  /** The device's limits as numbers. */
  limits: GpuLimits;
  /** Features enabled on the device. */
  features: ReadonlySet<string>;
  /** Whether the adapter is a software fallback (llvmpipe); same as `profile.software`. */
  isFallbackAdapter: boolean;
  /**
   * The adapter profile (`profile.ts`): the one software/hardware classification, vendor,
   * features, limits, and the kernel family every op factory uses (`profile.kernels`).
   */
  profile: AdapterProfile;
  /** Set once the device is lost; {@linkcode assertAlive} then throws. */
  lost?: GPUDeviceLostInfo;
}

/** Options of {@linkcode requestGpu}. */
export interface RequestGpuOptions {
  /** Adapter power preference. */
  powerPreference?: GPUPowerPreference;
  /** Request `timestamp-query` when the adapter has it (default true). */
  timestamps?: boolean;
  /** Kernel family to use (default: `SKIPDECODE_KERNELS`, else by the adapter). */
  kernels?: KernelClass;
}

const NO_ADAPTER_HELP = "navigator.gpu.requestAdapter() returned no adapter. Without a GPU, " +
  "install a software Vulkan adapter (on Debian: apt-get install -y --no-install-recommends " +
  "libvulkan1 mesa-vulkan-drivers) and set XDG_RUNTIME_DIR to a private directory.";

let runtimeDirChecked = false;

/**
 * Mesa's Vulkan loader prints "XDG_RUNTIME_DIR is invalid or not set" on every adapter
 * request without that variable; this points it at a private temporary folder when it is
 * unset, or at `.cache/xdg-runtime` in the working directory when the temporary folder is
 * not writable (best effort: without any write or env permission nothing changes and the
 * warning is harmless). Called before every adapter request of this module.
 *
 * @example
 * ```ts
 * import { quietVulkanRuntimeDir } from "./device.ts";
 * quietVulkanRuntimeDir();
 * ```
 */
export function quietVulkanRuntimeDir(): void {
  if (runtimeDirChecked) return;
  runtimeDirChecked = true;
  try {
    if (Deno.env.get("XDG_RUNTIME_DIR")) return;
  } catch {
    return; // no permission to read it: keep the harmless warning
  }
  // A private temporary folder; else `.cache/xdg-runtime` under the working directory (the
  // CLI tasks may write `./.cache` but not the temporary folder).
  const candidates = [
    () => Deno.makeTempDirSync({ prefix: "skipdecode-xdg-" }),
    () => {
      const dir = `${Deno.cwd()}/.cache/xdg-runtime`;
      Deno.mkdirSync(dir, { recursive: true });
      return dir;
    },
  ];
  for (const make of candidates) {
    try {
      const dir = make();
      Deno.chmodSync(dir, 0o700);
      Deno.env.set("XDG_RUNTIME_DIR", dir);
      return;
    } catch { /* no permission here: try the next place */ }
  }
}

function limitsOf(source: GPUSupportedLimits): GpuLimits {
  const out: Record<string, number> = {};
  const src = source as unknown as Record<string, unknown>;
  for (const key in src) {
    const v = src[key];
    if (typeof v === "number" || typeof v === "bigint") out[key] = Number(v);
  }
  return out as GpuLimits;
}

/**
 * Requests an adapter and a device with the adapter's maximum limits (and
 * `timestamp-query` when offered). A lost device is recorded on the context; every kernel
 * entry point calls {@linkcode assertAlive}.
 *
 * @throws {GpuError} `no-adapter` (with installation advice) or `device`.
 *
 * @example
 * ```ts
 * import { requestGpu } from "./device.ts";
 * const gpu = await requestGpu();
 * console.log(gpu.isFallbackAdapter);
 * ```
 */
export async function requestGpu(options: RequestGpuOptions = {}): Promise<GpuContext> {
  if (typeof navigator === "undefined" || !("gpu" in navigator) || !navigator.gpu) {
    throw new GpuError(`WebGPU is not available in this runtime. ${NO_ADAPTER_HELP}`, "no-adapter");
  }
  quietVulkanRuntimeDir();
  const adapter = await navigator.gpu.requestAdapter({
    powerPreference: options.powerPreference,
  });
  if (!adapter) throw new GpuError(NO_ADAPTER_HELP, "no-adapter");
  const requiredLimits: Record<string, number> = {};
  const al = adapter.limits as unknown as Record<string, unknown>;
  for (const key in al) {
    const v = al[key];
    if (typeof v === "number" || typeof v === "bigint") requiredLimits[key] = Number(v);
  }
  const requiredFeatures: GPUFeatureName[] = [];
  if ((options.timestamps ?? true) && adapter.features.has("timestamp-query")) {
    requiredFeatures.push("timestamp-query");
  }
  // shader-f16 and subgroups where offered (the GPU kernels use them; others ignore them)
  for (const f of ["shader-f16", "subgroups"] as GPUFeatureName[]) {
    if (adapter.features.has(f)) requiredFeatures.push(f);
  }
  let device: GPUDevice;
  try {
    device = await adapter.requestDevice({ requiredLimits, requiredFeatures });
  } catch (e) {
    throw new GpuError(
      `requestDevice failed on adapter "${adapter.info.description}": ${(e as Error).message}`,
      "device",
      { cause: e },
    );
  }
  const features = new Set([...device.features]);
  const profile = adapterProfile({
    info: adapter.info,
    features,
    limits: device.limits,
    isFallbackAdapter: (adapter as unknown as { isFallbackAdapter?: boolean }).isFallbackAdapter,
  }, options.kernels);
  const ctx: GpuContext = {
    adapter,
    device,
    info: adapter.info,
    limits: limitsOf(device.limits),
    features,
    isFallbackAdapter: profile.software,
    profile,
  };
  device.lost.then((info) => {
    ctx.lost = info;
  });
  return ctx;
}

/**
 * The same device seen with another kernel family: a view of `ctx` (its `lost` state stays
 * shared) whose `profile.kernels` is `kernels`, for running the GPU kernels on llvmpipe (or
 * the software ones on a GPU) in the same process. Returns `ctx` itself when nothing changes.
 *
 * @example
 * ```ts
 * import { requestGpu, withKernels } from "./device.ts";
 * const gpu = await requestGpu();
 * const forced = withKernels(gpu, "gpu");
 * console.log(forced.profile.kernels, forced.device === gpu.device); // gpu true
 * ```
 */
export function withKernels(ctx: GpuContext, kernels: KernelClass | undefined): GpuContext {
  if (!kernels || kernels === ctx.profile.kernels) return ctx;
  const view = Object.create(ctx) as GpuContext;
  Object.defineProperty(view, "profile", {
    value: withKernelClass(ctx.profile, kernels),
    enumerable: true,
  });
  return view;
}

let availability: Promise<boolean> | undefined;

/**
 * Whether `navigator.gpu.requestAdapter()` gives an adapter (cached after the first call).
 *
 * @example
 * ```ts
 * import { gpuAvailable } from "./device.ts";
 * console.log(await gpuAvailable());
 * ```
 */
export function gpuAvailable(): Promise<boolean> {
  availability ??= (async () => {
    try {
      if (typeof navigator === "undefined" || !navigator.gpu) return false;
      quietVulkanRuntimeDir();
      return (await navigator.gpu.requestAdapter()) !== null;
    } catch {
      return false;
    }
  })();
  return availability;
}

/**
 * Throws when the device was lost, naming the reason and the operation attempted.
 *
 * @example
 * ```ts
 * import { assertAlive, requestGpu } from "./device.ts";
 * const gpu = await requestGpu();
 * assertAlive(gpu, "decode"); // fine
 * ```
 */
export function assertAlive(ctx: GpuContext, operation: string): void {
  if (ctx.lost) {
    throw new GpuError(
      `the WebGPU device was lost (reason: ${ctx.lost.reason ?? "unknown"}` +
        `${ctx.lost.message ? `, ${ctx.lost.message.trim()}` : ""}); cannot run ${operation}. ` +
        "Create a new backend.",
      "lost",
    );
  }
}

const shaderTransforms = new WeakMap<GPUDevice, (kernel: string, code: string) => string>();

/**
 * Installs (or, with no `transform`, removes) a function that rewrites the WGSL of every
 * kernel compiled on `device` afterwards: {@linkcode createKernel} and the matmul
 * pipelines pass their source through {@linkcode shaderSource}. It exists to test what
 * catches a wrong kernel (the adapter validation of `kernels/validate.ts`) with a
 * deliberately broken one; nothing else installs one.
 *
 * @example
 * ```ts
 * import { requestGpu, setShaderTransform } from "./device.ts";
 * const gpu = await requestGpu();
 * // LayerNorm without its shift: every output is off by b
 * setShaderTransform(gpu.device, (kernel, code) =>
 *   kernel.startsWith("layernorm") ? code.replace("+ b[", "+ 0.0 * b[") : code);
 * ```
 */
export function setShaderTransform(
  device: GPUDevice,
  transform?: (kernel: string, code: string) => string,
): void {
  if (transform) shaderTransforms.set(device, transform);
  else shaderTransforms.delete(device);
}

/**
 * The WGSL to compile for `kernel` on `device`: `code`, rewritten by the transform
 * {@linkcode setShaderTransform} installed, if any.
 *
 * @example
 * ```ts
 * import { requestGpu, shaderSource } from "./device.ts";
 * const gpu = await requestGpu();
 * shaderSource(gpu.device, "noop", "@compute @workgroup_size(1) fn main() {}"); // unchanged
 * ```
 */
export function shaderSource(device: GPUDevice, kernel: string, code: string): string {
  const transform = shaderTransforms.get(device);
  return transform ? transform(kernel, code) : code;
}

/**
 * How a kernel binding is used: a uniform, a read-only or read-write storage buffer, or a
 * `texture_2d_array<u32>` / `texture_2d_array<f32>` read with `textureLoad` (a weight
 * texture of the matmul kernels that another kernel reads, e.g. a tied embedding).
 */
export type BindingKind = "uniform" | "read" | "storage" | "texture-uint" | "texture-float";

/** A compiled compute kernel with its explicit bind group layout. */
export interface Kernel {
  /** The kernel's name (used in errors). */
  name: string;
  /** The pipeline. */
  pipeline: GPUComputePipeline;
  /** Layout of bind group 0. */
  layout: GPUBindGroupLayout;
  /** Binding kinds, by binding index. */
  bindings: readonly BindingKind[];
}

/**
 * Compiles a WGSL compute kernel (entry point `main`) with an explicit layout: binding 0 of
 * group 0 is a uniform with a dynamic offset (the per-dispatch parameters), the others are
 * as listed. A compile error becomes a {@linkcode GpuError} naming the kernel, with the
 * compiler's messages and line numbers.
 *
 * @param bindings Kinds of bindings `0 .. n-1`; binding 0 must be `"uniform"`.
 *
 * @example
 * ```ts
 * import { createKernel, requestGpu } from "./device.ts";
 * const gpu = await requestGpu();
 * const k = await createKernel(gpu, "noop", `
 *   struct P { n: u32 }
 *   @group(0) @binding(0) var<uniform> p: P;
 *   @compute @workgroup_size(1) fn main() { _ = p.n; }`, ["uniform"]);
 * console.log(k.name);
 * ```
 */
export async function createKernel(
  ctx: GpuContext,
  name: string,
  code: string,
  bindings: readonly BindingKind[],
): Promise<Kernel> {
  assertAlive(ctx, `compiling kernel "${name}"`);
  const { device } = ctx;
  device.pushErrorScope("validation");
  const module = device.createShaderModule({ code: shaderSource(device, name, code), label: name });
  const info = await module.getCompilationInfo();
  const errors = info.messages.filter((m) => m.type === "error");
  if (errors.length > 0) {
    await device.popErrorScope();
    const text = errors.map((m) => `line ${m.lineNum}:${m.linePos}: ${m.message.trim()}`)
      .join("\n");
    throw new GpuError(`WGSL kernel "${name}" failed to compile:\n${text}`, "shader");
  }
  const layout = device.createBindGroupLayout({
    label: name,
    entries: bindings.map((kind, binding): GPUBindGroupLayoutEntry =>
      kind === "texture-uint" || kind === "texture-float"
        ? {
          binding,
          visibility: GPUShaderStage.COMPUTE,
          texture: {
            sampleType: kind === "texture-uint" ? "uint" : "unfilterable-float",
            viewDimension: "2d-array",
          },
        }
        : {
          binding,
          visibility: GPUShaderStage.COMPUTE,
          buffer: kind === "uniform"
            ? { type: "uniform" as const, hasDynamicOffset: binding === 0 }
            : { type: kind === "read" ? "read-only-storage" as const : "storage" as const },
        }
    ),
  });
  const pipeline = device.createComputePipeline({
    label: name,
    layout: device.createPipelineLayout({ bindGroupLayouts: [layout], label: name }),
    compute: { module, entryPoint: "main" },
  });
  const err = await device.popErrorScope();
  if (err) {
    throw new GpuError(`WGSL kernel "${name}" is invalid: ${err.message.trim()}`, "shader");
  }
  return { name, pipeline, layout, bindings };
}

/** A buffer allocation request. */
export interface BufferRequest {
  /** What the buffer holds (named in errors), e.g. a tensor name. */
  label: string;
  /** Size in bytes (rounded up to 4). */
  size: number;
  /** Usage flags; default STORAGE | COPY_SRC | COPY_DST. */
  usage?: number;
  /** Whether it is bound whole as a storage buffer (then it must fit one binding). */
  bindWhole?: boolean;
}

/**
 * Collects allocations and reports an out-of-memory (or validation) failure naming the
 * buffer at fault. Each allocation gets its own error scope; all scopes are popped together
 * by {@linkcode AllocationGroup.check}, so a model load costs no round trip per tensor.
 *
 * @example
 * ```ts
 * import { AllocationGroup, requestGpu } from "./device.ts";
 * const gpu = await requestGpu();
 * const group = new AllocationGroup(gpu);
 * const buf = group.buffer({ label: "x", size: 1024 });
 * await group.check();
 * buf.destroy();
 * ```
 */
export class AllocationGroup {
  #ctx: GpuContext;
  #labels: string[] = [];

  /** Starts an empty group on a device. */
  constructor(ctx: GpuContext) {
    this.#ctx = ctx;
  }

  /**
   * Runs `fn` (which may allocate and upload) under its own out-of-memory and validation
   * scopes, attributing failures to `label`.
   */
  run<T>(label: string, fn: () => T): T {
    assertAlive(this.#ctx, `allocating ${label}`);
    const { device } = this.#ctx;
    device.pushErrorScope("out-of-memory");
    device.pushErrorScope("validation");
    this.#labels.push(label);
    return fn();
  }

  /**
   * Allocates a buffer after checking its size against the device limits.
   *
   * @throws {GpuError} `too-large` naming the buffer and the limit.
   */
  buffer(request: BufferRequest): GPUBuffer {
    checkBufferSize(this.#ctx, request);
    return this.run(request.label, () =>
      this.#ctx.device.createBuffer({
        label: request.label,
        size: Math.max(4, Math.ceil(request.size / 4) * 4),
        usage: request.usage ??
          (GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST),
      }));
  }

  /**
   * Pops every scope this group pushed; throws for the first failure.
   *
   * @throws {GpuError} `out-of-memory` or `validation`, naming the buffer.
   */
  async check(): Promise<void> {
    const { device } = this.#ctx;
    const pops: Promise<GPUError | null>[] = [];
    const labels = this.#labels.splice(0);
    for (let i = labels.length - 1; i >= 0; i--) {
      pops.push(device.popErrorScope(), device.popErrorScope());
    }
    const errors = await Promise.all(pops);
    // errors[2k] is the validation scope and errors[2k+1] the OOM scope of labels[n-1-k].
    for (let k = labels.length - 1; k >= 0; k--) {
      const label = labels[labels.length - 1 - k];
      const validation = errors[2 * k];
      const oom = errors[2 * k + 1];
      if (oom) {
        throw new GpuError(
          `out of GPU memory while allocating ${label} on "${this.#ctx.info.description}": ` +
            `${oom.message.trim()}. The model does not fit this device; use a smaller model ` +
            "or batch.",
          "out-of-memory",
        );
      }
      if (validation) {
        throw new GpuError(
          `allocating ${label} failed: ${validation.message.trim()}`,
          "validation",
        );
      }
    }
    assertAlive(this.#ctx, "loading");
  }
}

/**
 * Checks a buffer size against `maxBufferSize` (and `maxStorageBufferBindingSize` when the
 * buffer is bound whole).
 *
 * @throws {GpuError} `too-large` naming the buffer, its size and the limit.
 *
 * @example
 * ```ts
 * import { checkBufferSize, requestGpu } from "./device.ts";
 * const gpu = await requestGpu();
 * checkBufferSize(gpu, { label: "kv cache", size: 1 << 20, bindWhole: true });
 * ```
 */
export function checkBufferSize(ctx: GpuContext, request: BufferRequest): void {
  const { maxBufferSize, maxStorageBufferBindingSize } = ctx.limits;
  const mb = (n: number) => `${(n / 1048576).toFixed(1)} MiB`;
  if (request.size > maxBufferSize) {
    throw new GpuError(
      `${request.label} needs ${mb(request.size)}, more than this device's maxBufferSize ` +
        `(${mb(maxBufferSize)}); the model or batch does not fit "${ctx.info.description}"`,
      "too-large",
    );
  }
  if (request.bindWhole && request.size > maxStorageBufferBindingSize) {
    throw new GpuError(
      `${request.label} needs ${mb(request.size)}, more than this device's ` +
        `maxStorageBufferBindingSize (${mb(maxStorageBufferBindingSize)}); use a smaller ` +
        "batch or shorter sequences",
      "too-large",
    );
  }
}
