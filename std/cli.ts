/**
 * Strict argument parsing on `node:util`'s `parseArgs`: a local module, imported by its path
 * (`std/cli.ts`), not mapped as `@std/cli`, because it does **not** have `jsr:@std/cli`'s
 * `parseArgs` API (the JSR registry is unreachable here, so the real package is not used):
 *
 * - It takes `node:util`'s option declarations (`{ model: { type: "string" } }`); `@std/cli`
 *   takes minimist-style lists (`{ string: ["model"], boolean: [...], default, alias }`).
 * - It returns `{ values, positionals }`; `@std/cli` returns `{ _: positionals, ...flags }`.
 * - Unknown flags throw (`strict: true`), naming the flag; `@std/cli` accepts them unless an
 *   `unknown` callback refuses them.
 * - `--no-x` negates a boolean `x` (`allowNegative`); `@std/cli` needs `negatable: ["x"]`.
 * - Repeated options are collected with `multiple: true` per option; `@std/cli` uses
 *   `collect: [...]`.
 *
 * Moving to `@std/cli` means rewriting its callers' parsing (`cli/command.ts`, `cli/bench.ts`,
 * `bench/decode_profile.ts`), not changing one line.
 *
 * @example
 * ```ts
 * import { parseArgs } from "./cli.ts";
 * const { values } = parseArgs(["--model", "m"], { model: { type: "string" } });
 * console.log(values.model); // "m"
 * ```
 * @module
 */
import { parseArgs as nodeParseArgs, type ParseArgsConfig } from "node:util";

/** Option declarations, as `node:util` takes them. */
export type Options = NonNullable<ParseArgsConfig["options"]>;

/**
 * Parses command-line arguments strictly: unknown flags throw an error naming them.
 * `--no-x` negates boolean `x`.
 *
 * @example
 * ```ts
 * parseArgs(["--json"], { json: { type: "boolean" } }).values.json; // true
 * ```
 */
export function parseArgs<O extends Options>(args: string[], options: O) {
  return nodeParseArgs({
    args,
    options,
    strict: true,
    allowPositionals: true,
    allowNegative: true,
  });
}
