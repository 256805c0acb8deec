/**
 * Shared by `readout_test.ts` and `webgpu_readout_test.ts`: a float64 layer-by-layer OPT
 * reference of the per-layer readout, comparisons, and the random awkward-sized fixtures.
 *
 * @module
 */
import { assertEquals, assertLess } from "@std/assert";
import { readoutEntry } from "../backend/readout.ts";
import type { Readout } from "../backend/types.ts";
import type { OptWeights, RandomCheckpointOptions } from "../model/mod.ts";
import { fullPlanSets } from "../schedule/mod.ts";
import { referenceHead, referenceLayerOutputs } from "./reference_f64.ts";

type Vec = Float64Array;

/**
 * Probabilities `[layer][t][V]` of one unpadded row: `softmax(head(h_l))` after every
 * layer, `sets[t]` the active layers of token `t`, all in float64.
 */
export function referenceReadout(w: OptWeights, tokens: number[], sets: number[][]): Vec[][] {
  const head = referenceHead(w);
  const softmax = (logits: Vec): Vec => {
    const m = Math.max(...logits);
    const e = logits.map((x) => Math.exp(x - m));
    const s = e.reduce((a, b) => a + b, 0);
    return e.map((x) => x / s);
  };
  return referenceLayerOutputs(w, tokens, sets).map((xs) => xs.map((h) => softmax(head(h))));
}

/** Compares a backend readout with the float64 reference, row by row (unpadded). */
export function assertMatchesReference(
  r: Readout,
  w: OptWeights,
  rows: number[][],
  sets: number[][],
  what: string,
  tol: { prob: number; entropy: number } = { prob: 1e-5, entropy: 1e-4 },
): void {
  const T = r.length, L = r.layers;
  rows.forEach((row, b) => {
    const pad = T - row.length;
    const ref = referenceReadout(w, row, sets.slice(pad, T));
    for (let c = 0; c < pad; c++) {
      for (let l = 0; l < L; l++) assertEquals(readoutEntry(r, b, c, l), null, `${what}: pad`);
    }
    for (let t = 0; t < row.length; t++) {
      for (let l = 0; l < L; l++) {
        const e = readoutEntry(r, b, pad + t, l)!;
        const p = ref[l][t];
        const where = `${what}: row ${b} token ${t} layer ${l + 1}`;
        // top-k: the reference's order (no near ties in random fixtures: checked)
        const order = [...p.keys()].sort((i, j) => p[j] - p[i] || i - j);
        e.top.forEach(([id, prob], i) => {
          const gap = i + 1 < order.length ? p[order[i]] - p[order[i + 1]] : 1;
          if (gap > 10 * tol.prob) assertEquals(id, order[i], `${where}: top ${i}`);
          assertLess(Math.abs(prob - p[id]), tol.prob, `${where}: p of top ${i}`);
        });
        const H = -p.reduce((a, x) => a + (x > 0 ? x * Math.log(x) : 0), 0);
        assertLess(Math.abs(e.entropy - H), tol.entropy, `${where}: entropy ${e.entropy} vs ${H}`);
        if (t + 1 < row.length) {
          assertLess(Math.abs(e.nextProb! - p[row[t + 1]]), tol.prob, `${where}: nextProb`);
        } else assertEquals(e.nextProb, null, `${where}: nextProb at the last column`);
      }
    }
  });
}

/** Skipped layers repeat the previous layer's readout bit for bit. */
export function assertSkippedRepeat(r: Readout, sets: number[][], what: string): number {
  const { rows: B, length: T, layers: L, topK: k } = r;
  let checked = 0;
  for (let b = 0; b < B; b++) {
    for (let c = 0; c < T; c++) {
      for (let l = 1; l < L; l++) {
        if (sets[c].includes(l)) continue;
        const at = (b * T + c) * L + l;
        if (Number.isNaN(r.entropy[at])) continue; // padding
        assertEquals(r.entropy[at], r.entropy[at - 1], `${what}: entropy b${b} c${c} l${l}`);
        assertEquals(
          Array.from(r.topIds.subarray(at * k, at * k + k)),
          Array.from(r.topIds.subarray((at - 1) * k, at * k)),
        );
        assertEquals(
          Array.from(r.topProbs.subarray(at * k, at * k + k)),
          Array.from(r.topProbs.subarray((at - 1) * k, at * k)),
        );
        if (!Number.isNaN(r.nextProb[at])) assertEquals(r.nextProb[at], r.nextProb[at - 1]);
        checked++;
      }
    }
  }
  return checked;
}

/** A nested plan: prompt-ish columns run all, later ones `{0} ∪ top n` shrinking. */
function skipSets(L: number, columns: number, fullUntil: number): number[][] {
  const all = Array.from({ length: L }, (_, l) => l);
  return Array.from({ length: columns }, (_, c) => {
    if (c < fullUntil) return all;
    const n = Math.max(2, L - 1 - Math.floor((c - fullUntil) / 2));
    return [0, ...all.slice(L - n + 1)];
  });
}

/** Random awkward-sized checkpoints shared with `webgpu_readout_test.ts`. */
export const READOUT_FIXTURES: [string, RandomCheckpointOptions][] = [
  ["pre-LN f16", {
    shape: { hiddenSize: 40, numAttentionHeads: 5, ffnDim: 72, numHiddenLayers: 5, vocabSize: 203 },
    dtype: "F16",
    seed: 11,
  }],
  ["opt-350m-style post-LN, project_in/out, f32", {
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
  ["pre-LN bf16, untied head", {
    shape: { hiddenSize: 36, numAttentionHeads: 3, ffnDim: 50, numHiddenLayers: 3, vocabSize: 150 },
    dtype: "BF16",
    tieLmHead: false,
    seed: 13,
  }],
];

/** Rows of different lengths (left padding), ids inside every fixture's vocabulary. */
export const READOUT_ROWS = [[2, 5, 9, 33, 7, 120, 64, 3, 14], [2, 60, 3], [2, 8, 8, 1, 90, 11]];

/** The plans every fixture runs: full, skip after the prompt, skip in the prompt too. */
export function readoutPlans(L: number, T: number): [string, number[][]][] {
  return [["full", fullPlanSets(L, T)], ["skip", skipSets(L, T, 4)], [
    "skip in the prompt",
    skipSets(L, T, 1),
  ]];
}
