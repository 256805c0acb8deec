// Weight reader snippet (storage, f32): W part [n, kw] row-major f32 at binding 5.
// fn w_at(row, k) -> W[row, k]. Prepended to the storage kernels by the TypeScript.
@group(0) @binding(5) var<storage, read> w: array<f32>;

fn w_at(row: u32, k: u32) -> f32 {
  return w[row * p.kw + k];
}

// W[row, 2*kp .. 2*kp+1] (kp indexes pairs of k; rows are padded to an even length).
fn w_pair(row: u32, kp: u32) -> vec2<f32> {
  let i = row * p.kw + 2u * kp;
  return vec2<f32>(w[i], w[i + 1u]);
}
