/**
 * Provenance and export of run folders: `manifest.json` fields, `items.csv` columns
 * (parsed back with the RFC 4180 reader), the report's Reproduce block (run again, same
 * outputs), and no `.skipdecode.lock` left when a run ends.
 */
import { assert, assertEquals, assertStringIncludes } from "@std/assert";
import { parseCsv } from "../data/datasets.ts";
import { csvField, reproduceCommand, shellWords, toCsv } from "../experiments/manifest.ts";
import { LOCK_FILE, OutputFolder } from "../io/output.ts";
import { sha256File } from "../model/hash.ts";
import { cli, ROOT, sandbox, TINY } from "./cli_helpers.ts";

Deno.test("items.csv writer: awkward fields come back whole through an RFC 4180 reader", () => {
  const rows = [
    { a: 'say "hi", then\nleave', b: 1.5, c: null, d: " padded ", e: ["x", "y"] },
    { a: "", b: NaN, c: true, d: "plain", e: "=1+2" },
  ];
  const text = toCsv(["a", "b", "c", "d", "e"], rows);
  const back = parseCsv(text, "items.csv").map((r) => r.fields);
  assertEquals(back, [
    ["a", "b", "c", "d", "e"],
    ['say "hi", then\nleave', "1.5", "", " padded ", '["x","y"]'],
    ["", "", "true", "plain", "=1+2"],
  ]);
  assertEquals(csvField(3), "3");
  assertEquals(
    reproduceCommand("p", { t: { type: "string" }, n: { type: "boolean" } }, {
      t: "it's {input}\\n",
      n: false,
    }),
    "p --t 'it'\\''s {input}\\n' --no-n",
  );
  assertEquals(shellWords("p --t 'it'\\''s {input}\\n' --no-n ''"), [
    "p",
    "--t",
    "it's {input}\\n",
    "--no-n",
    "",
  ]);
});

Deno.test("output folders: the lock file is removed when the run ends", () => {
  using box = sandbox("lock");
  const out = OutputFolder.open(`${box.dir}/run`);
  out.write("a.txt", "a\n");
  assert(Deno.statSync(`${box.dir}/run/${LOCK_FILE}`).isFile);
  out.close();
  assertEquals([...Deno.readDirSync(`${box.dir}/run`)].map((e) => e.name), ["a.txt"]);
  // Reopened and closed again: still nothing left.
  OutputFolder.open(`${box.dir}/run`).close();
  assertEquals([...Deno.readDirSync(`${box.dir}/run`)].map((e) => e.name), ["a.txt"]);
});

Deno.test("sweep run folder: manifest.json, items.csv, Reproduce block reruns to the same items", async () => {
  using box = sandbox("provenance");
  // Own data: a TSV with other column names, a list of refs per input through two rows.
  const tsv = `${box.rel}/d.tsv`;
  Deno.writeTextFileSync(
    `${ROOT}/${tsv}`,
    "source\ttarget\tid\n" +
      "name[The Eagle], eatType[coffee shop]\tThe Eagle is a coffee shop.\t1\n" +
      "name[Aromi], food[Italian]\tAromi serves Italian food.\t2\n" +
      "name[The Eagle], eatType[coffee shop]\tA coffee shop: The Eagle.\t1\n",
  );
  const args = [
    "sweep",
    "--model",
    TINY,
    "--data",
    tsv,
    "--input-column",
    "source",
    "--ref-column",
    "target",
    "--template",
    "{input}\\n",
    "--items",
    "2",
    "--policy",
    "full",
    "--policy",
    "linear:max=8,min=2,warmup=1,horizon=6",
    "--max-new-tokens",
    "6",
    "--batch-size",
    "2",
    "--backend",
    "cpu",
    "--no-cache",
    "--no-png",
  ];
  const a = await cli([...args, "--out", `${box.rel}/a`]);
  assertEquals(a.code, 0, a.stderr);
  const dir = `${box.dir}/a`;
  const names = [...Deno.readDirSync(dir)].map((e) => e.name);
  assert(!names.includes(LOCK_FILE), `lock file left: ${names}`);
  for (const f of ["manifest.json", "items.csv", "report.md", "sweep.json"]) {
    assert(names.includes(f), `${f} missing: ${names}`);
  }

  // manifest.json: every field the issue lists.
  const m = JSON.parse(Deno.readTextFileSync(`${dir}/manifest.json`));
  assertEquals(m.command, "sweep");
  assertEquals(m.argv, [...args, "--out", `${box.rel}/a`]);
  assertStringIncludes(m.commandLine, "deno task skipdecode sweep");
  assertEquals(m.config.items, 2); // typed options: numbers stay numbers
  assertEquals(m.config["input-column"], "source");
  assertEquals(m.config.policy, ["full", "linear:max=8,min=2,warmup=1,horizon=6"]);
  assertEquals(m.toolkit.name, "@skipdecode/skipdecode");
  assert(/^\d+\.\d+\.\d+/.test(m.toolkit.version), m.toolkit.version);
  assert(m.toolkit.commit === undefined || /^[0-9a-f]{40}$/.test(m.toolkit.commit));
  assertEquals(m.model.source, TINY);
  const cfg = m.model.files.find((f: { path: string }) => f.path === "config.json");
  assertEquals(cfg.sha256, sha256File(`${TINY}/config.json`));
  assert(m.model.files.some((f: { path: string }) => /safetensors|\.bin$/.test(f.path)));
  assertEquals(m.data.source, tsv);
  assertEquals(m.data.files[0].sha256, sha256File(`${ROOT}/${tsv}`));
  assertEquals([m.data.template, m.data.items], ["{input}\n", 2]);
  assertEquals(m.backend.name, "cpu");
  assertEquals(m.seed, 0);
  assert(Date.parse(m.startedAt) <= Date.parse(m.endedAt), `${m.startedAt} ${m.endedAt}`);

  // items.csv: one row per policy x item, every per-item metric, parsed back.
  const recs = parseCsv(Deno.readTextFileSync(`${dir}/items.csv`), "items.csv");
  const header = recs[0].fields;
  assertEquals(header, [
    "policy",
    "item",
    "input",
    "prompt",
    "refs",
    "output",
    "finish",
    "length",
    "layers",
    "mean_layers",
    "bleu",
    "rouge_l",
    "nll",
    "same_as_full",
  ]);
  const rows = recs.slice(1).map((r) => Object.fromEntries(header.map((h, k) => [h, r.fields[k]])));
  assertEquals(rows.length, 4);
  assertEquals(rows.map((r) => r.policy), [
    "full",
    "full",
    "linear:max=8,min=2,warmup=1,horizon=6",
    "linear:max=8,min=2,warmup=1,horizon=6",
  ]);
  assertEquals(JSON.parse(rows[0].refs), [
    "The Eagle is a coffee shop.",
    "A coffee shop: The Eagle.",
  ]);
  assertEquals(rows[0].input, "name[The Eagle], eatType[coffee shop]");
  const gens = Deno.readTextFileSync(`${dir}/generations.jsonl`).trim().split("\n").map((l) =>
    JSON.parse(l)
  );
  for (const [i, r] of rows.entries()) {
    assertEquals(r.output, gens[i].text);
    assertEquals(Number(r.length), gens[i].ids.length);
    const bleu = Number(r.bleu), rouge = Number(r.rouge_l), nll = Number(r.nll);
    assert(bleu >= 0 && bleu <= 100 && rouge >= 0 && rouge <= 1 && nll > 0, JSON.stringify(r));
    // full runs every layer; the linear decay fewer per token
    const mean = Number(r.mean_layers);
    if (r.policy === "full") assertEquals([mean, r.same_as_full], [12, "true"]);
    else assert(mean >= 2 && mean < 12, JSON.stringify(r));
  }

  // The Reproduce block is a complete command: rerun it (another --out) and compare.
  const report = Deno.readTextFileSync(`${dir}/report.md`);
  const block = /## Reproduce\n\n```sh\n(.+)\n```/.exec(report)?.[1];
  assert(block, "no Reproduce block");
  assertEquals(block, m.commandLine);
  const words = shellWords(block);
  assertEquals(words.slice(0, 4), ["deno", "task", "skipdecode", "sweep"]);
  const again = words.slice(3); // "sweep" and its options
  again[again.indexOf("--out") + 1] = `${box.rel}/b`;
  const b = await cli(again);
  assertEquals(b.code, 0, b.stderr);
  assertEquals(
    Deno.readTextFileSync(`${box.dir}/b/items.csv`),
    Deno.readTextFileSync(`${dir}/items.csv`),
  );
  const mb = JSON.parse(Deno.readTextFileSync(`${box.dir}/b/manifest.json`));
  assertEquals({ ...mb.config, out: "" }, { ...m.config, out: "" });
});
