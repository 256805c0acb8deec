import { assert, assertEquals, assertGreater, assertLess, assertStringIncludes } from "@std/assert";
import {
  allTensors,
  describeModel,
  loadWeights,
  loadWeightsSync,
  normalizeWeightName,
} from "../model/checkpoint.ts";
import { OPT_SHAPES, optConfigToJson, parseOptConfig } from "../model/config.ts";
import { fixtureTensors, writeRandomCheckpoint } from "../model/fixture.ts";
import { float32ToBytes, openSafetensors, tensorToFloat32 } from "../model/safetensors.ts";
import type { DType, OptConfig, Tensor } from "../model/types.ts";
import {
  assertCheckpointError,
  editHeader,
  sharedModelDir,
  splitSafetensors,
  withTempDir,
} from "./model_test_helpers.ts";

/** Parameters of an OPT by formula, counting a tied head once. */
function paramCount(c: OptConfig, tied: boolean): number {
  const d = c.hiddenSize, f = c.ffnDim, e = c.wordEmbedProjDim;
  const layer = 4 * (d * d + d) + 2 * d * f + f + d + 4 * d;
  const finalLn = c.doLayerNormBefore && !c.removeFinalLayerNorm ? 2 * d : 0;
  const proj = e !== d ? 2 * d * e : 0;
  return c.vocabSize * e * (tied ? 1 : 2) + (c.maxPositionEmbeddings + 2) * d +
    c.numHiddenLayers * layer + finalLn + proj;
}

// ------------------------------------------------------------------ config

Deno.test("config: defaults, camelCase mapping and torch_dtype", () => {
  const c = parseOptConfig({
    vocab_size: 100,
    hidden_size: 16,
    num_hidden_layers: 3,
    num_attention_heads: 4,
    ffn_dim: 64,
    max_position_embeddings: 32,
    torch_dtype: "float16",
  });
  assertEquals(c, {
    vocabSize: 100,
    hiddenSize: 16,
    numHiddenLayers: 3,
    numAttentionHeads: 4,
    ffnDim: 64,
    maxPositionEmbeddings: 32,
    doLayerNormBefore: true,
    wordEmbedProjDim: 16,
    enableBias: true,
    layerNormElementwiseAffine: true,
    removeFinalLayerNorm: false,
    activationFunction: "relu",
    bosTokenId: 2,
    eosTokenId: 2,
    padTokenId: 1,
    tieWordEmbeddings: true,
    torchDtype: "float16",
  });
});

Deno.test("config: presets survive optConfigToJson -> parseOptConfig; 350m is post-LN", () => {
  for (const [name, shape] of Object.entries(OPT_SHAPES)) {
    assertEquals(parseOptConfig(optConfigToJson(shape), name), shape);
  }
  const m = OPT_SHAPES["opt-350m"];
  assertEquals(
    [m.hiddenSize, m.numHiddenLayers, m.numAttentionHeads, m.ffnDim, m.wordEmbedProjDim],
    [1024, 24, 16, 4096, 512],
  );
  assertEquals(m.doLayerNormBefore, false);
  assertEquals(OPT_SHAPES["opt-6.7b"].ffnDim, 16384);
  assertEquals(paramCount(OPT_SHAPES["opt-125m"], true), 125_239_296); // HF's count for opt-125m
  assertEquals(paramCount(OPT_SHAPES["opt-350m"], true), 331_196_416); // and for opt-350m
});

Deno.test("config: each bad field is named with the file", async () => {
  const base = optConfigToJson(OPT_SHAPES["opt-125m"]);
  const bad = (patch: Record<string, unknown>) => ({ ...base, ...patch });
  const cases: [Record<string, unknown>, string[]][] = [
    [bad({ ffn_dim: undefined }), ['field "ffn_dim" is missing']],
    [bad({ hidden_size: "768" }), ['field "hidden_size" must be an integer', 'the string "768"']],
    [bad({ num_hidden_layers: 0 }), ['"num_hidden_layers" must be at least 1']],
    [bad({ num_attention_heads: 7 }), ['"num_attention_heads" (7) must divide hidden_size (768)']],
    [bad({ activation_function: "gelu" }), ['"activation_function" is "gelu"', 'only "relu"']],
    [bad({ do_layer_norm_before: 1 }), ['"do_layer_norm_before" must be true or false']],
    [bad({ model_type: "gpt2" }), ['"model_type" is "gpt2"']],
    [bad({ vocab_size: 1.5 }), ['"vocab_size" must be an integer']],
  ];
  for (const [json, fragments] of cases) {
    const e = await assertCheckpointError(
      () => parseOptConfig(json, "x/config.json"),
      "config",
      "x/config.json",
      ...fragments,
    );
    assert(e.field !== undefined);
  }
  await assertCheckpointError(
    () => parseOptConfig([1], "c.json"),
    "config",
    "expected a JSON object",
  );
});

// ------------------------------------------------------------------ shared checkpoint

Deno.test("shared tiny-opt-e2e loads: 12 layers, f16, tied head, bytes match the file", async () => {
  const dir = sharedModelDir();
  const w = await loadWeights(dir);
  const c = w.config;
  assertEquals([c.numHiddenLayers, c.hiddenSize, c.numAttentionHeads, c.ffnDim], [12, 128, 4, 512]);
  assertEquals([c.vocabSize, c.maxPositionEmbeddings], [50272, 256]);
  assertEquals(w.layers.length, 12);
  assert(w.lmHead === w.embedTokens, "tied LM head is the embedding object");
  assert(w.finalLayerNorm !== undefined && w.projectIn === undefined);
  assertEquals(w.embedTokens.shape, [50272, 128]);
  assertEquals(w.embedPositions.shape, [258, 128]);
  assertEquals(w.layers[11].fc2.weight.shape, [128, 512]);
  assertEquals(w.layers[5].qProj.weight.name, "decoder.layers.5.self_attn.q_proj.weight");
  for (const t of allTensors(w)) assertEquals(t.dtype, "F16");
  const info = describeModel(w);
  assertEquals(info.parameters, paramCount(c, true));
  assertEquals(info.bytes, 2 * info.parameters);
  assertEquals(info.tensors, 196);
  // Independent check of one tensor's bytes against a hand-parsed header.
  const file = Deno.readFileSync(`${dir}/model.safetensors`);
  const { header, data } = splitSafetensors(file);
  const stored = Object.keys(header).find((k) => k.endsWith("layers.3.fc1.weight"))!;
  const [b, e] = header[stored].data_offsets;
  assertEquals(w.layers[3].fc1.weight.bytes(), data.slice(b, e));
  const v = tensorToFloat32(w.layers[3].fc1.weight);
  assert(v.every(Number.isFinite));
  assertGreater(v.reduce((s, x) => s + x * x, 0), 0);
});

// ------------------------------------------------------------------ round trips

function expectedBytes(tensors: Map<string, Uint8Array>, t: Tensor): Uint8Array {
  const data = tensors.get(t.name);
  assert(data, `fixture wrote no tensor for ${t.name}`);
  return data;
}

Deno.test("round trip: every dtype x sharded or not x both prefixes x tied or not", async () => {
  const dtypes: DType[] = ["F16", "BF16", "F32"];
  let combos = 0;
  for (const dtype of dtypes) {
    for (const sharded of [1, 3]) {
      for (const prefix of ["model.decoder", "decoder"] as const) {
        const tieLmHead = (combos % 2) === 0;
        await withTempDir((dir) => {
          const shape = { hiddenSize: 24, numAttentionHeads: 3, ffnDim: 40, vocabSize: 70 };
          const ck = writeRandomCheckpoint(dir, {
            shape,
            seed: 11,
            dtype,
            sharded,
            prefix,
            tieLmHead,
          });
          assertEquals(ck.files.length, sharded);
          const w = loadWeightsSync(dir);
          assertEquals(w.sharded, sharded > 1);
          assertEquals(w.warnings, []);
          assertEquals(w.lmHead === w.embedTokens, tieLmHead);
          const written = new Map<string, Uint8Array>();
          for (const t of fixtureTensors(ck.config, { seed: 11, dtype, prefix, tieLmHead })) {
            written.set(
              normalizeWeightName(t.name)!,
              typeof t.data === "function" ? t.data() : t.data,
            );
          }
          const all = allTensors(w);
          assertEquals(all.length, written.size);
          for (const t of all) {
            assertEquals(t.dtype, dtype);
            assertEquals(t.bytes(), expectedBytes(written, t), t.name);
          }
          assertEquals(describeModel(w).parameters, paramCount(w.config, tieLmHead));
        });
        combos++;
      }
    }
  }
  assertEquals(combos, 12);
});

Deno.test("round trip: opt-350m style (post-LN, project_in/out, no final LN)", async () => {
  await withTempDir((dir) => {
    const shape = {
      ...OPT_SHAPES["opt-350m"],
      vocabSize: 50,
      hiddenSize: 32,
      wordEmbedProjDim: 16,
      ffnDim: 48,
      numHiddenLayers: 3,
      numAttentionHeads: 2,
      maxPositionEmbeddings: 20,
    };
    writeRandomCheckpoint(dir, { shape, seed: 5, dtype: "F32", prefix: "decoder" });
    const w = loadWeightsSync(dir);
    assertEquals(w.config.doLayerNormBefore, false);
    assertEquals(w.finalLayerNorm, undefined);
    assertEquals(w.projectIn?.shape, [32, 16]);
    assertEquals(w.projectOut?.shape, [16, 32]);
    assertEquals(w.embedTokens.shape, [50, 16]);
    assertEquals(w.lmHead.shape, [50, 16]);
    // Values are sane and not degenerate: LN weights near 1, biases small but nonzero.
    const ln = tensorToFloat32(w.layers[0].selfAttnLayerNorm.weight);
    assert(ln.every((x) => x > 0.4 && x < 1.6));
    const bias = tensorToFloat32(w.layers[2].fc1.bias!);
    assert(bias.every((x) => x !== 0 && Math.abs(x) < 1));
    assertEquals(
      tensorToFloat32(w.layers[0].fc1.weight)[0],
      tensorToFloat32(w.layers[0].fc1.weight)[0],
    );
  });
});

Deno.test("fixture values depend on seed and name, not on dtype or layout", async () => {
  await withTempDir((dir) => {
    writeRandomCheckpoint(`${dir}/a`, { seed: 1, dtype: "F32" });
    writeRandomCheckpoint(`${dir}/b`, { seed: 1, dtype: "F32", sharded: 2, prefix: "decoder" });
    writeRandomCheckpoint(`${dir}/c`, { seed: 2, dtype: "F32" });
    writeRandomCheckpoint(`${dir}/d`, { seed: 1, dtype: "BF16" });
    const [a, b, c, d] = ["a", "b", "c", "d"].map((x) => loadWeightsSync(`${dir}/${x}`));
    const fa = tensorToFloat32(a.layers[1].fc2.weight);
    assertEquals(tensorToFloat32(b.layers[1].fc2.weight), fa);
    assert(tensorToFloat32(c.layers[1].fc2.weight).some((x, i) => x !== fa[i]));
    assertEquals(d.layers[1].fc2.weight.bytes(), float32ToBytes(fa, "BF16"));
    assert(fa.some((x, i) => x !== tensorToFloat32(a.layers[0].fc2.weight)[i]), "layers differ");
  });
});

Deno.test("no-bias, no-affine configs: biases absent, LayerNorms synthesised as 1 and 0", async () => {
  await withTempDir((dir) => {
    writeRandomCheckpoint(dir, { shape: { enableBias: false, layerNormElementwiseAffine: false } });
    const w = loadWeightsSync(dir);
    assertEquals(w.layers[0].qProj.bias, undefined);
    assertEquals(w.layers[1].fc2.bias, undefined);
    assert(tensorToFloat32(w.layers[0].finalLayerNorm.weight).every((x) => x === 1));
    assert(tensorToFloat32(w.finalLayerNorm!.bias).every((x) => x === 0));
    const [d, f, L] = [32, 64, 2];
    const noBias = L * (4 * d + f + d), noAffine = L * 4 * d + 2 * d;
    assertEquals(describeModel(w).parameters, paramCount(w.config, true) - noBias - noAffine);
  });
});

Deno.test("warnings: unused tensors and a tied model's explicit lm_head", async () => {
  await withTempDir((dir) => {
    // Untied fixture relabelled as tied: lm_head.weight becomes surplus.
    writeRandomCheckpoint(dir, { tieLmHead: false, shape: { numHiddenLayers: 3 } });
    const cfg = JSON.parse(Deno.readTextFileSync(`${dir}/config.json`));
    cfg.tie_word_embeddings = true;
    Deno.writeTextFileSync(`${dir}/config.json`, JSON.stringify(cfg));
    const w = loadWeightsSync(dir);
    assert(w.lmHead === w.embedTokens);
    assertEquals(w.layers.length, 3);
    assertEquals(w.warnings.length, 1, w.warnings.join("\n"));
    assertStringIncludes(w.warnings[0], "lm_head.weight is ignored because tie_word_embeddings");
  });
});

Deno.test("a config with fewer layers than the weights is an error naming the field", async () => {
  await withTempDir(async (dir) => {
    writeRandomCheckpoint(dir, { shape: { numHiddenLayers: 3 } });
    const cfg = JSON.parse(Deno.readTextFileSync(`${dir}/config.json`));
    cfg.num_hidden_layers = 2; // layer 2's tensors would be ignored: a silently wrong model
    Deno.writeTextFileSync(`${dir}/config.json`, JSON.stringify(cfg));
    const e = await assertCheckpointError(
      () => loadWeightsSync(dir),
      "config",
      "config.json",
      '"num_hidden_layers" is 2',
      "decoder.layers.2",
    );
    assertEquals(e.field, "num_hidden_layers");
  });
});

// ------------------------------------------------------------------ malformed checkpoints

async function fixture(fn: (dir: string) => void | Promise<void>, sharded = 1) {
  await withTempDir(async (dir) => {
    writeRandomCheckpoint(dir, { seed: 3, sharded });
    await fn(dir);
  });
}

Deno.test("malformed checkpoint: tensor shape disagrees with config", async () => {
  await fixture(async (dir) => {
    editHeader(`${dir}/model.safetensors`, (h) => {
      h["model.decoder.layers.1.fc1.weight"].shape = [32, 64]; // should be [64, 32]
    });
    const e = await assertCheckpointError(
      () => loadWeights(dir),
      "shape",
      "tensor model.decoder.layers.1.fc1.weight",
      "has shape [32, 64], expected [64, 32] = [ffn_dim, hidden_size]",
    );
    assertEquals(e.tensor, "model.decoder.layers.1.fc1.weight");
  });
});

Deno.test("malformed checkpoint: config disagrees with tensors (vocab, positions)", async () => {
  await fixture(async (dir) => {
    const cfg = JSON.parse(Deno.readTextFileSync(`${dir}/config.json`));
    cfg.max_position_embeddings = 100;
    Deno.writeTextFileSync(`${dir}/config.json`, JSON.stringify(cfg));
    await assertCheckpointError(
      () => loadWeights(dir),
      "shape",
      "model.decoder.embed_positions.weight",
      "expected [102, 32] = [max_position_embeddings + 2, hidden_size]",
    );
  });
});

Deno.test("malformed checkpoint: missing tensor is named", async () => {
  await fixture(async (dir) => {
    editHeader(
      `${dir}/model.safetensors`,
      (h) => {
        // Rename it away: the slot keeps the bytes, the expected name disappears.
        h["model.decoder.layers.1.self_attn.v_proj.bias_old"] =
          h["model.decoder.layers.1.self_attn.v_proj.bias"];
        delete h["model.decoder.layers.1.self_attn.v_proj.bias"];
      },
    );
    await assertCheckpointError(
      () => loadWeights(dir),
      "missing-tensor",
      "missing tensor decoder.layers.1.self_attn.v_proj.bias",
      "model.safetensors",
    );
  });
});

Deno.test("malformed checkpoint: more layers in config than in the file", async () => {
  await fixture(async (dir) => {
    const cfg = JSON.parse(Deno.readTextFileSync(`${dir}/config.json`));
    cfg.num_hidden_layers = 1_000_000_000; // must fail at layer 2, not loop
    Deno.writeTextFileSync(`${dir}/config.json`, JSON.stringify(cfg));
    await assertCheckpointError(
      () => loadWeights(dir),
      "missing-tensor",
      "decoder.layers.2.",
      "num_hidden_layers = 1000000000",
    );
  });
});

Deno.test("malformed checkpoint: missing config field, config not JSON, missing config.json", async () => {
  await fixture(async (dir) => {
    const cfg = JSON.parse(Deno.readTextFileSync(`${dir}/config.json`));
    delete cfg.num_attention_heads;
    Deno.writeTextFileSync(`${dir}/config.json`, JSON.stringify(cfg));
    const e = await assertCheckpointError(
      () => loadWeights(dir),
      "config",
      `${dir}/config.json`,
      '"num_attention_heads" is missing',
    );
    assertEquals(e.field, "num_attention_heads");
    Deno.writeTextFileSync(`${dir}/config.json`, "{ not json");
    await assertCheckpointError(() => loadWeights(dir), "config", "config.json is not valid JSON");
    Deno.removeSync(`${dir}/config.json`);
    await assertCheckpointError(() => loadWeights(dir), "not-found", "missing config.json", dir);
  });
});

Deno.test("malformed checkpoint: sharded index names a missing shard / wrong shard", async () => {
  await fixture(async (dir) => {
    Deno.removeSync(`${dir}/model-00002-of-00003.safetensors`);
    await assertCheckpointError(
      () => loadWeights(dir),
      "index",
      "shard model-00002-of-00003.safetensors named in",
      "is missing",
    );
  }, 3);
  await fixture(async (dir) => {
    const idx = JSON.parse(Deno.readTextFileSync(`${dir}/model.safetensors.index.json`));
    idx.weight_map["model.decoder.embed_tokens.weight"] = "model-00003-of-00003.safetensors";
    Deno.writeTextFileSync(`${dir}/model.safetensors.index.json`, JSON.stringify(idx));
    await assertCheckpointError(
      () => loadWeights(dir),
      "index",
      "says tensor model.decoder.embed_tokens.weight is in model-00003-of-00003.safetensors",
    );
    idx.weight_map["model.decoder.embed_tokens.weight"] = "../../etc/passwd";
    Deno.writeTextFileSync(`${dir}/model.safetensors.index.json`, JSON.stringify(idx));
    await assertCheckpointError(
      () => loadWeights(dir),
      "index",
      "must be a file name in the same folder",
    );
    Deno.writeTextFileSync(`${dir}/model.safetensors.index.json`, '{"metadata": {}}');
    await assertCheckpointError(() => loadWeights(dir), "index", 'invalid "weight_map"');
  }, 3);
});

Deno.test("malformed checkpoint: a corrupt shard names the shard file", async () => {
  await fixture(async (dir) => {
    const shard = `${dir}/model-00002-of-00002.safetensors`;
    const bytes = Deno.readFileSync(shard);
    Deno.writeFileSync(shard, bytes.subarray(0, bytes.byteLength - 3));
    await assertCheckpointError(() => loadWeights(dir), "format", shard, "truncated");
  }, 2);
});

Deno.test("malformed checkpoint: unknown dtype inside a model file", async () => {
  await fixture(async (dir) => {
    editHeader(`${dir}/model.safetensors`, (h) => {
      const t = h["model.decoder.layers.0.fc2.bias"];
      t.dtype = "I16"; // same byte size as F16: only the dtype is wrong
    });
    const e = await assertCheckpointError(
      () => loadWeights(dir),
      "dtype",
      'unsupported dtype "I16" of tensor "model.decoder.layers.0.fc2.bias"',
      `${dir}/model.safetensors`,
    );
    assertEquals(e.tensor, "model.decoder.layers.0.fc2.bias");
  });
});

Deno.test("malformed checkpoint: no weights, .bin only, no folder, duplicate names", async () => {
  await fixture(async (dir) => {
    // A file named pytorch_model.bin is read as PyTorch's format; safetensors bytes are not.
    Deno.renameSync(`${dir}/model.safetensors`, `${dir}/pytorch_model.bin`);
    await assertCheckpointError(
      () => loadWeights(dir),
      "format",
      `${dir}/pytorch_model.bin`,
      "unknown pickle opcode",
    );
    Deno.removeSync(`${dir}/pytorch_model.bin`);
    await assertCheckpointError(
      () => loadWeights(dir),
      "not-found",
      "no weights in",
      "model.safetensors",
      "pytorch_model.bin",
    );
  });
  // A missing folder where this process may read is "not found"; one outside what it may
  // read cannot be told from an unreadable one, and the error says so (issue 20, item 10).
  const empty = Deno.makeTempDirSync({ prefix: "no-model-" });
  const missing = `${empty}/model`;
  await assertCheckpointError(() => loadWeights(missing), "not-found", `${missing} does not exist`);
  Deno.removeSync(empty);
  await assertCheckpointError(
    () => loadWeights("/nonexistent/model"),
    "io",
    "/nonexistent/model exists or may exist, but this process may not read it",
  );
  await fixture(async (dir) => {
    // Layer 1's bias relabelled with the other prefix as layer 0's: two names, one tensor.
    editHeader(`${dir}/model.safetensors`, (h) => {
      h["decoder.layers.0.fc1.bias"] = h["model.decoder.layers.1.fc1.bias"];
      delete h["model.decoder.layers.1.fc1.bias"];
    });
    await assertCheckpointError(
      () => loadWeights(dir),
      "format",
      "tensor decoder.layers.0.fc1.bias appears twice",
      "as model.decoder.layers.0.fc1.bias",
    );
  });
});

Deno.test("malformed checkpoint: untied config without lm_head.weight", async () => {
  await fixture(async (dir) => {
    const cfg = JSON.parse(Deno.readTextFileSync(`${dir}/config.json`));
    cfg.tie_word_embeddings = false;
    Deno.writeTextFileSync(`${dir}/config.json`, JSON.stringify(cfg));
    await assertCheckpointError(
      () => loadWeights(dir),
      "missing-tensor",
      "missing tensor lm_head.weight",
      "tie_word_embeddings",
    );
  });
});

Deno.test("an OPT-125m-shaped fixture writes in reasonable time and counts 125,239,296 parameters", async () => {
  await withTempDir((dir) => {
    const t0 = performance.now();
    writeRandomCheckpoint(dir, { shape: "opt-125m", seed: 1, sharded: 2 });
    const ms = performance.now() - t0;
    const w = loadWeightsSync(dir);
    const info = describeModel(w);
    console.log(`opt-125m fixture: written in ${ms.toFixed(0)} ms; ${info.summary}`);
    assertEquals(info.parameters, 125_239_296);
    assertEquals(info.bytes, 2 * 125_239_296);
    assertLess(ms, 30_000);
    const f = openSafetensors(w.files[0]);
    assertGreater(f.tensors.size, 0);
  });
});
