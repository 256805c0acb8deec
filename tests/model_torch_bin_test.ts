/**
 * PyTorch `.bin` checkpoints: the fixtures written by real PyTorch 1.13 in
 * `../shared/fixtures/torch-bin` (ZIP, legacy, sharded, opt-350m-style) load on the CPU and
 * WebGPU backends and give the reference logits; checkpoints written by
 * `bench/torch_bin_writer.ts` cover shared storages, strided views, ZIP64, bf16/f32 and
 * every naming seen in the wild.
 */
import { assert, assertEquals, assertLess } from "@std/assert";
import { createCpuBackend } from "../backend/cpu/backend.ts";
import type { Backend } from "../backend/types.ts";
import { createWebGpuBackend } from "../backend/webgpu/mod.ts";
import { loadWeights, tensorToFloat32, writeRandomCheckpoint } from "../model/mod.ts";
import { openSafetensors } from "../model/safetensors.ts";
import { openTorchBin } from "../model/torch_bin.ts";
import {
  contiguousCheckpoint,
  type TorchCheckpointSpec,
  writeTorchBin,
} from "../bench/torch_bin_writer.ts";
import { fullPlan, GPU_TEST, relL2, testGpu } from "./webgpu_helpers.ts";
import { missingShared, sharedPath } from "./helpers.ts";

/** The PyTorch fixtures live only in ../shared: without it these tests are skipped loudly. */
const NO_FIXTURES = missingShared("fixtures/torch-bin");
import { withTempDir } from "./model_test_helpers.ts";

interface Expected {
  ids: number[];
  argmax: number[];
  logits_last: number[];
  logits_sum_per_position: number[];
}

const FIXTURES = ["pre-ln-zip", "pre-ln-legacy", "pre-ln-sharded", "post-ln-350m-style-zip"];

function expected(): Record<string, Expected> {
  return JSON.parse(Deno.readTextFileSync(sharedPath("fixtures/torch-bin/expected.json")));
}

function argmax(v: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < v.length; i++) if (v[i] > v[best]) best = i;
  return best;
}

/** Checks forward logits and greedy tokens of `backend` against the PyTorch reference. */
async function checkAgainstReference(name: string, backend: Backend, exp: Expected, V: number) {
  const T = exp.ids.length;
  const L = backend.config.numHiddenLayers;
  const f = await backend.forward({ rows: [exp.ids], sets: fullPlan(L, T), padTokenId: 1 });
  const got = Array.from({ length: T }, (_, c) => f.logits.subarray(c * V, (c + 1) * V));
  assertEquals(got.map(argmax), exp.argmax, `${name} (${backend.name}): argmax per position`);
  const last = relL2(got[T - 1], exp.logits_last);
  assertLess(last, 1e-3, `${name} (${backend.name}): last logits rel L2 ${last}`);
  for (let c = 0; c < T; c++) {
    const sum = got[c].reduce((a, b) => a + b, 0);
    const ref = exp.logits_sum_per_position[c];
    const scale = Math.sqrt(V) * Math.sqrt(got[c].reduce((a, b) => a + b * b, 0) / V);
    assertLess(Math.abs(sum - ref), 1e-3 * Math.max(scale, Math.abs(ref)), `${name} col ${c}`);
  }
  // Greedy decoding of every prefix gives the reference argmax as its first token.
  const prompts = exp.ids.map((_, k) => exp.ids.slice(0, k + 1));
  const d = await backend.decode({
    prompts,
    maxNewTokens: 1,
    sets: fullPlan(L, T),
    padTokenId: 1,
  });
  assertEquals(d.tokens.map((t) => t[0]), exp.argmax, `${name} (${backend.name}): greedy ids`);
}

Deno.test("torch .bin fixtures: formats detected, names and dtypes as written by PyTorch", {
  ignore: NO_FIXTURES,
}, async () => {
  const dir = sharedPath("fixtures/torch-bin");
  assertEquals(openTorchBin(`${dir}/pre-ln-zip/pytorch_model.bin`).format, "zip");
  assertEquals(openTorchBin(`${dir}/pre-ln-legacy/pytorch_model.bin`).format, "legacy");
  for (const name of FIXTURES) {
    const w = await loadWeights(`${dir}/${name}`);
    assertEquals(w.format, "bin", name);
    assertEquals(w.sharded, name === "pre-ln-sharded", name);
    assertEquals(w.embedTokens.dtype, "F16", name);
    assert(w.lmHead === w.embedTokens, `${name}: the head is tied`);
    assertEquals(w.projectIn !== undefined, name.startsWith("post-ln"), name);
  }
  // The legacy and ZIP fixtures hold the same weights.
  const a = await loadWeights(`${dir}/pre-ln-zip`);
  const b = await loadWeights(`${dir}/pre-ln-legacy`);
  assertEquals(a.layers[2].fc2.weight.bytes(), b.layers[2].fc2.weight.bytes());
});

Deno.test("torch .bin fixtures give PyTorch's logits and argmax on the CPU", {
  ignore: NO_FIXTURES,
}, async () => {
  const exp = expected();
  for (const name of FIXTURES) {
    const w = await loadWeights(sharedPath(`fixtures/torch-bin/${name}`));
    const cpu = createCpuBackend(w);
    try {
      await checkAgainstReference(name, cpu, exp[name], w.config.vocabSize);
    } finally {
      cpu.dispose();
    }
  }
});

Deno.test({
  name: "torch .bin fixtures give PyTorch's logits and argmax on WebGPU",
  ...GPU_TEST,
  ignore: NO_FIXTURES,
  fn: async () => {
    const gpu = await testGpu();
    if (!gpu) return;
    const exp = expected();
    for (const name of FIXTURES) {
      const w = await loadWeights(sharedPath(`fixtures/torch-bin/${name}`));
      const wg = await createWebGpuBackend(w, { gpu });
      try {
        await checkAgainstReference(name, wg, exp[name], w.config.vocabSize);
      } finally {
        wg.dispose();
      }
    }
  },
});

/** A tiny random safetensors OPT and its tensors as a torch state dict under `prefix`. */
function randomStateDict(dir: string, dtype: "F16" | "BF16" | "F32", tie = true) {
  writeRandomCheckpoint(dir, {
    shape: { hiddenSize: 16, numAttentionHeads: 2, ffnDim: 24, numHiddenLayers: 2, vocabSize: 40 },
    dtype,
    seed: 7,
    tieLmHead: tie,
  });
  const st = openSafetensors(`${dir}/model.safetensors`);
  return [...st.tensors.values()].map((t) => ({
    name: t.name,
    dtype: t.dtype,
    shape: [...t.shape],
    data: t.bytes(),
  }));
}

async function logitsOf(dir: string): Promise<Float32Array> {
  const w = await loadWeights(dir);
  const cpu = createCpuBackend(w);
  try {
    const ids = [2, 5, 9, 11, 3];
    return (await cpu.forward({
      rows: [ids],
      sets: fullPlan(w.config.numHiddenLayers, ids.length),
      padTokenId: 1,
    })).logits;
  } finally {
    cpu.dispose();
  }
}

Deno.test("torch .bin: every naming, tied or untied head, head-only embedding, all dtypes", async () => {
  await withTempDir(async (tmp) => {
    for (const dtype of ["F16", "BF16", "F32"] as const) {
      for (const tie of [true, false]) {
        const ref = `${tmp}/ref-${dtype}-${tie}`;
        const sd = randomStateDict(ref, dtype, tie);
        const want = await logitsOf(ref);
        const variants: [string, typeof sd][] = [
          ["decoder.*", sd.map((t) => ({ ...t, name: t.name.replace(/^model\./, "") }))],
          [
            "model.decoder.*",
            sd.map((t) => ({ ...t, name: t.name.replace(/^(decoder)/, "model.$1") })),
          ],
        ];
        if (tie) {
          // Head-only: lm_head.weight kept, decoder.embed_tokens.weight dropped.
          const embed = sd.find((t) => t.name.endsWith("embed_tokens.weight"))!;
          variants.push(["head only", [
            ...sd.filter((t) => t !== embed && t.name !== "lm_head.weight"),
            { ...embed, name: "lm_head.weight" },
          ]]);
        }
        for (const [label, tensors] of variants) {
          for (const format of ["zip", "legacy"] as const) {
            const dir = `${tmp}/${dtype}-${tie}-${label.replace(/\W/g, "")}-${format}`;
            Deno.mkdirSync(dir);
            Deno.copyFileSync(`${ref}/config.json`, `${dir}/config.json`);
            writeTorchBin(`${dir}/pytorch_model.bin`, contiguousCheckpoint(tensors), { format });
            const got = await logitsOf(dir);
            assertEquals(got, want, `${dtype} tie=${tie} ${label} ${format}`);
            const w = await loadWeights(dir);
            assertEquals(w.embedTokens.dtype, dtype);
            assertEquals(w.lmHead === w.embedTokens, tie, `${label}: tied head`);
            if (label === "head only") {
              assert(w.warnings.some((x) => x.includes("token embedding is read from")));
            }
          }
        }
      }
    }
  });
});

Deno.test("torch .bin: shared storages and strided or offset views are made contiguous", async () => {
  await withTempDir(async (tmp) => {
    const ref = `${tmp}/ref`;
    const sd = randomStateDict(ref, "F16");
    const want = await logitsOf(ref);
    // Put every tensor into ONE storage; store each 2-D weight transposed (column-major)
    // so that the state dict holds non-contiguous views at offsets.
    const es = 2;
    const parts: Uint8Array[] = [];
    let numel = 0;
    const spec: TorchCheckpointSpec = { storages: [], tensors: [] };
    for (const t of sd) {
      const n = t.shape.reduce((a, b) => a * b, 1);
      let bytes = t.data;
      let stride = t.shape.map((_, d) => t.shape.slice(d + 1).reduce((a, b) => a * b, 1));
      if (t.shape.length === 2) {
        const [r, c] = t.shape;
        const tr = new Uint8Array(n * es);
        for (let i = 0; i < r; i++) {
          for (let j = 0; j < c; j++) {
            tr.set(t.data.subarray((i * c + j) * es, (i * c + j + 1) * es), (j * r + i) * es);
          }
        }
        bytes = tr;
        stride = [1, r];
      }
      spec.tensors.push({ name: t.name, storage: "0", offset: numel, shape: t.shape, stride });
      parts.push(bytes);
      numel += n;
    }
    const all = new Uint8Array(numel * es);
    let o = 0;
    for (const p of parts) {
      all.set(p, o);
      o += p.byteLength;
    }
    spec.storages.push({ key: "0", dtype: "F16", numel, data: all });
    for (const format of ["zip", "legacy"] as const) {
      const dir = `${tmp}/shared-${format}`;
      Deno.mkdirSync(dir);
      Deno.copyFileSync(`${ref}/config.json`, `${dir}/config.json`);
      writeTorchBin(`${dir}/pytorch_model.bin`, spec, { format });
      assertEquals(openTorchBin(`${dir}/pytorch_model.bin`).storages, 1);
      assertEquals(await logitsOf(dir), want, format);
      const w = await loadWeights(dir);
      const fc1 = sd.find((t) => t.name.endsWith("layers.1.fc1.weight"))!;
      assertEquals(w.layers[1].fc1.weight.bytes(), fc1.data);
    }
  });
});

Deno.test("torch .bin: ZIP64 records, sharded .bin through pytorch_model.bin.index.json", async () => {
  await withTempDir(async (tmp) => {
    const ref = `${tmp}/ref`;
    const sd = randomStateDict(ref, "F32");
    const want = await logitsOf(ref);
    const z64 = `${tmp}/zip64`;
    Deno.mkdirSync(z64);
    Deno.copyFileSync(`${ref}/config.json`, `${z64}/config.json`);
    writeTorchBin(`${z64}/pytorch_model.bin`, contiguousCheckpoint(sd), { zip64: true });
    assertEquals(await logitsOf(z64), want);
    const sh = `${tmp}/sharded`;
    Deno.mkdirSync(sh);
    Deno.copyFileSync(`${ref}/config.json`, `${sh}/config.json`);
    const half = Math.ceil(sd.length / 2);
    const shards = [sd.slice(0, half), sd.slice(half)];
    const weightMap: Record<string, string> = {};
    shards.forEach((part, k) => {
      const file = `pytorch_model-0000${k + 1}-of-00002.bin`;
      writeTorchBin(`${sh}/${file}`, contiguousCheckpoint(part), {
        format: k === 0 ? "zip" : "legacy",
      });
      for (const t of part) weightMap[t.name] = file;
    });
    Deno.writeTextFileSync(
      `${sh}/pytorch_model.bin.index.json`,
      JSON.stringify({ metadata: {}, weight_map: weightMap }),
    );
    const w = await loadWeights(sh);
    assert(w.sharded);
    assertEquals(w.files.length, 2);
    assertEquals(await logitsOf(sh), want);
    // safetensors wins over .bin when both are present, as in transformers.
    Deno.copyFileSync(`${ref}/model.safetensors`, `${sh}/model.safetensors`);
    assertEquals((await loadWeights(sh)).format, "safetensors");
    assertEquals(tensorToFloat32(w.embedTokens).length, 40 * 16);
  });
});

Deno.test("torch .bin written by PyTorch: strided, offset, shared, f16 stride 2, bf16, _metadata", () => {
  // tests/fixtures/torch/make_strided.py wrote these with PyTorch 1.13 (ZIP and legacy).
  const dir = new URL("./fixtures/torch/", import.meta.url).pathname;
  const exp: Record<string, { shape: number[]; values: number[] }> = JSON.parse(
    Deno.readTextFileSync(`${dir}strided-expected.json`),
  );
  for (const file of ["strided-zip.bin", "strided-legacy.bin"]) {
    const f = openTorchBin(`${dir}${file}`);
    assertEquals(f.storages, 5, `${file}: five storages for seven tensors`);
    assertEquals([...f.tensors.keys()], Object.keys(exp), file);
    for (const [name, e] of Object.entries(exp)) {
      const t = f.tensors.get(name)!;
      assertEquals([...t.shape], e.shape, `${file} ${name}`);
      assertEquals(Array.from(tensorToFloat32(t)), e.values, `${file} ${name}`);
    }
  }
});
