/**
 * Charts and report folders of a sweep: the budget per position of each policy, quality
 * against speedup (the frontier, `full` at 1x), the per-position NLL gap to the full model
 * and the oracle-depth distribution, written as self-contained HTML (and PNG when headless
 * Chromium is installed) next to a Markdown report, the table as JSON and the generations.
 *
 * @example
 * ```ts
 * import { sweepFigures, writeSweepReport } from "./report.ts";
 * // result: a SweepResult from runSweep
 * // const figs = sweepFigures(result);              // Plotly figures, e.g. for display()
 * // const files = await writeSweepReport(result, "reports/sweep");
 * ```
 * @module
 */
import {
  budgetChart,
  frontierChart,
  type GapSeries,
  nllGapChart,
  oracleDepthChart,
} from "../plots/charts.ts";
import type { Figure } from "../plots/figure.ts";
import { PLOTLY_FILE, plotlyBundle, toHtml } from "../plots/html.ts";
import { renderFigurePng } from "../plots/png.ts";
import { labelPolicy, parsePolicy } from "../schedule/mod.ts";
import { type SweepResult, sweepToJson, sweepToMarkdown } from "./sweep.ts";
import { OutputFolder } from "../io/output.ts";
import {
  buildManifest,
  ITEMS_CSV_FILE,
  type ManifestInput,
  manifestJson,
  RUN_MANIFEST_FILE,
  toCsv,
} from "./manifest.ts";
import { sentenceBleu } from "../eval/bleu.ts";
import { rougeLMulti } from "../eval/rouge.ts";

/** Which quality figure the frontier plots. */
export type FrontierMetric = "bleu" | "rougeL" | "nll" | "agreement";

/** Which speedup the frontier plots. */
export type FrontierSpeedup = "layer" | "flop" | "measured";

/** Options of {@linkcode sweepFigures}. */
export interface SweepFigureOptions {
  /** Frontier y axis (default `"bleu"`). */
  metric?: FrontierMetric;
  /** Frontier x axis (default `"layer"`, the paper's headline speedup). */
  speedup?: FrontierSpeedup;
  /**
   * Positions whose NLL (or oracle depth) is averaged over fewer items are left out of the
   * gap (and oracle) chart; default: 10% of the items, at least 3 (at most all of them).
   */
  minItemsPerPosition?: number;
}

/** The charts of a sweep; the last two only when NLL or the oracle was computed. */
export interface SweepFigures {
  /** Layer budget per generated position, one line per policy. */
  budgets: Figure;
  /** Quality against speedup, `full` at 1x. */
  frontier: Figure;
  /** Per-position teacher-forced NLL gap to `full`. */
  nllGap?: Figure;
  /** Oracle depth by generated position. */
  oracleDepth?: Figure;
}

/**
 * A short label of a policy for charts: `linear 12→4 w1 H24`, `power 12→2 w1 α1 τ4`,
 * `early-exit linear 10→2 H24`, `... decay` for prompt decay. Custom policies keep their
 * name.
 *
 * @param policy a policy's command-line form
 * @returns the label
 * @example
 * ```ts
 * import { policyLabel } from "./report.ts";
 * policyLabel("linear:max=12,min=4,warmup=1,horizon=24"); // "linear 12→4 w1 H24"
 * ```
 */
export function policyLabel(policy: string): string {
  try {
    return labelPolicy(parsePolicy(policy)); // from the policy's descriptor (schedule/)
  } catch {
    return policy; // a custom policy's name
  }
}

const METRIC_NAMES: Record<FrontierMetric, string> = {
  bleu: "BLEU",
  rougeL: "ROUGE-L",
  nll: "NLL (nats/token)",
  agreement: "agreement with full",
};

/** Makes room above the plot for a legend of many entries (the legend sits under the title). */
function roomForLegend(fig: Figure): Figure {
  const rows = Math.ceil(fig.data.filter((t) => t.showlegend !== false).length / 4);
  if (rows <= 1) return fig;
  const margin = (fig.layout.margin ?? {}) as Record<string, number>;
  fig.layout.margin = { ...margin, t: (margin.t ?? 90) + 22 * (rows - 1) };
  return fig;
}

/**
 * Builds the sweep's charts with `plots/` (see {@linkcode SweepFigures}).
 *
 * @param result a sweep result
 * @param options frontier axes and the gap chart's cut-off
 * @returns the figures
 * @example
 * ```ts
 * import { sweepFigures } from "./report.ts";
 * // const { frontier } = sweepFigures(result, { metric: "rougeL", speedup: "flop" });
 * ```
 */
export function sweepFigures(result: SweepResult, options: SweepFigureOptions = {}): SweepFigures {
  const metric = options.metric ?? "bleu";
  const speedup = options.speedup ?? "layer";
  const L = result.model.layers;
  const budgets = budgetChart(
    result.budgets.map((b) => ({ name: policyLabel(b.policy), budgets: b.budgets })),
    {
      layers: L,
      title: `Layer budget per generated position (mean over the items' batch plans; L = ${L})`,
    },
  );
  // Early-exit baselines dotted: they often share a SkipDecode policy's budgets.
  budgets.data.forEach((t, k) => {
    if (result.budgets[k].policy.startsWith("earlyexit:")) {
      t.line = { ...(t.line as object), dash: "dot" };
    }
  });
  const rows = result.rows.filter((r) => metric !== "nll" || r.nll !== null);
  const frontier = frontierChart(
    rows.map((r) => ({
      name: policyLabel(r.policy),
      speedup: speedup === "layer"
        ? r.layerSpeedup
        : speedup === "flop"
        ? r.flopSpeedup
        : r.measuredSpeedup,
      quality: metric === "nll"
        ? r.nll!
        : metric === "rougeL"
        ? r.rougeL
        : metric === "bleu"
        ? r.bleu
        : r.agreement,
      metric: METRIC_NAMES[metric],
      ...(metric === "bleu" ? { qualityCI: r.bleuCI } : {}),
      ...(metric === "rougeL" ? { qualityCI: r.rougeLCI } : {}),
      ...(speedup === "layer" ? { speedupCI: r.layerSpeedupCI } : {}),
    })),
    {
      higherIsBetter: metric !== "nll",
      ...(result.oracle && speedup === "layer"
        ? {
          // the bound is decoded on the oracle items only: when those are a subset, it is
          // drawn with full's figure on the same subset (an open star), and says so
          reference: {
            name: `best monotone schedule (oracle bound, ${result.oracle.depths.length} of ` +
              `${result.items} items)`,
            speedup: result.oracle.boundLayerSpeedup,
            quality: metric === "bleu"
              ? result.oracle.boundDecode.bleu
              : metric === "agreement"
              ? result.oracle.boundDecode.agreement
              : undefined,
            ...(metric === "bleu" && result.oracle.depths.length < result.items
              ? { baseline: result.oracle.boundDecode.fullBleu }
              : {}),
          },
        }
        : {}),
      speedupLabel: `${speedup === "layer" ? "layer" : speedup === "flop" ? "FLOP" : "measured"} ` +
        `speedup over the full model`,
      title: `${METRIC_NAMES[metric]} against ${speedup} speedup (${result.items} items)`,
    },
  );
  const figs: SweepFigures = { budgets: roomForLegend(budgets), frontier };
  const full = result.positionNll.find((p) => p.policy === "full");
  if (full && result.positionNll.length > 1) {
    const minItems = options.minItemsPerPosition ??
      Math.min(result.items, Math.max(3, Math.ceil(result.items * 0.1)));
    const series: GapSeries[] = result.positionNll.filter((p) => p.policy !== "full").map((p) => {
      const gap: number[] = [];
      for (let j = 0; j < p.nll.length && j < full.nll.length; j++) {
        if (p.counts[j] < minItems) break;
        gap.push(p.nll[j] - full.nll[j]);
      }
      return { name: policyLabel(p.policy), gap };
    });
    figs.nllGap = roomForLegend(nllGapChart(series, {
      title:
        `Teacher-forced NLL gap to the full model per position (positions with ≥ ${minItems} items)`,
    }));
  }
  if (result.oracle && result.oracle.depths.length > 0) {
    const o = result.oracle;
    const minItems = options.minItemsPerPosition ??
      Math.min(o.depths.length, Math.max(3, Math.ceil(o.depths.length * 0.1)));
    const byPos = o.byPosition.filter((ds) => ds.length >= minItems);
    figs.oracleDepth = oracleDepthChart(byPos, {
      layers: o.layers,
      title:
        `Oracle depth by position (SkipDecode sets, warm-up ${o.warmup}; ${o.depths.length} items)`,
    });
  }
  return figs;
}

/** Options of {@linkcode writeSweepReport}. */
export interface ReportOptions extends SweepFigureOptions {
  /** Report title (default "SkipDecode sweep"). */
  title?: string;
  /** Markdown paragraphs placed under the title (e.g. where the model came from). */
  intro?: string;
  /** Render PNGs with headless Chromium: `"auto"` (default) when it is installed. */
  png?: boolean | "auto";
  /** Receives one-line notes (PNG trouble). Default: stderr. */
  onNote?: (note: string) => void;
  /** Sample outputs shown in the report (default 3). */
  samples?: number;
  /**
   * The data file and whether it is held out from the model's training (said at the top
   * of the report; `undefined`: not known).
   */
  data?: { file: string; heldOut?: boolean; why?: string };
  /**
   * The run's provenance: with it the folder also gets `manifest.json` (end time: when the
   * report is written) and `items.csv`.
   */
  manifest?: ManifestInput;
  /** A complete command that reruns the report: shown in its Reproduce section. */
  reproduce?: string;
}

/** Files written by {@linkcode writeSweepReport}, relative to the folder. */
export interface ReportFiles {
  /** The Markdown report. */
  report: string;
  /** The table as JSON. */
  json: string;
  /** Chart name to HTML file. */
  html: Record<string, string>;
  /** Chart name to PNG file (empty without Chromium). */
  png: Record<string, string>;
  /** One JSON line per policy and item. */
  generations: string;
  /** `manifest.json` and `items.csv`, when a manifest was given. */
  provenance?: { manifest: string; items: string };
}

/** The columns of a sweep's `items.csv`, in order. */
export const SWEEP_ITEM_COLUMNS = [
  "policy",
  "item",
  "input",
  "prompt",
  "refs",
  "output",
  "finish",
  "length",
  "layers",
  "mean_layers",
  "bleu",
  "rouge_l",
  "nll",
  "same_as_full",
] as const;

/**
 * One row per policy x item of a sweep, with every per-item figure: the output and why it
 * stopped, its length in tokens (EOS included), active layers summed over its tokens and
 * their mean per token, sentence BLEU (sacreBLEU's sentence defaults, 0-100) and ROUGE-L F
 * against the item's references, the teacher-forced NLL (nats per token) of its first
 * reference when the sweep computed one per item, and whether it equals `full`'s output.
 * `refs` is a JSON list.
 *
 * @param result the sweep result
 * @param items the sweep's items (prompt, references, input)
 * @returns the rows, policies in table order, items in input order
 * @example
 * ```ts
 * import { sweepItemRows, SWEEP_ITEM_COLUMNS } from "./report.ts";
 * import { toCsv } from "./manifest.ts";
 * // const csv = toCsv(SWEEP_ITEM_COLUMNS, sweepItemRows(result, items));
 * ```
 */
export function sweepItemRows(
  result: SweepResult,
  items: readonly { prompt: string; refs: string[]; input?: string }[],
): Record<string, unknown>[] {
  const full = result.generations.find((g) => g.policy === "full") ?? result.generations[0];
  const rows: Record<string, unknown>[] = [];
  for (const g of result.generations) {
    const nll = result.nllItems.find((n) => n.policy === g.policy)?.perToken;
    const perItem = nll && nll.length === items.length ? nll : undefined;
    g.outputs.forEach((o, i) => {
      const it = items[i];
      const t = perItem?.[i];
      rows.push({
        policy: g.policy,
        item: i,
        input: it?.input ?? "",
        prompt: it?.prompt ?? "",
        refs: it ? JSON.stringify(it.refs) : "",
        output: o.text,
        finish: o.finish,
        length: o.ids.length,
        layers: o.layers,
        mean_layers: o.layers !== undefined && o.ids.length > 0
          ? o.layers / o.ids.length
          : undefined,
        bleu: it ? sentenceBleu(o.text, it.refs).score : undefined,
        rouge_l: it ? rougeLMulti(o.text, it.refs).fmeasure : undefined,
        nll: t && t.length > 0 ? t.reduce((a, b) => a + b, 0) / t.length : undefined,
        same_as_full: full.outputs[i] !== undefined &&
          full.outputs[i].ids.join(",") === o.ids.join(","),
      });
    });
  }
  return rows;
}

const CHART_FILES: Record<keyof SweepFigures, string> = {
  budgets: "budgets",
  frontier: "frontier",
  nllGap: "nll_gap",
  oracleDepth: "oracle_depth",
};

/**
 * Writes a sweep's report folder: `report.md` (settings, table, charts, sample outputs),
 * `sweep.json`, `budgets.html`, `frontier.html`, `nll_gap.html`, `oracle_depth.html`
 * (the last two when computed), their PNGs when Chromium is installed, and
 * `generations.jsonl`. The files are written as a unit ({@linkcode OutputFolder.writeSet}):
 * an interrupt leaves the previous report whole, and an older run's charts that this run
 * does not make are removed.
 *
 * @param result a sweep result
 * @param dir the folder (created when missing, locked while writing), or a folder the
 *   caller already holds
 * @param options title, intro, PNG, frontier axes
 * @param items the sweep's items, to put prompts and references in `generations.jsonl`
 * @returns the files written
 * @example
 * ```ts
 * import { writeSweepReport } from "./report.ts";
 * // const files = await writeSweepReport(result, "reports/demo", { title: "Demo" }, items);
 * ```
 */
export async function writeSweepReport(
  result: SweepResult,
  dir: string | OutputFolder,
  options: ReportOptions = {},
  items?: readonly { prompt: string; refs: string[] }[],
): Promise<ReportFiles> {
  const note = options.onNote ?? ((n: string) => console.error(`note: ${n}`));
  const folder = typeof dir === "string" ? OutputFolder.open(dir) : dir;
  const stage = folder.staging();
  try {
    const figs = sweepFigures(result, options);
    const files: ReportFiles = {
      report: "report.md",
      json: "sweep.json",
      html: {},
      png: {},
      generations: "generations.jsonl",
    };
    const set: Record<string, string> = {};
    const charts = await writeCharts(
      (Object.entries(figs) as [keyof SweepFigures, Figure | undefined][])
        .filter((e): e is [keyof SweepFigures, Figure] => !!e[1])
        .map(([name, fig]) => [CHART_FILES[name], fig]),
      set,
      stage,
      { png: options.png ?? "auto", width: 1000, height: 620, note },
    );
    for (const name of Object.keys(figs) as (keyof SweepFigures)[]) {
      const base = CHART_FILES[name];
      if (charts.html.includes(`${base}.html`)) files.html[name] = `${base}.html`;
      if (charts.png.includes(`${base}.png`)) files.png[name] = `${base}.png`;
    }
    set["sweep.json"] = JSON.stringify(sweepToJson(result), null, 2) + "\n";
    const lines: string[] = [];
    result.generations.forEach((g) => {
      g.outputs.forEach((o, i) => {
        lines.push(JSON.stringify({
          policy: g.policy,
          item: i,
          ...(items ? { prompt: items[i].prompt, refs: items[i].refs } : {}),
          text: o.text,
          finish: o.finish,
          ids: o.ids,
        }));
      });
    });
    set["generations.jsonl"] = lines.join("\n") + "\n";
    if (options.manifest) {
      files.provenance = { manifest: RUN_MANIFEST_FILE, items: ITEMS_CSV_FILE };
      set[ITEMS_CSV_FILE] = toCsv(SWEEP_ITEM_COLUMNS, sweepItemRows(result, items ?? []));
      set[RUN_MANIFEST_FILE] = manifestJson(buildManifest(options.manifest));
    }
    set["report.md"] = reportMarkdown(result, files, options, items);
    folder.writeSet(set, stage);
    return files;
  } finally {
    if (typeof dir === "string") folder.close();
  }
}

const CHART_TITLES: Record<keyof SweepFigures, string> = {
  budgets: "Layer budget per generated position",
  frontier: "Quality against speedup",
  nllGap: "Teacher-forced NLL gap to the full model, per position",
  oracleDepth: "Oracle depth by position",
};

function reportMarkdown(
  result: SweepResult,
  files: ReportFiles,
  options: ReportOptions,
  items?: readonly { prompt: string; refs: string[] }[],
): string {
  const out: string[] = [`# ${options.title ?? "SkipDecode sweep"}`, ""];
  if (options.intro) out.push(options.intro.trim(), "");
  const m = result.model;
  if (options.data) {
    const d = options.data;
    out.push(
      `- Data: \`${d.file}\` — ` +
        (d.heldOut === true
          ? "**held out** (no item was seen in training)"
          : d.heldOut === false
          ? "**not held out**: the model was trained on this data, so its figures flatter it"
          : "held out: unknown") +
        (d.why ? ` (${d.why})` : ""),
    );
  }
  out.push(
    `- Model: \`${m.source}\` (${m.layers} layers, hidden ${m.hiddenSize}, ` +
      `${(m.params / 1e6).toFixed(1)} M parameters), backend \`${result.backend}\``,
    `- ${result.items} items, at most ${result.maxNewTokens} new tokens, batches of ` +
      `${result.batchSize}, greedy decoding`,
    `- Run ${result.startedAt}, ${(result.wallMs / 1000).toFixed(1)} s` +
      (result.cacheHits ? ` (${result.cacheHits} cached results reused)` : ""),
    "",
    "## Results",
    "",
    sweepToMarkdown(result),
    "Layer speedup is the paper's headline figure (Σ L / Σ active layers over the generated " +
      "tokens); the fixed-token speedups count each policy's plan on the full model's own " +
      "outputs, the same tokens for every policy; FLOP speedup counts the LM head and attention too, which is what wall time can " +
      "reach; measured speedup is `full`'s decode wall time per step over the policy's " +
      "(same batches and backend; a step is one generated column of a batch), timed in one " +
      "warmed-up pass with the policies interleaved batch by batch; the bracket is its " +
      "spread over batches.",
    "",
    "## Charts",
    "",
  );
  for (const name of Object.keys(files.html) as (keyof SweepFigures)[]) {
    out.push(`### ${CHART_TITLES[name]}`, "");
    if (files.png[name]) out.push(`![${CHART_TITLES[name]}](${files.png[name]})`, "");
    out.push(`Interactive: [${files.html[name]}](${files.html[name]})`, "");
  }
  if (result.oracle) {
    const o = result.oracle;
    out.push(
      `Oracle depth: mean ${o.meanDepth.toFixed(2)} of ${o.layers} layers over ` +
        `${o.depths.flat().length} positions of ${o.depths.length} full-model outputs ` +
        `(smallest SkipDecode budget with warm-up ${o.warmup} whose greedy token equals the ` +
        `full model's; ${o.unmatched} positions unmatched even at full depth).`,
      "",
    );
  }
  const samples = Math.min(options.samples ?? 3, result.items);
  if (samples > 0) {
    out.push("## Sample outputs", "");
    for (let i = 0; i < samples; i++) {
      if (items) {
        out.push(`**Prompt ${i}:** \`${items[i].prompt.trim()}\``, "");
        out.push(`- reference: ${items[i].refs[0]}`);
      } else out.push(`**Item ${i}**`, "");
      for (const g of result.generations) {
        out.push(`- \`${policyLabel(g.policy)}\`: ${g.outputs[i].text.trim() || "(empty)"}`);
      }
      out.push("");
    }
  }
  out.push(
    "## Files",
    "",
    `- [${files.json}](${files.json}): the table as JSON`,
    `- [${files.generations}](${files.generations}): every output, one JSON line per policy ` +
      `and item`,
    ...(files.provenance
      ? [
        `- [${files.provenance.items}](${files.provenance.items}): one row per policy and item ` +
        `with its per-item figures (BLEU, ROUGE-L, NLL, layers, length); ` +
        `\`pandas.read_csv("${files.provenance.items}")\``,
        `- [${files.provenance.manifest}](${files.provenance.manifest}): command line, ` +
        `configuration, toolkit version and commit, model and data hashes, backend, times`,
      ]
      : []),
    "",
  );
  if (options.reproduce) {
    out.push("## Reproduce", "", "```sh", options.reproduce, "```", "");
  }
  return out.join("\n");
}

/**
 * Writes a report's charts into its file set: each figure as `<base>.html` (beside one shared
 * `plotly.min.js`) and, unless `png` is `false`, as `<base>.png` rendered into the staging
 * folder with headless Chromium. Without Chromium the PNGs are left out (a note when `png` is
 * `true`); a PNG that fails is a note, and no more are tried.
 *
 * @param charts `[file base, figure]` pairs, in order
 * @param set the report set's text files (name -> contents), added to
 * @param stage the staging folder the PNGs are rendered into
 * @param o PNG mode (`true`, `false`, `"auto"`), picture size, where notes go
 * @returns the HTML and PNG file names written
 * @example
 * ```ts
 * import { writeCharts } from "./report.ts";
 * import type { Figure } from "../plots/mod.ts";
 * declare const fig: Figure;
 * const set: Record<string, string> = {};
 * await writeCharts([["frontier", fig]], set, "/tmp/stage", { png: false, width: 900, height: 600, note: console.error });
 * ```
 */
export async function writeCharts(
  charts: readonly (readonly [string, Figure])[],
  set: Record<string, string>,
  stage: string,
  o: { png: boolean | "auto"; width: number; height: number; note: (n: string) => void },
): Promise<{ html: string[]; png: string[] }> {
  const html: string[] = [], png: string[] = [];
  let mode = o.png;
  for (const [base, fig] of charts) {
    const title = ((fig.layout.title as { text?: string })?.text) ?? base;
    set[`${base}.html`] = toHtml(fig, { title, plotlyJs: "file" });
    set[PLOTLY_FILE] ??= plotlyBundle(); // one copy for every chart of the report
    html.push(`${base}.html`);
    if (mode === false) continue;
    try {
      const ok = await renderFigurePng(fig, `${stage}/${base}.png`, {
        title,
        width: o.width,
        height: o.height,
      });
      if (ok) png.push(`${base}.png`);
      else {
        if (mode === true) o.note("chromium is not installed: no PNG pictures");
        mode = false;
      }
    } catch (e) {
      o.note(`no PNG for ${base}: ${(e as Error).message.split("\n")[0]}`);
      mode = false;
    }
  }
  return { html, png };
}
