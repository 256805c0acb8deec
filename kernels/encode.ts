/**
 * Recording kernel dispatches into a command encoder: consecutive dispatches share one
 * compute pass, bind groups are cached per (kernel, buffers), parameters go into a
 * {@linkcode ParamArena} slice bound with a dynamic offset, and with a
 * {@linkcode TimestampProfiler} every dispatch (or bracketed foreign encode, such as a
 * matmul) gets its own timed pass, attributed to a kernel family.
 *
 * @example
 * ```ts
 * import { requestGpu } from "./device.ts";
 * import { ParamArena } from "./uniforms.ts";
 * import { Recorder } from "./encode.ts";
 * const gpu = await requestGpu();
 * const rec = new Recorder(gpu, new ParamArena(gpu));
 * rec.begin();
 * // rec.dispatch(kernel, [buffers...], [u32 params], [f32 params], [x, y, z], "layernorm");
 * gpu.device.queue.submit([rec.finish()]);
 * ```
 *
 * @module
 */
import type { GpuContext, Kernel } from "./device.ts";
import { PARAM_BINDING_BYTES, type ParamArena } from "./uniforms.ts";
import type { TimestampProfiler } from "./profiler.ts";

let nextBufferId = 1;
const bufferIds = new WeakMap<GPUBuffer | GPUTextureView, number>();

function idOf(buffer: GPUBuffer | GPUTextureView): number {
  let id = bufferIds.get(buffer);
  if (id === undefined) {
    id = nextBufferId++;
    bufferIds.set(buffer, id);
  }
  return id;
}

/**
 * A binding: a whole buffer, a range of one, or a texture view (for `texture-*` bindings).
 */
export type Binding =
  | GPUBuffer
  | GPUTextureView
  | { buffer: GPUBuffer; offset: number; size: number };

/** Records dispatches of the kernels into one command encoder at a time. */
export class Recorder {
  /** The device. */
  readonly ctx: GpuContext;
  /** Where dispatch parameters go. */
  readonly arena: ParamArena;
  /** Optional per-family timing; when set every dispatch runs in its own timed pass. */
  profiler?: TimestampProfiler;
  #encoder?: GPUCommandEncoder;
  #pass?: GPUComputePassEncoder;
  #groups = new Map<string, GPUBindGroup>();
  #arenaBuffer?: GPUBuffer;

  /** Makes a recorder writing parameters into `arena`. */
  constructor(ctx: GpuContext, arena: ParamArena, profiler?: TimestampProfiler) {
    this.ctx = ctx;
    this.arena = arena;
    this.profiler = profiler;
  }

  /** Starts a new command encoder and resets the arena. */
  begin(label = "skipdecode"): GPUCommandEncoder {
    this.arena.reset();
    this.#encoder = this.ctx.device.createCommandEncoder({ label });
    return this.#encoder;
  }

  /** The current encoder (after {@linkcode begin}). */
  get encoder(): GPUCommandEncoder {
    if (!this.#encoder) throw new Error("Recorder.begin() was not called");
    return this.#encoder;
  }

  /** Ends the open compute pass, if any (before copies or foreign encodes). */
  endPass(): void {
    this.#pass?.end();
    this.#pass = undefined;
  }

  #bindGroup(kernel: Kernel, buffers: readonly Binding[]): GPUBindGroup {
    if (this.#arenaBuffer !== this.arena.buffer) {
      this.#groups.clear();
      this.#arenaBuffer = this.arena.buffer;
    }
    let key = kernel.name;
    for (const b of buffers) {
      key += b instanceof GPUBuffer || b instanceof GPUTextureView
        ? `|${idOf(b)}`
        : `|${idOf(b.buffer)}@${b.offset}+${b.size}`;
    }
    let group = this.#groups.get(key);
    if (!group) {
      if (buffers.length + 1 !== kernel.bindings.length) {
        throw new Error(
          `kernel "${kernel.name}" takes ${
            kernel.bindings.length - 1
          } buffers, got ${buffers.length}`,
        );
      }
      group = this.ctx.device.createBindGroup({
        label: kernel.name,
        layout: kernel.layout,
        entries: [
          { binding: 0, resource: { buffer: this.arena.buffer, size: PARAM_BINDING_BYTES } },
          ...buffers.map((b, i) => ({
            binding: i + 1,
            resource: b instanceof GPUBuffer ? { buffer: b } : b,
          })),
        ],
      });
      if (this.#groups.size > 4096) this.#groups.clear();
      this.#groups.set(key, group);
    }
    return group;
  }

  /**
   * Records one dispatch of `kernel` with `buffers` at bindings `1..n` and the parameters
   * (`u32s` then `f32s`) at binding 0.
   */
  dispatch(
    kernel: Kernel,
    buffers: readonly Binding[],
    u32s: readonly number[],
    f32s: readonly number[],
    workgroups: readonly [number, number?, number?],
    family: string,
  ): void {
    const group = this.#bindGroup(kernel, buffers);
    const offset = this.arena.push(u32s, f32s);
    const [x, y = 1, z = 1] = workgroups;
    if (x === 0 || y === 0 || z === 0) return;
    const max = this.ctx.limits.maxComputeWorkgroupsPerDimension;
    if (x > max || y > max || z > max) {
      throw new Error(
        `kernel "${kernel.name}": ${x}x${y}x${z} workgroups exceed maxComputeWorkgroupsPerDimension ${max}`,
      );
    }
    let pass: GPUComputePassEncoder;
    if (this.profiler) {
      this.endPass();
      pass = this.encoder.beginComputePass({
        label: kernel.name,
        timestampWrites: this.profiler.pass(family),
      });
    } else {
      this.#pass ??= this.encoder.beginComputePass({ label: "kernels" });
      pass = this.#pass;
    }
    pass.setPipeline(kernel.pipeline);
    pass.setBindGroup(0, group, [offset]);
    pass.dispatchWorkgroups(x, y, z);
    if (this.profiler) pass.end();
  }

  /**
   * Runs `fn` with the encoder after closing the open pass (for copies and for encoders
   * of other modules, e.g. matmuls); with a profiler, the time from a marker pass before to
   * one after is attributed to `family`.
   */
  foreign(family: string, fn: (encoder: GPUCommandEncoder) => void): void {
    this.endPass();
    if (!this.profiler) {
      fn(this.encoder);
      return;
    }
    const [begin, end] = this.profiler.bracket(family);
    this.encoder.beginComputePass({ label: `${family} start`, timestampWrites: begin }).end();
    fn(this.encoder);
    this.encoder.beginComputePass({ label: `${family} end`, timestampWrites: end }).end();
  }

  /** Closes the pass, uploads the parameters and returns the command buffer. */
  finish(): GPUCommandBuffer {
    this.endPass();
    this.arena.upload();
    const cb = this.encoder.finish();
    this.#encoder = undefined;
    return cb;
  }
}
