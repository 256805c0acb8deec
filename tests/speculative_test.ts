/**
 * Self-speculative decoding on the CPU backend (`decode/speculative.ts`): greedy outputs equal
 * `full`'s token for token, with the full model's logits, for SkipDecode, early-exit and custom
 * drafts, K from 1 to 8, alone and batched (rows accepting different counts in one
 * verification), on random awkward-sized checkpoints, the shipped model and the PyTorch
 * fixtures; the KV cache after verification equals a full-depth run's; no kept position is
 * verified twice; bad input is refused in one line.
 */
import { assert, assertEquals, assertLess, assertRejects, assertThrows } from "@std/assert";
import type { Backend, RowBatch, RowWork } from "../backend/types.ts";
import { createCpuBackend } from "../backend/cpu/backend.ts";
import type { CpuRowBatch } from "../backend/cpu/rows.ts";
import { loadWeightsSync } from "../model/mod.ts";
import {
  customPolicy,
  fullPlanSets,
  parsePolicy,
  type Policy,
  skipDecodeSet,
} from "../schedule/mod.ts";
import {
  checkDraftLength,
  chooseDraftLength,
  generate,
  loadModel,
  speculativeDecode,
} from "../decode/mod.ts";
import { compareDrafts } from "../experiments/speculative.ts";
import type { OptTokenizer } from "../tokenizer/mod.ts";
import { missingShared, sharedPath } from "./helpers.ts";
import { randomCpuBackend, randomPrompts } from "./rows_helpers.ts";

/** Draft policies of every kind for `L` layers. */
function drafts(L: number): Policy[] {
  return [
    parsePolicy(`linear:max=${L},min=2,warmup=1`),
    parsePolicy(`powerlaw:max=${L - 1},min=2,warmup=1,alpha=1,tau=2`),
    parsePolicy(`earlyexit:constant:n=${Math.ceil(L / 2)}`),
    customPolicy({ // a constant mid-layer skip (Draft & Verify's style)
      name: "midskip",
      layerSet: ({ column, promptLength, layers }) =>
        column < promptLength ? skipDecodeSet(layers, layers, 0) : [
          ...Array(layers).keys(),
        ].filter((l) => l === 0 || l >= Math.floor(layers / 2)),
    }),
  ];
}

/** What the recording wrapper saw of one backend's RowBatches. */
interface Recording {
  /** Kept positions that ran at full depth twice (must stay empty). */
  reverified: string[];
  /** Per verification call, the accepted count of each row (from the truncate after it). */
  accepts: number[][];
  /** KV comparisons made at release. */
  kvChecks: number;
}

/**
 * Wraps a CPU backend so its RowBatches record, per slot, which kept positions ran at full
 * depth (a second full-depth run of a kept position is a re-verification) and the tokens at
 * each kept position; at `release` the slot's KV at every layer is compared with a fresh
 * full-depth run of those tokens.
 */
function recording(inner: Backend): { backend: Backend; rec: Recording } {
  const L = inner.config.numHiddenLayers;
  const rec: Recording = { reverified: [], accepts: [], kvChecks: 0 };
  const wrap = (rows: RowBatch): RowBatch => {
    const full = new Map<number, number[]>(); // slot -> full-depth runs per kept position
    const toks = new Map<number, number[]>(); // slot -> token at each kept position
    const pending = new Map<number, { call: number; start: number }>();
    return {
      capacity: rows.capacity,
      async run(entries: readonly RowWork[]) {
        const call = rec.accepts.length;
        let verifying = false;
        for (const e of entries) {
          const start = rows.length(e.slot);
          const f = full.get(e.slot) ?? [];
          const t = toks.get(e.slot) ?? [];
          e.tokens.forEach((id, i) => {
            t[start + i] = id;
            if (e.sets[i].length === L) {
              f[start + i] = (f[start + i] ?? 0) + 1;
              if (f[start + i] > 1) rec.reverified.push(`slot ${e.slot} position ${start + i}`);
            }
          });
          full.set(e.slot, f);
          toks.set(e.slot, t);
          if (e.want === "all") {
            verifying = true;
            pending.set(e.slot, { call, start });
          }
        }
        if (verifying) rec.accepts.push([]);
        return await rows.run(entries);
      },
      length: (slot) => rows.length(slot),
      truncate(slot, n) {
        const p = pending.get(slot);
        if (p) {
          rec.accepts[p.call].push(n - p.start - 1);
          pending.delete(slot);
        }
        full.get(slot)!.length = Math.min(full.get(slot)!.length, n);
        toks.get(slot)!.length = Math.min(toks.get(slot)!.length, n);
        rows.truncate(slot, n);
      },
      release(slot) {
        const seq = toks.get(slot) ?? [];
        if (seq.length > 0) checkKv(rows as CpuRowBatch, slot, seq);
        full.delete(slot);
        toks.delete(slot);
        rows.release(slot);
      },
      stats: () => rows.stats(),
      dispose: () => rows.dispose(),
    };
  };
  /** The slot's KV equals a full-depth run of its kept tokens, at every layer, bit for bit. */
  const checkKv = (rows: CpuRowBatch, slot: number, seq: number[]) => {
    const ref = inner.openRows({ capacity: 1, maxLength: seq.length }) as CpuRowBatch;
    // synchronous on the CPU backend: run() resolves at once, the comparison follows below
    void ref.run([{ slot: 0, tokens: seq, sets: fullPlanSets(L, seq.length) }]);
    for (let l = 0; l < L; l++) {
      const a = rows.readKv(slot, l), b = ref.readKv(0, l);
      assertEquals(a.keys.length, b.keys.length, `slot ${slot} layer ${l}: KV positions`);
      assert(a.keys.every((x, i) => x === b.keys[i]), `slot ${slot} layer ${l}: keys`);
      assert(a.values.every((x, i) => x === b.values[i]), `slot ${slot} layer ${l}: values`);
    }
    ref.dispose();
    rec.kvChecks++;
  };
  const backend: Backend = {
    name: inner.name,
    config: inner.config,
    decode: (r) => inner.decode(r),
    forward: (r) => inner.forward(r),
    openRows: (o) => wrap(inner.openRows(o)),
    dispose: () => inner.dispose(),
  };
  return { backend, rec };
}

/** Max relative difference of two logit vectors. */
function relMax(a: Float32Array, b: Float32Array): number {
  let num = 0, den = 0;
  for (let i = 0; i < a.length; i++) {
    num = Math.max(num, Math.abs(a[i] - b[i]));
    den = Math.max(den, Math.abs(b[i]));
  }
  return num / Math.max(den, 1e-30);
}

/** Full-depth greedy decodes of each prompt alone (the oracle). */
async function fullDecodes(backend: Backend, prompts: number[][], N: number, eos?: number) {
  const L = backend.config.numHiddenLayers;
  return await Promise.all(prompts.map((p) =>
    backend.decode({
      prompts: [p],
      maxNewTokens: N,
      sets: fullPlanSets(L, p.length + N - 1),
      padTokenId: 1,
      eosTokenId: eos,
      recordLogits: true,
    })
  ));
}

/** Runs every draft and K against the full decodes; returns the accepted-count spreads. */
async function checkEqualsFull(
  inner: Backend,
  prompts: number[][],
  N: number,
  ks: number[],
  batchSizes: number[],
): Promise<void> {
  const oracle = await fullDecodes(inner, prompts, N);
  const { backend, rec } = recording(inner);
  let runs = 0, worst = 0, mixedAccepts = 0;
  for (const draft of drafts(inner.config.numHiddenLayers)) {
    for (const k of ks) {
      for (const batchSize of batchSizes) {
        const out = await speculativeDecode(backend, prompts, {
          draft,
          k,
          maxNewTokens: N,
          batchSize,
          recordLogits: true,
        });
        out.rows.forEach((r, i) => {
          const where = `${draft.name} K=${k} batch ${batchSize} prompt ${i}`;
          assertEquals(r.tokens, oracle[i].tokens[0], where);
          r.logits!.forEach((
            l,
            t,
          ) => (worst = Math.max(worst, relMax(l, oracle[i].logits![0][t]))));
          const s = r.stats;
          // tokens = the prefill's + (accepted + 1) per verification; drafts <= K per round
          assertEquals(s.accepted + s.verifications + 1, r.tokens.length, where);
          assert(s.accepted <= s.drafted && s.drafted <= k * s.verifications, where);
          assertEquals(s.draftOutcome.length, r.tokens.length, where);
          assertEquals(s.draftOutcome.filter((x) => x === 1).length, s.accepted, where);
          assert(s.flopRatio >= 1, `${where}: FLOP ratio ${s.flopRatio} >= 1`);
        });
        runs++;
      }
    }
  }
  assertLess(worst, 1e-5, "accepted tokens' logits equal full's");
  assertEquals(rec.reverified, [], "no kept position verified twice");
  for (const a of rec.accepts) if (new Set(a).size > 1) mixedAccepts++;
  assert(mixedAccepts > 0, "some verification call had rows accepting different counts");
  assert(rec.kvChecks >= runs * prompts.length, "KV checked at every release");
  console.log(
    `  ${runs} runs, ${rec.accepts.length} verification calls (${mixedAccepts} with rows ` +
      `accepting different counts), ${rec.kvChecks} KV caches equal to full depth, ` +
      `worst logit rel diff ${worst}`,
  );
}

const K_ALL = [1, 2, 3, 4, 5, 6, 7, 8];

Deno.test("speculative: random checkpoint (d=36, L=5): equals full for every draft, K 1..8, alone and batched", async () => {
  const backend = randomCpuBackend({
    hiddenSize: 36,
    numAttentionHeads: 3,
    ffnDim: 52,
    vocabSize: 97,
    numHiddenLayers: 5,
    maxPositionEmbeddings: 64,
  }, 21);
  const prompts = randomPrompts([3, 1, 6, 4, 2], 97, 5);
  await checkEqualsFull(backend, prompts, 11, K_ALL, [1, 3]);
});

Deno.test("speculative: random post-LN checkpoint with project_in/out (L=4): equals full", async () => {
  const backend = randomCpuBackend({
    hiddenSize: 24,
    numAttentionHeads: 2,
    ffnDim: 44,
    vocabSize: 83,
    numHiddenLayers: 4,
    wordEmbedProjDim: 16,
    doLayerNormBefore: false,
    maxPositionEmbeddings: 48,
  }, 22);
  const prompts = randomPrompts([2, 5, 3, 1], 83, 6);
  await checkEqualsFull(backend, prompts, 9, K_ALL, [1, 4]);
});

Deno.test("speculative: the shipped tiny model equals full (K 1, 3, 8, batched)", async () => {
  const model = await loadModel("bundled/models/tiny-opt-e2e", { backend: "cpu" });
  const prompts = [
    "name[Alimentum], area[city centre]\n",
    "name[The Eagle], eatType[coffee shop], food[French]\n",
    "name[Zizzi], customer rating[5 out of 5]\n",
  ].map((t) => model.tokenizer.encode(t));
  await checkEqualsFull(model.backend, prompts, 10, [1, 3, 8], [3]);
});

Deno.test("speculative: stops at EOS exactly as full does; a full draft accepts everything", async () => {
  const model = await loadModel("bundled/models/tiny-opt-e2e", { backend: "cpu" });
  const eos = model.config.eosTokenId;
  const prompts = ["name[Alimentum], area[city centre]\n", "name[Zizzi], food[Italian]\n"]
    .map((t) => model.tokenizer.encode(t));
  const oracle = await fullDecodes(model.backend, prompts, 40, eos);
  const out = await speculativeDecode(model.backend, prompts, {
    draft: parsePolicy("linear:max=12,min=4,warmup=1"),
    k: 5,
    maxNewTokens: 40,
    eosTokenId: eos,
  });
  out.rows.forEach((r, i) => {
    assertEquals(r.tokens, oracle[i].tokens[0]);
    assertEquals(r.finish, oracle[i].finish[0]);
  });
  assertEquals(out.rows.map((r) => r.finish), ["eos", "eos"]);
  const full = await speculativeDecode(model.backend, prompts, {
    draft: parsePolicy("full"),
    k: 4,
    maxNewTokens: 12,
  });
  for (const r of full.rows) assertEquals(r.stats.acceptanceRate, 1);
});

Deno.test(
  "speculative: PyTorch fixtures, the first token of every prefix is the reference argmax",
  {
    ignore: missingShared("fixtures/torch-bin"),
  },
  async () => {
    const expected = JSON.parse(
      Deno.readTextFileSync(sharedPath("fixtures/torch-bin/expected.json")),
    ) as Record<string, { ids: number[]; argmax: number[] }>;
    for (const [name, exp] of Object.entries(expected)) {
      const backend = createCpuBackend(loadWeightsSync(sharedPath(`fixtures/torch-bin/${name}`)));
      const L = backend.config.numHiddenLayers;
      const prefixes = exp.ids.map((_, j) => exp.ids.slice(0, j + 1));
      const one = await speculativeDecode(backend, prefixes, {
        draft: parsePolicy(`linear:max=${L},min=1`),
        k: 3,
        maxNewTokens: 1,
        batchSize: 3,
      });
      assertEquals(one.rows.map((r) => r.tokens[0]), exp.argmax, name);
      // and longer continuations equal the CPU full decode (itself tested against PyTorch)
      const oracle = await fullDecodes(backend, prefixes.slice(0, 3), 6);
      const long = await speculativeDecode(backend, prefixes.slice(0, 3), {
        draft: parsePolicy(`earlyexit:constant:n=1`),
        k: 2,
        maxNewTokens: 6,
        batchSize: 2,
      });
      long.rows.forEach((r, i) => assertEquals(r.tokens, oracle[i].tokens[0], name));
    }
  },
);

Deno.test("speculative: bad input is refused in one line; a full draft gets a note", async () => {
  for (const k of [0, -1, 1.5, NaN, 256]) {
    const e = assertThrows(() => checkDraftLength(k, 256), RangeError);
    assert(e.message.includes("draft length K") && e.message.includes("1 to 255"), e.message);
  }
  checkDraftLength(255, 256);
  const model = await loadModel("bundled/models/tiny-opt-e2e", { backend: "cpu" });
  const prompt = ["name[Alimentum]\n"];
  await assertRejects(
    () => generate(model, prompt, { speculative: 0 }),
    RangeError,
    "draft length K must be an integer from 1 to 255",
  );
  await assertRejects(
    () => generate(model, prompt, { speculative: 2, sampling: { temperature: 0.7 } }),
    RangeError,
    "greedy only",
  );
  const notes: string[] = [];
  const out = await generate(model, prompt, {
    policy: "full",
    speculative: 2,
    maxNewTokens: 6,
    logitsTopK: 3,
    onNote: (n) => notes.push(n),
  });
  assertEquals(notes.length, 1);
  assert(notes[0].includes("draft policy is full"), notes[0]);
  const plain = await generate(model, prompt, { maxNewTokens: 6, logitsTopK: 3 });
  assertEquals(out.results[0].ids, plain.results[0].ids);
  assertEquals(out.results[0].topk, plain.results[0].topk);
  assertEquals(out.speculative!.acceptanceRate, 1);
  assert(out.flopSpeedup <= 1, "speculation never lowers FLOPs");
});

Deno.test("speculative: compareDrafts reports costs, acceptance with intervals, by draft index and position", async () => {
  const backend = randomCpuBackend({
    hiddenSize: 36,
    numAttentionHeads: 3,
    ffnDim: 52,
    vocabSize: 97,
    numHiddenLayers: 6,
    maxPositionEmbeddings: 64,
  }, 23);
  const prompts = randomPrompts([3, 5, 2, 4, 6, 3], 97, 8);
  const rows = await compareDrafts(backend, prompts, {
    drafts: ["earlyexit:constant:n=3", "constant:n=3,warmup=1", "full"],
    ks: [2, 4],
    maxNewTokens: 10,
    batchSize: 3,
    bootstrap: { resamples: 200, seed: 1 },
  });
  assertEquals(rows.map((r) => `${r.draft} K=${r.k}`), [
    "earlyexit:constant:n=3,warmup=0 K=2",
    "earlyexit:constant:n=3,warmup=0 K=4",
    "constant:n=3,warmup=1 K=2",
    "constant:n=3,warmup=1 K=4",
    "full K=2",
    "full K=4",
  ]);
  for (const r of rows) {
    const [lo, hi] = r.ci.acceptanceRate;
    assert(lo <= r.acceptanceRate + 1e-12 && r.acceptanceRate <= hi + 1e-12, `${r.draft}: CI`);
    assert(r.byDraftIndex.length <= r.k && r.byDraftIndex.length > 0);
    for (const f of [...r.byDraftIndex, ...r.byTokenPosition]) assert(f.mean >= 0 && f.mean <= 1);
    assert(Math.abs(r.layerSpeedup * r.layerPassesPerToken - 6) < 1e-9);
    assert(r.flopRatio >= 1);
  }
  // the draft's cost is its active layers over L: 3 of 6 for both constant drafts, 1 for full
  assertEquals(rows.map((r) => r.draftCost), [0.5, 0.5, 0.5, 0.5, 1, 1]);
  // a full draft is always accepted, every draft index and position
  for (const r of rows.slice(4)) {
    assertEquals(r.acceptanceRate, 1);
    assertEquals(r.ci.acceptanceRate, [1, 1]);
    assert(r.byTokenPosition.every((f) => f.mean === 1));
  }
});

Deno.test("speculative auto: K minimises the predicted layer passes per token of a measured probe; generate equals full", async () => {
  const backend = randomCpuBackend({
    hiddenSize: 36,
    numAttentionHeads: 3,
    ffnDim: 52,
    vocabSize: 97,
    numHiddenLayers: 6,
    maxPositionEmbeddings: 64,
  }, 31);
  const L = 6;
  const prompts = randomPrompts([3, 5, 2, 4, 6], 97, 9);
  // ids in, ids out: the tokenizer only renders text
  const tokenizer = { decode: (ids: number[]) => ids.join(" ") } as unknown as OptTokenizer;
  const model = { backend, tokenizer, config: backend.config };
  for (const draft of ["earlyexit:constant:n=3", "constant:n=3,warmup=1", "linear:max=6,min=2"]) {
    const c = await chooseDraftLength(backend, prompts, {
      draft: parsePolicy(draft),
      maxNewTokens: 14,
    });
    // recompute the prediction from the reported measurements
    assertEquals(c.passesPerToken.length, 8);
    assert(c.draftLayers > 0 && c.draftLayers < L, `${draft}: draft layers ${c.draftLayers}`);
    let expected = 1;
    c.passesPerToken.forEach((ppt, i) => {
      expected += c.prefixAcceptance[i];
      assert(
        Math.abs(ppt - ((i + 1) * c.draftLayers + L) / expected) < 1e-9,
        `${draft} K=${i + 1}`,
      );
      if (i > 0) assert(c.prefixAcceptance[i] <= c.prefixAcceptance[i - 1] + 1e-12, draft);
    });
    const best = Math.min(...c.passesPerToken);
    assertEquals(c.k, c.passesPerToken.indexOf(best) + 1, draft);
    console.log(
      `${draft}: auto K=${c.k}, prefix acceptance ${
        c.prefixAcceptance.map((a) => a.toFixed(2)).join(",")
      }, ${best.toFixed(2)} passes/token`,
    );
    // generate with "auto" runs that K and equals full
    const common = { maxNewTokens: 14, stopAtEos: false, batchSize: 3 };
    const full = await generate(model, prompts, common);
    const auto = await generate(model, prompts, { ...common, policy: draft, speculative: "auto" });
    assertEquals(auto.speculative!.auto!.k, auto.speculative!.k, draft);
    auto.results.forEach((r, i) => assertEquals(r.ids, full.results[i].ids, `${draft} ${i}`));
  }
  // a full draft accepts everything and every K predicts L passes per token: the smallest wins
  const full = await chooseDraftLength(backend, prompts, {
    draft: parsePolicy("full"),
    maxNewTokens: 10,
  });
  assertEquals(full.prefixAcceptance, new Array(8).fill(1));
  assert(full.passesPerToken.every((p) => Math.abs(p - L) < 1e-9));
  assertEquals(full.k, 1);
  await assertRejects(
    () =>
      generate(model, [[2, 5]], {
        speculative: "x" as never,
      }),
    RangeError,
    'speculative must be an integer K from 1 or "auto", got "x"',
  );
});
