// Paged KV write: copies the keys and values of the query rows a layer just projected into
// that layer's page pools. Row i of kin/vin ([n, width], compact: the tokens that run the
// layer, in call order) is token t = rows[i], at position pos[t] of slot slot[t]; its pool
// row is table[slot * maxPages + pos / pageSize] * pageSize + pos % pageSize.
// Layout: kpool, vpool [pages * pageSize, width] of KV (f32, or f16 through withKvDtype in
// kv_dtype.ts: rounded to nearest when stored); table [capacity, maxPages] u32 (this
// layer's page table); rows [n], slot and pos [tokens of the call] u32.
// Workgroup (64): one invocation per element, id = x + y * stride (a 2D grid past 65535
// workgroups). CPU reference: kvWriteReference in kernels/attention/reference.ts.
alias KV = f32;
struct Params {
  n: u32,
  width: u32,
  pageSize: u32,
  maxPages: u32,
  stride: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> kin: array<f32>;
@group(0) @binding(2) var<storage, read> vin: array<f32>;
@group(0) @binding(3) var<storage, read> rows: array<u32>;
@group(0) @binding(4) var<storage, read> slot: array<u32>;
@group(0) @binding(5) var<storage, read> pos: array<u32>;
@group(0) @binding(6) var<storage, read> table: array<u32>;
@group(0) @binding(7) var<storage, read_write> kpool: array<KV>;
@group(0) @binding(8) var<storage, read_write> vpool: array<KV>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let id = gid.x + gid.y * p.stride;
  if (id >= p.n * p.width) {
    return;
  }
  let i = id / p.width;
  let e = id % p.width;
  let t = rows[i];
  let c = pos[t];
  let page = table[slot[t] * p.maxPages + c / p.pageSize];
  let o = (page * p.pageSize + c % p.pageSize) * p.width + e;
  kpool[o] = KV(kin[id]);
  vpool[o] = KV(vin[id]);
}
