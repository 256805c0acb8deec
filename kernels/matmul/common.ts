/**
 * Helpers every matmul variant shares: stable ids for buffers (bind-group cache keys),
 * immutable per-call parameter uniforms, byte windows of large buffers that respect binding
 * alignment, and pipeline creation inside an error scope.
 *
 * @module
 */

import { type WgslInterface, wgslInterface } from "../declare.ts";
import { shaderSource } from "../device.ts";

const ids = new WeakMap<GPUBuffer, number>();
let nextId = 1;

/**
 * A stable small integer naming a buffer object, for cache keys.
 *
 * @example
 * ```ts
 * declare const a: GPUBuffer, b: GPUBuffer; // two buffers of one device
 * console.log(bufferId(a) === bufferId(a), bufferId(a) !== bufferId(b)); // true true
 * ```
 */
export function bufferId(b: GPUBuffer): number {
  let id = ids.get(b);
  if (id === undefined) {
    id = nextId++;
    ids.set(b, id);
  }
  return id;
}

/**
 * Immutable uniform buffers of `u32` parameters, one per distinct parameter tuple. A call's
 * parameters are never rewritten, so any number of encodes can share one submission.
 *
 * @example
 * ```ts
 * declare const device: GPUDevice;
 * const u = new ParamCache(device, "matmul");
 * const params: GPUBuffer = u.get([8, 768, 768]); // a 16-byte uniform holding m, n, k
 * ```
 */
export class ParamCache {
  #map = new Map<string, GPUBuffer>();
  /** Makes an empty cache on `device`; `label` names the buffers. */
  constructor(private device: GPUDevice, private label: string) {}
  /** The uniform buffer holding `values` (u32), padded to 16-byte multiples. */
  get(values: readonly number[]): GPUBuffer {
    const key = values.join(",");
    let buf = this.#map.get(key);
    if (!buf) {
      // Dropped (not destroyed: an unsubmitted encoder may still use them) when too many.
      if (this.#map.size >= 8192) this.#map.clear();
      const size = Math.max(16, Math.ceil((values.length * 4) / 16) * 16);
      buf = this.device.createBuffer({
        label: `${this.label} params ${key}`,
        size,
        usage: GPUBufferUsage.UNIFORM,
        mappedAtCreation: true,
      });
      new Uint32Array(buf.getMappedRange()).set(values);
      buf.unmap();
      this.#map.set(key, buf);
    }
    return buf;
  }
  /** Destroys every cached buffer (only when no submitted work still uses them). */
  destroy(): void {
    for (const b of this.#map.values()) b.destroy();
    this.#map.clear();
  }
}

/** A binding window of a buffer: byte `offset`/`size` to bind, and the f32 element offset
 * inside the window where the data starts. */
export interface Window {
  /** Byte offset to bind (multiple of `align`). */
  readonly offset: number;
  /** Byte size to bind (multiple of 4). */
  readonly size: number;
  /** Index of the first wanted f32 element inside the bound window. */
  readonly elem: number;
}

/**
 * The aligned window covering `bytes` bytes starting at byte `start` of a buffer.
 *
 * @example
 * ```ts
 * window(260, 8, 256); // {offset: 256, size: 12, elem: 1}
 * ```
 */
export function window(start: number, bytes: number, align: number): Window {
  const offset = start - (start % align);
  return { offset, size: Math.ceil((start - offset + bytes) / 4) * 4, elem: (start - offset) / 4 };
}

/**
 * A cache of bind groups by key that empties itself when it grows past `max` entries.
 *
 * @example
 * ```ts
 * declare const device: GPUDevice, layout: GPUBindGroupLayout, x: GPUBuffer;
 * const groups = new BindGroupCache();
 * const g = groups.get(`x:${bufferId(x)}`, () =>
 *   device.createBindGroup({ layout, entries: [{ binding: 0, resource: { buffer: x } }] }));
 * ```
 */
export class BindGroupCache {
  #map = new Map<string, GPUBindGroup>();
  /** Makes a cache that holds at most `max` bind groups. */
  constructor(private max = 4096) {}
  /** The cached bind group for `key`, making it with `make` when absent. */
  get(key: string, make: () => GPUBindGroup): GPUBindGroup {
    let g = this.#map.get(key);
    if (!g) {
      if (this.#map.size >= this.max) this.#map.clear();
      g = make();
      this.#map.set(key, g);
    }
    return g;
  }
  /** Drops every cached bind group. */
  clear(): void {
    this.#map.clear();
  }
}

/** A compiled pipeline and its asynchronous compile check. */
export interface CompiledPipeline {
  /** The pipeline (layout "auto"). */
  readonly pipeline: GPUComputePipeline;
  /** Rejects with an error naming the kernel when the WGSL failed to compile. */
  readonly check: Promise<void>;
  /** The compile error once known, else `null`. */
  readonly failure: () => Error | null;
}

const pipelineCache = new WeakMap<GPUDevice, Map<string, CompiledPipeline>>();

/**
 * Compiles a compute pipeline inside validation and internal error scopes, once per device
 * and WGSL source (software adapters spend seconds compiling a large kernel, so every
 * kernels object on a device shares them). WebGPU reports errors asynchronously: the
 * returned `check` promise rejects with an error naming `kernel` (and carrying the
 * compiler's message) when the WGSL failed to compile or link; it never rejects unobserved
 * (callers await it through `ready()` or see it in `failure()`).
 *
 * @example
 * ```ts
 * declare const device: GPUDevice, code: string; // a WGSL module with entry point main
 * const { pipeline, check } = compilePipeline(device, "matmul v1", code);
 * await check; // rejects naming the kernel when the WGSL does not compile
 * ```
 */
export function compilePipeline(
  device: GPUDevice,
  kernel: string,
  code: string,
  entryPoint = "main",
): CompiledPipeline {
  let perDevice = pipelineCache.get(device);
  if (!perDevice) {
    perDevice = new Map();
    pipelineCache.set(device, perDevice);
  }
  code = shaderSource(device, kernel, code);
  const key = `${entryPoint}\n${code}`;
  const cached = perDevice.get(key);
  if (cached) return cached;
  device.pushErrorScope("internal");
  device.pushErrorScope("validation");
  const module = device.createShaderModule({ label: kernel, code });
  const pipeline = device.createComputePipeline({
    label: kernel,
    layout: "auto",
    compute: { module, entryPoint },
  });
  const validation = device.popErrorScope();
  const internal = device.popErrorScope();
  let failed: Error | null = null;
  const check = Promise.all([validation, internal]).then(async ([v, i]) => {
    const err = v ?? i;
    if (!err) return;
    let detail = err.message;
    try {
      const info = await module.getCompilationInfo();
      const msgs = info.messages.map((m) => `${m.type} ${m.lineNum}:${m.linePos} ${m.message}`);
      if (msgs.length) detail += `\n${msgs.join("\n")}`;
    } catch { /* compilation info is optional */ }
    failed = new Error(`WGSL kernel "${kernel}" failed to compile: ${detail}`);
    throw failed;
  });
  check.catch(() => {}); // observed through ready()/failure()
  const compiled = { pipeline, check, failure: () => failed };
  perDevice.set(key, compiled);
  return compiled;
}

/** A compiled kernel with the interface its WGSL declares (storage and uniform buffers only). */
export interface DeclaredPipeline extends CompiledPipeline {
  /** The kernel's name (in errors). */
  readonly name: string;
  /** Bindings and `Params` fields as the WGSL declares them. */
  readonly iface: WgslInterface;
}

/**
 * {@linkcode compilePipeline} of `snippet + code` (a storage kernel's weight reader first, as
 * the kernel uses it), with the interface read from `code + snippet` by `wgslInterface`
 * (`kernels/declare.ts`; bindings in order: the kernel's 0-4, the reader's 5), so that
 * bind groups and parameters are built by the names the WGSL declares.
 *
 * @example
 * ```ts
 * import { declaredPipeline } from "./common.ts";
 * declare const device: GPUDevice, code: string; // binding 0 the Params uniform
 * const pipe = declaredPipeline(device, "repack_rows", code);
 * console.log(pipe.iface.bindings.map((b) => b.name));
 * ```
 */
export function declaredPipeline(
  device: GPUDevice,
  name: string,
  code: string,
  snippet = "",
): DeclaredPipeline {
  const compiled = compilePipeline(device, name, snippet ? snippet + "\n" + code : code);
  return {
    ...compiled,
    name,
    iface: wgslInterface(name, snippet ? code + "\n" + snippet : code),
  };
}
