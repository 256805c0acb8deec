// Tests of plots/charts.ts and plots/figure.ts: figure structure (traces, axis titles,
// point counts), the Pareto front, and errors that name the bad input.
import { assert, assertEquals, assertStringIncludes, assertThrows } from "@std/assert";
import {
  budgetChart,
  frontierChart,
  type FrontierPoint,
  intervalChart,
  labelsOverlap,
  lossCurveChart,
  nllGapChart,
  oracleDepthChart,
  paretoFront,
} from "../plots/charts.ts";
import { type Figure, summarizeFigure } from "../plots/figure.ts";

// deno-lint-ignore no-explicit-any
type Any = any;
const axisTitle = (fig: Figure, axis: "xaxis" | "yaxis"): string =>
  (fig.layout[axis] as Any).title.text;

Deno.test("budgetChart: one step line per policy, full depth marked", () => {
  const fig = budgetChart([
    { name: "full", budgets: [12, 12, 12, 12] },
    { name: "linear", budgets: [12, 9, 6, 4] },
  ], { layers: 12 });
  assertEquals(fig.data.length, 2);
  assertEquals(fig.data.map((t) => t.name), ["full", "linear"]);
  assertEquals(fig.data[1].x, [0, 1, 2, 3]);
  assertEquals(fig.data[1].y, [12, 9, 6, 4]);
  assertEquals((fig.data[1].line as Any).shape, "hv"); // step line
  assertEquals(axisTitle(fig, "xaxis"), "generated token i");
  assertEquals(axisTitle(fig, "yaxis"), "active layers");
  assertEquals((fig.layout.yaxis as Any).range, [0, 12.5]);
  assertEquals((fig.layout.shapes as Any)[0].y0, 12);
  // Serialises to plain JSON and back unchanged.
  assertEquals(JSON.parse(JSON.stringify(fig)), fig);
});

Deno.test("budgetChart: bad budgets and layers are named", () => {
  assertThrows(
    () => budgetChart([{ name: "bad", budgets: [12, 13] }], { layers: 12 }),
    RangeError,
    'series "bad" budgets[1] is 13, outside 1..12',
  );
  assertThrows(
    () => budgetChart([{ name: "nan", budgets: [NaN] }], { layers: 12 }),
    RangeError,
    'series "nan" budgets[0] is NaN',
  );
  assertThrows(() => budgetChart([], { layers: 0 }), RangeError, "layers");
});

const PTS: FrontierPoint[] = [
  { name: "full", speedup: 1, quality: 31, metric: "BLEU" },
  { name: "const8", speedup: 1.5, quality: 27, metric: "BLEU" }, // beaten by linear
  { name: "linear", speedup: 1.9, quality: 29, metric: "BLEU" },
  { name: "power", speedup: 2.4, quality: 26.5, metric: "BLEU" },
  { name: "early", speedup: 1.9, quality: 21, metric: "BLEU" }, // beaten by linear
  { name: "const4", speedup: 3, quality: 18, metric: "BLEU" },
];

Deno.test("paretoFront: keeps exactly the undominated points, by speedup", () => {
  assertEquals(paretoFront(PTS).map((p) => p.name), ["full", "linear", "power", "const4"]);
  // Lower-is-better metrics (e.g. NLL) flip the quality axis: with NLL values the
  // cheapest-and-lowest points win.
  const nll: FrontierPoint[] = [
    { name: "full", speedup: 1, quality: 1.2, metric: "NLL" },
    { name: "a", speedup: 2, quality: 1.5, metric: "NLL" },
    { name: "b", speedup: 2, quality: 1.4, metric: "NLL" }, // beats a
    { name: "c", speedup: 1.5, quality: 1.6, metric: "NLL" }, // beaten by b
  ];
  assertEquals(paretoFront(nll, false).map((p) => p.name), ["full", "b"]);
  // Duplicates are both kept (neither strictly beats the other).
  const dup = [PTS[0], { ...PTS[0], name: "full2" }];
  assertEquals(paretoFront(dup).length, 2);
  assertEquals(paretoFront([]), []);
});

Deno.test("frontierChart: labelled points, full model star, frontier line", () => {
  const fig = frontierChart(PTS);
  assertEquals(fig.data.length, 2);
  const [pts, front] = fig.data as Any[];
  assertEquals(pts.x.length, 6);
  assertEquals(pts.text, PTS.map((p) => p.name));
  assertEquals(pts.mode, "markers+text");
  assertEquals(pts.marker.symbol[0], "star"); // speedup 1 = the full model
  assertEquals(pts.marker.symbol.filter((s: string) => s === "star").length, 1);
  assertEquals(front.x, [1, 1.9, 2.4, 3]);
  assertEquals(front.y, [31, 29, 26.5, 18]);
  assertEquals(axisTitle(fig, "yaxis"), "BLEU");
  assertStringIncludes(axisTitle(fig, "xaxis"), "speedup");
  // The y range leaves room above the highest label: it includes every point.
  const [lo, hi] = (fig.layout.yaxis as Any).range;
  assert(lo < 18 && hi > 31, `range ${lo}..${hi}`);
  assertThrows(
    () => frontierChart([PTS[0], { ...PTS[1], metric: "ROUGE-L" }]),
    RangeError,
    'point 1 ("const8") uses metric "ROUGE-L"',
  );
  assertThrows(
    () => frontierChart([{ ...PTS[0], speedup: 0 }]),
    RangeError,
    "expected a positive number",
  );
});

Deno.test("nllGapChart: one line per policy over positions, zero line", () => {
  const fig = nllGapChart([
    { name: "linear", gap: [0, 0.1, 0.3] },
    { name: "const", gap: [0.2, 0.2, 0.2, 0.2, 0.2] },
  ]);
  assertEquals(fig.data.length, 2);
  assertEquals(fig.data[0].x, [0, 1, 2]);
  assertEquals((fig.data[1].y as number[]).length, 5);
  assertStringIncludes(axisTitle(fig, "yaxis"), "NLL");
  assertEquals((fig.layout.shapes as Any)[0].y0, 0);
  assertThrows(
    () => nllGapChart([{ name: "x", gap: [0, Infinity] }]),
    RangeError,
    'series "x" gap[1] is Infinity',
  );
});

Deno.test("oracleDepthChart: box per position with mean, or heatmap of shares", () => {
  const depths = [[12, 10, 11], [], [4, 6, 5, 5]];
  const box = oracleDepthChart(depths, { layers: 12 });
  assertEquals(box.data.map((t) => t.type), ["box", "scatter"]);
  assertEquals(box.data[0].x, [0, 0, 0, 2, 2, 2, 2]); // position 1 has no samples
  assertEquals(box.data[0].y, [12, 10, 11, 4, 6, 5, 5]);
  assertEquals(box.data[1].x, [0, 2]);
  assertEquals(box.data[1].y, [11, 5]); // means
  assertEquals(axisTitle(box, "yaxis"), "oracle depth (layers)");

  const heat = oracleDepthChart(depths, { layers: 12, kind: "heatmap" });
  assertEquals(heat.data.length, 1);
  const z = heat.data[0].z as (number | null)[][];
  assertEquals(z.length, 12); // one row per depth 1..12
  assertEquals(z[0].length, 3); // one column per position
  assertEquals(z[4][2], 0.5); // depth 5 is 2 of the 4 samples at position 2
  assertEquals(z[11][0], 1 / 3); // depth 12 is 1 of 3 at position 0
  assertEquals(z[0][1], null); // no samples at position 1
  for (const j of [0, 2]) {
    const col = z.reduce((s, row) => s + (row[j] ?? 0), 0);
    assert(Math.abs(col - 1) < 1e-12, `shares at ${j} sum to ${col}`);
  }
  assertThrows(
    () => oracleDepthChart([[3], [13]], { layers: 12 }),
    RangeError,
    "depth 13 at position 1",
  );
});

Deno.test("lossCurveChart: several series against shared steps, gaps as null", () => {
  const fig = lossCurveChart([0, 10, 20], [
    { name: "train", values: [5, 4, 3] },
    { name: "eval", values: [null, 4.5, NaN] },
  ], { logY: true });
  assertEquals(fig.data.length, 2);
  assertEquals(fig.data[1].y, [null, 4.5, null]);
  assertEquals(fig.data[0].x, [0, 10, 20]);
  assertEquals(axisTitle(fig, "xaxis"), "step");
  assertEquals((fig.layout.yaxis as Any).type, "log");
  assertThrows(
    () => lossCurveChart([0, 1], [{ name: "train", values: [1] }]),
    RangeError,
    'series "train" has 1 values for 2 steps',
  );
});

Deno.test("summarizeFigure: title, traces and axis titles", () => {
  const s = summarizeFigure(budgetChart([{ name: "c6", budgets: [6, 6] }], { layers: 12 }));
  assertEquals(
    s,
    'Layer budget per generated position: 1 trace (scatter "c6", 2 points); ' +
      "x: generated token i, y: active layers",
  );
});

Deno.test("frontierChart: asymmetric error bars from intervals, a reference line and marker", () => {
  const fig = frontierChart([
    { name: "full", speedup: 1, quality: 30, metric: "BLEU", qualityCI: [25, 36] },
    {
      name: "a",
      speedup: 2,
      quality: 20,
      metric: "BLEU",
      qualityCI: [18, 21],
      speedupCI: [1.8, 2.3],
    },
  ], { reference: { name: "bound", speedup: 1.4, quality: 28 } });
  const ey = fig.data[0].error_y as Any;
  assertEquals(ey.array, [6, 1]);
  assertEquals(ey.arrayminus, [5, 2]);
  const ex = fig.data[0].error_x as Any;
  assert(Math.abs(ex.array[1] - 0.3) < 1e-9 && Math.abs(ex.arrayminus[1] - 0.2) < 1e-9);
  assertEquals(ex.array[0], 0); // no interval: no bar
  assertEquals(fig.data[2].name, "bound");
  assertEquals((fig.data[2] as Any).x, [1.4]);
  assertEquals((fig.layout.shapes as Any[])[1].x0, 1.4);
  // the y range covers the intervals
  const yr = (fig.layout.yaxis as Any).range as number[];
  assert(yr[0] < 18 && yr[1] > 36, String(yr));
  assertThrows(
    () => frontierChart([], { reference: { name: "r", speedup: 0 } }),
    RangeError,
    'reference "r"',
  );
  // without intervals the traces carry no error bars (as before)
  assertEquals(
    frontierChart([{ name: "x", speedup: 1, quality: 1, metric: "m" }]).data[0].error_y,
    undefined,
  );
});

Deno.test("frontierChart: close points are named in a legend, not by overlapping labels", () => {
  const pts = [
    { name: "full", speedup: 1, quality: 30, metric: "BLEU" },
    { name: "linear 12→4 w1 H24", speedup: 2.01, quality: 27.1, metric: "BLEU" },
    { name: "linear 12→4 w0 H24", speedup: 2.03, quality: 27.3, metric: "BLEU" },
    { name: "early exit", speedup: 3.5, quality: 5, metric: "BLEU" },
  ];
  const fig = frontierChart(pts);
  const t0 = fig.data[0] as Any;
  assertEquals(t0.mode, "markers", "no visible labels when two would overlap");
  assertEquals(t0.text, pts.map((p) => p.name), "names stay in the hover text");
  const entries = fig.data.slice(2) as Any[];
  assertEquals(entries.map((e) => e.name), pts.map((p) => p.name));
  // each legend entry has its point's colour and symbol, and the colours differ
  entries.forEach((e, i) => {
    assertEquals(e.marker.color, t0.marker.color[i]);
    assertEquals(e.marker.symbol, t0.marker.symbol[i]);
  });
  assertEquals(new Set(t0.marker.color).size, pts.length);
  // far-apart points keep their labels
  assertEquals((frontierChart([pts[0], pts[1], pts[3]]).data[0] as Any).mode, "markers+text");
  assert(labelsOverlap([pts[1], pts[2]], [0.9, 4], [0, 35]));
  assert(!labelsOverlap([pts[1], pts[3]], [0.9, 4], [0, 35]));
});

Deno.test("frontierChart: a reference measured on a subset is drawn with full's figure there", () => {
  const fig = frontierChart([
    { name: "full", speedup: 1, quality: 30, metric: "BLEU" },
    { name: "a", speedup: 2, quality: 20, metric: "BLEU" },
  ], { reference: { name: "bound (8 of 16 items)", speedup: 1.5, quality: 21, baseline: 22 } });
  const base = fig.data[3] as Any;
  assertEquals([base.x, base.y], [[1], [22]]);
  assertEquals(base.name, "full on the same items"); // listed right after the bound
  assertEquals(fig.data[2].name, "bound (8 of 16 items)");
  assertThrows(
    () =>
      frontierChart([{ name: "full", speedup: 1, quality: 1, metric: "m" }], {
        reference: { name: "r", speedup: 2, baseline: NaN },
      }),
    RangeError,
    "baseline",
  );
});

Deno.test("intervalChart: a band and a line per series; mismatched arrays are named", () => {
  const fig = intervalChart([
    { name: "depth", x: [0, 1, 2], mean: [6, 4, 3], lo: [5, 3, 2], hi: [7, 5, 4] },
    { name: "gap", x: [0], mean: [0.1], lo: [0], hi: [0.2] },
  ], { yTitle: "layers" });
  assertEquals(fig.data.length, 4);
  assertEquals((fig.data[0] as Any).y, [7, 5, 4, 2, 3, 5]); // hi forward, lo backward
  assertEquals(fig.data[0].fill, "toself");
  assertEquals((fig.data[1] as Any).y, [6, 4, 3]);
  assertEquals(axisTitle(fig, "yaxis"), "layers");
  assertThrows(
    () => intervalChart([{ name: "bad", x: [0, 1], mean: [1], lo: [1], hi: [1] }]),
    RangeError,
    '"bad"',
  );
});
