/**
 * Kernels whose interface is declared once, in their WGSL: the `@binding` declarations (name,
 * `read` or `read_write`) and the fields of `struct Params` (the per-dispatch uniforms,
 * integers first, then floats) are read from the source, so the TypeScript side names its
 * arguments and cannot drift from the shader: a binding or a field added to the WGSL is
 * asked for by name at the next dispatch, a renamed one fails with both names.
 *
 * @example
 * ```ts
 * import { wgslInterface } from "./declare.ts";
 * const code = `struct Params { n: u32, alpha: f32, }
 * @group(0) @binding(0) var<uniform> p: Params;
 * @group(0) @binding(1) var<storage, read> x: array<f32>;
 * @group(0) @binding(2) var<storage, read_write> y: array<f32>;`;
 * console.log(wgslInterface("axpy", code));
 * // { bindings: [uniform p, read x, storage y], ints: ["n"], floats: ["alpha"] }
 * ```
 *
 * @module
 */
import { type BindingKind, createKernel, type GpuContext, type Kernel } from "./device.ts";
import type { Binding, Recorder } from "./encode.ts";

/** A kernel's interface as its WGSL declares it. */
export interface WgslInterface {
  /** Bindings in order: binding 0 is the `Params` uniform. */
  bindings: { name: string; kind: BindingKind }[];
  /** Integer fields of `struct Params` (`u32`/`i32`), in order. */
  ints: string[];
  /** Float fields of `struct Params` (`f32`), in order, after the integers. */
  floats: string[];
}

const BINDING = /@group\(0\)\s*@binding\((\d+)\)\s*var<([a-z_,\s]+)>\s*(\w+)\s*:/g;
const FIELD = /(\w+)\s*:\s*(u32|i32|f32)\s*,?/g;

/**
 * Reads the bindings and the `Params` fields of a WGSL kernel.
 *
 * @throws {Error} naming the kernel when bindings are not numbered 0, 1, 2, ..., binding 0
 *   is not the uniform, or an integer field follows a float one (the arena packs integers
 *   first).
 *
 * @example
 * ```ts
 * const i = wgslInterface("k", "struct Params { n: u32, } @group(0) @binding(0) var<uniform> p: Params;");
 * console.log(i.ints); // ["n"]
 * ```
 */
export function wgslInterface(name: string, code: string): WgslInterface {
  const bindings: { name: string; kind: BindingKind }[] = [];
  for (const m of code.matchAll(BINDING)) {
    const index = Number(m[1]);
    if (index !== bindings.length) {
      throw new Error(`kernel "${name}": binding ${index} (${m[3]}) is out of order`);
    }
    const access = m[2].replace(/\s+/g, "");
    const kind: BindingKind = access === "uniform"
      ? "uniform"
      : access === "storage,read"
      ? "read"
      : access === "storage,read_write"
      ? "storage"
      : (() => {
        throw new Error(`kernel "${name}": binding ${m[3]} has unsupported access <${m[2]}>`);
      })();
    bindings.push({ name: m[3], kind });
  }
  if (bindings[0]?.kind !== "uniform") {
    throw new Error(`kernel "${name}": binding 0 must be the Params uniform`);
  }
  const struct = /struct\s+Params\s*\{([^}]*)\}/.exec(code);
  const ints: string[] = [], floats: string[] = [];
  for (const m of struct ? struct[1].matchAll(FIELD) : []) {
    if (m[2] === "f32") floats.push(m[1]);
    else if (floats.length > 0) {
      throw new Error(`kernel "${name}": Params field ${m[1]} (${m[2]}) follows a float field`);
    } else ints.push(m[1]);
  }
  return { bindings, ints, floats };
}

/** Named values of one dispatch: buffers by binding name, numbers by `Params` field. */
export type DispatchArgs = Record<string, Binding | number | boolean | undefined>;

/** A compiled kernel that takes its bindings and uniforms by name. */
export interface DeclaredKernel {
  /** The compiled kernel. */
  kernel: Kernel;
  /** What the WGSL declares. */
  iface: WgslInterface;
  /**
   * Records one dispatch; `args` holds every binding (by its WGSL name) and every `Params`
   * field (booleans become 1/0).
   *
   * @throws {Error} naming the kernel and the binding or field that `args` lacks.
   */
  dispatch(
    rec: Recorder,
    args: DispatchArgs,
    workgroups: readonly [number, number?, number?],
    family: string,
  ): void;
}

/**
 * Compiles a kernel whose bindings and uniforms are read from its WGSL.
 *
 * @example
 * ```ts
 * import { requestGpu } from "./device.ts";
 * import { Recorder } from "./encode.ts";
 * import { ParamArena } from "./uniforms.ts";
 * import { createDeclaredKernel } from "./declare.ts";
 * import { ELEMENTWISE_TRAIN_WGSL } from "./elementwise/train.ts";
 * const gpu = await requestGpu();
 * const relu = await createDeclaredKernel(gpu, "train_relu", ELEMENTWISE_TRAIN_WGSL.train_relu);
 * const buf = () => gpu.device.createBuffer({ size: 256, usage: GPUBufferUsage.STORAGE });
 * const rec = new Recorder(gpu, new ParamArena(gpu));
 * rec.begin();
 * // bindings u, out and Params fields n, stride, mode, all by the names the WGSL declares
 * relu.dispatch(rec, { u: buf(), out: buf(), n: 64, stride: 64, mode: 0 }, [1], "relu");
 * gpu.device.queue.submit([rec.finish()]);
 * ```
 */
export async function createDeclaredKernel(
  gpu: GpuContext,
  name: string,
  code: string,
): Promise<DeclaredKernel> {
  const iface = wgslInterface(name, code);
  const kernel = await createKernel(gpu, name, code, iface.bindings.map((b) => b.kind));
  return {
    kernel,
    iface,
    dispatch(rec, args, workgroups, family) {
      const bound = declaredBindings(name, iface, args);
      const { ints, floats } = declaredParams(name, iface, args);
      rec.dispatch(kernel, bound, ints, floats, workgroups, family);
    },
  };
}

/**
 * The buffers of bindings 1, 2, ... (binding 0 is the `Params` uniform) of a declared
 * interface, taken from `args` by the names the WGSL declares.
 *
 * @throws {Error} naming the kernel and the binding that `args` lacks.
 *
 * @example
 * ```ts
 * import { declaredBindings, wgslInterface } from "./declare.ts";
 * declare const x: GPUBuffer, y: GPUBuffer;
 * const iface = wgslInterface("k", `struct Params { n: u32, }
 * @group(0) @binding(0) var<uniform> p: Params;
 * @group(0) @binding(1) var<storage, read> x: array<f32>;
 * @group(0) @binding(2) var<storage, read_write> y: array<f32>;`);
 * declaredBindings("k", iface, { y, x, n: 4 }); // [x, y]
 * ```
 */
export function declaredBindings<T = Binding>(
  name: string,
  iface: WgslInterface,
  args: Record<string, T | number | boolean | undefined>,
): T[] {
  return iface.bindings.slice(1).map((b) => {
    const v = args[b.name];
    if (v === undefined || typeof v === "number" || typeof v === "boolean") {
      throw new Error(`kernel "${name}": no buffer for binding ${b.name}`);
    }
    return v;
  });
}

/**
 * The `Params` values of a declared interface, taken from `args` by field name (booleans
 * become 1/0): the integer fields, then the float fields, in the struct's order.
 *
 * @throws {Error} naming the kernel and the field that `args` lacks.
 *
 * @example
 * ```ts
 * import { declaredParams, wgslInterface } from "./declare.ts";
 * const iface = wgslInterface("k", `struct Params { n: u32, relu: u32, alpha: f32, }
 * @group(0) @binding(0) var<uniform> p: Params;`);
 * declaredParams("k", iface, { alpha: 0.5, n: 4, relu: true });
 * // { ints: [4, 1], floats: [0.5] }
 * ```
 */
export function declaredParams(
  name: string,
  iface: WgslInterface,
  args: Record<string, unknown>,
): { ints: number[]; floats: number[] } {
  const number = (field: string): number => {
    const v = args[field];
    if (typeof v === "boolean") return v ? 1 : 0;
    if (typeof v !== "number") {
      throw new Error(`kernel "${name}": no value for Params field ${field}`);
    }
    return v;
  };
  return { ints: iface.ints.map(number), floats: iface.floats.map(number) };
}

/** Compiled declared kernels by name, plus a spare buffer for optional bindings left unused. */
export interface KernelSet {
  /**
   * The kernel of a name.
   *
   * @throws {Error} when no kernel of that name was compiled.
   */
  get(name: string): DeclaredKernel;
  /** A 16-byte storage buffer bound where an optional binding is absent. */
  spare: GPUBuffer;
}

/**
 * Workgroups of size `wg` covering `n` elements on a 2D grid (x at most 65535); the kernel
 * reads its element as `x + y * stride`.
 *
 * @example
 * ```ts
 * grid(100000 * 64, 64); // { groups: [65535, 2], stride: 4194240 }
 * ```
 */
export function grid(n: number, wg: number): { groups: [number, number]; stride: number } {
  const total = Math.max(1, Math.ceil(n / wg));
  const x = Math.min(total, 65535);
  return { groups: [x, Math.ceil(total / x)], stride: x * wg };
}

/**
 * Workgroups for one workgroup per row (2D past 65535 rows, as the kernels expect).
 *
 * @example
 * ```ts
 * rowGroups(70000); // [65535, 2]
 * ```
 */
export function rowGroups(rows: number): [number, number] {
  return rows <= 65535 ? [rows, 1] : [65535, Math.ceil(rows / 65535)];
}
