/**
 * WGSL of the LayerNorm kernel.
 *
 * @module
 */

/**
 * LayerNorm over the last axis: `out[r] = (x[r] - mean) / sqrt(var + eps) * w + b`, biased
 * variance, two passes (mean, then centred squares) as in the CPU reference.
 *
 * Bindings: 0 params; 1 `x: array<f32>` `[*, d]`; 2 `w` `[d]`; 3 `b` `[d]`;
 * 4 `out: array<f32>` `[*, d]`. Row `r < m` reads `x` row `inRow + r` and writes `out` row
 * `outRow + r` (so a slice of rows, e.g. the last prompt column, can be normalised).
 *
 * Workgroup `(wg)` (a power of two; 64 by default, 8 on software adapters): one workgroup
 * per row, strided partial sums reduced in workgroup memory; dispatch `(m)`.
 */
export function layerNormWgsl(wg = 64): string {
  return /* wgsl */ `
// layernorm: out[outRow + r] = LN(x[inRow + r]) * w + b, one workgroup per row; see layernorm_wgsl.ts
struct Params {
  m: u32,
  d: u32,
  inRow: u32,
  outRow: u32,
  eps: f32,
}
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read> b: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;

var<workgroup> partial: array<f32, ${wg}>;
const WG = ${wg}u;

fn reduce_sum(lid: u32, v: f32) -> f32 {
  partial[lid] = v;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s = s >> 1u) {
    if (lid < s) { partial[lid] = partial[lid] + partial[lid + s]; }
    workgroupBarrier();
  }
  let total = partial[0];
  workgroupBarrier();
  return total;
}

@compute @workgroup_size(${wg})
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) l: vec3<u32>) {
  let r = wg.x;
  let lid = l.x;
  let xo = (p.inRow + r) * p.d;
  let oo = (p.outRow + r) * p.d;
  var s = 0.0;
  for (var i = lid; i < p.d; i += WG) { s += x[xo + i]; }
  let mean = reduce_sum(lid, s) / f32(p.d);
  var v = 0.0;
  for (var i = lid; i < p.d; i += WG) {
    let c = x[xo + i] - mean;
    v += c * c;
  }
  let inv = 1.0 / sqrt(reduce_sum(lid, v) / f32(p.d) + p.eps);
  for (var i = lid; i < p.d; i += WG) {
    out[oo + i] = (x[xo + i] - mean) * inv * w[i] + b[i];
  }
}
`;
}
