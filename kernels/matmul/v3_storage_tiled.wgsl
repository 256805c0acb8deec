// v3_storage_tiled: Y[M, N] = act(X[M, K] · W[N, K]^T + b[N]) (+ R[M, N]) with 64 x 64
// output tiles staged through workgroup memory, for real GPUs (storage buffers are their
// fast path). Same bindings and parameters as v1_storage_naive; weights come from a w_*
// snippet (fn w_pair(row, kpair) -> vec2<f32>), rows of W zero-padded to a multiple of 16.
// Layout: X rows of K f32 from element p.xe; Y/R rows of p.ldy f32 from p.ye/p.re; this
// weight part writes columns [p.n0, p.n0 + p.n).
// Workgroup 16 x 16 = 256 invocations; each computes a 4 x 4 block (rows 4*ly.., columns
// 4*lx..); k advances in slices of 16 through xs[k][m/4] and ws[k][n/4] (vec4 of 4 rows /
// 4 columns). Dispatch (ceil(n/64), ceil(m/64)).
// Measured 2026-11-29, llvmpipe only (no real GPU was available; 2 cores, load ~5),
// K=768 N=3072 f16: M=1 0.03, M=8 0.21, M=512 1.57 GFLOP/s (see README.md).

struct Params {
  m: u32, n: u32, k: u32, ldy: u32,
  n0: u32, flags: u32, kw: u32, xe: u32,
  ye: u32, re: u32, pad0: u32, pad1: u32,
}
const RELU: u32 = 1u;
const RESIDUAL: u32 = 2u;
const ACCUMULATE: u32 = 4u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
@group(0) @binding(4) var<storage, read> r: array<f32>;

var<workgroup> xs: array<vec4<f32>, 256>; // [16 k][16 row quads]
var<workgroup> ws: array<vec4<f32>, 256>; // [16 k][16 column quads]

fn finish(i: u32, j: u32, s: f32) {
  if (i >= p.m || j >= p.n) {
    return;
  }
  var v = s + bias[j];
  if ((p.flags & RELU) != 0u) {
    v = max(v, 0.0);
  }
  let o = i * p.ldy + p.n0 + j;
  if ((p.flags & RESIDUAL) != 0u) {
    v = v + r[p.re + o];
  }
  if ((p.flags & ACCUMULATE) != 0u) {
    v = v + y[p.ye + o];
  }
  y[p.ye + o] = v;
}

@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let tid = lid.y * 16u + lid.x;
  let m0 = wg.y * 64u;
  let c0 = wg.x * 64u;
  var acc0 = vec4<f32>(0.0);
  var acc1 = vec4<f32>(0.0);
  var acc2 = vec4<f32>(0.0);
  var acc3 = vec4<f32>(0.0);
  for (var k0 = 0u; k0 < p.k; k0 = k0 + 16u) {
    // X tile: 64 rows x 16 k, 4 elements per invocation.
    for (var q = 0u; q < 4u; q = q + 1u) {
      let e = tid + q * 256u;
      let row = e / 16u;
      let kk = e % 16u;
      var v = 0.0;
      if (m0 + row < p.m && k0 + kk < p.k) {
        v = x[p.xe + (m0 + row) * p.k + k0 + kk];
      }
      xs[kk * 16u + row / 4u][row % 4u] = v;
    }
    // W tile: 64 columns x 8 pairs of k, 2 pairs per invocation (rows of W are padded).
    for (var q = 0u; q < 2u; q = q + 1u) {
      let e = tid + q * 256u;
      let col = e / 8u;
      let kp = e % 8u;
      var v = vec2<f32>(0.0);
      if (c0 + col < p.n) {
        v = w_pair(c0 + col, k0 / 2u + kp);
      }
      ws[(2u * kp) * 16u + col / 4u][col % 4u] = v.x;
      ws[(2u * kp + 1u) * 16u + col / 4u][col % 4u] = v.y;
    }
    workgroupBarrier();
    for (var kk = 0u; kk < 16u; kk = kk + 1u) {
      let a = xs[kk * 16u + lid.y];
      let b = ws[kk * 16u + lid.x];
      acc0 = acc0 + a.x * b;
      acc1 = acc1 + a.y * b;
      acc2 = acc2 + a.z * b;
      acc3 = acc3 + a.w * b;
    }
    workgroupBarrier();
  }
  let i0 = m0 + lid.y * 4u;
  let j0 = c0 + lid.x * 4u;
  for (var jj = 0u; jj < 4u; jj = jj + 1u) {
    finish(i0, j0 + jj, acc0[jj]);
    finish(i0 + 1u, j0 + jj, acc1[jj]);
    finish(i0 + 2u, j0 + jj, acc2[jj]);
    finish(i0 + 3u, j0 + jj, acc3[jj]);
  }
}
