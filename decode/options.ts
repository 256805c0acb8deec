/**
 * Validation of the library's public generation arguments, with the command line's words:
 * a number that must be whole is reported as "`what` must be a whole number from MIN to
 * MAX, got VALUE" (as `cli/command.ts`'s `parseInteger` says it for a flag), so
 * `logitsTopK: NaN` or `seed: 1.5` fail with one clear line instead of recording nothing or
 * acting as another seed, and `generate(model, [42])` names the prompt instead of
 * "p is not iterable".
 *
 * @example
 * ```ts
 * import { wholeNumber } from "./options.ts";
 * wholeNumber(5, "logitsTopK", 1, 50272); // 5
 * ```
 * @module
 */
import type { SamplingOptions } from "../backend/types.ts";

/**
 * A whole number within `[min, max]`, else a `RangeError` naming `what`.
 *
 * @param value the argument
 * @param what its name, for the message
 * @param min smallest allowed
 * @param max largest allowed
 * @returns the value
 * @example
 * ```ts
 * import { wholeNumber } from "./options.ts";
 * wholeNumber(0, "seed", 0, 2 ** 32 - 1); // 0
 * ```
 */
export function wholeNumber(value: unknown, what: string, min: number, max: number): number {
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < min || value > max) {
    throw new RangeError(
      `${what} must be a whole number from ${min} to ${max}, got ${describe(value)}`,
    );
  }
  return value;
}

function describe(v: unknown): string {
  if (typeof v === "string") return JSON.stringify(v);
  if (typeof v === "number" || typeof v === "boolean" || v == null) return String(v);
  if (Array.isArray(v)) return "an array";
  return typeof v;
}

/** The arguments of `generate` that {@linkcode checkGenerateArguments} checks. */
export interface GenerateArguments {
  /** Prompts: strings or arrays of token ids. */
  prompts: unknown;
  /** Tokens to generate. */
  maxNewTokens?: unknown;
  /** Rows per batch. */
  batchSize?: unknown;
  /** Top-k logits to record per step. */
  logitsTopK?: unknown;
  /** Tokens per readback chunk. */
  chunkSize?: unknown;
  /** Sampling options (the seed is checked here). */
  sampling?: SamplingOptions;
}

/**
 * Checks `generate`'s prompts and options before anything runs (see the module docs).
 *
 * @param args the prompts and options
 * @param vocabSize the model's vocabulary rows (bound of `logitsTopK`)
 * @throws RangeError or TypeError naming the argument
 * @example
 * ```ts
 * import { checkGenerateArguments } from "./options.ts";
 * checkGenerateArguments({ prompts: ["hi"], logitsTopK: 5 }, 50272);
 * ```
 */
export function checkGenerateArguments(args: GenerateArguments, vocabSize: number): void {
  const { prompts } = args;
  if (!Array.isArray(prompts)) {
    throw new TypeError(
      `prompts must be an array of strings or token-id arrays, got ${describe(prompts)}`,
    );
  }
  prompts.forEach((p, i) => {
    if (typeof p === "string") return;
    if (!Array.isArray(p) && !ArrayBuffer.isView(p)) {
      throw new TypeError(
        `prompt ${i} is ${describe(p)}: each prompt must be a string or an array of token ids ` +
          `(e.g. generate(model, [[2, 42]]), not generate(model, [42]))`,
      );
    }
  });
  if (args.maxNewTokens !== undefined) wholeNumber(args.maxNewTokens, "maxNewTokens", 1, 1_000_000);
  if (args.batchSize !== undefined) wholeNumber(args.batchSize, "batchSize", 1, 1_000_000);
  if (args.logitsTopK !== undefined) wholeNumber(args.logitsTopK, "logitsTopK", 1, vocabSize);
  if (args.chunkSize !== undefined) wholeNumber(args.chunkSize, "chunkSize", 1, 1_000_000);
  const seed = (args.sampling as { seed?: unknown } | undefined)?.seed;
  if (seed !== undefined) wholeNumber(seed, "sampling.seed", 0, 2 ** 32 - 1);
}
