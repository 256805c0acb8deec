/**
 * The one error type of the checkpoint layer. Every failure to read, validate, resolve or
 * download a checkpoint throws a {@linkcode CheckpointError} whose message names the file,
 * tensor or config field at fault, and whose fields carry the same facts for code.
 *
 * @example
 * ```ts
 * import { CheckpointError } from "./errors.ts";
 * try {
 *   throw new CheckpointError("bad", { file: "model.safetensors", kind: "format" });
 * } catch (e) {
 *   if (e instanceof CheckpointError) console.log(e.kind, e.file);
 * }
 * ```
 *
 * @module
 */

/**
 * What went wrong, coarsely, for code that reacts to a failure (or counts them):
 * - `io`: a file could not be read or written (missing, unreadable, short read);
 * - `format`: a safetensors, PyTorch `.bin` or JSON file is malformed (header, offsets,
 *   truncation, ZIP records, a pickle opcode or global outside the allowed set);
 * - `dtype`: a tensor has a dtype this toolkit does not read;
 * - `config`: `config.json` is missing a field, has a wrong type or an unsupported value;
 * - `missing-tensor`: a tensor the config requires is absent;
 * - `shape`: a tensor's shape disagrees with the config;
 * - `index`: the sharded index (`model.safetensors.index.json` or
 *   `pytorch_model.bin.index.json`) is wrong or names a missing shard;
 * - `not-found`: a model directory, hub repository or required file does not exist;
 * - `offline`: the model is not cached and network access is off;
 * - `network`: a download failed (timeout, HTTP error, connection refused, short body);
 * - `unsupported`: a valid checkpoint in a form this toolkit does not read (e.g. a
 *   big-endian PyTorch file).
 */
export type CheckpointErrorKind =
  | "io"
  | "format"
  | "dtype"
  | "config"
  | "missing-tensor"
  | "shape"
  | "index"
  | "not-found"
  | "offline"
  | "network"
  | "unsupported";

/** Facts attached to a {@linkcode CheckpointError}. */
export interface CheckpointErrorDetails {
  /** The file (path or URL) at fault. */
  file: string;
  /** The coarse category. */
  kind: CheckpointErrorKind;
  /** The tensor at fault, by the name it has in the file. */
  tensor?: string;
  /** The config or header field at fault. */
  field?: string;
  /** The underlying error, if any. */
  cause?: unknown;
}

/**
 * A failure to read, validate, find or download a checkpoint. The message is complete and
 * names the file (and tensor or field) at fault.
 *
 * @example
 * ```ts
 * import { CheckpointError } from "./errors.ts";
 * const e = new CheckpointError("missing tensor decoder.embed_tokens.weight", {
 *   file: "/models/x/model.safetensors",
 *   kind: "missing-tensor",
 *   tensor: "decoder.embed_tokens.weight",
 * });
 * console.log(e.message, e.tensor);
 * ```
 */
export class CheckpointError extends Error {
  /** The file (path or URL) at fault. */
  readonly file: string;
  /** The coarse category of the failure. */
  readonly kind: CheckpointErrorKind;
  /** The tensor at fault, when one is. */
  readonly tensor?: string;
  /** The config or header field at fault, when one is. */
  readonly field?: string;

  /** Makes an error; `message` should already name the file and tensor or field. */
  constructor(message: string, details: CheckpointErrorDetails) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.name = "CheckpointError";
    this.file = details.file;
    this.kind = details.kind;
    if (details.tensor !== undefined) this.tensor = details.tensor;
    if (details.field !== undefined) this.field = details.field;
  }

  /** The same as {@linkcode CheckpointError.file}: the path or URL at fault. */
  get path(): string {
    return this.file;
  }
}
