// Memory accounting and the refusal before loading (model/memory.ts), and the CPU backend's
// f16 weights kept as halves and widened block by block (backend/cpu/model.ts): same logits,
// bit for bit, as the all-f32 copy, at awkward sizes.
import { assert, assertEquals, assertThrows } from "@std/assert";
import {
  checkModelFits,
  f16BitsToFloat32,
  halvesToFloat32,
  MEMORY_LIMIT_ENV,
  ModelTooLargeError,
  parseMemorySize,
  peakResidentBytes,
  residentWeightBytes,
} from "../model/mod.ts";
import { createCpuBackend } from "../backend/mod.ts";
import { awkwardWeights as awkward, countingReads as counting } from "./model_test_helpers.ts";

Deno.test("parseMemorySize: bytes and binary suffixes; anything else names the option", () => {
  assertEquals(parseMemorySize("123", "x"), 123);
  assertEquals(parseMemorySize("512M", "x"), 512 * 2 ** 20);
  assertEquals(parseMemorySize("1.5GiB", "x"), 1.5 * 2 ** 30);
  assertEquals(parseMemorySize(" 2k ", "x"), 2048);
  const e = assertThrows(() => parseMemorySize("lots", MEMORY_LIMIT_ENV), RangeError);
  assert(e.message.includes(MEMORY_LIMIT_ENV) && e.message.includes('"lots"'), e.message);
  assertThrows(() => parseMemorySize("-1G", "x"), RangeError);
});

Deno.test("residentWeightBytes counts each layout by hand", async () => {
  const w = await awkward();
  const V = 101, d = 40, f = 72, L = 3, P = 64 + 2; // TINY_OPT_SHAPE's 64 positions
  const perLayer = (4 * d * d + 2 * d * f) * 2 + (4 * d + f + d) * 4 + 4 * d * 4;
  const tables = (V * d + P * d) * 2;
  const finalLn = 2 * d * 4;
  const cpu = tables + L * perLayer + finalLn;
  assertEquals(residentWeightBytes(w, "cpu"), cpu);
  // WebGPU holds the tied head once too (the embedding reads its rows from the head)
  assertEquals(residentWeightBytes(w, "webgpu"), cpu);
  // f32 CPU copy: every f16 matrix doubles
  assertEquals(
    residentWeightBytes(w, "cpu-f32"),
    2 * tables + L * (perLayer +
          (4 * d * d + 2 * d * f) * 2) +
      finalLn,
  );
});

Deno.test("checkModelFits: one line naming the bytes needed and on offer, and the source", () => {
  checkModelFits(1000, { what: "m", limitBytes: 1000 }); // fits exactly
  const e = assertThrows(
    () => checkModelFits(2_500_000_000, { what: "opt-x", limitBytes: 1_000_000_000 }),
    ModelTooLargeError,
  );
  assert(!e.message.includes("\n"), e.message);
  for (const part of ["opt-x", "2.50 GB", "2500000000", "1.00 GB", "1000000000"]) {
    assert(e.message.includes(part), `${part} missing from: ${e.message}`);
  }
  assertEquals([e.neededBytes, e.availableBytes], [2_500_000_000, 1_000_000_000]);
  assert(peakResidentBytes() > 1e6, "VmHWM of this process is read");
});

Deno.test("CPU backend: a memory limit refuses the model in one line before any tensor is read", async () => {
  // (the limit by option: SKIPDECODE_MEMORY_LIMIT is process-wide, and test files share the
  // process; model/memory.ts reads the variable through memoryOnOffer)
  const { weights, reads } = counting(await awkward());
  const e = assertThrows(
    () => createCpuBackend(weights, { memoryLimitBytes: 1024 }),
    ModelTooLargeError,
  );
  assert(!e.message.includes("\n"), e.message);
  assert(e.message.includes(`${residentWeightBytes(weights, "cpu")} bytes`), e.message);
  assert(e.message.includes("1024 bytes"), e.message);
  assertEquals(reads(), 0);
  // a limit that suffices loads and decodes
  const ok = createCpuBackend(weights, { memoryLimitBytes: 1 << 30 });
  assert(reads() > 0);
  await ok.dispose();
});

Deno.test("CPU backend: f16 weights kept as halves give bit-identical logits to the f32 copy", async () => {
  const w = await awkward("F16");
  const halves = createCpuBackend(w);
  const widened = createCpuBackend(w, { widenF16: true });
  const L = w.config.numHiddenLayers;
  const all = Array.from({ length: L }, (_, l) => l);
  // awkward batch (3 rows, padded) and a skip plan that nests
  const sets = [all, all, all, all, all, [0, 2], [0, 2], [2], [2]];
  const req = {
    prompts: [[2, 17, 33, 5, 90], [2, 8], [2, 60, 61]],
    maxNewTokens: 5,
    sets,
    padTokenId: 1,
    recordLogits: true,
  };
  const a = await halves.decode(req);
  const b = await widened.decode(req);
  assertEquals(a.tokens, b.tokens);
  let compared = 0;
  a.logits!.forEach((row, i) =>
    row.forEach((step, j) => {
      assertEquals(step, b.logits![i][j], `row ${i} step ${j}`);
      compared++;
    })
  );
  assert(compared >= 15);
  // not all zeros: the logits vary
  assert(new Set(a.logits![0][0]).size > 50);
  await halves.dispose();
  await widened.dispose();
});

Deno.test("halvesToFloat32 widens every half exactly, from an offset", () => {
  const all = Uint16Array.from({ length: 65536 }, (_, i) => i);
  const out = halvesToFloat32(all, 0, 65536, new Float32Array(65536));
  for (let h = 0; h < 65536; h++) {
    const want = f16BitsToFloat32(h);
    if (!Object.is(out[h], want) && !(Number.isNaN(out[h]) && Number.isNaN(want))) {
      throw new Error(`half ${h.toString(16)}: ${out[h]} != ${want}`);
    }
  }
  assertEquals([...halvesToFloat32(all, 0x3c00, 2, new Float32Array(2))], [
    1,
    f16BitsToFloat32(0x3c01),
  ]);
});

Deno.test("CPU apply on f16 halves: several row blocks and one row equal the f32 product bit for bit", async () => {
  const { apply } = await import("../backend/cpu/model.ts");
  const { linear } = await import("../kernels/matmul/reference.ts");
  const { float32ToF16Bits } = await import("../model/mod.ts");
  const { randomF32 } = await import("./helpers.ts");
  // n * k = 91,700 halves: more than one 65,536-float block, a partial last block
  const n = 700, k = 131;
  const wf = randomF32(n * k, 3);
  const halves = Uint16Array.from(wf, (v) => float32ToF16Bits(v));
  const widened = halvesToFloat32(halves, 0, n * k, new Float32Array(n * k));
  const b = randomF32(n, 4);
  for (const m of [1, 2, 3, 9]) {
    const x = randomF32(m * k, 5 + m);
    const got = apply({ w: halves, b, out: n, in: k }, x, m);
    const want = linear(x, widened, b, m, k, n);
    assertEquals(got, want, `m = ${m}`);
  }
});

Deno.test("random f16 fixtures (the scale bench's checkpoints) are the rounded fixture values, fast path or not", async () => {
  const { fixtureConfig, fixtureTensors, fixtureValues } = await import("../model/fixture.ts");
  const { optTensorSpecs } = await import("../model/checkpoint.ts");
  const { float32ToBytes } = await import("../model/mod.ts");
  const config = fixtureConfig({
    hiddenSize: 45,
    wordEmbedProjDim: 45,
    numAttentionHeads: 5,
    ffnDim: 73,
    vocabSize: 101,
  });
  const specs = optTensorSpecs(config, false);
  const tensors = fixtureTensors(config, { seed: 5, dtype: "F16" });
  assertEquals(tensors.length, specs.length);
  let odd = 0;
  specs.forEach((spec, i) => {
    const want = float32ToBytes(fixtureValues(config, spec, 5), "F16");
    const data = tensors[i].data;
    assertEquals(typeof data === "function" ? data() : data, want, spec.name);
    if (want.byteLength % 4 !== 0) odd++; // an odd number of halves
  });
  assert(odd > 0, "an odd element count is covered");
});
