/**
 * The CPU reference of next-token selection: {@linkcode argmax} (greedy decoding) and
 * {@linkcode topK}. Seeded sampling's reference is `selectToken` of `backend/sampling.ts`.
 *
 * @example
 * ```ts
 * import { argmax } from "./reference.ts";
 * console.log(argmax(new Float32Array([1, 5, 5]))); // 1
 * ```
 *
 * @module
 */

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
