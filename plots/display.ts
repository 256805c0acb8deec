/**
 * Showing figures in a Deno Jupyter notebook: a display bundle with the Plotly MIME type
 * (rendered by JupyterLab's Plotly extension), an HTML fallback with plotly.js inlined
 * (VS Code, plain JupyterLab, nbconvert HTML) and a text summary.
 *
 * @example
 * ```ts
 * import { display } from "./display.ts";
 * import { budgetChart } from "./charts.ts";
 * await display(budgetChart([{ name: "constant(6)", budgets: [6, 6, 6] }], { layers: 12 }));
 * ```
 * @module
 */
import { type Figure, summarizeFigure } from "./figure.ts";
import { type HtmlOptions, toHtmlFragment } from "./html.ts";

/**
 * The MIME type of Plotly figure JSON in Jupyter.
 *
 * @example
 * ```ts
 * import { displayBundle, PLOTLY_MIME } from "./display.ts";
 * const fig = displayBundle({ data: [], layout: {} })[PLOTLY_MIME];
 * ```
 */
export const PLOTLY_MIME = "application/vnd.plotly.v1+json";

/** A Jupyter display bundle: MIME type to content. */
export interface DisplayBundle {
  /** The figure itself, for Plotly-aware front ends. */
  "application/vnd.plotly.v1+json": Figure;
  /** A self-contained HTML fragment drawing the figure. */
  "text/html": string;
  /** A one-line text summary. */
  "text/plain": string;
}

/**
 * Builds the display bundle of a figure.
 *
 * @param fig the figure
 * @param opts HTML options (title, `plotlyJs: "cdn"` for smaller notebooks, height)
 * @returns the bundle, ready for `Deno.jupyter.display(bundle, { raw: true })`
 * @example
 * ```ts
 * import { displayBundle } from "./display.ts";
 * const b = displayBundle({ data: [], layout: {} });
 * console.log(Object.keys(b));
 * ```
 */
export function displayBundle(fig: Figure, opts: HtmlOptions = {}): DisplayBundle {
  return {
    [PLOTLY_MIME]: fig,
    "text/html": toHtmlFragment(fig, opts),
    "text/plain": summarizeFigure(fig),
  } as DisplayBundle;
}

type JupyterNs = { display(obj: unknown, opts: { raw: boolean }): Promise<void> };

/** `Deno.jupyter`, or `undefined` outside the kernel (where reading it throws). */
function jupyterNs(): JupyterNs | undefined {
  try {
    const j = (Deno as unknown as { jupyter?: JupyterNs }).jupyter;
    return j && typeof j.display === "function" ? j : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Displays a figure when running inside the Deno Jupyter kernel (`Deno.jupyter` exists
 * there only); elsewhere it displays nothing. Either way it returns the bundle.
 * Remember to `await` it in a cell.
 *
 * @param fig the figure
 * @param opts HTML options, see {@linkcode displayBundle}
 * @returns the display bundle
 * @example
 * ```ts
 * import { display } from "./display.ts";
 * await display({ data: [{ type: "scatter", y: [1, 2] }], layout: {} });
 * ```
 */
export async function display(fig: Figure, opts: HtmlOptions = {}): Promise<DisplayBundle> {
  const bundle = displayBundle(fig, opts);
  const jupyter = jupyterNs();
  if (jupyter) {
    await jupyter.display(bundle, { raw: true });
  }
  return bundle;
}
