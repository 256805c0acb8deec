/**
 * The per-layer readout (logit lens) of the CPU backend's forward against an independent
 * reference written here: a naive float64 OPT run layer by layer (one unpadded row at a
 * time, a skipped layer is the identity and leaves no key), with the model's head (final
 * LayerNorm when pre-LN, `project_out` when present, LM head) and a float64 softmax applied
 * to every layer's output. Random awkward-sized checkpoints: pre-LN f16, opt-350m-style
 * post-LN with `project_in`/`project_out` (f32), and an untied head (bf16); padded batches;
 * full and nested skip plans (also skipping in the prompt). Also: readout off changes
 * nothing, skipped layers repeat the previous readout exactly, the last layer is the
 * model's own distribution, the last layer's top-1 is the greedy token on the tiny
 * checkpoint (full and a skip policy), the CALM baseline's invariants, the chart, and the
 * `readout` command's bad input.
 */
import { assert, assertEquals, assertLess, assertRejects, assertThrows } from "@std/assert";
import { createCpuBackend } from "../backend/cpu/backend.ts";
import { ReadoutBuilder, readoutEntry, reduceLogits } from "../backend/readout.ts";
import { runCommand, UsageError } from "../cli/command.ts";
import { cli } from "./cli_helpers.ts";
import { readoutCommand } from "../cli/readout.ts";
import { loadModel } from "../decode/mod.ts";
import { calmExit, evaluateCalm, readoutGeneration } from "../eval/readout.ts";
import { loadWeights, writeRandomCheckpoint } from "../model/mod.ts";
import { logitLensChart } from "../plots/lens.ts";
import { parsePolicy, setsForColumns } from "../schedule/mod.ts";
import {
  assertMatchesReference,
  assertSkippedRepeat,
  READOUT_FIXTURES,
  READOUT_ROWS,
  readoutPlans,
} from "./readout_helpers.ts";

for (const [name, options] of READOUT_FIXTURES) {
  Deno.test(`CPU readout equals the float64 layer-by-layer reference: ${name}`, async () => {
    const dir = Deno.makeTempDirSync({ prefix: "readout-fixture-" });
    try {
      writeRandomCheckpoint(dir, options);
      const w = await loadWeights(dir);
      const cpu = createCpuBackend(w);
      const L = w.config.numHiddenLayers;
      const T = Math.max(...READOUT_ROWS.map((r) => r.length));
      for (const [planName, sets] of readoutPlans(L, T)) {
        const what = `${name}, ${planName}`;
        const off = await cpu.forward({ rows: READOUT_ROWS, sets, padTokenId: 1 });
        const on = await cpu.forward({
          rows: READOUT_ROWS,
          sets,
          padTokenId: 1,
          readout: { topK: 4 },
        });
        assertEquals(off.readout, undefined, `${what}: no readout unless asked`);
        // readout on changes nothing else
        assertEquals(on.logits, off.logits, `${what}: logits with readout`);
        const r = on.readout!;
        assertEquals([r.rows, r.length, r.layers, r.topK], [3, T, L, 4]);
        assertMatchesReference(r, w, READOUT_ROWS, sets, what);
        const skipped = assertSkippedRepeat(r, sets, what);
        if (planName !== "full") assert(skipped > 0, `${what}: the plan skips something`);
        // the last layer is the model's own distribution
        const V = w.config.vocabSize;
        READOUT_ROWS.forEach((row, b) => {
          for (let c = T - row.length; c < T; c++) {
            const own = reduceLogits(
              on.logits.subarray((b * T + c) * V, (b * T + c + 1) * V),
              4,
              -1,
            );
            const e = readoutEntry(r, b, c, L - 1)!;
            assertEquals(e.top.map((t) => t[0]), own.top.map((t) => t[0]));
            e.top.forEach((t, i) => assertLess(Math.abs(t[1] - own.top[i][1]), 1e-6));
          }
        });
      }
    } finally {
      Deno.removeSync(dir, { recursive: true });
    }
  });
}

Deno.test("reduceLogits: top-k order and ties, entropy, next-token probability", () => {
  const u = reduceLogits(new Float32Array(7).fill(0.25), 3, 4);
  assertEquals(u.top.map((t) => t[0]), [0, 1, 2], "ties: lower id first");
  assertLess(Math.abs(u.entropy - Math.log(7)), 1e-12);
  assertLess(Math.abs(u.nextProb - 1 / 7), 1e-12);
  const x = new Float32Array([1, 3, -2, 3.5, 0]);
  const r = reduceLogits(x, 2, 0);
  const z = Array.from(x).reduce((a, v) => a + Math.exp(v), 0);
  assertEquals(r.top.map((t) => t[0]), [3, 1]);
  assertLess(Math.abs(r.top[0][1] - Math.exp(3.5) / z), 1e-12);
  const H = -Array.from(x).reduce((a, v) => a + (Math.exp(v) / z) * Math.log(Math.exp(v) / z), 0);
  assertLess(Math.abs(r.entropy - H), 1e-12);
  assert(Number.isNaN(reduceLogits(x, 1, -1).nextProb));
  // huge logits stay finite (max-subtracted)
  const big = reduceLogits(new Float32Array([1e30, 1e30, 0]), 1, 1);
  assertLess(Math.abs(big.nextProb - 0.5), 1e-12);
  assertThrows(() => new ReadoutBuilder([[2, 3]], [[0], [0]], 1, 0), RangeError, "topK");
});

Deno.test("readout: one-hot layer readout, next token, padding", () => {
  const b = new ReadoutBuilder([[0, 2], [1]], [[0, 1], [0]], 2, 1);
  const cols = b.columns(0);
  assertEquals(cols, [[0, 0], [0, 1], [1, 1]]);
  for (const [row, col] of cols) b.set(0, row, col, new Float32Array([0, 0, 50]));
  b.repeatSkipped(0);
  assertEquals(b.columns(1), [[0, 0]], "only column 0 ran layer 1");
  b.set(1, 0, 0, new Float32Array([50, 0, 0]));
  b.repeatSkipped(1);
  const r = b.finish();
  assertEquals(readoutEntry(r, 1, 0, 0), null, "padding");
  assertEquals(readoutEntry(r, 0, 0, 1)!.top[0][0], 0);
  assertEquals(readoutEntry(r, 0, 1, 1)!.top[0][0], 2, "skipped: layer 0's readout");
  assertLess(Math.abs(readoutEntry(r, 0, 0, 0)!.nextProb! - 1), 1e-9, "next of col 0 is 2");
  assertEquals(readoutEntry(r, 0, 1, 0)!.nextProb, null);
});

const TINY = "bundled/models/tiny-opt-e2e";
const PROMPT = "name[The Eagle], eatType[coffee shop], area[riverside]\n";

Deno.test("tiny checkpoint: the last layer's top-1 is the generated token (full and skip)", async () => {
  const model = await loadModel(TINY, { backend: "cpu" });
  try {
    for (const policy of ["full", "linear:max=12,min=3,warmup=1"]) {
      const r = await readoutGeneration(model, PROMPT, { policy, maxNewTokens: 6, topK: 2 });
      const P = r.promptLength, L = model.config.numHiddenLayers;
      assertEquals(r.columns.length, r.ids.length);
      assert(r.ids.length > P, "something was generated");
      r.columns.forEach((col) => assertEquals(col.length, L));
      for (let c = P - 1; c + 1 < r.ids.length; c++) {
        assertEquals(r.columns[c][L - 1].top[0][0], r.ids[c + 1], `${policy}: column ${c}`);
        assertLess(
          Math.abs(r.columns[c][L - 1].nextProb! - r.columns[c][L - 1].top[0][1]),
          1e-7,
        );
      }
      assertEquals(r.columns.at(-1)![0].nextProb, null);
      // skipped layers repeat: under the linear plan the late columns skip middle layers
      const sets = setsForColumns(parsePolicy(policy), {
        layers: L,
        promptLength: P,
        maxNewTokens: 6,
        columns: r.ids.length,
      });
      assertEquals(r.activeLayers, sets.map((s) => s.length));
      let repeats = 0;
      sets.forEach((s, c) => {
        for (let l = 1; l < L; l++) {
          if (s.includes(l)) continue;
          assertEquals(r.columns[c][l], r.columns[c][l - 1]);
          repeats++;
        }
      });
      if (policy !== "full") assert(repeats > 0);
    }
  } finally {
    model.dispose();
  }
});

Deno.test("CALM baseline: exits, full row, agreement and layer bounds", async () => {
  assertEquals(calmExit([[5, 0.2], [7, 0.8], [7, 0.9]], 0.7, 1), { layer: 2, token: 7 });
  assertEquals(calmExit([[5, 0.95], [7, 0.8], [7, 0.9]], 0.7, 3), { layer: 3, token: 7 });
  assertEquals(calmExit([[5, 0.2], [7, 0.3]], 0.9, 1), { layer: 2, token: 7 }, "never: last");
  const model = await loadModel(TINY, { backend: "cpu" });
  try {
    const items = [
      { prompt: PROMPT, refs: ["The Eagle is a coffee shop by the riverside."] },
      { prompt: "name[Alimentum], area[city centre]\n", refs: ["Alimentum is in the centre."] },
    ];
    const r = await evaluateCalm(model, items, {
      thresholds: [1e-9, 0.6, 1],
      minLayer: 3,
      maxNewTokens: 5,
      batchSize: 2,
    });
    const L = model.config.numHiddenLayers;
    assertEquals(r.rows.length, 4);
    const [full, any, mid, never] = r.rows;
    assertEquals(full.threshold, null);
    assertEquals(full.agreement, 1);
    assertEquals(full.meanLayers, L);
    // λ tiny: every position exits at the warm-up layer
    assertEquals(any.layers.flat().every((l) => l === 3), true);
    assertEquals(any.meanLayers, 3);
    // λ = 1: (almost) never confident: the last layer, the full model's tokens
    assert(never.layers.flat().every((l) => l >= 3 && l <= L));
    for (const row of r.rows) {
      assert(row.agreement >= 0 && row.agreement <= 1);
      assertLess(Math.abs(row.layerSpeedup - L / row.meanLayers), 1e-12);
      assertEquals(row.layers.flat().length, r.positions);
    }
    assert(mid.meanLayers >= 3 && mid.meanLayers <= L);
    if (never.meanLayers === L) {
      assertEquals(never.agreement, 1, "exiting at the last layer is the full model");
      assertEquals(never.bleu, full.bleu);
    }
    assertThrows(() => calmExit([], 0.5, 1));
    await assertRejects(
      () => evaluateCalm(model, items, { thresholds: [1.5] }),
      RangeError,
      "threshold",
    );
    await assertRejects(
      () => evaluateCalm(model, items, { thresholds: [0.5], minLayer: L + 1 }),
      RangeError,
      "minLayer",
    );
  } finally {
    model.dispose();
  }
});

Deno.test("logit-lens chart: heatmap shape, text, colour choice, bad shapes", () => {
  const data = {
    columns: ["</s>", "a", "b"],
    top1: [["x", "y", "z"], ["x", "q", "\n"]],
    top1Prob: [[0.1, 0.2, 0.3], [0.4, 0.5, 0.6]],
    entropy: [[3, 2, 1], [2, 1, 0.5]],
    promptLength: 2,
  };
  const fig = logitLensChart(data);
  const t = fig.data[0] as { z: number[][]; text: string[][]; y: number[]; x: string[] };
  assertEquals(t.z, data.top1Prob);
  assertEquals(t.y, [1, 2]);
  // Plotly reads labels as HTML: "</s>" must arrive escaped, or it is taken for a tag
  assertEquals(t.x, ["0:&lt;/s&gt;", "1:a", "2:b"]);
  assertEquals(t.text[1][2], "\\n", "newlines shown escaped");
  const marked = logitLensChart({
    ...data,
    top1: [["</s>", "a&b", '"q"'], ["x", "q", "y"]],
    active: [[true, false, false], [true, true, true]],
  }).data[0] as { z: (number | null)[][]; text: string[][] };
  assertEquals(marked.text[0], ["&lt;/s&gt;", "skip", "skip"], "skipped layers are marked");
  assertEquals(marked.z[0], [0.1, null, null], "skipped cells carry no colour");
  assertEquals(marked.text[1], ["x", "q", "y"]);
  assertEquals(
    (logitLensChart({ ...data, top1: [["a&b", '"q"', "<b>"], ["x", "q", "y"]] })
      .data[0] as { text: string[][] }).text[0],
    ["a&amp;b", '"q"', "&lt;b&gt;"],
  );
  assertThrows(
    () => logitLensChart({ ...data, active: [[true, true, true], [true]] }),
    RangeError,
    "active[1]",
  );
  assertEquals(
    (logitLensChart(data, { color: "entropy" }).data[0] as { z: number[][] }).z,
    data.entropy,
  );
  assertThrows(
    () => logitLensChart({ ...data, top1Prob: [[0.1, 0.2], [0.4, 0.5, 0.6]] }),
    RangeError,
    "top1Prob[0]",
  );
  assertThrows(
    () => logitLensChart({ ...data, entropy: [[NaN, 1, 1], [1, 1, 1]] }),
    RangeError,
    "entropy[0]",
  );
});

Deno.test("readout command: bad input fails before any work, naming the option", async () => {
  const cases: [string[], string][] = [
    [[], "give --prompt"],
    [["--prompt", "x", "--top-k", "0"], "--top-k"],
    [["--prompt", "x", "--max-new-tokens", "1.5"], "--max-new-tokens"],
    [["--calm", "0.5,,0.7"], "--calm"],
    [["--calm", "1.5"], "--calm threshold"],
    [["--calm", "0"], "--calm threshold"],
    [["--prompt", "x", "--color", "red"], "--color"],
    [["--prompt", "x", "--policy", "bogus:max=3"], "bogus"],
    [["--prompt", "x", "--data", "x.csv"], "--data is read by --calm"],
    [["--calm", "0.5", "--out", "out/x"], "--out draws the readout"],
    [["--prompt", "x", "--backend", "gpu"], "--backend"],
    [["--prompt", "x", "--calm", "0.5", "--data", "/nonexistent/e2e.csv"], "not found"],
    [["--prompt", ""], "--prompt must not be empty"],
    [["--prompt", "x", "extra"], "unexpected argument"],
    [["--prompt", "x", "--unknown"], "--unknown"],
  ];
  for (const [args, message] of cases) {
    const err = await assertRejects(() => runCommand(readoutCommand, args));
    assert(
      (err as Error).message.toLowerCase().includes(message.toLowerCase()),
      `${args.join(" ")}: "${(err as Error).message}" lacks "${message}"`,
    );
    assert(
      err instanceof UsageError || (err as Error).name.endsWith("Error"),
      `${args.join(" ")}: ${(err as Error).name}`,
    );
  }
});

Deno.test("readout command: --json prints ids and columns (BOS and prompt included)", async () => {
  const logged: string[] = [];
  const log = console.log;
  console.log = (...a: unknown[]) => logged.push(a.join(" "));
  let code;
  try {
    code = await runCommand(readoutCommand, [
      "--prompt",
      "name[Alimentum]\\n",
      "--max-new-tokens",
      "3",
      "--top-k",
      "2",
      "--backend",
      "cpu",
      "--policy",
      "linear:max=12,min=4,warmup=1",
      "--json",
    ]);
  } finally {
    console.log = log;
  }
  assertEquals(code, 0);
  const out = JSON.parse(logged.join("\n"));
  assertEquals(out.ids[0], 2, "BOS");
  assertEquals(out.columns.length, out.ids.length);
  for (const col of out.columns) {
    assertEquals(col.length, 12);
    for (const e of col) {
      assertEquals(e.top.length, 2);
      assert(e.top[0][1] >= e.top[1][1]);
      assert(e.entropy >= 0);
    }
  }
  assertEquals(out.columns.at(-1)[11].nextProb, null);
  for (let c = out.promptLength - 1; c + 1 < out.ids.length; c++) {
    assertEquals(out.columns[c][11].top[0][0], out.ids[c + 1]);
  }
});

Deno.test("readout command: the table, and --out writes the lens chart and readout.json", async () => {
  const rel = `out/.test-readout-${crypto.randomUUID().slice(0, 8)}`;
  const logged: string[] = [];
  const log = console.log, err = console.error;
  console.log = (...a: unknown[]) => logged.push(a.join(" "));
  console.error = () => {};
  let code;
  try {
    code = await runCommand(readoutCommand, [
      "--prompt",
      "name[Alimentum]\\n",
      "--max-new-tokens",
      "2",
      "--top-k",
      "1",
      "--backend",
      "cpu",
      "--color",
      "entropy",
      "--out",
      rel,
    ]);
  } finally {
    console.log = log;
    console.error = err;
  }
  try {
    assertEquals(code, 0);
    const table = logged.join("\n").split("\n");
    assert(table[1].includes("L1") && table[1].includes("L12"), table[1]);
    const saved = JSON.parse(Deno.readTextFileSync(`${rel}/readout.json`));
    // header, rule, one line per column
    assertEquals(table.length, 3 + saved.ids.length);
    assertEquals(saved.columns.length, saved.ids.length);
    const html = Deno.readTextFileSync(`${rel}/lens.html`);
    assert(html.includes('"heatmap"') && html.includes("entropy"));
    const m = JSON.parse(Deno.readTextFileSync(`${rel}/manifest.json`));
    assertEquals([m.command, m.backend.name, m.config.prompt], [
      "readout",
      "cpu",
      "name[Alimentum]\\n",
    ]);
    assert(m.commandLine.startsWith("deno task skipdecode readout "), m.commandLine);
    assert(m.model.files.some((f: { path: string }) => f.path === "config.json"));
  } finally {
    Deno.removeSync(rel, { recursive: true });
  }
});

Deno.test("readout command as the task runs it: bad input is one line and exit 2", async () => {
  const cases: [string[], RegExp][] = [
    [["readout", "--calm", "0.5,2"], /^error: --calm threshold must be a number > 0 and <= 1/],
    [["readout", "--prompt", "x", "--model", "/nonexistent/model"], /^error: .*nonexistent/],
    [["readout", "--prompt", "x", "--top-k", "many"], /^error: --top-k must be a whole number/],
  ];
  for (const [args, pattern] of cases) {
    const r = await cli(args);
    assertEquals(r.code, 2, `${args.join(" ")}: exit ${r.code}, ${r.stderr}`);
    assertEquals(r.stderr.trim().split("\n").length, 1, r.stderr);
    assert(pattern.test(r.stderr), `${args.join(" ")}: ${r.stderr}`);
  }
});

Deno.test("readout command: --calm --json gives the table rows with per-position layers", async () => {
  const logged: string[] = [];
  const log = console.log;
  console.log = (...a: unknown[]) => logged.push(a.join(" "));
  let code;
  try {
    code = await runCommand(readoutCommand, [
      "--calm",
      "0.9",
      "--calm-min-layer",
      "4",
      "--data",
      "bundled/data/e2e/devset.csv",
      "--items",
      "2",
      "--max-new-tokens",
      "3",
      "--backend",
      "cpu",
      "--json",
    ]);
  } finally {
    console.log = log;
  }
  assertEquals(code, 0);
  const out = JSON.parse(logged.join("\n"));
  assertEquals(out.ids, undefined, "no --prompt: no readout of one");
  assertEquals(out.calm.heldOut, false);
  assertEquals(out.calm.items, 2);
  const [full, calm] = out.calm.rows;
  assertEquals(full.threshold, null);
  assertEquals(calm.threshold, 0.9);
  assertEquals(calm.layers.length, 2);
  for (const l of calm.layers.flat()) assert(l >= 4 && l <= 12, `layer ${l}`);
  assertEquals(calm.layers.flat().length, out.calm.positions);
  assert(out.calm.note.includes("teacher forced") && out.calm.note.includes("upper bound"));
});
