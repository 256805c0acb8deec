/**
 * Paged attention for sequences at their own positions (the per-row engine,
 * `backend/webgpu/rows.ts`): each layer keeps its keys and values in a pool of fixed-size
 * pages, and each slot (sequence) has a page table per layer. Two kernels:
 *
 * - `kv_write.wgsl`: copies a layer's freshly projected keys and values (compact rows, one
 *   per token that runs the layer) into the pool rows their slot's page table gives;
 * - {@linkcode pagedAttentionWgsl}: each query row attends its own slot's keys at positions
 *   `0 .. pos` (ragged lengths), one invocation per (row, head) with an online softmax, the
 *   same arithmetic (and order of additions) as the "lanes" kernel of `wgsl.ts`, so a token
 *   gets the same attention output here as in the column-batched decode on the software
 *   adapter.
 *
 * Shapes: `q`, `kin`, `vin`, `out` `[m, d]` f32 (compact rows of the layer's active tokens);
 * `rows [m]` u32: the call's token index of each compact row; `slot`, `pos` `[tokens]` u32;
 * `table [capacity, maxPages]` u32 (page ids of this layer); pools
 * `[pages * pageSize, d]` of `KV` (f32, or f16 with `kvDtype: "f16"`: keys and values rounded
 * when written, read back as f32; see `kv_dtype.ts`). CPU references: `pagedAttentionReference`,
 * `kvWriteReference` in `reference.ts`.
 *
 * @example
 * ```ts
 * import { pagedAttentionWgsl } from "./paged.ts";
 * console.log(pagedAttentionWgsl(16).includes("table")); // true
 * ```
 *
 * @module
 */
import { createDeclaredKernel, type DeclaredKernel, grid } from "../declare.ts";
import type { GpuContext } from "../device.ts";
import type { Binding, Recorder } from "../encode.ts";
import { KV_ALIAS, type KvDtype, withKvDtype } from "./kv_dtype.ts";
import { balancedSum, MAX_HEAD_DIM } from "./wgsl.ts";
import kvWriteCode from "./kv_write.wgsl" with { type: "text" };

/**
 * WGSL of the paged attention kernel for one head size: vec4 registers when `headDim` is a
 * multiple of 4 (every OPT model), scalars otherwise.
 *
 * Bindings: 0 params; 1 `q` `[m, d]`; 2 `kpool`, 3 `vpool` `[pages * pageSize, d]`; 4 `rows`
 * `[m]`; 5 `slot`, 6 `pos` `[tokens]`; 7 `table` `[capacity, maxPages]`; 8 `out` `[m, d]`.
 * Query row `r` is token `t = rows[r]` at position `c = pos[t]` of slot `s = slot[t]`; it
 * attends keys `0 .. c`, key `u` at pool row `table[s * maxPages + u / pageSize] * pageSize +
 * u % pageSize` (every position before `c` ran this layer: the nesting invariant, checked on
 * the host). `q` is scaled by `scale` (`headDim ** -0.5`).
 *
 * Workgroup `(8)` (one 256-bit SIMD vector on llvmpipe), no workgroup memory: invocation
 * `gid = (wg.y * num_workgroups.x + wg.x) * 8 + lane` is row `gid / heads`, head
 * `gid % heads`; dispatch `(min(G, 32768), ceil(G / 32768))`, `G = ceil(m * heads / 8)`.
 *
 * @example
 * ```ts
 * import { pagedAttentionWgsl } from "./paged.ts";
 * const code = pagedAttentionWgsl(6); // scalar registers, head size 6
 * ```
 */
export function pagedAttentionWgsl(headDim: number): string {
  if (!Number.isInteger(headDim) || headDim < 1 || headDim > MAX_HEAD_DIM) {
    throw new RangeError(
      `paged attention: head size ${headDim} must be an integer in 1..${MAX_HEAD_DIM}`,
    );
  }
  const w = headDim % 4 === 0 ? 4 : 1;
  const n = headDim / w;
  const T = w === 4 ? "vec4<f32>" : "f32";
  const idx = Array.from({ length: n }, (_, i) => i);
  const dot = balancedSum(idx.map((i) => `q${i} * ${T}(kpool[ko + ${i}u])`));
  const KT = w === 4 ? "vec4<KV>" : "KV";
  const score = w === 4
    ? `let s4 = ${dot};\n      let s = (s4.x + s4.y) + (s4.z + s4.w);`
    : `let s = ${dot};`;
  return /* wgsl */ `
// paged attention (head size ${headDim}, ${T} registers): one invocation per (row, head),
// online softmax over the slot's own keys 0..pos through its page table; see paged.ts
${KV_ALIAS}
struct Params {
  m: u32,
  d: u32,
  headDim: u32,
  pageSize: u32,
  maxPages: u32,
  scale: f32,
}
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> q: array<${T}>;
@group(0) @binding(2) var<storage, read> kpool: array<${KT}>;
@group(0) @binding(3) var<storage, read> vpool: array<${KT}>;
@group(0) @binding(4) var<storage, read> rows: array<u32>;
@group(0) @binding(5) var<storage, read> slot: array<u32>;
@group(0) @binding(6) var<storage, read> pos: array<u32>;
@group(0) @binding(7) var<storage, read> table: array<u32>;
@group(0) @binding(8) var<storage, read_write> out: array<${T}>;
@compute @workgroup_size(8)
fn main(
  @builtin(workgroup_id) wg: vec3<u32>,
  @builtin(num_workgroups) nwg: vec3<u32>,
  @builtin(local_invocation_index) lane: u32,
) {
  let heads = p.d / p.headDim;
  let gid = (wg.y * nwg.x + wg.x) * 8u + lane;
  if (gid >= p.m * heads) { return; }
  let r = gid / heads;
  let h = gid % heads;
  let t = rows[r];
  let c = pos[t];
  let base = slot[t] * p.maxPages;
  let dw = p.d / ${w}u;
  let ho = h * ${n}u;
  let qo = r * dw + ho;
${idx.map((i) => `  let q${i} = q[qo + ${i}u] * p.scale;`).join("\n")}
${idx.map((i) => `  var a${i} = ${T}(0.0);`).join("\n")}
  var mx = -3.4028235e38;
  var l = 0.0;
  for (var u = 0u; u <= c; u = u + 1u) {
    let row = table[base + u / p.pageSize] * p.pageSize + u % p.pageSize;
    let ko = row * dw + ho;
      ${score}
      let mn = max(mx, s);
      let corr = exp(mx - mn);
      let e = exp(s - mn);
      l = l * corr + e;
      mx = mn;
${idx.map((i) => `      a${i} = a${i} * corr + e * ${T}(vpool[ko + ${i}u]);`).join("\n")}
  }
  let inv = select(0.0, 1.0 / l, l > 0.0);
${idx.map((i) => `  out[qo + ${i}u] = a${i} * inv;`).join("\n")}
}
`;
}

/** The paged KV layout one dispatch reads: the call's token tables and a layer's pages. */
export interface PagedLayout {
  /** `[m]` u32: the call's token index of each compact row. */
  rows: Binding;
  /** `[tokens]` u32: each token's slot. */
  slot: Binding;
  /** `[tokens]` u32: each token's position in its slot. */
  pos: Binding;
  /** `[capacity, maxPages]` u32: this layer's page table. */
  table: Binding;
  /** This layer's key pool `[pages * pageSize, d]`. */
  kpool: Binding;
  /** This layer's value pool. */
  vpool: Binding;
  /** Positions per page. */
  pageSize: number;
  /** Page-table entries per slot. */
  maxPages: number;
}

/** Arguments of {@linkcode PagedAttentionKernels.attend}. */
export interface PagedAttendArgs extends PagedLayout {
  /** `[m, d]` queries as `q_proj` wrote them (unscaled). */
  q: Binding;
  /** `[m, d]` output. */
  out: Binding;
  /** Query rows. */
  m: number;
  /** Model width. */
  d: number;
  /** Heads. */
  heads: number;
}

/** Arguments of {@linkcode PagedAttentionKernels.write}. */
export interface KvWriteArgs extends PagedLayout {
  /** `[m, d]` keys of the compact rows. */
  kin: Binding;
  /** `[m, d]` values. */
  vin: Binding;
  /** Rows. */
  m: number;
  /** Model width. */
  d: number;
}

/** The compiled paged kernels of one head size. */
export interface PagedAttentionKernels {
  /** Records the KV write of `m` compact rows into the pools. */
  write(rec: Recorder, a: KvWriteArgs): void;
  /** Records the attention of `m` query rows over their slots' pages. */
  attend(rec: Recorder, a: PagedAttendArgs): void;
}

/**
 * Compiles the paged kernels for one head size and KV storage type (`kvDtype` `"f16"` needs a
 * device with `shader-f16`; check it with `resolveKvDtype` first).
 *
 * @example
 * ```ts
 * import { createPagedAttention } from "./paged.ts";
 * import type { GpuContext } from "../device.ts";
 * declare const gpu: GpuContext;
 * const paged = await createPagedAttention(gpu, 64);
 * ```
 */
export async function createPagedAttention(
  gpu: GpuContext,
  headDim: number,
  kvDtype: KvDtype = "f32",
): Promise<PagedAttentionKernels> {
  const tag = kvDtype === "f32" ? "" : `, kv=${kvDtype}`;
  const [kv, att]: DeclaredKernel[] = await Promise.all([
    createDeclaredKernel(gpu, `kv_write(${kvDtype})`, withKvDtype(kvWriteCode, kvDtype)),
    createDeclaredKernel(
      gpu,
      `paged_attention(headDim=${headDim}${tag})`,
      withKvDtype(pagedAttentionWgsl(headDim), kvDtype),
    ),
  ]);
  return {
    write(rec, a) {
      if (a.m === 0) return;
      const g = grid(a.m * a.d, 64);
      kv.dispatch(rec, { ...a, n: a.m, width: a.d, stride: g.stride }, g.groups, "attention");
    },
    attend(rec, a) {
      if (a.m === 0) return;
      const hd = a.d / a.heads;
      if (hd !== headDim) {
        throw new RangeError(`paged attention: compiled for head size ${headDim}, got ${hd}`);
      }
      const groups = Math.ceil((a.m * a.heads) / 8);
      const x = Math.min(groups, 32768);
      att.dispatch(
        rec,
        { ...a, headDim: hd, scale: 1 / Math.sqrt(hd) },
        [x, Math.ceil(groups / x)],
        "attention",
      );
    },
  };
}
