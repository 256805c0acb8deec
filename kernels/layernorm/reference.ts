/**
 * The CPU reference of LayerNorm, generic over `Float32Array`/`Float64Array`: one forward
 * ({@linkcode layerNorm}, which also keeps what the backward needs when asked) shared by
 * the CPU backend and the training reference, and {@linkcode layerNormBackward}.
 * `y = (x - mean) * rstd * w + b` over the last axis, biased variance, eps 1e-5 (PyTorch).
 *
 * @example
 * ```ts
 * import { layerNorm } from "./reference.ts";
 * console.log(layerNorm(new Float32Array([1, 3]), new Float32Array([1, 1]), new Float32Array(2), 1, 2)); // ≈ [-1, 1]
 * ```
 *
 * @module
 */
import { allocLike, type FloatArray } from "../float.ts";

/** What a LayerNorm forward keeps for its backward. */
export interface LnSaved {
  /** `[M, D]` normalised input `(x - mean) * rstd`. */
  xhat: FloatArray;
  /** `[M]` `1 / sqrt(var + eps)`. */
  rstd: FloatArray;
}

/**
 * LayerNorm over the last axis of `x[M, D]`: `(x - mean) / sqrt(var + eps) * w + b`
 * (biased variance, as PyTorch). With `keep`, also writes the normalised input and
 * `1 / sqrt(var + eps)` per row there (for {@linkcode layerNormBackward}).
 *
 * @example
 * ```ts
 * const y = layerNorm(new Float32Array([1, 3]), new Float32Array([1, 1]), new Float32Array(2), 1, 2);
 * // y ≈ [-1, 1]
 * ```
 */
export function layerNorm<A extends FloatArray>(
  x: A,
  w: FloatArray,
  b: FloatArray,
  m: number,
  d: number,
  eps = 1e-5,
  out: A = allocLike(x, m * d),
  keep?: LnSaved,
): A {
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
    if (keep) {
      keep.rstd[i] = inv;
      for (let t = 0; t < d; t++) {
        const h = (x[o + t] - mean) * inv;
        keep.xhat[o + t] = h;
        out[o + t] = h * w[t] + b[t];
      }
    } else {
      for (let t = 0; t < d; t++) out[o + t] = (x[o + t] - mean) * inv * w[t] + b[t];
    }
  }
  return out;
}

/**
 * {@linkcode layerNorm} keeping what the backward needs (the training forward).
 *
 * @example
 * ```ts
 * const { y, rstd } = layerNormForward(new Float64Array([1, 3]), new Float64Array([1, 1]), new Float64Array(2), 1, 2);
 * // y ≈ [-1, 1], rstd ≈ [1]
 * ```
 */
export function layerNormForward<A extends FloatArray>(
  x: A,
  w: FloatArray,
  b: FloatArray,
  m: number,
  d: number,
  eps = 1e-5,
): LnSaved & { y: A } {
  const keep = { xhat: allocLike(x, m * d), rstd: allocLike(x, m) };
  const y = layerNorm(x, w, b, m, d, eps, allocLike(x, m * d), keep);
  return { y, ...keep };
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
