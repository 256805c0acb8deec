/**
 * Plain Plotly figures: `{data, layout}` objects that serialise to the JSON Plotly.js,
 * Jupyter's `application/vnd.plotly.v1+json` renderer and plotly.py all read. No Plotly
 * code is needed to build them.
 *
 * @example
 * ```ts
 * import { type Figure, summarizeFigure } from "./figure.ts";
 * const fig: Figure = { data: [{ type: "scatter", x: [1, 2], y: [3, 4] }], layout: {} };
 * console.log(summarizeFigure(fig)); // "figure: 1 trace (scatter, 2 points)"
 * ```
 * @module
 */

/** One Plotly trace (`type`, `x`, `y`, `name`, `mode`, ...), as Plotly.js takes it. */
export type Trace = Record<string, unknown>;

/** A Plotly layout (`title`, `xaxis`, `yaxis`, `shapes`, ...). */
export type Layout = Record<string, unknown>;

/** A Plotly figure: JSON-serialisable traces and layout. */
export interface Figure {
  /** The traces, drawn in order. */
  data: Trace[];
  /** The layout. */
  layout: Layout;
}

/**
 * The shared look of every chart here: white template, axis titles, legend below.
 *
 * @param title chart title
 * @param xTitle x-axis title
 * @param yTitle y-axis title
 * @returns a layout to extend
 * @example
 * ```ts
 * import { baseLayout } from "./figure.ts";
 * const layout = { ...baseLayout("Loss", "step", "loss"), showlegend: true };
 * ```
 */
export function baseLayout(title: string, xTitle: string, yTitle: string): Layout {
  return {
    title: { text: title, x: 0.5, xanchor: "center", y: 0.97, yanchor: "top" },
    template: "plotly_white",
    font: { family: "Helvetica, Arial, sans-serif", size: 13 },
    margin: { l: 70, r: 30, t: 90, b: 60 },
    xaxis: { title: { text: xTitle }, zeroline: false, automargin: true },
    yaxis: { title: { text: yTitle }, zeroline: false, automargin: true },
    // One row above the plot area, under the title: never collides with the x-axis title.
    legend: { orientation: "h", x: 0, xanchor: "left", y: 1.02, yanchor: "bottom" },
    hovermode: "closest",
  };
}

/** Reads a title that may be a string or `{text}`. */
function titleText(t: unknown): string | undefined {
  if (typeof t === "string") return t;
  if (t && typeof t === "object" && typeof (t as { text?: unknown }).text === "string") {
    return (t as { text: string }).text;
  }
  return undefined;
}

/**
 * A one-line text summary of a figure (its title, axis titles, traces and point counts),
 * used as the `text/plain` fallback of notebook output.
 *
 * @param fig the figure
 * @returns e.g. `Budget per position: 2 traces (scatter "linear", 40 points; ...); x: ...`
 * @example
 * ```ts
 * import { summarizeFigure } from "./figure.ts";
 * console.log(summarizeFigure({ data: [], layout: { title: { text: "T" } } }));
 * ```
 */
export function summarizeFigure(fig: Figure): string {
  const title = titleText(fig.layout.title) ?? "figure";
  const traces = fig.data.map((t) => {
    const n = Array.isArray(t.y) ? t.y.length : Array.isArray(t.z) ? t.z.length : 0;
    const name = typeof t.name === "string" ? ` "${t.name}"` : "";
    return `${t.type ?? "scatter"}${name}, ${n} points`;
  });
  const axis = (a: unknown) => titleText((a as { title?: unknown } | undefined)?.title);
  const xs = axis(fig.layout.xaxis);
  const ys = axis(fig.layout.yaxis);
  const axes = xs || ys ? `; x: ${xs ?? "-"}, y: ${ys ?? "-"}` : "";
  const s = fig.data.length === 1 ? "" : "s";
  return `${title}: ${fig.data.length} trace${s} (${traces.join("; ")})${axes}`;
}

/**
 * Throws unless every value is a finite number, naming the chart, the series and the
 * index at fault.
 *
 * @param values the numbers to check
 * @param what how to name them in the error, e.g. `budgetChart: series "linear" budgets`
 * @example
 * ```ts
 * import { checkFinite } from "./figure.ts";
 * checkFinite([1, 2, 3], "gaps"); // passes; [1, NaN] would throw "gaps[1] is NaN ..."
 * ```
 */
export function checkFinite(values: readonly number[], what: string): void {
  if (!Array.isArray(values)) throw new TypeError(`${what} is not an array`);
  values.forEach((v, i) => {
    if (typeof v !== "number" || !Number.isFinite(v)) {
      throw new RangeError(`${what}[${i}] is ${String(v)}, expected a finite number`);
    }
  });
}
