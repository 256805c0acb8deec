/**
 * Agreement with the full model (docs/DESIGN.md §8): the share of generated tokens equal to the
 * `full` policy's, compared position by position.
 *
 * Definition: for one item with policy tokens `a` and full tokens `f` (EOS included when it
 * was produced), position `i` agrees when both have a token there and `a[i] === f[i]`. The
 * item counts `max(|a|, |f|)` positions, so every position past the shorter output is a
 * disagreement (a policy that stops early or runs on is penalised). The corpus figure is
 * `Σ agreeing / Σ positions` over items (1 when both are empty everywhere).
 *
 * @example
 * ```ts
 * import { tokenAgreement } from "./agreement.ts";
 * const a = tokenAgreement([[5, 6, 2], [7, 8]], [[5, 6, 2], [7, 9, 2]]);
 * console.log(a.agreement); // (3 + 1) / (3 + 3) = 0.667
 * ```
 * @module
 */

/** Agreement of one item. */
export interface ItemAgreement {
  /** Positions where both outputs hold the same token. */
  matched: number;
  /** `max(|policy|, |full|)`. */
  total: number;
  /** First position that differs (`total` when none does). */
  firstMismatch: number;
}

/** What {@linkcode tokenAgreement} returns. */
export interface AgreementResult {
  /** `Σ matched / Σ total` (1 when there is nothing to compare). */
  agreement: number;
  /** Agreeing positions, all items. */
  matched: number;
  /** Positions compared, all items. */
  total: number;
  /** One entry per item. */
  items: ItemAgreement[];
  /** Share of items agreeing at generated token `i` among those where either output has one. */
  byPosition: number[];
  /** Items where either output has a token at index `j`. */
  positionCounts: number[];
  /** Items whose outputs are identical. */
  exactMatches: number;
}

/**
 * Position-wise token agreement of a policy's generations with the full model's (see the
 * module documentation for the exact definition).
 *
 * @param policy generated ids per item under the policy
 * @param full generated ids per item under `full`, same items in the same order
 * @returns corpus, per-item and per-position agreement
 * @throws RangeError when the two lists have different lengths
 * @example
 * ```ts
 * import { tokenAgreement } from "./agreement.ts";
 * tokenAgreement([[1, 2, 3]], [[1, 2]]).agreement; // 2 / 3
 * ```
 */
export function tokenAgreement(
  policy: readonly (readonly number[])[],
  full: readonly (readonly number[])[],
): AgreementResult {
  if (policy.length !== full.length) {
    throw new RangeError(
      `tokenAgreement: ${policy.length} policy outputs but ${full.length} full-model outputs`,
    );
  }
  let matched = 0, total = 0, exactMatches = 0;
  const hits: number[] = [];
  const counts: number[] = [];
  const items = policy.map((a, k) => {
    const f = full[k];
    const n = Math.max(a.length, f.length);
    let m = 0;
    let firstMismatch = n;
    for (let i = 0; i < n; i++) {
      const same = i < a.length && i < f.length && a[i] === f[i];
      if (same) m++;
      else if (firstMismatch === n) firstMismatch = i;
      hits[i] = (hits[i] ?? 0) + (same ? 1 : 0);
      counts[i] = (counts[i] ?? 0) + 1;
    }
    matched += m;
    total += n;
    if (m === n) exactMatches++;
    return { matched: m, total: n, firstMismatch };
  });
  return {
    agreement: total ? matched / total : 1,
    matched,
    total,
    items,
    byPosition: hits.map((h, i) => h / counts[i]),
    positionCounts: counts,
    exactMatches,
  };
}
