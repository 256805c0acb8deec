/**
 * Training data, tokenized once: E2E-style pairs (prompt `"<mr>\n"`, target reference +
 * EOS, as `bundled/models/tiny-opt-e2e` was trained) and plain text (BOS, then windows of
 * the text as targets); batches of examples of similar length (less padding).
 *
 * @module
 */
import type { E2eItem } from "../data/datasets.ts";
import type { Example } from "./batch.ts";
import { seededRandom } from "../model/random.ts";

/** What tokenization needs (an `OptTokenizer` fits). */
export interface TextEncoder {
  /** Ids of a text; `addBos: false` leaves out the BOS. */
  encode(text: string, options?: { addBos?: boolean }): number[];
  /** BOS id. */
  readonly bosTokenId: number;
  /** EOS id. */
  readonly eosTokenId: number;
}

/**
 * One example per (mr, reference) pair: prompt = BOS + tokens of `"<mr>\n"`, target =
 * tokens of the reference + EOS. Pairs longer than `maxLength` tokens in all are dropped
 * (count returned).
 *
 * @example
 * ```ts
 * import { loadTokenizer } from "../tokenizer/mod.ts";
 * const tok = await loadTokenizer("bundled/models/tiny-opt-e2e");
 * const { examples } = e2eExamples([{ mr: "name[A]", refs: ["A is good ."] }], tok);
 * console.log(examples[0].target.at(-1)); // 2
 * ```
 */
export function e2eExamples(
  items: readonly E2eItem[],
  tokenizer: TextEncoder,
  maxLength = Infinity,
): { examples: Example[]; dropped: number } {
  return promptExamples(
    items.map((it) => ({ prompt: `${it.mr}\n`, refs: it.refs })),
    tokenizer,
    maxLength,
  );
}

/**
 * One example per (prompt, reference) pair of items whose prompts are made already (e.g. a
 * data table's items through a template): prompt = BOS + tokens of the prompt, target =
 * tokens of the reference + EOS. Pairs longer than `maxLength` tokens in all are dropped
 * (count returned).
 *
 * @example
 * ```ts
 * import { loadTokenizer } from "../tokenizer/mod.ts";
 * import { promptExamples } from "./data.ts";
 * const tok = await loadTokenizer("bundled/models/tiny-opt-e2e");
 * const { examples } = promptExamples([{ prompt: "Summary: x\n", refs: ["x ."] }], tok);
 * console.log(examples.length); // 1
 * ```
 */
export function promptExamples(
  items: readonly { prompt: string; refs: readonly string[] }[],
  tokenizer: TextEncoder,
  maxLength = Infinity,
): { examples: Example[]; dropped: number } {
  const examples: Example[] = [];
  let dropped = 0;
  for (const item of items) {
    const prompt = tokenizer.encode(item.prompt);
    if (prompt[0] !== tokenizer.bosTokenId) prompt.unshift(tokenizer.bosTokenId);
    for (const ref of item.refs) {
      const target = [...tokenizer.encode(ref, { addBos: false }), tokenizer.eosTokenId];
      if (prompt.length + target.length > maxLength) {
        dropped++;
        continue;
      }
      examples.push({ prompt, target });
    }
  }
  return { examples, dropped };
}

/**
 * Plain text as examples: documents are separated by blank lines; each document's tokens
 * (plus EOS) are cut into windows of at most `maxLength - 1` tokens, each an example with
 * prompt `[BOS]` and the window as target (so every token but BOS is scored).
 *
 * @example
 * ```ts
 * import { loadTokenizer } from "../tokenizer/mod.ts";
 * const tok = await loadTokenizer("bundled/models/tiny-opt-e2e");
 * const ex = textExamples("Hello there.\n\nA second document.", tok, 64);
 * console.log(ex.length); // 2
 * ```
 */
export function textExamples(text: string, tokenizer: TextEncoder, maxLength: number): Example[] {
  if (!Number.isInteger(maxLength) || maxLength < 2) {
    throw new RangeError(`maxLength must be an integer >= 2, got ${maxLength}`);
  }
  const out: Example[] = [];
  for (const doc of text.split(/\n\s*\n/)) {
    const trimmed = doc.trim();
    if (!trimmed) continue;
    const ids = [...tokenizer.encode(trimmed, { addBos: false }), tokenizer.eosTokenId];
    for (let i = 0; i < ids.length; i += maxLength - 1) {
      out.push({ prompt: [tokenizer.bosTokenId], target: ids.slice(i, i + maxLength - 1) });
    }
  }
  return out;
}

/**
 * Splits E2E items into training and held-out items by meaning representation (every
 * reference of an `mr` lands on the same side), reproducibly for a seed.
 *
 * @example
 * ```ts
 * const { train, heldOut } = splitItems([{ mr: "a", refs: ["x"] }, { mr: "b", refs: ["y"] }], 1, 0);
 * console.log(train.length, heldOut.length); // 1 1
 * ```
 */
export function splitItems<T>(
  items: readonly T[],
  heldOut: number,
  seed: number,
): { train: T[]; heldOut: T[] } {
  if (!Number.isInteger(heldOut) || heldOut < 0 || heldOut > items.length) {
    throw new RangeError(`cannot hold out ${heldOut} of ${items.length} items`);
  }
  const order = shuffled(items.map((_, i) => i), seededRandom(seed));
  const out = new Set(order.slice(0, heldOut));
  return {
    train: items.filter((_, i) => !out.has(i)),
    heldOut: items.filter((_, i) => out.has(i)),
  };
}

/**
 * Groups examples into batches of `batchSize` of similar length: sorted by length (ties
 * broken randomly), cut into consecutive groups, and the groups shuffled. One call is one
 * epoch; every example appears exactly once.
 *
 * @example
 * ```ts
 * import { seededRandom } from "../model/random.ts";
 * const ex = [3, 9, 4, 8].map((n) => ({ prompt: [2], target: Array(n).fill(5) }));
 * const batches = lengthBatches(ex, 2, seededRandom(1));
 * // two batches: the lengths {3, 4} and {8, 9}, in random order
 * ```
 */
export function lengthBatches<T extends Example>(
  examples: readonly T[],
  batchSize: number,
  random: () => number,
): T[][] {
  if (!Number.isInteger(batchSize) || batchSize < 1) {
    throw new RangeError(`batchSize must be an integer >= 1, got ${batchSize}`);
  }
  const keyed = examples.map((e) => ({
    e,
    len: e.prompt.length + e.target.length,
    tie: random(),
  }));
  keyed.sort((a, b) => a.len - b.len || a.tie - b.tie);
  const batches: T[][] = [];
  for (let i = 0; i < keyed.length; i += batchSize) {
    batches.push(keyed.slice(i, i + batchSize).map((k) => k.e));
  }
  return shuffled(batches, random);
}

/**
 * A Fisher-Yates shuffled copy.
 *
 * @example
 * ```ts
 * import { seededRandom } from "../model/random.ts";
 * shuffled([1, 2, 3], seededRandom(1)).length; // 3
 * ```
 */
export function shuffled<T>(items: readonly T[], random: () => number): T[] {
  const a = [...items];
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [a[i], a[j]] = [a[j], a[i]];
  }
  return a;
}
