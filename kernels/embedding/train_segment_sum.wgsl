// Embedding gradients without float atomics (WGSL has none for f32). The host sorts the
// batch's (row id, position) pairs by row id, giving each distinct row u its id ids[u] and
// the segment order[seg[u] .. seg[u + 1]) of positions that used it. One invocation per
// (u, e) sums its segment in order, so no two invocations write one element:
//   dst[ids[u], e] += sum_{s in seg u} src[order[s], e]
// Used for the token embedding (rows = token ids) and the position embedding (pos + 2).
// Bindings: 0 params, 1 ids, 2 seg, 3 order (u32), 4 src (read), 5 dst (read_write).
// id = x + y * stride.
struct Params {
  units: u32,
  width: u32,
  stride: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> ids: array<u32>;
@group(0) @binding(2) var<storage, read> seg: array<u32>;
@group(0) @binding(3) var<storage, read> order: array<u32>;
@group(0) @binding(4) var<storage, read> src: array<f32>;
@group(0) @binding(5) var<storage, read_write> dst: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let id = gid.x + gid.y * p.stride;
  if (id >= p.units * p.width) {
    return;
  }
  let u = id / p.width;
  let e = id % p.width;
  var s = 0.0;
  for (var q = seg[u]; q < seg[u + 1u]; q = q + 1u) {
    s = s + src[order[q] * p.width + e];
  }
  let o = ids[u] * p.width + e;
  dst[o] = dst[o] + s;
}
