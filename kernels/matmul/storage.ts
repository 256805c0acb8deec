/**
 * Storage-buffer matmul variants: weights `W[N, K]` in storage buffers (f32, or f16 pairs
 * packed in `u32`), split by rows of `W` (output columns) so that every part fits one
 * binding; `X`, `Y` and the residual are bound as aligned windows of the caller's buffers.
 * The kernel itself (naive or tiled) is a WGSL file plus a weight-reader snippet.
 *
 * @module
 */
import { type HostLinear, splitColumns } from "./host.ts";
import {
  BindGroupCache,
  bufferId,
  type DeclaredPipeline,
  declaredPipeline,
  ParamCache,
  window,
} from "./common.ts";
import type { DeviceTable } from "../tables.ts";
import type { ResolvedArgs, Variant, VariantContext, VariantLinear } from "./types.ts";
import { declaredBindings, declaredParams } from "../declare.ts";
import wF32 from "./w_storage_f32.wgsl" with { type: "text" };
import wF16 from "./w_storage_f16.wgsl" with { type: "text" };
import { GEMV_COLS, GEMV_ROW_BUCKETS, gemvRows, gemvWgsl } from "./v4_storage_gemv.ts";

/** How a storage kernel is shaped. */
export interface StorageKernelSpec {
  /** Variant name. */
  readonly name: string;
  /** The kernel WGSL (uses `w_at` or `w_quad` from the weight snippet, `p` params). */
  readonly code: string;
  /** Weight rows are zero-padded to a multiple of this many elements of K. */
  readonly kAlign: number;
  /** Output columns covered by one workgroup (dispatch x). */
  readonly colsPerGroup: number;
  /** Output rows covered by one workgroup (dispatch y). */
  readonly rowsPerGroup: number;
  /** Output columns per part are a multiple of this (the last part may be shorter). */
  readonly colAlign: number;
  /**
   * Products of at most this many rows run the GEMV kernel (`v4_storage_gemv.ts`) instead
   * of `code` (same weight layout; `kAlign` must be a multiple of 8).
   */
  readonly gemvMaxRows?: number;
}

/** What one product of a storage variant dispatches (for benchmarks and tests). */
export interface DispatchShape {
  /** Kernel used (`gemv` or the variant's own). */
  readonly kernel: string;
  /** Dispatches (one per weight part and row window). */
  readonly dispatches: number;
  /** Workgroups of each dispatch. */
  readonly workgroups: number[];
}

/** One binding's share of a storage linear: output columns `n0 .. n0 + n - 1`. */
export interface StoragePart {
  /** First output column. */
  readonly n0: number;
  /** Output columns. */
  readonly n: number;
  /** Weights `[n, kw]` words. */
  readonly w: GPUBuffer;
  /** Bias `[n]` f32. */
  readonly b: GPUBuffer;
}

/** A storage-layout linear's device parts, for kernels that read its weights directly. */
export interface StorageLayout {
  /** Output width `N`. */
  readonly n: number;
  /** Input width `K`. */
  readonly k: number;
  /** f16 pairs (else f32). */
  readonly f16: boolean;
  /** 32-bit words per padded weight row. */
  readonly kw: number;
  /** Parts by output columns: `W[n0 .. n0 + n)` and its bias, each one binding. */
  readonly parts: readonly StoragePart[];
  /** Elements of `K` each weight row is padded to a multiple of. */
  readonly kAlign: number;
  /** The linear's label. */
  readonly label: string;
}

/**
 * The layout of a linear uploaded by a storage variant, or `null` for another variant's
 * (the texture one) or a destroyed linear.
 *
 * @example
 * ```ts
 * import { storageLayout } from "./storage.ts";
 * import type { DeviceLinear } from "./mod.ts";
 * declare const lin: DeviceLinear;
 * console.log(storageLayout(lin)?.parts.length ?? "not a storage linear");
 * ```
 */
export function storageLayout(linear: unknown): StorageLayout | null {
  return linear instanceof StorageLinear && !linear.destroyed ? linear : null;
}

class StorageLinear implements VariantLinear, StorageLayout {
  destroyed = false;
  readonly groups = new BindGroupCache();
  constructor(
    readonly variant: string,
    readonly n: number,
    readonly k: number,
    readonly f16: boolean,
    readonly kw: number,
    readonly parts: StoragePart[],
    readonly bytes: number,
    readonly label: string,
    readonly kAlign: number,
  ) {}
  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    for (const p of this.parts) {
      p.w.destroy();
      p.b.destroy();
    }
    this.groups.clear();
  }
}

const RELU = 1, RESIDUAL = 2, ACCUMULATE = 4;

/** The bits of `eps` as f32, for a `u32` parameter slot the WGSL bitcasts back. */
function epsBits(eps: number): number {
  return new Uint32Array(new Float32Array([eps]).buffer)[0];
}

/**
 * A storage-buffer variant built from a {@linkcode StorageKernelSpec}.
 *
 * @example
 * ```ts
 * import { hostLinear } from "./host.ts";
 * import type { ResolvedArgs, VariantContext } from "./types.ts";
 * import type { Tensor } from "../../model/types.ts";
 * declare const ctx: VariantContext, code: string, weight: Tensor, bias: Tensor;
 * declare const encoder: GPUCommandEncoder, args: ResolvedArgs;
 * const v = new StorageVariant(ctx, {
 *   name: "v1_storage_naive",
 *   code,
 *   kAlign: 2,
 *   colsPerGroup: 64,
 *   rowsPerGroup: 1,
 *   colAlign: 1,
 * });
 * const lin = v.upload(hostLinear(weight, bias, "fc1"));
 * v.encode(encoder, lin, args);
 * ```
 */
export class StorageVariant implements Variant {
  readonly name: string;
  #ctx: VariantContext;
  #spec: StorageKernelSpec;
  #pipes: Record<"f16" | "f32", DeclaredPipeline>;
  #params: ParamCache;
  #dummy: GPUBuffer;
  #gemv = new Map<string, DeclaredPipeline>();
  /** Takes a LayerNorm prologue (variants with the GEMV; then every product runs it). */
  readonly layerNorm: boolean;

  /** Compiles the f16 and f32 pipelines of `spec`. */
  constructor(ctx: VariantContext, spec: StorageKernelSpec) {
    this.#ctx = ctx;
    this.#spec = spec;
    this.name = spec.name;
    this.layerNorm = !!spec.gemvMaxRows;
    this.#pipes = {
      f32: declaredPipeline(ctx.device, `${spec.name} (f32 weights)`, spec.code, wF32),
      f16: declaredPipeline(ctx.device, `${spec.name} (f16 weights)`, spec.code, wF16),
    };
    this.#params = new ParamCache(ctx.device, spec.name);
    this.#dummy = ctx.device.createBuffer({
      label: `${spec.name} no residual`,
      size: 16,
      usage: GPUBufferUsage.STORAGE,
    });
    // every GEMV specialisation now, so that ready() (and the adapter self-check) sees a
    // compile failure (e.g. subgroups) before anything is dispatched
    for (const rows of spec.gemvMaxRows ? GEMV_ROW_BUCKETS : []) {
      for (const f16 of [false, true]) {
        for (const ln of [false, true]) this.#gemvPipe(f16, rows, ln);
      }
    }
  }

  async ready(): Promise<void> {
    await Promise.all([
      this.#pipes.f32.check,
      this.#pipes.f16.check,
      ...[...this.#gemv.values()].map((g) => g.check),
    ]);
  }

  /** Whether `m` rows run the GEMV kernel. */
  #useGemv(m: number, ln = false): boolean {
    // with a LayerNorm prologue every row count runs the GEMV (in chunks of 8 rows above 8):
    // the tiled kernel has no prologue
    return ln ? !!this.#spec.gemvMaxRows : m <= (this.#spec.gemvMaxRows ?? 0);
  }

  /** The GEMV pipeline for `rows` rows (compiled at first use, shared per device). */
  #gemvPipe(f16: boolean, m: number, ln: boolean): { pipe: DeclaredPipeline; rows: number } {
    const rows = gemvRows(m);
    const subgroups = this.#ctx.subgroups ?? false;
    const key = `${f16}:${rows}:${ln}`;
    let pipe = this.#gemv.get(key);
    if (!pipe) {
      pipe = declaredPipeline(
        this.#ctx.device,
        `${this.name} gemv (${f16 ? "f16" : "f32"} weights, ${rows} rows${
          subgroups ? ", subgroups" : ""
        }${ln ? ", LayerNorm prologue" : ""})`,
        gemvWgsl({ rows, f16, subgroups, ln }),
      );
      this.#gemv.set(key, pipe);
    }
    return { pipe, rows };
  }

  /**
   * What `encode` dispatches for `m` rows of `linear`: the kernel, the number of
   * dispatches and the workgroups of each.
   */
  dispatchShape(linear: VariantLinear, m: number): DispatchShape {
    const lin = linear as StorageLinear;
    const gemv = this.#useGemv(m);
    const cols = gemv ? GEMV_COLS : this.#spec.colsPerGroup;
    const rowsPer = gemv ? gemvRows(m) : this.#spec.rowsPerGroup;
    const workgroups: number[] = [];
    for (const w of this.#windows(lin, m)) {
      for (const part of lin.parts) {
        workgroups.push(Math.ceil(part.n / cols) * Math.ceil(w.rows / rowsPer));
      }
    }
    return { kernel: gemv ? "gemv" : this.name, dispatches: workgroups.length, workgroups };
  }

  /** Row windows of `m` rows that fit one binding each. */
  #windows(lin: StorageLinear, m: number, ln = false): { r0: number; rows: number }[] {
    const limit = this.#ctx.maxBindingBytes - 256;
    const rowsMax = Math.min(
      65535 * (this.#useGemv(m, ln) ? gemvRows(m) : this.#spec.rowsPerGroup),
      Math.floor(limit / (lin.k * 4)),
      Math.floor(limit / (lin.n * 4)),
    );
    if (rowsMax < 1) throw new Error(`linear ${lin.label}: one row of X or Y exceeds a binding`);
    const out = [];
    for (let r0 = 0; r0 < m; r0 += rowsMax) out.push({ r0, rows: Math.min(rowsMax, m - r0) });
    return out;
  }

  /**
   * The weight buffers as a `[N, K]` table: row `j` of part `p` is words
   * `[(j - n0) * kw, ... + kw)` of its buffer, as in `kernels/tables.ts` (f16 as pairs).
   * `null` when the parts are not of equal size (all but the last), which the table needs.
   */
  rowTable(linear: VariantLinear, label: string): DeviceTable | null {
    const lin = linear as StorageLinear;
    const step = lin.parts[0].n;
    if (lin.parts.some((p, i) => p.n0 !== i * step)) return null;
    return {
      label,
      rows: lin.n,
      cols: lin.k,
      format: lin.f16 ? "f16" : "f32",
      rowWords: lin.kw,
      rowsPerChunk: step,
      chunks: lin.parts.map((p) => p.w),
      bytes: 0,
      destroy: () => {},
    };
  }

  upload(host: HostLinear): VariantLinear {
    const { n, k, label } = host;
    const dev = this.#ctx.device;
    const kp = Math.ceil(k / this.#spec.kAlign) * this.#spec.kAlign;
    const f16 = host.f16 !== null;
    const kw = f16 ? Math.ceil(kp / 2) : kp; // 32-bit words per weight row
    const maxCols = Math.floor(this.#ctx.maxBindingBytes / (kw * 4));
    if (maxCols < 1) {
      throw new Error(`linear ${label}: one weight row (${kw * 4} bytes) exceeds a binding`);
    }
    const parts: StoragePart[] = [];
    let bytes = 0;
    for (const part of splitColumns(n, maxCols, this.#spec.colAlign)) {
      const words = new Uint32Array(part.n * kw);
      if (f16) {
        const halves = new Uint16Array(words.buffer);
        for (let j = 0; j < part.n; j++) {
          const src = host.f16!.subarray((part.n0 + j) * k, (part.n0 + j + 1) * k);
          halves.set(src, j * kw * 2);
        }
      } else {
        const floats = new Float32Array(words.buffer);
        for (let j = 0; j < part.n; j++) {
          floats.set(host.f32!.subarray((part.n0 + j) * k, (part.n0 + j + 1) * k), j * kw);
        }
      }
      const w = dev.createBuffer({
        label: `${label} W[${part.n0}:${part.n0 + part.n}] (${this.name})`,
        size: words.byteLength,
        usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST,
      });
      dev.queue.writeBuffer(w, 0, words);
      const bias = host.bias
        ? host.bias.subarray(part.n0, part.n0 + part.n)
        : new Float32Array(part.n);
      const b = dev.createBuffer({
        label: `${label} b[${part.n0}:${part.n0 + part.n}] (${this.name})`,
        size: Math.max(16, Math.ceil(part.n / 4) * 16),
        usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST,
      });
      dev.queue.writeBuffer(b, 0, bias);
      bytes += w.size + b.size;
      parts.push({ n0: part.n0, n: part.n, w, b });
    }
    return new StorageLinear(this.name, n, k, f16, kw, parts, bytes, label, this.#spec.kAlign);
  }

  encode(encoder: GPUCommandEncoder, linear: VariantLinear, a: ResolvedArgs): void {
    const lin = linear as StorageLinear;
    const { n, k } = lin;
    const spec = this.#spec;
    const dev = this.#ctx.device;
    const ln = a.layerNorm;
    const gemv = this.#useGemv(a.m, !!ln) ? this.#gemvPipe(lin.f16, a.m, !!ln) : null;
    const pipe = gemv ? gemv.pipe : this.#pipes[lin.f16 ? "f16" : "f32"];
    const cols = gemv ? GEMV_COLS : spec.colsPerGroup;
    const rowsPer = gemv ? gemv.rows : spec.rowsPerGroup;
    const err = pipe.failure();
    if (err) throw err;
    const align = dev.limits.minStorageBufferOffsetAlignment;
    const flags = (a.relu ? RELU : 0) | (a.residual ? RESIDUAL : 0) |
      (a.accumulate ? ACCUMULATE : 0);
    const pass = encoder.beginComputePass({ label: `${lin.label} (${this.name})` });
    pass.setPipeline(pipe.pipeline);
    const layout = pipe.pipeline.getBindGroupLayout(0);
    for (const { r0, rows } of this.#windows(lin, a.m, !!ln)) {
      const xw = window(a.xOffset + r0 * k * 4, rows * k * 4, align);
      const yw = window(a.yOffset + r0 * n * 4, rows * n * 4, align);
      const rw = a.residual
        ? window(a.residualOffset + r0 * n * 4, rows * n * 4, align)
        : { offset: 0, size: 16, elem: 0 };
      const res = a.residual ?? this.#dummy;
      for (let pi = 0; pi < lin.parts.length; pi++) {
        const part = lin.parts[pi];
        const key = [
          bufferId(a.x),
          xw.offset,
          xw.size,
          bufferId(a.y),
          yw.offset,
          yw.size,
          bufferId(res),
          rw.offset,
          rw.size,
          rows,
          flags,
          xw.elem,
          yw.elem,
          rw.elem,
          pi,
          gemv ? gemv.rows : 0, // auto layouts: one bind group per pipeline
          ln ? `${bufferId(ln.w)}:${bufferId(ln.b)}:${ln.eps}` : "-",
        ].join(":");
        const group = lin.groups.get(key, () => {
          // bindings and Params by the names the kernel's WGSL declares (eps rides in pad0)
          const args = {
            x: { buffer: a.x, offset: xw.offset, size: xw.size },
            bias: { buffer: part.b },
            y: { buffer: a.y, offset: yw.offset, size: yw.size },
            r: { buffer: res, offset: rw.offset, size: rw.size },
            w: { buffer: part.w },
            ...(ln ? { lnw: { buffer: ln.w }, lnb: { buffer: ln.b } } : {}),
            m: rows,
            n: part.n,
            k,
            ldy: n,
            n0: part.n0,
            flags,
            kw: lin.kw,
            xe: xw.elem,
            ye: yw.elem,
            re: rw.elem,
            pad0: ln ? epsBits(ln.eps) : 0,
            pad1: 0, // v1/v3's last word
            ve: 0, // the GEMV's value-cache offset, used only by its split q/k/v mode (qkv.ts)
          };
          return dev.createBindGroup({
            label: `${lin.label} part ${pi} (${this.name})`,
            layout,
            entries: [
              {
                binding: 0,
                resource: {
                  buffer: this.#params.get(declaredParams(pipe.name, pipe.iface, args).ints),
                },
              },
              ...declaredBindings<GPUBufferBinding>(pipe.name, pipe.iface, args).map((
                resource,
                i,
              ) => ({ binding: i + 1, resource })),
            ],
          });
        });
        pass.setBindGroup(0, group);
        pass.dispatchWorkgroups(Math.ceil(part.n / cols), Math.ceil(rows / rowsPer));
      }
    }
    pass.end();
  }
}
