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
import { checkLength, type Command, pngOption, UsageError } from "./command.ts";
import {
  BACKEND,
  BATCH_SIZE,
  CACHE,
  JSON_OUTPUT,
  MAX_NEW_TOKENS,
  MODEL,
  modelInfo,
  modelLabel,
  OFFLINE,
  OUT,
  POLICIES,
  policiesOption,
  POLICY_FILE,
  withDefault,
} from "./options.ts";
import type { BackendName } from "../backend/mod.ts";
import { checkOutputPath, OutputFolder } from "../io/output.ts";
import { parsePolicy, type Policy } from "../schedule/mod.ts";
import { loadModel } from "../decode/mod.ts";
import { applyTemplate, DataError, readText } from "../data/datasets.ts";
import {
  loadTable,
  type TableItem,
  tableItems,
  templatePlaceholders,
  truncateItems,
  type TruncateSide,
} from "../data/table.ts";
import { E2E_HELD_OUT } from "./heldout_text.ts";
import { runSweep, type SweepItem, type SweepResult, sweepToJson } from "../experiments/sweep.ts";
import {
  compareDrafts,
  draftComparisonMarkdown,
  type DraftComparisonRow,
} from "../experiments/speculative.ts";
import type { Model } from "../decode/mod.ts";
import {
  type FrontierMetric,
  type FrontierSpeedup,
  writeSweepReport,
} from "../experiments/report.ts";
import { E2E_DEVSET, exists, SHARED_DIR } from "../data/bundled.ts";
import { SLURM_OPTIONS } from "./slurm.ts";
import { reproduceCommand } from "../experiments/manifest.ts";
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

/** The data options of `sweep` (and of any command that reads items with {@linkcode loadSweepItems}). */
export const DATA_OPTIONS = {
  data: {
    kind: "path",
    value: "FILE|hf:ID",
    description: "items: a .csv, .tsv, .jsonl or .parquet file, or a Hugging Face dataset " +
      "split hf:OWNER/NAME[:CONFIG]:SPLIT (downloaded into the HF cache; --offline: cache " +
      "only); rows with the same input are one item with several references (default: " +
      "the bundled held-out testset-part2.csv)",
  },
  "input-column": {
    kind: "text",
    value: "NAME",
    description: "the column of the model's input (default: the first of mr, input, prompt, " +
      "article, document, text)",
  },
  "ref-column": {
    kind: "text",
    value: "NAME",
    description: "the column of the reference (a text or a list of texts; default: the " +
      "first of ref, refs, reference, references, highlights, summary, target)",
  },
  template: {
    kind: "text",
    value: "TEXT",
    description: "prompt template: {input} is the input column, {NAME} any column, \\n a " +
      "newline (default {input}\\n; a prompt column is used as is)",
  },
  truncate: {
    kind: "enum",
    choices: ["none", "left", "right"],
    description: "an input whose prompt does not fit the model's positions with " +
      "--max-new-tokens is an error (none), or is cut, keeping its start (right) or end (left)",
    default: "none",
  },
} as const;

/** Options of {@linkcode loadSweepItems}. */
export interface SweepDataOptions {
  /** The input column (see {@linkcode tableItems}). */
  inputColumn?: string;
  /** The reference column. */
  refColumn?: string;
  /** Never download an `hf:` dataset (default: `$HF_HUB_OFFLINE`). */
  offline?: boolean;
}

/**
 * Loads sweep items from a CSV, TSV, JSONL or Parquet file or an `hf:` dataset split
 * ({@linkcode loadTable}), grouped by input ({@linkcode tableItems}), the first `count`.
 *
 * @param path the file (default {@linkcode sweepDataFile}: the held-out E2E test split part
 *   in `bundled/`, else the devset the repository ships there)
 * @param count how many items (default all)
 * @param template prompt template (default `"{input}\n"`)
 * @param options the columns, offline mode
 * @returns the items, with `files`: the files read (for their hashes)
 * @throws UsageError naming the file when it is missing; DataError naming the file and the
 *   column, placeholder or row at fault
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
  options: SweepDataOptions = {},
): Promise<TableItem[] & { files: string[] }> {
  const file = sweepDataFile(path);
  if (!file.startsWith("hf:") && !exists(file)) {
    throw new UsageError(
      path
        ? `data file ${file} not found`
        : `the E2E devset ${file} is missing (it ships with the repository in bundled/; ` +
          `restore it from git) or pass --data FILE (a CSV with mr,ref columns)`,
    );
  }
  const table = await loadTable(file, { offline: options.offline });
  const all = tableItems(table, { ...options, template });
  return Object.assign(count === undefined ? all : all.slice(0, count), { files: table.files });
}

/**
 * Reads a `--template` value (`\\n` is a newline): it must contain a placeholder
 * (`{input}`, or a column name such as `{mr}`), else every item would get the same prompt;
 * the names are checked against the data's columns when it is read.
 *
 * @param text the option's text (undefined: the default)
 * @returns the template, or undefined for the default
 * @throws UsageError when it has no placeholder
 * @example
 * ```ts
 * import { templateOption } from "./sweep.ts";
 * templateOption("Data: {mr}\\nText:"); // "Data: {mr}\nText:"
 * ```
 */
export function templateOption(text: string | undefined): string | undefined {
  if (text === undefined) return undefined;
  const t = text.replaceAll("\\n", "\n");
  if (templatePlaceholders(t).length === 0) {
    throw new UsageError(
      `--template must contain {mr} or {input} (the item's input column) or another ` +
        `{COLUMN}, got ${JSON.stringify(text)}`,
    );
  }
  return t;
}

/**
 * Reads `--truncate`: `none`, `left` or `right`.
 *
 * @param v the option's value
 * @returns the side
 * @throws UsageError naming the option for another value
 * @example
 * ```ts
 * import { truncateOption } from "./sweep.ts";
 * truncateOption("left"); // "left"
 * ```
 */
export function truncateOption(v: unknown): TruncateSide {
  if (v === undefined || v === "none" || v === "left" || v === "right") {
    return (v ?? "none") as TruncateSide;
  }
  throw new UsageError(`--truncate must be none, left or right, got "${v}"`);
}

/**
 * Fits the items' prompts into the model's positions with `maxNewTokens` new tokens
 * ({@linkcode truncateItems}), saying on stderr how many were cut.
 *
 * @param model the model (positions and tokenizer)
 * @param items the items
 * @param maxNewTokens tokens to generate
 * @param side `--truncate`
 * @returns the items, cut where needed
 * @throws UsageError naming the first item that does not fit (side `none`)
 * @example
 * ```ts
 * // fitItems(model, items, 64, "left");
 * ```
 */
export function fitItems(
  model: {
    config: { maxPositionEmbeddings: number };
    tokenizer: { encode(t: string): number[]; decode(ids: number[]): string };
  },
  items: TableItem[],
  maxNewTokens: number,
  side: TruncateSide,
): TableItem[] {
  const fit = model.config.maxPositionEmbeddings - maxNewTokens + 1;
  if (fit < 2) return items; // checkLength says what is wrong
  try {
    const r = truncateItems(items, model.tokenizer, fit, side);
    if (r.truncated > 0) {
      console.error(
        `note: --truncate ${side}: cut the input of ${r.truncated} of ${items.length} items ` +
          `to fit ${fit} prompt tokens`,
      );
    }
    return r.items;
  } catch (e) {
    if (e instanceof DataError) throw new UsageError(e.message);
    throw e;
  }
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

/**
 * The command-line forms of policies, for the paths that pass policies as text (shards,
 * speculative drafts): a `--policy-file` function has none, so it is refused there.
 */
function specStrings(policies: readonly (Policy | string)[], option: string): string[] {
  return policies.map((p) => {
    if (typeof p === "string") return p;
    if (p.toJSON().kind === "custom") {
      throw new UsageError(
        `${option} takes built-in or defineSchedule policies; "${p.name}" from --policy-file ` +
          `is a function (export a defineSchedule descriptor instead)`,
      );
    }
    return String(p);
  });
}

/** The `sweep` command. */
export const sweepCommand: Command = {
  name: "sweep",
  summary: "run several policies over a data set (E2E by default): table, charts, generations",
  options: {
    ...MODEL,
    ...withDefault(POLICIES, undefined, {
      description: "a policy (full is always added); default: the demo's set (or the " +
        "policies of --policy-file)",
    }),
    ...withDefault(POLICY_FILE, undefined, {
      description: "your own policies: a module exporting defineSchedule descriptors, " +
        "policies or layer-set functions (all are swept, beside any --policy)",
    }),
    ...DATA_OPTIONS,
    items: { kind: "int", min: 1, value: "N", description: "distinct inputs to use", default: 200 },
    ...withDefault(MAX_NEW_TOKENS, 64),
    ...withDefault(BATCH_SIZE, 8, { description: "rows per batch" }),
    ...BACKEND,
    nll: {
      kind: "enum",
      choices: ["first", "all", "none"],
      description: "teacher-forced NLL of each item's first reference, all, or none",
      default: "first",
    },
    oracle: {
      kind: "int",
      min: 0,
      value: "N",
      description: "oracle depth of the full model's outputs on the first N items",
      default: 0,
    },
    metric: {
      kind: "enum",
      choices: ["bleu", "rougeL", "nll", "agreement"],
      description: "quality axis of the frontier chart",
      default: "bleu",
    },
    speedup: {
      kind: "enum",
      choices: ["layer", "flop", "measured"],
      description: "speedup axis of the frontier chart",
      default: "layer",
    },
    ...withDefault(OUT, "reports/sweep"),
    ...CACHE,
    png: {
      type: "boolean",
      description: "PNG pictures of the charts with Chromium (default: when this task may " +
        "run chromium and it is installed; --no-png: none)",
    },
    ...OFFLINE,
    ...withDefault(JSON_OUTPUT, undefined, { description: "print the table as JSON on stdout" }),
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
      kind: "int",
      min: 1,
      value: "B",
      description: "items per work unit, a multiple of --batch-size (default 4 batches)",
    },
    ...SLURM_OPTIONS,
  },
  async run(v) {
    const startedAt = new Date().toISOString();
    // Every option is checked before any data, model or folder is touched.
    const backend = v.backend as BackendName;
    const nll = v.nll === "none" ? false : v.nll as "first" | "all";
    const metric = v.metric as FrontierMetric;
    const speedup = v.speedup as FrontierSpeedup;
    const maxNewTokens = v["max-new-tokens"] as number;
    const count = v.items as number;
    const batchSize = v["batch-size"] as number;
    const oracleItems = v.oracle as number;
    const given = await policiesOption(v);
    const template = templateOption(v.template as string | undefined);
    const truncate = truncateOption(v.truncate);
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
      if (data.startsWith("hf:")) {
        // the tasks read the HF cache already: the dataset needs no read grant of its own
        return await writeSlurmArray(v, split, sweepCommand, {});
      }
      if (!exists(data)) throw new UsageError(`data file ${data} not found`);
      const policyFile = v["policy-file"] as string | undefined;
      return await writeSlurmArray(v, split, sweepCommand, {
        read: { data, ...(policyFile ? { "policy-file": policyFile } : {}) },
      });
    }
    const loaded = await loadSweepItems(v.data as string | undefined, count, template, {
      inputColumn: v["input-column"] as string | undefined,
      refColumn: v["ref-column"] as string | undefined,
      offline: v.offline ? true : undefined,
    });
    const model = await loadModel(v.model as string, {
      backend,
      offline: v.offline ? true : undefined,
    });
    let folder: OutputFolder | undefined;
    try {
      const items = fitItems(model, loaded, maxNewTokens, truncate);
      checkLength(model, maxNewTokens, items.map((it) => model.tokenizer.encode(it.prompt).length));
      const policies: (Policy | string)[] = given ??
        defaultPolicies(model.config.numHiddenLayers, Math.min(24, maxNewTokens));
      const names = policies.map((p) => String(typeof p === "string" ? parsePolicy(p) : p));
      const dup = names.find((n, i) => names.indexOf(n) !== i);
      if (dup) throw new UsageError(`--policy ${dup} is given twice`);
      const report = {
        title: "SkipDecode policy sweep",
        data: dataHeldOut(sweepDataFile(v.data as string | undefined)),
        metric,
        speedup,
      };
      if (split.shard) {
        return await sweepShard(model, items, specStrings(policies, "--shard"), {
          out,
          shard: split.shard,
          unitItems: split.unitItems,
          maxNewTokens,
          batchSize: batchSize ?? 8,
          nll,
          oracle: oracleItems > 0 ? { items: oracleItems, warmup: 1 } : false,
          template: items[0]?.template ?? template ?? "{input}\n",
          // an hf: split: its first Parquet file stands for it in the units' hashes
          dataFile: loaded.files[0],
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
      // The choices made for the user spelled out: the policies and the backend.
      const chosen = {
        ...v,
        // the --policy strings as given (a --policy-file's policies come back through that
        // option), else the default set the run chose
        policy: given ? v.policy : policies,
        backend: model.backend.name === "cpu" ? "cpu" : "webgpu",
      };
      const reproduce = reproduceCommand(
        "deno task skipdecode sweep",
        sweepCommand.options,
        chosen,
        ["help", "shard", "unit-items", ...Object.keys(SLURM_OPTIONS)],
      );
      const files = await writeSweepReport(result, folder, {
        ...report,
        png,
        reproduce,
        manifest: {
          command: "sweep",
          commandLine: reproduce,
          config: { ...chosen, maxNewTokens, batchSize: result.batchSize },
          model: { source: v.model as string, dir: model.dir, files: model.weights.files },
          data: {
            source: sweepDataFile(v.data as string | undefined),
            files: loaded.files,
            template: items[0]?.template,
            items: items.length,
          },
          backend: model.backend,
          seed: 0,
          startedAt,
        },
      }, items);
      const spec = ks
        ? await speculativeSection(
          model,
          items,
          specStrings(policies, "--speculative"),
          ks,
          result,
          folder,
        )
        : [];
      if (v.json) {
        console.log(
          JSON.stringify({
            ...sweepToJson(result),
            model: { ...result.model, ...modelInfo(model) },
            ...(ks ? { speculative: spec } : {}),
          }),
        );
      } else {
        console.error(
          `model ${modelLabel(model)} on ${result.backend}: ` +
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
