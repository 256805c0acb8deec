/**
 * Non-finite values and mismatched inputs at load, at their causes: a NaN or Infinity in
 * any weight is refused when the model is loaded, naming the tensor (it used to give token
 * 0s and empty text on the CPU and a normal-looking sentence on WebGPU); finite weights
 * that overflow are caught at the LM head on the CPU backend (the oracle) with an error
 * naming the row and column; a tokenizer too small for the model and a `pad_token_id`
 * outside the vocabulary are refused naming the folder or `config.json`.
 */
import { assertMatch, assertRejects, assertThrows } from "@std/assert";
import { generate, loadModel } from "../decode/mod.ts";
import { CheckpointError } from "../model/errors.ts";
import { writeRandomCheckpoint } from "../model/fixture.ts";
import { openSafetensors } from "../model/safetensors.ts";
import { readOptConfig } from "../model/config.ts";
import { loadTrainingCheckpoint } from "../train/checkpoint.ts";
import { TINY_MODEL_DIR } from "../data/bundled.ts";

const SHAPE = {
  vocabSize: 50272,
  hiddenSize: 16,
  numAttentionHeads: 2,
  ffnDim: 24,
  numHiddenLayers: 2,
  maxPositionEmbeddings: 64,
};

function model(): string {
  const dir = Deno.makeTempDirSync({ prefix: "finite-" });
  writeRandomCheckpoint(dir, { shape: SHAPE, dtype: "F32", seed: 5, tokenizerDir: TINY_MODEL_DIR });
  return dir;
}

/** Overwrites element `i` of a stored F32 tensor with `value`, in place. */
function poke(dir: string, stored: string, i: number, value: number): void {
  const t = openSafetensors(`${dir}/model.safetensors`).tensors.get(stored)!;
  using f = Deno.openSync(`${dir}/model.safetensors`, { write: true });
  f.seekSync(t.offset + 4 * i, Deno.SeekMode.Start);
  f.writeSync(new Uint8Array(new Float32Array([value]).buffer));
}

Deno.test("a NaN or Infinity weight is refused at load, naming the tensor (library and training)", async () => {
  for (
    const [stored, value] of [
      ["model.decoder.layers.1.fc1.weight", NaN],
      ["model.decoder.final_layer_norm.weight", Infinity],
    ] as const
  ) {
    const dir = model();
    try {
      poke(dir, stored, 7, value);
      const e = await assertRejects(() => loadModel(dir, { backend: "cpu" }), CheckpointError);
      assertMatch(
        e.message,
        new RegExp(`tensor ${stored.replaceAll(".", "\\.")} in .* holds ${value}`),
      );
      const t = assertThrows(() => loadTrainingCheckpoint(dir), CheckpointError);
      assertMatch(t.message, /must be finite/);
    } finally {
      Deno.removeSync(dir, { recursive: true });
    }
  }
});

Deno.test("finite weights that overflow: the CPU backend names the row at the LM head", async () => {
  const dir = model();
  try {
    for (const l of [0, 1]) poke(dir, `model.decoder.layers.${l}.fc2.bias`, 3, 3e38);
    const m = await loadModel(dir, { backend: "cpu", onNote: () => {} });
    const e = await assertRejects(() => generate(m, ["name[A]\n"], { maxNewTokens: 2 }));
    assertMatch((e as Error).message, /the LM head produced NaN for row 0/);
    m.dispose();
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("a tokenizer that cannot be the model's, and special ids past the vocabulary, are refused", async () => {
  const dir = model();
  try {
    for (const n of ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"]) {
      try {
        Deno.removeSync(`${dir}/${n}`);
      } catch { /* absent */ }
    }
    Deno.writeTextFileSync(
      `${dir}/vocab.json`,
      JSON.stringify({ "<s>": 0, "<pad>": 1, "</s>": 2 }),
    );
    Deno.writeTextFileSync(`${dir}/merges.txt`, "#version: 0.2\n");
    const e = await assertRejects(() => loadModel(dir, { backend: "cpu" }));
    assertMatch((e as Error).message, /has only 3 ids, fewer than the 256 byte symbols/);
    const cfg = JSON.parse(Deno.readTextFileSync(`${dir}/config.json`));
    Deno.writeTextFileSync(`${dir}/config.json`, JSON.stringify({ ...cfg, pad_token_id: 60000 }));
    const c = assertThrows(() => readOptConfig(`${dir}/config.json`), CheckpointError);
    assertMatch(c.message, /config\.json.*pad_token_id.*60000.*below vocab_size \(50272\)/);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
