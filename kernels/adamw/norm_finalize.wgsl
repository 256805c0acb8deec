// Second stage of the global gradient norm: one workgroup of 256 adds partials[0 .. count)
// and writes out[0] = sqrt(sum) (the norm) and out[1] = the clipping factor of
// torch.nn.utils.clip_grad_norm_: min(1, max_norm / (norm + 1e-6)), or 1 when max_norm <= 0.
// adamw.wgsl reads out[1], so clipping needs no round trip to the host.
// Bindings: 0 params, 1 partials (read), 2 out (read_write).
struct Params {
  count: u32,
  max_norm: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> partials: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

var<workgroup> red: array<f32, 256>;

@compute @workgroup_size(256)
fn main(@builtin(local_invocation_id) lid3: vec3<u32>) {
  let lid = lid3.x;
  var s = 0.0;
  for (var i = lid; i < p.count; i = i + 256u) {
    s = s + partials[i];
  }
  red[lid] = s;
  workgroupBarrier();
  for (var t = 128u; t > 0u; t = t >> 1u) {
    if (lid < t) {
      red[lid] = red[lid] + red[lid + t];
    }
    workgroupBarrier();
  }
  if (lid == 0u) {
    let norm = sqrt(red[0]);
    out[0] = norm;
    if (p.max_norm > 0.0) {
      out[1] = min(1.0, p.max_norm / (norm + 1e-6));
    } else {
      out[1] = 1.0;
    }
  }
}
