/**
 * Helpers shared by the `tests/kernels_*_test.ts` and `tests/webgpu_*_test.ts` files: the
 * device (failing in CI, skipping loudly elsewhere when no adapter exists), buffers with
 * poisoned contents, readback, seeded random data and error measures.
 *
 * @module
 */
import { type GpuContext, quietVulkanRuntimeDir, requestGpu } from "../kernels/device.ts";
import { ParamArena } from "../kernels/uniforms.ts";
import { Recorder } from "../kernels/encode.ts";
// The shared test helpers, re-exported for the tests that import them from here.
export { maxAbsDiff, randomF32, relL2, rng, sharedPath } from "./helpers.ts";

quietVulkanRuntimeDir();

let shared: Promise<GpuContext | null> | undefined;
let sharedGpu: GpuContext | null = null;

// Every test module runs in its own isolate: destroy the module's device when the module
// ends, on its own thread, instead of leaving it to the isolate's teardown (or to process
// exit, where Mesa's exit-time cleanup can race a device still being torn down).
globalThis.addEventListener("unload", () => sharedGpu?.device.destroy());

/**
 * The shared test device, or `null` (with a loud warning) when no adapter exists. With the
 * `CI` environment variable set, a missing adapter is an error instead.
 */
export function testGpu(): Promise<GpuContext | null> {
  shared ??= (async () => {
    const adapter = navigator.gpu ? await navigator.gpu.requestAdapter() : null;
    if (!adapter) {
      const msg = "no WebGPU adapter (install libvulkan1 mesa-vulkan-drivers for lavapipe)";
      if (Deno.env.get("CI")) throw new Error(`${msg}; CI is set, so WebGPU tests fail`);
      console.warn(`\n!!! SKIPPING WebGPU TEST: ${msg} !!!\n`);
      return null;
    }
    sharedGpu = await requestGpu();
    return sharedGpu;
  })();
  return shared;
}

/** Test options for GPU tests: the device outlives a test, so op/resource sanitizers are off. */
export const GPU_TEST = { sanitizeOps: false, sanitizeResources: false } as const;

/** A recorder with its own parameter arena. */
export function recorder(gpu: GpuContext): Recorder {
  return new Recorder(gpu, new ParamArena(gpu, 64));
}

/** A storage buffer holding `data` (f32, u32 or raw bytes). */
export function upload(gpu: GpuContext, data: Float32Array | Uint32Array | Uint8Array): GPUBuffer {
  const size = Math.max(4, Math.ceil(data.byteLength / 4) * 4);
  const buf = gpu.device.createBuffer({
    size,
    usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST,
  });
  if (data.byteLength % 4 === 0) {
    gpu.device.queue.writeBuffer(buf, 0, data as Uint8Array<ArrayBuffer>);
  } else {
    const padded = new Uint8Array(size);
    padded.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
    gpu.device.queue.writeBuffer(buf, 0, padded);
  }
  return buf;
}

/** An f32 storage buffer of `n` elements filled with NaN (unwritten elements then fail). */
export function poisoned(gpu: GpuContext, n: number): GPUBuffer {
  return upload(gpu, new Float32Array(n).fill(NaN));
}

/** Reads a buffer back (one round trip). */
export async function readBytes(gpu: GpuContext, buf: GPUBuffer, size = buf.size): Promise<
  ArrayBuffer
> {
  const staging = gpu.device.createBuffer({
    size,
    usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
  });
  const enc = gpu.device.createCommandEncoder();
  enc.copyBufferToBuffer(buf, 0, staging, 0, size);
  gpu.device.queue.submit([enc.finish()]);
  await staging.mapAsync(GPUMapMode.READ);
  const out = staging.getMappedRange().slice(0);
  staging.unmap();
  staging.destroy();
  return out;
}

/** Reads an f32 buffer back. */
export async function readF32(gpu: GpuContext, buf: GPUBuffer, n?: number): Promise<Float32Array> {
  return new Float32Array(await readBytes(gpu, buf, n === undefined ? buf.size : n * 4));
}

/** Reads a u32 buffer back. */
export async function readU32(gpu: GpuContext, buf: GPUBuffer, n?: number): Promise<Uint32Array> {
  return new Uint32Array(await readBytes(gpu, buf, n === undefined ? buf.size : n * 4));
}

/**
 * A nested skip plan over `columns` columns of an `L`-layer model: columns before
 * `fullUntil` run every layer, later ones `{0} ∪ {L-n+1 .. L-1}` with `n` shrinking by one
 * every `every` columns down to `min` layers (SkipDecode's shape: warm-up layer 0 plus the
 * top layers).
 */
export function skipPlan(
  L: number,
  columns: number,
  fullUntil: number,
  every = 2,
  min = 2,
): number[][] {
  const all = Array.from({ length: L }, (_, l) => l);
  return Array.from({ length: columns }, (_, c) => {
    if (c < fullUntil) return all;
    const n = Math.max(min, L - 1 - Math.floor((c - fullUntil) / every));
    return [0, ...all.slice(L - n + 1)];
  });
}

/** Every layer in every column. */
export function fullPlan(L: number, columns: number): number[][] {
  return Array.from({ length: columns }, () => Array.from({ length: L }, (_, l) => l));
}
