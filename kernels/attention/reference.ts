/**
 * The CPU reference of multi-head attention, generic over `Float32Array`/`Float64Array`:
 * one forward, {@linkcode attendOne} (one query over `n` keys with an `allowed` predicate,
 * optionally keeping its probabilities), which the CPU backend calls per query over its KV
 * cache and {@linkcode attentionForward} calls per query over packed training rows; and
 * {@linkcode attentionBackward}. Scores and their softmax are kept in f64, max-subtracted.
 *
 * @example
 * ```ts
 * import { attendOne } from "./reference.ts";
 * console.log(attendOne(new Float32Array([1]), new Float32Array([1]), new Float32Array([7]), 1, 1, 1, () => true)); // [7]
 * ```
 *
 * @module
 */
import { allocLike, type FloatArray } from "../float.ts";

/**
 * Multi-head attention of one query over `n` keys and values.
 * `q[D]` is already scaled by `headDim ** -0.5`; `keys[n, D]`, `values[n, D]` (rows of a
 * cache); `allowed(t)` says whether key `t` may be attended (causality, padding, skipped
 * columns). Softmax is max-subtracted. With no allowed key the output is 0. With `probs`
 * (`[heads, n]`), each head's probabilities are written there (0 for keys not allowed).
 *
 * @example
 * ```ts
 * const out = attendOne(new Float32Array([1]), new Float32Array([1]), new Float32Array([7]), 1, 1, 1, () => true);
 * // out = [7]
 * ```
 */
export function attendOne<A extends FloatArray>(
  q: FloatArray,
  keys: FloatArray,
  values: FloatArray,
  n: number,
  d: number,
  heads: number,
  allowed: (t: number) => boolean,
  out: A = new Float32Array(d) as A,
  probs?: FloatArray,
): A {
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
      if (probs) probs[h * n + t] = p;
      if (p === 0) continue;
      const vo = t * d + ho;
      for (let i = 0; i < hd; i++) out[ho + i] += p * values[vo + i];
    }
  }
  return out;
}

/**
 * Causal attention over packed rows. `q, k, v` are `[M, D]` (`q` already scaled by
 * `headDim ** -0.5`); query `i` attends to keys `start[i] .. i` (the earlier active columns
 * of its own sequence, packed in column order), through {@linkcode attendOne}. Returns the
 * context `[M, D]` and the probabilities: query `i`, head `h`, key `start[i] + t` at
 * `probs[off[i] + h * n_i + t]` with `n_i = i - start[i] + 1`.
 *
 * @example
 * ```ts
 * const one = new Float64Array([1]);
 * const { ctx } = attentionForward(one, one, new Float64Array([7]), Int32Array.of(0), 1, 1, 1);
 * // ctx = [7]
 * ```
 */
export function attentionForward<A extends FloatArray>(
  q: A,
  k: FloatArray,
  v: FloatArray,
  start: Int32Array,
  m: number,
  d: number,
  heads: number,
): { ctx: A; probs: A; off: Int32Array } {
  const off = new Int32Array(m + 1);
  for (let i = 0; i < m; i++) off[i + 1] = off[i] + (i - start[i] + 1) * heads;
  const probs = allocLike(q, off[m]);
  const ctx = allocLike(q, m * d);
  const all = () => true;
  for (let i = 0; i < m; i++) {
    const s0 = start[i] * d, s1 = (i + 1) * d;
    attendOne(
      q.subarray(i * d, i * d + d),
      k.subarray(s0, s1),
      v.subarray(s0, s1),
      i - start[i] + 1,
      d,
      heads,
      all,
      ctx.subarray(i * d, i * d + d),
      probs.subarray(off[i], off[i + 1]),
    );
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

/** A paged KV layout on the CPU (see `paged.ts`): token tables and one layer's pages. */
export interface PagedLayoutReference {
  /** `[m]`: the call's token index of each compact row. */
  rows: ArrayLike<number>;
  /** `[tokens]`: each token's slot. */
  slot: ArrayLike<number>;
  /** `[tokens]`: each token's position in its slot. */
  pos: ArrayLike<number>;
  /** `[capacity, maxPages]`: the layer's page ids. */
  table: ArrayLike<number>;
  /** Positions per page. */
  pageSize: number;
  /** Page-table entries per slot. */
  maxPages: number;
}

/** Pool row of position `u` of slot `s` under a page table. */
function poolRow(a: PagedLayoutReference, s: number, u: number): number {
  return a.table[s * a.maxPages + Math.floor(u / a.pageSize)] * a.pageSize + (u % a.pageSize);
}

/**
 * The paged KV write (`kv_write.wgsl`): row `i` of `kin`/`vin` (`[m, d]`) goes to the pool row
 * of token `rows[i]`'s slot and position.
 *
 * @example
 * ```ts
 * import { kvWriteReference } from "./reference.ts";
 * const kpool = new Float32Array(4), vpool = new Float32Array(4);
 * kvWriteReference(new Float32Array([5]), new Float32Array([6]), kpool, vpool, 1, {
 *   rows: [0], slot: [0], pos: [1], table: [1], pageSize: 2, maxPages: 1,
 * });
 * // kpool[3] === 5 (page 1, offset 1)
 * ```
 */
export function kvWriteReference(
  kin: FloatArray,
  vin: FloatArray,
  kpool: FloatArray,
  vpool: FloatArray,
  d: number,
  a: PagedLayoutReference,
): void {
  for (let i = 0; i < a.rows.length; i++) {
    const t = a.rows[i];
    const o = poolRow(a, a.slot[t], a.pos[t]) * d;
    kpool.set(kin.subarray(i * d, (i + 1) * d), o);
    vpool.set(vin.subarray(i * d, (i + 1) * d), o);
  }
}

/**
 * Paged attention (`paged.ts`): query row `r` (`q [m, d]`, unscaled) of token `t = rows[r]`
 * attends its slot's keys at positions `0 .. pos[t]` read through the page table; returns
 * `[m, d]`. Scores and softmax in f64 ({@linkcode attendOne}).
 *
 * @example
 * ```ts
 * import { pagedAttentionReference } from "./reference.ts";
 * const out = pagedAttentionReference(new Float32Array([1]), new Float32Array([2]),
 *   new Float32Array([7]), 1, 1, { rows: [0], slot: [0], pos: [0], table: [0], pageSize: 1, maxPages: 1 });
 * // out = [7]
 * ```
 */
export function pagedAttentionReference(
  q: FloatArray,
  kpool: FloatArray,
  vpool: FloatArray,
  d: number,
  heads: number,
  a: PagedLayoutReference,
): Float32Array {
  const m = a.rows.length;
  const scale = 1 / Math.sqrt(d / heads);
  const out = new Float32Array(m * d);
  for (let r = 0; r < m; r++) {
    const t = a.rows[r], s = a.slot[t], n = a.pos[t] + 1;
    const keys = new Float32Array(n * d), values = new Float32Array(n * d);
    for (let u = 0; u < n; u++) {
      const o = poolRow(a, s, u) * d;
      keys.set(kpool.subarray(o, o + d), u * d);
      values.set(vpool.subarray(o, o + d), u * d);
    }
    const qs = new Float32Array(d);
    for (let i = 0; i < d; i++) qs[i] = q[r * d + i] * scale;
    out.set(attendOne(qs, keys, values, n, d, heads, () => true), r * d);
  }
  return out;
}
