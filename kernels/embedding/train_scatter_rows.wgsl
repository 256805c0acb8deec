// Row scatter: dst[idx[i], e] = rows[i, e] (accumulate = 0) or += (accumulate = 1), for
// i < n, e < width; idx holds distinct rows, so no two invocations write one element.
// Writes a layer's output back to the residual stream (skipped columns keep theirs: the
// identity), and in the backward its input gradient (skipped columns keep their gradient).
// Bindings: 0 params, 1 rows, 2 idx (u32) (read), 3 dst (read_write). id = x + y * stride.
struct Params {
  n: u32,
  width: u32,
  accumulate: u32,
  stride: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> rows: array<f32>;
@group(0) @binding(2) var<storage, read> idx: array<u32>;
@group(0) @binding(3) var<storage, read_write> dst: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let id = gid.x + gid.y * p.stride;
  if (id >= p.n * p.width) {
    return;
  }
  let i = id / p.width;
  let e = id % p.width;
  let o = idx[i] * p.width + e;
  if (p.accumulate != 0u) {
    dst[o] = dst[o] + rows[id];
  } else {
    dst[o] = rows[id];
  }
}
