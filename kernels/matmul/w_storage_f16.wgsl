// Weight reader snippet (storage, f16 pairs): W part [n, kw] u32 words row-major at binding 5,
// each word two halves (k even in the low half), unpacked with unpack2x16float (no
// shader-f16 feature needed). Rows are padded with a zero half when K is odd.
@group(0) @binding(5) var<storage, read> w: array<u32>;

fn w_at(row: u32, k: u32) -> f32 {
  let pr = unpack2x16float(w[row * p.kw + (k >> 1u)]);
  return select(pr.x, pr.y, (k & 1u) == 1u);
}

// W[row, 2*kp .. 2*kp+1] as f32 (kp indexes pairs of k, i.e. u32 words).
fn w_pair(row: u32, kp: u32) -> vec2<f32> {
  return unpack2x16float(w[row * p.kw + kp]);
}
