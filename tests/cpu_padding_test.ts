/**
 * Padding invariance on the CPU backend (docs/DESIGN.md §3, §7): a prompt decoded alone and the same
 * prompt inside a left-padded batch with longer and shorter prompts (at any row) give the
 * same tokens, and logits within a relative error of 1e-5, under `full` and under a skip
 * plan with prompt mode `full` (each batch gets the plan of its own padded length `P`; with
 * prompt mode `full` a row's generated token `i` gets the same layers whatever `P` is).
 * Checked on a random checkpoint through the backend and on `tiny-opt-e2e` through the
 * engine (batches where rows stop at EOS at different steps).
 */
import { assert, assertEquals, assertLess } from "@std/assert";
import { type CpuBackend, createCpuBackend } from "../backend/cpu/backend.ts";
import type { DecodeOutput } from "../backend/types.ts";
import { generate, loadModel } from "../decode/mod.ts";
import { loadWeightsSync, writeRandomCheckpoint } from "../model/mod.ts";
import { parsePolicy, plan } from "../schedule/mod.ts";
import { relL2, rng, sharedPath } from "./helpers.ts";

const TOL = 1e-5;

Deno.test("padding invariance (CPU backend, random checkpoint): alone == in padded batches", async () => {
  const dir = Deno.makeTempDirSync({ prefix: "skipdecode-pad-" });
  let backend: CpuBackend;
  try {
    writeRandomCheckpoint(dir, {
      shape: {
        hiddenSize: 48,
        numAttentionHeads: 3,
        ffnDim: 80,
        vocabSize: 97,
        numHiddenLayers: 5,
        maxPositionEmbeddings: 64,
      },
      dtype: "F16",
      seed: 21,
    });
    backend = createCpuBackend(loadWeightsSync(dir));
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
  const V = backend.config.vocabSize, L = backend.config.numHiddenLayers;
  const r = rng(4);
  const prompt = (n: number) => [
    2,
    ...Array.from({ length: n - 1 }, () => 3 + Math.floor(r() * (V - 3))),
  ];
  const target = prompt(5);
  const long9 = prompt(9), short2 = prompt(2), short3 = prompt(3), long11 = prompt(11);
  // [batch, row index of the target]
  const batches: [number[][], number][] = [
    [[long9, target, short2], 1],
    [[short3, target], 1],
    [[target, long11], 0],
    [[short2, short3, long9, target], 3],
  ];
  const N = 8;
  for (const spec of ["full", `linear:max=${L},min=2,warmup=1,horizon=6`]) {
    const policy = parsePolicy(spec);
    const decode = async (prompts: number[][]): Promise<DecodeOutput> => {
      const P = Math.max(...prompts.map((p) => p.length));
      const p = plan(policy, { layers: L, promptLength: P, maxNewTokens: N });
      return await backend.decode({
        prompts,
        maxNewTokens: N,
        sets: p.sets,
        padTokenId: 1,
        recordLogits: true,
      });
    };
    const alone = await decode([target]);
    let worst = 0;
    for (const [prompts, row] of batches) {
      const out = await decode(prompts);
      assertEquals(out.tokens[row], alone.tokens[0], `${spec}: tokens in batch differ from alone`);
      for (let i = 0; i < N; i++) {
        const e = relL2(out.logits![row][i], alone.logits![0][i]);
        worst = Math.max(worst, e);
        assertLess(e, TOL, `${spec}: batch of lengths ${prompts.map((p) => p.length)} step ${i}`);
      }
    }
    console.log(
      `  ${spec}: 5-token prompt alone vs ${batches.length} padded batches (P up to 11): ` +
        `same ${N} tokens [${alone.tokens[0]}], max logit rel err ${worst.toExponential(2)}`,
    );
  }
});

Deno.test("padding invariance (engine on tiny-opt-e2e, greedy, EOS): alone == batched", async () => {
  const model = await loadModel(sharedPath("models/tiny-opt-e2e"), {
    backend: "cpu",
    onNote: () => {},
  });
  try {
    const prompts = [
      "name[The Eagle], eatType[coffee shop], food[Japanese], priceRange[less than £20], " +
      "customer rating[low], area[riverside], familyFriendly[yes], near[Burger King]\n",
      "name[Alimentum], area[city centre], familyFriendly[no]\n",
      "name[Zizzi], eatType[pub], near[The Sorrento]\n",
      "name[Aromi], eatType[pub]\n",
    ];
    const lengths = prompts.map((p) => model.tokenizer.encode(p).length);
    assert(new Set(lengths).size === prompts.length, `prompt lengths should differ: ${lengths}`);
    for (const policy of ["full", "linear:max=12,min=4,warmup=1,horizon=32"]) {
      const batched = await generate(model, prompts, {
        policy,
        maxNewTokens: 24,
        batchSize: prompts.length,
        recordLogits: true,
      });
      assertEquals(batched.plans.length, 1);
      let worst = 0;
      for (const [k, text] of prompts.entries()) {
        const alone = await generate(model, [text], {
          policy,
          maxNewTokens: 24,
          recordLogits: true,
        });
        const a = alone.results[0], b = batched.results[k];
        assertEquals(b.ids, a.ids, `${policy}: prompt ${k} batched vs alone`);
        assertEquals(b.finish, a.finish);
        assertEquals(b.layers, a.layers);
        a.logits!.forEach((la, i) => {
          const e = relL2(b.logits![i], la);
          worst = Math.max(worst, e);
          assertLess(e, TOL, `${policy}: prompt ${k} step ${i}`);
        });
      }
      const fin = batched.results.map((r) => `${r.ids.length}${r.finish === "eos" ? "e" : "l"}`);
      console.log(
        `  ${policy}: 4 prompts (lengths ${lengths}) alone vs one padded batch: same ids ` +
          `(tokens per row ${fin.join(" ")}), max logit rel err ${worst.toExponential(2)}`,
      );
    }
  } finally {
    model.dispose();
  }
});
