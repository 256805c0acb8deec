// Causal attention forward over packed rows, keeping the probabilities for the backward.
// q, k, v are [M, D] (q already scaled by headDim^-0.5); query i attends to keys
// start[i] .. i (the earlier active columns of its own sequence, packed in column order).
// One invocation per (query i, head h):
//   probs[(i * H + h) * tmax + t] = softmax_t(q_i,h . k_(start[i] + t),h),  t = 0 .. i - start[i]
//   ctx[i, h*hd .. h*hd + hd) = sum_t probs_t * v_(start[i] + t),h
// Entries t > i - start[i] of probs are left unwritten.
// Bindings: 0 params, 1 q, 2 k, 3 v, 4 start (u32) (read), 5 probs, 6 ctx (read_write).
struct Params {
  m: u32,
  d: u32,
  heads: u32,
  tmax: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> q: array<f32>;
@group(0) @binding(2) var<storage, read> k: array<f32>;
@group(0) @binding(3) var<storage, read> v: array<f32>;
@group(0) @binding(4) var<storage, read> start: array<u32>;
@group(0) @binding(5) var<storage, read_write> probs: array<f32>;
@group(0) @binding(6) var<storage, read_write> ctx: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let id = gid.x;
  if (id >= p.m * p.heads) {
    return;
  }
  let i = id / p.heads;
  let h = id % p.heads;
  let hd = p.d / p.heads;
  let s = start[i];
  let n = i - s + 1u;
  let qo = i * p.d + h * hd;
  let po = (i * p.heads + h) * p.tmax;
  var mx = -3.402823e38;
  for (var t = 0u; t < n; t = t + 1u) {
    let ko = (s + t) * p.d + h * hd;
    var dot = 0.0;
    for (var e = 0u; e < hd; e = e + 1u) {
      dot = dot + q[qo + e] * k[ko + e];
    }
    probs[po + t] = dot;
    mx = max(mx, dot);
  }
  var sum = 0.0;
  for (var t = 0u; t < n; t = t + 1u) {
    let ex = exp(probs[po + t] - mx);
    probs[po + t] = ex;
    sum = sum + ex;
  }
  for (var t = 0u; t < n; t = t + 1u) {
    probs[po + t] = probs[po + t] / sum;
  }
  for (var e = 0u; e < hd; e = e + 1u) {
    var acc = 0.0;
    for (var t = 0u; t < n; t = t + 1u) {
      acc = acc + probs[po + t] * v[(s + t) * p.d + h * hd + e];
    }
    ctx[qo + e] = acc;
  }
}
