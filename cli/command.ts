/**
 * The small command framework of the command line: each command declares its options with
 * a description, gets `--help` for free, and is parsed strictly by `@std/cli`'s
 * `parseArgs` (a stand-in for `jsr:@std/cli` built on `node:util`).
 *
 * @module
 */
import { parseArgs } from "@std/cli";

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
  return lines.join("\n");
}

/**
 * Parses `args` for `cmd`, printing help for `--help`, and runs it.
 *
 * @example
 * ```ts
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
    parsed = parseArgs(args, spec);
  } catch (e) {
    throw new UsageError(`${(e as Error).message}\n\n${helpText(cmd)}`);
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
 * Reads an integer option, naming it in the error.
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
): number | undefined {
  const v = values[name];
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) {
    throw new UsageError(`--${name} must be an integer >= ${min}, got "${v}"`);
  }
  return n;
}

/**
 * Reads a number option, naming it in the error.
 *
 * @example
 * ```ts
 * numberOption({ t: "0.7" }, "t"); // 0.7
 * ```
 */
export function numberOption(values: Record<string, unknown>, name: string): number | undefined {
  const v = values[name];
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n)) throw new UsageError(`--${name} must be a number, got "${v}"`);
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
