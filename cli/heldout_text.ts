/**
 * What the demo measures, chosen by the model it got. A model fine-tuned on E2E (the
 * project's tiny checkpoints) is scored as the paper scores its fine-tuned models: E2E
 * meaning representations in, BLEU and ROUGE-L of the outputs. A pretrained model such as
 * facebook/opt-125m was never taught that task, so BLEU on E2E says little about it; its
 * quality under each policy is shown on held-out text instead: each sentence is split
 * after its first third of words, the policies continue the prefix (agreement with the
 * full model's tokens), and the rest of the sentence is scored teacher-forced (NLL).
 *
 * @example
 * ```ts
 * import { splitForContinuation } from "./heldout_text.ts";
 * console.log(splitForContinuation("The Eagle is a cheap coffee shop near Burger King."));
 * // { prompt: "The Eagle is", refs: [" a cheap coffee shop near Burger King."] }
 * ```
 * @module
 */
import { loadE2eCsv } from "../data/datasets.ts";
import type { SweepItem } from "../experiments/sweep.ts";
import { BUNDLED_DIR, E2E_DEVSET, exists } from "../data/bundled.ts";

/**
 * The E2E test split part the bundled models were never trained on (`bundled/data/e2e/`,
 * the same file as `../shared/data/e2e/testset-part2.csv`).
 */
export const E2E_HELD_OUT: string = `${BUNDLED_DIR}data/e2e/testset-part2.csv`;

/** `e2e`: E2E prompts, BLEU/ROUGE-L; `text`: held-out text, NLL and agreement. */
export type DemoMeasures = "e2e" | "text";

/**
 * The measurements for a model: `e2e` for the project's E2E-trained checkpoints (the tiny
 * model, or any folder or id whose name says `e2e`), `text` for every other model (a
 * pretrained OPT from the hub).
 *
 * @example
 * ```ts
 * import { measuresFor } from "./heldout_text.ts";
 * console.log(measuresFor("facebook/opt-125m", false)); // "text"
 * ```
 */
export function measuresFor(model: string, tiny: boolean): DemoMeasures {
  return tiny || /e2e/i.test(model.split("/").filter(Boolean).at(-1) ?? "") ? "e2e" : "text";
}

/**
 * Splits a sentence after its first third of words (at least 3 words) into a prompt and
 * the continuation (with its leading space, as the tokenizer sees it in running text);
 * `undefined` when fewer than 4 words would remain.
 *
 * @example
 * ```ts
 * import { splitForContinuation } from "./heldout_text.ts";
 * console.log(splitForContinuation("Too short."));  // undefined
 * ```
 */
export function splitForContinuation(sentence: string): SweepItem | undefined {
  const words = sentence.trim().split(/\s+/);
  const k = Math.max(3, Math.floor(words.length / 3));
  if (words.length - k < 4) return undefined;
  return { prompt: words.slice(0, k).join(" "), refs: [" " + words.slice(k).join(" ")] };
}

/**
 * Held-out text items: the first reference of each meaning representation of the E2E test
 * split part in `bundled/` (never trained on), else of the E2E devset the repository
 * ships, split by {@linkcode splitForContinuation}.
 *
 * @param count items wanted
 * @param file a CSV with `mr,ref` columns (default: as above)
 * @returns the items and the file they came from
 * @example
 * ```ts
 * import { heldOutTextItems } from "./heldout_text.ts";
 * const { items, file } = await heldOutTextItems(4);
 * console.log(file, items[0]);
 * ```
 */
export async function heldOutTextItems(
  count: number,
  file?: string,
): Promise<{ items: SweepItem[]; file: string }> {
  const path = file ?? (exists(E2E_HELD_OUT) ? E2E_HELD_OUT : E2E_DEVSET);
  const items: SweepItem[] = [];
  const seen = new Set<string>();
  for (const it of await loadE2eCsv(path)) {
    const ref = it.refs[0];
    if (ref === undefined || seen.has(ref)) continue;
    seen.add(ref);
    const item = splitForContinuation(ref);
    if (item) items.push(item);
    if (items.length >= count) break;
  }
  return { items, file: path };
}
