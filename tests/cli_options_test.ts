/**
 * The command framework's typed options (cli/command.ts, cli/options.ts), in process: values
 * converted once by their kind, shared specs declared once, stray arguments and unknown
 * options refused in one line with the option they probably meant.
 *
 * @module
 */
import { assert, assertEquals, assertMatch, assertThrows } from "@std/assert";
import { type Command, nearestName, parseCommandArgs, UsageError } from "../cli/command.ts";
import { COMMANDS } from "../cli/main.ts";
import { benchCommand } from "../cli/bench.ts";
import {
  BACKEND,
  implicitHorizon,
  MAX_NEW_TOKENS,
  MODEL,
  modelLabel,
  OUT,
  POLICY_FILE,
} from "../cli/options.ts";
import { parsePolicy } from "../schedule/mod.ts";

const cmd = (name: string): Command => COMMANDS.find((c) => c.name === name)!;

/** The one-line message `args` give for `command`. */
function usageError(command: Command, args: string[]): string {
  const e = assertThrows(() => parseCommandArgs(command, args), UsageError);
  assert(!e.message.includes("\n"), `one line: ${e.message}`);
  assert(!/positional/i.test(e.message), `no talk of positional arguments: ${e.message}`);
  assertEquals((e.message.match(/'/g) ?? []).length % 2, 0, `balanced quotes: ${e.message}`);
  assertEquals((e.message.match(/"/g) ?? []).length % 2, 0, `balanced quotes: ${e.message}`);
  return e.message;
}

Deno.test("options are converted once by their kind, defaults included", () => {
  const { values } = parseCommandArgs(cmd("generate"), [
    "--prompt",
    "a",
    "--prompt",
    "b",
    "--max-new-tokens",
    "7",
    "--temperature",
    "0.5",
    "--top-p=0.9",
    "--backend",
    "cpu",
    "--no-eos",
    "--speculative",
    "auto",
  ]);
  assertEquals(values.prompt, ["a", "b"]);
  assertEquals(values["max-new-tokens"], 7);
  assertEquals(values.temperature, 0.5);
  assertEquals(values["top-p"], 0.9);
  assertEquals(values.backend, "cpu");
  assertEquals(values.eos, false);
  assertEquals(values.speculative, "auto");
  // defaults are converted like given values
  assertEquals(values["batch-size"], 8);
  assertEquals(values.seed, 0);
  assertEquals(values["chunk-size"], 16);
  const plan = parseCommandArgs(cmd("plan"), ["--layers", "24"]).values;
  assertEquals([plan.layers, plan["prompt-length"], plan.hidden], [24, 8, 768]);
  const proc = parseCommandArgs(cmd("procedure"), []).values;
  assertEquals(proc.lr, 1e-4, "a decimal default written as text is converted too");
});

Deno.test("typed options name the option, the range and the value", () => {
  const gen = cmd("generate");
  assertMatch(
    usageError(gen, ["--max-new-tokens", "4.0"]),
    /^--max-new-tokens must be a whole number from 1 to 65536, got "4\.0"$/,
  );
  assertMatch(
    usageError(gen, ["--top-p", "0"]),
    /^--top-p must be a number > 0 and <= 1, got "0"$/,
  );
  assertMatch(usageError(gen, ["--backend", "gpu"]), /^--backend must be auto, cpu or webgpu/);
  assertMatch(
    usageError(gen, ["--speculative", "x"]),
    /^--speculative must be a whole number from 1 to 65536 or auto, got "x"$/,
  );
  assertMatch(usageError(cmd("sweep"), ["--nll", "some"]), /^--nll must be first, all or none/);
  assertMatch(usageError(benchCommand, ["--threads", "0"]), /^--threads must be a whole number/);
  assertMatch(usageError(benchCommand, ["--rate", "-1"]), /^--rate must be a number > 0/);
});

Deno.test("a stray argument is an error that suggests its option", () => {
  assertEquals(
    usageError(cmd("generate"), ["--prompt", "name[A]\\n", "facebook/opt-125m"]),
    "unexpected argument 'facebook/opt-125m'; did you mean --model facebook/opt-125m?",
  );
  assertEquals(
    usageError(cmd("plan"), ["linear:max=12,min=4"]),
    "unexpected argument 'linear:max=12,min=4'; did you mean --policy linear:max=12,min=4?",
  );
  assertEquals(
    usageError(cmd("sweep"), ["step:12x4,6x8,3"]),
    "unexpected argument 'step:12x4,6x8,3'; did you mean --policy step:12x4,6x8,3?",
  );
  assertMatch(
    usageError(cmd("generate"), ["my_policy.ts"]),
    /did you mean --policy-file my_policy\.ts\?$/,
  );
  assertMatch(
    usageError(cmd("generate"), ["hello world"]),
    /did you mean --prompt "hello world"\?/,
  );
  // a flag followed by a value it does not take
  assertMatch(
    usageError(cmd("plan"), ["--json", "yes"]),
    /^unexpected argument 'yes'; options take their value as --NAME VALUE \(see skipdecode plan --help\)$/,
  );
  // merge takes its folder as an operand, and only one
  assertEquals(parseCommandArgs(cmd("merge"), ["out/x"]).positionals, ["out/x"]);
  assertMatch(usageError(cmd("merge"), ["out/x", "out/y"]), /unexpected argument 'out\/y'/);
});

Deno.test("unknown options suggest the nearest name, or none", () => {
  assertEquals(
    usageError(cmd("generate"), ["--max-tokens", "3"]),
    "unknown option --max-tokens; did you mean --max-new-tokens? (see skipdecode generate --help)",
  );
  assertMatch(usageError(cmd("generate"), ["--polcy", "full"]), /did you mean --policy\?/);
  assertMatch(usageError(cmd("sweep"), ["--policy-fle", "x.ts"]), /did you mean --policy-file\?/);
  assertMatch(usageError(cmd("plan"), ["--jsno"]), /did you mean --json\?/);
  assertMatch(usageError(cmd("generate"), ["--max-tokens=3"]), /^unknown option --max-tokens;/);
  assertMatch(usageError(cmd("generate"), ["-m", "x"]), /^unknown option -m/);
  assertEquals(
    usageError(cmd("plan"), ["--frobnicate"]),
    "unknown option --frobnicate (see skipdecode plan --help)",
  );
  assertMatch(usageError(benchCommand, ["--quik"]), /did you mean --quick\? \(see deno task bench/);
  assertEquals(nearestName("batch", ["batch-size", "backend"]), "batch-size");
  assertEquals(nearestName("zzz", ["batch-size", "backend"]), undefined);
  // a value that starts with a dash is a value, not an option
  assertMatch(usageError(cmd("plan"), ["--layers", "-3"]), /^--layers must be a whole number/);
});

Deno.test("shared specs are declared once and spread into the commands", () => {
  const using = (name: string, spec: object) =>
    COMMANDS.filter((c) => c.options[name] === spec).map((c) => c.name);
  assertEquals(using("model", MODEL.model), ["generate", "sweep", "readout", "serve"]);
  assert(using("backend", BACKEND.backend).length >= 5);
  assert(using("max-new-tokens", MAX_NEW_TOKENS["max-new-tokens"]).includes("generate"));
  for (const name of ["generate", "plan", "sweep", "readout", "procedure", "serve"]) {
    assert(cmd(name).options["policy-file"], `${name} takes --policy-file`);
    assertEquals(cmd(name).options["policy-file"].kind, POLICY_FILE["policy-file"].kind);
  }
  assert(OUT.out.writes, "--out is the folder a command writes");
  // every command parses with no arguments (defaults convert) and documents every option
  for (const c of [...COMMANDS, benchCommand]) {
    parseCommandArgs(c, []);
    for (const [name, o] of Object.entries(c.options)) {
      assert(o.description.length > 3, `${c.name} --${name} has a description`);
    }
  }
});

Deno.test("model labels and the implicit horizon", () => {
  assertEquals(
    modelLabel({ source: "facebook/opt-125m", dir: "/c/snapshots/abc", revision: "abc" }),
    "facebook/opt-125m@abc",
  );
  assertEquals(
    modelLabel({ source: "bundled/models/tiny-opt-e2e", dir: "x" }),
    "bundled/models/tiny-opt-e2e",
  );
  assertEquals(implicitHorizon(parsePolicy("linear:max=12,min=4"), 32), {
    value: 32,
    implicit: true,
  });
  assertEquals(
    implicitHorizon(parsePolicy("earlyexit:linear:max=12,min=4,horizon=16"), 32),
    { value: 16, implicit: false },
  );
  assertEquals(implicitHorizon(parsePolicy("full"), 32), null);
  assertEquals(implicitHorizon(parsePolicy("step:12x4,3"), 32), null);
});
