/**
 * Commands never delete what they did not write: `readout --out` into a sweep's folder is
 * refused and leaves the sweep's report, data and charts as they were (it used to delete
 * them); `convert` refuses a non-empty `--out` without `--overwrite`, and with it leaves
 * only what it wrote (an old `tokenizer.json` or optimizer state used to survive and win).
 */
import { assert, assertEquals, assertMatch } from "@std/assert";
import { OutputFolder } from "../io/output.ts";
import { writeRandomCheckpoint } from "../model/fixture.ts";
import { TINY_MODEL_DIR } from "../data/bundled.ts";
import { cli, sandbox, snapshot } from "./cli_helpers.ts";

Deno.test("readout --out into a sweep's folder is refused; the sweep's files stay", async () => {
  using box = sandbox("own-readout");
  const sweep = OutputFolder.open(`${box.rel}/sweep`, { owner: "sweep" });
  sweep.writeSet({
    "report.md": "# sweep\n",
    "sweep.json": "{}\n",
    "generations.jsonl": "{}\n",
    "frontier.html": "<html></html>\n",
  });
  sweep.close();
  const files = () => {
    const all = snapshot(`${box.dir}/sweep`);
    delete all[".skipdecode.lock"]; // the lock's note names the last holder
    return all;
  };
  const before = files();
  const r = await cli([
    "readout",
    "--model",
    TINY_MODEL_DIR,
    "--backend",
    "cpu",
    "--prompt",
    "name[A]\\n",
    "--max-new-tokens",
    "1",
    "--out",
    `${box.rel}/sweep`,
  ]);
  assertEquals(r.code, 2, r.stderr);
  assertMatch(r.stderr, /^error: --out .*sweep holds the files of a sweep run \(.*\); readout/m);
  assertEquals(files(), before);
});

Deno.test("convert: a non-empty --out needs --overwrite, and then holds only what convert wrote", async () => {
  using box = sandbox("own-convert");
  const src = `${box.dir}/src`;
  writeRandomCheckpoint(src, {
    shape: { vocabSize: 50272, hiddenSize: 16, numAttentionHeads: 2, ffnDim: 24 },
    tokenizerDir: TINY_MODEL_DIR,
  });
  const out = `${box.dir}/out`;
  Deno.mkdirSync(out);
  Deno.writeTextFileSync(`${out}/tokenizer.json`, '{"old": true}');
  Deno.writeTextFileSync(`${out}/optimizer.safetensors`, "old optimizer state");
  const args = ["convert", "--model", src, "--out", `${box.rel}/out`];
  const refused = await cli(args);
  assertEquals(refused.code, 2, refused.stderr);
  assertMatch(
    refused.stderr,
    /--out .*out is not empty \(optimizer\.safetensors, tokenizer\.json\)/,
  );
  assertEquals(Deno.readTextFileSync(`${out}/tokenizer.json`), '{"old": true}');
  const r = await cli([...args, "--overwrite"]);
  assertEquals(r.code, 0, r.stderr);
  const names = [...Deno.readDirSync(out)].map((e) => e.name).filter((n) => !n.startsWith("."));
  assert(!names.includes("optimizer.safetensors"), `${names}`);
  assert(!names.includes("tokenizer.json"), `the old tokenizer.json was kept: ${names}`);
  assert(names.includes("model.safetensors") && names.includes("vocab.json"), `${names}`);
});
