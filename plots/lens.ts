/**
 * The logit-lens chart: a heatmap of layers against sequence columns, coloured by the
 * top-1 probability (or the entropy) of each layer's readout, with the top-1 token written
 * in each cell (token text escaped, so `</s>` shows as written, not as markup) and the
 * layers a column skipped drawn as grey cells marked `skip`. Built from {@linkcode LensData} (plain arrays), so it does not depend on
 * a backend.
 *
 * @example
 * ```ts
 * import { logitLensChart } from "./lens.ts";
 * const fig = logitLensChart({
 *   columns: ["</s>", "name"],
 *   top1: [["the", "["], ["The", "["]],
 *   top1Prob: [[0.2, 0.5], [0.6, 0.9]],
 *   entropy: [[4, 2], [2, 0.5]],
 * });
 * console.log(fig.data[0].type); // "heatmap"
 * ```
 * @module
 */
import { baseLayout, checkFinite, type Figure } from "./figure.ts";

/** What the lens chart shows: `[layer][column]` arrays, layer 0 = decoder layer 1. */
export interface LensData {
  /** A label per column, e.g. the token held there. */
  columns: string[];
  /** Top-1 token text after each layer at each column. */
  top1: string[][];
  /** Its probability. */
  top1Prob: number[][];
  /** Entropy of the readout, nats. */
  entropy: number[][];
  /** Column where the generated tokens start (`P`), drawn as a line; optional. */
  promptLength?: number;
  /**
   * `active[l][c]`: whether column `c` ran decoder layer `l + 1` under the plan; a skipped
   * layer is the identity, so its cell repeats the last active layer's readout and is
   * drawn grey, marked `skip`. Optional (default: every layer active).
   */
  active?: boolean[][];
}

/**
 * Token text made safe for Plotly labels, which read a subset of HTML: `&`, `<` and `>`
 * become entities (so `</s>` is shown, not taken for a tag), control characters and
 * newlines their escapes (`\n`).
 *
 * @param text a token's text
 * @returns the label
 * @example
 * ```ts
 * import { plotlyLabel } from "./lens.ts";
 * plotlyLabel("</s>"); // "&lt;/s&gt;"
 * ```
 */
export function plotlyLabel(text: string): string {
  return JSON.stringify(text).slice(1, -1).replaceAll('\\"', '"')
    .replaceAll("&", "&amp;").replaceAll("<", "&lt;").replaceAll(">", "&gt;");
}

/** Options of {@linkcode logitLensChart}. */
export interface LensChartOptions {
  /** Colour by top-1 probability (default) or entropy. */
  color?: "prob" | "entropy";
  /** Chart title. */
  title?: string;
}

/**
 * A logit-lens heatmap: x = columns, y = decoder layers `1 .. L`, colour = top-1
 * probability or entropy, text = top-1 token.
 *
 * @throws RangeError when the arrays' shapes disagree or a value is not finite
 * @example
 * ```ts
 * import { logitLensChart } from "./lens.ts";
 * const fig = logitLensChart(
 *   { columns: ["a"], top1: [["b"]], top1Prob: [[0.5]], entropy: [[1]] },
 *   { color: "entropy" },
 * );
 * ```
 */
export function logitLensChart(data: LensData, opts: LensChartOptions = {}): Figure {
  const color = opts.color ?? "prob";
  const L = data.top1.length;
  const C = data.columns.length;
  if (L === 0 || C === 0) throw new RangeError("logitLensChart: no layers or no columns");
  const tables: [string, readonly (readonly unknown[])[]][] = [
    ["top1", data.top1],
    ["top1Prob", data.top1Prob],
    ["entropy", data.entropy],
    ...(data.active ? [["active", data.active] as [string, boolean[][]]] : []),
  ];
  for (const [name, arr] of tables) {
    if (arr.length !== L) {
      throw new RangeError(`logitLensChart: ${name} has ${arr.length} layers, top1 has ${L}`);
    }
    arr.forEach((row, l) => {
      if (row.length !== C) {
        throw new RangeError(
          `logitLensChart: ${name}[${l}] has ${row.length} columns, expected ${C}`,
        );
      }
      if (name !== "top1" && name !== "active") {
        checkFinite(row as number[], `logitLensChart: ${name}[${l}]`);
      }
    });
  }
  const on = (l: number, c: number) => data.active?.[l][c] ?? true;
  // skipped cells have no colour (the grey background shows) and read "skip"
  const z = (color === "prob" ? data.top1Prob : data.entropy)
    .map((r, l) => r.map((v, c) => on(l, c) ? v : null));
  const text = data.top1.map((r, l) => r.map((t, c) => on(l, c) ? plotlyLabel(t) : "skip"));
  // Column labels must be unique for a categorical axis: number them.
  const x = data.columns.map((t, c) => `${c}:${plotlyLabel(t)}`);
  const y = Array.from({ length: L }, (_, l) => l + 1);
  const layout = baseLayout(
    opts.title ??
      `Logit lens: top-1 token per layer (colour: ${
        color === "prob" ? "top-1 probability" : "entropy, nats"
      })`,
    "column: token held",
    "decoder layer",
  );
  const shapes = data.promptLength !== undefined && data.promptLength > 0 &&
      data.promptLength < C
    ? [{
      type: "line",
      xref: "x",
      x0: data.promptLength - 1.5,
      x1: data.promptLength - 1.5,
      yref: "paper",
      y0: 0,
      y1: 1,
      line: { dash: "dot", color: "#444", width: 1 },
    }]
    : [];
  return {
    data: [{
      type: "heatmap",
      x,
      y,
      z,
      text,
      texttemplate: "%{text}",
      textfont: { size: 9 },
      colorscale: color === "prob" ? "Viridis" : "Viridis",
      reversescale: color === "entropy",
      zmin: color === "prob" ? 0 : undefined,
      zmax: color === "prob" ? 1 : undefined,
      colorbar: { title: { text: color === "prob" ? "top-1 p" : "entropy" } },
      hovertemplate: "column %{x}<br>layer %{y}<br>top-1 %{text}<br>" +
        (color === "prob" ? "p" : "H") + " = %{z:.3f}<extra></extra>",
    }],
    layout: {
      ...layout,
      xaxis: { ...(layout.xaxis as object), type: "category", tickangle: -60 },
      yaxis: { ...(layout.yaxis as object), dtick: 1 },
      shapes,
      plot_bgcolor: "#d9d9d9",
      margin: { l: 70, r: 30, t: 90, b: 120 },
    },
  };
}
