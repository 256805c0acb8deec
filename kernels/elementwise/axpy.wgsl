// Residual add and its gradient: y[i] += alpha * x[i] for i < n. id = x + y * stride.
// Bindings: 0 params, 1 x (read), 2 y (read_write).
// Workgroup (64): one invocation per element; dispatch a 2D grid of ceil(n / 64) groups.
struct Params {
  n: u32,
  stride: u32,
  alpha: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let id = gid.x + gid.y * p.stride;
  if (id >= p.n) {
    return;
  }
  y[id] = y[id] + p.alpha * x[id];
}
