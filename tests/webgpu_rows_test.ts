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
import { assert, assertEquals, assertLess, assertRejects } from "@std/assert";
import { createCpuBackend } from "../backend/cpu/backend.ts";
import type { Backend, RowBatch } from "../backend/types.ts";
import { createWebGpuBackend } from "../backend/webgpu/mod.ts";
import {
  loadWeights,
  type OptWeights,
  type RandomCheckpointOptions,
  writeRandomCheckpoint,
} from "../model/mod.ts";
import { BUNDLED, intIn } from "./helpers.ts";
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
    shape: { hiddenSize: 30, numAttentionHeads: 5, ffnDim: 46, numHiddenLayers: 3, vocabSize: 99 },
    dtype: "F32",
    seed: 13,
  }],
];

/** A request: prompt, tokens to generate and its per-column plan (prompt columns first). */
interface Request {
  prompt: number[];
  n: number;
  sets: number[][];
}

const range = (n: number) => Array.from({ length: n }, (_, i) => i);

/**
 * A nested per-request plan: every layer on the prompt, then one of four policy shapes
 * (full, SkipDecode-style decreasing budgets with warm-up layer 0, early exit, constant)
 * with the request's own rates.
 */
function requestPlan(L: number, P: number, n: number, kind: number, r: () => number): number[][] {
  const all = range(L);
  const every = intIn(r, 1, 3), min = intIn(r, 1, Math.max(1, L - 1));
  return range(P + n - 1).map((c) => {
    if (c < P || kind === 0) return all;
    const j = c - P;
    const budget = Math.max(min, L - 1 - Math.floor(j / every));
    if (kind === 1) return budget >= L ? all : [0, ...all.slice(L - budget + 1)];
    if (kind === 2) return all.slice(0, budget);
    return [0, ...all.slice(L - min + 1)].filter((l, i, a) => a.indexOf(l) === i);
  });
}

function makeRequests(L: number, V: number, count: number, seed: number): Request[] {
  const r = rng(seed);
  return range(count).map((i) => {
    const P = intIn(r, 1, 9), n = intIn(r, 2, 9);
    const prompt = [2, ...range(P - 1).map(() => intIn(r, 3, V - 1))];
    return { prompt, n, sets: requestPlan(L, P, n, i % 4, r) };
  });
}

/** What a request produced: tokens and the logits of each choice. */
interface Produced {
  tokens: number[];
  logits: Float32Array[];
}

/**
 * Runs `requests` through `rows` with `capacity` slots: each call admits waiting requests
 * into free slots (a seeded coin decides whether a free slot admits now or waits, so
 * prefills land next to decode steps), runs one decode step of every running request,
 * and releases a slot as soon as its request has its tokens.
 */
async function drive(
  rows: RowBatch,
  requests: Request[],
  seed: number,
): Promise<{ produced: Produced[]; calls: number; tokensRun: number; layerRuns: number }> {
  const r = rng(seed);
  const produced: Produced[] = requests.map(() => ({ tokens: [], logits: [] }));
  const slotOf = new Array<number>(rows.capacity).fill(-1);
  let next = 0, calls = 0, tokensRun = 0, layerRuns = 0;
  while (next < requests.length || slotOf.some((q) => q >= 0)) {
    const entries = [];
    const owners: number[] = [];
    for (let s = 0; s < rows.capacity; s++) {
      const q = slotOf[s];
      if (q >= 0) {
        const req = requests[q], j = produced[q].tokens.length; // next token index
        const set = req.sets[req.prompt.length + j - 1];
        entries.push({
          slot: s,
          tokens: [produced[q].tokens[j - 1]],
          sets: [set],
          step: j,
          recordLogits: true,
        });
        owners.push(q);
      } else if (next < requests.length && (r() < 0.6 || slotOf.every((x) => x < 0))) {
        assertEquals(rows.length(s), 0, `slot ${s} is free, so it starts at position 0`);
        const req = requests[next];
        slotOf[s] = next;
        entries.push({
          slot: s,
          tokens: req.prompt,
          sets: req.sets.slice(0, req.prompt.length),
          step: 0,
          recordLogits: true,
        });
        owners.push(next++);
      }
    }
    // adversarial order of the entries inside a call
    for (let i = entries.length - 1; i > 0; i--) {
      const k = intIn(r, 0, i);
      [entries[i], entries[k]] = [entries[k], entries[i]];
      [owners[i], owners[k]] = [owners[k], owners[i]];
    }
    const results = await rows.run(entries);
    calls++;
    entries.forEach((e, i) => {
      const q = owners[i];
      tokensRun += e.tokens.length;
      layerRuns += e.sets.reduce((a, s) => a + s.length, 0);
      assertEquals(results[i].tokens.length, 1);
      produced[q].tokens.push(results[i].tokens[0]);
      produced[q].logits.push(results[i].logits![0]);
      if (produced[q].tokens.length === requests[q].n) {
        rows.release(e.slot);
        slotOf[e.slot] = -1;
      }
    });
  }
  return { produced, calls, tokensRun, layerRuns };
}

async function solo(backend: Backend, req: Request): Promise<Produced> {
  const out = await backend.decode({
    prompts: [req.prompt],
    maxNewTokens: req.n,
    sets: req.sets,
    padTokenId: 1,
    recordLogits: true,
  });
  return { tokens: out.tokens[0], logits: out.logits![0] };
}

/** Compares a driven run with the solo decodes; returns the worst logit errors. */
async function compareWithSolo(
  weights: OptWeights,
  gpuBackend: Backend,
  requests: Request[],
  produced: Produced[],
  label: string,
): Promise<void> {
  const cpu = createCpuBackend(weights);
  let gpuErr = 0, cpuErr = 0;
  for (let q = 0; q < requests.length; q++) {
    const g = await solo(gpuBackend, requests[q]);
    const c = await solo(cpu, requests[q]);
    assertEquals(produced[q].tokens, g.tokens, `${label}: request ${q} vs WebGPU solo decode`);
    assertEquals(produced[q].tokens, c.tokens, `${label}: request ${q} vs CPU solo decode`);
    for (let j = 0; j < requests[q].n; j++) {
      gpuErr = Math.max(gpuErr, relL2(produced[q].logits[j], g.logits[j]));
      cpuErr = Math.max(cpuErr, relL2(produced[q].logits[j], c.logits[j]));
    }
  }
  console.log(
    `${label}: ${requests.length} requests equal their solo decodes; logits max rel L2 ` +
      `${gpuErr.toExponential(2)} vs WebGPU solo, ${cpuErr.toExponential(2)} vs CPU`,
  );
  assertLess(gpuErr, 1e-5, `${label}: logits vs the WebGPU solo decode`);
  assertLess(cpuErr, 1e-4, `${label}: logits vs the CPU solo decode`);
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
          const requests = makeRequests(L, V, 7, options.seed! * 7);
          const rows = wg.openRows({ capacity: 3, maxLength: 20 });
          try {
            const run = await drive(rows, requests, options.seed!);
            const stats = rows.stats();
            assertEquals(stats.kvRewrites, 0, "no KV is recomputed");
            assertEquals(stats.kvWrites, run.layerRuns, "one KV write per token and layer run");
            assertEquals(stats.layerSteps, run.layerRuns);
            assertEquals(stats.kvBytes, 0, "every slot was released, so no page is held");
            assert(stats.peakKvBytes > 0);
            assert(run.calls < run.tokensRun, "calls batch several slots");
            await compareWithSolo(weights, wg, requests, run.produced, name);
          } finally {
            rows.dispose();
          }
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
  name: "webgpu rows: the shipped tiny model, three policies in one batch, equal solo decodes",
  ...GPU_TEST,
  fn: async () => {
    const gpu = await testGpu();
    if (!gpu) return;
    const weights = await loadWeights(new URL("models/tiny-opt-e2e", BUNDLED).pathname);
    const wg = await createWebGpuBackend(weights, { gpu });
    try {
      const L = weights.config.numHiddenLayers;
      // "name[food=Alimentum], area[city centre]\n"-like prompts (ids from the tokenizer)
      const prompts = [
        [2, 13650, 10975, 15139, 5214, 1215, 17550, 742, 6, 443, 10975, 14853, 2100, 742, 50118],
        [2, 13650, 10975, 133, 5713, 742, 50118],
        [2, 13650, 10975, 4688, 23619, 742, 6, 689, 10975, 16776, 742, 50118],
      ];
      const n = 10, r = rng(5);
      const requests = prompts.map((prompt, i) => ({
        prompt,
        n,
        sets: requestPlan(L, prompt.length, n, [0, 1, 2][i], r),
      }));
      const rows = wg.openRows({ capacity: 2, maxLength: 40 });
      try {
        const run = await drive(rows, requests, 9);
        assertEquals(rows.stats().kvRewrites, 0);
        await compareWithSolo(weights, wg, requests, run.produced, "tiny-opt-e2e");
      } finally {
        rows.dispose();
      }
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
          "slot 1: position 7 runs layer 3",
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
          "slot 1: position 7 runs layer 1",
        );
        assertEquals(rows.length(0), 0);
        await assertRejects(
          () => rows.run([{ slot: 2, tokens: [2], sets: [all] }]),
          RangeError,
          "slot 2 is not in 0..1",
        );
        await assertRejects(
          () => rows.run([{ slot: 0, tokens: [2, 9999], sets: [all, all] }]),
          RangeError,
          "token 1 is 9999",
        );
        await assertRejects(
          () =>
            rows.run([{ slot: 0, tokens: range(17).map(() => 2), sets: range(17).map(() => all) }]),
          RangeError,
          "maxLength 16",
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
