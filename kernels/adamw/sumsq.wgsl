// First stage of the global gradient norm, without atomics: workgroup g of 256 invocations
// sums the squares of x[g * 2048 .. (g + 1) * 2048) (8 per invocation, then a tree) and
// writes partials[out_offset + g]. norm_finalize.wgsl adds the partials of every tensor.
// Bindings: 0 params, 1 x (read), 2 partials (read_write).
struct Params {
  n: u32,
  out_offset: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> partials: array<f32>;

var<workgroup> red: array<f32, 256>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid3: vec3<u32>) {
  let g = wg.x + wg.y * 65535u;
  let lid = lid3.x;
  let base = g * 2048u;
  var s = 0.0;
  for (var q = 0u; q < 8u; q = q + 1u) {
    let i = base + q * 256u + lid;
    if (i < p.n) {
      s = s + x[i] * x[i];
    }
  }
  red[lid] = s;
  workgroupBarrier();
  for (var t = 128u; t > 0u; t = t >> 1u) {
    if (lid < t) {
      red[lid] = red[lid] + red[lid + t];
    }
    workgroupBarrier();
  }
  if (lid == 0u && base < p.n) {
    partials[p.out_offset + g] = red[0];
  }
}
