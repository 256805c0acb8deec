/**
 * The naive float64 OPT forward the CPU-reference and readout tests check against, written
 * from docs/DESIGN.md §2-3 and §6: one unpadded row at a time, positions `0..n-1` at table
 * row `pos + 2`, pre-LN or post-LN, `project_in`/`project_out`, final LayerNorm only when
 * the model has one, `q` scaled by `head_dim ** -0.5`, a skipped layer is the identity and
 * is not attended to by later columns.
 *
 * @module
 */
import { type OptWeights, tensorToFloat32 } from "../model/mod.ts";
import type { Tensor } from "../model/types.ts";

/** A float64 vector. */
export type Vec = Float64Array;
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
 * Hidden states `[layer][t][d]` of one unpadded row after every decoder layer, `sets[t]`
 * the active layers of token `t` (a skipped layer is the identity), all in float64.
 */
export function referenceLayerOutputs(w: OptWeights, tokens: number[], sets: number[][]): Vec[][] {
  const cfg = w.config;
  const d = cfg.hiddenSize, dp = cfg.wordEmbedProjDim;
  const H = cfg.numAttentionHeads, hd = d / H, pre = cfg.doLayerNormBefore;
  const embed = f64(w.embedTokens), pos = f64(w.embedPositions);
  const projIn = w.projectIn && f64(w.projectIn);
  const out: Vec[][] = [];
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
      if (!active[t]) return h;
      const qs = matvec(q.w, q.b, inputs[t], d).map((e) => e / Math.sqrt(hd));
      const att = new Float64Array(d);
      for (let hh = 0; hh < H; hh++) {
        const scores: number[] = [];
        const ids: number[] = [];
        for (let s = 0; s <= t; s++) {
          if (!keys[s]) continue;
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
    out.push(x);
  });
  return out;
}

/**
 * The model's own head on one hidden state, in float64: the final LayerNorm when the model
 * has one, `project_out` when it has one, then the LM head; logits `[V]`.
 */
export function referenceHead(w: OptWeights): (h: Vec) => Vec {
  const cfg = w.config;
  const head = f64(w.lmHead);
  const projOut = w.projectOut && f64(w.projectOut);
  const fln = w.finalLayerNorm &&
    { w: f64(w.finalLayerNorm.weight), b: f64(w.finalLayerNorm.bias) };
  return (h) => {
    let z = fln ? layerNorm(h, fln.w, fln.b) : h;
    if (projOut) z = matvec(projOut, undefined, z, cfg.wordEmbedProjDim);
    return matvec(head, undefined, z, cfg.vocabSize);
  };
}
