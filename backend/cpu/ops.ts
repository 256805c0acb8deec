/**
 * The CPU reference ops: plain TypeScript loops over `Float32Array`s, the oracle every WGSL
 * kernel is tested against. Each op works row by row with a fixed summation order, so a
 * row's result never depends on how many other rows are in the call (that is what makes
 * "KV cache equals recompute" and "alone equals batched" exact on the CPU).
 *
 * Layouts are row-major. Linear weights are `[out, in]` as in Hugging Face checkpoints.
 *
 * @module
 */

/** Rows of `x` that {@linkcode linear} runs against one weight row while it is in cache. */
const LINEAR_ROW_BLOCK = 8;

/**
 * `y[M, N] = x[M, K] · w[N, K]^T (+ b[N])`, summed over `k` in order with four partial sums.
 *
 * @example
 * ```ts
 * const y = linear(new Float32Array([1, 2]), new Float32Array([3, 4]), undefined, 1, 2, 1);
 * // y = [11]
 * ```
 */
export function linear(
  x: Float32Array,
  w: Float32Array,
  b: Float32Array | undefined,
  m: number,
  k: number,
  n: number,
  out: Float32Array = new Float32Array(m * n),
): Float32Array {
  const k4 = k - (k % 4);
  // Rows in blocks of LINEAR_ROW_BLOCK: each weight row is read from memory once per block
  // (and then from cache for the block's other rows) instead of once per row, which made
  // batched calls memory-bound (W streamed M times). Every output is the same sum in the
  // same order as row by row, so results are bit-identical for any M.
  for (let i0 = 0; i0 < m; i0 += LINEAR_ROW_BLOCK) {
    const i1 = Math.min(m, i0 + LINEAR_ROW_BLOCK);
    for (let j = 0; j < n; j++) {
      const wo = j * k;
      const bj = b ? b[j] : 0;
      let i = i0;
      // two rows at a time share each weight load (each row keeps its own four sums)
      for (; i + 1 < i1; i += 2) {
        const xo = i * k, xp = xo + k;
        let s0 = 0, s1 = 0, s2 = 0, s3 = 0, r0 = 0, r1 = 0, r2 = 0, r3 = 0;
        let t = 0;
        for (; t < k4; t += 4) {
          const w0 = w[wo + t], w1 = w[wo + t + 1], w2 = w[wo + t + 2], w3 = w[wo + t + 3];
          s0 += x[xo + t] * w0;
          s1 += x[xo + t + 1] * w1;
          s2 += x[xo + t + 2] * w2;
          s3 += x[xo + t + 3] * w3;
          r0 += x[xp + t] * w0;
          r1 += x[xp + t + 1] * w1;
          r2 += x[xp + t + 2] * w2;
          r3 += x[xp + t + 3] * w3;
        }
        for (; t < k; t++) {
          s0 += x[xo + t] * w[wo + t];
          r0 += x[xp + t] * w[wo + t];
        }
        out[i * n + j] = (s0 + s1) + (s2 + s3) + bj;
        out[(i + 1) * n + j] = (r0 + r1) + (r2 + r3) + bj;
      }
      for (; i < i1; i++) {
        const xo = i * k;
        let s0 = 0, s1 = 0, s2 = 0, s3 = 0;
        let t = 0;
        for (; t < k4; t += 4) {
          s0 += x[xo + t] * w[wo + t];
          s1 += x[xo + t + 1] * w[wo + t + 1];
          s2 += x[xo + t + 2] * w[wo + t + 2];
          s3 += x[xo + t + 3] * w[wo + t + 3];
        }
        for (; t < k; t++) s0 += x[xo + t] * w[wo + t];
        out[i * n + j] = (s0 + s1) + (s2 + s3) + bj;
      }
    }
  }
  return out;
}

/**
 * LayerNorm over the last axis of `x[M, D]`: `(x - mean) / sqrt(var + eps) * w + b`
 * (biased variance, as PyTorch).
 *
 * @example
 * ```ts
 * const y = layerNorm(new Float32Array([1, 3]), new Float32Array([1, 1]), new Float32Array(2), 1, 2);
 * // y ≈ [-1, 1]
 * ```
 */
export function layerNorm(
  x: Float32Array,
  w: Float32Array,
  b: Float32Array,
  m: number,
  d: number,
  eps = 1e-5,
  out: Float32Array = new Float32Array(m * d),
): Float32Array {
  for (let i = 0; i < m; i++) {
    const o = i * d;
    let mean = 0;
    for (let t = 0; t < d; t++) mean += x[o + t];
    mean /= d;
    let v = 0;
    for (let t = 0; t < d; t++) {
      const c = x[o + t] - mean;
      v += c * c;
    }
    const inv = 1 / Math.sqrt(v / d + eps);
    for (let t = 0; t < d; t++) out[o + t] = (x[o + t] - mean) * inv * w[t] + b[t];
  }
  return out;
}

/**
 * In-place ReLU.
 *
 * @example
 * ```ts
 * relu(new Float32Array([-1, 2])); // [0, 2]
 * ```
 */
export function relu(x: Float32Array): Float32Array {
  for (let i = 0; i < x.length; i++) if (x[i] < 0) x[i] = 0;
  return x;
}

/**
 * In-place `a += b` (residual add).
 *
 * @example
 * ```ts
 * addInPlace(new Float32Array([1]), new Float32Array([2])); // [3]
 * ```
 */
export function addInPlace(a: Float32Array, b: Float32Array): Float32Array {
  for (let i = 0; i < a.length; i++) a[i] += b[i];
  return a;
}

/**
 * Gathers rows of `table[rows, D]`: `out[i] = table[ids[i]]`.
 *
 * @example
 * ```ts
 * gatherRows(new Float32Array([0, 0, 5, 6]), 2, [1]); // [5, 6]
 * ```
 */
export function gatherRows(
  table: Float32Array,
  d: number,
  ids: ArrayLike<number>,
  out: Float32Array = new Float32Array(ids.length * d),
): Float32Array {
  for (let i = 0; i < ids.length; i++) {
    out.set(table.subarray(ids[i] * d, ids[i] * d + d), i * d);
  }
  return out;
}

/**
 * OPT position ids from an attention mask (one row): `cumsum(mask) * mask - 1`, so padding
 * gets `-1` and the first real token `0`. Add OPT's offset of 2 before the table lookup.
 *
 * @example
 * ```ts
 * positionIds([0, 0, 1, 1]); // [-1, -1, 0, 1]
 * ```
 */
export function positionIds(mask: ArrayLike<number>): Int32Array {
  const out = new Int32Array(mask.length);
  let s = 0;
  for (let i = 0; i < mask.length; i++) {
    s += mask[i];
    out[i] = s * mask[i] - 1;
  }
  return out;
}

/**
 * Multi-head attention of one query over `n` cached keys and values.
 * `q[D]` is already scaled by `headDim ** -0.5`; `keys[n, D]`, `values[n, D]` (rows of a
 * cache); `allowed(t)` says whether key `t` may be attended (causality, padding, skipped
 * columns). Softmax is max-subtracted. With no allowed key the output is 0.
 *
 * @example
 * ```ts
 * const out = attendOne(new Float32Array([1]), new Float32Array([1]), new Float32Array([7]), 1, 1, 1, () => true);
 * // out = [7]
 * ```
 */
export function attendOne(
  q: Float32Array,
  keys: Float32Array,
  values: Float32Array,
  n: number,
  d: number,
  heads: number,
  allowed: (t: number) => boolean,
  out: Float32Array = new Float32Array(d),
): Float32Array {
  const hd = d / heads;
  const scores = new Float64Array(n);
  out.fill(0);
  for (let h = 0; h < heads; h++) {
    const ho = h * hd;
    let max = -Infinity;
    for (let t = 0; t < n; t++) {
      if (!allowed(t)) {
        scores[t] = -Infinity;
        continue;
      }
      let s = 0;
      const ko = t * d + ho;
      for (let i = 0; i < hd; i++) s += q[ho + i] * keys[ko + i];
      scores[t] = s;
      if (s > max) max = s;
    }
    if (max === -Infinity) continue;
    let sum = 0;
    for (let t = 0; t < n; t++) {
      const e = scores[t] === -Infinity ? 0 : Math.exp(scores[t] - max);
      scores[t] = e;
      sum += e;
    }
    for (let t = 0; t < n; t++) {
      const p = scores[t] / sum;
      if (p === 0) continue;
      const vo = t * d + ho;
      for (let i = 0; i < hd; i++) out[ho + i] += p * values[vo + i];
    }
  }
  return out;
}

/**
 * Indices and values of the `k` largest entries, highest first (ties: lower index first).
 *
 * @example
 * ```ts
 * topK(new Float32Array([1, 5, 3]), 2); // [[1, 5], [2, 3]]
 * ```
 */
export function topK(x: Float32Array, k: number): [number, number][] {
  const best: [number, number][] = [];
  for (let i = 0; i < x.length; i++) {
    const v = x[i];
    if (best.length === k && v <= best[k - 1][1]) continue;
    let p = best.length;
    while (p > 0 && best[p - 1][1] < v) p--;
    best.splice(p, 0, [i, v]);
    if (best.length > k) best.pop();
  }
  return best;
}

/**
 * Index of the largest entry (the first one on ties), as greedy decoding picks it.
 *
 * @example
 * ```ts
 * argmax(new Float32Array([1, 5, 5])); // 1
 * ```
 */
export function argmax(x: Float32Array): number {
  let best = 0;
  for (let i = 1; i < x.length; i++) if (x[i] > x[best]) best = i;
  return best;
}
