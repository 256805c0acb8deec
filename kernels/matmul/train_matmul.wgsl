// Training matmul: C[M, N] = alpha * (sum_k A(i, k) * B(k, j) + bias[j]) (+ C when accumulating);
// alpha scales the bias too (q = (x Wq^T + bq) * headDim^-0.5 in one pass).
// One source, three layouts; the host substitutes the index expressions before compiling:
//   NT  C = A[M, K] . B[N, K]^T   A(i, k) = a[i * K + k]   B(k, j) = b[j * K + k]   (forward)
//   NN  C = A[M, K] . B[K, N]     A(i, k) = a[i * K + k]   B(k, j) = b[k * N + j]   (input grad)
//   TN  C = A[K, M]^T . B[K, N]   A(i, k) = a[k * M + i]   B(k, j) = b[k * N + j]   (weight grad)
// Each invocation computes a 4x4 block of C in four vec4 accumulators (rows i0..i0+3,
// columns j0..j0+3): 8 loads per 16 multiply-adds. Out-of-range rows/columns read a clamped
// (valid) index and are never stored, so any M, N, K >= 1 works.
// Bindings: 0 params, 1 A (read), 2 B (read), 3 bias (read; a dummy when has_bias = 0),
// 4 C (read_write; must not alias A or B).
struct Params {
  m: u32,
  k: u32,
  n: u32,
  accumulate: u32,
  has_bias: u32,
  alpha: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> c: array<f32>;

fn A(i: u32, k: u32) -> f32 {
  return a[A_INDEX];
}

fn B(k: u32, j: u32) -> f32 {
  return b[B_INDEX];
}

fn store(i: u32, j: u32, v: f32) {
  if (i >= p.m || j >= p.n) {
    return;
  }
  var out = v;
  if (p.has_bias != 0u) {
    out = out + bias[j];
  }
  out = p.alpha * out;
  let o = i * p.n + j;
  if (p.accumulate != 0u) {
    out = out + c[o];
  }
  c[o] = out;
}

@compute @workgroup_size(8, 8)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let i0 = gid.y * 4u;
  let j0 = gid.x * 4u;
  if (i0 >= p.m || j0 >= p.n) {
    return;
  }
  let i1 = min(i0 + 1u, p.m - 1u);
  let i2 = min(i0 + 2u, p.m - 1u);
  let i3 = min(i0 + 3u, p.m - 1u);
  let j1 = min(j0 + 1u, p.n - 1u);
  let j2 = min(j0 + 2u, p.n - 1u);
  let j3 = min(j0 + 3u, p.n - 1u);
  var r0 = vec4<f32>(0.0);
  var r1 = vec4<f32>(0.0);
  var r2 = vec4<f32>(0.0);
  var r3 = vec4<f32>(0.0);
  for (var k = 0u; k < p.k; k = k + 1u) {
    let bv = vec4<f32>(B(k, j0), B(k, j1), B(k, j2), B(k, j3));
    r0 = r0 + A(i0, k) * bv;
    r1 = r1 + A(i1, k) * bv;
    r2 = r2 + A(i2, k) * bv;
    r3 = r3 + A(i3, k) * bv;
  }
  store(i0, j0, r0.x); store(i0, j0 + 1u, r0.y); store(i0, j0 + 2u, r0.z); store(i0, j0 + 3u, r0.w);
  store(i0 + 1u, j0, r1.x); store(i0 + 1u, j0 + 1u, r1.y); store(i0 + 1u, j0 + 2u, r1.z); store(i0 + 1u, j0 + 3u, r1.w);
  store(i0 + 2u, j0, r2.x); store(i0 + 2u, j0 + 1u, r2.y); store(i0 + 2u, j0 + 2u, r2.z); store(i0 + 2u, j0 + 3u, r2.w);
  store(i0 + 3u, j0, r3.x); store(i0 + 3u, j0 + 1u, r3.y); store(i0 + 3u, j0 + 2u, r3.z); store(i0 + 3u, j0 + 3u, r3.w);
}
