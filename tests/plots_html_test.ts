// Tests of plots/html.ts and plots/display.ts: self-contained HTML (plotly.js inlined,
// figure JSON embedded, safe escaping) and Jupyter display bundles.
import { assert, assertEquals, assertStringIncludes } from "@std/assert";
import { budgetChart } from "../plots/charts.ts";
import {
  PLOTLY_FILE,
  PLOTLY_VERSION,
  plotlyBundle,
  scriptJson,
  toHtml,
  toHtmlFragment,
} from "../plots/html.ts";
import { display, displayBundle, PLOTLY_MIME } from "../plots/display.ts";
import type { Figure } from "../plots/figure.ts";

const FIG = budgetChart([{ name: "linear", budgets: [12, 8, 4] }], { layers: 12 });

/** The figure JSON embedded in a page: the argument of the first `var fig = ...;`. */
function embeddedFigure(html: string): Figure {
  const m = html.match(/var fig = (.*);\n/);
  assert(m, "no embedded figure");
  return JSON.parse(m[1]);
}

Deno.test("toHtml plotlyJs file: a small page loading plotly.min.js from its own folder", () => {
  const html = toHtml(FIG, { title: "b", plotlyJs: "file" });
  assert(html.length < 20_000, `page is ${html.length} chars: bundle inlined?`);
  assertStringIncludes(html, `<script src="${PLOTLY_FILE}" charset="utf-8"></script>`);
  assert(!/src="(https?:)?\/\//.test(html), "nothing from the network");
  assertEquals(embeddedFigure(html).data, FIG.data);
  assertStringIncludes(plotlyBundle(), `plotly.js v${PLOTLY_VERSION}`);
  assert(plotlyBundle().length > 4_000_000);
});

Deno.test("toHtml: a complete page with plotly.js inlined and the figure JSON", () => {
  const html = toHtml(FIG, { title: "Budgets <1>" });
  assert(html.startsWith("<!DOCTYPE html>"));
  assertStringIncludes(html, `plotly.js v${PLOTLY_VERSION}`); // the bundle's banner
  assert(html.length > 4_000_000, `page is only ${html.length} chars: bundle missing?`);
  assertStringIncludes(html, "<title>Budgets &lt;1&gt;</title>");
  assert(!html.includes("<script src="), "the page must not load scripts from the network");
  const fig = embeddedFigure(html);
  assertEquals(fig.data, FIG.data);
  // The figure's own layout is kept; the page only adds autosize.
  assertEquals(fig.layout.title, FIG.layout.title);
  assertEquals(fig.layout.autosize, true);
  assertStringIncludes(html, 'Plotly.newPlot("plot", fig.data, fig.layout');
});

Deno.test("toHtml: text that could close the script element is escaped", () => {
  const evil: Figure = {
    data: [{ type: "scatter", name: "</script><b>x</b>", y: [1] }],
    layout: {},
  };
  const html = toHtml(evil, { plotlyJs: "cdn" });
  // Only the page's own two script elements (plotly.js from the CDN, the plot) close.
  assertEquals(html.split("</script>").length - 1, 2);
  assertEquals(embeddedFigure(html).data[0].name, "</script><b>x</b>");
  assertEquals(scriptJson("a</b>\u2028"), '"a\\u003c/b>\\u2028"');
  // Without a figure title the page title is used as the chart title.
  assertEquals(embeddedFigure(toHtml(evil, { title: "T", plotlyJs: "cdn" })).layout.title, {
    text: "T",
  });
});

Deno.test("toHtml: fixed size for pictures, cdn option for small files", () => {
  const html = toHtml(FIG, { size: { width: 800, height: 500 }, plotlyJs: "cdn" });
  assert(html.length < 20_000, `cdn page is ${html.length} chars`);
  assertStringIncludes(html, `https://cdn.plot.ly/plotly-${PLOTLY_VERSION}.min.js`);
  assertStringIncludes(html, "width:800px;height:500px;");
  const fig = embeddedFigure(html);
  assertEquals([fig.layout.width, fig.layout.height, fig.layout.autosize], [800, 500, false]);
  assertStringIncludes(html, '"displayModeBar":false');
});

Deno.test("toHtmlFragment: unique div ids, bundle guarded to load once", () => {
  const a = toHtmlFragment(FIG);
  const b = toHtmlFragment(FIG);
  const id = (s: string) => s.match(/<div id="([^"]+)"/)![1];
  assert(id(a) !== id(b), "two fragments on one page need different ids");
  assertStringIncludes(a, `Plotly.newPlot(${JSON.stringify(id(a))}`);
  assertStringIncludes(a, 'if (typeof window.Plotly === "undefined")');
  assert(!a.includes("<html"), "a fragment is not a page");
});

Deno.test("displayBundle: the three MIME types", () => {
  const b = displayBundle(FIG, { plotlyJs: "cdn" });
  assertEquals(Object.keys(b).sort(), [PLOTLY_MIME, "text/html", "text/plain"].sort());
  assertEquals(PLOTLY_MIME, "application/vnd.plotly.v1+json");
  assertEquals(b[PLOTLY_MIME], FIG);
  assertStringIncludes(b["text/html"], "Plotly.newPlot(");
  assertStringIncludes(b["text/plain"], "Layer budget per generated position");
  // JSON round trip: what the kernel sends must be plain JSON.
  assertEquals(JSON.parse(JSON.stringify(b)), b);
});

Deno.test("display: no-op outside the kernel, sends the bundle raw inside it", async () => {
  // Outside `deno jupyter`, reading Deno.jupyter throws; display must not.
  const b = await display(FIG, { plotlyJs: "cdn" });
  assertEquals(b[PLOTLY_MIME], FIG);
  // Inside the kernel: stand in for Deno.jupyter (its setter is public) and check the call.
  const calls: [unknown, unknown][] = [];
  const d = Deno as unknown as { jupyter: unknown };
  d.jupyter = {
    display: (obj: unknown, opts: unknown) => {
      calls.push([obj, opts]);
      return Promise.resolve();
    },
  };
  try {
    const sent = await display(FIG, { plotlyJs: "cdn" });
    assertEquals(calls.length, 1);
    assertEquals(calls[0][0], sent);
    assertEquals(calls[0][1], { raw: true });
  } finally {
    d.jupyter = undefined;
  }
});
