/**
 * Self-contained HTML for Plotly figures, with plotly.js (4.8 MB, v4.1.2) inlined so the
 * page works offline. This is the only module that imports the bundle; import the chart
 * builders from `charts.ts` alone to avoid loading it.
 *
 * @example
 * ```ts
 * import { toHtml } from "./html.ts";
 * const html = toHtml({ data: [{ type: "scatter", y: [1, 3, 2] }], layout: {} }, { title: "t" });
 * await Deno.writeTextFile("reports/t.html", html);
 * ```
 * @module
 */
import plotlySource from "plotly.js-dist-min/plotly.min.js" with { type: "text" };
import type { Figure, Layout } from "./figure.ts";

/**
 * The plotly.js version inlined by {@linkcode toHtml}.
 *
 * @example
 * ```ts
 * import { PLOTLY_VERSION } from "./html.ts";
 * console.log(PLOTLY_VERSION); // "4.1.2"
 * ```
 */
export const PLOTLY_VERSION = "4.1.2";

/** Options of {@linkcode toHtml} and {@linkcode toHtmlFragment}. */
export interface HtmlOptions {
  /** Page title (also the chart's title when the figure has none). */
  title?: string;
  /**
   * `"inline"` (default) embeds plotly.js; `"cdn"` loads it from cdn.plot.ly instead
   * (small files, needs the network when viewed); `"file"` loads {@linkcode PLOTLY_FILE}
   * from the page's own folder (small files, offline: a report folder holds that file
   * once, written from {@linkcode plotlyBundle}, for all its charts).
   */
  plotlyJs?: "inline" | "cdn" | "file";
  /** CSS height of a fluid chart, default `"600px"` (fragment) or `"100vh"` (page). */
  height?: string;
  /**
   * A fixed chart size in CSS pixels instead of filling the page (used for PNGs:
   * headless Chromium lays pages out in a smaller viewport than the screenshot).
   */
  size?: { width: number; height: number };
}

/** The plotly.js source, with `</script` made safe for an inline script element. */
/** The file name of plotly.js beside charts written with `plotlyJs: "file"`. */
export const PLOTLY_FILE = "plotly.min.js";

/**
 * The plotly.js bundle (about 4.8 MB), to write once into a report folder as
 * {@linkcode PLOTLY_FILE} beside charts written with `plotlyJs: "file"`.
 *
 * @returns the bundle's source text
 * @example
 * ```ts
 * import { PLOTLY_FILE, plotlyBundle, toHtml } from "./html.ts";
 * const files = {
 *   [PLOTLY_FILE]: plotlyBundle(),
 *   "a.html": toHtml({ data: [{ type: "scatter", y: [1, 2] }], layout: {} }, { plotlyJs: "file" }),
 * };
 * console.log(Object.keys(files).length); // 2
 * ```
 */
export function plotlyBundle(): string {
  return plotlySource;
}

function safeBundle(): string {
  return plotlySource.replace(/<\/(script)/gi, "<\\/$1");
}

/**
 * JSON that may sit inside a `<script>` element: no `<`, U+2028 or U+2029 left raw.
 *
 * @param value any JSON-serialisable value
 * @returns its JSON text, safe to inline
 * @example
 * ```ts
 * import { scriptJson } from "./html.ts";
 * console.log(scriptJson({ t: "</script>" })); // {"t":"\u003c/script>"}
 * ```
 */
export function scriptJson(value: unknown): string {
  return JSON.stringify(value).replace(/</g, "\\u003c").replace(/\u2028/g, "\\u2028")
    .replace(/\u2029/g, "\\u2029");
}

function escapeHtml(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(
    /"/g,
    "&quot;",
  );
}

function plotlyScript(mode: "inline" | "cdn" | "file"): string {
  if (mode === "file") return `<script src="${PLOTLY_FILE}" charset="utf-8"></script>`;
  if (mode === "cdn") {
    return `<script src="https://cdn.plot.ly/plotly-${PLOTLY_VERSION}.min.js" charset="utf-8"></script>`;
  }
  // Loaded once per page even when several fragments carry it.
  return `<script>if (typeof window.Plotly === "undefined") {\n${safeBundle()}\n}</script>`;
}

function plotLayout(fig: Figure, opts: HtmlOptions): Layout {
  const layout: Layout = { autosize: true, ...fig.layout };
  if (layout.title === undefined && opts.title) layout.title = { text: opts.title };
  if (opts.size) {
    layout.autosize = false;
    layout.width = opts.size.width;
    layout.height = opts.size.height;
  }
  return layout;
}

function divStyle(opts: HtmlOptions, fluidHeight: string): string {
  const s = opts.size;
  return s
    ? `width:${Number(s.width)}px;height:${Number(s.height)}px;`
    : `width:100%;height:${escapeHtml(opts.height ?? fluidHeight)};`;
}

function newPlotScript(divId: string, fig: Figure, opts: HtmlOptions): string {
  // A fixed size is for pictures: no responsive resizing, no toolbar in the shot.
  const config = opts.size
    ? { responsive: false, displaylogo: false, displayModeBar: false }
    : { responsive: true, displaylogo: false };
  return `<script>(function () {
  var fig = ${scriptJson({ data: fig.data, layout: plotLayout(fig, opts) })};
  Plotly.newPlot(${scriptJson(divId)}, fig.data, fig.layout, ${scriptJson(config)});
})();</script>`;
}

/**
 * An HTML fragment (a `div` and scripts) that draws the figure, for notebook output or
 * embedding in a larger page. plotly.js is inlined unless `plotlyJs: "cdn"`.
 *
 * @param fig the figure
 * @param opts see {@linkcode HtmlOptions}
 * @returns the fragment
 * @example
 * ```ts
 * import { toHtmlFragment } from "./html.ts";
 * const frag = toHtmlFragment({ data: [], layout: {} }, { plotlyJs: "cdn" });
 * ```
 */
export function toHtmlFragment(fig: Figure, opts: HtmlOptions = {}): string {
  const id = `plot-${crypto.randomUUID()}`;
  return `<div id="${id}" style="${divStyle(opts, "600px")}"></div>\n` +
    `${plotlyScript(opts.plotlyJs ?? "inline")}\n${newPlotScript(id, fig, opts)}\n`;
}

/**
 * A complete, self-contained HTML page drawing the figure; plotly.js is inlined so the
 * file opens offline (about 4.8 MB).
 *
 * @param fig the figure
 * @param opts see {@linkcode HtmlOptions}
 * @returns the HTML document
 * @example
 * ```ts
 * import { toHtml } from "./html.ts";
 * import { lossCurveChart } from "./charts.ts";
 * const html = toHtml(lossCurveChart([0, 1], [{ name: "train", values: [3, 2] }]), {
 *   title: "Loss",
 * });
 * ```
 */
export function toHtml(fig: Figure, opts: HtmlOptions = {}): string {
  const title = escapeHtml(opts.title ?? "skipdecode figure");
  const id = "plot";
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${title}</title>
<style>html, body { margin: 0; padding: 0; background: #fff; }</style>
${plotlyScript(opts.plotlyJs ?? "inline")}
</head>
<body>
<div id="${id}" style="${divStyle(opts, "100vh")}"></div>
${newPlotScript(id, fig, opts)}
</body>
</html>
`;
}
