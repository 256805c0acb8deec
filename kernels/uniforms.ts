/**
 * Per-dispatch kernel parameters. Every kernel here reads its parameters from binding 0, a
 * uniform bound with a dynamic offset. A {@linkcode ParamArena} collects the parameters of
 * all dispatches of one submission in host memory, one 256-byte slice each, and writes them
 * with a single `writeBuffer` before the submission. So a chunk of decode steps, each with
 * its own column, is encoded once and needs no uniform rewritten between dispatches (a
 * `writeBuffer` lands before the whole submission, never between two of its dispatches).
 *
 * @example
 * ```ts
 * import { requestGpu } from "./device.ts";
 * import { ParamArena } from "./uniforms.ts";
 * const gpu = await requestGpu();
 * const arena = new ParamArena(gpu, 64);
 * const offset = arena.push([3, 4], [0.5]); // u32 fields then f32 fields
 * arena.upload();
 * console.log(offset); // 0
 * ```
 *
 * @module
 */
import type { GpuContext } from "./device.ts";

/** Bytes per slice: the largest `minUniformBufferOffsetAlignment` WebGPU allows. */
export const PARAM_SLICE_BYTES = 256;

/** Bytes a kernel's parameter struct may use (the binding size of each slice). */
export const PARAM_BINDING_BYTES = 64;

/** Host-side parameter slices of one submission, uploaded at once. */
export class ParamArena {
  #ctx: GpuContext;
  #data: ArrayBuffer;
  #u32: Uint32Array;
  #f32: Float32Array;
  #count = 0;
  #capacity: number;
  #buffer: GPUBuffer;

  /** Makes an arena of `capacity` slices (it grows when needed, see {@linkcode buffer}). */
  constructor(ctx: GpuContext, capacity = 1024) {
    this.#ctx = ctx;
    this.#capacity = capacity;
    this.#data = new ArrayBuffer(capacity * PARAM_SLICE_BYTES);
    this.#u32 = new Uint32Array(this.#data);
    this.#f32 = new Float32Array(this.#data);
    this.#buffer = this.#create();
  }

  #create(): GPUBuffer {
    return this.#ctx.device.createBuffer({
      label: "kernel parameters",
      size: this.#capacity * PARAM_SLICE_BYTES,
      usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
    });
  }

  /**
   * The uniform buffer. Callers create bind groups on it; it is replaced (and bind groups
   * must be rebuilt) only by {@linkcode reserve}, never during encoding.
   */
  get buffer(): GPUBuffer {
    return this.#buffer;
  }

  /** Slices pushed since the last {@linkcode reset}. */
  get count(): number {
    return this.#count;
  }

  /**
   * Makes room for `slices` slices; returns true when the buffer was replaced.
   * Call before encoding a submission whose dispatch count is known.
   */
  reserve(slices: number): boolean {
    if (slices <= this.#capacity) return false;
    let cap = this.#capacity;
    while (cap < slices) cap *= 2;
    this.#capacity = cap;
    const data = new ArrayBuffer(cap * PARAM_SLICE_BYTES);
    new Uint8Array(data).set(new Uint8Array(this.#data));
    this.#data = data;
    this.#u32 = new Uint32Array(data);
    this.#f32 = new Float32Array(data);
    this.#buffer.destroy();
    this.#buffer = this.#create();
    return true;
  }

  /** Forgets all slices (start of a new submission). */
  reset(): void {
    this.#count = 0;
  }

  /**
   * Appends one slice: `u32s` fields first, then `f32s`, 4 bytes each (at most 16 in all).
   * Returns its byte offset (the dynamic offset to pass to `setBindGroup`).
   *
   * @throws {RangeError} when the arena is full (call {@linkcode reserve} first) or the
   *   fields do not fit a slice.
   */
  push(u32s: readonly number[], f32s: readonly number[] = []): number {
    if (this.#count >= this.#capacity) {
      throw new RangeError(
        `kernel parameter arena full (${this.#capacity} slices); reserve() more before encoding`,
      );
    }
    if (u32s.length + f32s.length > PARAM_BINDING_BYTES / 4) {
      throw new RangeError(`too many kernel parameters: ${u32s.length + f32s.length} > 16`);
    }
    const base = this.#count * (PARAM_SLICE_BYTES / 4);
    for (let i = 0; i < u32s.length; i++) this.#u32[base + i] = u32s[i] >>> 0;
    for (let i = 0; i < f32s.length; i++) this.#f32[base + u32s.length + i] = f32s[i];
    this.#count++;
    return base * 4;
  }

  /** Writes the pushed slices to the uniform buffer (one `writeBuffer`). */
  upload(): void {
    if (this.#count === 0) return;
    this.#ctx.device.queue.writeBuffer(
      this.#buffer,
      0,
      this.#data,
      0,
      this.#count * PARAM_SLICE_BYTES,
    );
  }

  /** Frees the uniform buffer. */
  destroy(): void {
    this.#buffer.destroy();
  }
}
