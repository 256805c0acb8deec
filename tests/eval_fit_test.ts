/**
 * Fixed-token speedups, the monotone bound, its policy, fitPolicy and the bootstrap
 * intervals (pure functions, no model), then a sweep on the tiny model: `full` gets 1,
 * linear and its early-exit twin get equal fixed-token speedups, every row has its
 * intervals, lengths and cap share, and the oracle carries depths, bound and bound decode.
 */
import { assert, assertAlmostEquals, assertEquals, assertThrows } from "@std/assert";
import { parsePolicy, plan } from "../schedule/mod.ts";
import {
  boundLayerSpeedup,
  boundPolicy,
  fitPolicy,
  fixedTokenSpeedup,
  monotoneBound,
} from "../eval/fit.ts";
import {
  bootstrapBleu,
  bootstrapMean,
  bootstrapRatio,
  bootstrapRougeL,
  positionIntervals,
} from "../eval/bootstrap.ts";
import { corpusBleu } from "../eval/bleu.ts";
import { runSweep, sweepToJson, sweepToMarkdown } from "../experiments/sweep.ts";
import { sweepFigures } from "../experiments/report.ts";
import { loadSweepItems, loadSweepJsonl } from "../cli/sweep.ts";
import { E2E_DEVSET } from "../data/bundled.ts";

const CONFIG = {
  numHiddenLayers: 12,
  hiddenSize: 32,
  ffnDim: 64,
  vocabSize: 100,
  wordEmbedProjDim: 32,
};

Deno.test("monotoneBound is the suffix maximum; boundLayerSpeedup counts its budgets", () => {
  assertEquals(monotoneBound([[3, 5, 2, 4, 1], [], [7]]), [[5, 5, 4, 4, 1], [], [7]]);
  const b = monotoneBound([[2, 9, 1, 1]]);
  for (let i = 1; i < b[0].length; i++) assert(b[0][i] <= b[0][i - 1]);
  assertEquals(boundLayerSpeedup([[12, 6], [6]], 12), 36 / 24);
  assertEquals(boundLayerSpeedup([], 12), 1);
});

Deno.test("boundPolicy runs the bound from the last prompt column on, then its last budget", () => {
  const p = boundPolicy([12, 6, 3], { layers: 12, warmup: 1 });
  const pl = plan(p, { layers: 12, promptLength: 3, maxNewTokens: 5 });
  assertEquals(pl.generatedLayers, [12, 6, 3, 3, 3]);
  assertEquals(pl.sets[0].length, 12); // prompt columns before P - 1 run every layer
  assertEquals(pl.sets[4], [0, 10, 11]); // token 2 (column P + 1): the set of 3, one warm-up layer
  assertThrows(() => boundPolicy([3, 4], { layers: 12, warmup: 1 }), RangeError, "rises");
  assertThrows(() => boundPolicy([], { layers: 12, warmup: 1 }), RangeError, "empty");
});

Deno.test("fixedTokenSpeedup: full is 1, a policy and its early-exit twin agree, by hand", () => {
  const o = { config: CONFIG, lengths: [10, 4, 7], promptLengths: [5, 7, 3], batchSize: 2 };
  const full = fixedTokenSpeedup("full", o);
  assertEquals([full.layerSpeedup, full.flopSpeedup], [1, 1]);
  const lin = fixedTokenSpeedup("linear:max=10,min=2,warmup=0,horizon=6", o);
  const ee = fixedTokenSpeedup("earlyexit:linear:max=10,min=2,warmup=0,horizon=6", o);
  assertEquals(lin.layerSpeedup, ee.layerSpeedup);
  assertEquals(lin.flopSpeedup, ee.flopSpeedup);
  // By hand: token 0 runs 12 layers (prompt column), token i >= 1 the budget of j = i - 1.
  const budgets = plan(parsePolicy("linear:max=10,min=2,warmup=0,horizon=6"), {
    layers: 12,
    promptLength: 1,
    maxNewTokens: 10,
  }).generatedLayers;
  const layers = [10, 4, 7].reduce((a, n) => a + budgets.slice(0, n).reduce((x, y) => x + y), 0);
  assertAlmostEquals(lin.layerSpeedup, (21 * 12) / layers, 1e-12);
  assert(lin.flopSpeedup > 1 && lin.flopSpeedup < lin.layerSpeedup);
  // Longer outputs of a policy cannot change its fixed-token figure: only the lengths given.
  const longer = fixedTokenSpeedup("linear:max=10,min=2,warmup=0,horizon=6", {
    ...o,
    lengths: [20, 20, 20],
  });
  assert(longer.layerSpeedup > lin.layerSpeedup);
  assertEquals(lin.items.length, 3);
  assert(lin.prefillFlops > 0);
  assertThrows(
    () => fixedTokenSpeedup("full", { ...o, lengths: [1] }),
    RangeError,
    "1 lengths but 3 prompts",
  );
});

Deno.test("fitPolicy: recovers a linear schedule; hits the target speedup; checks inputs", () => {
  const target = plan(parsePolicy("linear:max=8,min=2,warmup=1,horizon=8"), {
    layers: 12,
    promptLength: 1,
    maxNewTokens: 20,
  }).generatedLayers;
  const bound = [target.slice(0, 20), target.slice(0, 14), target.slice(0, 18)];
  const speed = boundLayerSpeedup(bound, 12);
  const fit = fitPolicy({ kind: "linear", targetSpeedup: speed, data: { bound, layers: 12 } });
  assertEquals(fit.distance, 0);
  assertEquals(fit.coverage, 1);
  assertAlmostEquals(fit.speedup, speed, 1e-12);
  assertEquals(fit.params.min, 2);
  const pl = fitPolicy({ kind: "powerlaw", targetSpeedup: 2.5, data: { bound, layers: 12 } });
  assert(pl.policy.startsWith("powerlaw:"));
  assert(Math.abs(pl.speedup - 2.5) / 2.5 <= 0.05, `speedup ${pl.speedup}`);
  parsePolicy(pl.policy); // a valid policy string
  assertThrows(
    () => fitPolicy({ kind: "bogus" as "linear", targetSpeedup: 2, data: { bound, layers: 12 } }),
    RangeError,
    "kind",
  );
  assertThrows(
    () => fitPolicy({ kind: "linear", targetSpeedup: 0.5, data: { bound, layers: 12 } }),
    RangeError,
    "targetSpeedup",
  );
  assertThrows(
    () => fitPolicy({ kind: "linear", targetSpeedup: 2, data: { bound: [[]], layers: 12 } }),
    RangeError,
    "no positions",
  );
});

Deno.test("bootstrap: seeded, contains the estimate, degenerate cases", () => {
  const xs = Array.from({ length: 40 }, (_, i) => (i * 37) % 11);
  const a = bootstrapMean(xs, { seed: 3 }), b = bootstrapMean(xs, { seed: 3 });
  assertEquals(a, b);
  const mean = xs.reduce((s, x) => s + x, 0) / xs.length;
  assert(a[0] < mean && mean < a[1], `${a} around ${mean}`);
  assertEquals(bootstrapMean([4, 4, 4]), [4, 4]);
  assertEquals(bootstrapRatio([12, 12], [6, 6]), [2, 2]);
  const perfect = bootstrapBleu(["a b c d e"], [["a b c d e"]]);
  assertAlmostEquals(perfect[0], 100, 1e-9);
  assertAlmostEquals(perfect[1], 100, 1e-9);
  const hyps = ["the cat sat on the mat", "a dog ran", "it rained all day long", "x y z"];
  const refs = [["the cat sat on a mat"], ["the dog ran far"], ["it rained all day"], ["x y"]];
  const ci = bootstrapBleu(hyps, refs, { seed: 1 });
  const bleu = corpusBleu(hyps, refs).score;
  assert(ci[0] <= bleu && bleu <= ci[1], `${ci} around ${bleu}`);
  const rc = bootstrapRougeL(hyps, refs);
  assert(rc[0] >= 0 && rc[1] <= 1 && rc[0] <= rc[1]);
  const pos = positionIntervals([[4, 2, 2], [6, 3], [5]], { resamples: 50 });
  assertEquals(pos.map((p) => p.items), [3, 2, 1]);
  assertEquals(pos[0].mean, 5);
  assertEquals(positionIntervals([[1, 2], [3]], { minItems: 2 }).length, 1);
});

Deno.test("sweep JSONL data: prompt or mr lines; errors name the line", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(
      `${dir}/a.jsonl`,
      '{"mr": "name[X]", "refs": ["X."]}\n\n{"prompt": "P:", "refs": ["a", "b"]}\n',
    );
    assertEquals(await loadSweepJsonl(`${dir}/a.jsonl`), [
      { prompt: "name[X]\n", refs: ["X."] },
      { prompt: "P:", refs: ["a", "b"] },
    ]);
    await Deno.writeTextFile(
      `${dir}/u.jsonl`,
      '{"mr": "name[X]", "refs": ["X."]}\n{"mr": "m", "refs": ["a"]}\n',
    );
    assertEquals((await loadSweepItems(`${dir}/u.jsonl`, 1)).map((i) => i.prompt), ["name[X]\n"]);
    await Deno.writeTextFile(`${dir}/b.jsonl`, '{"mr": "m", "refs": []}\n');
    const e = await loadSweepJsonl(`${dir}/b.jsonl`).catch((e) => e as Error);
    assert(e instanceof Error && e.message.includes("b.jsonl:1") && e.message.includes("refs"));
    await Deno.writeTextFile(`${dir}/c.jsonl`, '{"refs": ["r"]}\nnot json\n');
    const f = await loadSweepJsonl(`${dir}/c.jsonl`).catch((e) => e as Error);
    assert(f instanceof Error && f.message.includes("c.jsonl:1"), String(f));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("sweep: fixed-token speedups (full 1, twins equal), intervals, lengths, bound", async () => {
  const { loadModel } = await import("../decode/mod.ts");
  const model = await loadModel(
    decodeURIComponent(new URL("../bundled/models/tiny-opt-e2e", import.meta.url).pathname),
    { backend: "cpu", onNote: () => {} },
  );
  const notes: string[] = [];
  try {
    const items = await loadSweepItems(E2E_DEVSET, 3);
    const r = await runSweep(model, items, [
      "linear:max=8,min=2,warmup=0,horizon=6",
      "earlyexit:linear:max=8,min=2,warmup=0,horizon=6",
      "linear:max=8,min=2,warmup=1",
    ], {
      maxNewTokens: 10,
      batchSize: 2,
      cacheDir: false,
      progress: false,
      oracle: { items: 2, warmup: 1 },
      resamples: 200,
      onNote: (n) => notes.push(n),
    });
    const [full, lin, ee] = r.rows;
    assertEquals([full.fixedLayerSpeedup, full.fixedFlopSpeedup], [1, 1]);
    assertEquals(lin.fixedLayerSpeedup, ee.fixedLayerSpeedup);
    assertEquals(lin.fixedFlopSpeedup, ee.fixedFlopSpeedup);
    assert(lin.fixedLayerSpeedup > 1);
    // An implicit horizon gets a note.
    assert(notes.some((n) => n.includes("linear:max=8,min=2,warmup=1") && n.includes("horizon")));
    for (const row of r.rows) {
      assert(row.bleuCI[0] <= row.bleu + 1e-9 && row.bleu <= row.bleuCI[1] + 1e-9, row.policy);
      assert(row.rougeLCI[0] <= row.rougeLCI[1]);
      assert(row.layerSpeedupCI[0] <= row.layerSpeedup + 1e-9);
      const lengths = r.generations.find((g) => g.policy === row.policy)!.outputs;
      assertAlmostEquals(row.meanLength, row.generatedTokens / 3, 1e-12);
      assertEquals(row.capShare, lengths.filter((o) => o.finish === "length").length / 3);
      assert(row.prefillFlops > 0);
    }
    assertEquals(r.agreementByPosition.length, 4);
    assertEquals(r.agreementByPosition[0].agreement.every((a) => a === 1), true);
    const o = r.oracle!;
    assertEquals(o.monotoneBound, monotoneBound(o.depths));
    assertAlmostEquals(o.boundLayerSpeedup, boundLayerSpeedup(o.monotoneBound, 12), 1e-12);
    assert(o.boundDecode.agreement >= 0 && o.boundDecode.agreement <= 1);
    const json = sweepToJson(r) as { oracle: Record<string, unknown>; rows: unknown[] };
    assertEquals(json.oracle.monotoneBound, o.monotoneBound);
    assertEquals(json.oracle.depths, o.depths);
    assert(sweepToMarkdown(r).includes("fixed-token layer speedup"));
    // The frontier has error bars and the bound as a reference.
    const fig = sweepFigures(r).frontier;
    assert(fig.data[0].error_y !== undefined);
    assert(fig.data.some((t) => String(t.name).includes("monotone")));
  } finally {
    model.dispose();
  }
});
