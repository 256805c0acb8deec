/**
 * Permissions of `deno task skipdecode` (cli/launch.ts, docs/DESIGN.md §10): a model, a data
 * file, a prompt file and a policy file in a temporary folder outside the repository are
 * read; the output folder the user names is written; a write anywhere else, or a read of a
 * file nobody named, is refused.
 *
 * @module
 */
import { assert, assertEquals, assertMatch, assertStringIncludes } from "@std/assert";
import { launchFlags, launchScope } from "../cli/launch.ts";
import { ROOT, TINY } from "./cli_helpers.ts";

function outsideFolder(): { dir: string } & Disposable {
  const dir = Deno.makeTempDirSync({ prefix: "skipdecode-perm-" });
  assert(!dir.startsWith(`${ROOT}/`), "the folder is outside the repository");
  return { dir, [Symbol.dispose]: () => Deno.removeSync(dir, { recursive: true }) };
}

Deno.test("launchScope: named inputs are read, named output folders written, nothing else", () => {
  const s = launchScope([
    "sweep",
    "--model",
    "/data/models/m",
    "--data",
    "rel/data.csv",
    "--policy-file",
    "/p/mine.ts",
    "--out",
    "/results/r1",
  ], "/srv/x");
  for (const p of ["/data/models/m", "/srv/x/rel/data.csv", "/p/mine.ts", "/results/r1"]) {
    assert(s.read.includes(p), `reads ${p}`);
  }
  assert(s.write.includes("/results/r1"), "writes the named --out");
  for (const p of ["/data/models/m", "/srv/x/rel/data.csv", "/p/mine.ts", "/results"]) {
    assert(!s.write.includes(p), `does not write ${p}`);
  }
  assert(!s.net.includes("127.0.0.1"), "only serve reaches 127.0.0.1");
  assert(launchScope(["merge", "/runs/r1"], "/w").write.includes("/runs/r1"), "merge DIR");
  assert(
    launchScope(["train", "--data", "/d/t.csv", "--resume", "/c/ck"], "/w").read.includes(
      "/d/t.csv",
    ),
  );
  assert(launchScope(["serve"], "/w").net.includes("127.0.0.1"));
  // the default report folder counts as named
  assert(launchScope(["sweep"], ROOT).write.includes(`${ROOT}/reports/sweep`));
  // a bad command line gets the fixed scope only (the command prints its own error)
  assertEquals(
    launchScope(["plan", "--nope"], ROOT).write.length,
    launchScope([], ROOT).write.length,
  );
});

Deno.test("deno task skipdecode reads a model and files outside the repository", async () => {
  using tmp = outsideFolder();
  const model = `${tmp.dir}/my model`; // a space, to check quoting
  Deno.mkdirSync(model);
  for (const e of Deno.readDirSync(TINY)) {
    if (e.isFile) Deno.copyFileSync(`${TINY}/${e.name}`, `${model}/${e.name}`);
  }
  Deno.writeTextFileSync(`${tmp.dir}/prompts.txt`, "name[Aromi], area[riverside]\n");
  Deno.writeTextFileSync(`${tmp.dir}/data.csv`, 'mr,ref\n"name[Aromi]","Aromi is near."\n');
  Deno.writeTextFileSync(
    `${tmp.dir}/mine.ts`,
    `export default ({ layers }: { layers: number }) => Array.from({ length: layers }, (_, i) => i);\n`,
  );
  const deno = Deno.execPath();
  const out = await new Deno.Command(deno, {
    args: [
      "task",
      "skipdecode",
      "generate",
      "--model",
      model,
      "--prompt-file",
      `${tmp.dir}/prompts.txt`,
      "--policy-file",
      `${tmp.dir}/mine.ts`,
      "--max-new-tokens",
      "2",
      "--backend",
      "cpu",
      "--json",
    ],
    cwd: ROOT,
    env: { NO_COLOR: "1", HF_HUB_OFFLINE: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stderr = new TextDecoder().decode(out.stderr);
  assertEquals(out.code, 0, stderr);
  const r = JSON.parse(new TextDecoder().decode(out.stdout));
  assertEquals(r.model.source, model);
  assertEquals(r.policy, "mine");
  assertEquals(r.results.length, 1);
  // The flags of a sweep into an outside folder: a probe with exactly those flags reads the
  // named files, writes inside --out, and is refused a write beside it and an unnamed read.
  const args = [
    "sweep",
    "--model",
    model,
    "--data",
    `${tmp.dir}/data.csv`,
    "--out",
    `${tmp.dir}/report`,
  ];
  Deno.writeTextFileSync(`${tmp.dir}/secret.txt`, "not named");
  const probe = `${ROOT}/out/.perm-probe-${crypto.randomUUID().slice(0, 8)}.ts`;
  Deno.writeTextFileSync(
    probe,
    `const T = ${JSON.stringify(tmp.dir)};
const tryIt = (f: () => unknown) => { try { f(); return "ok"; } catch (e) { return (e as Error).name; } };
console.log(JSON.stringify({
  readModel: tryIt(() => Deno.readTextFileSync(T + "/my model/config.json")),
  readData: tryIt(() => Deno.readTextFileSync(T + "/data.csv")),
  writeOut: tryIt(() => { Deno.mkdirSync(T + "/report"); Deno.writeTextFileSync(T + "/report/x.txt", "x"); }),
  writeBeside: tryIt(() => Deno.writeTextFileSync(T + "/beside.txt", "x")),
  writeModel: tryIt(() => Deno.writeTextFileSync(T + "/my model/config.json", "x")),
  writeRepo: tryIt(() => Deno.writeTextFileSync(${JSON.stringify(`${ROOT}/bundled/x.txt`)}, "x")),
  readSecret: tryIt(() => Deno.readTextFileSync(T + "/secret.txt")),
}));
`,
  );
  try {
    const p = await new Deno.Command(deno, {
      args: ["run", ...launchFlags(args, ROOT), probe],
      cwd: ROOT,
      stdout: "piped",
      stderr: "piped",
    }).output();
    const err = new TextDecoder().decode(p.stderr);
    assertEquals(p.code, 0, err);
    assertEquals(JSON.parse(new TextDecoder().decode(p.stdout)), {
      readModel: "ok",
      readData: "ok",
      writeOut: "ok",
      writeBeside: "NotCapable",
      writeModel: "NotCapable",
      writeRepo: "NotCapable",
      readSecret: "NotCapable",
    });
  } finally {
    Deno.removeSync(probe);
  }
  assertMatch(Deno.readTextFileSync(`${tmp.dir}/report/x.txt`), /x/);
  assertStringIncludes(Deno.readTextFileSync(`${tmp.dir}/my model/config.json`), "{");
});
