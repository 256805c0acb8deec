// Cross-entropy of logit rows against targets, one workgroup of 256 per row of
// logits[R, V]:  nll[r] = logsumexp(row) - row[target[r]], and when train = 1 the row is
// replaced in place by its gradient scaled for the mean: (softmax(row) - onehot) * scale.
// Max and sum by tree reduction in workgroup memory.
// Bindings: 0 params, 1 targets (u32) (read), 2 logits, 3 nll (read_write).
struct Params {
  rows: u32,
  vocab: u32,
  train: u32,
  scale: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> targets: array<u32>;
@group(0) @binding(2) var<storage, read_write> logits: array<f32>;
@group(0) @binding(3) var<storage, read_write> nll: array<f32>;

var<workgroup> red: array<f32, 256>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid3: vec3<u32>) {
  let r = wg.x + wg.y * 65535u;
  if (r >= p.rows) {
    return;
  }
  let lid = lid3.x;
  let o = r * p.vocab;
  var mx = -3.402823e38;
  for (var j = lid; j < p.vocab; j = j + 256u) {
    mx = max(mx, logits[o + j]);
  }
  red[lid] = mx;
  workgroupBarrier();
  for (var s = 128u; s > 0u; s = s >> 1u) {
    if (lid < s) {
      red[lid] = max(red[lid], red[lid + s]);
    }
    workgroupBarrier();
  }
  let m = red[0];
  workgroupBarrier();
  var sum = 0.0;
  for (var j = lid; j < p.vocab; j = j + 256u) {
    sum = sum + exp(logits[o + j] - m);
  }
  red[lid] = sum;
  workgroupBarrier();
  for (var s = 128u; s > 0u; s = s >> 1u) {
    if (lid < s) {
      red[lid] = red[lid] + red[lid + s];
    }
    workgroupBarrier();
  }
  let lse = m + log(red[0]);
  let tgt = targets[r];
  let target_logit = logits[o + tgt];
  // every invocation has read the target's logit before any overwrites it
  storageBarrier();
  if (lid == 0u) {
    nll[r] = lse - target_logit;
  }
  if (p.train != 0u) {
    for (var j = lid; j < p.vocab; j = j + 256u) {
      var g = exp(logits[o + j] - lse);
      if (j == tgt) {
        g = g - 1.0;
      }
      logits[o + j] = g * p.scale;
    }
  }
}
