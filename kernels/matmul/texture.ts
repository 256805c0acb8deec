/**
 * The texture/uniform variant (v2) for software adapters: weights live in a
 * `texture_2d_array` (f16 as 8 halves per `rgba32uint` texel, f32 as `rgba32float`), each
 * call repacks `X` into a scratch buffer of 256-byte aligned rows that are bound as
 * `var<uniform>` windows, one per row of a row group of 8, 4, 2 or 1 rows. See
 * `v2_texture_uniform.ts` for the kernel itself.
 *
 * Limits: a row of `X` must fit one 64 KiB uniform window (`K <= 16384`); larger `K` is
 * reported by {@linkcode TextureVariant.unsupported} so that the caller can use a storage
 * variant instead.
 *
 * @module
 */
import type { HostLinear } from "./host.ts";
import { splitColumns } from "./host.ts";
import {
  BindGroupCache,
  bufferId,
  type CompiledPipeline,
  compilePipeline,
  type DeclaredPipeline,
  declaredPipeline,
  ParamCache,
  window,
} from "./common.ts";
import type { ResolvedArgs, Variant, VariantContext, VariantLinear } from "./types.ts";
import { declaredBindings, declaredParams } from "../declare.ts";
import type { TextureTable } from "../tables.ts";
import { type TextureKernelShape, textureUniformWgsl } from "./v2_texture_uniform.ts";
import repackCode from "./repack_rows.wgsl" with { type: "text" };
import repackLnCode from "./repack_ln_rows.wgsl" with { type: "text" };

/**
 * Kernel shape used for a row group of `rows` rows (tuned on llvmpipe, see README.md).
 * Exported for tuning experiments; changing it affects kernels compiled afterwards.
 *
 * @example
 * ```ts
 * TEXTURE_SHAPES[8]; // { cols: 2, unroll: 1 }
 * ```
 */
export const TEXTURE_SHAPES: Record<number, { cols: number; unroll: number }> = {
  8: { cols: 2, unroll: 1 }, // cols 4: ~5 % faster, compiles about twice as long (README)
  4: { cols: 4, unroll: 1 },
  2: { cols: 4, unroll: 1 },
  1: { cols: 4, unroll: 1 },
};
/** Texture widths are padded to a multiple of this many texels (8 lanes x the largest cols). */
const WIDTH_ALIGN = 32;
/** Power-of-two widths below this many texels are padded to a non-power of two (see upload). */
const POT_PAD_MAX_TEXELS = 512;
/** Rows of X are padded to a multiple of this many floats (256-byte aligned windows). */
const ROW_ALIGN = 64;
/** Floats in one uniform window (64 KiB). */
const WINDOW_FLOATS = 4096 * 4;

interface TexturePart {
  readonly n0: number;
  readonly n: number;
  readonly width: number;
  readonly texture: GPUTexture;
  readonly view: GPUTextureView;
  readonly bias: GPUBuffer;
}

class TextureLinear implements VariantLinear {
  destroyed = false;
  readonly groups = new BindGroupCache();
  constructor(
    readonly variant: string,
    readonly n: number,
    readonly k: number,
    readonly perTexel: 4 | 8,
    readonly kp: number,
    readonly height: number,
    readonly layers: number,
    readonly parts: TexturePart[],
    readonly bytes: number,
    readonly label: string,
  ) {}
  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    for (const p of this.parts) {
      p.texture.destroy();
      p.bias.destroy();
    }
    this.groups.clear();
  }
}

/** Bytes of one repacked block handed to `writeTexture` (bounds the upload's host copies). */
const UPLOAD_BLOCK_BYTES = 8 << 20;

/**
 * Writes `W[part.n0 : part.n0 + part.n, 0 : k]` into `texture` (`[width, height, layers]`
 * texels) a block of texel columns at a time, so that the host holds the repacked layout and
 * wgpu's staging copy of at most {@linkcode UPLOAD_BLOCK_BYTES} (plus one texel column) at
 * once instead of the whole texture twice (an OPT-6.7b LM head: 412 MB each).
 *
 * Texel `(x, y, layer)` holds `W[n0 + P*x + i, layer * height + y]`, `i < P` (P = 4 f32 or
 * 8 f16 per texel); block texel `(x - x0, y, layer)` is element
 * `((layer * height + y) * bx + (x - x0)) * P + i` of the block. Columns past `part.n` and
 * rows past `k` are zeros.
 */
function writeTextureBlocks(
  dev: GPUDevice,
  texture: GPUTexture,
  host: HostLinear,
  part: { n0: number; n: number },
  t: { width: number; height: number; layers: number; perTexel: 4 | 8 },
): void {
  const { width, height, layers, perTexel: P } = t;
  const k = host.k;
  const columnBytes = height * layers * 16;
  // whole WIDTH_ALIGN groups of texels (width is a multiple): 512-byte aligned rows
  const bx = Math.min(
    width,
    Math.max(WIDTH_ALIGN, Math.floor(UPLOAD_BLOCK_BYTES / columnBytes / WIDTH_ALIGN) * WIDTH_ALIGN),
  );
  const words = new Uint32Array(bx * height * layers * 4);
  for (let x0 = 0; x0 < width; x0 += bx) {
    const w = Math.min(bx, width - x0);
    const block = w === bx ? words : words.subarray(0, w * height * layers * 4);
    block.fill(0);
    const j0 = x0 * P, j1 = Math.min(part.n, (x0 + w) * P); // columns of the part
    const step = w * P;
    if (host.f16) {
      const dst = new Uint16Array(block.buffer, 0, block.length * 2);
      const src = host.f16;
      for (let j = j0; j < j1; j++) {
        const so = (part.n0 + j) * k;
        for (let tk = 0, d = j - j0; tk < k; tk++, d += step) dst[d] = src[so + tk];
      }
    } else {
      const dst = new Float32Array(block.buffer, 0, block.length);
      const src = host.f32!;
      for (let j = j0; j < j1; j++) {
        const so = (part.n0 + j) * k;
        for (let tk = 0, d = j - j0; tk < k; tk++, d += step) dst[d] = src[so + tk];
      }
    }
    dev.queue.writeTexture(
      { texture, origin: [x0, 0, 0] },
      block,
      { bytesPerRow: w * 16, rowsPerImage: height },
      [w, height, layers],
    );
    // hand the staged block to the queue, so that wgpu can free it once the copy is done
    dev.queue.submit([]);
  }
}

/**
 * The texture/uniform variant (`v2_texture_uniform`).
 *
 * @example
 * ```ts
 * import type { HostLinear } from "./host.ts";
 * import type { ResolvedArgs, VariantContext } from "./types.ts";
 * declare const ctx: VariantContext, host: HostLinear;
 * declare const encoder: GPUCommandEncoder, args: ResolvedArgs;
 * const v = new TextureVariant(ctx);
 * if (!v.unsupported(host)) v.encode(encoder, v.upload(host), args);
 * ```
 */
export class TextureVariant implements Variant {
  readonly name = "v2_texture_uniform";
  /** Takes a LayerNorm prologue (folded into the repack of X, `repack_ln_rows.wgsl`). */
  readonly layerNorm = true;
  #ctx: VariantContext;
  #repackLn: DeclaredPipeline;
  #pipes = new Map<string, CompiledPipeline>();
  #repack: DeclaredPipeline;
  #params: ParamCache;
  #groups = new BindGroupCache();
  #scratch: GPUBuffer | null = null;
  #dummy: GPUBuffer;
  /** The last repack recorded: its encoder and what it copied where (see `xUnchanged`). */
  #lastRepack: { encoder: GPUCommandEncoder; key: string } | null = null;

  /**
   * Creates every pipeline of the variant (cheap; a software adapter compiles each one at
   * its first dispatch), so that `ready()` reports any WGSL error.
   */
  constructor(ctx: VariantContext) {
    this.#ctx = ctx;
    this.#params = new ParamCache(ctx.device, this.name);
    this.#repack = declaredPipeline(ctx.device, "repack_rows", repackCode);
    this.#repackLn = declaredPipeline(ctx.device, "repack_ln_rows", repackLnCode);
    for (const perTexel of [4, 8] as const) {
      for (const rows of [1, 2, 4, 8]) this.#pipeline({ rows, perTexel, ...TEXTURE_SHAPES[rows] });
    }
    this.#dummy = ctx.device.createBuffer({
      label: `${this.name} no residual`,
      size: 16,
      usage: GPUBufferUsage.STORAGE,
    });
  }

  /** Why `host` cannot use this variant, or `null` when it can. */
  unsupported(host: HostLinear): string | null {
    const kp = Math.ceil(host.k / ROW_ALIGN) * ROW_ALIGN;
    if (kp > WINDOW_FLOATS) return `K = ${host.k} exceeds one 64 KiB uniform row (16384)`;
    const height = this.#height(kp);
    const layers = Math.ceil(kp / height);
    const maxLayers = this.#ctx.device.limits.maxTextureArrayLayers;
    if (layers > maxLayers) return `K = ${host.k} needs ${layers} texture layers (> ${maxLayers})`;
    if (this.#ctx.maxTextureDim < WIDTH_ALIGN) {
      return `texture dimension limit below ${WIDTH_ALIGN}`;
    }
    return null;
  }

  /**
   * Texture height (k per layer): a multiple of 8, not a power of two where possible, and
   * at most half of `kp`, so that every weight texture has at least two array layers.
   * wgpu's GL backend cannot be told a texture's view dimension at creation and guesses it
   * from the layer count: a one-layer texture becomes a `D2` texture, and a
   * `texture_2d_array` binding of it reads zeros (it also logs "heuristics assumed that the
   * view dimension will be equal to `D2` rather than `D2Array`" per dispatch). Two or more
   * layers are `D2Array` there, and cost nothing elsewhere.
   */
  #height(kp: number): number {
    const max = Math.floor(this.#ctx.maxTextureDim / 8) * 8;
    const h = Math.min(Math.ceil(kp / 16) * 8, max);
    // llvmpipe compiles a new shader variant per power-of-two-ness of texture sides.
    return (h & (h - 1)) === 0 && h + 8 <= max ? h + 8 : h;
  }

  #pipeline(shape: TextureKernelShape): CompiledPipeline {
    const key = `${shape.rows}x${shape.cols}u${shape.unroll}p${shape.perTexel}`;
    let pipe = this.#pipes.get(key);
    if (!pipe) {
      pipe = compilePipeline(
        this.#ctx.device,
        `${this.name} ${key}`,
        textureUniformWgsl(shape),
      );
      this.#pipes.set(key, pipe);
    }
    const err = pipe.failure();
    if (err) throw err;
    return pipe;
  }

  async ready(): Promise<void> {
    await Promise.all([
      this.#repack.check,
      this.#repackLn.check,
      ...[...this.#pipes.values()].map((p) => p.check),
    ]);
  }

  upload(host: HostLinear): VariantLinear {
    const reason = this.unsupported(host);
    if (reason) throw new Error(`linear ${host.label}: ${this.name} cannot hold it: ${reason}`);
    const { n, k, label } = host;
    const dev = this.#ctx.device;
    const f16 = host.f16 !== null;
    const P = f16 ? 8 : 4;
    const kp = Math.ceil(k / ROW_ALIGN) * ROW_ALIGN;
    const height = this.#height(kp);
    const layers = Math.ceil(kp / height);
    const maxTexels = Math.floor(this.#ctx.maxTextureDim / WIDTH_ALIGN) * WIDTH_ALIGN;
    const parts: TexturePart[] = [];
    let bytes = 0;
    for (const part of splitColumns(n, maxTexels * P, P)) {
      let width = Math.ceil(part.n / P / WIDTH_ALIGN) * WIDTH_ALIGN;
      // llvmpipe compiles a new shader variant (seconds) per power-of-two-ness of texture
      // sides: keep widths non-powers of two where the limit allows, but only narrow ones,
      // where the padding is small in bytes. From POT_PAD_MAX_TEXELS on, one more WIDTH_ALIGN
      // would add about 6 % or less to a large matrix (OPT-6.7b: 0.5 GB over its 32 layers) for a
      // one-time compile of seconds.
      while (
        (width & (width - 1)) === 0 && width < POT_PAD_MAX_TEXELS &&
        width + WIDTH_ALIGN <= this.#ctx.maxTextureDim
      ) {
        width += WIDTH_ALIGN;
      }
      const texture = dev.createTexture({
        label: `${label} W[${part.n0}:${part.n0 + part.n}] (${this.name})`,
        size: [width, height, layers],
        format: f16 ? "rgba32uint" : "rgba32float",
        usage: GPUTextureUsage.TEXTURE_BINDING | GPUTextureUsage.COPY_DST,
      });
      writeTextureBlocks(dev, texture, host, part, { width, height, layers, perTexel: P });
      const biasData = host.bias
        ? host.bias.subarray(part.n0, part.n0 + part.n)
        : new Float32Array(part.n);
      const bias = dev.createBuffer({
        label: `${label} b[${part.n0}:${part.n0 + part.n}] (${this.name})`,
        size: Math.max(16, Math.ceil(part.n / 4) * 16),
        usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST,
      });
      dev.queue.writeBuffer(bias, 0, biasData);
      bytes += width * height * layers * 16 + bias.size;
      parts.push({
        n0: part.n0,
        n: part.n,
        width,
        texture,
        view: texture.createView({ dimension: "2d-array" }),
        bias,
      });
    }
    return new TextureLinear(this.name, n, k, P, kp, height, layers, parts, bytes, label);
  }

  /** The weight textures as a `[N, K]` table (layout in `TextureTable`). */
  rowTable(linear: VariantLinear, label: string): TextureTable {
    const lin = linear as TextureLinear;
    return {
      label,
      rows: lin.n,
      cols: lin.k,
      format: lin.perTexel === 8 ? "tex-f16" : "tex-f32",
      height: lin.height,
      parts: lin.parts.map((p) => ({ n0: p.n0, view: p.view })),
      bytes: 0,
      destroy: () => {},
    };
  }

  #scratchFor(bytes: number): GPUBuffer {
    const need = bytes + WINDOW_FLOATS * 4;
    if (!this.#scratch || this.#scratch.size < need) {
      // The old scratch stays alive while encoders reference it; it is never destroyed here.
      const size = Math.max(need, Math.ceil((this.#scratch?.size ?? 0) * 1.5 / 256) * 256);
      this.#scratch = this.#ctx.device.createBuffer({
        label: `${this.name} X rows`,
        size,
        usage: GPUBufferUsage.STORAGE | GPUBufferUsage.UNIFORM,
      });
      this.#groups.clear();
    }
    return this.#scratch;
  }

  encode(encoder: GPUCommandEncoder, linear: VariantLinear, a: ResolvedArgs): void {
    const lin = linear as TextureLinear;
    const { n, k, kp } = lin;
    const dev = this.#ctx.device;
    const ln = a.layerNorm;
    const repack = ln ? this.#repackLn : this.#repack;
    const repackErr = repack.failure();
    if (repackErr) throw repackErr;
    const epsBits = ln ? new Uint32Array(new Float32Array([ln.eps]).buffer)[0] : 0;
    const limit = this.#ctx.maxBindingBytes - 256;
    const rowsMax = Math.min(65535, Math.floor(limit / (k * 4)), Math.floor(limit / (n * 4)));
    if (rowsMax < 1) throw new Error(`linear ${lin.label}: one row of X or Y exceeds a binding`);
    const align = dev.limits.minStorageBufferOffsetAlignment;
    const flags = (a.relu ? 1 : 0) | (a.residual ? 2 : 0) | (a.accumulate ? 4 : 0);
    const res = a.residual ?? this.#dummy;
    for (let r0 = 0; r0 < a.m; r0 += rowsMax) {
      const rows = Math.min(rowsMax, a.m - r0);
      const scratch = this.#scratchFor(rows * kp * 4);
      const sid = bufferId(scratch);
      const xw = window(a.xOffset + r0 * k * 4, rows * k * 4, align);
      const yw = window(a.yOffset + r0 * n * 4, rows * n * 4, align);
      const rw = a.residual
        ? window(a.residualOffset + r0 * n * 4, rows * n * 4, align)
        : { offset: 0, size: 16, elem: 0 };
      const pass = encoder.beginComputePass({ label: `${lin.label} (${this.name})` });
      // 1. X rows -> scratch rows of kp floats (zero padded), unless the caller promised
      //    that X is unchanged and the scratch still holds exactly this copy.
      const rkey = [bufferId(a.x), xw.offset, xw.size, xw.elem, sid, rows, k, kp].concat(
        ln ? [bufferId(ln.w), bufferId(ln.b), epsBits] : [],
      ).join(":");
      const last = this.#lastRepack;
      const reuse = a.xUnchanged && rows === a.m && last?.encoder === encoder &&
        last.key === rkey;
      if (!reuse) {
        const repackGroup = this.#groups.get(rkey, () => {
          // bindings and Params by the names repack_rows.wgsl / repack_ln_rows.wgsl declare
          const args = {
            src: { buffer: a.x, offset: xw.offset, size: xw.size },
            dst: { buffer: scratch, offset: 0, size: rows * kp * 4 },
            ...(ln ? { w: { buffer: ln.w }, b: { buffer: ln.b } } : {}),
            m: rows,
            k,
            kp,
            xe: xw.elem,
            eps_bits: epsBits,
          };
          return dev.createBindGroup({
            label: `${repack.name} ${lin.label}`,
            layout: repack.pipeline.getBindGroupLayout(0),
            entries: [
              {
                binding: 0,
                resource: {
                  buffer: this.#params.get(declaredParams(repack.name, repack.iface, args).ints),
                },
              },
              ...declaredBindings<GPUBufferBinding>(repack.name, repack.iface, args).map((
                resource,
                i,
              ) => ({ binding: i + 1, resource })),
            ],
          });
        });
        pass.setPipeline(repack.pipeline);
        pass.setBindGroup(0, repackGroup);
        if (ln) pass.dispatchWorkgroups(rows);
        else pass.dispatchWorkgroups(Math.ceil(kp / 64), rows);
        this.#lastRepack = { encoder, key: rkey };
      }
      // 2. Row groups of 8 rows, the remainder rounded up to 4, 2 or 1 rows (surplus rows
      //    re-read the last row and are not written: one pass over W beats several).
      for (let g0 = 0; g0 < rows;) {
        const left = rows - g0;
        const R = left > 4 ? 8 : left > 2 ? 4 : left;
        const valid = Math.min(R, left);
        const shape = { rows: R, perTexel: lin.perTexel, ...TEXTURE_SHAPES[R] };
        const pipe = this.#pipeline(shape);
        pass.setPipeline(pipe.pipeline);
        for (let pi = 0; pi < lin.parts.length; pi++) {
          const part = lin.parts[pi];
          const key = [
            sid,
            r0,
            g0,
            R,
            valid,
            pi,
            bufferId(a.y),
            yw.offset,
            yw.size,
            yw.elem,
            bufferId(res),
            rw.offset,
            rw.size,
            rw.elem,
            flags,
          ].join(":");
          const group = lin.groups.get(key, () => {
            const entries: GPUBindGroupEntry[] = [
              {
                binding: 0,
                resource: {
                  buffer: this.#params.get([
                    part.n,
                    n,
                    part.n0,
                    flags,
                    yw.elem + g0 * n,
                    rw.elem + g0 * n,
                    kp / 4,
                    lin.height / 4,
                    lin.layers,
                    valid,
                  ]),
                },
              },
              { binding: 1, resource: { buffer: part.bias } },
              { binding: 2, resource: { buffer: a.y, offset: yw.offset, size: yw.size } },
              { binding: 3, resource: { buffer: res, offset: rw.offset, size: rw.size } },
              { binding: 4, resource: part.view },
            ];
            for (let r = 0; r < R; r++) {
              entries.push({
                binding: 5 + r,
                resource: {
                  buffer: scratch,
                  offset: (g0 + Math.min(r, valid - 1)) * kp * 4,
                  size: WINDOW_FLOATS * 4,
                },
              });
            }
            return dev.createBindGroup({
              label: `${lin.label} rows ${r0 + g0}+${R} part ${pi} (${this.name})`,
              layout: pipe.pipeline.getBindGroupLayout(0),
              entries,
            });
          });
          pass.setBindGroup(0, group);
          pass.dispatchWorkgroups(part.width / (8 * shape.cols));
        }
        g0 += valid;
      }
      pass.end();
    }
  }
}
