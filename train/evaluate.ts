/**
 * Teacher-forced NLL of target tokens under a policy (docs/DESIGN.md §8): the same per-column layer
 * sets as inference, scored by a training engine (or directly by the CPU reference).
 *
 * @module
 */
import type { Example } from "./batch.ts";
import { collate } from "./batch.ts";
import { seededRandom } from "../model/random.ts";
import type { TrainEngine } from "./engine.ts";
import { planExamples, type PolicySource } from "./policies.ts";

/** Mean NLL of a set of examples under one policy. */
export interface TrainNllResult {
  /** The policy's command-line form. */
  policy: string;
  /** Mean NLL per target token (nats). */
  nll: number;
  /** `exp(nll)`. */
  perplexity: number;
  /** Target tokens scored. */
  tokens: number;
}

/**
 * Scores examples under a policy source in batches of `batchSize` (random sources draw
 * their per-example policies from a fixed seed, so repeated evaluations are comparable).
 *
 * @example
 * ```ts
 * import { evaluateNll } from "./evaluate.ts";
 * import type { TrainEngine } from "./engine.ts";
 * import { parsePolicySource } from "./policies.ts";
 * declare const engine: TrainEngine; // e.g. a CpuEngine over a model's parameters
 * const heldOut = [{ prompt: [2, 5, 6], target: [7, 2] }];
 * const r = await evaluateNll(engine, heldOut, parsePolicySource("full"), 12, 1);
 * console.log(r.nll, r.perplexity);
 * ```
 */
export async function evaluateNll(
  engine: Pick<TrainEngine, "score">,
  examples: readonly Example[],
  source: PolicySource,
  layers: number,
  padTokenId: number,
  batchSize = 16,
  name?: string,
): Promise<TrainNllResult> {
  const planned = planExamples(examples, source, layers, seededRandom(12345));
  // sort by length so batches carry little padding; the mean does not depend on order
  const order = planned.map((_, i) => i).sort((a, b) =>
    planned[a].prompt.length + planned[a].target.length -
    (planned[b].prompt.length + planned[b].target.length)
  );
  let sum = 0, tokens = 0;
  for (let i = 0; i < order.length; i += batchSize) {
    const batch = collate(order.slice(i, i + batchSize).map((k) => planned[k]), layers, padTokenId);
    const nll = await engine.score(batch);
    for (const x of nll) sum += x;
    tokens += nll.length;
  }
  const nll = tokens ? sum / tokens : NaN;
  return {
    policy: name ?? (source.kind === "fixed" ? String(source.policy) : "random"),
    nll,
    perplexity: Math.exp(nll),
    tokens,
  };
}
