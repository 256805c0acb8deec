/**
 * Converting `.bin` checkpoints to a standard Hugging Face folder: the library function,
 * the cached copy keyed by the source's identity, and `skipdecode convert` as a user runs
 * it (a subprocess with the task's permissions).
 */
import { assert, assertEquals, assertStringIncludes } from "@std/assert";
import { createCpuBackend } from "../backend/cpu/backend.ts";
import { loadWeights } from "../model/checkpoint.ts";
import { convertCheckpoint, convertedCopy } from "../model/convert.ts";
import { openSafetensors } from "../model/safetensors.ts";
import { loadCheckpoint } from "../model/hub.ts";
import { fullPlan } from "./webgpu_helpers.ts";
import { missingShared, sharedPath } from "./helpers.ts";

/** The PyTorch fixtures live only in ../shared: without it these tests are skipped loudly. */
const NO_FIXTURES = missingShared("fixtures/torch-bin");
import { assertCheckpointError, withTempDir } from "./model_test_helpers.ts";

const FIXTURES = ["pre-ln-zip", "pre-ln-legacy", "pre-ln-sharded", "post-ln-350m-style-zip"];
const IDS = [2, 17, 404, 9, 999, 3];

async function logits(dir: string): Promise<Float32Array> {
  const w = await loadWeights(dir);
  const cpu = createCpuBackend(w);
  try {
    const sets = fullPlan(w.config.numHiddenLayers, IDS.length);
    return (await cpu.forward({ rows: [IDS], sets, padTokenId: 1 })).logits;
  } finally {
    cpu.dispose();
  }
}

Deno.test("convert: every fixture gives model.safetensors with OPTForCausalLM's names", {
  ignore: NO_FIXTURES,
}, async () => {
  await withTempDir(async (tmp) => {
    for (const name of FIXTURES) {
      const src = sharedPath(`fixtures/torch-bin/${name}`);
      const out = `${tmp}/${name}`;
      const r = convertCheckpoint(src, out);
      assertEquals(r.files, ["model.safetensors", "config.json"]);
      const st = openSafetensors(`${out}/model.safetensors`);
      assertEquals(st.metadata, { format: "pt" });
      const names = [...st.tensors.keys()];
      assert(names.every((n) => n.startsWith("model.decoder.")), names.join(", "));
      assert(!names.includes("lm_head.weight"), "a tied head is not stored twice");
      assert(names.includes("model.decoder.embed_tokens.weight"));
      assertEquals(names.includes("model.decoder.project_in.weight"), name.startsWith("post"));
      assertEquals(
        JSON.parse(Deno.readTextFileSync(`${out}/config.json`)),
        JSON.parse(Deno.readTextFileSync(`${src}/config.json`)),
      );
      const w = await loadWeights(out);
      assertEquals([w.format, w.sharded, w.warnings], ["safetensors", false, []]);
      assertEquals(await logits(out), await logits(src), name);
    }
    await assertCheckpointError(
      () => convertCheckpoint(`${tmp}/pre-ln-zip`, `${tmp}/pre-ln-zip`),
      "io",
      "into itself",
    );
  });
});

Deno.test("convert: the cached copy is keyed by the source file's identity", {
  ignore: NO_FIXTURES,
}, async () => {
  await withTempDir(async (tmp) => {
    const src = `${tmp}/src`;
    Deno.mkdirSync(src);
    const fixture = sharedPath("fixtures/torch-bin/pre-ln-zip");
    for (const f of ["config.json", "pytorch_model.bin"]) {
      Deno.copyFileSync(`${fixture}/${f}`, `${src}/${f}`);
      Deno.chmodSync(`${src}/${f}`, 0o644);
    }
    const cache = `${tmp}/cache`;
    const a = await convertedCopy(await loadWeights(src), cache);
    assert(a.converted);
    const b = await convertedCopy(await loadWeights(src), cache);
    assertEquals([b.dir, b.converted], [a.dir, false]);
    // A changed source file (new modification time) gets a new copy.
    const later = new Date(Date.now() + 5000);
    Deno.utimeSync(`${src}/pytorch_model.bin`, later, later);
    const c = await convertedCopy(await loadWeights(src), cache);
    assert(c.converted && c.dir !== a.dir);
    assertEquals(await logits(c.dir), await logits(src));
    // Safetensors weights need no copy.
    const d = await convertedCopy(await loadWeights(c.dir), cache);
    assertEquals([d.dir, d.converted], [c.dir, false]);
    assertEquals((await loadCheckpoint(src)).weights.format, "bin");
  });
});

Deno.test("cli convert: a .bin folder to out/, loadable, standard names; bad use is one line", {
  ignore: NO_FIXTURES,
}, async () => {
  const root = new URL("../", import.meta.url).pathname;
  const rel = `out/test-convert-${crypto.randomUUID().slice(0, 8)}`;
  const run = async (args: string[]) => {
    const o = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--allow-read",
        "--allow-env",
        "--allow-write=./out,./reports,./.cache",
        "cli/main.ts",
        "convert",
        ...args,
      ],
      cwd: root,
      env: { NO_COLOR: "1", HF_HUB_OFFLINE: "1" },
      stdout: "piped",
      stderr: "piped",
    }).output();
    const dec = new TextDecoder();
    return { code: o.code, stdout: dec.decode(o.stdout), stderr: dec.decode(o.stderr) };
  };
  try {
    const src = sharedPath("fixtures/torch-bin/pre-ln-sharded");
    const r = await run(["--model", src, "--out", rel]);
    assertEquals(r.code, 0, r.stderr);
    assertStringIncludes(r.stdout, `wrote ${rel}: model.safetensors, config.json (52 tensors`);
    assertStringIncludes(r.stdout, "OPT 3 layers, d 64");
    const w = await loadWeights(`${root}${rel}`);
    assertEquals(w.format, "safetensors");
    const names = [...openSafetensors(`${root}${rel}/model.safetensors`).tensors.keys()];
    assert(names.every((n) => n.startsWith("model.decoder.")));
    assertEquals(await logits(`${root}${rel}`), await logits(src));
    const missing = await run(["--out", rel]);
    assertEquals(missing.code, 2);
    assertStringIncludes(missing.stderr, "--model is required");
    const outside = await run(["--model", src, "--out", "/tmp/elsewhere-convert"]);
    assertEquals(outside.code, 2);
    assertStringIncludes(outside.stderr, "--out /tmp/elsewhere-convert");
    assertEquals(outside.stderr.trim().split("\n").length, 1, outside.stderr);
  } finally {
    Deno.removeSync(`${root}${rel}`, { recursive: true });
  }
});
