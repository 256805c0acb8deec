/**
 * `skipdecode procedure` as a task user runs it: bad input fails before any work with a
 * one-line `error:` and exit code 2 (unknown policy, missing files, a model folder without
 * config.json, nothing written); a tiny real run (the bundled model, two fine-tuning steps,
 * two items) whose test file overlaps its training file warns loudly, marks the report
 * "not held out", fine-tunes only the SkipDecode policy and prints `{before, after}` rows
 * shaped as `sweep --json` rows.
 */
import { parseCsv } from "../data/datasets.ts";
import { assert, assertEquals, assertStringIncludes } from "@std/assert";
import { cli, sandbox, snapshot, TINY } from "./cli_helpers.ts";
import { isTunedPolicy, overlappingItems } from "../experiments/procedure.ts";
import { procedurePolicies } from "../cli/procedure.ts";
import { parsePolicy } from "../schedule/mod.ts";

function oneLineError(r: { code: number; stderr: string }, needle: string): void {
  assertEquals(r.code, 2, r.stderr);
  const lines = r.stderr.trim().split("\n").filter((l) => !l.startsWith("note:"));
  assertEquals(lines.length, 1, r.stderr);
  assert(lines[0].startsWith("error: "), lines[0]);
  assertStringIncludes(lines[0], needle);
}

Deno.test("procedure helpers: overlap by MR, tuned policies, default policies", () => {
  assertEquals(
    overlappingItems([{ mr: "a[1], b[2]", refs: ["x"] }], [
      { mr: "c[3]", refs: ["y"] },
      { mr: " a[1],  b[2] ", refs: ["z"] },
    ]),
    [1],
  );
  assertEquals(isTunedPolicy("full"), false);
  assertEquals(isTunedPolicy("earlyexit:linear:max=10,min=2"), false);
  assertEquals(isTunedPolicy("linear:max=10,min=2,prompt=decay"), true);
  const ps = procedurePolicies(12, 24);
  assertEquals(ps.length, 12);
  assertEquals(ps[0], "full");
  for (const p of ps) parsePolicy(p);
  // the early-exit baseline shares the budgets of a linear decay in the list
  const ee = ps.find((p) => p.startsWith("earlyexit:"))!;
  assert(ps.includes(ee.slice("earlyexit:".length)), ee);
});

Deno.test("procedure: bad input fails before any work (one line, exit 2)", async () => {
  using box = sandbox("procedure-bad");
  const csv = `${box.rel}/d.csv`;
  Deno.writeTextFileSync(`${box.dir}/d.csv`, 'mr,ref\n"name[A]",A is here .\n');
  const base = ["procedure", "--model", TINY, "--train", csv, "--test", csv, "--no-cache"];
  const out = ["--out", `${box.rel}/r`, "--models-dir", `${box.rel}/m`];
  const before = snapshot(box.dir);
  oneLineError(
    await cli([...base, "--policy", "linear:max=99,min=2", ...out]),
    "--policy linear:max=99,min=2",
  );
  oneLineError(await cli([...base, "--policy", "bogus:x=1", ...out]), "--policy bogus:x=1");
  oneLineError(
    await cli([
      "procedure",
      "--model",
      TINY,
      "--train",
      `${box.rel}/none.csv`,
      "--test",
      csv,
      ...out,
    ]),
    `--train ${box.rel}/none.csv not found`,
  );
  oneLineError(
    await cli([
      "procedure",
      "--model",
      TINY,
      "--train",
      csv,
      "--test",
      `${box.rel}/no.csv`,
      ...out,
    ]),
    `--test ${box.rel}/no.csv not found`,
  );
  oneLineError(
    await cli(["procedure", "--model", box.rel, "--train", csv, "--test", csv, ...out]),
    "no config.json",
  );
  oneLineError(await cli([...base, "--steps", "0", ...out]), "--steps");
  Deno.writeTextFileSync(`${box.dir}/bad.csv`, "nope\n");
  oneLineError(
    await cli([
      "procedure",
      "--model",
      TINY,
      "--train",
      `${box.rel}/bad.csv`,
      "--test",
      csv,
      ...out,
    ]),
    "bad.csv",
  );
  // nothing was written: no report folder, no model folder
  const after = snapshot(box.dir);
  delete after["bad.csv"];
  assertEquals(after, before);
});

Deno.test("procedure: a tiny run on overlapping data warns, is marked not held out, tunes one copy", async () => {
  using box = sandbox("procedure-run");
  const lines = Deno.readTextFileSync(
    new URL("../bundled/data/e2e/devset.csv", import.meta.url),
  ).split("\n").slice(0, 12).join("\n") + "\n";
  Deno.writeTextFileSync(`${box.dir}/d.csv`, lines);
  const csv = `${box.rel}/d.csv`;
  const lin = "linear:max=8,min=2,warmup=1,horizon=6";
  const ee = "earlyexit:linear:max=8,min=2,warmup=0,horizon=6";
  const r = await cli([
    "procedure",
    "--model",
    TINY,
    "--train",
    csv,
    "--test",
    csv,
    "--policy",
    lin,
    "--policy",
    ee,
    "--steps",
    "2",
    "--train-batch-size",
    "2",
    "--items",
    "2",
    "--max-new-tokens",
    "6",
    "--batch-size",
    "2",
    "--oracle",
    "2",
    "--resamples",
    "50",
    "--backend",
    "cpu",
    "--no-cache",
    "--json",
    "--out",
    `${box.rel}/report`,
    "--models-dir",
    `${box.rel}/models`,
  ]);
  assertEquals(r.code, 0, r.stderr);
  assertStringIncludes(r.stderr, "WARNING");
  assertStringIncludes(r.stderr, "NOT held out");
  const j = JSON.parse(r.stdout);
  const names = (rows: { policy: string }[]) => rows.map((x) => x.policy);
  assertEquals(names(j.before), ["full", lin, ee]);
  assertEquals(names(j.after), ["full", lin, ee]);
  assertEquals(j.after.map((x: { fineTuned: boolean }) => x.fineTuned), [false, true, false]);
  assertEquals(j.heldOut, false);
  assertEquals(j.overlap, 2);
  // rows shaped as sweep rows, with the new figures
  for (const row of [...j.before, ...j.after]) {
    for (const k of ["bleu", "bleuCI", "fixedLayerSpeedup", "meanLength", "capShare"]) {
      assert(k in row, `${row.policy} lacks ${k}`);
    }
  }
  assertEquals(j.before[0].fixedLayerSpeedup, 1);
  // full and early exit are not tuned: their after rows are the before ones
  assertEquals(j.after[2].bleu, j.before[2].bleu);
  const report = Deno.readTextFileSync(`${box.dir}/report/report.md`);
  assertStringIncludes(report, "NOT HELD OUT");
  assertStringIncludes(report, "not fine-tuned");
  assertStringIncludes(report, "deno task skipdecode procedure");
  assertStringIncludes(report, "Later tokens are easier?");
  assert(Deno.statSync(`${box.dir}/report/frontier.html`).isFile);
  // provenance: manifest.json, items.csv (before: 3 policies x 2 items; after: the tuned one)
  const m = JSON.parse(Deno.readTextFileSync(`${box.dir}/report/manifest.json`));
  assertEquals([m.command, m.model.source, m.data.items], ["procedure", TINY, 2]);
  assert(m.model.files.some((f: { path: string }) => f.path === "config.json"));
  const csvRows = parseCsv(Deno.readTextFileSync(`${box.dir}/report/items.csv`), "items.csv");
  assertEquals(csvRows[0].fields.slice(0, 3), ["phase", "policy", "item"]);
  assertEquals(
    csvRows.slice(1).map((x) => `${x.fields[0]} ${x.fields[1]}`),
    [
      "before full",
      "before full",
      `before ${lin}`,
      `before ${lin}`,
      `before ${ee}`,
      `before ${ee}`,
      `after ${lin}`,
      `after ${lin}`,
    ],
  );
  assert(!Deno.readDirSync(`${box.dir}/report`).some((e) => e.name === ".skipdecode.lock"));
  const tuned = [...Deno.readDirSync(`${box.dir}/models`)].map((e) => e.name);
  assertEquals(tuned.length, 1, String(tuned));
  assert(Deno.statSync(`${box.dir}/models/${tuned[0]}/config.json`).isFile);
});

Deno.test("procedure: --train in another format, with a column mapping, template and --holdout", async () => {
  using box = sandbox("procedure-formats");
  // 30 E2E rows (8 MRs) as JSONL under other column names
  const rows = Deno.readTextFileSync(new URL("../bundled/data/e2e/devset.csv", import.meta.url))
    .split("\n").slice(0, 31).join("\n") + "\n";
  const parsed = parseCsv(rows, "devset.csv").slice(1);
  Deno.writeTextFileSync(
    `${box.dir}/d.jsonl`,
    parsed.map((r) => JSON.stringify({ meaning: r.fields[0], text: r.fields[1] })).join("\n") +
      "\n",
  );
  const lin = "linear:max=8,min=2,warmup=1,horizon=6";
  const args = [
    "procedure",
    "--model",
    TINY,
    "--train",
    `${box.rel}/d.jsonl`,
    "--holdout",
    "2",
    "--input-column",
    "meaning",
    "--ref-column",
    "text",
    "--template",
    "{input}\\n",
    "--policy",
    lin,
    "--steps",
    "1",
    "--train-batch-size",
    "2",
    "--items",
    "2",
    "--max-new-tokens",
    "4",
    "--batch-size",
    "2",
    "--oracle",
    "0",
    "--resamples",
    "20",
    "--backend",
    "cpu",
    "--no-cache",
    "--json",
    "--out",
    `${box.rel}/report`,
    "--models-dir",
    `${box.rel}/models`,
  ];
  const r = await cli(args);
  assertEquals(r.code, 0, r.stderr);
  assert(!r.stderr.includes("WARNING"), r.stderr);
  const j = JSON.parse(r.stdout);
  assertEquals([j.heldOut, j.overlap], [true, 0]);
  assertEquals(j.before.map((x: { policy: string }) => x.policy), ["full", lin]);
  const report = Deno.readTextFileSync(`${box.dir}/report/report.md`);
  for (const part of ["--input-column meaning", "--ref-column text", "--template '{input}\\n'"]) {
    assertStringIncludes(report, part, "the Reproduce block");
  }
  const m = JSON.parse(Deno.readTextFileSync(`${box.dir}/report/manifest.json`));
  assertEquals(m.data.items, 2);
  assertStringIncludes(JSON.stringify(m.data), "d.jsonl");
  // a column the file does not have: one line naming the option, before any work
  oneLineError(
    await cli([...args.slice(0, 7), "--input-column", "mr", "--out", `${box.rel}/r2`]),
    "--input-column",
  );
});
