// AdamW update of one tensor in place (PyTorch's torch.optim.AdamW order of operations, f32),
// with the gradient multiplied by the clipping factor norm[1] (norm_finalize.wgsl):
//   g = grad * clip;  p = p * decay  (decay = 1 - lr * weight_decay, or 1: no decay)
//   m = beta1 * m + (1 - beta1) * g;  v = beta2 * v + (1 - beta2) * g * g
//   p = p - step_size * m / (sqrt(v) / bc2_sqrt + eps)
// where step_size = lr / (1 - beta1^t) and bc2_sqrt = sqrt(1 - beta2^t) come from the host.
// Bindings: 0 params, 1 grad, 2 norm (read), 3 param, 4 m, 5 v (read_write). id = x + y * stride.
// Workgroup (64): one invocation per element; dispatch a 2D grid of ceil(n / 64) groups.
struct Params {
  n: u32,
  stride: u32,
  decay: f32,
  beta1: f32,
  beta2: f32,
  step_size: f32,
  bc2_sqrt: f32,
  eps: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> grad: array<f32>;
@group(0) @binding(2) var<storage, read> norm: array<f32>;
@group(0) @binding(3) var<storage, read_write> param: array<f32>;
@group(0) @binding(4) var<storage, read_write> m: array<f32>;
@group(0) @binding(5) var<storage, read_write> v: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let id = gid.x + gid.y * p.stride;
  if (id >= p.n) {
    return;
  }
  let g = grad[id] * norm[1];
  var w = param[id];
  if (p.decay != 1.0) {
    w = w * p.decay;
  }
  let mi = p.beta1 * m[id] + (1.0 - p.beta1) * g;
  let vi = p.beta2 * v[id] + ((1.0 - p.beta2) * g) * g;
  m[id] = mi;
  v[id] = vi;
  let denom = sqrt(vi) / p.bc2_sqrt + p.eps;
  param[id] = w - p.step_size * (mi / denom);
}
