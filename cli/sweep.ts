/**
 * `skipdecode sweep`: run a list of exit policies over E2E-style data and write the sweep
 * table (Markdown and JSON), its charts (HTML, PNG with Chromium) and the generations to a
 * report folder. Results are cached, so a rerun with the same inputs is quick. With
 * `--shard I/N` (or in a Slurm array task or a Kubernetes Indexed Job) it runs its share of
 * the work units into `--out` instead (`skipdecode merge` assembles them); `--slurm` writes
 * the job array's script (see `shard.ts`, `slurm.ts`).
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
import { applyTemplate, DataError, loadE2eCsv, readText } from "../eval/data.ts";
import { E2E_HELD_OUT } from "./heldout_text.ts";
import {
  runSweep,
  type SweepItem,
  sweepItemsFromE2e,
  type SweepResult,
  sweepToJson,
} from "../eval/sweep.ts";
import {
  compareDrafts,
  draftComparisonMarkdown,
  type DraftComparisonRow,
} from "../eval/speculative.ts";
import type { Model } from "../decode/mod.ts";
import { type FrontierMetric, type FrontierSpeedup, writeSweepReport } from "../eval/report.ts";
import { E2E_DEVSET, exists, SHARED_DIR, TINY_MODEL_DIR } from "./paths.ts";
import { SLURM_OPTIONS } from "./slurm.ts";
import { shardSettings, sweepShard, writeSlurmArray } from "./shard.ts";

/**
 * The data file of a sweep or the demo when none is given: the E2E test split part in
 * `bundled/` (no bundled model was trained on it) when present, else the devset the
 * repository ships (which the bundled models were trained on: not held out).
 *
 * @param path `--data`, when given
 * @returns the file
 * @example
 * ```ts
 * import { sweepDataFile } from "./sweep.ts";
 * sweepDataFile("my.csv"); // "my.csv"
 * ```
 */
export function sweepDataFile(path?: string): string {
  return path ?? (exists(E2E_HELD_OUT) ? E2E_HELD_OUT : E2E_DEVSET);
}

/**
 * Whether a data file is held out from the project's shared models' training: the E2E
 * test split part yes, the devset (bundled or shared) no, any other file unknown.
 *
 * @param file a data file
 * @returns the file, whether it is held out and why
 * @example
 * ```ts
 * import { dataHeldOut } from "./sweep.ts";
 * dataHeldOut("other.csv").heldOut; // undefined
 * ```
 */
export function dataHeldOut(file: string): { file: string; heldOut?: boolean; why?: string } {
  const name = file.split("/").pop();
  if (file === E2E_HELD_OUT || name === "testset-part2.csv") {
    return { file, heldOut: true, why: "E2E test split part 2: no bundled model saw it" };
  }
  if (file === E2E_DEVSET || file === `${SHARED_DIR}data/e2e/devset.csv` || name === "devset.csv") {
    return {
      file,
      heldOut: false,
      why: "the E2E devset: the bundled tiny models were trained on it",
    };
  }
  return { file };
}

/**
 * Reads sweep items from a JSONL file: one JSON object per line with `refs` (a non-empty
 * list of strings) and either `prompt` (used as is) or `mr` (filled into the template).
 * Blank lines are skipped.
 *
 * @param path the file
 * @param template prompt template for `mr` lines (default `"{mr}\n"`)
 * @returns the items
 * @throws DataError naming the file, line and field at fault
 * @example
 * ```ts
 * import { loadSweepJsonl } from "./sweep.ts";
 * // await loadSweepJsonl("items.jsonl"); // lines like {"mr": "name[X]", "refs": ["X."]}
 * ```
 */
export async function loadSweepJsonl(path: string, template = "{mr}\n"): Promise<SweepItem[]> {
  const text = await readText(path, "data file");
  const items: SweepItem[] = [];
  text.split("\n").forEach((line, i) => {
    if (line.trim() === "") return;
    const at = `${path}:${i + 1}`;
    let v: unknown;
    try {
      v = JSON.parse(line);
    } catch (e) {
      throw new DataError(`${at}: not JSON (${(e as Error).message})`);
    }
    if (typeof v !== "object" || v === null || Array.isArray(v)) {
      throw new DataError(`${at}: expected an object with "refs" and "prompt" or "mr"`);
    }
    const o = v as Record<string, unknown>;
    if (
      !Array.isArray(o.refs) || o.refs.length === 0 || !o.refs.every((r) => typeof r === "string")
    ) {
      throw new DataError(`${at}: "refs" must be a non-empty list of strings`);
    }
    let prompt: string;
    if (typeof o.prompt === "string") prompt = o.prompt;
    else if (typeof o.mr === "string") prompt = applyTemplate(template, { mr: o.mr });
    else throw new DataError(`${at}: needs a "prompt" or "mr" string`);
    items.push({ prompt, refs: o.refs as string[] });
  });
  if (items.length === 0) throw new DataError(`${path} holds no items`);
  return items;
}

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
 * Loads sweep items from an E2E-style CSV (grouped by `mr`) or a JSONL file
 * ({@linkcode loadSweepJsonl}), the first `count` of them.
 *
 * @param path the file (default {@linkcode sweepDataFile}: the held-out E2E test split part
 *   in `bundled/`, else the devset the repository ships there)
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
  const file = sweepDataFile(path);
  if (!exists(file)) {
    throw new UsageError(
      path
        ? `data file ${file} not found`
        : `the E2E devset ${file} is missing (it ships with the repository in bundled/; ` +
          `restore it from git) or pass --data FILE (a CSV with mr,ref columns)`,
    );
  }
  if (/\.jsonl$/i.test(file)) {
    const all = await loadSweepJsonl(file, template);
    return count === undefined ? all : all.slice(0, count);
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

/** `--speculative K[,K...]`: the draft lengths, each a whole number from 1 to 64. */
function speculativeKs(v: unknown): number[] | undefined {
  if (v === undefined) return undefined;
  const parts = String(v).split(",");
  const ks = parts.map((p) => /^[0-9]+$/.test(p.trim()) ? Number(p) : NaN);
  if (ks.some((k) => !Number.isInteger(k) || k < 1 || k > 64)) {
    throw new UsageError(
      `--speculative must be draft lengths K from 1 to 64, comma-separated, got "${v}"`,
    );
  }
  return [...new Set(ks)];
}

/**
 * The sweep's speculative rows: every non-full policy drafts at each K for the full model
 * (`compareDrafts` on the sweep's items, token limit and batch size, EOS ignored so every
 * draft sees the same positions); written as `speculative.json` and `speculative.md` beside
 * the report.
 */
async function speculativeSection(
  model: Model,
  items: readonly SweepItem[],
  policies: readonly string[],
  ks: number[],
  result: SweepResult,
  folder: OutputFolder,
): Promise<DraftComparisonRow[]> {
  const drafts = policies.filter((p) => parsePolicy(p).toJSON().kind !== "full");
  if (drafts.length === 0) {
    console.error("note: --speculative: every --policy is full, so there is no draft to run");
    return [];
  }
  const rows = await compareDrafts(
    model.backend,
    items.map((it) => model.tokenizer.encode(it.prompt)),
    { drafts, ks, maxNewTokens: result.maxNewTokens, batchSize: result.batchSize },
  );
  folder.write("speculative.json", JSON.stringify(rows, null, 2));
  folder.write(
    "speculative.md",
    `# Self-speculative decoding: the sweep's policies as drafts\n\n` +
      `${items.length} items, ${result.maxNewTokens} tokens each (EOS ignored), batch ` +
      `${result.batchSize}, on ${result.backend}; every output equals the full model's ` +
      `(lossless), so quality is full's. Draft cost: mean draft layers over L; a verification ` +
      `over K + 1 positions counts once per layer; FLOPs count every position's layers.\n\n` +
      `${draftComparisonMarkdown(rows)}\n`,
  );
  return rows;
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
      description: "E2E-style CSV with mr,ref columns, or JSONL with {mr or prompt, refs} " +
        "(default: the bundled held-out testset-part2.csv)",
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
    shard: {
      type: "string",
      value: "I/N",
      description: "run shard I of N of the work units into --out (merge them with " +
        "`skipdecode merge`); default: SLURM_ARRAY_TASK_ID/COUNT or JOB_COMPLETION_INDEX " +
        "when set",
    },
    speculative: {
      type: "string",
      value: "K[,K...]",
      description: "also run every non-full --policy as a self-speculative draft at each K " +
        "(outputs equal full's): acceptance, layer passes per token, FLOP ratio with 95% " +
        "intervals in speculative.md/.json (not sharded)",
    },
    "unit-items": {
      type: "string",
      value: "B",
      description: "items per work unit, a multiple of --batch-size (default 4 batches)",
    },
    ...SLURM_OPTIONS,
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
    const split = shardSettings(v, batchSize ?? 8);
    const ks = speculativeKs(v.speculative);
    if (ks && (split.shard || split.slurm)) {
      throw new UsageError("--speculative is not sharded: run it without --shard or --slurm");
    }
    if (split.slurm) {
      const data = sweepDataFile(v.data as string | undefined);
      if (!exists(data)) throw new UsageError(`data file ${data} not found`);
      return await writeSlurmArray(v, split, sweepCommand, { read: { data } });
    }
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
      const report = {
        title: "SkipDecode policy sweep",
        data: dataHeldOut(sweepDataFile(v.data as string | undefined)),
        metric,
        speedup,
      };
      if (split.shard) {
        return await sweepShard(model, items, policies, {
          out,
          shard: split.shard,
          unitItems: split.unitItems,
          maxNewTokens,
          batchSize: batchSize ?? 8,
          nll,
          oracle: oracleItems > 0 ? { items: oracleItems, warmup: 1 } : false,
          template,
          dataFile: sweepDataFile(v.data as string | undefined),
          report,
          json: Boolean(v.json),
        });
      }
      folder = OutputFolder.open(out, { option: "--out", owner: "sweep" });
      const result = await runSweep(model, items, policies, {
        maxNewTokens,
        batchSize,
        cacheDir: v.cache === false ? false : (v["cache-dir"] as string | undefined),
        nll,
        oracle: oracleItems > 0 ? { items: oracleItems, warmup: 1 } : false,
      });
      const files = await writeSweepReport(result, folder, { ...report, png }, items);
      const spec = ks ? await speculativeSection(model, items, policies, ks, result, folder) : [];
      if (v.json) {
        console.log(
          JSON.stringify({ ...sweepToJson(result), ...(ks ? { speculative: spec } : {}) }),
        );
      } else {
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
