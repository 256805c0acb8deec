/**
 * The procedure's `--train`/`--test` in every format a sweep's `--data` takes
 * (experiments/procedure.ts `procedureData`, `procedureItems`): CSV, TSV, JSONL and Parquet
 * give the same items through a column mapping and a template; `--holdout` splits by input
 * (every reference on one side) and the held-out inputs are never in the training items; a
 * test file in another format is compared with the training file by input; a missing column
 * is named. The trainer fine-tunes on those items as given (`hooks.items`): the prompts the
 * template made, the references of the training inputs only. With `--slurm`, an `hf:` id
 * stays an id in the array's command line (the tasks read the HF cache).
 */
import { assert, assertEquals, assertRejects } from "@std/assert";
import { fileURLToPath } from "node:url";
import { parquetWriteBuffer } from "hyparquet-writer";
import { DataError } from "../data/datasets.ts";
import { HOLDOUT_SEED, procedureData, procedureItems } from "../experiments/procedure.ts";
import { resolveTrainConfig, train } from "../train/mod.ts";
import { BUNDLED } from "./helpers.ts";
import { writeSlurmArray } from "../cli/shard.ts";
import { procedureCommand } from "../cli/procedure.ts";
import { hubCacheDir } from "../model/hub.ts";
import { withTempDir } from "./model_test_helpers.ts";

/** Ten inputs with one to three references each, under non-default column names. */
const ROWS = Array.from({ length: 10 }, (_, i) => i).flatMap((i) =>
  Array.from({ length: 1 + (i % 3) }, (_, k) => ({
    meaning: `name[Place ${i}], area[${i % 2 ? "riverside" : "city centre"}]`,
    said: `Place ${i} is ${k === 0 ? "nice" : `variant ${k}`} .`,
  }))
);
const TEMPLATE = "Data: {input}\nText:";

function writeAll(dir: string): Record<string, string> {
  const quote = (s: string, sep: string) =>
    s.includes(sep) || s.includes('"') ? `"${s.replaceAll('"', '""')}"` : s;
  const delimited = (sep: string) =>
    `meaning${sep}said\n` + ROWS.map((r) => `${quote(r.meaning, sep)}${sep}${quote(r.said, sep)}`)
      .join("\n") +
    "\n";
  const files = {
    csv: `${dir}/d.csv`,
    tsv: `${dir}/d.tsv`,
    jsonl: `${dir}/d.jsonl`,
    parquet: `${dir}/d.parquet`,
  };
  Deno.writeTextFileSync(files.csv, delimited(","));
  Deno.writeTextFileSync(files.tsv, delimited("\t"));
  Deno.writeTextFileSync(files.jsonl, ROWS.map((r) => JSON.stringify(r)).join("\n") + "\n");
  Deno.writeFileSync(
    files.parquet,
    new Uint8Array(parquetWriteBuffer({
      columnData: [
        { name: "meaning", data: ROWS.map((r) => r.meaning), type: "STRING" },
        { name: "said", data: ROWS.map((r) => r.said), type: "STRING" },
      ],
    })),
  );
  return files;
}

const columns = { inputColumn: "meaning", refColumn: "said", template: TEMPLATE };

Deno.test("procedure data: CSV, TSV, JSONL and Parquet give the same items; --holdout splits by input", async () => {
  await withTempDir(async (dir) => {
    const files = writeAll(dir);
    const results = [];
    for (const [kind, file] of Object.entries(files)) {
      const d = await procedureData({ train: file, test: file, holdout: 3, items: 2, columns });
      assertEquals(d.files, [file], kind);
      assertEquals(d.overlap, [], `${kind}: held-out inputs are not training inputs`);
      assertEquals(d.train.length, 7, kind);
      assertEquals(d.test.length, 2, `${kind}: --items 2 of the 3 held out`);
      const trainInputs = new Set(d.train.map((t) => t.input));
      for (const t of d.test) {
        assert(!trainInputs.has(t.input), `${kind}: ${t.input} is in both`);
        assertEquals(t.prompt, `Data: ${t.input}\nText:`);
        // every reference of a held-out input is on the test side
        assertEquals(t.refs, ROWS.filter((r) => r.meaning === t.input).map((r) => r.said));
      }
      results.push({ train: d.train, test: d.test });
    }
    for (const r of results.slice(1)) assertEquals(r, results[0], "formats disagree");
    // the same seeded split the trainer makes (HOLDOUT_SEED) whatever the format
    assertEquals(HOLDOUT_SEED, 0);
    // a test file in another format: compared with the training file by input
    const cross = await procedureData({
      train: files.csv,
      test: files.parquet,
      items: 4,
      columns,
    });
    assertEquals(cross.overlap, [0, 1, 2, 3], "the same inputs: all overlap");
    assertEquals(cross.files, [files.csv, files.parquet]);
    // the E2E defaults still read the bundled CSV as before (mr, ref, "{mr}\n")
    const e2e = await procedureItems(
      fileURLToPath(new URL("data/e2e/testset-part2.csv", BUNDLED)),
      {},
    );
    assertEquals(e2e.length, 847);
    assertEquals(e2e[0].prompt, `${e2e[0].input}\n`);
    // a column that is not there is named, with the columns that are
    const err = await assertRejects(
      () => procedureData({ train: files.tsv, test: files.tsv, items: 2 }),
      DataError,
    );
    assert(/--input-column/.test(err.message) && err.message.includes("meaning"), err.message);
  });
});

Deno.test("procedure data: fine-tuning reads the items as given, held-out inputs left out", async () => {
  await withTempDir(async (dir) => {
    const files = writeAll(dir);
    const items = await procedureItems(files.jsonl, { columns });
    const notes: string[] = [];
    const tiny = fileURLToPath(new URL("models/tiny-opt-e2e", BUNDLED));
    await train(
      resolveTrainConfig([{
        model: tiny,
        out: `${dir}/tuned`,
        data: files.jsonl, // names the data only: the items are given
        heldOut: 3,
        seed: HOLDOUT_SEED,
        policy: "linear:max=8,min=2,warmup=1,horizon=8",
        steps: 1,
        batchSize: 4,
        evalEvery: 0,
        backend: "cpu",
      }]),
      { overwrite: true, onNote: (l) => notes.push(l), items },
    );
    const line = notes.find((l) => l.startsWith("data: "));
    // 7 training inputs; their references: ROWS minus those of the 3 held-out inputs
    const held = (await procedureData({
      train: files.jsonl,
      test: files.jsonl,
      holdout: 3,
      items: 3,
      columns,
    })).test;
    const pairs = ROWS.length - held.reduce((a, t) => a + t.refs.length, 0);
    assertEquals(line?.startsWith(`data: ${pairs} training pairs from 7 MRs`), true, line);
    assert(Deno.statSync(`${dir}/tuned/config.json`).isFile);
  });
});

Deno.test("procedure --slurm: an hf: --train stays a dataset id in the array's command", async () => {
  await withTempDir(async (dir) => {
    const out = `${dir}/run`;
    const code = await writeSlurmArray(
      { out, train: "hf:acme/e2e_mini:train", test: "hf:acme/e2e_mini:test", steps: 1 },
      { unitItems: 8, slurm: { shards: 2, maxParallel: 2, resources: [], submit: false } },
      procedureCommand,
      { read: { train: "hf:acme/e2e_mini:train", test: "hf:acme/e2e_mini:test" } },
    );
    assertEquals(code, 0);
    const script = Deno.readTextFileSync(`${out}/procedure.sbatch`).replace(/ \\\n\s+/g, " ");
    assert(script.includes(" --train hf:acme/e2e_mini:train "), script);
    assert(script.includes(" --test hf:acme/e2e_mini:test "), script);
    assert(!/\/hf:acme/.test(script), "the id was resolved as a path");
    assert(script.includes(hubCacheDir()), "the tasks may read the HF cache");
  });
});
