// ReLU forward and backward, elementwise over n values (id = x + y * stride):
//   mode 0 (forward):  out[i] = max(u[i], 0)
//   mode 1 (backward): out[i] = u[i] > 0 ? out[i] : 0   (out holds dz, masked in place)
// Bindings: 0 params, 1 u (read), 2 out (read_write).
// Workgroup (64): one invocation per element; dispatch a 2D grid of ceil(n / 64) groups.
struct Params {
  n: u32,
  stride: u32,
  mode: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> u: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let id = gid.x + gid.y * p.stride;
  if (id >= p.n) {
    return;
  }
  if (p.mode == 0u) {
    out[id] = max(u[id], 0.0);
  } else if (!(u[id] > 0.0)) {
    out[id] = 0.0;
  }
}
