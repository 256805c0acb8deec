// KV pack (the column-batched decode with an f16 cache): stores the keys and values a layer's
// k/v products just wrote, f32 rows [n / width, width] of kin/vin, into the layer's caches
// kout/vout [slots, B, width] of KV from element `offset` (= colStart * B * width), rounded to
// nearest. With an f32 cache the products write the caches directly and this kernel is not used.
// Layout: kin, vin [n] f32; kout, vout [slots * B * width] KV (alias set by withKvDtype in
// kv_dtype.ts). Workgroup (64): one invocation per element, id = x + y * stride (a 2D grid
// past 65535 workgroups). CPU reference: roundKv in kv_dtype.ts.
alias KV = f32;
struct Params {
  n: u32,
  offset: u32,
  stride: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> kin: array<f32>;
@group(0) @binding(2) var<storage, read> vin: array<f32>;
@group(0) @binding(3) var<storage, read_write> kout: array<KV>;
@group(0) @binding(4) var<storage, read_write> vout: array<KV>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let id = gid.x + gid.y * p.stride;
  if (id >= p.n) {
    return;
  }
  kout[p.offset + id] = KV(kin[id]);
  vout[p.offset + id] = KV(vin[id]);
}
