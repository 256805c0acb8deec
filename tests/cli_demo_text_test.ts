/**
 * The demo chooses its measurements by the model: E2E prompts and BLEU for the project's
 * E2E-trained checkpoints; held-out text, teacher-forced NLL and agreement with the full
 * model for a pretrained model (here a random OPT-shaped checkpoint in `.bin` form, as
 * the facebook/opt-* repositories hold them), and the report says so.
 */
import { shellWords } from "../experiments/manifest.ts";
import { assert, assertEquals, assertStringIncludes } from "@std/assert";
import { measuresFor, splitForContinuation } from "../cli/heldout_text.ts";
import { heldOutTextItems } from "../cli/heldout_text.ts";
import { writeRandomCheckpoint } from "../model/fixture.ts";
import { openSafetensors } from "../model/safetensors.ts";
import { contiguousCheckpoint, writeTorchBin } from "../bench/torch_bin_writer.ts";
import { cli, ROOT, TINY } from "./cli_helpers.ts";

Deno.test("demo measures: E2E for E2E-trained checkpoints, held-out text otherwise", async () => {
  assertEquals(measuresFor(TINY, true), "e2e");
  assertEquals(measuresFor("/x/models/tiny-opt-e2e-dense/", false), "e2e");
  assertEquals(measuresFor("facebook/opt-125m", false), "text");
  assertEquals(measuresFor("/cache/models--facebook--opt-125m/snapshots/abc", false), "text");
  assertEquals(splitForContinuation("The Eagle is a cheap coffee shop near Burger King."), {
    prompt: "The Eagle is",
    refs: [" a cheap coffee shop near Burger King."],
  });
  assertEquals(splitForContinuation("Aromi is a pub."), undefined);
  const { items, file } = await heldOutTextItems(5);
  assertEquals(items.length, 5);
  assert(file.endsWith(".csv"));
  assertEquals(new Set(items.map((it) => it.prompt + it.refs[0])).size, 5);
  for (const it of items) assert(it.refs[0].startsWith(" ") && it.prompt.split(" ").length >= 3);
});

Deno.test("demo on a pretrained (.bin) model reports NLL and agreement on held-out text", async () => {
  // The demo task reads only the repository (and ../shared, the HF cache): the model goes
  // under out/.
  const id = crypto.randomUUID().slice(0, 8);
  const tmp = `${ROOT}/out/test-demo-model-${id}`;
  Deno.mkdirSync(tmp, { recursive: true });
  const rel = `reports/test-demo-text-${id}`;
  try {
    // A random OPT in the facebook/opt-* layout: pytorch_model.bin, decoder.* names.
    const st = `${tmp}/st`;
    writeRandomCheckpoint(st, {
      shape: {
        hiddenSize: 32,
        numAttentionHeads: 2,
        ffnDim: 48,
        numHiddenLayers: 4,
        vocabSize: 50272,
      },
      dtype: "F16",
      seed: 3,
      prefix: "decoder",
      tokenizerDir: TINY,
    });
    const model = `${tmp}/opt-pretrained`;
    Deno.mkdirSync(model);
    for (const f of Deno.readDirSync(st)) {
      if (f.name !== "model.safetensors") {
        Deno.copyFileSync(`${st}/${f.name}`, `${model}/${f.name}`);
      }
    }
    const tensors = [...openSafetensors(`${st}/model.safetensors`).tensors.values()].map((t) => ({
      name: t.name,
      dtype: t.dtype,
      shape: [...t.shape],
      data: t.bytes(),
    }));
    writeTorchBin(`${model}/pytorch_model.bin`, contiguousCheckpoint(tensors));
    const r = await cli([
      "--model",
      model,
      "--items",
      "3",
      "--max-new-tokens",
      "4",
      "--oracle-items",
      "0",
      "--backend",
      "cpu",
      "--no-png",
      "--no-cache",
      "--offline",
      "--out",
      rel,
    ], { task: "demo", env: { SKIPDECODE_PROGRESS: "off" } });
    assertEquals(r.code, 0, r.stderr);
    const report = Deno.readTextFileSync(`${ROOT}/${rel}/report.md`);
    assertStringIncludes(report, "This model is pretrained, not fine-tuned on E2E");
    assertStringIncludes(report, "held-out text");
    assertStringIncludes(report, "**agreement**");
    assertStringIncludes(report, "**NLL**");
    const sweep = JSON.parse(Deno.readTextFileSync(`${ROOT}/${rel}/sweep.json`));
    const rows = sweep.rows as { policy: string; nll: number | null; agreement: number }[];
    assert(rows.length >= 2);
    for (const row of rows) assert(typeof row.nll === "number" && row.nll > 0, row.policy);
    assertEquals(rows.find((x) => x.policy === "full")?.agreement, 1);
    // Provenance: the Reproduce block reruns the demo to the same per-item table.
    const m = JSON.parse(Deno.readTextFileSync(`${ROOT}/${rel}/manifest.json`));
    assertEquals([m.command, m.model.source, m.backend.name], ["demo", model, "cpu"]);
    assert(m.model.files.some((f: { path: string }) => f.path === "pytorch_model.bin"));
    const block = /## Reproduce\n\n```sh\n(.+)\n```/.exec(report)?.[1];
    assertEquals(block, m.commandLine);
    const words = shellWords(block!);
    assertEquals(words.slice(0, 3), ["deno", "task", "demo"]);
    const again = words.slice(3);
    again[again.indexOf("--out") + 1] = `${rel}/again`;
    const r2 = await cli(again, { task: "demo", env: { SKIPDECODE_PROGRESS: "off" } });
    assertEquals(r2.code, 0, r2.stderr);
    assertEquals(
      Deno.readTextFileSync(`${ROOT}/${rel}/again/items.csv`),
      Deno.readTextFileSync(`${ROOT}/${rel}/items.csv`),
    );
  } finally {
    Deno.removeSync(tmp, { recursive: true });
    try {
      Deno.removeSync(`${ROOT}/${rel}`, { recursive: true });
    } catch { /* not written */ }
  }
});
