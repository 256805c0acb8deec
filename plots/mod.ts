/**
 * Charts as plain Plotly JSON (`{data, layout}`) and ways to show them: self-contained
 * HTML ({@linkcode toHtml}, plotly.js inlined), Jupyter display bundles
 * ({@linkcode display}) and PNG through headless Chromium ({@linkcode renderFigurePng},
 * {@linkcode renderPng}).
 *
 * Importing this module loads the 4.8 MB plotly.js source (for the HTML); code that only
 * builds figures can import `plots/charts.ts` instead.
 *
 * @example
 * ```ts
 * import { display, frontierChart, toHtml } from "./mod.ts";
 * const fig = frontierChart([
 *   { name: "full", speedup: 1, quality: 31.2, metric: "BLEU" },
 *   { name: "linear", speedup: 2.1, quality: 29.8, metric: "BLEU" },
 * ]);
 * await display(fig); // draws in a Deno Jupyter notebook, no-op elsewhere
 * await Deno.writeTextFile("reports/frontier.html", toHtml(fig, { title: "Frontier" }));
 * ```
 * @module
 */
export {
  baseLayout,
  checkFinite,
  type Figure,
  type Layout,
  summarizeFigure,
  type Trace,
} from "./figure.ts";
export {
  budgetChart,
  type BudgetSeries,
  type ChartOptions,
  frontierChart,
  type FrontierPoint,
  type FrontierReference,
  type GapSeries,
  intervalChart,
  type IntervalSeries,
  labelsOverlap,
  lossCurveChart,
  type LossSeries,
  nllGapChart,
  oracleDepthChart,
  paretoFront,
} from "./charts.ts";
export { type LensChartOptions, type LensData, logitLensChart, plotlyLabel } from "./lens.ts";
export {
  type HtmlOptions,
  PLOTLY_FILE,
  PLOTLY_VERSION,
  plotlyBundle,
  scriptJson,
  toHtml,
  toHtmlFragment,
} from "./html.ts";
export { display, type DisplayBundle, displayBundle, PLOTLY_MIME } from "./display.ts";
export { type PngOptions, renderFigurePng, renderPng } from "./png.ts";
export { type NotebookSetup, notebookSetup } from "./notebook.ts";
