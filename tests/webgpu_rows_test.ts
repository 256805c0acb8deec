/**
 * The WebGPU per-row engine (`backend/webgpu/rows.ts`): requests at their own positions,
 * admitted mid-run in a seeded adversarial order into a batch of slots, each with its own
 * plan (mixed policies), prefills in the same call as other slots' decode steps, slots
 * released and reused, speculative verification with `truncate`. Every request's tokens
 * equal its solo decode on the WebGPU backend and on the CPU backend, its logits are within
 * 1e-5 (relative L2) of the WebGPU solo decode and within the CPU/GPU tolerance (1e-4) of
 * the CPU's; KV is never recomputed (`kvRewrites === 0`, `kvWrites` counted), and nesting
 * breaks are refused with the slot, position and layer named, before any state changes.
 */
import { assert, assertEquals, assertLess, assertRejects, assertThrows } from "@std/assert";
import { createCpuBackend } from "../backend/cpu/backend.ts";
import type { Backend } from "../backend/types.ts";
import { createWebGpuBackend } from "../backend/webgpu/mod.ts";
import { loadTokenizer } from "../tokenizer/mod.ts";
import {
  loadWeights,
  type OptWeights,
  type RandomCheckpointOptions,
  writeRandomCheckpoint,
} from "../model/mod.ts";
import { BUNDLED, intIn, missingShared, sharedPath } from "./helpers.ts";
import { fullPlanSets, parsePolicy } from "../schedule/mod.ts";
import { speculativeDecode } from "../decode/mod.ts";
import {
  driveRows,
  mixedPolicies,
  randomPrompts,
  type RowRequest,
  soloDecode,
} from "./rows_helpers.ts";
import { GPU_TEST, relL2, rng, testGpu } from "./webgpu_helpers.ts";

const FIXTURES: [string, RandomCheckpointOptions][] = [
  ["pre-LN f16, head size 8", {
    shape: { hiddenSize: 40, numAttentionHeads: 5, ffnDim: 72, numHiddenLayers: 5, vocabSize: 203 },
    dtype: "F16",
    seed: 11,
  }],
  ["opt-350m-style f32 (post-LN, project_in/out), head size 12", {
    shape: {
      hiddenSize: 48,
      wordEmbedProjDim: 20,
      doLayerNormBefore: false,
      numAttentionHeads: 4,
      ffnDim: 70,
      numHiddenLayers: 4,
      vocabSize: 157,
    },
    dtype: "F32",
    seed: 12,
  }],
  ["pre-LN f32, head size 6 (scalar kernels)", {
    shape: { hiddenSize: 30, numAttentionHeads: 5, ffnDim: 46, numHiddenLayers: 4, vocabSize: 99 },
    dtype: "F32",
    seed: 13,
  }],
];

const range = (n: number) => Array.from({ length: n }, (_, i) => i);

/**
 * Runs `requests` through a WebGPU row batch and a CPU row batch (A's seeded adversarial
 * driver: prefills and prompt chunks beside decode steps, idle rows, shuffled entries, slots
 * released and reused), then compares every request with the WebGPU and CPU solo decodes
 * and with the CPU row batch: tokens equal, logits within 1e-5 (relative L2) of the WebGPU
 * solo decode and within 1e-4 of the CPU.
 */
async function checkAgainstOracles(
  weights: OptWeights,
  wg: Backend,
  requests: RowRequest[],
  capacity: number,
  seed: number,
  label: string,
): Promise<void> {
  const L = weights.config.numHiddenLayers;
  const maxLength = Math.max(...requests.map((q) => q.prompt.length + q.maxNewTokens));
  const rows = wg.openRows({ capacity, maxLength });
  const cpu = createCpuBackend(weights);
  const cpuRows = cpu.openRows({ capacity, maxLength });
  try {
    const run = await driveRows(rows, L, requests, seed);
    const ref = await driveRows(cpuRows, L, requests, seed);
    const stats = rows.stats();
    assertEquals(stats.kvRewrites, 0, "no KV is recomputed");
    assertEquals(stats.kvWrites, run.pairs, "one KV write per (token, layer) run");
    assertEquals(stats.layerSteps, run.pairs);
    assertEquals(stats.kvWrites, cpuRows.stats().kvWrites);
    assertEquals(stats.peakKvBytes, cpuRows.stats().peakKvBytes, "the same pages as the CPU's");
    assertEquals(stats.kvBytes, 0, "every slot was released, so no page is held");
    assert(stats.peakKvBytes > 0);
    assert(run.mixedCalls > 0, "some calls mix a prefill with decode steps");
    assert(run.reusedSlots > 0, "some slots serve a second request after a release");
    let gpuErr = 0, cpuErr = 0, rowsErr = 0;
    for (let q = 0; q < requests.length; q++) {
      const got = run.outputs[q];
      const g = await soloDecode(wg, requests[q]);
      const c = await soloDecode(cpu, requests[q]);
      const what = `${label}: request ${q} (${requests[q].policy.name})`;
      assertEquals(got.tokens, g.tokens, `${what} vs its WebGPU solo decode`);
      assertEquals(got.tokens, c.tokens, `${what} vs its CPU solo decode`);
      assertEquals(got.tokens, ref.outputs[q].tokens, `${what} vs the CPU row batch`);
      got.logits.forEach((x, j) => {
        gpuErr = Math.max(gpuErr, relL2(x, g.logits[j]));
        cpuErr = Math.max(cpuErr, relL2(x, c.logits[j]));
        rowsErr = Math.max(rowsErr, relL2(x, ref.outputs[q].logits[j]));
      });
    }
    console.log(
      `${label}: ${requests.length} requests, ${run.calls} calls (${run.mixedCalls} mixed), ` +
        `${run.reusedSlots} slots reused: tokens equal; logits max rel L2 ` +
        `${gpuErr.toExponential(2)} vs WebGPU solo, ${cpuErr.toExponential(2)} vs CPU solo, ` +
        `${rowsErr.toExponential(2)} vs CPU rows; peak KV ${stats.peakKvBytes} bytes`,
    );
    assertLess(gpuErr, 1e-5, `${label}: logits vs the WebGPU solo decode`);
    assertLess(cpuErr, 1e-4, `${label}: logits vs the CPU solo decode`);
    assertLess(rowsErr, 1e-4, `${label}: logits vs the CPU row batch`);
  } finally {
    rows.dispose();
    cpuRows.dispose();
  }
}

for (const [name, options] of FIXTURES) {
  Deno.test({
    name: `webgpu rows: mixed policies, mid-run admission, reuse equal solo decodes: ${name}`,
    ...GPU_TEST,
    fn: async () => {
      const gpu = await testGpu();
      if (!gpu) return;
      const dir = Deno.makeTempDirSync({ prefix: "webgpu-rows-" });
      try {
        writeRandomCheckpoint(dir, options);
        const weights = await loadWeights(dir);
        const L = weights.config.numHiddenLayers, V = weights.config.vocabSize;
        const wg = await createWebGpuBackend(weights, { gpu });
        try {
          const policies = mixedPolicies(L);
          const r = rng(options.seed!);
          const lengths = Array.from({ length: 8 }, () => intIn(r, 1, 9));
          const requests = randomPrompts(lengths, V, options.seed!).map((prompt, i) => ({
            prompt,
            policy: policies[i % policies.length],
            maxNewTokens: intIn(r, 2, 9),
          }));
          await checkAgainstOracles(weights, wg, requests, 3, options.seed!, name);
        } finally {
          wg.dispose();
        }
      } finally {
        Deno.removeSync(dir, { recursive: true });
      }
    },
  });
}

Deno.test({
  name: "webgpu rows: the shipped tiny model, mixed policies in one batch, equal solo decodes",
  ...GPU_TEST,
  fn: async () => {
    const gpu = await testGpu();
    if (!gpu) return;
    const weights = await loadWeights(new URL("models/tiny-opt-e2e", BUNDLED).pathname);
    const wg = await createWebGpuBackend(weights, { gpu });
    try {
      const tok = await loadTokenizer(new URL("models/tiny-opt-e2e", BUNDLED).pathname);
      const policies = mixedPolicies(weights.config.numHiddenLayers);
      const mrs = [
        "name[The Eagle], eatType[coffee shop], food[Japanese]",
        "name[Alimentum], area[city centre]",
        "name[Zizzi], eatType[pub], customer rating[5 out of 5], near[Burger King]",
        "name[Cotto]",
      ];
      const requests = mrs.map((mr, i) => ({
        prompt: tok.encode(`${mr}\n`),
        policy: policies[(i * 2 + 1) % policies.length],
        maxNewTokens: 8 + i,
      }));
      await checkAgainstOracles(weights, wg, requests, 2, 21, "tiny-opt-e2e");
    } finally {
      wg.dispose();
    }
  },
});

Deno.test({
  name: "webgpu rows: verification (want all), truncate, sampling, top-k and nesting refusals",
  ...GPU_TEST,
  fn: async () => {
    const gpu = await testGpu();
    if (!gpu) return;
    const dir = Deno.makeTempDirSync({ prefix: "webgpu-rows-" });
    try {
      writeRandomCheckpoint(dir, FIXTURES[0][1]);
      const weights = await loadWeights(dir);
      const L = weights.config.numHiddenLayers;
      const all = range(L);
      const wg = await createWebGpuBackend(weights, { gpu });
      const rows = wg.openRows({ capacity: 2, maxLength: 16 });
      try {
        const prompt = [2, 40, 41, 42];
        const sets = [all, all, all, all, all, [0, 3, 4], [0, 4], [0, 4], [0, 4], [0, 4]];
        const N = 6;
        const ref = await wg.decode({
          prompts: [prompt],
          maxNewTokens: N,
          sets,
          padTokenId: 1,
          recordLogits: true,
        });
        const toks = ref.tokens[0];
        // prefill, then a verification of three tokens at once, every choice returned
        const [p] = await rows.run([{ slot: 1, tokens: prompt, sets: sets.slice(0, 4) }]);
        assertEquals(p.tokens, [toks[0]]);
        const v = await rows.run([{
          slot: 1,
          tokens: toks.slice(0, 3),
          sets: sets.slice(4, 7),
          want: "all",
          recordLogits: true,
          logitsTopK: 3,
        }]);
        assertEquals(v[0].tokens, toks.slice(1, 4), "choices after each verified token");
        for (let j = 0; j < 3; j++) assertLess(relL2(v[0].logits![j], ref.logits![0][j + 1]), 1e-5);
        assertEquals(v[0].topk![0][0][0], toks[1], "top-1 of the first choice is the greedy id");
        const before = rows.stats();
        // roll back the last two positions and run them again: same choices, no rewrite
        rows.truncate(1, 5);
        assertEquals(rows.length(1), 5);
        const again = await rows.run([{
          slot: 1,
          tokens: toks.slice(1, 3),
          sets: sets.slice(5, 7),
          want: "all",
        }]);
        assertEquals(again[0].tokens, toks.slice(2, 4));
        const after = rows.stats();
        assertEquals(after.kvRewrites, 0);
        assertEquals(after.kvWrites - before.kvWrites, sets[5].length + sets[6].length);

        // nesting: layer 3 skipped at position 6, so position 7 may not run it
        const err = await assertRejects(
          () => rows.run([{ slot: 1, tokens: [toks[3]], sets: [[0, 3, 4]] }]),
          RangeError,
          "slot 1, position 7: runs layer 3",
        );
        assert(String(err).includes("layer 3"));
        assertEquals(rows.length(1), 7, "a refused call changes nothing");
        // a refused call with a good entry first changes nothing either
        await assertRejects(
          () =>
            rows.run([
              { slot: 0, tokens: [2, 5], sets: [all, all] },
              { slot: 1, tokens: [toks[3]], sets: [[1]] },
            ]),
          RangeError,
          "slot 1, position 7: runs layer 1",
        );
        assertEquals(rows.length(0), 0);
        await assertRejects(
          () => rows.run([{ slot: 2, tokens: [2], sets: [all] }]),
          RangeError,
          "slot 2 is not an integer in 0..1",
        );
        await assertRejects(
          () => rows.run([{ slot: 0, tokens: [2, 9999], sets: [all, all] }]),
          RangeError,
          "token 1: id 9999",
        );
        await assertRejects(
          () =>
            rows.run([{ slot: 0, tokens: range(17).map(() => 2), sets: range(17).map(() => all) }]),
          RangeError,
          "exceed the slot's maxLength 16",
        );

        // one run at a time: a second run, a release or a truncate while one is in flight is
        // refused (the state the first one checked stays the state it records against)
        const inFlight = rows.run([{ slot: 0, tokens: [2, 5], sets: [all, all] }]);
        await assertRejects(
          () => rows.run([{ slot: 1, tokens: [toks[3]], sets: [[0]] }]),
          Error,
          "in flight",
        );
        assertThrows(() => rows.release(0), Error, "in flight");
        assertThrows(() => rows.truncate(1, 2), Error, "in flight");
        await inFlight;
        assertEquals([rows.length(0), rows.length(1)], [2, 7]);
        rows.release(0);

        // bad options of openRows name the option
        assertThrows(() => wg.openRows({ capacity: 0, maxLength: 8 }), RangeError, "capacity");
        assertThrows(
          () => wg.openRows({ capacity: 1, maxLength: weights.config.maxPositionEmbeddings + 1 }),
          RangeError,
          "maxLength",
        );

        // seeded sampling keyed by (seed, step): equal to the solo decode's draws
        const sampling = { temperature: 0.9, topK: 20, seed: 77 };
        const sref = await wg.decode({
          prompts: [prompt],
          maxNewTokens: N,
          sets,
          padTokenId: 1,
          sampling,
        });
        const cref = await createCpuBackend(weights).decode({
          prompts: [prompt],
          maxNewTokens: N,
          sets,
          padTokenId: 1,
          sampling,
        });
        assertEquals(sref.tokens, cref.tokens);
        const got: number[] = [];
        let last = (await rows.run([{
          slot: 0,
          tokens: prompt,
          sets: sets.slice(0, 4),
          sampling,
          step: 0,
        }]))[0]
          .tokens[0];
        got.push(last);
        for (let j = 1; j < N; j++) {
          [{ tokens: [last] }] = await rows.run([{
            slot: 0,
            tokens: [last],
            sets: [sets[3 + j]],
            sampling,
            step: j,
          }]);
          got.push(last);
        }
        assertEquals(got, sref.tokens[0], "sampled tokens equal the solo decode's");
      } finally {
        rows.dispose();
        wg.dispose();
      }
    } finally {
      Deno.removeSync(dir, { recursive: true });
    }
  },
});

Deno.test({
  name:
    "webgpu rows: full depth equals the PyTorch reference's argmax (whole and chunked; software and forced GPU kernels)",
  ...GPU_TEST,
  ignore: missingShared("fixtures/torch-bin"),
  fn: async () => {
    const gpu = await testGpu();
    if (!gpu) return;
    const expected = JSON.parse(
      Deno.readTextFileSync(sharedPath("fixtures/torch-bin/expected.json")),
    ) as Record<string, { ids: number[]; argmax: number[]; logits_last: number[] }>;
    // the adapter's kernels, then the real-GPU ones (GEMV) forced on this adapter
    for (const kernels of [undefined, "gpu"] as const) {
      for (const [fixture, exp] of Object.entries(expected)) {
        const name = kernels ? `${fixture} (${kernels} kernels)` : fixture;
        const wg = await createWebGpuBackend(
          await loadWeights(sharedPath(`fixtures/torch-bin/${fixture}`)),
          { gpu, kernels },
        );
        const L = wg.config.numHiddenLayers, T = exp.ids.length;
        const rows = wg.openRows({ capacity: 2, maxLength: T });
        try {
          const all = fullPlanSets(L, T);
          // slot 1: the whole sequence; slot 0: chunks of 1..3 tokens, the first in the same call
          const chunked: number[] = [];
          const [whole, first] = await rows.run([
            { slot: 1, tokens: exp.ids, sets: all, want: "all", recordLogits: true },
            { slot: 0, tokens: exp.ids.slice(0, 1), sets: all.slice(0, 1), want: "all" },
          ]);
          chunked.push(...first.tokens);
          let p = 1;
          assertEquals(whole.tokens, exp.argmax, `${name}: argmax per position`);
          const last = relL2(whole.logits![T - 1], exp.logits_last);
          assertLess(last, 1e-3, `${name}: last logits rel L2 ${last}`);
          while (p < T) {
            const n = Math.min(T - p, 1 + (p % 3));
            const [r] = await rows.run([
              { slot: 0, tokens: exp.ids.slice(p, p + n), sets: all.slice(p, p + n), want: "all" },
            ]);
            chunked.push(...r.tokens);
            p += n;
          }
          assertEquals(chunked, exp.argmax, `${name}: chunked argmax`);
          assertEquals(rows.stats().kvRewrites, 0);
          console.log(
            `${name}: ${T} positions, argmax equal to PyTorch's, last logits rel L2 ${
              last.toExponential(2)
            }`,
          );
        } finally {
          rows.dispose();
          wg.dispose();
        }
      }
    }
  },
});

Deno.test({
  name: "webgpu rows: KV pages follow each slot's plan and equal the CPU batch's",
  ...GPU_TEST,
  fn: async () => {
    const gpu = await testGpu();
    if (!gpu) return;
    const dir = Deno.makeTempDirSync({ prefix: "webgpu-rows-" });
    try {
      writeRandomCheckpoint(dir, FIXTURES[0][1]);
      const weights = await loadWeights(dir);
      const L = weights.config.numHiddenLayers, d = weights.config.hiddenSize;
      const wg = await createWebGpuBackend(weights, { gpu });
      const rows = wg.openRows({ capacity: 2, maxLength: 40 });
      const cpuRows = createCpuBackend(weights).openRows({ capacity: 2, maxLength: 40 });
      try {
        const all = range(L);
        const T = 37;
        const ids = range(T).map((i) => 3 + (i * 7) % 50);
        // slot 0 at full depth; slot 1 drops to its first and last layers from position 10
        const full = range(T).map(() => all);
        const skip = range(T).map((p) => (p < 10 ? all : [0, L - 1]));
        const work = [
          { slot: 0, tokens: ids, sets: full },
          { slot: 1, tokens: ids, sets: skip },
        ];
        await rows.run(work);
        await cpuRows.run(work);
        const page = 2 * 16 * d * 4; // keys and values of 16 positions
        const pages = (sets: number[][]) =>
          range(L).reduce(
            (n, l) => n + Math.ceil(sets.filter((s) => s.includes(l)).length / 16),
            0,
          );
        const want = (pages(full) + pages(skip)) * page;
        const got = rows.stats();
        console.log(
          `KV: ${got.kvBytes} bytes (full slot ${pages(full)} pages, skipping slot ` +
            `${pages(skip)} pages of ${page} bytes)`,
        );
        assertEquals(got.kvBytes, want);
        assertLess(pages(skip), pages(full));
        assertEquals(got.kvBytes, cpuRows.stats().kvBytes, "same pages as the CPU batch");
        rows.truncate(0, 5);
        rows.release(1);
        assertEquals(rows.stats().kvBytes, L * page, "truncate to 5 keeps one page per layer");
        assertEquals(rows.stats().peakKvBytes, want);
      } finally {
        rows.dispose();
        cpuRows.dispose();
        wg.dispose();
      }
    } finally {
      Deno.removeSync(dir, { recursive: true });
    }
  },
});

Deno.test({
  name:
    "webgpu rows: self-speculative decoding on the WebGPU row batch equals full (truncate, want all)",
  ...GPU_TEST,
  fn: async () => {
    const gpu = await testGpu();
    if (!gpu) return;
    const dir = Deno.makeTempDirSync({ prefix: "webgpu-rows-" });
    try {
      writeRandomCheckpoint(dir, FIXTURES[1][1]);
      for (const path of [dir, new URL("models/tiny-opt-e2e", BUNDLED).pathname]) {
        const weights = await loadWeights(path);
        const L = weights.config.numHiddenLayers, V = weights.config.vocabSize;
        const wg = await createWebGpuBackend(weights, { gpu });
        try {
          const prompts = randomPrompts([5, 2, 8], Math.min(V, 2000), 3);
          const N = 12;
          const full = await wg.decode({
            prompts,
            maxNewTokens: N,
            sets: fullPlanSets(L, Math.max(...prompts.map((p) => p.length)) + N - 1),
            padTokenId: 1,
            recordLogits: true,
          });
          const drafts = [
            parsePolicy(`linear:max=${L},min=2,warmup=1`),
            parsePolicy(`earlyexit:constant:n=${Math.ceil(L / 2)}`),
          ];
          let worst = 0, accepted = 0, drafted = 0;
          // the tiny model's 50k-row LM head is slow on llvmpipe: one draft and K there
          const tiny = path !== dir;
          for (const draft of tiny ? drafts.slice(0, 1) : drafts) {
            for (const [k, batchSize] of tiny ? [[3, 2]] : [[1, 3], [3, 2], [5, 3]]) {
              const out = await speculativeDecode(wg, prompts, {
                draft,
                k,
                maxNewTokens: N,
                batchSize,
                recordLogits: true,
              });
              out.rows.forEach((r, i) => {
                assertEquals(r.tokens, full.tokens[i], `${draft.name} K=${k} prompt ${i}`);
                r.logits!.forEach((
                  l,
                  t,
                ) => (worst = Math.max(worst, relL2(l, full.logits![i][t]))));
                accepted += r.stats.accepted;
                drafted += r.stats.drafted;
              });
            }
          }
          console.log(
            `${tiny ? "tiny-opt-e2e" : "post-LN fixture"}: speculative = full ` +
              `(${accepted}/${drafted} drafts accepted), logits max rel L2 ${
                worst.toExponential(2)
              } ` +
              `vs the WebGPU full decode`,
          );
          assertLess(worst, 1e-5);
          assert(accepted > 0 && accepted < drafted, "some drafts accepted, some rejected");
        } finally {
          wg.dispose();
        }
      }
    } finally {
      Deno.removeSync(dir, { recursive: true });
    }
  },
});
