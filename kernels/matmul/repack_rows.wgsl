// repack_rows: copies X[M, K] (f32 rows of K from element p.xe of the source binding) into
// rows of Kp >= K f32 (Kp a multiple of 64, so that every row starts 256-byte aligned and can
// be bound as its own uniform window), writing zeros in columns [K, Kp).
// Workgroup 64 x 1 (x = column of the padded row, y = row); dispatch (ceil(Kp/64), M).
struct Params { m: u32, k: u32, kp: u32, xe: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) g: vec3<u32>) {
  let c = g.x;
  let r = g.y;
  if (c >= p.kp || r >= p.m) {
    return;
  }
  var v = 0.0;
  if (c < p.k) {
    v = src[p.xe + r * p.k + c];
  }
  dst[r * p.kp + c] = v;
}
