// Row gather: out[i, e] = src[idx[i], e] for i < n, e < width (packs the active columns of a
// layer, or the target columns before the LM head). One invocation per element; id =
// x + y * stride (a 2D grid for large n * width).
// Bindings: 0 params, 1 src, 2 idx (u32) (read), 3 out (read_write).
struct Params {
  n: u32,
  width: u32,
  stride: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read> idx: array<u32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let id = gid.x + gid.y * p.stride;
  if (id >= p.n * p.width) {
    return;
  }
  let i = id / p.width;
  let e = id % p.width;
  out[id] = src[idx[i] * p.width + e];
}
