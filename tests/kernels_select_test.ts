import { assertEquals, assertGreater } from "@std/assert";
import { argmax } from "../kernels/select/reference.ts";
import { selectToken } from "../backend/sampling.ts";
import type { SamplingOptions } from "../backend/types.ts";
import { createSelect } from "../kernels/select/mod.ts";
import {
  GPU_TEST,
  poisoned,
  randomF32,
  readU32,
  recorder,
  testGpu,
  upload,
} from "./webgpu_helpers.ts";

const B = 6, V = 1001;

function logitsWithTies(seed: number): Float32Array {
  const x = randomF32(B * V, seed, 4);
  // quantise some rows so exact ties exist (the tie rule matters)
  for (let i = 0; i < 2 * V; i++) x[i] = Math.round(x[i] * 2) / 2;
  // a row whose maximum is tied at two indices
  x[2 * V + 10] = 9;
  x[2 * V + 500] = 9;
  return x;
}

Deno.test({
  name: "select kernel: greedy argmax (lowest index on ties), EOS flags, id placement",
  ...GPU_TEST,
  fn: async () => {
    const gpu = await testGpu();
    if (!gpu) return;
    const sel = await createSelect(gpu);
    const logits = logitsWithTies(1);
    const want = Array.from({ length: B }, (_, b) => argmax(logits.subarray(b * V, (b + 1) * V)));
    const eos = want[3];
    const ids = upload(gpu, new Uint32Array(4 * B).fill(0xdeadbeef));
    const done = upload(gpu, new Uint32Array(B));
    const rec = recorder(gpu);
    rec.begin();
    sel.encode(rec, {
      logits: upload(gpu, logits),
      ids,
      done,
      probs: poisoned(gpu, 4),
      batch: B,
      vocab: V,
      outIndex: 2 * B,
      step: 0,
      eos,
    });
    gpu.device.queue.submit([rec.finish()]);
    const got = await readU32(gpu, ids);
    const flags = await readU32(gpu, done);
    console.log(`select greedy: ${[...got.subarray(2 * B, 3 * B)]} vs CPU ${want}`);
    assertEquals([...got.subarray(2 * B, 3 * B)], want);
    assertEquals(want[2], 10, "tie resolved to the lower index");
    assertEquals([...got.subarray(0, 2 * B)], new Array(2 * B).fill(0xdeadbeef));
    assertEquals([...got.subarray(3 * B)], new Array(B).fill(0xdeadbeef));
    assertEquals([...flags], want.map((t) => (t === eos ? 1 : 0)));
  },
});

Deno.test({
  name: "select kernel: seeded sampling equals selectToken (temperature, top-k, top-p)",
  ...GPU_TEST,
  fn: async () => {
    const gpu = await testGpu();
    if (!gpu) return;
    const sel = await createSelect(gpu);
    const configs: SamplingOptions[] = [
      { temperature: 1, seed: 7 },
      { temperature: 0.7, topK: 5, seed: 3 },
      { temperature: 1.3, topP: 0.9, seed: 11 },
      { temperature: 0.9, topK: 50, topP: 0.8, seed: 12345 },
      { temperature: 2, topK: 1, seed: 1 },
      { temperature: 1, topK: 3, seed: 99 }, // ties at the k-th value in quantised rows
    ];
    let total = 0, equal = 0;
    const ids = upload(gpu, new Uint32Array(B));
    const done = upload(gpu, new Uint32Array(B));
    const probs = poisoned(gpu, B * V);
    for (const [ci, sampling] of configs.entries()) {
      for (const step of [0, 1, 5, 17]) {
        const logits = logitsWithTies(100 + ci * 31 + step);
        const rec = recorder(gpu);
        rec.begin();
        sel.encode(rec, {
          logits: upload(gpu, logits),
          ids,
          done,
          probs,
          batch: B,
          vocab: V,
          outIndex: 0,
          step,
          sampling,
        });
        gpu.device.queue.submit([rec.finish()]);
        const got: number[] = [...await readU32(gpu, ids)];
        const want = Array.from(
          { length: B },
          (_, b) => selectToken(logits.subarray(b * V, (b + 1) * V), sampling, b, step),
        );
        total += B;
        equal += got.filter((t, b) => t === want[b]).length;
        assertEquals(got, want, `sampling ${JSON.stringify(sampling)} step ${step}`);
      }
    }
    console.log(`select sampling: ${equal}/${total} draws equal to the CPU sampler`);
    assertGreater(total, 100);
  },
});
