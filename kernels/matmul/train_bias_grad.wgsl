// Bias gradient as column sums (no atomics: one invocation per column loops over the rows):
//   db[j] += sum_i dy[i, j]  for dy[M, N].
// Bindings: 0 params, 1 dy (read), 2 db (read_write).
struct Params {
  m: u32,
  n: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read_write> db: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let j = gid.x;
  if (j >= p.n) {
    return;
  }
  var s = 0.0;
  for (var i = 0u; i < p.m; i = i + 1u) {
    s = s + dy[i * p.n + j];
  }
  db[j] = db[j] + s;
}
