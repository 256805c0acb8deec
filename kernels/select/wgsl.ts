/**
 * WGSL of the next-token selection kernel.
 *
 * @module
 */

/**
 * The id the selection kernel writes for a row whose logits hold a NaN or ±Infinity (never a
 * vocabulary index).
 *
 * @example
 * ```ts
 * import { NONFINITE_ID } from "./wgsl.ts";
 * console.log(NONFINITE_ID.toString(16)); // "fffffffe"
 * ```
 */
export const NONFINITE_ID = 0xfffffffe;

/**
 * Next-token selection for every row of a logits block, on the GPU so the decode loop never
 * waits on the CPU. Greedy: argmax, the lowest index on ties (as `argmax` in
 * `kernels/select/reference.ts`). Sampling: reproduces `selectToken` of `backend/sampling.ts` without
 * sorting. Candidates are ordered by (logit descending, index ascending); the top-k set, the
 * top-p prefix and the drawn token are each "the first candidate in that order whose
 * cumulative weight crosses a threshold", found by a binary search over the logit's
 * order-preserving 32-bit key (32 passes) and then over the index among equal logits.
 * Weights `exp((l - max) / temperature)` go to the `probs` scratch buffer. The uniform is
 * `stepUniform(seed, row, step)` with the same u32 hash (PCG) as the CPU, so draws match
 * the CPU except where float summation order puts the threshold on a boundary.
 *
 * A logit that is NaN or ±Infinity (exponent bits all ones, tested on the bits since WGSL may
 * assume floats are finite) makes the row's id {@linkcode NONFINITE_ID} instead of a token, and
 * its `done` flag is left alone: the host turns that id into an error naming the row (the
 * greedy decode reads no logits back, so this is its only check at the LM head).
 *
 * Bindings: 0 params; 1 `logits: array<f32>` `[B, V]`; 2 `ids: array<u32>` (id grid; the
 * token of row `b` goes to `ids[outIndex + b]`); 3 `done: array<u32>` `[B]` (set to 1 when
 * the row emits `eos`, never cleared here); 4 `probs: array<f32>` `[B, V]` scratch
 * (sampling only).
 *
 * Workgroup `(256)`: one workgroup per row, strided scans reduced in workgroup memory;
 * dispatch `(B)`.
 */
export const SELECT_WGSL = /* wgsl */ `
// select: ids[outIndex + b] = argmax or seeded sample of logits[b]; see kernels/select/wgsl.ts
struct Params {
  batch: u32,
  vocab: u32,
  outIndex: u32,
  step: u32,
  seed: u32,
  eos: u32,        // 0xffffffff: no EOS
  sample: u32,     // 0 greedy, 1 sample
  topK: u32,       // 0: all
  temperature: f32,
  topP: f32,
}
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> logits: array<f32>;
@group(0) @binding(2) var<storage, read_write> ids: array<u32>;
@group(0) @binding(3) var<storage, read_write> done: array<u32>;
@group(0) @binding(4) var<storage, read_write> probs: array<f32>;

const WG = 256u;
var<workgroup> rf: array<f32, 256>;
var<workgroup> ru: array<u32, 256>;
var<workgroup> ru2: array<u32, 256>;
var<workgroup> nonfinite: atomic<u32>; // set when any logit of the row is NaN or ±Inf

fn is_nonfinite(x: f32) -> bool {
  return (bitcast<u32>(x) & 0x7f800000u) == 0x7f800000u;
}

fn hash32(x: u32) -> u32 {
  let state = x * 747796405u + 2891336453u;
  let word = ((state >> ((state >> 28u) + 4u)) ^ state) * 277803737u;
  return (word >> 22u) ^ word;
}

fn step_uniform(seed: u32, row: u32, step: u32) -> f32 {
  let h = hash32(seed ^ hash32(row ^ hash32(step)));
  return f32(h >> 8u) / 16777216.0;
}

// Order-preserving key of a float: a < b  <=>  key(a) < key(b).
fn fkey(x: f32) -> u32 {
  let b = bitcast<u32>(x);
  return select(b | 0x80000000u, ~b, (b & 0x80000000u) != 0u);
}

fn reduce_sum(lid: u32, x: f32) -> f32 {
  rf[lid] = x;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s = s >> 1u) {
    if (lid < s) { rf[lid] = rf[lid] + rf[lid + s]; }
    workgroupBarrier();
  }
  let r = rf[0];
  workgroupBarrier();
  return r;
}

fn reduce_max(lid: u32, x: f32) -> f32 {
  rf[lid] = x;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s = s >> 1u) {
    if (lid < s) { rf[lid] = max(rf[lid], rf[lid + s]); }
    workgroupBarrier();
  }
  let r = rf[0];
  workgroupBarrier();
  return r;
}

// Best (value, index) pair: higher value, then lower index.
fn reduce_argmax(lid: u32, v: f32, i: u32) -> u32 {
  rf[lid] = v;
  ru[lid] = i;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s = s >> 1u) {
    if (lid < s) {
      let ov = rf[lid + s];
      let oi = ru[lid + s];
      if (ov > rf[lid] || (ov == rf[lid] && oi < ru[lid])) { rf[lid] = ov; ru[lid] = oi; }
    }
    workgroupBarrier();
  }
  let r = ru[0];
  workgroupBarrier();
  return r;
}

// Last candidate in the order: smallest key, then largest index.
fn reduce_last(lid: u32, key: u32, idx: u32) -> u32 {
  ru[lid] = key;
  ru2[lid] = idx;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s = s >> 1u) {
    if (lid < s) {
      let ok = ru[lid + s];
      let oi = ru2[lid + s];
      if (ok < ru[lid] || (ok == ru[lid] && oi > ru2[lid])) { ru[lid] = ok; ru2[lid] = oi; }
    }
    workgroupBarrier();
  }
  let r = ru2[0];
  workgroupBarrier();
  return r;
}

// Sum over candidates with key >= tau of weight (probs) or 1.
fn sum_ge(lid: u32, base: u32, tau: u32, weighted: bool) -> f32 {
  var s = 0.0;
  for (var j = lid; j < p.vocab; j += WG) {
    if (fkey(logits[base + j]) >= tau) { s += select(1.0, probs[base + j], weighted); }
  }
  return reduce_sum(lid, s);
}

// Sum over candidates with key == vkey and index <= idx.
fn sum_tie(lid: u32, base: u32, vkey: u32, idx: u32, weighted: bool) -> f32 {
  var s = 0.0;
  for (var j = lid; j <= idx && j < p.vocab; j += WG) {
    if (fkey(logits[base + j]) == vkey) { s += select(1.0, probs[base + j], weighted); }
  }
  return reduce_sum(lid, s);
}

// The first candidate (in logit-descending, index-ascending order) whose cumulative sum
// reaches x (strict: exceeds x). Returns (key, index); found = false when none does.
struct Cut { vkey: u32, idx: u32, found: bool }

fn first_crossing(lid: u32, base: u32, x: f32, strict: bool, weighted: bool) -> Cut {
  var lo = 0u;
  var hi = 0xffffffffu;
  let all = sum_ge(lid, base, 0u, weighted);
  let found = select(all >= x, all > x, strict);
  for (var it = 0u; it < 32u; it++) {
    let mid = lo + ((hi - lo) >> 1u) + ((hi - lo) & 1u);
    let g = sum_ge(lid, base, mid, weighted);
    let ok = select(g >= x, g > x, strict);
    if (ok) { lo = mid; } else if (mid > lo) { hi = mid - 1u; }
  }
  let vkey = lo;
  let above = select(sum_ge(lid, base, vkey + 1u, weighted), 0.0, vkey == 0xffffffffu);
  var ilo = 0u;
  var ihi = p.vocab - 1u;
  let iters = 32u - countLeadingZeros(p.vocab);
  for (var it = 0u; it < iters; it++) {
    let mid = ilo + (ihi - ilo) / 2u;
    let g = above + sum_tie(lid, base, vkey, mid, weighted);
    let ok = select(g >= x, g > x, strict);
    if (ilo < ihi) {
      if (ok) { ihi = mid; } else { ilo = mid + 1u; }
    }
  }
  return Cut(vkey, ilo, found);
}

fn kept(key: u32, j: u32, cut: Cut) -> bool {
  return key > cut.vkey || (key == cut.vkey && j <= cut.idx);
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) l: vec3<u32>) {
  let b = wg.x;
  let lid = l.x;
  let base = b * p.vocab;
  var token = 0u;
  if (p.sample == 0u) {
    var bv = -3.4028235e38;
    var bi = 0xffffffffu;
    var bad = false;
    for (var j = lid; j < p.vocab; j += WG) {
      let v = logits[base + j];
      bad = bad || is_nonfinite(v);
      if (v > bv || bi == 0xffffffffu) { bv = v; bi = j; }
    }
    if (bad) { atomicOr(&nonfinite, 1u); }
    token = reduce_argmax(lid, bv, bi); // its barriers publish the flag
  } else {
    var mx = -3.4028235e38;
    var bad = false;
    for (var j = lid; j < p.vocab; j += WG) {
      let v = logits[base + j];
      bad = bad || is_nonfinite(v);
      mx = max(mx, v);
    }
    if (bad) { atomicOr(&nonfinite, 1u); }
    mx = reduce_max(lid, mx); // its barriers publish the flag
    // top-k: the K-th candidate bounds the kept set (counts, not weights)
    var kcut = Cut(0u, 0xffffffffu, true);
    if (p.topK > 0u && p.topK < p.vocab) {
      kcut = first_crossing(lid, base, f32(p.topK), false, false);
    }
    var total = 0.0;
    for (var j = lid; j < p.vocab; j += WG) {
      let lj = logits[base + j];
      var w = 0.0;
      if (kept(fkey(lj), j, kcut)) { w = exp((lj - mx) / p.temperature); }
      probs[base + j] = w;
      total += w;
    }
    total = reduce_sum(lid, total);
    if (p.topP < 1.0) {
      let pcut = first_crossing(lid, base, p.topP * total, false, true);
      var t2 = 0.0;
      for (var j = lid; j < p.vocab; j += WG) {
        var w = probs[base + j];
        if (!kept(fkey(logits[base + j]), j, pcut)) { w = 0.0; }
        probs[base + j] = w;
        t2 += w;
      }
      total = reduce_sum(lid, t2);
    }
    let goal = step_uniform(p.seed, b, p.step) * total;
    let cut = first_crossing(lid, base, goal, true, true);
    // When rounding leaves the target at the total: the last kept candidate.
    var lk = 0xffffffffu;
    var li = 0u;
    for (var j = lid; j < p.vocab; j += WG) {
      let kj = fkey(logits[base + j]);
      if (probs[base + j] > 0.0 && (kj < lk || (kj == lk && j > li))) { lk = kj; li = j; }
    }
    let last = reduce_last(lid, lk, li);
    token = select(last, cut.idx, cut.found);
  }
  if (atomicLoad(&nonfinite) != 0u) { token = 0xfffffffeu; } // NONFINITE_ID
  if (lid == 0u) {
    ids[p.outIndex + b] = token;
    if (p.eos != 0xffffffffu && token == p.eos) { done[b] = 1u; }
  }
}
`;
