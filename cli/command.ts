/**
 * The small command framework of the command line: each command declares its options with
 * a description, gets `--help` for free, and is parsed strictly by the `parseArgs` of
 * `std/cli.ts` (local, on `node:util`; not `jsr:@std/cli`'s API).
 *
 * @module
 */
import { parseArgs } from "../std/cli.ts";

/** One option of a command. */
export interface OptionSpec {
  /** `string` options take a value; `boolean` ones are flags (`--no-x` negates). */
  type: "string" | "boolean";
  /** One line for `--help`. */
  description: string;
  /** Repeatable (`--prompt a --prompt b`). */
  multiple?: boolean;
  /** Shown in `--help` as the value's name. */
  value?: string;
  /** A default, shown in `--help`. */
  default?: string | boolean;
}

/** A subcommand of `skipdecode`. */
export interface Command {
  /** Its name on the command line. */
  name: string;
  /** One line for the command list. */
  summary: string;
  /** Its options (`help` is added). */
  options: Record<string, OptionSpec>;
  /** More text for `--help`, after the options (e.g. the policies and their keys). */
  details?: () => string;
  /** Runs with parsed values; returns the exit code. */
  run(values: Record<string, unknown>, positionals: string[]): Promise<number>;
}

/** An error in how the command line was used (exit code 2, no stack trace). */
export class UsageError extends Error {
  /** Makes a usage error. */
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

/**
 * The `--help` text of a command.
 *
 * @example
 * ```ts
 * console.log(helpText({ name: "x", summary: "does x", options: {}, run: () => Promise.resolve(0) }));
 * ```
 */
export function helpText(cmd: Command): string {
  const lines = [`skipdecode ${cmd.name}: ${cmd.summary}`, "", "Options:"];
  const entries = Object.entries(cmd.options);
  entries.push(["help", { type: "boolean", description: "show this help" }]);
  for (const [name, o] of entries) {
    const flag = o.type === "string" ? `--${name} ${o.value ?? "VALUE"}` : `--${name}`;
    const extra = [
      o.multiple ? "repeatable" : "",
      o.default !== undefined ? `default: ${o.default}` : "",
    ].filter(Boolean).join("; ");
    lines.push(`  ${flag.padEnd(30)} ${o.description}${extra ? ` (${extra})` : ""}`);
  }
  if (cmd.details) lines.push("", cmd.details());
  return lines.join("\n");
}

/**
 * Parses `args` for `cmd`, printing help for `--help`, and runs it.
 *
 * @example
 * ```ts
 * declare const cmd: Command; // e.g. one of cli/main.ts's commands
 * const code = await runCommand(cmd, ["--help"]);
 * ```
 */
export async function runCommand(cmd: Command, args: string[]): Promise<number> {
  const spec: Record<string, { type: "string" | "boolean"; multiple?: boolean }> = {
    help: { type: "boolean" },
  };
  for (const [name, o] of Object.entries(cmd.options)) {
    spec[name] = { type: o.type, ...(o.multiple ? { multiple: true } : {}) };
  }
  let parsed;
  try {
    parsed = parseArgs(joinNegativeValues(args, spec), spec);
  } catch (e) {
    throw new UsageError(`${(e as Error).message} (see skipdecode ${cmd.name} --help)`);
  }
  const values = parsed.values as Record<string, unknown>;
  if (values.help) {
    console.log(helpText(cmd));
    return 0;
  }
  for (const [name, o] of Object.entries(cmd.options)) {
    if (values[name] === undefined && o.default !== undefined) values[name] = o.default;
  }
  return await cmd.run(values, parsed.positionals);
}

/**
 * `--n -1` is one option with the value `-1` (node's parser calls it ambiguous): joined as
 * `--n=-1`, so the option's own check names it.
 */
function joinNegativeValues(
  args: string[],
  spec: Record<string, { type: "string" | "boolean" }>,
): string[] {
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    const next = args[i + 1];
    if (
      a.startsWith("--") && !a.includes("=") && spec[a.slice(2)]?.type === "string" &&
      next !== undefined && /^-[0-9.]/.test(next)
    ) {
      out.push(`${a}=${next}`);
      i++;
    } else out.push(a);
  }
  return out;
}

const INTEGER = /^[+-]?[0-9]+$/;
const DECIMAL = /^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$/;

/**
 * Parses a whole number written in decimal digits (no `0x4`, `1e9`, `4.0`, blanks), in
 * `[min, max]`, with an error naming `what`.
 *
 * @param text the text
 * @param what the option or field, for the message (e.g. `"--max-new-tokens"`)
 * @param min smallest allowed value
 * @param max largest allowed value
 * @returns the number
 * @throws UsageError naming `what`, the range and the text
 * @example
 * ```ts
 * parseInteger("12", "--layers", 1, 1024); // 12
 * ```
 */
export function parseInteger(text: string, what: string, min: number, max: number): number {
  const n = INTEGER.test(text) ? Number(text) : NaN;
  if (!Number.isSafeInteger(n) || n < min || n > max) {
    throw new UsageError(`${what} must be a whole number from ${min} to ${max}, got "${text}"`);
  }
  return n;
}

/** Range of {@linkcode parseDecimal}: inclusive bounds, or exclusive ones. */
export interface NumberRange {
  /** Smallest allowed value (inclusive). */
  min?: number;
  /** Values must be above this (exclusive). */
  above?: number;
  /** Largest allowed value (inclusive). */
  max?: number;
}

function rangeText(r: NumberRange): string {
  const lo = r.above !== undefined ? `> ${r.above}` : r.min !== undefined ? `>= ${r.min}` : "";
  const hi = r.max !== undefined ? `<= ${r.max}` : "";
  return [lo, hi].filter(Boolean).join(" and ");
}

/**
 * Parses a finite decimal number (`0.7`, `1e-4`; no `0x`, `Infinity`, blanks) in a range,
 * with an error naming `what`.
 *
 * @param text the text
 * @param what the option or field, for the message
 * @param range bounds
 * @returns the number
 * @throws UsageError naming `what`, the range and the text
 * @example
 * ```ts
 * parseDecimal("0.9", "--top-p", { above: 0, max: 1 }); // 0.9
 * ```
 */
export function parseDecimal(text: string, what: string, range: NumberRange = {}): number {
  const n = DECIMAL.test(text) ? Number(text) : NaN;
  const ok = Number.isFinite(n) && (range.min === undefined || n >= range.min) &&
    (range.above === undefined || n > range.above) && (range.max === undefined || n <= range.max);
  if (!ok) {
    const r = rangeText(range);
    throw new UsageError(`${what} must be a number${r ? ` ${r}` : ""}, got "${text}"`);
  }
  return n;
}

/**
 * Reads an integer option (decimal digits only) in `[min, max]`, naming it in the error.
 *
 * @example
 * ```ts
 * intOption({ n: "3" }, "n", 1); // 3
 * ```
 */
export function intOption(
  values: Record<string, unknown>,
  name: string,
  min: number,
  max: number = 1_000_000,
): number | undefined {
  const v = values[name];
  if (v === undefined) return undefined;
  return parseInteger(String(v), `--${name}`, min, max);
}

/**
 * Reads a number option in a range, naming it in the error.
 *
 * @example
 * ```ts
 * numberOption({ t: "0.7" }, "t", { min: 0 }); // 0.7
 * ```
 */
export function numberOption(
  values: Record<string, unknown>,
  name: string,
  range: NumberRange = {},
): number | undefined {
  const v = values[name];
  if (v === undefined) return undefined;
  return parseDecimal(String(v), `--${name}`, range);
}

/**
 * Reads a required string option.
 *
 * @example
 * ```ts
 * requireString({ model: "m" }, "model"); // "m"
 * ```
 */
export function requireString(values: Record<string, unknown>, name: string): string {
  const v = values[name];
  if (typeof v !== "string" || v === "") throw new UsageError(`--${name} is required`);
  return v;
}

/**
 * Reads a `--backend` value: `auto`, `cpu` or `webgpu`.
 *
 * @example
 * ```ts
 * backendOption("cpu"); // "cpu"
 * ```
 */
export function backendOption(v: unknown): "auto" | "cpu" | "webgpu" {
  if (v !== "auto" && v !== "cpu" && v !== "webgpu") {
    throw new UsageError(`--backend must be auto, cpu or webgpu, got "${String(v)}"`);
  }
  return v;
}

/**
 * Reads an optional `--prompt-mode` value: `full`, `decay` or absent.
 *
 * @example
 * ```ts
 * promptModeOption("decay"); // "decay"
 * ```
 */
export function promptModeOption(v: unknown): "full" | "decay" | undefined {
  if (v === undefined) return undefined;
  if (v !== "full" && v !== "decay") {
    throw new UsageError(`--prompt-mode must be full or decay, got "${String(v)}"`);
  }
  return v;
}

/** Largest `--batch-size` of generation commands (rows of one column-wise batch). */
export const MAX_BATCH = 1024;

/** Largest `--max-new-tokens` any command takes before the model's own limit applies. */
export const MAX_NEW_TOKENS = 65536;

/**
 * Checks `--max-new-tokens` against the model's position table for the longest prompt,
 * before any generation runs.
 *
 * @param model the loaded model (its `config.maxPositionEmbeddings`)
 * @param maxNewTokens the option's value
 * @param promptLengths tokens of each prompt (BOS included)
 * @throws UsageError naming `--max-new-tokens` and the largest value the model allows
 * @example
 * ```ts
 * import { checkLength } from "./command.ts";
 * const model = { config: { maxPositionEmbeddings: 64 } };
 * checkLength(model, 32, [5, 7]); // fits: 7 + 32 - 1 <= 64
 * ```
 */
export function checkLength(
  model: { config: { maxPositionEmbeddings: number } },
  maxNewTokens: number,
  promptLengths: readonly number[],
): void {
  const P = Math.max(1, ...promptLengths);
  const positions = model.config.maxPositionEmbeddings;
  if (P > positions) {
    throw new UsageError(
      `the longest prompt has ${P} tokens, more than the model's ${positions} positions ` +
        `(max_position_embeddings): shorten it`,
    );
  }
  if (P + maxNewTokens - 1 > positions) {
    throw new UsageError(
      `--max-new-tokens ${maxNewTokens} is too large: the longest prompt has ${P} tokens and ` +
        `the model has ${positions} positions (max_position_embeddings), so at most ` +
        `${Math.max(0, positions - P + 1)} new tokens fit`,
    );
  }
}

/** The most bytes one token of OPT's byte-level BPE covers (its longest vocabulary entry). */
export const MAX_TOKEN_BYTES = 128;

/**
 * Token counts of prompts, refusing before tokenizing any prompt too long to fit the
 * model's positions even at {@linkcode MAX_TOKEN_BYTES} bytes per token (a 10 MB line used
 * to tokenize for a minute before anything was said).
 *
 * @param model the model (positions and tokenizer)
 * @param prompts the prompts
 * @returns each prompt's token count
 * @throws UsageError naming the prompt
 * @example
 * ```ts
 * // promptTokenCounts(model, ["name[A]\n"]); // [5]
 * ```
 */
export function promptTokenCounts(
  model: {
    config: { maxPositionEmbeddings: number };
    tokenizer: { encode(text: string): number[] };
  },
  prompts: readonly string[],
): number[] {
  const positions = model.config.maxPositionEmbeddings;
  const limit = positions * MAX_TOKEN_BYTES;
  return prompts.map((p, i) => {
    // UTF-16 length bounds UTF-8 bytes from below for every text: check it first, cheaply
    if (p.length > limit || new TextEncoder().encode(p).length > limit) {
      throw new UsageError(
        `prompt ${i + 1} is ${p.length} characters: more than the model's ${positions} ` +
          `positions hold even at ${MAX_TOKEN_BYTES} bytes per token; shorten it`,
      );
    }
    return model.tokenizer.encode(p).length;
  });
}

/**
 * Reads a `--png` flag for a command whose task may or may not run Chromium: absent means
 * "render when this process may run `chromium`" (`deno task demo` may, `deno task
 * skipdecode` may not, so it writes no PNG and prints no refusal); `--png` without that
 * permission is an error before any work.
 *
 * @param v the flag's value (`true`, `false` or `undefined`)
 * @returns `"auto"` (render when Chromium is installed) or `false`
 * @throws UsageError when `--png` is given but running Chromium is not allowed
 * @example
 * ```ts
 * pngOption(false); // false
 * ```
 */
export function pngOption(v: unknown): "auto" | false {
  if (v === false) return false;
  let allowed = false;
  try {
    allowed = Deno.permissions.querySync({ name: "run", command: "chromium" }).state === "granted";
  } catch { /* permissions API unavailable: treat as not allowed */ }
  if (allowed) return "auto";
  if (v === true) {
    throw new UsageError(
      "--png needs permission to run chromium, which this task does not have " +
        "(`deno task demo` has it; or run with --allow-run=chromium)",
    );
  }
  return false;
}

/** What the `deno.json` tasks may touch, for messages about refused permissions. */
export const TASK_SCOPE =
  "the tasks read the repository, ../shared and ~/.cache/huggingface and write out/, " +
  "reports/ and .cache/; for other places grant just those, e.g. " +
  "`deno run --allow-read=.,/path/to/model --allow-env --allow-write=./out cli/main.ts ...`";

/**
 * The one-line message and exit code of an error that ended a command: 2 for usage errors,
 * bad input (errors named `...Error` by this project, `RangeError`) and refused
 * permissions, 1 for anything unexpected. Line breaks are folded so the message is one line.
 *
 * @param e what was thrown
 * @returns the line (without `error: `) and the exit code
 * @example
 * ```ts
 * errorReport(new UsageError("--n must be a whole number")); // { message: "--n ...", code: 2 }
 * ```
 */
export function errorReport(e: unknown): { message: string; code: number } {
  const err = e as Error;
  let message = String(err?.message ?? e).trim();
  const denied = err instanceof Deno.errors.NotCapable ||
    err instanceof Deno.errors.PermissionDenied;
  if (denied) {
    message = `this task is not allowed to do that: ${
      message.replace(/,? run again with[^\n]*/i, "")
    } (${TASK_SCOPE})`;
  }
  const name = String(err?.name ?? "");
  const expected = denied || e instanceof UsageError || e instanceof RangeError ||
    (/Error$/.test(name) && name !== "Error" && name !== "TypeError");
  return { message: message.split(/\s*\n+\s*/).join(" "), code: expected ? 2 : 1 };
}

/**
 * Whether `SKIPDECODE_DEBUG` asks for stack traces (false without permission to read it).
 *
 * @example
 * ```ts
 * if (debug()) console.error(new Error().stack);
 * ```
 */
export function debug(): boolean {
  try {
    return Boolean(Deno.env.get("SKIPDECODE_DEBUG"));
  } catch {
    return false;
  }
}
