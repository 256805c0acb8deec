/**
 * What a run reads back and leaves behind: cache entries are checked against a checksum and
 * a schema (an edited or wrongly shaped entry is recomputed, with a note naming the file),
 * a new sweep report replaces the previous one as a whole (no stale charts), the output
 * folder's lock refuses a second holder, and `--png` stays off, without a note, where the
 * task may not run chromium.
 */
import { assert, assertEquals, assertMatch, assertStringIncludes, assertThrows } from "@std/assert";
import { ResultCache } from "../io/cache.ts";
import { OutputError, OutputFolder } from "../io/output.ts";
import { TINY_MODEL_DIR } from "../data/bundled.ts";
import { cli, sandbox } from "./cli_helpers.ts";

Deno.test("cache: an edited entry fails its checksum and is recomputed; the note names the file", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const notes: string[] = [];
    const cache = new ResultCache(dir, (n) => notes.push(n));
    await cache.put({ k: 1 }, { layerSpeedup: 1.5, text: "real" });
    assertEquals(await cache.get({ k: 1 }), { layerSpeedup: 1.5, text: "real" });
    const [file] = [...Deno.readDirSync(dir)].map((e) => `${dir}/${e.name}`);
    const entry = JSON.parse(Deno.readTextFileSync(file));
    entry.value = { layerSpeedup: 9.99, text: "invented" }; // still valid JSON
    Deno.writeTextFileSync(file, JSON.stringify(entry));
    assertEquals(await cache.get({ k: 1 }), undefined);
    assertEquals(notes.length, 1);
    assertStringIncludes(notes[0], file);
    assertStringIncludes(notes[0], "does not match its checksum");
    // Not JSON at all.
    Deno.writeTextFileSync(file, "{ truncated");
    assertEquals(await cache.get({ k: 1 }), undefined);
    assertStringIncludes(notes[1], file);
    assertStringIncludes(notes[1], "not valid JSON");
    // A correct checksum over a wrongly shaped value: the schema check names the problem.
    await cache.put({ k: 2 }, { outputs: "nope" });
    const problem = (v: unknown) =>
      Array.isArray((v as { outputs?: unknown }).outputs) ? undefined : `"outputs" is not a list`;
    assertEquals(await cache.get({ k: 2 }, problem), undefined);
    assertMatch(notes[2], /ignoring cache entry .*\.json: wrongly shaped value: "outputs"/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("sweep: a hand-edited cache entry is not reported; the run recomputes it", async () => {
  using box = sandbox("cache-edit");
  const args = [
    "sweep",
    "--model",
    TINY_MODEL_DIR,
    "--backend",
    "cpu",
    "--policy",
    "linear:max=10,min=2,warmup=1,horizon=4",
    "--nll",
    "none",
    "--items",
    "1",
    "--max-new-tokens",
    "3",
    "--out",
    `${box.rel}/report`,
    "--json",
  ];
  const env = { SKIPDECODE_CACHE_DIR: `${box.dir}/cache` };
  const first = await cli(args, { env });
  assertEquals(first.code, 0, first.stderr);
  const real = JSON.parse(first.stdout).rows[1].layerSpeedup;
  let edited = 0;
  for (const e of Deno.readDirSync(`${box.dir}/cache`)) {
    const path = `${box.dir}/cache/${e.name}`;
    const entry = JSON.parse(Deno.readTextFileSync(path));
    if (entry.key.kind !== "generate") continue;
    entry.value.layerSpeedup = 9.99;
    entry.value.outputs[0].text = "invented text";
    Deno.writeTextFileSync(path, JSON.stringify(entry));
    edited++;
  }
  assertEquals(edited, 2);
  const again = await cli(args, { env });
  assertEquals(again.code, 0, again.stderr);
  const rows = JSON.parse(again.stdout).rows;
  assertEquals(rows[1].layerSpeedup, real);
  assert(rows.every((r: { cached: boolean }) => !r.cached), "edited entries are not reused");
  assertMatch(again.stderr, /ignoring cache entry .*cache\/[0-9a-f]{64}\.json: its content/);
  const gens = Deno.readTextFileSync(`${box.dir}/report/generations.jsonl`);
  assert(!gens.includes("invented text"));
});

Deno.test("sweep: a new report replaces the old one as a whole; no PNG note without chromium permission", async () => {
  using box = sandbox("replace");
  const base = [
    "sweep",
    "--model",
    TINY_MODEL_DIR,
    "--backend",
    "cpu",
    "--no-cache",
    "--items",
    "1",
    "--max-new-tokens",
    "3",
    "--out",
    `${box.rel}/report`,
  ];
  const two = await cli([...base, "--policy", "full", "--policy", "constant:n=6,warmup=1"]);
  assertEquals(two.code, 0, two.stderr);
  const names = () =>
    [...Deno.readDirSync(`${box.dir}/report`)].map((e) => e.name).filter((n) => !n.startsWith("."))
      .sort();
  assert(names().includes("nll_gap.html"), `two policies draw the NLL gap: ${names()}`);
  Deno.writeTextFileSync(`${box.dir}/report/my-notes.txt`, "mine\n"); // not the run's: kept
  const one = await cli([...base, "--policy", "full"]);
  assertEquals(one.code, 0, one.stderr);
  assertEquals(names(), [
    "budgets.html",
    "frontier.html",
    "generations.jsonl",
    "items.csv",
    "manifest.json",
    "my-notes.txt",
    "plotly.min.js", // one copy shared by the charts
    "report.md",
    "sweep.json",
  ]);
  assert(!/chromium|PNG/i.test(one.stderr.replace(/\(\d+ charts, 0 PNGs\)/, "")), one.stderr);
  assertStringIncludes(one.stderr, "0 PNGs");
});

Deno.test("OutputFolder: one holder at a time; a folder it created and left empty is removed", () => {
  using box = sandbox("lock");
  const path = `${box.rel}/held`;
  const a = OutputFolder.open(path);
  const e = assertThrows(() => OutputFolder.open(path), OutputError);
  assertMatch(e.message, /--out .*held is in use by another run \(pid \d+ since /);
  a.close();
  assertThrows(() => Deno.statSync(`${box.dir}/held`), Deno.errors.NotFound);
  const b = OutputFolder.open(path);
  b.write("x.txt", "x\n");
  b.close();
  assertEquals(Deno.readTextFileSync(`${box.dir}/held/x.txt`), "x\n");
  const c = OutputFolder.open(path); // free again; an existing folder is kept
  c.close();
  assertEquals(Deno.readTextFileSync(`${box.dir}/held/x.txt`), "x\n");
});
