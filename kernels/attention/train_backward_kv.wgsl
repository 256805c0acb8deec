// Causal attention backward, key/value side, without atomics: one invocation per
// (key j, feature c) gathers over the queries that attended to it, i = j .. row_end[j]
// (the later active columns of the same sequence):
//   dk[j, c] = sum_i dS_i,h(t) * q[i, c]      dv[j, c] = sum_i P_i,h(t) * dctx[i, c]
// with h = c / hd and t = j - start[j] (the key's place in each query's list; queries of
// one sequence share `start`). q is the scaled query, as in the forward.
// Bindings: 0 params, 1 dctx, 2 q, 3 probs, 4 ds, 5 start (u32), 6 row_end (u32) (read),
// 7 dk, 8 dv (read_write). Invocation id = x + y * stride (a 2D grid for large M * D).
struct Params {
  m: u32,
  d: u32,
  heads: u32,
  tmax: u32,
  stride: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> dctx: array<f32>;
@group(0) @binding(2) var<storage, read> q: array<f32>;
@group(0) @binding(3) var<storage, read> probs: array<f32>;
@group(0) @binding(4) var<storage, read> ds: array<f32>;
@group(0) @binding(5) var<storage, read> start: array<u32>;
@group(0) @binding(6) var<storage, read> row_end: array<u32>;
@group(0) @binding(7) var<storage, read_write> dk: array<f32>;
@group(0) @binding(8) var<storage, read_write> dv: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let id = gid.x + gid.y * p.stride;
  if (id >= p.m * p.d) {
    return;
  }
  let j = id / p.d;
  let c = id % p.d;
  let h = c / (p.d / p.heads);
  let t = j - start[j];
  var gk = 0.0;
  var gv = 0.0;
  for (var i = j; i <= row_end[j]; i = i + 1u) {
    let po = (i * p.heads + h) * p.tmax + t;
    gk = gk + ds[po] * q[i * p.d + c];
    gv = gv + probs[po] * dctx[i * p.d + c];
  }
  dk[id] = gk;
  dv[id] = gv;
}
