// Causal attention backward, query side; one invocation per (query i, head h):
//   dP_t = dctx_i,h . v_(start[i] + t),h
//   dS_t = P_t * (dP_t - sum_t' P_t' dP_t')        (stored for train_backward_kv.wgsl)
//   dq_i,h = scale * sum_t dS_t * k_(start[i] + t),h  (scale folds q's headDim^-0.5 in, so dq
//                                                       is the gradient of q_proj's output)
// Layouts as train_forward.wgsl.
// Bindings: 0 params, 1 dctx, 2 k, 3 v, 4 probs, 5 start (u32) (read), 6 ds, 7 dq (read_write).
struct Params {
  m: u32,
  d: u32,
  heads: u32,
  tmax: u32,
  scale: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> dctx: array<f32>;
@group(0) @binding(2) var<storage, read> k: array<f32>;
@group(0) @binding(3) var<storage, read> v: array<f32>;
@group(0) @binding(4) var<storage, read> probs: array<f32>;
@group(0) @binding(5) var<storage, read> start: array<u32>;
@group(0) @binding(6) var<storage, read_write> ds: array<f32>;
@group(0) @binding(7) var<storage, read_write> dq: array<f32>;

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
  var sum = 0.0;
  for (var t = 0u; t < n; t = t + 1u) {
    let vo = (s + t) * p.d + h * hd;
    var dp = 0.0;
    for (var e = 0u; e < hd; e = e + 1u) {
      dp = dp + dctx[qo + e] * v[vo + e];
    }
    ds[po + t] = dp;
    sum = sum + probs[po + t] * dp;
  }
  for (var t = 0u; t < n; t = t + 1u) {
    ds[po + t] = probs[po + t] * (ds[po + t] - sum);
  }
  for (var e = 0u; e < hd; e = e + 1u) {
    var acc = 0.0;
    for (var t = 0u; t < n; t = t + 1u) {
      acc = acc + ds[po + t] * k[(s + t) * p.d + h * hd + e];
    }
    dq[qo + e] = p.scale * acc;
  }
}
