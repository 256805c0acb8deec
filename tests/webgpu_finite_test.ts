/**
 * Non-finite logits on the WebGPU backend (over an overflowing but finite checkpoint): the
 * forward's readback and the decode's recorded logits are errors naming the row, as on the
 * CPU backend, never a quietly different result. Runs on the shared test device; skipped
 * loudly without an adapter (an error under CI).
 */
import { assertMatch, assertRejects } from "@std/assert";
import { createWebGpuBackend } from "../backend/webgpu/mod.ts";
import { createCpuBackend } from "../backend/mod.ts";
import { generate } from "../decode/mod.ts";
import { loadWeightsSync } from "../model/checkpoint.ts";
import { writeRandomCheckpoint } from "../model/fixture.ts";
import { openSafetensors } from "../model/safetensors.ts";
import { loadTokenizer } from "../tokenizer/mod.ts";
import { TINY_MODEL_DIR } from "../data/bundled.ts";
import { GPU_TEST, testGpu } from "./webgpu_helpers.ts";

/**
 * A small random checkpoint whose weights are all finite but whose activations overflow: one
 * fc2 bias entry of every layer is 3e38, so the LM head sees ±Infinity.
 */
function writeOverflowingCheckpoint(dir: string): void {
  writeRandomCheckpoint(dir, {
    shape: {
      vocabSize: 50272,
      hiddenSize: 16,
      numAttentionHeads: 2,
      ffnDim: 24,
      numHiddenLayers: 2,
      maxPositionEmbeddings: 64,
    },
    dtype: "F32",
    seed: 5,
    tokenizerDir: TINY_MODEL_DIR,
  });
  for (const l of [0, 1]) {
    const t = openSafetensors(`${dir}/model.safetensors`).tensors
      .get(`model.decoder.layers.${l}.fc2.bias`)!;
    using f = Deno.openSync(`${dir}/model.safetensors`, { write: true });
    f.seekSync(t.offset + 12, Deno.SeekMode.Start);
    f.writeSync(new Uint8Array(new Float32Array([3e38]).buffer));
  }
}

Deno.test({
  name: "webgpu: logits that overflow are an error naming the row (decode with recorded logits)",
  ...GPU_TEST,
  fn: async () => {
    const gpu = await testGpu();
    if (!gpu) return;
    const dir = Deno.makeTempDirSync({ prefix: "webgpu-finite-" });
    try {
      writeOverflowingCheckpoint(dir);
      const weights = loadWeightsSync(dir);
      const backend = await createWebGpuBackend(weights, { gpu });
      const model = { backend, tokenizer: await loadTokenizer(dir), config: weights.config };
      try {
        const e = await assertRejects(() =>
          generate(model, ["name[A]\n"], { maxNewTokens: 2, recordLogits: true })
        );
        assertMatch((e as Error).message, /webgpu backend \(decode\): the LM head produced/);
      } finally {
        backend.dispose();
      }
    } finally {
      Deno.removeSync(dir, { recursive: true });
    }
  },
});

Deno.test({
  name:
    "webgpu: greedy decode and RowBatch without read-back logits refuse overflowing logits too " +
    "(the selection kernel flags them), as the CPU does",
  ...GPU_TEST,
  fn: async () => {
    const gpu = await testGpu();
    if (!gpu) return;
    const dir = Deno.makeTempDirSync({ prefix: "webgpu-finite-greedy-" });
    try {
      writeOverflowingCheckpoint(dir);
      const weights = loadWeightsSync(dir);
      const backend = await createWebGpuBackend(weights, { gpu });
      const cpu = createCpuBackend(weights);
      const model = { backend, tokenizer: await loadTokenizer(dir), config: weights.config };
      try {
        // greedy, nothing recorded: before this check the GPU returned some token silently
        const e = await assertRejects(() => generate(model, ["name[A]\n"], { maxNewTokens: 2 }));
        assertMatch((e as Error).message, /webgpu backend \(decode\).*NaN or infinite logit/);
        const all = [...Array(2).keys()];
        const work = [{ slot: 0, tokens: [2, 100, 5], sets: [all, all, all] }];
        for (
          const [b, re] of [[backend, /webgpu backend \(rows\)/], [
            cpu,
            /cpu backend \(rows\)/,
          ]] as const
        ) {
          const rows = b.openRows({ capacity: 1, maxLength: 8 });
          try {
            const err = await assertRejects(() => rows.run(work));
            assertMatch((err as Error).message, re);
            assertMatch((err as Error).message, /slot 0/);
          } finally {
            rows.dispose();
          }
        }
      } finally {
        backend.dispose();
      }
    } finally {
      Deno.removeSync(dir, { recursive: true });
    }
  },
});
