/**
 * Sweeps: the table on the bundled tiny checkpoint (full first, speedups, metrics, agreement),
 * the result cache (a rerun reuses everything; a new policy against a cached `full` is
 * flagged as timed in another run), report folders, the progress display, the cache
 * helpers, the default policies and the demo's model choice.
 */
import {
  assert,
  assertAlmostEquals,
  assertEquals,
  assertGreater,
  assertRejects,
  assertStringIncludes,
} from "@std/assert";
import { parsePolicy, plan } from "../schedule/mod.ts";
import { canonicalJson, hashKey, ResultCache } from "../io/cache.ts";
import { createProgress, formatDuration, progressText } from "../io/progress.ts";
import {
  decodeSteps,
  runSweep,
  type SweepItem,
  sweepToJson,
  sweepToMarkdown,
} from "../experiments/sweep.ts";
import { policyLabel, sweepFigures, writeSweepReport } from "../experiments/report.ts";
import { corpusBleu } from "../eval/bleu.ts";
import { tokenAgreement } from "../eval/agreement.ts";
import { defaultPolicies, loadSweepItems } from "../cli/sweep.ts";
import { chooseDemoModel } from "../cli/demo.ts";
import { E2E_DEVSET } from "../data/bundled.ts";

const TINY = decodeURIComponent(
  new URL("../bundled/models/tiny-opt-e2e", import.meta.url).pathname,
);

async function tinyModel() {
  try {
    await Deno.stat(`${TINY}/config.json`);
  } catch {
    throw new Error(`missing ${TINY}: the bundled tiny checkpoint is part of the repository`);
  }
  const { loadModel } = await import("../decode/mod.ts");
  return await loadModel(TINY, { backend: "cpu", onNote: () => {} });
}

Deno.test("canonicalJson and hashKey: key order does not matter, values do", async () => {
  assertEquals(canonicalJson({ b: 1, a: [2, { d: 3, c: 4 }] }), '{"a":[2,{"c":4,"d":3}],"b":1}');
  assertEquals(await hashKey({ a: 1, b: 2 }), await hashKey({ b: 2, a: 1 }));
  assert((await hashKey({ a: 1 })) !== (await hashKey({ a: 2 })));
  assertEquals((await hashKey("x")).length, 64);
});

Deno.test("ResultCache: round trip, misses, and an unwritable folder turns it off", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const cache = new ResultCache(`${dir}/c`);
    assertEquals(await cache.get({ k: 1 }), undefined);
    await cache.put({ k: 1 }, { v: [1, 2] });
    assertEquals(await cache.get({ k: 1 }), { v: [1, 2] });
    assertEquals(await cache.get({ k: 2 }), undefined);
    assertEquals(await new ResultCache(false).get({ k: 1 }), undefined);
    // A file where the folder should be: the write fails, one note, caching off.
    await Deno.writeTextFile(`${dir}/file`, "x");
    const notes: string[] = [];
    const bad = new ResultCache(`${dir}/file/sub`, (n) => notes.push(n));
    await bad.put({ k: 1 }, 1);
    await bad.put({ k: 2 }, 2);
    assertEquals(notes.length, 1);
    assertStringIncludes(notes[0], `cannot write the result cache in ${dir}/file/sub`);
    assertEquals(bad.dir, undefined);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("progress: text, durations, throttling, and the line mode", async () => {
  assertEquals(formatDuration(75_000), "1:15");
  assertEquals(formatDuration(3_725_000), "1:02:05");
  assertEquals(
    progressText({ label: "generate full", done: 5, total: 10, overall: 0.25 }, 30_000),
    "[##########----------] 5/10 generate full | 0:30 elapsed, ~1:30 left",
  );
  assertEquals(
    progressText({ label: "x", done: 0, total: 4 }, 0),
    "[--------------------] 0/4 x | 0:00 elapsed",
  );
  let t = 0;
  const out: string[] = [];
  const p = createProgress("terminal", { write: (s) => out.push(s), now: () => t });
  p.update({ label: "a", done: 1, total: 3 });
  t = 100; // within 250 ms: skipped
  p.update({ label: "a", done: 2, total: 3 });
  t = 150; // the end of a step is always shown
  p.update({ label: "a", done: 3, total: 3 });
  p.update({ label: "a", done: 3, total: 3 }); // repeated state: skipped
  await p.finish("all done");
  assertEquals(out.length, 3);
  assert(out[0].startsWith("\r[#######-------------] 1/3 a"));
  assert(out[1].startsWith("\r[####################] 3/3 a"));
  assertEquals(out[2], "\rall done (0:00)\x1b[K\n");
  const lines: string[] = [];
  const l = createProgress("lines", { write: (s) => lines.push(s), now: () => 0 });
  l.update({ label: "a", done: 1, total: 2 });
  l.update({ label: "b", done: 1, total: 2 }); // a new step shows at once in line mode
  l.update({ label: "b", done: 1, total: 3 }); // throttled
  await l.finish();
  assertEquals(lines.length, 3);
  assert(lines.every((x) => x.endsWith("\n")));
  const none: string[] = [];
  const n = createProgress("none", { write: (s) => none.push(s) });
  n.update({ label: "a", done: 1, total: 1 });
  await n.finish();
  assertEquals(none, []);
});

Deno.test("decodeSteps: longest output per batch, minus the token the prefill gives", () => {
  assertEquals(decodeSteps([3, 5, 2, 1], 2), 5);
  assertEquals(decodeSteps([1, 1, 1], 8), 0);
  assertEquals(decodeSteps([], 8), 0);
});

Deno.test("defaultPolicies: valid plans at about 2x and 3x; labels", () => {
  const ps = defaultPolicies(12, 24);
  assertEquals(ps, [
    "full",
    "linear:max=10,min=2,warmup=1,horizon=24",
    "linear:max=6,min=2,warmup=1,horizon=24",
    "powerlaw:max=12,min=2,warmup=1,alpha=1,tau=4",
    "linear:max=10,min=2,warmup=1,horizon=24,prompt=decay",
    "earlyexit:linear:max=10,min=2,warmup=0,horizon=24",
  ]);
  // Over the horizon the linear decays average about L/2 and L/3 layers.
  const mean = (p: string) => {
    const pl = plan(parsePolicy(p), { layers: 12, promptLength: 1, maxNewTokens: 24 });
    return 12 / pl.layerSpeedup;
  };
  assertAlmostEquals(mean(ps[1]), 6, 0.5);
  assertAlmostEquals(mean(ps[2]), 4, 0.5);
  for (const p of defaultPolicies(24, 32)) parsePolicy(p); // other depths parse too
  assertEquals(policyLabel(ps[1]), "linear 10→2 w1 H24");
  assertEquals(policyLabel(ps[3]), "power 12→2 w1 α1 τ4");
  assertEquals(policyLabel(ps[4]), "linear 10→2 w1 H24 decay");
  assertEquals(policyLabel(ps[5]), "early-exit linear 10→2 H24");
  assertEquals(policyLabel("linear:max=10,min=2,warmup=0"), "linear 10→2 w0");
  assertEquals(policyLabel("constant:n=6,warmup=1"), "constant 6 w1");
  assertEquals(policyLabel("my-custom"), "my-custom");
});

Deno.test("sweep on the tiny model: table, cache reuse, timings from another run flagged", async () => {
  const model = await tinyModel();
  const dir = await Deno.makeTempDir();
  try {
    const items: SweepItem[] = (await loadSweepItems(E2E_DEVSET, 3)).slice(0, 3);
    assertEquals(items[0].prompt, "name[Alimentum], area[city centre], familyFriendly[no]\n");
    const policies = ["linear:max=8,min=2,warmup=1,horizon=8", "earlyexit:constant:n=3"];
    const opts = {
      maxNewTokens: 12,
      batchSize: 2,
      cacheDir: `${dir}/cache`,
      progress: false as const,
    };
    const r = await runSweep(model, items, policies, opts);
    assertEquals(r.rows.map((x) => x.policy), [
      "full",
      "linear:max=8,min=2,warmup=1,horizon=8",
      "earlyexit:constant:n=3,warmup=0",
    ]);
    const [full, lin, ee] = r.rows;
    assertEquals([full.layerSpeedup, full.flopSpeedup, full.measuredSpeedup], [1, 1, 1]);
    assertEquals([full.agreement, full.exactMatches], [1, 3]);
    // One interleaved pass, its spread over the 2 batches (full against itself: exactly 1).
    assertEquals([full.measuredBatches, full.measuredSpeedupRange], [2, [1, 1]]);
    assertEquals(lin.measuredBatches, 2);
    assert(
      lin.measuredSpeedupRange![0] > 0 &&
        lin.measuredSpeedupRange![0] <= lin.measuredSpeedupRange![1],
    );
    assertStringIncludes(sweepToMarkdown(r), "from a single timed pass");
    assertGreater(lin.layerSpeedup, 1.3);
    assertGreater(lin.layerSpeedup, lin.flopSpeedup); // the LM head is never skipped
    assertGreater(lin.flopSpeedup, 1);
    assertGreater(ee.layerSpeedup, 2); // 3 of 12 layers after the first token
    for (const row of r.rows) {
      assert(row.bleu >= 0 && row.bleu <= 100 && row.rougeL >= 0 && row.rougeL <= 1);
      assert(row.nll !== null && Number.isFinite(row.nll) && row.nll > 0);
      assertAlmostEquals(row.perplexity!, Math.exp(row.nll!), 1e-9);
      assert(row.measuredSpeedup > 0 && !row.cached && row.timedInSameRun);
    }
    // The table agrees with the outputs it returns.
    const outs = (k: number) => r.generations[k].outputs;
    assertAlmostEquals(
      ee.agreement,
      tokenAgreement(outs(2).map((o) => o.ids), outs(0).map((o) => o.ids)).agreement,
      1e-12,
    );
    assertAlmostEquals(
      lin.bleu,
      corpusBleu(outs(1).map((o) => o.text.trim()), items.map((i) => i.refs)).score,
      1e-9,
    );
    // Batch-by-batch generation sums up to what one engine call over all items reports.
    const { generate } = await import("../decode/mod.ts");
    const whole = await generate(model, items.map((i) => i.prompt), {
      policy: policies[0],
      maxNewTokens: 12,
      batchSize: 2,
    });
    assertEquals(outs(1).map((o) => o.ids), whole.results.map((x) => x.ids));
    assertAlmostEquals(lin.layerSpeedup, whole.layerSpeedup, 1e-12);
    assertAlmostEquals(lin.flopSpeedup, whole.flopSpeedup, 1e-12);
    assertEquals(lin.generatedTokens, whole.timing.generatedTokens);
    assertEquals(r.budgets[0].budgets, new Array(12).fill(12));
    assertEquals(r.budgets[2].budgets.slice(0, 3), [12, 3, 3]);
    assertEquals(r.positionNll.length, 3);
    assertEquals(r.cacheHits, 0);
    // Decode steps: per batch of 2, the longest output minus one.
    const lens = outs(1).map((o) => o.ids.length);
    assertEquals(lin.decodeSteps, Math.max(lens[0], lens[1]) - 1 + lens[2] - 1);
    assertAlmostEquals(
      lin.measuredSpeedup,
      (full.decodeMs / full.decodeSteps) / (lin.decodeMs / lin.decodeSteps),
      1e-9,
    );

    // Same inputs again: everything from the cache, same numbers, still "same run".
    const again = await runSweep(model, items, policies, opts);
    assertEquals(again.cacheHits, 6); // 3 generations + 3 NLLs
    assertEquals(again.rows.map((x) => x.bleu), r.rows.map((x) => x.bleu));
    assertEquals(again.rows.map((x) => x.nll), r.rows.map((x) => x.nll));
    assert(again.rows.every((x) => x.cached && x.timedInSameRun));

    // A new policy against the cached full model: its speedup is flagged in the table.
    const more = await runSweep(model, items, [...policies, "constant:n=6,warmup=1"], opts);
    assertEquals(more.cacheHits, 6);
    assertEquals(more.rows[3].timedInSameRun, false);
    assertEquals(more.rows[3].cached, false);
    const md = sweepToMarkdown(more);
    assertStringIncludes(
      md,
      "| policy | layer speedup [95% CI] | fixed-token layer speedup | FLOP speedup | " +
        "fixed-token FLOP speedup | measured speedup, single pass [batch range] | BLEU [95% CI] |",
    );
    assertStringIncludes(md, "`constant:n=6,warmup=1`");
    assertStringIncludes(md, "x† |");
    assertStringIncludes(md, "different runs");
    assert(!sweepToMarkdown(r).includes("†"));
    await assertRejects(
      () => runSweep(model, items, ["full", "full"], opts),
      RangeError,
      'policy "full" is listed twice',
    );

    // Charts and the report folder (no PNG: that needs Chromium, tested in plots/).
    const figs = sweepFigures(r);
    assertEquals(figs.frontier.data[0].x, r.rows.map((x) => x.layerSpeedup));
    assert(figs.nllGap && !figs.oracleDepth);
    const files = await writeSweepReport(r, `${dir}/report`, { png: false }, items);
    assertEquals(Object.keys(files.html).sort(), ["budgets", "frontier", "nllGap"]);
    const report = await Deno.readTextFile(`${dir}/report/report.md`);
    assertStringIncludes(report, "| `linear:max=8,min=2,warmup=1,horizon=8` |");
    assertStringIncludes(report, "[frontier.html](frontier.html)");
    const json = JSON.parse(await Deno.readTextFile(`${dir}/report/sweep.json`));
    assertEquals(json.rows.length, 3);
    assertEquals(json, JSON.parse(JSON.stringify(sweepToJson(r))));
    const gens = (await Deno.readTextFile(`${dir}/report/generations.jsonl`)).trim().split("\n");
    assertEquals(gens.length, 9);
    assertEquals(JSON.parse(gens[4]).policy, "linear:max=8,min=2,warmup=1,horizon=8");
    assertEquals(JSON.parse(gens[4]).refs, items[1].refs);
    const html = await Deno.readTextFile(`${dir}/report/frontier.html`);
    assertStringIncludes(html, "Plotly.newPlot");
  } finally {
    model.dispose();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("sweep: oracle depths of the full outputs on a subset", async () => {
  const model = await tinyModel();
  try {
    const items = await loadSweepItems(E2E_DEVSET, 2);
    const r = await runSweep(model, items, ["full"], {
      maxNewTokens: 6,
      cacheDir: false,
      nll: false,
      oracle: { items: 1, warmup: 1 },
      progress: false,
    });
    assertEquals(r.rows[0].nll, null);
    assertEquals(r.positionNll, []);
    assertEquals(r.oracle!.depths.length, 1);
    assertEquals(r.oracle!.depths[0].length, r.generations[0].outputs[0].ids.length);
    assert(r.oracle!.depths[0].every((d) => d >= 2 && d <= 12));
    assert(sweepFigures(r).oracleDepth);
  } finally {
    model.dispose();
  }
});

Deno.test("demo model choice: --model, the HF cache, the tiny model, or a clear message", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const given = await chooseDemoModel({ model: "/some/dir" });
    assertEquals([given.model, given.tiny], ["/some/dir", false]);
    // Offline, nothing cached, tiny model present.
    const tiny = await chooseDemoModel({ offline: true, cacheDir: `${dir}/hub`, tinyDir: TINY });
    assertEquals([tiny.model, tiny.tiny], [TINY, true]);
    assertStringIncludes(tiny.note, "offline mode is on");
    // Offline, nothing anywhere: says how to get a model.
    await assertRejects(
      () => chooseDemoModel({ offline: true, cacheDir: `${dir}/hub`, tinyDir: `${dir}/none` }),
      Error,
      "no model for the demo",
    );
    // A cached snapshot of the hub model wins.
    const snap = `${dir}/hub/models--facebook--opt-125m/snapshots/abc`;
    await Deno.mkdir(snap, { recursive: true });
    await Deno.mkdir(`${dir}/hub/models--facebook--opt-125m/refs`, { recursive: true });
    await Deno.writeTextFile(`${dir}/hub/models--facebook--opt-125m/refs/main`, "abc");
    await Deno.writeTextFile(`${snap}/config.json`, "{}");
    await Deno.writeTextFile(`${snap}/model.safetensors`, "");
    const cached = await chooseDemoModel({ offline: true, cacheDir: `${dir}/hub`, tinyDir: TINY });
    assertEquals([cached.model, cached.tiny], [snap, false]);
    assertStringIncludes(cached.note, "from the Hugging Face cache");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
