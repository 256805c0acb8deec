// Embedding lookups of a padded batch, elementwise over n positions x width (id = x + y * stride):
//   mode 0 (tokens):    out[i, e] = table[tokens[i], e], 0 on padding (positions[i] < 0)
//   mode 1 (positions): out[i, e] += table[positions[i] + 2, e] (OPT's offset 2), and
//                       out[i, e] = 0 on padding
// Bindings: 0 params, 1 table, 2 tokens (u32), 3 positions (i32) (read), 4 out (read_write).
// Workgroup (64): one invocation per element; dispatch a 2D grid of ceil(n * width / 64) groups.
struct Params {
  n: u32,
  width: u32,
  mode: u32,
  stride: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> table: array<f32>;
@group(0) @binding(2) var<storage, read> tokens: array<u32>;
@group(0) @binding(3) var<storage, read> positions: array<i32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let id = gid.x + gid.y * p.stride;
  if (id >= p.n * p.width) {
    return;
  }
  let i = id / p.width;
  let e = id % p.width;
  let pos = positions[i];
  if (pos < 0) {
    out[id] = 0.0;
    return;
  }
  if (p.mode == 0u) {
    out[id] = table[tokens[i] * p.width + e];
  } else {
    out[id] = out[id] + table[u32(pos + 2) * p.width + e];
  }
}
