/**
 * The `skipdecode` command line as a library: {@linkcode main} runs it with arguments,
 * {@linkcode COMMANDS} lists the commands, and {@linkcode runCommand} with a
 * {@linkcode Command} adds a command of your own with the same `--help` and errors.
 *
 * @example
 * ```ts
 * import { main } from "./mod.ts";
 * const code = await main(["plan", "--policy", "linear:max=12,min=4,warmup=1,horizon=32"]);
 * ```
 * @module
 */
export { COMMANDS, main } from "./main.ts";
export { benchMain } from "./bench.ts";
export {
  type Command,
  helpText,
  nearestName,
  type OptionKind,
  type OptionSpec,
  parseCommandArgs,
  requireString,
  runCommand,
  UsageError,
} from "./command.ts";
export * from "./options.ts";
export { launchFlags, type LaunchScope, launchScope } from "./launch.ts";
