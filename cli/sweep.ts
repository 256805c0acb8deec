/**
 * `skipdecode sweep`: run a list of exit policies over E2E-style data and write the sweep
 * table (Markdown and JSON), its charts (HTML, PNG with Chromium) and the generations to a
 * report folder. Results are cached, so a rerun with the same inputs is quick.
 *
 * @example
 * ```sh
 * deno task skipdecode sweep --items 200 --policy full --policy linear:max=10,min=2,warmup=1,horizon=24
 * ```
 * @module
 */
import {
  backendOption,
  checkLength,
  type Command,
  intOption,
  MAX_BATCH,
  MAX_NEW_TOKENS,
  pngOption,
  UsageError,
} from "./command.ts";
import { checkOutputPath, OutputFolder } from "../eval/output.ts";
import { parsePolicy } from "../schedule/mod.ts";
import { loadModel } from "../decode/mod.ts";
import { loadE2eCsv } from "../eval/data.ts";
import { runSweep, type SweepItem, sweepItemsFromE2e, sweepToJson } from "../eval/sweep.ts";
import { type FrontierMetric, type FrontierSpeedup, writeSweepReport } from "../eval/report.ts";
import { E2E_DEVSET, exists, TINY_MODEL_DIR } from "./paths.ts";

/**
 * The default policies of a sweep or the demo for a model of `layers` layers and outputs
 * of about `horizon` tokens: `full`; linear decays at about 2x and 3x layer speedup with
 * one warm-up layer; a power law; the 2x linear decay with prompt decay; the early-exit
 * baseline with the 2x budgets. For 12 layers and horizon 24:
 * `linear:max=10,min=2,warmup=1,horizon=24`, `linear:max=6,min=2,warmup=1,horizon=24`,
 * `powerlaw:max=12,min=2,warmup=1,alpha=1,tau=4`, the first with `prompt=decay`, and
 * `earlyexit:linear:max=10,min=2,warmup=0,horizon=24`.
 *
 * @param layers decoder layers `L` (at least 3)
 * @param horizon the linear decays' horizon
 * @returns the policies' command-line forms, `full` first
 * @example
 * ```ts
 * import { defaultPolicies } from "./sweep.ts";
 * defaultPolicies(12, 24).length; // 6
 * ```
 */
export function defaultPolicies(layers: number, horizon: number): string[] {
  if (!Number.isInteger(layers) || layers < 3) {
    throw new RangeError(`defaultPolicies: layers must be an integer >= 3, got ${layers}`);
  }
  const min = 2;
  const two = Math.max(min, Math.min(layers, Math.round((layers * 10) / 12))); // mean ~ L/2
  const three = Math.max(min, Math.round(layers / 2)); // mean ~ L/3
  const lin = (max: number) => `linear:max=${max},min=${min},warmup=1,horizon=${horizon}`;
  return [
    "full",
    lin(two),
    lin(three),
    `powerlaw:max=${layers},min=${min},warmup=1,alpha=1,tau=4`,
    `${lin(two)},prompt=decay`,
    `earlyexit:linear:max=${two},min=${min},warmup=0,horizon=${horizon}`,
  ];
}

/**
 * Loads sweep items from an E2E-style CSV (grouped by `mr`), the first `count` of them.
 *
 * @param path the CSV (default: the devset the repository ships in `bundled/`)
 * @param count how many items (default all)
 * @param template prompt template (default `"{mr}\n"`)
 * @returns the items
 * @throws UsageError naming the file when it is missing
 * @example
 * ```ts
 * import { loadSweepItems } from "./sweep.ts";
 * const items = await loadSweepItems(undefined, 10);
 * ```
 */
export async function loadSweepItems(
  path: string | undefined,
  count?: number,
  template?: string,
): Promise<SweepItem[]> {
  const file = path ?? E2E_DEVSET;
  if (!exists(file)) {
    throw new UsageError(
      path
        ? `data file ${file} not found`
        : `the E2E devset ${file} is missing (it ships with the repository in bundled/; ` +
          `restore it from git) or pass --data FILE (a CSV with mr,ref columns)`,
    );
  }
  const all = await loadE2eCsv(file);
  return sweepItemsFromE2e(count === undefined ? all : all.slice(0, count), template);
}

/**
 * Reads a `--template` value (`\\n` is a newline): it must contain `{mr}`, else every
 * item would get the same prompt.
 *
 * @param text the option's text
 * @returns the template
 * @throws UsageError when it is empty or lacks `{mr}`
 * @example
 * ```ts
 * import { templateOption } from "./sweep.ts";
 * templateOption("Data: {mr}\\nText:"); // "Data: {mr}\nText:"
 * ```
 */
export function templateOption(text: string): string {
  const t = text.replaceAll("\\n", "\n");
  if (!/\{mr\}/.test(t.replaceAll("{{", ""))) {
    throw new UsageError(
      `--template must contain {mr} (the item's meaning representation), got ${
        JSON.stringify(text)
      }`,
    );
  }
  return t;
}

/** The `sweep` command. */
export const sweepCommand: Command = {
  name: "sweep",
  summary: "run several policies over E2E data: table, charts, generations",
  options: {
    model: {
      type: "string",
      value: "DIR|ORG/NAME",
      description: "checkpoint folder or hub id",
      default: TINY_MODEL_DIR,
    },
    policy: {
      type: "string",
      multiple: true,
      value: "SPEC",
      description: "a policy (full is always added); default: the demo's set",
    },
    data: {
      type: "string",
      value: "CSV",
      description: "E2E-style CSV with mr,ref columns (default: the bundled E2E devset)",
    },
    template: {
      type: "string",
      value: "TEXT",
      description: "prompt template ({mr}; \\n is a newline)",
      default: "{mr}\\n",
    },
    items: { type: "string", value: "N", description: "distinct MRs to use", default: "200" },
    "max-new-tokens": {
      type: "string",
      value: "N",
      description: "tokens to generate per prompt",
      default: "64",
    },
    "batch-size": { type: "string", value: "B", description: "rows per batch", default: "8" },
    backend: {
      type: "string",
      value: "auto|cpu|webgpu",
      description: "where to run",
      default: "auto",
    },
    nll: {
      type: "string",
      value: "first|all|none",
      description: "teacher-forced NLL of each item's first reference, all, or none",
      default: "first",
    },
    oracle: {
      type: "string",
      value: "N",
      description: "oracle depth of the full model's outputs on the first N items",
      default: "0",
    },
    metric: {
      type: "string",
      value: "bleu|rougeL|nll|agreement",
      description: "quality axis of the frontier chart",
      default: "bleu",
    },
    speedup: {
      type: "string",
      value: "layer|flop|measured",
      description: "speedup axis of the frontier chart",
      default: "layer",
    },
    out: {
      type: "string",
      value: "DIR",
      description: "report folder",
      default: "reports/sweep",
    },
    "cache-dir": {
      type: "string",
      value: "DIR",
      description: "result cache (default .cache/skipdecode or $SKIPDECODE_CACHE_DIR)",
    },
    cache: {
      type: "boolean",
      description: "reuse and store results in the cache (--no-cache: neither)",
      default: true,
    },
    png: {
      type: "boolean",
      description: "PNG pictures of the charts with Chromium (default: when this task may " +
        "run chromium and it is installed; --no-png: none)",
    },
    offline: { type: "boolean", description: "never use the network (also HF_HUB_OFFLINE=1)" },
    json: { type: "boolean", description: "print the table as JSON on stdout" },
  },
  async run(v) {
    // Every option is checked before any data, model or folder is touched.
    const backend = backendOption(v.backend);
    const nll = v.nll === "none" ? false : v.nll;
    if (nll !== false && nll !== "first" && nll !== "all") {
      throw new UsageError(`--nll must be first, all or none, got "${v.nll}"`);
    }
    const metric = v.metric as FrontierMetric;
    if (!["bleu", "rougeL", "nll", "agreement"].includes(metric)) {
      throw new UsageError(`--metric must be bleu, rougeL, nll or agreement, got "${metric}"`);
    }
    const speedup = v.speedup as FrontierSpeedup;
    if (!["layer", "flop", "measured"].includes(speedup)) {
      throw new UsageError(`--speedup must be layer, flop or measured, got "${speedup}"`);
    }
    const maxNewTokens = intOption(v, "max-new-tokens", 1, MAX_NEW_TOKENS)!;
    const count = intOption(v, "items", 1);
    const batchSize = intOption(v, "batch-size", 1, MAX_BATCH);
    const oracleItems = intOption(v, "oracle", 0)!;
    const template = templateOption(v.template as string);
    const png = pngOption(v.png);
    const out = v.out as string;
    checkOutputPath(out, "--out");
    const items = await loadSweepItems(v.data as string | undefined, count, template);
    const model = await loadModel(v.model as string, {
      backend,
      offline: v.offline ? true : undefined,
    });
    let folder: OutputFolder | undefined;
    try {
      checkLength(model, maxNewTokens, items.map((it) => model.tokenizer.encode(it.prompt).length));
      const policies = (v.policy as string[] | undefined) ??
        defaultPolicies(model.config.numHiddenLayers, Math.min(24, maxNewTokens));
      const names = policies.map((p) => String(parsePolicy(p)));
      const dup = names.find((n, i) => names.indexOf(n) !== i);
      if (dup) throw new UsageError(`--policy ${dup} is given twice`);
      folder = OutputFolder.open(out, { option: "--out" });
      const result = await runSweep(model, items, policies, {
        maxNewTokens,
        batchSize,
        cacheDir: v.cache === false ? false : (v["cache-dir"] as string | undefined),
        nll,
        oracle: oracleItems > 0 ? { items: oracleItems, warmup: 1 } : false,
      });
      const files = await writeSweepReport(result, folder, {
        title: "SkipDecode policy sweep",
        png,
        metric,
        speedup,
      }, items);
      if (v.json) console.log(JSON.stringify(sweepToJson(result)));
      else {
        console.error(
          `wrote ${out}/${files.report} (${Object.keys(files.html).length} charts, ` +
            `${Object.keys(files.png).length} PNGs)`,
        );
      }
      return 0;
    } finally {
      folder?.close();
      model.dispose();
    }
  },
};
