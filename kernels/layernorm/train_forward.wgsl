// LayerNorm forward over rows of x[M, D], keeping what the backward needs:
//   xhat = (x - mean) * rstd, rstd = 1 / sqrt(var + eps) (biased variance), y = xhat * w + b.
// One workgroup of 64 invocations per row; mean and variance by tree reduction in
// workgroup memory (two passes over the row, as the CPU reference).
// Bindings: 0 params, 1 x (read), 2 w (read), 3 b (read), 4 y, 5 xhat, 6 rstd (read_write).
struct Params {
  m: u32,
  d: u32,
  eps: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read> b: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;
@group(0) @binding(5) var<storage, read_write> xhat: array<f32>;
@group(0) @binding(6) var<storage, read_write> rstd: array<f32>;

var<workgroup> red: array<f32, 64>;

fn reduce(lid: u32, v: f32) -> f32 {
  red[lid] = v;
  workgroupBarrier();
  for (var s = 32u; s > 0u; s = s >> 1u) {
    if (lid < s) {
      red[lid] = red[lid] + red[lid + s];
    }
    workgroupBarrier();
  }
  let total = red[0];
  workgroupBarrier();
  return total;
}

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid3: vec3<u32>) {
  let row = wg.x + wg.y * 65535u;
  if (row >= p.m) {
    return;
  }
  let lid = lid3.x;
  let o = row * p.d;
  var s = 0.0;
  for (var t = lid; t < p.d; t = t + 64u) {
    s = s + x[o + t];
  }
  let mean = reduce(lid, s) / f32(p.d);
  var v = 0.0;
  for (var t = lid; t < p.d; t = t + 64u) {
    let c = x[o + t] - mean;
    v = v + c * c;
  }
  let r = 1.0 / sqrt(reduce(lid, v) / f32(p.d) + p.eps);
  for (var t = lid; t < p.d; t = t + 64u) {
    let h = (x[o + t] - mean) * r;
    xhat[o + t] = h;
    y[o + t] = h * w[t] + b[t];
  }
  if (lid == 0u) {
    rstd[row] = r;
  }
}
