/**
 * WGSL of the attention kernel (a template over the longest key range it accepts, which
 * sizes a workgroup array).
 *
 * Each kernel declares its KV element type with the `alias KV = f32;` line of `kv_dtype.ts`
 * (loads convert to f32): pass the source through `withKvDtype` for an f16 cache.
 *
 * @module
 */
import { KV_ALIAS } from "./kv_dtype.ts";

/** Largest head size the kernel accepts. */
export const MAX_HEAD_DIM = 256;

/**
 * Causal multi-head attention of query rows over a column-major KV cache, used both for
 * prefill (a block of columns from `colStart = 0`) and decode (one column).
 *
 * Bindings: 0 params; 1 `q: array<f32>` `[m, d]` (unscaled `q_proj` output); 2 `k` and
 * 3 `v: array<KV>` `[slots, B, d]` (slot = column; `KV` f32 or f16, see `kv_dtype.ts`); 4 `pad: array<u32>` `[B]`;
 * 5 `out: array<f32>` `[m, d]`.
 *
 * Query row `r` is column `c = colStart + r / B` of batch row `b = r % B`; it attends keys
 * `t` with `pad[b] <= t <= c` (causal and padding mask; skipped layers need no mask: by the
 * nesting invariant every column `t <= c` ran this layer). `q` is scaled by `scale`
 * (`headDim ** -0.5`) before the dot products, softmax is max-subtracted, probabilities are
 * normalised before weighting `v`, as in the CPU reference; no allowed key gives 0.
 *
 * Workgroup `(64)`: one workgroup per (head, query row): dispatch `(heads, m)`. Scores of
 * up to `maxKeys` keys live in workgroup memory; invocations stride over keys, then over
 * the head's output dimensions.
 */
export function attentionWgsl(maxKeys: number): string {
  return /* wgsl */ `
// attention: out[r, h] = softmax(q[r, h] * scale . k[pad..c, h]) v[pad..c, h]; see kernels/attention/wgsl.ts
${KV_ALIAS}
struct Params {
  m: u32,
  d: u32,
  headDim: u32,
  batch: u32,
  colStart: u32,
  scale: f32,
}
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> q: array<f32>;
@group(0) @binding(2) var<storage, read> k: array<KV>;
@group(0) @binding(3) var<storage, read> v: array<KV>;
@group(0) @binding(4) var<storage, read> pad: array<u32>;
@group(0) @binding(5) var<storage, read_write> out: array<f32>;

const MAX_KEYS = ${maxKeys}u;
var<workgroup> scores: array<f32, ${maxKeys}>;
var<workgroup> qs: array<f32, ${MAX_HEAD_DIM}>;
var<workgroup> red: array<f32, 64>;

fn reduce(lid: u32, x: f32, is_max: bool) -> f32 {
  red[lid] = x;
  workgroupBarrier();
  for (var s = 32u; s > 0u; s = s >> 1u) {
    if (lid < s) {
      if (is_max) { red[lid] = max(red[lid], red[lid + s]); }
      else { red[lid] = red[lid] + red[lid + s]; }
    }
    workgroupBarrier();
  }
  let r = red[0];
  workgroupBarrier();
  return r;
}

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) l: vec3<u32>) {
  let h = wg.x;
  let r = wg.y;
  let lid = l.x;
  let b = r % p.batch;
  let c = p.colStart + r / p.batch;
  let start = pad[b];
  let ho = h * p.headDim;
  let qo = r * p.d + ho;
  for (var i = lid; i < p.headDim; i += 64u) { qs[i] = q[qo + i] * p.scale; }
  workgroupBarrier();
  // keys start..c (none when the query itself is padding)
  let n = select(0u, min(c + 1u - start, MAX_KEYS), c >= start);
  var mx = -3.4028235e38;
  for (var j = lid; j < n; j += 64u) {
    let ko = ((start + j) * p.batch + b) * p.d + ho;
    var s = 0.0;
    for (var i = 0u; i < p.headDim; i++) { s += qs[i] * f32(k[ko + i]); }
    scores[j] = s;
    mx = max(mx, s);
  }
  mx = reduce(lid, mx, true);
  var sum = 0.0;
  for (var j = lid; j < n; j += 64u) {
    let e = exp(scores[j] - mx);
    scores[j] = e;
    sum += e;
  }
  sum = reduce(lid, sum, false);
  for (var j = lid; j < n; j += 64u) { scores[j] = scores[j] / sum; }
  workgroupBarrier();
  for (var i = lid; i < p.headDim; i += 64u) {
    var acc = 0.0;
    for (var j = 0u; j < n; j++) {
      acc += scores[j] * f32(v[((start + j) * p.batch + b) * p.d + ho + i]);
    }
    out[qo + i] = acc;
  }
}
`;
}

/**
 * The same attention with `vec4` loads, for head sizes and widths that are multiples of 4
 * (every OPT model): 4x fewer (scalarised, bounds-checked) loads on software adapters.
 *
 * Bindings as {@linkcode attentionWgsl}, but `q`, `k`, `v` and `out` are `array<vec4<f32>>`.
 * Scores: invocations stride over keys, each a `headDim / 4`-term vec4 dot product. Values:
 * invocation `(g, i)` (`i < headDim / 4`, `g < G = 64 / (headDim / 4)` key groups) sums keys
 * `j = g, g + G, ...` for vec4 `i`; group partials are added in order `g = 0 .. G-1`.
 */
export function attentionVec4Wgsl(maxKeys: number, wg = 64): string {
  return /* wgsl */ `
// attention (vec4): out[r, h] = softmax(q[r, h] * scale . k[pad..c, h]) v[pad..c, h]; see kernels/attention/wgsl.ts
${KV_ALIAS}
struct Params {
  m: u32,
  d: u32,
  headDim: u32,
  batch: u32,
  colStart: u32,
  scale: f32,
}
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> q: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> k: array<vec4<KV>>;
@group(0) @binding(3) var<storage, read> v: array<vec4<KV>>;
@group(0) @binding(4) var<storage, read> pad: array<u32>;
@group(0) @binding(5) var<storage, read_write> out: array<vec4<f32>>;

const MAX_KEYS = ${maxKeys}u;
var<workgroup> scores: array<f32, ${maxKeys}>;
var<workgroup> qs: array<vec4<f32>, ${MAX_HEAD_DIM / 4}>;
var<workgroup> red: array<f32, ${wg}>;
var<workgroup> part: array<vec4<f32>, ${Math.max(wg, MAX_HEAD_DIM / 4)}>;
const WG = ${wg}u;

fn reduce(lid: u32, x: f32, is_max: bool) -> f32 {
  red[lid] = x;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s = s >> 1u) {
    if (lid < s) {
      if (is_max) { red[lid] = max(red[lid], red[lid + s]); }
      else { red[lid] = red[lid] + red[lid + s]; }
    }
    workgroupBarrier();
  }
  let r = red[0];
  workgroupBarrier();
  return r;
}

@compute @workgroup_size(${wg})
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) l: vec3<u32>) {
  let h = wg.x;
  let r = wg.y;
  let lid = l.x;
  let b = r % p.batch;
  let c = p.colStart + r / p.batch;
  let start = pad[b];
  let h4 = p.headDim / 4u;
  let d4 = p.d / 4u;
  let ho = h * h4;
  let qo = r * d4 + ho;
  for (var i = lid; i < h4; i += WG) { qs[i] = q[qo + i] * p.scale; }
  workgroupBarrier();
  let n = select(0u, min(c + 1u - start, MAX_KEYS), c >= start);
  var mx = -3.4028235e38;
  for (var j = lid; j < n; j += WG) {
    let ko = ((start + j) * p.batch + b) * d4 + ho;
    var s4 = vec4<f32>(0.0);
    for (var i = 0u; i < h4; i++) { s4 += qs[i] * vec4<f32>(k[ko + i]); }
    let s = (s4.x + s4.y) + (s4.z + s4.w);
    scores[j] = s;
    mx = max(mx, s);
  }
  mx = reduce(lid, mx, true);
  var sum = 0.0;
  for (var j = lid; j < n; j += WG) {
    let e = exp(scores[j] - mx);
    scores[j] = e;
    sum += e;
  }
  sum = reduce(lid, sum, false);
  for (var j = lid; j < n; j += WG) { scores[j] = scores[j] / sum; }
  workgroupBarrier();
  // invocation (g, i): key group g < G = max(1, WG / h4) over keys g, g + G, ...; vec4s
  // i, i + WG, ... of the head (several per invocation only when h4 > WG)
  let groups = max(1u, WG / h4);
  let g = lid / h4;
  if (g < groups) {
    for (var i = lid % h4; i < h4; i += WG) {
      var acc = vec4<f32>(0.0);
      for (var j = g; j < n; j += groups) {
        acc += scores[j] * vec4<f32>(v[((start + j) * p.batch + b) * d4 + ho + i]);
      }
      part[g * h4 + i] = acc;
    }
  }
  workgroupBarrier();
  for (var i = lid; i < h4; i += WG) {
    var total = part[i];
    for (var gg = 1u; gg < groups; gg++) { total += part[gg * h4 + i]; }
    out[qo + i] = total;
  }
}
`;
}

/**
 * A WGSL expression summing `terms` as a balanced tree (shorter dependency chains than a
 * running sum). The lanes kernel and the paged kernel (`paged.ts`) both use it, so they add
 * a head's products in the same order.
 *
 * @example
 * ```ts
 * balancedSum(["a", "b", "c"]); // "((a + b) + c)"
 * ```
 */
export function balancedSum(terms: string[]): string {
  if (terms.length === 1) return terms[0];
  const half = Math.ceil(terms.length / 2);
  return `(${balancedSum(terms.slice(0, half))} + ${balancedSum(terms.slice(half))})`;
}

/**
 * Attention v3, "lanes", for software adapters (llvmpipe): one invocation per (query row,
 * head), `workgroup_size(8)` (one 256-bit SIMD vector of 8 such pairs), no workgroup
 * memory and no barriers. The head's scaled query sits in `H4` named `vec4` registers
 * (the kernel is generated per head size, `headDim = 4 * H4`), and each invocation walks
 * its keys once with an online softmax: running max `mx`, running sum `l` and `H4` `vec4`
 * accumulators rescaled by `exp(old max - new max)` when the max grows; the output is the
 * accumulator divided by `l` (0 when no key is allowed). Mathematically the softmax of the
 * other kernels; rounding differs from the CPU reference's two-pass form by a few ulps.
 *
 * Why: the workgroup kernels spend most of their time in barriers (coroutine switches on
 * llvmpipe), zero-initialising their workgroup arrays and reducing; at batch 8 and more one
 * decode step's attention cost about as much as its matrix products (see the tuning log in
 * `kernels/matmul/README.md`, "end to end").
 *
 * Bindings as {@linkcode attentionWgsl}, `q`, `k`, `v`, `out` as `array<vec4<f32>>`.
 * Dispatch `(min(G, 32768), ceil(G / 32768))` workgroups, `G = ceil(m * heads / 8)`;
 * invocation `gid = (wg.y * num_workgroups.x + wg.x) * 8 + lane` is row `gid / heads`,
 * head `gid % heads`.
 */
export function attentionLanesWgsl(h4: number): string {
  const idx = Array.from({ length: h4 }, (_, i) => i);
  const tree = balancedSum;
  return /* wgsl */ `
// attention-lanes (H4=${h4}, headDim ${
    4 * h4
  }): one invocation per (row, head), online softmax; see kernels/attention/wgsl.ts
${KV_ALIAS}
struct Params {
  m: u32,
  d: u32,
  headDim: u32,
  batch: u32,
  colStart: u32,
  scale: f32,
}
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> q: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> k: array<vec4<KV>>;
@group(0) @binding(3) var<storage, read> v: array<vec4<KV>>;
@group(0) @binding(4) var<storage, read> pad: array<u32>;
@group(0) @binding(5) var<storage, read_write> out: array<vec4<f32>>;
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
  let b = r % p.batch;
  let c = p.colStart + r / p.batch;
  let start = pad[b];
  let d4 = p.d / 4u;
  let ho = h * ${h4}u;
  let qo = r * d4 + ho;
${idx.map((i) => `  let q${i} = q[qo + ${i}u] * p.scale;`).join("\n")}
${idx.map((i) => `  var a${i} = vec4<f32>(0.0);`).join("\n")}
  var mx = -3.4028235e38;
  var l = 0.0;
  if (c >= start) {
    for (var t = start; t <= c; t = t + 1u) {
      let ko = (t * p.batch + b) * d4 + ho;
      let s4 = ${tree(idx.map((i) => `q${i} * vec4<f32>(k[ko + ${i}u])`))};
      let s = (s4.x + s4.y) + (s4.z + s4.w);
      let mn = max(mx, s);
      let corr = exp(mx - mn);
      let e = exp(s - mn);
      l = l * corr + e;
      mx = mn;
${idx.map((i) => `      a${i} = a${i} * corr + e * vec4<f32>(v[ko + ${i}u]);`).join("\n")}
    }
  }
  let inv = select(0.0, 1.0 / l, l > 0.0);
${idx.map((i) => `  out[qo + ${i}u] = a${i} * inv;`).join("\n")}
}
`;
}
