// LayerNorm parameter gradients as column sums over the rows of dy[M, D] (no atomics: one
// invocation per column loops over the rows):  dw[t] += sum_i dy[i, t] * xhat[i, t],
// db[t] += sum_i dy[i, t].
// Bindings: 0 params, 1 dy, 2 xhat (read), 3 dw, 4 db (read_write).
struct Params {
  m: u32,
  d: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read> xhat: array<f32>;
@group(0) @binding(3) var<storage, read_write> dw: array<f32>;
@group(0) @binding(4) var<storage, read_write> db: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let t = gid.x;
  if (t >= p.d) {
    return;
  }
  var sw = 0.0;
  var sb = 0.0;
  for (var i = 0u; i < p.m; i = i + 1u) {
    let g = dy[i * p.d + t];
    sw = sw + g * xhat[i * p.d + t];
    sb = sb + g;
  }
  dw[t] = dw[t] + sw;
  db[t] = db[t] + sb;
}
