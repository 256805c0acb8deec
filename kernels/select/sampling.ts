/**
 * What the next-token selection computes: greedy argmax, or a draw from the temperature-,
 * top-k- and top-p-filtered softmax with a counter-based seed. The selection kernel
 * (`mod.ts`, `wgsl.ts`) and its CPU reference (`backend/sampling.ts`) both take these options;
 * the backend contract (`backend/types.ts`) re-exports them.
 *
 * @example
 * ```ts
 * import type { SamplingOptions } from "./sampling.ts";
 * const nucleus: SamplingOptions = { temperature: 0.8, topP: 0.9, seed: 7 };
 * console.log(nucleus.topK ?? 0); // 0: all tokens
 * ```
 *
 * @module
 */

/** How the next token is chosen. `temperature` 0 (the default) is greedy argmax. */
export interface SamplingOptions {
  /** 0 or absent: greedy. Otherwise logits are divided by it before softmax. */
  temperature?: number;
  /** Keep only the `topK` most likely tokens (0 or absent: all). */
  topK?: number;
  /** Keep the smallest set whose probability reaches `topP` (1 or absent: all). */
  topP?: number;
  /** Seed of the counter-based generator (see `backend/sampling.ts`); default 0. */
  seed?: number;
}
