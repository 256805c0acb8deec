/**
 * The CPU backend against an independent oracle: a deliberately naive float64 OPT forward
 * written here from docs/DESIGN.md §2-3 and §6 (one unpadded row at a time, positions `0..n-1` at
 * table row `pos + 2`, pre-LN or post-LN, `project_in`/`project_out`, final LayerNorm only
 * when pre-LN, `q` scaled by `head_dim ** -0.5`, a skipped layer is the identity and is not
 * attended to by later columns). `decode()` and `forward()` share the backend's layer loop,
 * so this is what would catch a bug inside that loop (residuals, LayerNorm placement,
 * heads, padding offsets, layer skipping).
 */
import { assert, assertEquals, assertLess } from "@std/assert";
import { createCpuBackend } from "../backend/cpu/backend.ts";
import { loadWeightsSync, type OptWeights, writeRandomCheckpoint } from "../model/mod.ts";
import type { DType, OptConfig } from "../model/types.ts";
import { parsePolicy, plan } from "../schedule/mod.ts";
import { relL2, rng } from "./helpers.ts";
import { referenceHead, referenceLayerOutputs, type Vec } from "./reference_f64.ts";

const TOL = 1e-5;

/**
 * Logits `[n][V]` of one unpadded row under per-token layer sets (`sets[t]` for token `t`),
 * every column recomputed from scratch in float64.
 */
function referenceLogits(w: OptWeights, tokens: number[], sets: number[][]): Vec[] {
  return referenceLayerOutputs(w, tokens, sets).at(-1)!.map(referenceHead(w));
}

interface Case {
  label: string;
  shape: Partial<OptConfig>;
  dtype: DType;
  tieLmHead: boolean;
  policy: string;
}

const CASES: Case[] = [
  {
    label: "pre-LN d48 h3 f80 V97 L5 f16",
    shape: { hiddenSize: 48, numAttentionHeads: 3, ffnDim: 80, vocabSize: 97, numHiddenLayers: 5 },
    dtype: "F16",
    tieLmHead: true,
    policy: "linear:max=5,min=2,warmup=1",
  },
  {
    label: "post-LN opt-350m style d40 dp24 h5 f72 V89 L4 f32, untied head",
    shape: {
      hiddenSize: 40,
      wordEmbedProjDim: 24,
      doLayerNormBefore: false,
      numAttentionHeads: 5,
      ffnDim: 72,
      vocabSize: 89,
      numHiddenLayers: 4,
    },
    dtype: "F32",
    tieLmHead: false,
    policy: "powerlaw:max=4,min=2,warmup=1,alpha=1,tau=2,prompt=decay",
  },
];

for (const tc of CASES) {
  Deno.test(`CPU backend == float64 naive reference: ${tc.label}`, async () => {
    const dir = Deno.makeTempDirSync({ prefix: "skipdecode-cpuref-" });
    try {
      writeRandomCheckpoint(dir, {
        shape: tc.shape,
        dtype: tc.dtype,
        seed: 3,
        tieLmHead: tc.tieLmHead,
      });
      const weights = loadWeightsSync(dir);
      const backend = createCpuBackend(weights);
      const cfg = backend.config;
      const V = cfg.vocabSize, L = cfg.numHiddenLayers;
      const r = rng(7);
      const rows = [9, 4, 12].map((n) => [
        2,
        ...Array.from({ length: n - 1 }, () => 3 + Math.floor(r() * (V - 3))),
      ]);
      const T = 12;
      for (const spec of ["full", tc.policy]) {
        const p = plan(parsePolicy(spec), { layers: L, promptLength: 6, maxNewTokens: T - 5 });
        assertEquals(p.sets.length, T);
        const fwd = await backend.forward({ rows, sets: p.sets, padTokenId: cfg.padTokenId });
        let worst = 0;
        rows.forEach((row, b) => {
          const off = T - row.length;
          const ref = referenceLogits(weights, row, row.map((_, t) => p.sets[off + t]));
          for (let t = 0; t < row.length; t++) {
            const c = off + t;
            const got = fwd.logits.subarray((b * T + c) * V, (b * T + c + 1) * V);
            const e = relL2(got, ref[t]);
            worst = Math.max(worst, e);
            assertLess(e, TOL, `${spec}: row ${b} token ${t} (column ${c}) rel err ${e}`);
          }
          for (let c = 0; c < off; c++) {
            const pad = fwd.logits.subarray((b * T + c) * V, (b * T + c + 1) * V);
            assert(pad.every((v) => v === 0), `padding column ${c} of row ${b} has logits`);
          }
        });
        console.log(
          `  ${tc.label} | ${spec}: forward of rows [9, 4, 12] (left-padded) vs float64 ` +
            `per-row reference, max rel err ${worst.toExponential(2)}`,
        );
      }
    } finally {
      Deno.removeSync(dir, { recursive: true });
    }
  });
}
