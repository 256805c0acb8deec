// repack_ln_rows: v2's repack with a LayerNorm prologue. Row r of X[M, K] (f32, from element
// p.xe of the source binding) is normalised over its K values,
// (x - mean) / sqrt(var + eps) * w + b (biased variance, two passes: mean, then centred
// squares, as the CPU reference), and written as a row of Kp >= K f32 (Kp a multiple of 64,
// so that every row can be bound as its own 256-byte aligned uniform window), zeros in
// columns [K, Kp). It replaces a separate LayerNorm dispatch before the product.
// Workgroup (8): one workgroup per row (8 lanes = one llvmpipe SIMD vector, so its barriers
// are cheap), strided partial sums added in workgroup memory in a fixed order; dispatch (M).
struct Params { m: u32, k: u32, kp: u32, xe: u32, eps_bits: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;
@group(0) @binding(3) var<storage, read> w: array<f32>;
@group(0) @binding(4) var<storage, read> b: array<f32>;
var<workgroup> part: array<f32, 8>;

fn total(lid: u32, v: f32) -> f32 {
  part[lid] = v;
  workgroupBarrier();
  let t = ((part[0] + part[1]) + (part[2] + part[3])) + ((part[4] + part[5]) + (part[6] + part[7]));
  workgroupBarrier();
  return t;
}

@compute @workgroup_size(8)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let r = min(wg.x, p.m - 1u);
  let xo = p.xe + r * p.k;
  let oo = r * p.kp;
  var s = 0.0;
  for (var i = lid; i < p.k; i += 8u) { s += src[xo + i]; }
  let mean = total(lid, s) / f32(p.k);
  var v = 0.0;
  for (var i = lid; i < p.k; i += 8u) {
    let c = src[xo + i] - mean;
    v += c * c;
  }
  let inv = 1.0 / sqrt(total(lid, v) / f32(p.k) + bitcast<f32>(p.eps_bits));
  if (wg.x >= p.m) { return; }
  for (var i = lid; i < p.kp; i += 8u) {
    var o = 0.0;
    if (i < p.k) { o = (src[xo + i] - mean) * inv * w[i] + b[i]; }
    dst[oo + i] = o;
  }
}
