/**
 * CPU reference backend, docs/DESIGN.md §7 "decoding with the KV cache and a plan equals recomputing
 * every step from scratch with the same per-column layer sets", on random checkpoints of
 * awkward shapes (odd widths, 3 heads, post-LN opt-350m style with `project_in`/`out` and
 * no final LayerNorm, untied head), f16 and f32, a ragged left-padded batch, and the `full`
 * plan plus skip plans from `schedule/` (linear with warm-up, power law, early exit, prompt
 * decay, random nested sets).
 *
 * For every generated step `i` the logits recorded by `decode()` (greedy) must equal the
 * logits of an uncached `forward()` over prompt + generated tokens at column `P - 1 + i`.
 * Under prompt decay the prefill runs each layer on a prefix of the prompt columns only;
 * there every column `c` is also recomputed alone: a `forward()` of only the first `c + 1`
 * columns must give the same logits at `c`.
 */
import { assert, assertEquals, assertLess } from "@std/assert";
import { createCpuBackend } from "../backend/cpu/backend.ts";
import type { ColumnLayerSets } from "../backend/types.ts";
import { loadWeightsSync, writeRandomCheckpoint } from "../model/mod.ts";
import type { DType, OptConfig } from "../model/types.ts";
import { customPolicy, parsePolicy, plan, type Policy } from "../schedule/mod.ts";
import { relL2, rng } from "./helpers.ts";

const TOL = 1e-5;

/** Writes a random checkpoint in a temp folder and builds a CPU backend from it. */
function fixtureBackend(
  shape: Partial<OptConfig>,
  dtype: DType,
  seed: number,
  tieLmHead = true,
) {
  const dir = Deno.makeTempDirSync({ prefix: "skipdecode-cpu-" });
  try {
    writeRandomCheckpoint(dir, { shape, dtype, seed, tieLmHead });
    return createCpuBackend(loadWeightsSync(dir)); // converts every tensor to f32 now
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
}

/** Random prompts (BOS first) of the given lengths with ids in `3 .. V-1`. */
function randomPrompts(lengths: number[], vocab: number, seed: number): number[][] {
  const r = rng(seed);
  return lengths.map((
    n,
  ) => [2, ...Array.from({ length: n - 1 }, () => 3 + Math.floor(r() * (vocab - 3)))]);
}

/** Random nested sets: each column drops a random layer of its predecessor now and then. */
function randomNestedPolicy(seed: number): Policy {
  return customPolicy({
    name: `nested-${seed}`,
    promptMode: "decay",
    layerSet: ({ column, layers }) => {
      const r = rng(seed);
      let set = Array.from({ length: layers }, (_, l) => l);
      for (let c = 1; c <= column; c++) {
        if (set.length > 1 && r() < 0.3) {
          set = set.filter((_, k) => k !== Math.floor(r() * set.length));
        }
      }
      return set;
    },
  });
}

interface Case {
  label: string;
  shape: Partial<OptConfig>;
  dtype: DType;
  tieLmHead?: boolean;
}

const ODD: Partial<OptConfig> = {
  hiddenSize: 48,
  numAttentionHeads: 3,
  ffnDim: 80,
  vocabSize: 97,
  numHiddenLayers: 5,
  maxPositionEmbeddings: 64,
};
const OPT350_STYLE: Partial<OptConfig> = {
  hiddenSize: 40,
  wordEmbedProjDim: 24,
  doLayerNormBefore: false,
  numAttentionHeads: 5,
  ffnDim: 72,
  vocabSize: 89,
  numHiddenLayers: 6,
  maxPositionEmbeddings: 40,
};

const CASES: Case[] = [
  { label: "odd pre-LN d48 h3 f80 V97 L5, f32", shape: ODD, dtype: "F32" },
  {
    label: "odd pre-LN d48 h3 f80 V97 L5, f16, untied head",
    shape: ODD,
    dtype: "F16",
    tieLmHead: false,
  },
  { label: "opt-350m style post-LN d40 dp24 h5 V89 L6, f16", shape: OPT350_STYLE, dtype: "F16" },
  { label: "opt-350m style post-LN d40 dp24 h5 V89 L6, f32", shape: OPT350_STYLE, dtype: "F32" },
];

/** Skip policies for a model of `L` layers (the nested-random one is added per case). */
function policiesFor(L: number): string[] {
  return [
    "full",
    `linear:max=${L},min=2,warmup=1`,
    `powerlaw:max=${L},min=2,warmup=1,alpha=1,tau=2`,
    `earlyexit:linear:max=${L},min=2`,
    `linear:max=${L},min=2,warmup=1,prompt=decay`,
    `constant:n=${L - 1},warmup=1,prompt=decay`,
  ];
}

for (const [k, tc] of CASES.entries()) {
  Deno.test(`KV cache == recompute (CPU): ${tc.label}`, async () => {
    const backend = fixtureBackend(tc.shape, tc.dtype, 11 + k, tc.tieLmHead ?? true);
    const cfg = backend.config;
    const L = cfg.numHiddenLayers, V = cfg.vocabSize;
    if (tc.shape.wordEmbedProjDim !== undefined) {
      assert(cfg.wordEmbedProjDim !== cfg.hiddenSize && !cfg.doLayerNormBefore);
    }
    // A ragged batch: rows of 4, 7 and 2 tokens, left-padded to P = 7.
    const prompts = randomPrompts([4, 7, 2], V, 100 + k);
    const P = 7, N = 9;
    const policies: Policy[] = [
      ...policiesFor(L).map((s) => parsePolicy(s)),
      randomNestedPolicy(k + 1),
    ];
    for (const policy of policies) {
      const p = plan(policy, { layers: L, promptLength: P, maxNewTokens: N });
      const out = await backend.decode({
        prompts,
        maxNewTokens: N,
        sets: p.sets,
        padTokenId: cfg.padTokenId,
        recordLogits: true,
      });
      assertEquals(out.promptLength, P);
      assertEquals(out.steps, N - 1); // no EOS: every generated column but the last runs
      const rows = prompts.map((pr, b) => [...pr, ...out.tokens[b].slice(0, N - 1)]);
      const T = P + N - 1;
      const fwd = await backend.forward({ rows, sets: p.sets, padTokenId: cfg.padTokenId });
      assertEquals(fwd.length, T);
      const at = (logits: Float32Array, b: number, c: number, len = T) =>
        logits.subarray((b * len + c) * V, (b * len + c + 1) * V);
      let worst = 0, identical = true;
      for (let b = 0; b < prompts.length; b++) {
        assertEquals(out.tokens[b].length, N);
        assertEquals(out.logits![b].length, N);
        for (let i = 0; i < N; i++) {
          const ref = at(fwd.logits, b, P - 1 + i);
          const got = out.logits![b][i];
          const e = relL2(got, ref);
          worst = Math.max(worst, e);
          if (e !== 0) identical = false;
          assertLess(e, TOL, `${policy} row ${b} step ${i}: rel err ${e}`);
        }
      }
      // Per-column recomputation: column c alone (first c + 1 columns), rows that have a
      // real token by column c, each truncated there.
      let worstCol = 0;
      if (policy.promptMode === "decay") {
        const offsets = rows.map((r) => T - r.length);
        for (let c = 0; c < T; c++) {
          const keep = rows.map((_, b) => b).filter((b) => offsets[b] <= c);
          const sub = keep.map((b) => rows[b].slice(0, c + 1 - offsets[b]));
          const sets: ColumnLayerSets = p.sets.slice(0, c + 1);
          const one = await backend.forward({ rows: sub, sets, padTokenId: cfg.padTokenId });
          assertEquals(one.length, c + 1);
          keep.forEach((b, r) => {
            const e = relL2(at(one.logits, r, c, c + 1), at(fwd.logits, b, c));
            worstCol = Math.max(worstCol, e);
            assertLess(e, TOL, `${policy} column ${c} row ${b} recomputed alone: rel err ${e}`);
          });
        }
      }
      const layers = p.generatedLayers.join(",");
      console.log(
        `  ${tc.label} | ${policy}: ${prompts.length} rows x ${N} steps, decode vs forward ` +
          `max rel err ${worst.toExponential(2)}${identical ? " (bit-identical)" : ""}` +
          (policy.promptMode === "decay"
            ? `; ${T} columns recomputed alone, max rel err ${worstCol.toExponential(2)}`
            : "") +
          `; layers/token ${layers}`,
      );
    }
  });
}

Deno.test("KV cache == recompute (CPU): skip plans really skip (logits differ from full)", async () => {
  const backend = fixtureBackend(ODD, "F32", 5);
  const cfg = backend.config;
  const prompts = randomPrompts([5], cfg.vocabSize, 9);
  const run = async (spec: string) => {
    const p = plan(parsePolicy(spec), { layers: 5, promptLength: 5, maxNewTokens: 6 });
    return (await backend.decode({
      prompts,
      maxNewTokens: 6,
      sets: p.sets,
      padTokenId: 1,
      recordLogits: true,
    })).logits![0];
  };
  const full = await run("full");
  const skip = await run("constant:n=2,warmup=1");
  // Column P - 1 is a prompt column (all layers in prompt mode full): same first logits.
  assertEquals(relL2(skip[0], full[0]), 0);
  const e = relL2(skip[1], full[1]);
  assert(e > 1e-3, `constant:n=2 should change step 1's logits (rel diff ${e})`);
  console.log(`  constant:n=2 vs full: step 0 identical, step 1 rel diff ${e.toFixed(3)}`);
});
