/**
 * `--policy-file` (schedule/policy_file.ts, cli/options.ts): a module exporting a
 * `defineSchedule` descriptor, a policy or a layer-set function is accepted by generate,
 * plan, sweep, readout, procedure and serve; a file that breaks nesting, exports nothing
 * usable, throws or is missing is one line naming the file, before any model is loaded.
 *
 * @module
 */
import { assert, assertEquals, assertMatch, assertRejects } from "@std/assert";
import { loadPolicyFile, PolicyFileError } from "../schedule/mod.ts";
import { cli, sandbox, TINY } from "./cli_helpers.ts";

/** Policy files in a sandbox under out/ (the tasks read the repository). */
function writeFiles(dir: string): Record<string, string> {
  const mod = "../../schedule/mod.ts";
  const files: Record<string, string> = {
    "fn.ts": `import { skipDecodeSet } from "${mod}";
export default ({ column, promptLength, layers }: { column: number; promptLength: number; layers: number }) =>
  skipDecodeSet(layers, column - promptLength < 2 ? layers : 6, 1);
`,
    "desc.ts": `import { defineSchedule } from "${mod}";
export const HALFWAY = defineSchedule({
  form: "schedule", name: "halfwaytest", summary: "L, then n after k tokens",
  params: [{ key: "n", type: "int", min: 1, default: 6, doc: "budget" },
           { key: "k", type: "int", min: 0, default: 2, doc: "j below k runs all layers" }],
  promptMode: true, example: "halfwaytest:n=6,k=2",
  budget: (p, j, _H, L) => (j < p.k ? L : p.n),
  label: (p) => \`halfway \${p.n} k\${p.k}\`,
});
`,
    "two.ts": `import { customPolicy } from "${mod}";
export const a = customPolicy({ name: "keep_all", layerSet: ({ layers }) => Array.from({ length: layers }, (_, i) => i) });
export const b = customPolicy({ name: "top_six", layerSet: ({ layers }) => [6, 7, 8, 9, 10, 11].filter((l) => l < layers) });
`,
    "grows.ts": `export default ({ column, layers }: { column: number; layers: number }) =>
  column % 2 ? [layers - 1] : [0, layers - 1];
`,
    "nothing.ts": `export const x = 3;\n`,
    "throws.ts": `throw new Error("boom in the module");\n`,
    "syntax.ts": `export const = ;\n`,
  };
  for (const [name, text] of Object.entries(files)) Deno.writeTextFileSync(`${dir}/${name}`, text);
  return files;
}

Deno.test("loadPolicyFile: functions, descriptors and policies; bad files name the file", async () => {
  using box = sandbox("policy-file");
  writeFiles(box.dir);
  const [fn] = await loadPolicyFile(`${box.dir}/fn.ts`);
  assertEquals(fn.name, "fn");
  const [desc] = await loadPolicyFile(`${box.rel}/desc.ts`);
  assertEquals(String(desc), "halfwaytest:n=6,k=2");
  assertEquals((await loadPolicyFile(`${box.dir}/two.ts`)).map((p) => p.name), [
    "keep_all",
    "top_six",
  ]);
  const bad: [string, RegExp][] = [
    ["grows.ts", /policy "grows" on a probe run .*plans must nest/],
    ["nothing.ts", /exports no policy: export a defineSchedule descriptor/],
    ["throws.ts", /cannot be loaded: .*boom in the module/],
    ["syntax.ts", /cannot be loaded/],
    ["missing.ts", /no such file/],
  ];
  for (const [name, pattern] of bad) {
    const file = `${box.dir}/${name}`;
    const e = await assertRejects(() => loadPolicyFile(file), PolicyFileError);
    assert(e.message.startsWith(`policy file ${file}: `), e.message);
    assertMatch(e.message, pattern, name);
    assert(!e.message.includes("\n"), `one line: ${e.message}`);
  }
});

Deno.test("cli: --policy-file is accepted by generate, plan, sweep, readout, procedure and serve", async () => {
  using box = sandbox("policy-file-cli");
  writeFiles(box.dir);
  const fn = `${box.rel}/fn.ts`;
  const plan = await cli(["plan", "--policy-file", fn, "--prompt-length", "3", "--json"]);
  assertEquals(plan.code, 0, plan.stderr);
  const p = JSON.parse(plan.stdout);
  assertEquals(p.generatedLayers.slice(0, 5), [12, 12, 12, 6, 6], "j = 0, 1 full, then 6");
  // several policies: --policy picks one by name; without it the command says so
  const two = await cli(["plan", "--policy-file", `${box.rel}/two.ts`, "--policy", "top_six"]);
  assertEquals(two.code, 0, two.stderr);
  const none = await cli(["plan", "--policy-file", `${box.rel}/two.ts`]);
  assertEquals(none.code, 2);
  assertMatch(none.stderr, /holds 2 policies \(keep_all, top_six\): choose one with --policy/);
  const gen = await cli([
    "generate",
    "--model",
    TINY,
    "--backend",
    "cpu",
    "--prompt",
    "name[Aromi]\\n",
    "--max-new-tokens",
    "4",
    "--policy-file",
    `${box.rel}/desc.ts`,
    "--json",
  ]);
  assertEquals(gen.code, 0, gen.stderr);
  const g = JSON.parse(gen.stdout);
  assertEquals(g.policy, "halfwaytest:n=6,k=2");
  assertEquals(
    g.results[0].layers.slice(0, 4),
    [12, 12, 12, 6].slice(0, g.results[0].layers.length),
  );
  assertEquals(g.model.source, TINY);
  assertEquals(g.backend, "cpu");
  const readout = await cli([
    "readout",
    "--model",
    TINY,
    "--backend",
    "cpu",
    "--prompt",
    "name[Aromi]\\n",
    "--max-new-tokens",
    "3",
    "--policy-file",
    fn,
    "--json",
  ]);
  assertEquals(readout.code, 0, readout.stderr);
  const ro = JSON.parse(readout.stdout);
  assertEquals([ro.policy, ro.model.source, ro.backend], ["fn", TINY, "cpu"]);
  const sweep = await cli([
    "sweep",
    "--model",
    TINY,
    "--backend",
    "cpu",
    "--items",
    "1",
    "--max-new-tokens",
    "3",
    "--nll",
    "none",
    "--no-cache",
    "--no-png",
    "--policy-file",
    fn,
    "--out",
    `${box.rel}/sweep`,
    "--json",
  ]);
  assertEquals(sweep.code, 0, sweep.stderr);
  const sw = JSON.parse(sweep.stdout);
  assertEquals([sw.model.source, sw.backend], [TINY, "cpu"], "the sweep names its model");
  const rows = sw.rows.map((r: { policy: string }) => r.policy);
  assert(rows.includes("fn") && rows.includes("full"), `sweep rows: ${rows}`);
  // every command that takes --policy-file refuses a bad one in one line naming the file,
  // before any model is loaded (serve and procedure included)
  const grows = `${box.rel}/grows.ts`;
  const common = ["--policy-file", grows];
  const runs: string[][] = [
    ["generate", "--model", TINY, "--prompt", "x", ...common],
    ["plan", ...common],
    ["sweep", "--model", TINY, "--out", `${box.rel}/s2`, ...common],
    ["readout", "--model", TINY, "--prompt", "x", ...common],
    ["procedure", "--model", TINY, "--out", `${box.rel}/p`, ...common],
    ["serve", "--model", TINY, "--port", "0", ...common],
  ];
  for (const args of runs) {
    const r = await cli(args);
    assertEquals(r.code, 2, `${args[0]}: ${r.stderr}`);
    assertMatch(
      r.stderr,
      /^error: policy file [^\n]*grows\.ts: policy "grows" [^\n]*nest[^\n]*\n$/,
    );
  }
  // procedure fine-tunes with text-form policies: a function is refused, saying why
  const proc = await cli([
    "procedure",
    "--model",
    TINY,
    "--out",
    `${box.rel}/p`,
    "--policy-file",
    fn,
  ]);
  assertEquals(proc.code, 2);
  assertMatch(proc.stderr, /"fn" is a function \(export a defineSchedule descriptor instead\)/);
});
