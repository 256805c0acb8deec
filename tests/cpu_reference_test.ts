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
import {
  loadWeightsSync,
  type OptWeights,
  tensorToFloat32,
  writeRandomCheckpoint,
} from "../model/mod.ts";
import type { DType, OptConfig, Tensor } from "../model/types.ts";
import { parsePolicy, plan } from "../schedule/mod.ts";
import { relL2, rng } from "./helpers.ts";

const TOL = 1e-5;

type Vec = Float64Array;
const f64 = (t: Tensor): Vec => Float64Array.from(tensorToFloat32(t));

/** `W[out, in] · x + b`. */
function matvec(w: Vec, b: Vec | undefined, x: Vec, out: number): Vec {
  const inp = x.length;
  const y = new Float64Array(out);
  for (let o = 0; o < out; o++) {
    let s = b ? b[o] : 0;
    for (let i = 0; i < inp; i++) s += w[o * inp + i] * x[i];
    y[o] = s;
  }
  return y;
}

function layerNorm(x: Vec, w: Vec, b: Vec): Vec {
  const n = x.length;
  const mean = x.reduce((a, v) => a + v, 0) / n;
  const variance = x.reduce((a, v) => a + (v - mean) ** 2, 0) / n;
  const inv = 1 / Math.sqrt(variance + 1e-5);
  return x.map((v, i) => (v - mean) * inv * w[i] + b[i]);
}

const add = (a: Vec, b: Vec): Vec => a.map((v, i) => v + b[i]);

/**
 * Logits `[n][V]` of one unpadded row under per-token layer sets (`sets[t]` for token `t`),
 * every column recomputed from scratch in float64.
 */
function referenceLogits(w: OptWeights, tokens: number[], sets: number[][]): Vec[] {
  const cfg = w.config;
  const d = cfg.hiddenSize, dp = cfg.wordEmbedProjDim, V = cfg.vocabSize;
  const H = cfg.numAttentionHeads, hd = d / H, pre = cfg.doLayerNormBefore;
  const embed = f64(w.embedTokens), pos = f64(w.embedPositions), head = f64(w.lmHead);
  const projIn = w.projectIn && f64(w.projectIn);
  const projOut = w.projectOut && f64(w.projectOut);
  let x: Vec[] = tokens.map((tok, t) => {
    let e: Vec = embed.slice(tok * dp, tok * dp + dp);
    if (projIn) e = matvec(projIn, undefined, e, d);
    return add(e, pos.slice((t + 2) * d, (t + 3) * d));
  });
  w.layers.forEach((lw, l) => {
    const W = (t: { weight: Tensor; bias?: Tensor }) => ({
      w: f64(t.weight),
      b: t.bias && f64(t.bias),
    });
    const [q, k, v, o, fc1, fc2] = [lw.qProj, lw.kProj, lw.vProj, lw.outProj, lw.fc1, lw.fc2]
      .map(W);
    const ln1 = { w: f64(lw.selfAttnLayerNorm.weight), b: f64(lw.selfAttnLayerNorm.bias) };
    const ln2 = { w: f64(lw.finalLayerNorm.weight), b: f64(lw.finalLayerNorm.bias) };
    const active = tokens.map((_, t) => sets[t].includes(l));
    const inputs = x.map((h) => (pre ? layerNorm(h, ln1.w, ln1.b) : h));
    const keys = inputs.map((a, t) => (active[t] ? matvec(k.w, k.b, a, d) : undefined));
    const vals = inputs.map((a, t) => (active[t] ? matvec(v.w, v.b, a, d) : undefined));
    x = x.map((h, t) => {
      if (!active[t]) return h; // skipped layer: identity
      const qs = matvec(q.w, q.b, inputs[t], d).map((e) => e / Math.sqrt(hd));
      const att = new Float64Array(d);
      for (let hh = 0; hh < H; hh++) {
        const scores: number[] = [];
        const ids: number[] = [];
        for (let s = 0; s <= t; s++) {
          if (!keys[s]) continue; // that column skipped the layer: nothing cached there
          let dot = 0;
          for (let i = 0; i < hd; i++) dot += qs[hh * hd + i] * keys[s]![hh * hd + i];
          scores.push(dot);
          ids.push(s);
        }
        const m = Math.max(...scores);
        const ex = scores.map((e) => Math.exp(e - m));
        const z = ex.reduce((a, b) => a + b, 0);
        ids.forEach((s, j) => {
          for (let i = 0; i < hd; i++) att[hh * hd + i] += (ex[j] / z) * vals[s]![hh * hd + i];
        });
      }
      let r = add(h, matvec(o.w, o.b, att, d));
      if (!pre) r = layerNorm(r, ln1.w, ln1.b);
      const a2 = pre ? layerNorm(r, ln2.w, ln2.b) : r;
      const f = matvec(
        fc2.w,
        fc2.b,
        matvec(fc1.w, fc1.b, a2, cfg.ffnDim).map((e) => Math.max(e, 0)),
        d,
      );
      let y = add(r, f);
      if (!pre) y = layerNorm(y, ln2.w, ln2.b);
      return y;
    });
  });
  const fln = w.finalLayerNorm;
  return x.map((h) => {
    let z = fln ? layerNorm(h, f64(fln.weight), f64(fln.bias)) : h;
    if (projOut) z = matvec(projOut, undefined, z, dp);
    return matvec(head, undefined, z, V);
  });
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
