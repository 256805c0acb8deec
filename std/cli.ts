/**
 * A small stand-in for `jsr:@std/cli`'s `parseArgs`, built on `node:util`'s `parseArgs`
 * because the JSR registry is unreachable here. Mapped as `@std/cli` in `deno.json`.
 *
 * @example
 * ```ts
 * import { parseArgs } from "@std/cli";
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
