/**
 * Training batches: sequences left-padded to a common length (as at inference, docs/DESIGN.md §3),
 * OPT position ids, the target of every column (loss on target tokens only) and per-row,
 * per-column layer masks.
 *
 * A sequence is a prompt (BOS included) followed by its target tokens (EOS included). The
 * input is the sequence without its last token; column `c` of a row predicts token `c + 1`,
 * so the `R` targets are predicted by columns `P - 1 .. P + R - 2`, exactly the columns that
 * produce generated tokens `0 .. R - 1` at inference. The layer sets of those columns come
 * from the row's own plan (its prompt length `P`, `maxNewTokens = R`): with left padding the
 * generated index `j = c - P` of a column is the same alone or in a padded batch, so the
 * masks are what inference would use. Padding columns run no layer and have no loss.
 *
 * @module
 */
import { setsForColumns } from "../schedule/plan.ts";
import type { Policy } from "../schedule/policy.ts";

/** One training sequence: ids, prompt first. */
export interface Example {
  /** Prompt ids, BOS included (at least one id). */
  prompt: number[];
  /** Target ids, EOS included (at least one id); the loss covers exactly these. */
  target: number[];
}

/** An example with the layer sets of its own columns `0 .. P + R - 2`. */
export interface PlannedExample extends Example {
  /** `sets[c]`: ascending active layers of column `c` of this sequence. */
  sets: readonly (readonly number[])[];
}

/** A left-padded batch ready for a forward pass. */
export interface TrainBatch {
  /** Rows `B`. */
  rows: number;
  /** Columns `T`. */
  length: number;
  /** Decoder layers `L` the masks cover. */
  layers: number;
  /** `[B, T]` input ids (padding: the pad id). */
  tokens: Int32Array;
  /** `[B, T]` OPT position ids (`-1` on padding); the table row is `pos + 2`. */
  positions: Int32Array;
  /** `[B, T]` the id column `c` must predict, or `-1` for no loss. */
  targets: Int32Array;
  /** `[L, B, T]` 1 where the column runs the layer (never on padding). */
  active: Uint8Array;
  /** Number of targets (`targets >= 0`). */
  targetCount: number;
}

/**
 * The layer sets of one example's columns under a policy, as inference would use them:
 * `setsForColumns(policy, { promptLength: P, maxNewTokens: R, columns: P + R })` without
 * the last column (whose output predicts nothing).
 *
 * @example
 * ```ts
 * import { parsePolicy } from "../schedule/mod.ts";
 * const sets = exampleSets(parsePolicy("linear:max=4,min=2,horizon=4"), 4, 3, 5);
 * console.log(sets.map((s) => s.length)); // [4, 4, 4, 4, 3, 3, 2]
 * ```
 */
export function exampleSets(
  policy: Policy,
  layers: number,
  promptLength: number,
  targetLength: number,
): number[][] {
  return setsForColumns(policy, {
    layers,
    promptLength,
    maxNewTokens: targetLength,
    columns: promptLength + targetLength,
  }).slice(0, promptLength + targetLength - 1);
}

/**
 * Builds a batch from planned examples: left padding, positions, targets and masks.
 *
 * @throws {RangeError} naming the example for an empty prompt or target, sets of the wrong
 *   length or layers outside `0 .. layers - 1`.
 *
 * @example
 * ```ts
 * const b = collate([{ prompt: [2, 7], target: [8, 2], sets: [[0, 1], [0, 1], [1]] }], 2, 1);
 * console.log(b.length, [...b.targets]); // 3 [-1, 8, 2]
 * ```
 */
export function collate(
  examples: readonly PlannedExample[],
  layers: number,
  padTokenId: number,
): TrainBatch {
  if (examples.length === 0) throw new RangeError("a batch needs at least one example");
  examples.forEach((e, i) => {
    if (e.prompt.length === 0) throw new RangeError(`example ${i} has an empty prompt`);
    if (e.target.length === 0) throw new RangeError(`example ${i} has an empty target`);
    const n = e.prompt.length + e.target.length - 1;
    if (e.sets.length < n) {
      throw new RangeError(`example ${i}: ${e.sets.length} layer sets for its ${n} columns`);
    }
  });
  const B = examples.length;
  const T = Math.max(...examples.map((e) => e.prompt.length + e.target.length - 1));
  const tokens = new Int32Array(B * T).fill(padTokenId);
  const positions = new Int32Array(B * T).fill(-1);
  const targets = new Int32Array(B * T).fill(-1);
  const active = new Uint8Array(layers * B * T);
  let targetCount = 0;
  examples.forEach((e, b) => {
    const seq = [...e.prompt, ...e.target];
    const n = seq.length - 1;
    const o = T - n;
    for (let c = 0; c < n; c++) {
      const f = b * T + o + c;
      tokens[f] = seq[c];
      positions[f] = c;
      if (c >= e.prompt.length - 1) {
        targets[f] = seq[c + 1];
        targetCount++;
      }
      for (const l of e.sets[c]) {
        if (!Number.isInteger(l) || l < 0 || l >= layers) {
          throw new RangeError(
            `example ${b}, column ${c}: layer ${l} is outside 0..${layers - 1}`,
          );
        }
        active[l * B * T + f] = 1;
      }
    }
  });
  return { rows: B, length: T, layers, tokens, positions, targets, active, targetCount };
}

/**
 * A batch of already padded rows sharing per-column sets, as `Backend.forward` takes them
 * (left padding, `sets[c]` for column `c` of the padded batch, padding columns idle). With
 * `allTargets`, every real column but a row's last predicts its next token (teacher
 * forcing over the whole sequence); otherwise no column has a target.
 *
 * @example
 * ```ts
 * const b = paddedBatch([[2, 5, 6], [2, 7]], [[0], [0], [0]], 1, 1, true);
 * console.log([...b.targets]); // [5, 6, -1, -1, 7, -1]
 * ```
 */
export function paddedBatch(
  rows: readonly (readonly number[])[],
  sets: readonly (readonly number[])[],
  layers: number,
  padTokenId: number,
  allTargets = false,
): TrainBatch {
  const B = rows.length;
  const T = Math.max(...rows.map((r) => r.length));
  if (sets.length < T) throw new RangeError(`plan covers ${sets.length} of ${T} columns`);
  const tokens = new Int32Array(B * T).fill(padTokenId);
  const positions = new Int32Array(B * T).fill(-1);
  const targets = new Int32Array(B * T).fill(-1);
  const active = new Uint8Array(layers * B * T);
  let targetCount = 0;
  rows.forEach((r, b) => {
    if (r.length === 0) throw new RangeError(`row ${b} is empty`);
    const o = T - r.length;
    for (let i = 0; i < r.length; i++) {
      const f = b * T + o + i;
      tokens[f] = r[i];
      positions[f] = i;
      if (allTargets && i + 1 < r.length) {
        targets[f] = r[i + 1];
        targetCount++;
      }
      for (const l of sets[o + i]) active[l * B * T + f] = 1;
    }
  });
  return { rows: B, length: T, layers, tokens, positions, targets, active, targetCount };
}
