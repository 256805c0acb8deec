// v1_storage_naive: Y[M, N] = act(X[M, K] · W[N, K]^T + b[N]) (+ R[M, N]), one invocation per
// output element, everything in storage buffers, no tiling: the correctness baseline.
// Layout: X rows of K f32 from element p.xe; Y/R rows of p.ldy f32 from p.ye/p.re, this
// weight part writes columns [p.n0, p.n0 + p.n); weights come from a w_* snippet prepended
// by the TypeScript (fn w_at(row, k) -> f32; row stride p.kw words).
// Workgroup: 64 x 1 (x = output column in the part, y = row); dispatch (ceil(n/64), m).
// Measured 2026-11-29, llvmpipe (2 cores, load ~5 from other jobs), K=768 N=3072 f16:
// M=1 0.37, M=8 0.37, M=512 0.39 GFLOP/s (see README.md).

struct Params {
  m: u32, n: u32, k: u32, ldy: u32,
  n0: u32, flags: u32, kw: u32, xe: u32,
  ye: u32, re: u32, pad0: u32, pad1: u32,
}
const RELU: u32 = 1u;       // y = max(y, 0) before the residual
const RESIDUAL: u32 = 2u;   // y += r[...] (separate buffer)
const ACCUMULATE: u32 = 4u; // y += previous y (residual aliases y)

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
@group(0) @binding(4) var<storage, read> r: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) g: vec3<u32>) {
  let j = g.x;
  let i = g.y;
  if (j >= p.n || i >= p.m) {
    return;
  }
  let xo = p.xe + i * p.k;
  var s = 0.0;
  for (var t = 0u; t < p.k; t = t + 1u) {
    s = s + x[xo + t] * w_at(j, t);
  }
  var v = s + bias[j];
  if ((p.flags & RELU) != 0u) {
    v = max(v, 0.0);
  }
  let yi = p.ye + i * p.ldy + p.n0 + j;
  if ((p.flags & RESIDUAL) != 0u) {
    v = v + r[p.re + i * p.ldy + p.n0 + j];
  }
  if ((p.flags & ACCUMULATE) != 0u) {
    v = v + y[yi];
  }
  y[yi] = v;
}
