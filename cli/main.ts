/**
 * The `skipdecode` command line: `deno task skipdecode <command> [options]`, each command
 * with `--help`. Errors print one clear line (set `SKIPDECODE_DEBUG=1` for the stack).
 *
 * @example
 * ```sh
 * deno task skipdecode generate --prompt "name[Alimentum], area[city centre]\n" --policy linear:max=12,min=4,warmup=1,horizon=32
 * ```
 * @module
 */
import { type Command, debug, errorReport, runCommand, UsageError } from "./command.ts";
import { generateCommand } from "./generate.ts";
import { tokenizeCommand } from "./tokenize.ts";
import { planCommand } from "./plan.ts";
import { scoreCommand } from "./score.ts";
import { demoCommand } from "./demo.ts";
import { sweepCommand } from "./sweep.ts";
import { procedureCommand } from "./procedure.ts";
import { trainCmd } from "./train.ts";
import { convertCommand } from "./convert.ts";
import { readoutCommand } from "./readout.ts";
import { mergeCommand } from "./merge.ts";
import { serveCommand } from "./serve.ts";

/** Every command, by name. */
export const COMMANDS: Command[] = [
  demoCommand,
  generateCommand,
  sweepCommand,
  procedureCommand,
  mergeCommand,
  planCommand,
  scoreCommand,
  tokenizeCommand,
  trainCmd,
  convertCommand,
  readoutCommand,
  serveCommand,
];

function usage(): string {
  const lines = [
    "usage: skipdecode <command> [options]   (each command has --help)",
    "",
    "Commands:",
  ];
  for (const c of COMMANDS) lines.push(`  ${c.name.padEnd(10)} ${c.summary}`);
  return lines.join("\n");
}

/**
 * Runs the command line and returns the exit code: 0 on success, 2 for usage errors and
 * bad input (the message names what is wrong), 1 for anything unexpected.
 *
 * @example
 * ```ts
 * const code = await main(["plan", "--policy", "linear:max=12,min=4,warmup=1"]);
 * ```
 */
export async function main(args: string[]): Promise<number> {
  const [name, ...rest] = args;
  if (!name || name === "--help" || name === "-h" || name === "help") {
    console.log(usage());
    return name ? 0 : 2;
  }
  const cmd = COMMANDS.find((c) => c.name === name);
  try {
    if (!cmd) {
      throw new UsageError(
        `unknown command "${name}" (commands: ${COMMANDS.map((c) => c.name).join(", ")})`,
      );
    }
    return await runCommand(cmd, rest);
  } catch (e) {
    const { message, code } = errorReport(e);
    console.error(`error: ${message}`);
    if (debug()) console.error((e as Error)?.stack);
    return code;
  }
}

if (import.meta.main) Deno.exit(await main(Deno.args));
