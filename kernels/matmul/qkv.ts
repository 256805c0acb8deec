/**
 * q, k and v of a layer as ONE product on the GPU kernels: the three weights are uploaded
 * as one `[3 d, K]` storage linear (`fuseLinears`), and the split GEMV
 * (`v4_storage_gemv.ts` with `split`) routes output column `g` to the queries (`g < d`),
 * the key cache (`g < 2 d`) or the value cache, with the pre-LN LayerNorm in its prologue:
 * one dispatch instead of three (plus one LayerNorm). Its parameters go to the recorder's
 * arena and its bind group holds whole buffers (the cache row is a parameter), so a decode
 * step records no new bind group or uniform buffer whatever the column.
 *
 * Shapes: `X [m, K]` f32 from row 0 of `x`; `q [m, d]`; keys and values `[m, d]` from byte
 * `kvOffset` of `k` and `v` (the cache slots of the columns run).
 *
 * @example
 * ```ts
 * import { createQkvKernel } from "./qkv.ts";
 * import type { GpuContext, Recorder } from "../mod.ts";
 * import type { DeviceLinear } from "./mod.ts";
 * declare const gpu: GpuContext, rec: Recorder, qkv: DeviceLinear; // qkv: [3 d, d] f16
 * declare const x: GPUBuffer, q: GPUBuffer, k: GPUBuffer, v: GPUBuffer;
 * const kernel = await createQkvKernel(gpu, { f16: true, ln: false });
 * kernel.encode(rec, { x, q, k, v, kvOffset: 0, m: 4, linear: qkv });
 * ```
 *
 * @module
 */
import { createDeclaredKernel, type DeclaredKernel } from "../declare.ts";
import type { GpuContext } from "../device.ts";
import type { Recorder } from "../encode.ts";
import type { LinearWeights, Tensor } from "../../model/types.ts";
import { tensorToFloat32 } from "../../model/safetensors.ts";
import { storageLayout } from "./storage.ts";
import { GEMV_COLS, GEMV_ROW_BUCKETS, gemvRows, gemvWgsl } from "./v4_storage_gemv.ts";

/** One fused q/k/v product. */
export interface QkvArgs {
  /** f32 `X [m, K]` from row 0. */
  x: GPUBuffer;
  /** f32 queries `[m, d]` from row 0. */
  q: GPUBuffer;
  /** f32 keys: `[m, d]` written from byte `kvOffset`. */
  k: GPUBuffer;
  /** f32 values, as `k`. */
  v: GPUBuffer;
  /** Byte offset of row 0 in `k` and `v` (a multiple of the element size). */
  kvOffset: number;
  /** `k` and `v` hold f16 (values rounded to nearest; the kernel must be made with `kv16`). */
  kv16?: boolean;
  /** Rows. */
  m: number;
  /** The `[3 d, K]` linear from `fuseLinears`, uploaded by a storage variant. */
  linear: unknown;
  /** LayerNorm of each `X` row first (kernels made with `ln: true` only); eps 1e-5. */
  layerNorm?: { w: GPUBuffer; b: GPUBuffer; eps?: number };
}

/** The fused q/k/v kernels of one weight type. */
export interface QkvKernel {
  /** Records the product (one dispatch per weight part: one unless `3 d x K` exceeds a binding). */
  encode(rec: Recorder, args: QkvArgs): void;
  /** Workgroups of each dispatch for `m` rows of `linear`. */
  workgroups(linear: unknown, m: number): number[];
}

/**
 * Compiles the split GEMV for each row bucket (f16 or f32 weights, with or without the
 * LayerNorm prologue; `subgroups` when the device has them).
 *
 * @example
 * ```ts
 * import { createQkvKernel } from "./qkv.ts";
 * import { requestGpu } from "../device.ts";
 * const gpu = await requestGpu();
 * const kernel = await createQkvKernel(gpu, { f16: false, ln: true });
 * ```
 */
export async function createQkvKernel(
  gpu: GpuContext,
  shape: { f16: boolean; ln: boolean; kv16?: boolean },
): Promise<QkvKernel> {
  const subgroups = gpu.profile?.subgroups ?? false;
  const kernels = new Map<string, DeclaredKernel>();
  const kvTypes = shape.kv16 ? [false, true] : [false];
  await Promise.all(GEMV_ROW_BUCKETS.flatMap((rows) =>
    kvTypes.map(async (kv16) => {
      const name = `qkv gemv (${shape.f16 ? "f16" : "f32"} weights, ${rows} rows${
        shape.ln ? ", LayerNorm prologue" : ""
      }${kv16 ? ", f16 KV" : ""})`;
      const code = gemvWgsl({ rows, f16: shape.f16, subgroups, ln: shape.ln, split: true, kv16 });
      kernels.set(`${rows}:${kv16}`, await createDeclaredKernel(gpu, name, code));
    })
  ));
  const layoutOf = (linear: unknown) => {
    const lay = storageLayout(linear);
    if (!lay) throw new Error("qkv: the fused linear was not uploaded by a storage variant");
    if (lay.f16 !== shape.f16) {
      throw new Error(`qkv: linear ${lay.label} is ${lay.f16 ? "f16" : "f32"}, kernel is not`);
    }
    if (lay.kAlign % 8 !== 0 || lay.n % 3 !== 0) {
      throw new Error(
        `qkv: linear ${lay.label} [${lay.n}, ${lay.k}] is not a [3 d, K] GEMV layout`,
      );
    }
    return lay;
  };
  return {
    workgroups(linear, m) {
      const lay = layoutOf(linear);
      return lay.parts.map((p) => Math.ceil(p.n / GEMV_COLS) * Math.ceil(m / gemvRows(m)));
    },
    encode(rec, a) {
      const lay = layoutOf(a.linear);
      const d = lay.n / 3, K = lay.k, m = a.m;
      if (!Number.isInteger(m) || m < 1) {
        throw new Error(`qkv ${lay.label}: m must be >= 1, got ${m}`);
      }
      if (!!a.layerNorm !== shape.ln) {
        throw new Error(
          `qkv ${lay.label}: layerNorm ${a.layerNorm ? "given to" : "missing for"} this kernel`,
        );
      }
      const kvBytes = a.kv16 ? 2 : 4;
      if (a.kv16 && !shape.kv16) throw new Error(`qkv ${lay.label}: kernel made without kv16`);
      if (a.kvOffset % kvBytes !== 0 || a.kvOffset < 0) {
        throw new Error(
          `qkv ${lay.label}: kvOffset must be a non-negative multiple of ${kvBytes}`,
        );
      }
      const need = (buf: GPUBuffer, bytes: number, what: string) => {
        if (bytes > buf.size) {
          throw new Error(
            `qkv ${lay.label}: ${what} needs ${bytes} bytes, buffer ${
              buf.label || "(unlabelled)"
            } has ${buf.size}`,
          );
        }
      };
      need(a.x, m * K * 4, `x [${m}, ${K}]`);
      need(a.q, m * d * 4, `q [${m}, ${d}]`);
      need(a.k, a.kvOffset + m * d * kvBytes, `keys [${m}, ${d}] at byte ${a.kvOffset}`);
      need(a.v, a.kvOffset + m * d * kvBytes, `values [${m}, ${d}] at byte ${a.kvOffset}`);
      const rows = gemvRows(m);
      const groupsY = Math.ceil(m / rows);
      if (groupsY > 65535) throw new Error(`qkv ${lay.label}: ${m} rows exceed one dispatch`);
      const kernel = kernels.get(`${rows}:${!!a.kv16}`)!;
      const kvElem = a.kvOffset / kvBytes;
      for (const part of lay.parts) {
        kernel.dispatch(
          rec,
          {
            x: a.x,
            bias: part.b,
            y: a.q,
            yk: a.k,
            w: part.w,
            lnw: a.layerNorm?.w,
            lnb: a.layerNorm?.b,
            yv: a.v,
            m,
            n: part.n,
            k: K,
            ldy: d,
            n0: part.n0,
            flags: 0,
            kw: lay.kw,
            xe: 0,
            ye: 0,
            re: kvElem,
            pad0: a.layerNorm ? epsBits(a.layerNorm.eps ?? 1e-5) : 0,
            ve: kvElem,
          },
          [Math.ceil(part.n / GEMV_COLS), groupsY],
          "matmul",
        );
      }
    },
  };
}

function epsBits(eps: number): number {
  return new Uint32Array(new Float32Array([eps]).buffer)[0];
}

/**
 * Stacks linears along their outputs: `[n_1 + n_2 + ..., K]` weights and one bias (absent
 * biases read as zeros). Weights keep their element type when all share one (F16, F32,
 * BF16), else become F32; the bias is F32.
 *
 * @throws {Error} naming the weight whose shape does not match the first one's `K`.
 *
 * @example
 * ```ts
 * import { fuseLinears } from "./qkv.ts";
 * const t = (name: string, v: number[]) => ({
 *   name, dtype: "F32" as const, shape: [1, v.length],
 *   bytes: () => new Uint8Array(new Float32Array(v).buffer),
 * });
 * const fused = fuseLinears("qkv", [{ weight: t("q", [1, 2]) }, { weight: t("k", [3, 4]) }]);
 * console.log(fused.weight.shape); // [2, 2]
 * ```
 */
export function fuseLinears(name: string, linears: readonly LinearWeights[]): LinearWeights {
  const K = linears[0].weight.shape[1];
  for (const l of linears) {
    if (l.weight.shape.length !== 2 || l.weight.shape[1] !== K) {
      throw new Error(
        `fuse ${name}: weight ${l.weight.name} has shape ${JSON.stringify(l.weight.shape)}, ` +
          `expected [N, ${K}]`,
      );
    }
  }
  const N = linears.reduce((s, l) => s + l.weight.shape[0], 0);
  const same = linears.every((l) => l.weight.dtype === linears[0].weight.dtype);
  const dtype = same ? linears[0].weight.dtype : "F32";
  const weight: Tensor = {
    name: `${name}.weight`,
    dtype,
    shape: [N, K],
    bytes() {
      const parts = linears.map((l) =>
        same ? l.weight.bytes() : asBytes(tensorToFloat32(l.weight))
      );
      const out = new Uint8Array(parts.reduce((s, p) => s + p.byteLength, 0));
      let o = 0;
      for (const p of parts) {
        out.set(p, o);
        o += p.byteLength;
      }
      return out;
    },
  };
  const bias: Tensor = {
    name: `${name}.bias`,
    dtype: "F32",
    shape: [N],
    bytes() {
      const out = new Float32Array(N);
      let o = 0;
      for (const l of linears) {
        if (l.bias) out.set(tensorToFloat32(l.bias), o);
        o += l.weight.shape[0];
      }
      return asBytes(out);
    },
  };
  return { weight, bias };
}

function asBytes(a: Float32Array): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}
