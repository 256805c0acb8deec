/**
 * Next-token selection of `backend/sampling.ts` (shared by every backend):
 *
 * - `selectToken` gives exactly the ids of the plain definition (candidates sorted by logit
 *   descending, index ascending; top-k; the smallest prefix reaching top-p; temperature
 *   softmax; the counter-based uniform of `(seed, row, step)`), written out here, on random
 *   logits with ties and signed zeros, over many option combinations and a full OPT-sized
 *   vocabulary;
 * - sampled frequencies match the truncated softmax computed here (4-sigma bounds), and
 *   tokens outside top-k / top-p never appear;
 * - greedy (temperature 0, or top-k 1) is argmax; the uniform lies in [0, 1) and varies with
 *   seed, row and step.
 */
import { assert, assertEquals, assertLess } from "@std/assert";
import { argmax } from "../backend/cpu/ops.ts";
import { selectToken, stepUniform } from "../backend/sampling.ts";
import type { SamplingOptions } from "../backend/types.ts";
import { rng } from "./helpers.ts";

/** The plain definition: full comparator sort, then top-k, top-p, temperature, draw. */
function referenceSelect(logits: Float32Array, o: SamplingOptions, row: number, step: number) {
  const temperature = o.temperature ?? 0;
  if (!(temperature > 0)) return argmax(logits);
  let order = Array.from(logits.keys()).sort((a, b) => logits[b] - logits[a] || a - b);
  if (o.topK && o.topK > 0) order = order.slice(0, o.topK);
  const max = logits[order[0]];
  let probs = order.map((i) => Math.exp((logits[i] - max) / temperature));
  let total = probs.reduce((a, b) => a + b, 0);
  const topP = o.topP ?? 1;
  if (topP < 1) {
    let cum = 0, keep = probs.length;
    for (let i = 0; i < probs.length; i++) {
      cum += probs[i] / total;
      if (cum >= topP) {
        keep = i + 1;
        break;
      }
    }
    order = order.slice(0, keep);
    probs = probs.slice(0, keep);
    total = probs.reduce((a, b) => a + b, 0);
  }
  const target = stepUniform(o.seed ?? 0, row, step) * total;
  let cum = 0;
  for (let i = 0; i < order.length; i++) {
    cum += probs[i];
    if (target < cum) return order[i];
  }
  return order[order.length - 1];
}

Deno.test("selectToken == the plain definition (random logits, ties, -0, many options)", () => {
  const r = rng(5);
  let cases = 0;
  const sampledDistinct = new Set<number>();
  for (const V of [1, 2, 7, 97, 1000]) {
    for (let rep = 0; rep < 6; rep++) {
      const logits = new Float32Array(V);
      for (let i = 0; i < V; i++) {
        const u = r();
        // Coarse values force ties; some exact zeros of both signs; some large gaps.
        logits[i] = u < 0.1 ? (r() < 0.5 ? -0 : 0) : Math.round((r() * 2 - 1) * 8) / 2;
      }
      for (const temperature of [0, 0.5, 0.8, 2]) {
        for (const topK of [0, 1, 3, 40, V, V + 5]) {
          for (const topP of [1, 0.9, 0.3, 1e-6]) {
            const o = { temperature, topK, topP, seed: rep * 7 + 1 };
            for (const [row, step] of [[0, 0], [1, 5], [3, 17]]) {
              const want = referenceSelect(logits, o, row, step);
              const got = selectToken(logits, o, row, step);
              assertEquals(got, want, `V ${V} ${JSON.stringify(o)} row ${row} step ${step}`);
              if (V === 97 && temperature === 2 && topK === 0 && topP === 1) {
                sampledDistinct.add(got);
              }
              cases++;
            }
          }
        }
      }
    }
  }
  // An OPT-sized vocabulary with continuous logits, a few draws.
  const V = 50272;
  const logits = Float32Array.from({ length: V }, () => (r() * 2 - 1) * 6);
  for (const o of [{ temperature: 0.8, topK: 40, topP: 0.9 }, { temperature: 1, topP: 0.95 }]) {
    for (let step = 0; step < 3; step++) {
      assertEquals(selectToken(logits, o, 2, step), referenceSelect(logits, o, 2, step));
      cases++;
    }
  }
  assert(sampledDistinct.size > 3, "high-temperature draws should vary");
  console.log(`  ${cases} draws identical to the plain definition (V up to 50272)`);
});

Deno.test("sampled frequencies follow the truncated softmax (temperature 0.8, topK 5, topP 0.9)", () => {
  const logits = new Float32Array([0.3, 2.0, -1.0, 1.5, 1.0, 0.5, 2.0, -3.0, 0.9, 0.0, 1.2]);
  const o = { temperature: 0.8, topK: 5, topP: 0.9, seed: 123 };
  // By hand: candidates by logit desc, index asc: 1 (2.0), 6 (2.0), 3 (1.5), 10 (1.2),
  // 4 (1.0) are the top 5; weights exp((l - 2) / 0.8).
  const top = [1, 6, 3, 10, 4];
  const w = top.map((i) => Math.exp((logits[i] - 2) / 0.8));
  const z = w.reduce((a, b) => a + b, 0);
  let keep = top.length, cum = 0;
  for (let i = 0; i < w.length; i++) {
    cum += w[i] / z;
    if (cum >= 0.9) {
      keep = i + 1;
      break;
    }
  }
  const kept = top.slice(0, keep);
  const zk = w.slice(0, keep).reduce((a, b) => a + b, 0);
  const expected = new Map(kept.map((id, i) => [id, w[i] / zk]));
  const n = 20000;
  const counts = new Map<number, number>();
  for (let step = 0; step < n; step++) {
    const id = selectToken(logits, o, 0, step);
    counts.set(id, (counts.get(id) ?? 0) + 1);
  }
  for (const id of counts.keys()) assert(expected.has(id), `token ${id} is outside top-k/top-p`);
  const report: string[] = [];
  for (const [id, p] of expected) {
    const f = (counts.get(id) ?? 0) / n;
    const sigma = Math.sqrt((p * (1 - p)) / n);
    assertLess(Math.abs(f - p), 4 * sigma + 1e-3, `token ${id}: frequency ${f} vs ${p}`);
    report.push(`${id}: ${f.toFixed(3)}/${p.toFixed(3)}`);
  }
  console.log(`  kept ${kept.length} of top 5; observed/expected ${report.join(", ")}`);
});

Deno.test("greedy is argmax; the uniform is in [0, 1) and keyed by seed, row and step", () => {
  const r = rng(9);
  const logits = Float32Array.from({ length: 300 }, () => r() * 10);
  const best = argmax(logits);
  assertEquals(selectToken(logits, {}, 0, 0), best);
  assertEquals(selectToken(logits, { temperature: 0, topK: 5, seed: 3 }, 4, 9), best);
  for (let s = 0; s < 20; s++) {
    assertEquals(selectToken(logits, { temperature: 5, topK: 1, seed: s }, s, s), best);
  }
  let sum = 0;
  const seen = new Set<number>();
  const n = 30000;
  for (let i = 0; i < n; i++) {
    const u = stepUniform(i % 7, Math.floor(i / 7) % 11, Math.floor(i / 77));
    assert(u >= 0 && u < 1, `uniform ${u} out of [0, 1)`);
    sum += u;
    seen.add(u);
  }
  assertLess(Math.abs(sum / n - 0.5), 0.01, "mean of the uniforms");
  assert(seen.size > n * 0.99, `only ${seen.size} distinct uniforms in ${n}`);
  assert(stepUniform(1, 0, 0) !== stepUniform(2, 0, 0));
  assert(stepUniform(1, 0, 0) !== stepUniform(1, 1, 0));
  assert(stepUniform(1, 0, 0) !== stepUniform(1, 0, 1));
  console.log(`  ${n} uniforms in [0, 1), mean ${(sum / n).toFixed(4)}, ${seen.size} distinct`);
});
