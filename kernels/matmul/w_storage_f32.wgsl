// Weight reader snippet (storage, f32): W part [n, kw] row-major f32 at binding 5.
// fn w_at(row, k) -> W[row, k]. Prepended to the storage kernels by the TypeScript.
@group(0) @binding(5) var<storage, read> w: array<f32>;

fn w_at(row: u32, k: u32) -> f32 {
  return w[row * p.kw + k];
}
