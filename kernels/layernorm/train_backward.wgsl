// LayerNorm backward, input gradient, one workgroup of 64 per row of dy[M, D]:
//   g = dy * w;  dx = rstd * (g - mean(g) - xhat * mean(g * xhat))
// written (accumulate = 0) or added (accumulate = 1) into dx. The parameter gradients are
// column sums, done by train_param_grads.wgsl.
// Bindings: 0 params, 1 dy, 2 xhat, 3 rstd, 4 w (read), 5 dx (read_write).
struct Params {
  m: u32,
  d: u32,
  accumulate: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read> xhat: array<f32>;
@group(0) @binding(3) var<storage, read> rstd: array<f32>;
@group(0) @binding(4) var<storage, read> w: array<f32>;
@group(0) @binding(5) var<storage, read_write> dx: array<f32>;

var<workgroup> red1: array<f32, 64>;
var<workgroup> red2: array<f32, 64>;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid3: vec3<u32>) {
  let row = wg.x + wg.y * 65535u;
  if (row >= p.m) {
    return;
  }
  let lid = lid3.x;
  let o = row * p.d;
  var s1 = 0.0;
  var s2 = 0.0;
  for (var t = lid; t < p.d; t = t + 64u) {
    let g = dy[o + t] * w[t];
    s1 = s1 + g;
    s2 = s2 + g * xhat[o + t];
  }
  red1[lid] = s1;
  red2[lid] = s2;
  workgroupBarrier();
  for (var s = 32u; s > 0u; s = s >> 1u) {
    if (lid < s) {
      red1[lid] = red1[lid] + red1[lid + s];
      red2[lid] = red2[lid] + red2[lid + s];
    }
    workgroupBarrier();
  }
  let m1 = red1[0] / f32(p.d);
  let m2 = red2[0] / f32(p.d);
  let r = rstd[row];
  for (var t = lid; t < p.d; t = t + 64u) {
    let v = r * (dy[o + t] * w[t] - m1 - xhat[o + t] * m2);
    if (p.accumulate != 0u) {
      dx[o + t] = dx[o + t] + v;
    } else {
      dx[o + t] = v;
    }
  }
}
