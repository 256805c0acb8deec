/**
 * The toolkit's charts as plain Plotly figures: layer budget per position, the
 * quality/speedup frontier, the per-position NLL gap to the full model, the oracle-depth
 * distribution, and training loss curves. Generated positions are docs/DESIGN.md §3's generated
 * token `i` (0 = the first generated token, produced by column `P - 1 + i`).
 *
 * @example
 * ```ts
 * import { budgetChart } from "./charts.ts";
 * const fig = budgetChart([{ name: "linear", budgets: [12, 10, 8, 6, 4] }], { layers: 12 });
 * console.log(fig.data.length); // 1
 * ```
 * @module
 */
import { baseLayout, checkFinite, type Figure, type Trace } from "./figure.ts";

/** Options shared by the charts. */
export interface ChartOptions {
  /** Chart title (each chart has a default). */
  title?: string;
}

/** One policy's budget per generated position. */
export interface BudgetSeries {
  /** Policy name, e.g. `"linear:max=12,min=4"`. */
  name: string;
  /** Active layers for generated token i = 0, 1, ... (integers in 1..layers). */
  budgets: number[];
}

const range = (n: number): number[] => Array.from({ length: n }, (_, i) => i);

function horizontalLine(y: number, dash: string, color = "#888"): Record<string, unknown> {
  return {
    type: "line",
    xref: "paper",
    x0: 0,
    x1: 1,
    yref: "y",
    y0: y,
    y1: y,
    line: { dash, color, width: 1 },
  };
}

/**
 * Layer budget per generated position, one step line per policy, with the full depth
 * `layers` as a dashed line.
 *
 * @param series one entry per policy
 * @param opts `layers` (the model's L) and an optional title
 * @returns the figure (x: generated token i, y: active layers)
 * @throws RangeError naming the series and index of a budget outside 1..layers
 * @example
 * ```ts
 * import { budgetChart } from "./charts.ts";
 * const fig = budgetChart(
 *   [{ name: "full", budgets: [12, 12, 12] }, { name: "constant(6)", budgets: [6, 6, 6] }],
 *   { layers: 12 },
 * );
 * ```
 */
export function budgetChart(
  series: readonly BudgetSeries[],
  opts: ChartOptions & { layers: number },
): Figure {
  const L = opts.layers;
  if (!Number.isInteger(L) || L < 1) {
    throw new RangeError(`budgetChart: layers must be a positive integer, got ${L}`);
  }
  const data: Trace[] = series.map((s) => {
    const what = `budgetChart: series "${s.name}" budgets`;
    checkFinite(s.budgets, what);
    s.budgets.forEach((b, j) => {
      if (b < 1 || b > L) throw new RangeError(`${what}[${j}] is ${b}, outside 1..${L}`);
    });
    return {
      type: "scatter",
      mode: "lines",
      name: s.name,
      x: range(s.budgets.length),
      y: [...s.budgets],
      line: { shape: "hv", width: 2 },
      hovertemplate: `${s.name}<br>i=%{x}<br>%{y} layers<extra></extra>`,
    };
  });
  const layout = baseLayout(
    opts.title ?? "Layer budget per generated position",
    "generated token i",
    "active layers",
  );
  return {
    data,
    layout: {
      ...layout,
      yaxis: {
        ...(layout.yaxis as object),
        range: [0, L + 0.5],
        dtick: L > 24 ? 4 : L > 12 ? 2 : 1,
      },
      shapes: [horizontalLine(L, "dash")],
      annotations: [{
        xref: "paper",
        x: 1,
        xanchor: "right",
        y: L,
        yanchor: "bottom",
        text: `full model (${L} layers)`,
        showarrow: false,
        font: { size: 11, color: "#666" },
      }],
    },
  };
}

/** One policy's place on the quality/speedup plane. */
export interface FrontierPoint {
  /** Policy name (the marker's label). */
  name: string;
  /** Speedup over the full model (1 for the full model itself). */
  speedup: number;
  /** Quality figure, e.g. BLEU 0-100 or ROUGE-L 0-1. */
  quality: number;
  /** What `quality` is, e.g. `"BLEU"`; every point must use the same metric. */
  metric: string;
  /** An interval of `quality` (e.g. a 95% bootstrap interval), drawn as an error bar. */
  qualityCI?: [number, number];
  /** An interval of `speedup`, drawn as a horizontal error bar. */
  speedupCI?: [number, number];
}

/** A reference point of the frontier chart (e.g. the best monotone schedule). */
export interface FrontierReference {
  /** Its label. */
  name: string;
  /** Its speedup (a dashed vertical line is drawn there). */
  speedup: number;
  /** Its quality, when known (a diamond marker). */
  quality?: number;
  /**
   * The full model's quality on the reference's own items, when those are a subset of the
   * points' items (e.g. the oracle subset): drawn as an open star at speedup 1 so that the
   * reference is read against it, not against the points' `full`.
   */
  baseline?: number;
}

/**
 * The points no other point beats on both speedup and quality (Pareto-optimal), sorted
 * by speedup. A point is dominated when another is at least as good on both axes and
 * strictly better on one; equal points are all kept.
 *
 * @param points candidate points
 * @param higherIsBetter whether larger quality is better (BLEU, ROUGE) or worse (NLL)
 * @returns the Pareto-optimal points, by increasing speedup
 * @example
 * ```ts
 * import { paretoFront } from "./charts.ts";
 * const front = paretoFront([
 *   { name: "full", speedup: 1, quality: 30, metric: "BLEU" },
 *   { name: "a", speedup: 2, quality: 25, metric: "BLEU" },
 *   { name: "b", speedup: 1.5, quality: 20, metric: "BLEU" }, // beaten by "a"
 * ]);
 * console.log(front.map((p) => p.name)); // ["full", "a"]
 * ```
 */
export function paretoFront(
  points: readonly FrontierPoint[],
  higherIsBetter = true,
): FrontierPoint[] {
  const q = (p: FrontierPoint) => (higherIsBetter ? p.quality : -p.quality);
  const front = points.filter((p) =>
    !points.some((o) =>
      o.speedup >= p.speedup && q(o) >= q(p) && (o.speedup > p.speedup || q(o) > q(p))
    )
  );
  return front.sort((a, b) => a.speedup - b.speedup || q(b) - q(a));
}

/**
 * Quality against speedup: one labelled marker per policy, the full model (speedup 1)
 * drawn as a star, and a line through the Pareto-optimal points.
 *
 * @param points one per policy, all with the same `metric`
 * @param opts title, `higherIsBetter` (default true), `speedupLabel` (x-axis title)
 * @returns the figure: trace 0 the policies (with error bars when the points have
 *   intervals), trace 1 the frontier, trace 2 the reference when given (then the full
 *   model on the reference's items when `baseline` is given); where labels beside the
 *   markers would overlap ({@linkcode labelsOverlap}), the points carry no visible label
 *   and one legend-only trace per point follows, in point order
 * @throws RangeError for a non-finite figure or mixed metrics, naming the point
 * @example
 * ```ts
 * import { frontierChart } from "./charts.ts";
 * const fig = frontierChart([
 *   { name: "full", speedup: 1, quality: 31.2, metric: "BLEU" },
 *   { name: "linear", speedup: 2.1, quality: 29.8, metric: "BLEU" },
 * ]);
 * ```
 */
export function frontierChart(
  points: readonly FrontierPoint[],
  opts: ChartOptions & {
    higherIsBetter?: boolean;
    speedupLabel?: string;
    reference?: FrontierReference;
  } = {},
): Figure {
  const metric = points[0]?.metric ?? "quality";
  const bar = (ci: [number, number] | undefined, v: number, side: 0 | 1) =>
    ci && Number.isFinite(ci[side]) ? Math.max(0, side ? ci[1] - v : v - ci[0]) : 0;
  const anyQ = points.some((p) => p.qualityCI), anyS = points.some((p) => p.speedupCI);
  points.forEach((p, i) => {
    const what = `frontierChart: point ${i} ("${p.name}")`;
    if (!Number.isFinite(p.speedup) || p.speedup <= 0) {
      throw new RangeError(`${what} has speedup ${p.speedup}, expected a positive number`);
    }
    if (!Number.isFinite(p.quality)) throw new RangeError(`${what} has quality ${p.quality}`);
    if (p.metric !== metric) {
      throw new RangeError(`${what} uses metric "${p.metric}" but point 0 uses "${metric}"`);
    }
  });
  const front = paretoFront(points, opts.higherIsBetter ?? true);
  const isFull = (p: FrontierPoint) => p.speedup === 1;
  // Explicit ranges with room for the labels above the markers (autorange ignores text).
  const pad = (lo: number, hi: number, below: number, above: number): number[] => {
    const span = hi - lo || Math.abs(hi) * 0.2 || 1;
    return [lo - below * span, hi + above * span];
  };
  const ref = opts.reference;
  const xs = points.flatMap((p) => [p.speedup, ...(p.speedupCI ?? [])]).concat([1])
    .concat(ref ? [ref.speedup] : []).filter(Number.isFinite);
  const ys = points.flatMap((p) => [p.quality, ...(p.qualityCI ?? [])])
    .concat(ref?.quality !== undefined ? [ref.quality] : [])
    .concat(ref?.baseline !== undefined ? [ref.baseline] : []).filter(Number.isFinite);
  const xRange = pad(Math.min(...xs), Math.max(...xs), 0.08, 0.12);
  const yRange = ys.length > 0 ? pad(Math.min(...ys), Math.max(...ys), 0.1, 0.18) : undefined;
  // Labels beside the markers only where none would overlap another; else a legend entry
  // per point (same colour and symbol), the names staying in the hover text.
  const legend = yRange !== undefined && labelsOverlap(points, xRange, yRange);
  const colour = (p: FrontierPoint, i: number) =>
    legend ? PALETTE[i % PALETTE.length] : front.includes(p) ? "#1f77b4" : "#aaaaaa";
  const symbol = (p: FrontierPoint, i: number) =>
    isFull(p)
      ? "star"
      : legend
      ? SYMBOLS[Math.floor(i / PALETTE.length) % SYMBOLS.length]
      : "circle";
  const data: Trace[] = [
    {
      type: "scatter",
      mode: legend ? "markers" : "markers+text",
      name: "policies",
      showlegend: false,
      x: points.map((p) => p.speedup),
      y: points.map((p) => p.quality),
      text: points.map((p) => p.name),
      ...(legend ? {} : { textposition: "top center" }),
      marker: {
        size: points.map((p) => (isFull(p) ? 16 : 11)),
        symbol: points.map(symbol),
        color: points.map(colour),
        line: { width: 1, color: "#333" },
      },
      hovertemplate: `%{text}<br>speedup %{x:.2f}x<br>${metric} %{y:.4g}<extra></extra>`,
      ...(anyQ
        ? {
          error_y: {
            type: "data",
            symmetric: false,
            array: points.map((p) => bar(p.qualityCI, p.quality, 1)),
            arrayminus: points.map((p) => bar(p.qualityCI, p.quality, 0)),
            color: "#666",
            thickness: 1,
            width: 4,
          },
        }
        : {}),
      ...(anyS
        ? {
          error_x: {
            type: "data",
            symmetric: false,
            array: points.map((p) => bar(p.speedupCI, p.speedup, 1)),
            arrayminus: points.map((p) => bar(p.speedupCI, p.speedup, 0)),
            color: "#999",
            thickness: 1,
            width: 3,
          },
        }
        : {}),
    },
    {
      type: "scatter",
      mode: "lines",
      name: "Pareto frontier",
      x: front.map((p) => p.speedup),
      y: front.map((p) => p.quality),
      text: front.map((p) => p.name),
      line: { shape: "linear", dash: "dot", color: "#1f77b4", width: 2 },
      hoverinfo: "skip",
    },
  ];
  const layout = baseLayout(
    opts.title ?? `${metric} against speedup`,
    opts.speedupLabel ?? "speedup over the full model",
    metric,
  );
  const shapes: Record<string, unknown>[] = [{
    type: "line",
    xref: "x",
    x0: 1,
    x1: 1,
    yref: "paper",
    y0: 0,
    y1: 1,
    line: { dash: "dot", color: "#bbb", width: 1 },
  }];
  if (ref) {
    if (!Number.isFinite(ref.speedup) || ref.speedup <= 0) {
      throw new RangeError(`frontierChart: reference "${ref.name}" has speedup ${ref.speedup}`);
    }
    shapes.push({
      type: "line",
      xref: "x",
      x0: ref.speedup,
      x1: ref.speedup,
      yref: "paper",
      y0: 0,
      y1: 1,
      line: { dash: "dash", color: "#d62728", width: 1 },
    });
    data.push({
      type: "scatter",
      mode: ref.quality !== undefined ? "markers" : "lines",
      name: ref.name,
      x: [ref.speedup],
      y: [ref.quality ?? null],
      marker: { size: 12, symbol: "diamond", color: "#d62728" },
      line: { dash: "dash", color: "#d62728" },
      hovertemplate: `${ref.name}<br>speedup %{x:.2f}x<extra></extra>`,
    });
    if (ref.baseline !== undefined) {
      if (!Number.isFinite(ref.baseline)) {
        throw new RangeError(`frontierChart: reference "${ref.name}" has baseline ${ref.baseline}`);
      }
      data.push({
        type: "scatter",
        mode: "markers",
        name: "full on the same items",
        x: [1],
        y: [ref.baseline],
        marker: { size: 14, symbol: "star-open", color: "#d62728" },
        hovertemplate: `full on the reference's items<br>%{y:.4g}<extra></extra>`,
      });
    }
  }
  if (legend) {
    // one legend entry per point (no marker of its own on the plot: trace 0 draws them)
    points.forEach((p, i) =>
      data.push({
        type: "scatter",
        mode: "markers",
        name: p.name,
        x: [null],
        y: [null],
        marker: { size: 11, symbol: symbol(p, i), color: colour(p, i) },
        hoverinfo: "skip",
      })
    );
  }
  return {
    data,
    layout: {
      ...layout,
      xaxis: {
        ...(layout.xaxis as object),
        ticksuffix: "x",
        range: xRange,
      },
      yaxis: {
        ...(layout.yaxis as object),
        ...(yRange ? { range: yRange } : {}),
      },
      shapes,
      ...(legend ? { legend: { orientation: "v", x: 1.02, xanchor: "left", y: 1 } } : {}),
    },
  };
}

/** Marker colours of the per-point legend (Plotly's default sequence). */
const PALETTE = [
  "#1f77b4",
  "#ff7f0e",
  "#2ca02c",
  "#9467bd",
  "#8c564b",
  "#e377c2",
  "#7f7f7f",
  "#bcbd22",
  "#17becf",
];
/** Marker symbols, one per round through the palette. */
const SYMBOLS = ["circle", "square", "triangle-up", "diamond-open", "cross"];

/**
 * Whether two points' labels, drawn centred above their markers, would overlap on a chart
 * of about 900 x 550 pixels with these axis ranges (about 7 pixels per character, 16 per
 * line): the frontier then names its points in a legend instead.
 *
 * @param points the labelled points
 * @param xRange the x axis range
 * @param yRange the y axis range
 * @returns true when some pair of labels overlaps
 * @example
 * ```ts
 * import { labelsOverlap } from "./charts.ts";
 * const p = (name: string, speedup: number, quality: number) =>
 *   ({ name, speedup, quality, metric: "BLEU" });
 * labelsOverlap([p("linear a", 2, 30), p("linear b", 2.05, 30.2)], [1, 3], [0, 40]); // true
 * ```
 */
export function labelsOverlap(
  points: readonly FrontierPoint[],
  xRange: readonly number[],
  yRange: readonly number[],
): boolean {
  const W = 800, H = 420; // plot area in pixels
  const px = (x: number) => ((x - xRange[0]) / (xRange[1] - xRange[0] || 1)) * W;
  const py = (y: number) => ((y - yRange[0]) / (yRange[1] - yRange[0] || 1)) * H;
  for (let a = 0; a < points.length; a++) {
    for (let b = a + 1; b < points.length; b++) {
      const wa = 7 * points[a].name.length, wb = 7 * points[b].name.length;
      const dx = Math.abs(px(points[a].speedup) - px(points[b].speedup));
      const dy = Math.abs(py(points[a].quality) - py(points[b].quality));
      if (dx < (wa + wb) / 2 && dy < 16) return true;
    }
  }
  return false;
}

/** One line with a 95% band of {@linkcode intervalChart}. */
export interface IntervalSeries {
  /** Legend name. */
  name: string;
  /** x values (e.g. generated index i). */
  x: number[];
  /** Means. */
  mean: number[];
  /** Lower ends of the intervals. */
  lo: number[];
  /** Upper ends of the intervals. */
  hi: number[];
}

/**
 * Lines with shaded intervals (e.g. oracle depth or NLL gap by position with bootstrap
 * intervals), one colour per series.
 *
 * @param series one entry per line; `x`, `mean`, `lo` and `hi` of equal length
 * @param opts title and axis titles
 * @returns the figure: per series, a band trace and a line trace
 * @throws RangeError naming a series whose arrays differ in length
 * @example
 * ```ts
 * import { intervalChart } from "./charts.ts";
 * const fig = intervalChart([{ name: "depth", x: [0, 1], mean: [6, 3], lo: [5, 2], hi: [7, 4] }]);
 * ```
 */
export function intervalChart(
  series: readonly IntervalSeries[],
  opts: ChartOptions & { xTitle?: string; yTitle?: string } = {},
): Figure {
  const colors = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2"];
  const data: Trace[] = [];
  series.forEach((s, k) => {
    const n = s.x.length;
    if (s.mean.length !== n || s.lo.length !== n || s.hi.length !== n) {
      throw new RangeError(`intervalChart: series "${s.name}" has arrays of different lengths`);
    }
    const c = colors[k % colors.length];
    data.push({
      type: "scatter",
      mode: "lines",
      name: `${s.name} (95% CI)`,
      x: [...s.x, ...[...s.x].reverse()],
      y: [...s.hi, ...[...s.lo].reverse()],
      fill: "toself",
      fillcolor: `${c}33`,
      line: { width: 0, color: c },
      hoverinfo: "skip",
      showlegend: false,
    });
    data.push({
      type: "scatter",
      mode: "lines+markers",
      name: s.name,
      x: [...s.x],
      y: [...s.mean],
      line: { color: c, width: 2 },
      marker: { size: 5, color: c },
    });
  });
  const layout = baseLayout(
    opts.title ?? "by position",
    opts.xTitle ?? "generated token index i",
    opts.yTitle ?? "value",
  );
  // Room above the plot for a legend of several rows (it sits under the title).
  const rows = Math.ceil(series.length / 3);
  const margin = (layout.margin ?? {}) as Record<string, number>;
  if (rows > 1) layout.margin = { ...margin, t: (margin.t ?? 90) + 22 * (rows - 1) };
  return { data, layout };
}

/** One policy's per-position NLL gap to the full model. */
export interface GapSeries {
  /** Policy name. */
  name: string;
  /** NLL(policy) - NLL(full) in nats, for generated token i = 0, 1, ... */
  gap: number[];
}

/**
 * Per-position NLL gap to the full model (teacher-forced), one line per policy, with the
 * zero line dashed.
 *
 * @param series one entry per policy
 * @param opts optional title
 * @returns the figure (x: generated token i, y: NLL gap in nats)
 * @example
 * ```ts
 * import { nllGapChart } from "./charts.ts";
 * const fig = nllGapChart([{ name: "linear", gap: [0.01, 0.05, 0.2] }]);
 * ```
 */
export function nllGapChart(series: readonly GapSeries[], opts: ChartOptions = {}): Figure {
  const data: Trace[] = series.map((s) => {
    checkFinite(s.gap, `nllGapChart: series "${s.name}" gap`);
    return {
      type: "scatter",
      mode: s.gap.length > 60 ? "lines" : "lines+markers",
      name: s.name,
      x: range(s.gap.length),
      y: [...s.gap],
      marker: { size: 5 },
      hovertemplate: `${s.name}<br>i=%{x}<br>gap %{y:.4f} nats<extra></extra>`,
    };
  });
  const layout = baseLayout(
    opts.title ?? "NLL gap to the full model per position",
    "generated token i",
    "NLL(policy) - NLL(full) (nats)",
  );
  return { data, layout: { ...layout, shapes: [horizontalLine(0, "dash")] } };
}

/**
 * Oracle depth (the smallest budget whose greedy token equals the full model's) by
 * generated position: a box per position plus the mean line (`kind: "box"`, default), or
 * a heatmap of the share of samples at each depth (`kind: "heatmap"`).
 *
 * @param depths per generated token i, the oracle depths observed there (one per
 *   sequence); an empty list leaves a gap
 * @param opts `layers` (L), optional `kind` and title
 * @returns the figure (x: generated token i, y: oracle depth in layers)
 * @throws RangeError naming the position of a depth outside 1..layers
 * @example
 * ```ts
 * import { oracleDepthChart } from "./charts.ts";
 * const fig = oracleDepthChart([[12, 10, 11], [8, 9], [4, 6, 5]], { layers: 12 });
 * ```
 */
export function oracleDepthChart(
  depths: readonly (readonly number[])[],
  opts: ChartOptions & { layers: number; kind?: "box" | "heatmap" },
): Figure {
  const L = opts.layers;
  if (!Number.isInteger(L) || L < 1) {
    throw new RangeError(`oracleDepthChart: layers must be a positive integer, got ${L}`);
  }
  depths.forEach((ds, j) => {
    checkFinite(ds as number[], `oracleDepthChart: depths at position ${j}`);
    ds.forEach((d) => {
      if (d < 1 || d > L) {
        throw new RangeError(`oracleDepthChart: depth ${d} at position ${j} is outside 1..${L}`);
      }
    });
  });
  const layout = baseLayout(
    opts.title ?? "Oracle depth by generated position",
    "generated token i",
    "oracle depth (layers)",
  );
  if ((opts.kind ?? "box") === "heatmap") {
    // z: [L rows (depth 1..L)][positions]: share of the samples at j with that depth.
    const z = range(L).map((d) =>
      depths.map((
        ds,
      ) => (ds.length === 0 ? null : ds.filter((x) => x === d + 1).length / ds.length))
    );
    return {
      data: [{
        type: "heatmap",
        name: "share of samples",
        x: range(depths.length),
        y: range(L).map((d) => d + 1),
        z,
        // White (no samples at that depth) to dark blue (all of them).
        colorscale: [[0, "#f7fbff"], [0.5, "#6baed6"], [1, "#08306b"]],
        zmin: 0,
        zmax: 1,
        colorbar: { title: { text: "share" } },
        hovertemplate: "i=%{x}<br>depth %{y}<br>share %{z:.2f}<extra></extra>",
      }],
      layout: { ...layout, yaxis: { ...(layout.yaxis as object), dtick: L > 24 ? 4 : 1 } },
    };
  }
  const xs: number[] = [];
  const ys: number[] = [];
  depths.forEach((ds, j) => {
    for (const d of ds) {
      xs.push(j);
      ys.push(d);
    }
  });
  const meanX: number[] = [];
  const meanY: number[] = [];
  depths.forEach((ds, j) => {
    if (ds.length > 0) {
      meanX.push(j);
      meanY.push(ds.reduce((s, d) => s + d, 0) / ds.length);
    }
  });
  return {
    data: [
      {
        type: "box",
        name: "oracle depth",
        x: xs,
        y: ys,
        boxpoints: false,
        marker: { color: "#1f77b4" },
        line: { width: 1 },
      },
      {
        type: "scatter",
        mode: "lines",
        name: "mean",
        x: meanX,
        y: meanY,
        line: { color: "#d62728", width: 2 },
      },
    ],
    layout: {
      ...layout,
      yaxis: { ...(layout.yaxis as object), range: [0, L + 0.5] },
      shapes: [horizontalLine(L, "dash")],
    },
  };
}

/** One training curve. */
export interface LossSeries {
  /** Curve name, e.g. `"train"` or `"eval (constant(6))"`. */
  name: string;
  /** One value per step; `null` or a non-finite value leaves a gap. */
  values: (number | null)[];
}

/**
 * Training loss against step, several curves on one axis.
 *
 * @param steps the step of each value (shared by every series)
 * @param series curves whose `values` align with `steps`
 * @param opts title, `logY` for a logarithmic loss axis, `yTitle` (default "loss")
 * @returns the figure (x: step, y: loss)
 * @throws RangeError naming a series whose length differs from `steps`
 * @example
 * ```ts
 * import { lossCurveChart } from "./charts.ts";
 * const fig = lossCurveChart([0, 100, 200], [{ name: "train", values: [5.1, 3.2, 2.7] }]);
 * ```
 */
export function lossCurveChart(
  steps: readonly number[],
  series: readonly LossSeries[],
  opts: ChartOptions & { logY?: boolean; yTitle?: string } = {},
): Figure {
  checkFinite(steps as number[], "lossCurveChart: steps");
  const data: Trace[] = series.map((s) => {
    if (s.values.length !== steps.length) {
      throw new RangeError(
        `lossCurveChart: series "${s.name}" has ${s.values.length} values for ${steps.length} steps`,
      );
    }
    return {
      type: "scatter",
      mode: steps.length > 60 ? "lines" : "lines+markers",
      name: s.name,
      x: [...steps],
      y: s.values.map((v) => (typeof v === "number" && Number.isFinite(v) ? v : null)),
      connectgaps: false,
      hovertemplate: `${s.name}<br>step %{x}<br>%{y:.4f}<extra></extra>`,
    };
  });
  const layout = baseLayout(opts.title ?? "Training loss", "step", opts.yTitle ?? "loss");
  return {
    data,
    layout: opts.logY ? { ...layout, yaxis: { ...(layout.yaxis as object), type: "log" } } : layout,
  };
}
