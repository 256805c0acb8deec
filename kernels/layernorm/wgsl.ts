/**
 * WGSL of the LayerNorm kernel, one source for inference and training: with `keep` it also
 * writes what the backward needs (`xhat`, `rstd`), the training forward
 * (`train.ts`); without, the inference forward (`mod.ts`).
 *
 * @example
 * ```ts
 * import { layerNormWgsl } from "./wgsl.ts";
 * console.log(layerNormWgsl(64, true).includes("rstd")); // true
 * ```
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
 * With `keep` (training): 5 `xhat` `[*, d]`, the normalised input `(x - mean) * rstd`, and
 * 6 `rstd` `[*]`, `1 / sqrt(var + eps)`, both written at the output row.
 *
 * Workgroup `(wg)` (a power of two; 64 by default, 8 on software adapters): one workgroup
 * per row, strided partial sums reduced in workgroup memory; dispatch `(m)`, or
 * `(65535, ceil(m / 65535))` past 65535 rows.
 *
 * @example
 * ```ts
 * console.log(layerNormWgsl(8).includes("@workgroup_size(8)")); // true
 * ```
 */
export function layerNormWgsl(wg = 64, keep = false): string {
  const kept = keep
    ? `@group(0) @binding(5) var<storage, read_write> xhat: array<f32>;
@group(0) @binding(6) var<storage, read_write> rstd: array<f32>;`
    : "";
  const write = keep
    ? `for (var i = lid; i < p.d; i += WG) {
    let h = (x[xo + i] - mean) * inv;
    xhat[oo + i] = h;
    out[oo + i] = h * w[i] + b[i];
  }
  if (lid == 0u) { rstd[p.outRow + r] = inv; }`
    : `for (var i = lid; i < p.d; i += WG) {
    out[oo + i] = (x[xo + i] - mean) * inv * w[i] + b[i];
  }`;
  return /* wgsl */ `
// layernorm: out[outRow + r] = LN(x[inRow + r]) * w + b${keep ? " (keeping xhat, rstd)" : ""},
// one workgroup per row; see kernels/layernorm/wgsl.ts
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
${kept}

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
  let r = wg.x + wg.y * 65535u;
  if (r >= p.m) { return; }
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
  ${write}
}
`;
}
