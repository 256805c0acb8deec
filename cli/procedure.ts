/**
 * `skipdecode procedure`: the paper's procedure on one model. Measures every policy on
 * `--test` before any adaptation, fine-tunes one copy of the model per SkipDecode policy
 * on `--train` with that policy active, measures each policy again on its own copy, and
 * writes a report (table, before/after chart, later-tokens charts, the command that
 * reproduces it) to `--out`. `full` and the early-exit baselines are measured but not
 * fine-tuned. `--json` prints `{"before": [rows], "after": [rows], ...}` with rows shaped
 * as `sweep --json` rows.
 *
 * @example
 * ```sh
 * deno task skipdecode procedure --model bundled/models/tiny-opt-e2e-dense \
 *   --train bundled/data/e2e/devset.csv --test bundled/data/e2e/testset-part2.csv \
 *   --policy full --policy linear:max=10,min=2,warmup=1,horizon=24 --steps 40 --items 32 \
 *   --out reports/procedure
 * # on your own data: test on 200 MRs split off the training file, never fine-tuned on
 * deno task skipdecode procedure --model DIR --train my.csv --holdout 200 --items 64
 * # any format a sweep reads, with its column mapping and template
 * deno task skipdecode procedure --model DIR --train my.parquet --input-column article \
 *   --ref-column highlights --template 'Article: {input}\nSummary:' --holdout 50
 * ```
 * @module
 */
import { type Command, MAX_BATCH, pngOption, UsageError } from "./command.ts";
import {
  BACKEND,
  BATCH_SIZE,
  CACHE,
  JSON_OUTPUT,
  MAX_NEW_TOKENS,
  MODEL,
  OFFLINE,
  OUT,
  POLICIES,
  policiesOption,
  POLICY_FILE,
  withDefault,
} from "./options.ts";
import type { BackendName } from "../backend/mod.ts";
import { checkOutputPath, OutputFolder } from "../io/output.ts";
import { parsePolicy, plan } from "../schedule/mod.ts";
import {
  procedureData,
  procedureToJson,
  runProcedure,
  writeProcedureReport,
} from "../experiments/procedure.ts";
import { resolveModel } from "../model/hub.ts";
import { E2E_HELD_OUT } from "./heldout_text.ts";
import { BUNDLED_DIR, E2E_DEVSET, exists } from "../data/bundled.ts";
import { shellQuote, SLURM_OPTIONS } from "./slurm.ts";
import { DATA_OPTIONS, templateOption } from "./sweep.ts";
import { procedureShard, shardSettings, writeSlurmArray } from "./shard.ts";

/**
 * The dense twin of the tiny checkpoint (every layer on every column in training), bundled
 * in `bundled/models/tiny-opt-e2e-dense` (model card inside).
 */
export const DENSE_MODEL_DIR: string = `${BUNDLED_DIR}models/tiny-opt-e2e-dense`;

/**
 * The procedure's default policies for `layers` layers and a horizon: `full`; linear
 * decays at about 2x, 3x, 4x and 5x layer speedup with one warm-up layer and without;
 * a power law; the 2x decay with prompt decay; the early-exit twin of the 2x decay
 * without warm-up (same budgets per position).
 *
 * @param layers decoder layers `L` (at least 6)
 * @param horizon the linear decays' horizon
 * @returns the policies' command-line forms, `full` first
 * @example
 * ```ts
 * import { procedurePolicies } from "./procedure.ts";
 * procedurePolicies(12, 24).length; // 12
 * ```
 */
export function procedurePolicies(layers: number, horizon: number): string[] {
  if (!Number.isInteger(layers) || layers < 6) {
    throw new RangeError(`procedurePolicies: layers must be an integer >= 6, got ${layers}`);
  }
  // mean budget (max + min) / 2 over the horizon, about L / k for a k-times speedup
  const maxFor = (k: number) => Math.max(3, Math.min(layers, Math.round((2 * layers) / k - 2)));
  const lin = (k: number, w: number) =>
    `linear:max=${maxFor(k)},min=2,warmup=${w},horizon=${horizon}`;
  const out = ["full"];
  for (const k of [2, 3, 4, 5]) out.push(lin(k, 1), lin(k, 0));
  out.push(`powerlaw:max=${layers},min=2,warmup=1,alpha=1,tau=4`);
  out.push(`${lin(2, 1)},prompt=decay`);
  out.push(`earlyexit:${lin(2, 0)}`);
  return out;
}

/** The `procedure` command. */
export const procedureCommand: Command = {
  name: "procedure",
  summary: "the paper's procedure: before, fine-tune per policy, after, on held-out data",
  options: {
    ...withDefault(MODEL, undefined, {
      value: "DIR",
      description: "model folder (default: bundled/models/tiny-opt-e2e-dense)",
    }),
    train: {
      kind: "path",
      value: "FILE|hf:ID",
      description: "fine-tuning data: a .csv, .tsv, .jsonl or .parquet file, or a Hugging " +
        "Face dataset split hf:OWNER/NAME[:CONFIG]:SPLIT, as sweep --data (default: the " +
        "bundled E2E devset)",
    },
    test: {
      kind: "path",
      value: "FILE|hf:ID",
      description: "test data, in the forms --train takes (default: " +
        "bundled/data/e2e/testset-part2.csv, held out from the bundled models)",
    },
    "input-column": {
      ...DATA_OPTIONS["input-column"],
      description: DATA_OPTIONS["input-column"].description + ", of --train and --test",
    },
    "ref-column": DATA_OPTIONS["ref-column"],
    template: DATA_OPTIONS.template,
    holdout: {
      kind: "int",
      min: 1,
      value: "N",
      description: "test on N MRs held out of --train (a seeded split by MR) that fine-tuning " +
        "never sees, instead of --test",
    },
    ...withDefault(POLICIES, undefined, {
      description: "a policy (full is always added); default: 2x-5x linear with and without " +
        "warm-up, power law, prompt decay, early exit (or the policies of --policy-file)",
    }),
    ...withDefault(POLICY_FILE, undefined, {
      description: "your own policies: a module exporting defineSchedule descriptors (each " +
        "is fine-tuned for and measured, beside any --policy)",
    }),
    steps: {
      kind: "int",
      min: 1,
      max: 1_000_000,
      value: "N",
      description: "fine-tuning steps per policy",
      default: 50,
    },
    items: { kind: "int", min: 1, value: "N", description: "test MRs to use", default: 64 },
    ...withDefault(MAX_NEW_TOKENS, 64),
    ...withDefault(BATCH_SIZE, 8, { description: "generation batch" }),
    "train-batch-size": {
      kind: "int",
      min: 1,
      max: MAX_BATCH,
      value: "B",
      description: "fine-tuning micro-batch",
      default: 8,
    },
    lr: {
      kind: "decimal",
      range: { above: 0, max: 1 },
      value: "LR",
      description: "peak learning rate",
      default: "1e-4",
    },
    oracle: {
      kind: "int",
      min: 0,
      value: "N",
      description: "oracle-depth items (default: all test items, at most 32)",
    },
    "after-oracle": {
      kind: "int",
      min: 0,
      value: "N",
      description: "fine-tuned copies (the first N) whose oracle depth is computed too",
      default: 2,
    },
    resamples: {
      kind: "int",
      min: 1,
      max: 100_000,
      value: "N",
      description: "bootstrap resamples of the intervals",
      default: 1000,
    },
    ...withDefault(BACKEND, "auto", {
      description: "where to generate (training runs on the CPU)",
    }),
    ...withDefault(OUT, "reports/procedure"),
    "models-dir": {
      kind: "path",
      writes: true,
      value: "DIR",
      description: "where the fine-tuned copies go (default: out/procedure-models)",
    },
    ...CACHE,
    png: {
      kind: "flag",
      description: "PNG pictures of the charts with Chromium (default: when allowed and installed)",
    },
    ...withDefault(JSON_OUTPUT, undefined, {
      description: "print {before, after} rows as JSON on stdout",
    }),
    shard: {
      kind: "text",
      value: "I/N",
      description: "run shard I of N of the work units (the before sweep's blocks, one " +
        "fine-tune unit per SkipDecode policy) into --out; merge with `skipdecode merge`; " +
        "default: SLURM_ARRAY_TASK_ID/COUNT or JOB_COMPLETION_INDEX when set",
    },
    "unit-items": {
      kind: "int",
      min: 1,
      value: "B",
      description: "items per before-sweep unit, a multiple of --batch-size (default 4 batches)",
    },
    ...OFFLINE,
    ...SLURM_OPTIONS,
  },
  async run(v) {
    const startedAt = new Date().toISOString();
    // Every option, file and policy is checked before any model is loaded or trained.
    const backend = v.backend as BackendName;
    const steps = v.steps as number;
    const items = v.items as number;
    const maxNewTokens = v["max-new-tokens"] as number;
    const batchSize = v["batch-size"] as number;
    const trainBatchSize = v["train-batch-size"] as number;
    const lr = v.lr as number;
    const oracleItems = v.oracle as number | undefined;
    const resamples = v.resamples as number;
    const afterOracle = v["after-oracle"] as number;
    const holdout = v.holdout as number | undefined;
    if (holdout !== undefined && v.test !== undefined) {
      throw new UsageError("--holdout N and --test FILE both name the test data: give one");
    }
    const png = pngOption(v.png);
    const model = (v.model as string | undefined) ?? DENSE_MODEL_DIR;
    if (!exists(`${model}/config.json`)) {
      throw new UsageError(
        v.model === undefined
          ? `the dense model ${model} is missing (bundled/ is incomplete): pass --model DIR`
          : `--model ${model}: no config.json there (a local checkpoint folder is needed: ` +
            `the procedure fine-tunes it)`,
      );
    }
    const trainFile = (v.train as string | undefined) ?? E2E_DEVSET;
    const testFile = holdout !== undefined ? trainFile : (v.test as string | undefined) ??
      (exists(E2E_HELD_OUT) ? E2E_HELD_OUT : undefined);
    if (testFile === undefined) {
      throw new UsageError(
        `no --test given and the held-out ${E2E_HELD_OUT} is missing: pass --test FILE`,
      );
    }
    for (const [opt, file] of [["--train", trainFile], ["--test", testFile]]) {
      if (!file.startsWith("hf:") && !exists(file)) {
        throw new UsageError(`${opt} ${file} not found`);
      }
    }
    const template = templateOption(v.template as string | undefined);
    const inputColumn = v["input-column"] as string | undefined;
    const refColumn = v["ref-column"] as string | undefined;
    const columns = {
      ...(inputColumn !== undefined ? { inputColumn } : {}),
      ...(refColumn !== undefined ? { refColumn } : {}),
      ...(template !== undefined ? { template } : {}),
    };
    const offline = v.offline ? true : undefined;
    // Parsing now names a malformed file, a missing column or placeholder (or a --holdout too
    // large for the data) before any work; an hf: split is downloaded here (once, cached).
    let dataFiles: string[];
    try {
      dataFiles = (await procedureData({
        train: trainFile,
        test: testFile,
        holdout,
        items,
        columns,
        offline,
      })).files;
    } catch (e) {
      if (e instanceof RangeError) throw new UsageError(e.message);
      throw e;
    }
    let layers = 12;
    try {
      layers = Number(JSON.parse(Deno.readTextFileSync(`${model}/config.json`)).num_hidden_layers);
    } catch (e) {
      throw new UsageError(`--model ${model}: config.json is unreadable: ${(e as Error).message}`);
    }
    const policyFile = v["policy-file"] as string | undefined;
    const given = (await policiesOption(v, layers))?.map((p) => {
      if (p.toJSON().kind === "custom") {
        throw new UsageError(
          `--policy-file ${policyFile}: procedure fine-tunes with policies in their text form; ` +
            `"${p.name}" is a function (export a defineSchedule descriptor instead)`,
        );
      }
      return String(p);
    });
    const policies = (given ?? procedurePolicies(layers, 24)).map((p) => {
      try {
        const policy = parsePolicy(p);
        plan(policy, { layers, promptLength: 2, maxNewTokens: 2 }); // fits the model's layers
        return String(policy);
      } catch (e) {
        throw new UsageError(`--policy ${p}: ${(e as Error).message}`);
      }
    });
    const dup = policies.find((n, i) => policies.indexOf(n) !== i);
    if (dup) throw new UsageError(`--policy ${dup} is given twice`);
    const out = v.out as string;
    checkOutputPath(out, "--out");
    const modelsDir = (v["models-dir"] as string | undefined) ?? "out/procedure-models";
    checkOutputPath(modelsDir, "--models-dir");
    const command = [
      "deno task skipdecode procedure",
      `--model ${model}`,
      `--train ${trainFile}`,
      holdout !== undefined ? `--holdout ${holdout}` : `--test ${testFile}`,
      ...(inputColumn !== undefined ? [`--input-column ${shellQuote(inputColumn)}`] : []),
      ...(refColumn !== undefined ? [`--ref-column ${shellQuote(refColumn)}`] : []),
      ...(v.template !== undefined ? [`--template ${shellQuote(v.template as string)}`] : []),
      ...(offline ? ["--offline"] : []),
      ...(policyFile ? [`--policy-file ${policyFile}`] : []),
      ...policies.map((p) => `--policy ${p}`),
      `--steps ${steps}`,
      `--items ${items}`,
      `--max-new-tokens ${maxNewTokens}`,
      `--batch-size ${batchSize}`,
      `--train-batch-size ${trainBatchSize}`,
      `--lr ${lr}`,
      ...(oracleItems !== undefined ? [`--oracle ${oracleItems}`] : []),
      `--after-oracle ${afterOracle}`,
      `--resamples ${resamples}`,
      `--backend ${backend}`,
      `--models-dir ${modelsDir}`,
      `--out ${out}`,
    ].join(" \\\n  ");
    // What a single run and a shard compute from (the shard's units carry the same options).
    const procedureOptions = {
      model,
      train: trainFile,
      test: testFile,
      ...(holdout !== undefined ? { holdout } : {}),
      ...(Object.keys(columns).length ? { columns } : {}),
      ...(offline ? { offline } : {}),
      policies,
      steps,
      items,
      modelsDir,
      maxNewTokens,
      batchSize,
      trainBatchSize,
      lr,
      oracleItems,
      afterOracle,
      backend,
      resamples,
    };
    const split = shardSettings(v, batchSize);
    if (split.slurm) {
      return await writeSlurmArray(v, split, procedureCommand, {
        read: {
          model,
          train: trainFile,
          test: testFile,
          ...(policyFile ? { "policy-file": policyFile } : {}),
        },
        write: { "models-dir": modelsDir },
      });
    }
    if (split.shard) {
      return await procedureShard({
        out,
        shard: split.shard,
        unitItems: split.unitItems,
        command,
        json: Boolean(v.json),
        options: procedureOptions,
      });
    }
    const folder = OutputFolder.open(out, { option: "--out", owner: "procedure" });
    try {
      const result = await runProcedure({
        ...procedureOptions,
        cacheDir: v.cache === false ? false : (v["cache-dir"] as string | undefined),
      });
      // The folder the run loaded (a hub id: its snapshot in the HF cache), for the hashes.
      const dir = (await resolveModel(model, { offline: true }).catch(() => undefined))?.dir;
      const files = await writeProcedureReport(result, folder, {
        command,
        png,
        manifest: {
          command: "procedure",
          commandLine: command.replaceAll(" \\\n  ", " "),
          config: { ...v, ...procedureOptions },
          model: { source: model, dir: dir ?? model },
          data: { source: testFile, files: dataFiles, items: result.before.items },
          backend: { name: result.before.backend },
          startedAt,
        },
      });
      if (v.json) console.log(JSON.stringify(procedureToJson(result)));
      else {
        console.error(
          `model ${model} on ${backend}: ` +
            `wrote ${out}/${files.report} (${files.html.length} charts, ${files.png.length} PNGs)` +
            (result.heldOut ? "" : " — NOT held out: the test file overlaps the training file"),
        );
      }
      return 0;
    } finally {
      folder.close();
    }
  },
};
