/**
 * The one error type of the tokenizer layer: {@linkcode TokenizerError}.
 *
 * @example
 * ```ts
 * import { TokenizerError } from "./errors.ts";
 * const e = new TokenizerError("no tokenizer in /m", { path: "/m" });
 * console.log(e.name, e.path);
 * ```
 *
 * @module
 */

/** Facts attached to a {@linkcode TokenizerError}. */
export interface TokenizerErrorDetails {
  /** The file or directory at fault, when there is one. */
  path?: string;
  /** The underlying error, if any. */
  cause?: unknown;
}

/**
 * A failure to find, read or parse tokenizer files, or a bad argument to a tokenizer
 * method. The message is complete: it names the file, directory, token or id at fault.
 *
 * @example
 * ```ts
 * import { TokenizerError } from "./errors.ts";
 * try {
 *   throw new TokenizerError("malformed JSON in /m/vocab.json", { path: "/m/vocab.json" });
 * } catch (e) {
 *   if (e instanceof TokenizerError) console.log(e.path);
 * }
 * ```
 */
export class TokenizerError extends Error {
  /** The file or directory at fault, when there is one. */
  readonly path?: string;

  /** Makes an error; `message` should already name what is at fault. */
  constructor(message: string, details: TokenizerErrorDetails = {}) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.name = "TokenizerError";
    if (details.path !== undefined) this.path = details.path;
  }
}
