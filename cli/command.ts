/**
 * The small command framework of the command line: each command declares its options with
 * a description, gets `--help` for free, and is parsed strictly by the `parseArgs` of
 * `std/cli.ts` (local, on `node:util`; not `jsr:@std/cli`'s API).
 *
 * @module
 */
import { parseArgs } from "../std/cli.ts";
import { isBuiltinName } from "../schedule/registry.ts";

/**
 * The kind of an option's value, converted once by {@linkcode runCommand} before `run`:
 * `int` (decimal digits in `[min, max]`, a number), `decimal` (a finite number in `range`),
 * `enum` (one of `choices`), `path` (a file or folder the command reads or writes: a string,
 * collected by the permission launcher), `text` (any string), `flag` (a boolean; `--no-x`
 * negates).
 */
export type OptionKind = "int" | "decimal" | "enum" | "path" | "text" | "flag";

/** One option of a command. */
export interface OptionSpec {
  /**
   * The value's kind (default: `flag` when `type` is `"boolean"`, else `text`). `run` gets
   * numbers for `int`/`decimal`, strings otherwise, arrays of them when `multiple`.
   */
  kind?: OptionKind;
  /**
   * `string` options take a value; `boolean` ones are flags. Derived from `kind` when
   * absent (the older declarations give only this).
   */
  type?: "string" | "boolean";
  /** One line for `--help`. */
  description: string;
  /** Repeatable (`--prompt a --prompt b`). */
  multiple?: boolean;
  /** Shown in `--help` as the value's name. */
  value?: string;
  /** A default, shown in `--help` (converted like a given value). */
  default?: string | number | boolean;
  /** `int`: smallest allowed value (default 0). */
  min?: number;
  /** `int`: largest allowed value (default 1,000,000). */
  max?: number;
  /** `decimal`: the allowed range. */
  range?: NumberRange;
  /** `enum`: the allowed values. */
  choices?: readonly string[];
  /** `path`: whether the command writes there (the output folder) rather than reads it. */
  writes?: boolean;
  /** Other words this option's value may take besides its kind (e.g. `auto` for an int). */
  also?: readonly string[];
}

/**
 * The kind of an option spec, with the older `type`-only declarations mapped.
 *
 * @example
 * ```ts
 * optionKind({ type: "boolean", description: "print JSON" }); // "flag"
 * ```
 */
export function optionKind(o: OptionSpec): OptionKind {
  return o.kind ?? (o.type === "boolean" ? "flag" : "text");
}

/** A subcommand of `skipdecode`. */
export interface Command {
  /** Its name on the command line. */
  name: string;
  /** One line for the command list. */
  summary: string;
  /** Its options (`help` is added). */
  options: Record<string, OptionSpec>;
  /**
   * The arguments it takes without an option name, e.g. `["DIR"]` for `merge DIR` (default:
   * none; any such argument is then an error that suggests the option it may belong to).
   */
  operands?: readonly string[];
  /** How it is run, for help and messages (default `skipdecode NAME`). */
  invocation?: string;
  /** More text for `--help`, after the options (e.g. the policies and their keys). */
  details?: () => string;
  /** Runs with converted values (see {@linkcode OptionKind}); returns the exit code. */
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
  const usage = [invocation(cmd), ...(cmd.operands ?? []), "[options]"].join(" ");
  const lines = [`${invocation(cmd)}: ${cmd.summary}`, "", `Usage: ${usage}`, "", "Options:"];
  const entries = Object.entries(cmd.options);
  entries.push(["help", { kind: "flag", description: "show this help" }]);
  for (const [name, o] of entries) {
    const kind = optionKind(o);
    const flag = kind === "flag" ? `--${name}` : `--${name} ${o.value ?? valueName(o)}`;
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
  const { values, positionals } = parseCommandArgs(cmd, args);
  if (values.help) {
    console.log(helpText(cmd));
    return 0;
  }
  return await cmd.run(values, positionals);
}

/**
 * Parses and converts `args` for `cmd` without running it: every option converted by its
 * {@linkcode OptionKind} (defaults included), unknown options and stray arguments refused
 * with a suggestion. The permission launcher (`cli/launch.ts`) reads the `path` options
 * from it.
 *
 * @param cmd the command
 * @param args its arguments (after the command's name)
 * @returns the converted values and the command's operands
 * @throws UsageError one line naming the option or argument at fault
 * @example
 * ```ts
 * import { parseCommandArgs } from "./command.ts";
 * const cmd = {
 *   name: "x", summary: "x", run: () => Promise.resolve(0),
 *   options: { n: { kind: "int", min: 1, max: 9, description: "n" } } as const,
 * };
 * parseCommandArgs(cmd, ["--n", "3"]).values.n; // 3
 * ```
 */
export function parseCommandArgs(
  cmd: Command,
  args: string[],
): { values: Record<string, unknown>; positionals: string[] } {
  const spec: Record<string, { type: "string" | "boolean"; multiple?: boolean }> = {
    help: { type: "boolean" },
  };
  for (const [name, o] of Object.entries(cmd.options)) {
    const type = optionKind(o) === "flag" ? "boolean" : "string";
    spec[name] = { type, ...(o.multiple ? { multiple: true } : {}) };
  }
  checkOptionNames(cmd, args, spec);
  let parsed;
  try {
    parsed = parseArgs(joinNegativeValues(args, spec), spec);
  } catch (e) {
    throw new UsageError(`${(e as Error).message} (see ${invocation(cmd)} --help)`);
  }
  const values = parsed.values as Record<string, unknown>;
  const operands = cmd.operands ?? [];
  if (!values.help && parsed.positionals.length > operands.length) {
    const extra = parsed.positionals[operands.length];
    throw new UsageError(strayArgumentMessage(cmd, extra));
  }
  if (values.help) return { values, positionals: parsed.positionals };
  for (const [name, o] of Object.entries(cmd.options)) {
    if (values[name] === undefined && o.default !== undefined) {
      values[name] = optionKind(o) === "flag" || typeof o.default !== "string" ? o.default : (
        o.multiple ? [o.default] : o.default
      );
    }
    const v = values[name];
    if (v === undefined) continue;
    values[name] = Array.isArray(v)
      ? v.map((x) => convertValue(name, o, x))
      : convertValue(name, o, v);
  }
  return { values, positionals: parsed.positionals };
}

/** One value of option `name` converted by its kind (numbers are checked for range). */
function convertValue(name: string, o: OptionSpec, v: unknown): unknown {
  const kind = optionKind(o);
  if (kind === "flag" || typeof v !== "string") return v;
  if (o.also?.includes(v)) return v;
  const alsoText = o.also?.length ? ` or ${o.also.join(" or ")}` : "";
  switch (kind) {
    case "int":
      try {
        return parseInteger(v, `--${name}`, o.min ?? 0, o.max ?? 1_000_000);
      } catch (e) {
        if (!alsoText) throw e;
        throw new UsageError(
          `--${name} must be a whole number from ${o.min ?? 0} to ${o.max ?? 1_000_000}` +
            `${alsoText}, got "${v}"`,
        );
      }
    case "decimal":
      return parseDecimal(v, `--${name}`, o.range ?? {});
    case "enum":
      if (!o.choices?.includes(v)) {
        throw new UsageError(`--${name} must be ${orList(o.choices ?? [])}, got "${v}"`);
      }
      return v;
    default:
      if (kind === "path" && v === "") throw new UsageError(`--${name} must not be empty`);
      return v;
  }
}

/** How `cmd` is run: `skipdecode NAME` unless it says otherwise. */
function invocation(cmd: Command): string {
  return cmd.invocation ?? `skipdecode ${cmd.name}`;
}

/** `a, b or c`. */
function orList(xs: readonly string[]): string {
  return xs.length <= 1 ? xs.join("") : `${xs.slice(0, -1).join(", ")} or ${xs.at(-1)}`;
}

/** The value name `--help` shows for an option without one. */
function valueName(o: OptionSpec): string {
  switch (optionKind(o)) {
    case "int":
      return "N";
    case "decimal":
      return "X";
    case "enum":
      return (o.choices ?? []).join("|");
    case "path":
      return "PATH";
    default:
      return "VALUE";
  }
}

/**
 * Refuses an option name the command does not have, before the parser does (its message
 * talks of positional arguments), suggesting the nearest one.
 */
function checkOptionNames(
  cmd: Command,
  args: string[],
  spec: Record<string, { type: "string" | "boolean" }>,
): void {
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a === "--") return;
    if (!a.startsWith("-") || a === "-" || /^-[0-9.]/.test(a)) continue;
    const name = a.replace(/^--?/, "").split("=")[0];
    const known = spec[name] ??
      (name.startsWith("no-") && spec[name.slice(3)]?.type === "boolean"
        ? spec[name.slice(3)]
        : undefined);
    if (known && a.startsWith("--")) {
      if (known.type === "string" && !a.includes("=")) i++; // skip its value
      continue;
    }
    const near = nearestName(name, Object.keys(spec));
    throw new UsageError(
      `unknown option ${a.split("=")[0]}${near ? `; did you mean --${near}?` : ""} ` +
        `(see ${invocation(cmd)} --help)`,
    );
  }
}

/**
 * The name among `names` closest to `typed`: within a small edit distance, or one whose
 * words start with the typed words in order (`max-tokens` -> `max-new-tokens`); `undefined`
 * when nothing is near.
 *
 * @param typed what was typed (without dashes)
 * @param names the known names
 * @returns the suggestion, if any
 * @example
 * ```ts
 * nearestName("polcy", ["policy", "model"]); // "policy"
 * nearestName("max-tokens", ["max-new-tokens", "model"]); // "max-new-tokens"
 * ```
 */
export function nearestName(typed: string, names: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestScore = Infinity;
  const limit = Math.max(1, Math.min(3, Math.floor(typed.length / 3)));
  for (const n of names) {
    const d = editDistance(typed, n);
    const score = d <= limit ? d : wordsMatch(typed, n) ? limit + 0.5 : Infinity;
    if (score < bestScore) {
      bestScore = score;
      best = n;
    }
  }
  return best;
}

/** Whether each dash-separated word of `typed` starts a word of `name`, in order. */
function wordsMatch(typed: string, name: string): boolean {
  const t = typed.split("-").filter(Boolean);
  const w = name.split("-");
  if (t.length === 0 || typed.length < 2) return false;
  let j = 0;
  for (const word of t) {
    while (j < w.length && !w[j].startsWith(word)) j++;
    if (j === w.length) return false;
    j++;
  }
  return true;
}

/** Levenshtein distance (insertions, deletions, substitutions; swaps count 1). */
function editDistance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => [i, ...new Array(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0][j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      d[i][j] = Math.min(
        d[i - 1][j] + 1,
        d[i][j - 1] + 1,
        d[i - 1][j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1),
      );
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        d[i][j] = Math.min(d[i][j], d[i - 2][j - 2] + 1);
      }
    }
  }
  return d[a.length][b.length];
}

/**
 * The message for an argument no option claims: which option it probably belongs to (a
 * policy spec to `--policy`, a folder or hub id to `--model`, a file to the command's
 * file option), or a reminder that values follow their option's name.
 */
function strayArgumentMessage(cmd: Command, arg: string): string {
  const shown = arg.length > 60 ? `${arg.slice(0, 57)}...` : arg;
  const guess = guessOption(cmd, arg);
  const q = /^[A-Za-z0-9_./:=,@+-]+$/.test(shown) ? shown : JSON.stringify(shown);
  return `unexpected argument '${shown}'; ` +
    (guess
      ? `did you mean --${guess} ${q}?`
      : `options take their value as --NAME VALUE (see ${invocation(cmd)} --help)`);
}

function guessOption(cmd: Command, arg: string): string | undefined {
  const has = (n: string) => cmd.options[n] !== undefined;
  const head = arg.split(":")[0];
  if (has("policy") && isBuiltinName(head) && !/[\s/]/.test(arg)) return "policy";
  if (/\.(ts|js|mts)$/.test(arg) && has("policy-file")) return "policy-file";
  if (/^[A-Za-z0-9_.-]+\/[A-Za-z0-9_.-]+$/.test(arg) && has("model")) return "model";
  if ((arg.startsWith("/") || arg.startsWith(".")) && has("model")) return "model";
  if (has("prompt") && /\s/.test(arg)) return "prompt";
  return undefined;
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
  "`deno task skipdecode` reads the files you name and writes the output folders you name " +
  "(cli/launch.ts); the demo, train and serve tasks read the repository, ../shared and " +
  "~/.cache/huggingface and write out/, reports/ and .cache/; for other places grant just " +
  "those, e.g. " +
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
