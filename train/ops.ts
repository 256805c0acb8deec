/**
 * The CPU reference ops of training, forward and backward, in plain TypeScript over
 * {@linkcode FloatArray}s (f32 for training, f64 for the finite-difference check). Sums are
 * accumulated in JavaScript doubles and stored in the array's type. Layouts are row-major;
 * linear weights are `[out, in]`. All three products of a linear map (forward, input
 * gradient, weight gradient) go through one tiled kernel, {@linkcode matmulNT}, on
 * transposed operands where needed (the LM head is `[V, dp]`, so tiling matters).
 *
 * Every backward function *adds* into its gradient outputs (so tied or shared tensors
 * accumulate), except where it says it writes.
 *
 * @module
 */
import { allocLike, type FloatArray } from "./params.ts";

const J_BLOCK = 64;
const K_BLOCK = 1024;

/**
 * `out[M, N] (+)= a[M, K] · b[N, K]^T`: the one matrix product of the reference, register
 * blocked 2x2 and tiled over `N` and `K` (so both operands' tiles stay in cache). Every
 * output is a dot product over `K` in ascending order, so it does not depend on `M` or `N`.
 *
 * @example
 * ```ts
 * matmulNT(new Float64Array([1, 2]), new Float64Array([3, 4, 5, 6]), 1, 2, 2); // [11, 17]
 * ```
 */
export function matmulNT(
  a: FloatArray,
  b: FloatArray,
  m: number,
  k: number,
  n: number,
  out: FloatArray = allocLike(a, m * n),
  accumulate = false,
): FloatArray {
  if (!accumulate) out.fill(0, 0, m * n);
  for (let t0 = 0; t0 < k; t0 += K_BLOCK) {
    const t1 = Math.min(k, t0 + K_BLOCK);
    for (let j0 = 0; j0 < n; j0 += J_BLOCK) {
      const j1 = Math.min(n, j0 + J_BLOCK);
      let i = 0;
      for (; i + 1 < m; i += 2) {
        const xa = i * k, xb = xa + k;
        const oa = i * n, ob = oa + n;
        let j = j0;
        for (; j + 1 < j1; j += 2) {
          const wa = j * k, wb = wa + k;
          let s00 = 0, s01 = 0, s10 = 0, s11 = 0;
          for (let t = t0; t < t1; t++) {
            const x0 = a[xa + t], x1 = a[xb + t], w0 = b[wa + t], w1 = b[wb + t];
            s00 += x0 * w0;
            s01 += x0 * w1;
            s10 += x1 * w0;
            s11 += x1 * w1;
          }
          out[oa + j] += s00;
          out[oa + j + 1] += s01;
          out[ob + j] += s10;
          out[ob + j + 1] += s11;
        }
        if (j < j1) {
          const wa = j * k;
          let s0 = 0, s1 = 0;
          for (let t = t0; t < t1; t++) {
            s0 += a[xa + t] * b[wa + t];
            s1 += a[xb + t] * b[wa + t];
          }
          out[oa + j] += s0;
          out[ob + j] += s1;
        }
      }
      if (i < m) {
        const xa = i * k, oa = i * n;
        for (let j = j0; j < j1; j++) {
          const wa = j * k;
          let s = 0;
          for (let t = t0; t < t1; t++) s += a[xa + t] * b[wa + t];
          out[oa + j] += s;
        }
      }
    }
  }
  return out;
}

/**
 * The transpose `[cols, rows]` of `a[rows, cols]`.
 *
 * @example
 * ```ts
 * transpose(new Float64Array([1, 2, 3, 4, 5, 6]), 2, 3); // [1, 4, 2, 5, 3, 6]
 * ```
 */
export function transpose(a: FloatArray, rows: number, cols: number): FloatArray {
  const out = allocLike(a, rows * cols);
  const B = 32;
  for (let r0 = 0; r0 < rows; r0 += B) {
    const r1 = Math.min(rows, r0 + B);
    for (let c0 = 0; c0 < cols; c0 += B) {
      const c1 = Math.min(cols, c0 + B);
      for (let r = r0; r < r1; r++) {
        for (let c = c0; c < c1; c++) out[c * rows + r] = a[r * cols + c];
      }
    }
  }
  return out;
}

/**
 * `y[M, N] = x[M, K] · w[N, K]^T (+ b[N])` (writes `y`).
 *
 * @example
 * ```ts
 * linearForward(new Float64Array([1, 2]), new Float64Array([3, 4]), undefined, 1, 2, 1); // [11]
 * ```
 */
export function linearForward(
  x: FloatArray,
  w: FloatArray,
  b: FloatArray | undefined,
  m: number,
  k: number,
  n: number,
  out: FloatArray = allocLike(x, m * n),
): FloatArray {
  matmulNT(x, w, m, k, n, out);
  if (b) {
    for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) out[i * n + j] += b[j];
  }
  return out;
}

/**
 * Gradient of a linear map with respect to its input: `dx[M, K] += dy[M, N] · w[N, K]`
 * (computed as `dy · (w^T)^T`).
 *
 * @example
 * ```ts
 * const dx = new Float64Array(2);
 * linearBackwardInput(new Float64Array([2]), new Float64Array([3, 4]), 1, 2, 1, dx); // [6, 8]
 * ```
 */
export function linearBackwardInput(
  dy: FloatArray,
  w: FloatArray,
  m: number,
  k: number,
  n: number,
  dx: FloatArray,
): FloatArray {
  return matmulNT(dy, transpose(w, n, k), m, n, k, dx, true);
}

/**
 * Gradients of a linear map's parameters: `dw[N, K] += dy[M, N]^T · x[M, K]` and
 * `db[N] += Σ_i dy[i, :]`.
 *
 * @example
 * ```ts
 * const dw = new Float64Array(2), db = new Float64Array(1);
 * linearBackwardParams(new Float64Array([2]), new Float64Array([3, 4]), 1, 2, 1, dw, db);
 * // dw = [6, 8], db = [2]
 * ```
 */
export function linearBackwardParams(
  dy: FloatArray,
  x: FloatArray,
  m: number,
  k: number,
  n: number,
  dw: FloatArray,
  db?: FloatArray,
): void {
  matmulNT(transpose(dy, m, n), transpose(x, m, k), n, m, k, dw, true);
  if (db) {
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let i = 0; i < m; i++) s += dy[i * n + j];
      db[j] += s;
    }
  }
}

/** What a LayerNorm forward keeps for its backward. */
export interface LnSaved {
  /** `[M, D]` normalised input `(x - mean) * rstd`. */
  xhat: FloatArray;
  /** `[M]` `1 / sqrt(var + eps)`. */
  rstd: FloatArray;
}

/**
 * LayerNorm over the last axis, `y = (x - mean) * rstd * w + b` (biased variance, eps
 * 1e-5), keeping what the backward needs.
 *
 * @example
 * ```ts
 * const { y } = layerNormForward(new Float64Array([1, 3]), new Float64Array([1, 1]), new Float64Array(2), 1, 2);
 * // y ≈ [-1, 1]
 * ```
 */
export function layerNormForward(
  x: FloatArray,
  w: FloatArray,
  b: FloatArray,
  m: number,
  d: number,
  eps = 1e-5,
): LnSaved & { y: FloatArray } {
  const y = allocLike(x, m * d), xhat = allocLike(x, m * d), rstd = allocLike(x, m);
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
    const r = 1 / Math.sqrt(v / d + eps);
    rstd[i] = r;
    for (let t = 0; t < d; t++) {
      const h = (x[o + t] - mean) * r;
      xhat[o + t] = h;
      y[o + t] = h * w[t] + b[t];
    }
  }
  return { y, xhat, rstd };
}

/**
 * LayerNorm backward: `dx[M, D] += rstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat))`
 * with `dxhat = dy * w`; `dw += Σ dy * xhat`, `db += Σ dy`.
 *
 * @example
 * ```ts
 * const f = layerNormForward(new Float64Array([1, 3]), new Float64Array([1, 1]), new Float64Array(2), 1, 2);
 * const dx = new Float64Array(2), dw = new Float64Array(2), db = new Float64Array(2);
 * layerNormBackward(new Float64Array([1, 0]), f, new Float64Array([1, 1]), 1, 2, dx, dw, db);
 * ```
 */
export function layerNormBackward(
  dy: FloatArray,
  saved: LnSaved,
  w: FloatArray,
  m: number,
  d: number,
  dx: FloatArray,
  dw: FloatArray,
  db: FloatArray,
): void {
  const { xhat, rstd } = saved;
  for (let i = 0; i < m; i++) {
    const o = i * d;
    let s1 = 0, s2 = 0;
    for (let t = 0; t < d; t++) {
      const g = dy[o + t] * w[t];
      s1 += g;
      s2 += g * xhat[o + t];
    }
    s1 /= d;
    s2 /= d;
    const r = rstd[i];
    for (let t = 0; t < d; t++) {
      dx[o + t] += r * (dy[o + t] * w[t] - s1 - xhat[o + t] * s2);
    }
  }
  for (let t = 0; t < d; t++) {
    let sw = 0, sb = 0;
    for (let i = 0; i < m; i++) {
      sw += dy[i * d + t] * xhat[i * d + t];
      sb += dy[i * d + t];
    }
    dw[t] += sw;
    db[t] += sb;
  }
}

/**
 * Causal attention over packed rows. `q, k, v` are `[M, D]` (`q` already scaled by
 * `headDim ** -0.5`); query `i` attends to keys `start[i] .. i` (the earlier active columns
 * of its own sequence, packed in column order). Returns the context `[M, D]` and the
 * probabilities: query `i`, head `h`, key `start[i] + t` at `probs[off[i] + h * n_i + t]`
 * with `n_i = i - start[i] + 1`.
 *
 * @example
 * ```ts
 * const one = new Float64Array([1]);
 * const { ctx } = attentionForward(one, one, new Float64Array([7]), Int32Array.of(0), 1, 1, 1);
 * // ctx = [7]
 * ```
 */
export function attentionForward(
  q: FloatArray,
  k: FloatArray,
  v: FloatArray,
  start: Int32Array,
  m: number,
  d: number,
  heads: number,
): { ctx: FloatArray; probs: FloatArray; off: Int32Array } {
  const hd = d / heads;
  const off = new Int32Array(m + 1);
  for (let i = 0; i < m; i++) off[i + 1] = off[i] + (i - start[i] + 1) * heads;
  const probs = allocLike(q, off[m]);
  const ctx = allocLike(q, m * d);
  const s = new Float64Array(m);
  for (let i = 0; i < m; i++) {
    const n = i - start[i] + 1;
    for (let h = 0; h < heads; h++) {
      const qo = i * d + h * hd;
      let max = -Infinity;
      for (let t = 0; t < n; t++) {
        const ko = (start[i] + t) * d + h * hd;
        let dot = 0;
        for (let e = 0; e < hd; e++) dot += q[qo + e] * k[ko + e];
        s[t] = dot;
        if (dot > max) max = dot;
      }
      let sum = 0;
      for (let t = 0; t < n; t++) {
        s[t] = Math.exp(s[t] - max);
        sum += s[t];
      }
      const po = off[i] + h * n;
      for (let t = 0; t < n; t++) {
        const p = s[t] / sum;
        probs[po + t] = p;
        const vo = (start[i] + t) * d + h * hd;
        for (let e = 0; e < hd; e++) ctx[qo + e] += p * v[vo + e];
      }
    }
  }
  return { ctx, probs, off };
}

/**
 * Attention backward (see {@linkcode attentionForward}): from `dctx[M, D]` adds
 * `dq` (with respect to the scaled `q`), `dk` and `dv`, each `[M, D]`.
 * `dS = P * (dP - Σ_t P dP)` with `dP_t = dctx · v_t`.
 *
 * @example
 * ```ts
 * const one = new Float64Array([1]);
 * const f = attentionForward(one, one, one, Int32Array.of(0), 1, 1, 1);
 * const dq = new Float64Array(1), dk = new Float64Array(1), dv = new Float64Array(1);
 * attentionBackward(one, one, one, one, f.probs, f.off, Int32Array.of(0), 1, 1, 1, dq, dk, dv);
 * // dv = [1]
 * ```
 */
export function attentionBackward(
  dctx: FloatArray,
  q: FloatArray,
  k: FloatArray,
  v: FloatArray,
  probs: FloatArray,
  off: Int32Array,
  start: Int32Array,
  m: number,
  d: number,
  heads: number,
  dq: FloatArray,
  dk: FloatArray,
  dv: FloatArray,
): void {
  const hd = d / heads;
  const ds = new Float64Array(m);
  for (let i = 0; i < m; i++) {
    const n = i - start[i] + 1;
    for (let h = 0; h < heads; h++) {
      const qo = i * d + h * hd;
      const po = off[i] + h * n;
      let sum = 0;
      for (let t = 0; t < n; t++) {
        const vo = (start[i] + t) * d + h * hd;
        let dp = 0;
        for (let e = 0; e < hd; e++) dp += dctx[qo + e] * v[vo + e];
        ds[t] = dp;
        sum += probs[po + t] * dp;
      }
      for (let t = 0; t < n; t++) {
        const p = probs[po + t];
        const g = p * (ds[t] - sum);
        const ko = (start[i] + t) * d + h * hd;
        for (let e = 0; e < hd; e++) {
          dq[qo + e] += g * k[ko + e];
          dk[ko + e] += g * q[qo + e];
          dv[ko + e] += p * dctx[qo + e];
        }
      }
    }
  }
}

/**
 * Cross-entropy of logits rows against targets, in place: each row `[V]` of `logits[M, V]`
 * becomes `softmax - onehot(target)` (the gradient of the row's NLL) when `grad` is true.
 * Returns each row's NLL `logsumexp - logit[target]`.
 *
 * @example
 * ```ts
 * const nll = crossEntropy(new Float64Array([0, 0]), Int32Array.of(1), 1, 2, false);
 * // nll = [ln 2]
 * ```
 */
export function crossEntropy(
  logits: FloatArray,
  targets: Int32Array,
  m: number,
  vocab: number,
  grad: boolean,
): Float64Array {
  const nll = new Float64Array(m);
  for (let i = 0; i < m; i++) {
    const o = i * vocab;
    const tgt = targets[i];
    if (!(tgt >= 0 && tgt < vocab)) {
      throw new RangeError(`target ${tgt} of row ${i} is outside the vocabulary 0..${vocab - 1}`);
    }
    let max = -Infinity;
    for (let j = 0; j < vocab; j++) if (logits[o + j] > max) max = logits[o + j];
    let sum = 0;
    for (let j = 0; j < vocab; j++) sum += Math.exp(logits[o + j] - max);
    const lse = max + Math.log(sum);
    nll[i] = lse - logits[o + tgt];
    if (grad) {
      for (let j = 0; j < vocab; j++) logits[o + j] = Math.exp(logits[o + j] - lse);
      logits[o + tgt] -= 1;
    }
  }
  return nll;
}

/**
 * Copies rows `idx[i]` of `src[*, D]` into a new `[idx.length, D]` array.
 *
 * @example
 * ```ts
 * gather(new Float64Array([1, 2, 3]), Int32Array.of(2, 0), 1); // [3, 1]
 * ```
 */
export function gather(src: FloatArray, idx: Int32Array, d: number): FloatArray {
  const out = allocLike(src, idx.length * d);
  for (let i = 0; i < idx.length; i++) {
    out.set(src.subarray(idx[i] * d, idx[i] * d + d), i * d);
  }
  return out;
}

/**
 * Writes row `i` of `rows[n, D]` to row `idx[i]` of `dst`.
 *
 * @example
 * ```ts
 * const dst = new Float64Array(3);
 * scatter(new Float64Array([5]), Int32Array.of(1), 1, dst); // dst = [0, 5, 0]
 * ```
 */
export function scatter(rows: FloatArray, idx: Int32Array, d: number, dst: FloatArray): void {
  for (let i = 0; i < idx.length; i++) {
    dst.set(rows.subarray(i * d, i * d + d), idx[i] * d);
  }
}

/**
 * `a[i] += s * b[i]`.
 *
 * @example
 * ```ts
 * axpy(new Float64Array([1]), new Float64Array([2]), 3); // [7]
 * ```
 */
export function axpy(a: FloatArray, b: FloatArray, s = 1): FloatArray {
  for (let i = 0; i < a.length; i++) a[i] += s * b[i];
  return a;
}
