/**
 * f16 KV cache (`kvDtype: "f16"`, `kernels/attention/kv_dtype.ts`): the WebGPU backend stores
 * keys and values rounded to f16 in both the column decode (`kv_pack.wgsl` + the attention
 * kernels reading `array<KV>`) and the paged row engine (`kv_write.wgsl` + paged attention);
 * the CPU backend with `kvDtype: "f16"` stores the same rounding, so the tests compare
 * exactly what the kernels compute: on random checkpoints of head sizes 7, 8, 12 and 64
 * (software and forced GPU kernels), tokens and top-k ids equal the f16 CPU reference and
 * logits agree within twice the CPU/GPU tolerance (and much closer than to the f32 CPU); KV bytes are halved (the counters); the PyTorch
 * fixtures' argmax holds at f16 KV; f16 asked of a device without `shader-f16` is refused
 * with a one-line error naming the adapter and the feature.
 */
import { assert, assertEquals, assertLess, assertRejects, assertThrows } from "@std/assert";
import { createCpuBackend } from "../backend/cpu/backend.ts";
import { createWebGpuBackend, type WebGpuDecodeOutput } from "../backend/webgpu/mod.ts";
import {
  checkKvDtype,
  KV_ALIAS,
  resolveKvDtype,
  roundKv,
  withKvDtype,
} from "../kernels/attention/kv_dtype.ts";
import { attentionLanesWgsl, attentionVec4Wgsl, attentionWgsl } from "../kernels/attention/wgsl.ts";
import { pagedAttentionWgsl } from "../kernels/attention/paged.ts";
import { adapterProfile, withKernelClass } from "../kernels/profile.ts";
import { GpuError } from "../kernels/device.ts";
import {
  loadWeights,
  type OptWeights,
  type RandomCheckpointOptions,
  writeRandomCheckpoint,
} from "../model/mod.ts";
import { fullPlanSets, parsePolicy } from "../schedule/mod.ts";
import { generate } from "../decode/mod.ts";
import { loadTokenizer } from "../tokenizer/mod.ts";
import { BUNDLED, missingShared, sharedPath } from "./helpers.ts";
import { driveRows, mixedPolicies, randomPrompts } from "./rows_helpers.ts";
import { GPU_TEST, relL2, rng, skipPlan, testGpu } from "./webgpu_helpers.ts";

/**
 * Logits tolerance against the f16 CPU reference: twice the CPU/GPU one (1e-4), since a key
 * whose GPU and CPU products (a few f32 ulps apart) straddle an f16 rounding boundary is
 * stored one f16 ulp (2^-11 relative) apart.
 */
const F16_TOLERANCE = 2e-4;

const profile = (f16: boolean, description: string, vendor = "4318") =>
  adapterProfile({
    info: { description, vendor },
    features: new Set(f16 ? ["shader-f16"] : []),
    limits: {},
  }, "gpu");

Deno.test("kv dtype: f16 rounding reference, WGSL alias, option checks and the default", () => {
  const x = Float32Array.of(0.1, 1 / 3, 65519, 1e-8, -2.5, 70000);
  const want = Array.from(new Float16Array(x), Number);
  assertEquals(Array.from(roundKv(x.slice(), "f16")), want);
  assertEquals(Array.from(roundKv(x.slice(), "f32")), Array.from(x));
  assert(want[0] !== x[0], "0.1 is not an f16, so the rounding changes it");
  for (
    const code of [
      attentionWgsl(64),
      attentionVec4Wgsl(64, 8),
      attentionLanesWgsl(2),
      pagedAttentionWgsl(7),
      pagedAttentionWgsl(8),
    ]
  ) {
    assert(code.includes(KV_ALIAS), "every KV kernel declares its element type");
    const f16 = withKvDtype(code, "f16");
    assert(f16.includes("enable f16;\nalias KV = f16;"));
    // `enable` must precede every declaration
    assertLess(f16.indexOf("enable f16;"), f16.indexOf("struct Params"));
    assertEquals(withKvDtype(code, "f32"), code);
  }
  assertThrows(() => withKvDtype("struct Params {}", "f16"), Error, KV_ALIAS);
  assertThrows(() => checkKvDtype("bf16", "kvDtype"), RangeError, 'kvDtype must be "f32" or "f16"');
  // default f32 everywhere (f16 moves logits beyond the CPU/GPU tolerance); "auto": by profile
  assertEquals(resolveKvDtype(profile(true, "NVIDIA H100")), "f32", "the default");
  assertEquals(resolveKvDtype(profile(true, "NVIDIA H100"), "auto"), "f16", "hardware, f16");
  assertEquals(resolveKvDtype(profile(false, "Old GPU"), "auto"), "f32", "no shader-f16");
  const sw = profile(true, "llvmpipe (LLVM 15)", "65541");
  assertEquals(resolveKvDtype(sw, "auto"), "f32", "software");
  assertEquals(resolveKvDtype(withKernelClass(profile(true, "H100"), "software"), "auto"), "f32");
  assertEquals(resolveKvDtype(profile(false, "Old GPU"), "f32"), "f32");
  const e = assertThrows(() => resolveKvDtype(profile(false, "Old GPU"), "f16"), GpuError);
  assert(e.message.includes('"shader-f16"') && e.message.includes('"Old GPU"'), e.message);
  assert(!e.message.includes("\n"), "one line");
  assertThrows(
    () => createCpuBackend({} as OptWeights, { kvDtype: "f8" as "f16" }),
    RangeError,
    "kvDtype",
  );
});

/** Random checkpoints of head sizes 7, 8, 12 and 64 (awkward widths and vocabularies). */
const FIXTURES: [string, RandomCheckpointOptions][] = [
  ["pre-LN f32, head size 7 (scalar kernels)", {
    shape: { hiddenSize: 21, numAttentionHeads: 3, ffnDim: 37, numHiddenLayers: 4, vocabSize: 97 },
    dtype: "F32",
    seed: 31,
  }],
  ["pre-LN f16, head size 8", {
    shape: { hiddenSize: 40, numAttentionHeads: 5, ffnDim: 72, numHiddenLayers: 5, vocabSize: 203 },
    dtype: "F16",
    seed: 32,
  }],
  ["opt-350m-style f32 (post-LN, project_in/out), head size 12", {
    shape: {
      hiddenSize: 36,
      wordEmbedProjDim: 20,
      doLayerNormBefore: false,
      numAttentionHeads: 3,
      ffnDim: 70,
      numHiddenLayers: 4,
      vocabSize: 157,
    },
    dtype: "F32",
    seed: 33,
  }],
  ["pre-LN f16, head size 64", {
    shape: {
      hiddenSize: 128,
      numAttentionHeads: 2,
      ffnDim: 90,
      numHiddenLayers: 4,
      vocabSize: 131,
    },
    dtype: "F16",
    seed: 34,
  }],
];

async function withCheckpoint<T>(
  options: RandomCheckpointOptions,
  fn: (w: OptWeights) => Promise<T>,
): Promise<T> {
  const dir = Deno.makeTempDirSync({ prefix: "webgpu-kv-f16-" });
  try {
    writeRandomCheckpoint(dir, options);
    return await fn(await loadWeights(dir));
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
}

for (const [name, options] of FIXTURES) {
  Deno.test({
    name: `webgpu f16 KV: decode and rows equal the f16 CPU reference, KV bytes halved: ${name}`,
    ...GPU_TEST,
    fn: async () => {
      const gpu = await testGpu();
      if (!gpu) return;
      if (!gpu.profile.f16) {
        // the refusal is what this adapter can show; the rounding needs shader-f16
        console.warn(`!!! ${gpu.info.description} lacks shader-f16: only the refusal is tested`);
        await withCheckpoint(options, async (w) => {
          await assertRejects(() => createWebGpuBackend(w, { gpu, kvDtype: "f16" }), GpuError);
        });
        return;
      }
      await withCheckpoint(options, async (weights) => {
        const cfg = weights.config, L = cfg.numHiddenLayers, V = cfg.vocabSize;
        const seed = options.seed!;
        const r = rng(seed);
        // batch of 3 ragged prompts (left padding), a skipping plan, greedy, top-5 logits
        const prompts = randomPrompts([5, 2, 7], V, seed);
        const N = 6;
        const P = Math.max(...prompts.map((p) => p.length));
        const req = {
          prompts,
          maxNewTokens: N,
          sets: skipPlan(L, P + N - 1, P, 2, 2),
          padTokenId: 1,
          logitsTopK: 5,
          recordLogits: true,
        };
        const cpu16 = createCpuBackend(weights, { kvDtype: "f16" });
        const cpu32 = createCpuBackend(weights);
        const ref = await cpu16.decode(req);
        const ref32 = await cpu32.decode(req);
        for (const kernels of ["software", "gpu"] as const) {
          const label = `${name} (${kernels} kernels)`;
          const f16 = await createWebGpuBackend(weights, { gpu, kernels, kvDtype: "f16" });
          const f32 = await createWebGpuBackend(weights, { gpu, kernels, kvDtype: "f32" });
          try {
            assertEquals(f16.kvDtype, "f16");
            const got = await f16.decode(req) as WebGpuDecodeOutput;
            const got32 = await f32.decode(req) as WebGpuDecodeOutput;
            assertEquals(got.tokens, ref.tokens, `${label}: tokens vs the f16 CPU reference`);
            let err = 0, errFull = 0, err32 = 0;
            got.topk!.forEach((row, b) =>
              row.forEach((step, s) => {
                const want = ref.topk![b][s];
                assertEquals(step.map(([id]) => id), want.map(([id]) => id), `${label}: top-5 ids`);
                err = Math.max(err, relL2(step.map(([, x]) => x), want.map(([, x]) => x)));
              })
            );
            got.logits!.forEach((row, b) =>
              row.forEach((x, s) => {
                errFull = Math.max(errFull, relL2(x, ref.logits![b][s]));
                err32 = Math.max(err32, relL2(x, ref32.logits![b][s]));
              })
            );
            // the f32 cache is exactly half as many bytes again (word-rounded per buffer)
            assert(got.kvCacheBytes > 0);
            assertLess(Math.abs(2 * got.kvCacheBytes - got32.kvCacheBytes), 8 * L + 1);
            assertEquals(got32.tokens, ref32.tokens, `${label}: f32 KV still equals f32 CPU`);
            console.log(
              `${label}: decode tokens equal, top-5 logits rel L2 ${err.toExponential(2)} (all ` +
                `${errFull.toExponential(2)}) vs the f16 CPU (${
                  err32.toExponential(2)
                } vs the f32 CPU); KV ${got.kvCacheBytes} ` +
                `bytes f16, ${got32.kvCacheBytes} f32`,
            );
            assertLess(err, F16_TOLERANCE, `${label}: top-5 logits vs the f16 CPU reference`);
            assertLess(errFull, F16_TOLERANCE, `${label}: logits vs the f16 CPU reference`);
            // the reference models the rounding: the f32 CPU is much further away
            assertLess(2 * errFull, err32, `${label}: f16 CPU closer than the f32 CPU`);

            // the paged row engine: mixed policies, mid-run admission, slot reuse
            const policies = mixedPolicies(L);
            const requests = randomPrompts([3, 6, 1, 4, 2], V, seed + 1).map((prompt, i) => ({
              prompt,
              policy: policies[i % policies.length],
              maxNewTokens: 2 + Math.floor(r() * 5),
            }));
            const maxLength = Math.max(...requests.map((q) => q.prompt.length + q.maxNewTokens));
            const rows = f16.openRows({ capacity: 2, maxLength });
            const cpuRows = cpu16.openRows({ capacity: 2, maxLength });
            const cpuRows32 = cpu32.openRows({ capacity: 2, maxLength });
            try {
              const run = await driveRows(rows, L, requests, seed);
              const want = await driveRows(cpuRows, L, requests, seed);
              await driveRows(cpuRows32, L, requests, seed);
              let rowsErr = 0;
              run.outputs.forEach((o, q) => {
                assertEquals(o.tokens, want.outputs[q].tokens, `${label}: rows request ${q}`);
                o.logits.forEach((x, j) =>
                  rowsErr = Math.max(rowsErr, relL2(x, want.outputs[q].logits[j]))
                );
              });
              const peak = rows.stats().peakKvBytes;
              assertEquals(peak, cpuRows.stats().peakKvBytes, "the same f16 pages as the CPU's");
              assertEquals(2 * peak, cpuRows32.stats().peakKvBytes, "f16 pages: half the bytes");
              console.log(
                `${label}: rows tokens equal, logits rel L2 ${rowsErr.toExponential(2)}; ` +
                  `peak KV ${peak} bytes (f32: ${cpuRows32.stats().peakKvBytes})`,
              );
              assertLess(rowsErr, F16_TOLERANCE, `${label}: row logits vs the f16 CPU rows`);
            } finally {
              rows.dispose();
              cpuRows.dispose();
              cpuRows32.dispose();
            }
          } finally {
            f16.dispose();
            f32.dispose();
          }
        }
      });
    },
  });
}

Deno.test({
  name: "webgpu f16 KV: the PyTorch fixtures' argmax (forward and rows, software and GPU kernels)",
  ...GPU_TEST,
  ignore: missingShared("fixtures/torch-bin"),
  fn: async () => {
    const gpu = await testGpu();
    if (!gpu) return;
    if (!gpu.profile.f16) {
      console.warn(`!!! ${gpu.info.description} lacks shader-f16: f16 KV not tested`);
      return;
    }
    const expected = JSON.parse(
      Deno.readTextFileSync(sharedPath("fixtures/torch-bin/expected.json")),
    ) as Record<string, { ids: number[]; argmax: number[]; logits_last: number[] }>;
    for (const kernels of ["software", "gpu"] as const) {
      for (const [fixture, exp] of Object.entries(expected)) {
        const name = `${fixture} (${kernels} kernels, f16 KV)`;
        const wg = await createWebGpuBackend(
          await loadWeights(sharedPath(`fixtures/torch-bin/${fixture}`)),
          { gpu, kernels, kvDtype: "f16" },
        );
        const L = wg.config.numHiddenLayers, T = exp.ids.length;
        const rows = wg.openRows({ capacity: 1, maxLength: T });
        try {
          const all = fullPlanSets(L, T);
          const [whole] = await rows.run([
            { slot: 0, tokens: exp.ids, sets: all, want: "all", recordLogits: true },
          ]);
          assertEquals(whole.tokens, exp.argmax, `${name}: rows argmax per position`);
          const last = relL2(whole.logits![T - 1], exp.logits_last);
          assertLess(last, 1e-2, `${name}: last logits rel L2 ${last}`);
          // the column-batched path (f16 caches written by kv_pack): teacher-forced decode
          const dec = await wg.decode({
            prompts: [exp.ids.slice(0, 1)],
            maxNewTokens: 1,
            sets: all.slice(0, 1),
            padTokenId: 1,
          });
          assertEquals(dec.tokens[0][0], exp.argmax[0], `${name}: first decoded token`);
          const fwd = await wg.forward({ rows: [exp.ids], sets: all, padTokenId: 1 });
          const V = wg.config.vocabSize;
          const argmax = Array.from({ length: T }, (_, t) => {
            const x = Array.from(fwd.logits.subarray(t * V, (t + 1) * V));
            return x.indexOf(Math.max(...x));
          });
          assertEquals(argmax, exp.argmax, `${name}: forward argmax per position`);
          console.log(`${name}: ${T} positions, argmax equal, last logits rel L2 ${last}`);
        } finally {
          rows.dispose();
          wg.dispose();
        }
      }
    }
  },
});

Deno.test({
  name: "webgpu f16 KV: the interleaved bench reports halved KV bytes and equal top-3 ids",
  ...GPU_TEST,
  fn: async () => {
    const gpu = await testGpu();
    if (!gpu || !gpu.profile.f16) return;
    const { kvDtypeBench } = await import("../bench/kv_dtype_bench.ts");
    const [line] = await kvDtypeBench(new URL("models/tiny-opt-e2e", BUNDLED).pathname, {
      batches: [2],
      repeats: 1,
      promptLength: 5,
      tokens: 3,
    });
    assert(/f32 KV [\d.]+ tok\/s \(\d+ bytes\), f16 KV [\d.]+ tok\/s/.test(line), line);
    assert(line.includes("KV bytes 0.50x"), line);
    assert(/top-3 ids equal in \d+\/6 steps/.test(line), line);
  },
});

Deno.test("kv dtype: the engine's KV accounting counts the backend's bytes per element", async () => {
  const dir = new URL("models/tiny-opt-e2e", BUNDLED).pathname;
  const weights = await loadWeights(dir);
  const tokenizer = await loadTokenizer(dir);
  const kv = async (kvDtype: "f32" | "f16") => {
    const backend = createCpuBackend(weights, { kvDtype });
    const out = await generate({ backend, tokenizer, config: weights.config }, ["name[Zizzi]"], {
      policy: parsePolicy("linear:max=4,min=2,warmup=1"),
      maxNewTokens: 3,
      stopAtEos: false,
    });
    return [out.kvBytes, out.kvBytesFull];
  };
  const [f32, f16] = [await kv("f32"), await kv("f16")];
  assert(f16[0] > 0);
  assertEquals(f16.map((x) => 2 * x), f32);
});

Deno.test({
  name: "webgpu f16 KV: a device without shader-f16 is refused in one line naming the adapter",
  ...GPU_TEST,
  fn: async () => {
    const gpu = await testGpu();
    if (!gpu) return;
    // the same device, profiled as if the adapter lacked shader-f16
    const noF16 = Object.create(gpu) as typeof gpu;
    Object.defineProperty(noF16, "profile", { value: { ...gpu.profile, f16: false } });
    const weights = await loadWeights(new URL("models/tiny-opt-e2e", BUNDLED).pathname);
    const e = await assertRejects(
      () => createWebGpuBackend(weights, { gpu: noF16, kvDtype: "f16" }),
      GpuError,
      '"shader-f16"',
    );
    assert(e.message.includes(gpu.profile.description) && !e.message.includes("\n"), e.message);
    await assertRejects(
      () => createWebGpuBackend(weights, { gpu, kvDtype: "bf16" as "f16" }),
      RangeError,
      'kvDtype must be "f32" or "f16"',
    );
    // "auto" on a software adapter keeps f32
    const auto = await createWebGpuBackend(weights, { gpu, kvDtype: "auto" });
    try {
      assertEquals(auto.kvDtype, gpu.profile.software ? "f32" : auto.kvDtype);
    } finally {
      auto.dispose();
    }
  },
});
