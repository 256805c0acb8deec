/**
 * Self-speculative decoding (`decode/speculative.ts`) on the WebGPU backend (its `RowBatch`,
 * `backend/webgpu/rows.ts`), issue 25's acceptance on the GPU: greedy outputs equal `full`'s
 * token for token (the WebGPU full decode's and the CPU oracle's), alone and batched with rows
 * accepting different counts in one verification, for SkipDecode (linear, power-law), early-exit
 * and custom drafts, K from 1 to 8, on a random awkward-sized pre-LN f16 checkpoint and the
 * shipped model (through `generate({speculative})`); the logits of every accepted token are
 * within 1e-5 (relative L2) of the WebGPU full decode's; no kept position runs at full depth
 * twice; speculative requests of the serving scheduler on the WebGPU RowBatch equal full. Sizes
 * are small: the CI GPU is llvmpipe.
 */
import { assert, assertEquals, assertLess } from "@std/assert";
import type { Backend, RowBatch, RowWork } from "../backend/types.ts";
import { createCpuBackend } from "../backend/cpu/backend.ts";
import { createWebGpuBackend } from "../backend/webgpu/mod.ts";
import { loadWeights, writeRandomCheckpoint } from "../model/mod.ts";
import { loadTokenizer } from "../tokenizer/mod.ts";
import {
  customPolicy,
  fullPlanSets,
  parsePolicy,
  type Policy,
  skipDecodeSet,
} from "../schedule/mod.ts";
import { generate, speculativeDecode } from "../decode/mod.ts";
import { Scheduler } from "../serve/mod.ts";
import { BUNDLED } from "./helpers.ts";
import { randomPrompts } from "./rows_helpers.ts";
import { GPU_TEST, relL2, testGpu } from "./webgpu_helpers.ts";

/** Drafts of every kind for `L` layers: SkipDecode linear and power-law, early exit, custom. */
function drafts(L: number): Policy[] {
  return [
    parsePolicy(`linear:max=${L},min=2,warmup=1`),
    parsePolicy(`powerlaw:max=${L - 1},min=2,warmup=1,alpha=1,tau=2`),
    parsePolicy(`earlyexit:constant:n=${Math.ceil(L / 2)}`),
    customPolicy({ // a constant mid-layer skip (Draft & Verify's style)
      name: "midskip",
      layerSet: ({ column, promptLength, layers }) =>
        column < promptLength
          ? skipDecodeSet(layers, layers, 0)
          : [...Array(layers).keys()].filter((l) => l === 0 || l >= Math.floor(layers / 2)),
    }),
  ];
}

/** What {@linkcode watched} saw: accepted counts per verification call, re-verified positions. */
interface Watch {
  /** Per verification call, the accepted draft count of each verified row. */
  accepts: number[][];
  /** Kept positions that ran at full depth a second time (must stay empty). */
  reverified: string[];
}

/**
 * Wraps a backend so its RowBatches record, per verification call (`want: "all"`), each row's
 * accepted count (read from the `truncate` that follows it) and every kept position that runs
 * at full depth twice.
 */
function watched(inner: Backend): { backend: Backend; watch: Watch } {
  const L = inner.config.numHiddenLayers;
  const watch: Watch = { accepts: [], reverified: [] };
  const wrap = (rows: RowBatch): RowBatch => {
    const full = new Map<number, number[]>(); // slot -> full-depth runs per kept position
    const pending = new Map<number, { call: number; start: number }>();
    return {
      capacity: rows.capacity,
      async run(entries: readonly RowWork[]) {
        const call = watch.accepts.length;
        let verifying = false;
        for (const e of entries) {
          const start = rows.length(e.slot);
          const f = full.get(e.slot) ?? [];
          e.sets.forEach((set, i) => {
            if (set.length !== L) return;
            f[start + i] = (f[start + i] ?? 0) + 1;
            if (f[start + i] > 1) watch.reverified.push(`slot ${e.slot} position ${start + i}`);
          });
          full.set(e.slot, f);
          if (e.want === "all") {
            verifying = true;
            pending.set(e.slot, { call, start });
          }
        }
        if (verifying) watch.accepts.push([]);
        return await rows.run(entries);
      },
      length: (slot) => rows.length(slot),
      truncate(slot, n) {
        const p = pending.get(slot);
        if (p) {
          watch.accepts[p.call].push(n - p.start - 1);
          pending.delete(slot);
        }
        const f = full.get(slot);
        if (f) f.length = Math.min(f.length, n);
        rows.truncate(slot, n);
      },
      release(slot) {
        full.delete(slot);
        pending.delete(slot);
        rows.release(slot);
      },
      stats: () => rows.stats(),
      dispose: () => rows.dispose(),
    };
  };
  const backend: Backend = {
    name: inner.name,
    config: inner.config,
    decode: (r) => inner.decode(r),
    forward: (r) => inner.forward(r),
    openRows: (o) => wrap(inner.openRows(o)),
    dispose: () => inner.dispose(),
  };
  return { backend, watch };
}

Deno.test({
  name: "webgpu speculative: every draft kind, K 1..8, alone and batched, equals full (GPU, CPU)",
  ...GPU_TEST,
  fn: async () => {
    const gpu = await testGpu();
    if (!gpu) return;
    const dir = Deno.makeTempDirSync({ prefix: "webgpu-spec-" });
    try {
      // awkward sizes: head size 7, ffn 53, 6 layers, 211-row vocabulary, f16
      writeRandomCheckpoint(dir, {
        shape: {
          hiddenSize: 35,
          numAttentionHeads: 5,
          ffnDim: 53,
          numHiddenLayers: 6,
          vocabSize: 211,
        },
        dtype: "F16",
        seed: 25,
      });
      const weights = await loadWeights(dir);
      const L = weights.config.numHiddenLayers, V = weights.config.vocabSize;
      const wg = await createWebGpuBackend(weights, { gpu });
      const cpu = createCpuBackend(weights);
      const { backend, watch } = watched(wg);
      try {
        const prompts = randomPrompts([6, 1, 11, 3], V, 7);
        const N = 11;
        const req = {
          prompts,
          maxNewTokens: N,
          sets: fullPlanSets(L, Math.max(...prompts.map((p) => p.length)) + N - 1),
          padTokenId: 1,
          recordLogits: true,
        };
        const full = await wg.decode(req);
        assertEquals(full.tokens, (await cpu.decode(req)).tokens, "WebGPU full = CPU full");
        let worst = 0, drafted = 0, accepted = 0, runs = 0;
        const ks = [1, 2, 5, 8];
        for (const [d, draft] of drafts(L).entries()) {
          for (const [i, k] of ks.entries()) {
            const batchSize = (d + i) % 2 === 0 ? 1 : 3; // alone, and batched with a refill
            const out = await speculativeDecode(backend, prompts, {
              draft,
              k,
              maxNewTokens: N,
              batchSize,
              recordLogits: true,
            });
            runs++;
            out.rows.forEach((r, p) => {
              const label = `${draft.name} K=${k} batch ${batchSize} prompt ${p}`;
              assertEquals(r.tokens, full.tokens[p], label);
              assertEquals(r.logits!.length, r.tokens.length, label);
              r.logits!.forEach((l, t) => (worst = Math.max(worst, relL2(l, full.logits![p][t]))));
              assert(r.stats.layerPasses > 0 && r.stats.flopRatio >= 1, label);
              drafted += r.stats.drafted;
              accepted += r.stats.accepted;
            });
          }
        }
        const mixed = watch.accepts.filter((a) => a.length > 1 && new Set(a).size > 1).length;
        console.log(
          `webgpu speculative: ${runs} runs equal full, ${accepted}/${drafted} drafts accepted, ` +
            `${mixed} batched verifications with rows accepting different counts, logits max ` +
            `rel L2 ${worst.toExponential(2)} vs the WebGPU full decode`,
        );
        assertLess(worst, 1e-5);
        assert(accepted > 0 && accepted < drafted, "some drafts accepted, some rejected");
        assert(mixed > 0, "a batched verification where rows accepted different counts");
        assertEquals(watch.reverified, [], "no kept position verified twice");
      } finally {
        wg.dispose();
        cpu.dispose();
      }
    } finally {
      Deno.removeSync(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "webgpu speculative: generate({speculative}) on the shipped model equals full (K 8, 2)",
  ...GPU_TEST,
  fn: async () => {
    const gpu = await testGpu();
    if (!gpu) return;
    const path = new URL("models/tiny-opt-e2e", BUNDLED).pathname;
    const weights = await loadWeights(path);
    const tokenizer = await loadTokenizer(path);
    const backend = await createWebGpuBackend(weights, { gpu });
    const model = { backend, tokenizer, config: weights.config };
    try {
      const prompts = ["name[Alimentum], area[city centre]\n", "name[Zizzi], eatType[pub]\n"];
      const common = { maxNewTokens: 8, stopAtEos: false, recordLogits: true };
      const full = await generate(model, prompts, { ...common, policy: "full" });
      let worst = 0;
      // the 50k-row LM head is slow on llvmpipe: two configurations, batched and alone
      for (
        const [policy, k, batchSize] of [
          ["earlyexit:constant:n=6", 8, 2],
          ["linear:max=12,min=4,warmup=1", 2, 1],
        ] as const
      ) {
        const out = await generate(model, prompts, {
          ...common,
          policy,
          speculative: k,
          batchSize,
        });
        assertEquals(out.backend, "webgpu");
        out.results.forEach((r, i) => {
          assertEquals(r.ids, full.results[i].ids, `${policy} K=${k} prompt ${i}`);
          r.logits!.forEach((l, t) =>
            worst = Math.max(worst, relL2(l, full.results[i].logits![t]))
          );
          assert(r.speculative!.drafted > 0, `${policy} K=${k} prompt ${i} drafted`);
        });
        assert(out.speculative!.flopRatio >= 1);
      }
      console.log(`tiny-opt-e2e on WebGPU: logits max rel L2 ${worst.toExponential(2)}`);
      assertLess(worst, 1e-5);
    } finally {
      backend.dispose();
    }
  },
});

Deno.test({
  name: "webgpu speculative: scheduler requests with speculative (beside a plain one) equal full",
  ...GPU_TEST,
  fn: async () => {
    const gpu = await testGpu();
    if (!gpu) return;
    const path = new URL("models/tiny-opt-e2e", BUNDLED).pathname;
    const weights = await loadWeights(path);
    const tokenizer = await loadTokenizer(path);
    const backend = await createWebGpuBackend(weights, { gpu });
    const model = { backend, tokenizer, config: weights.config };
    try {
      const prompts = [
        "name[Alimentum], area[city centre]\n",
        "name[Zizzi], eatType[pub]\n",
        "name[The Eagle], food[French]\n",
      ];
      const policy = "linear:max=12,min=4,warmup=1";
      const scheduler = new Scheduler(model, { capacity: 2 });
      const done = await Promise.all([
        scheduler.submit({ prompt: prompts[0], maxTokens: 9, policy, speculative: 3 }).done,
        scheduler.submit({ prompt: prompts[1], maxTokens: 7, policy }).done,
        scheduler.submit({ prompt: prompts[2], maxTokens: 8, policy, speculative: 8 }).done,
      ]);
      await scheduler.close();
      const solo = async (i: number, p: string, n: number) =>
        (await generate(model, [prompts[i]], { policy: p, maxNewTokens: n, batchSize: 1 }))
          .results[0].ids;
      assertEquals(done[0].ids, await solo(0, "full", 9));
      assertEquals(done[1].ids, await solo(1, policy, 7));
      assertEquals(done[2].ids, await solo(2, "full", 8));
      assert(done[0].speculative!.drafted > 0 && done[2].speculative!.drafted > 0);
    } finally {
      backend.dispose();
    }
  },
});
