/**
 * The command-line side of split runs: which shard this process runs (`--shard I/N`, else
 * `SLURM_ARRAY_TASK_ID`/`SLURM_ARRAY_TASK_COUNT`, else `JOB_COMPLETION_INDEX` with
 * `--shards N`, said on stderr), running a sweep's shard into `--out`, and `--slurm`:
 * writing the job array's script (and with `--submit` submitting it, waiting and merging).
 *
 * @example
 * ```ts
 * import { shardSettings } from "./shard.ts";
 * shardSettings({ shard: "1/3" }, 8).shard; // { index: 1, count: 3, from: "--shard" }
 * ```
 * @module
 */
import { isAbsolute, join, resolve } from "node:path";
import { type Command, UsageError } from "./command.ts";
import type { Model } from "../decode/model.ts";
import { atomicWrite, checkOutputPath } from "../io/output.ts";
import { type SweepItem, sweepModelInfo, sweepPolicies } from "../experiments/sweep.ts";
import {
  contentHashes,
  fileSha256,
  parseShard,
  runSweepShard,
  type Shard,
  shardFromEnv,
  toolkitInfo,
  type UnitManifest,
} from "../experiments/units.ts";
import { hubCacheDir } from "../model/hub.ts";
import { exists } from "../data/bundled.ts";
import { sbatchScript, SLURM_OPTION_NAMES, slurmResources, submitAndWait } from "./slurm.ts";
import { TOOLKIT_ENV } from "./options.ts";
import { mergeRunFolder } from "./merge.ts";
import { loadModel } from "../decode/mod.ts";
import {
  isTunedPolicy,
  procedureData,
  procedureOracle,
  procedurePolicyOrder,
} from "../experiments/procedure.ts";
import {
  type ProcedureManifest,
  type ProcedureUnitConfig,
  runProcedureShard,
} from "../experiments/procedure_units.ts";

/** How a run is split, from the options and the environment. */
export interface SplitSettings {
  /** This process's shard (absent: one process does everything). */
  shard?: Shard;
  /** Items per work unit. */
  unitItems: number;
  /** `--slurm`: the array to write (and submit). */
  slurm?: { shards: number; maxParallel: number; resources: string[]; submit: boolean };
}

const env = (k: string): string | undefined => {
  try {
    return Deno.env.get(k);
  } catch {
    return undefined;
  }
};

/**
 * Reads `--shard`, `--unit-items`, `--shards` and the `--slurm` options, and the job-array
 * variables when `--shard` is absent (saying so on stderr).
 *
 * @param v parsed option values
 * @param batchSize rows per batch (a unit holds whole batches)
 * @returns the split
 * @throws UsageError naming the option (`--policy-file` does not go with a split: merge
 *   cannot rebuild its policies)
 * @example
 * ```ts
 * import { shardSettings } from "./shard.ts";
 * shardSettings({}, 8).unitItems; // 32
 * ```
 */
export function shardSettings(v: Record<string, unknown>, batchSize: number): SplitSettings {
  // the values were converted by runCommand (cli/command.ts): numbers, ranges checked
  const unitItems = (v["unit-items"] as number | undefined) ?? 4 * batchSize;
  if (unitItems % batchSize !== 0) {
    throw new UsageError(
      `--unit-items ${unitItems} must be a multiple of --batch-size ${batchSize} (a unit ` +
        `holds whole batches, so it computes what a single run computes)`,
    );
  }
  const shards = v.shards as number | undefined;
  const policyFile = v["policy-file"] as string | undefined;
  const split = v.slurm ? "--slurm" : v.shard !== undefined ? "--shard" : undefined;
  if (policyFile !== undefined && split) {
    // merge rebuilds the policies from their names: a file's schedules are unknown there
    throw new UsageError(
      `--policy-file ${policyFile} does not go with ${split}: merge rebuilds the policies ` +
        `from their names and cannot load the file; run the sweep in one process`,
    );
  }
  if (v.slurm || v.submit) {
    if (!v.slurm) throw new UsageError("--submit goes with --slurm");
    if (v.shard !== undefined) throw new UsageError("--slurm sets each task's shard: drop --shard");
    if (shards === undefined) throw new UsageError("--slurm needs --shards N (array tasks)");
    const maxParallel = (v["max-parallel"] as number | undefined) ?? shards;
    return {
      unitItems,
      slurm: { shards, maxParallel, resources: slurmResources(v), submit: Boolean(v.submit) },
    };
  }
  let shard: Shard | undefined;
  try {
    shard = typeof v.shard === "string" ? parseShard(v.shard) : shardFromEnv(env, shards);
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  if (shard && shard.from !== "--shard") {
    const detail = shard.from === "SLURM_ARRAY_TASK_ID"
      ? `SLURM_ARRAY_TASK_ID=${env("SLURM_ARRAY_TASK_ID")}, SLURM_ARRAY_TASK_COUNT=${
        env("SLURM_ARRAY_TASK_COUNT")
      }`
      : `JOB_COMPLETION_INDEX=${env("JOB_COMPLETION_INDEX")}, --shards ${shards}`;
    console.error(`shard ${shard.index}/${shard.count} from the environment (${detail})`);
  }
  return { shard, unitItems };
}

/** Settings of {@linkcode sweepShard}. */
export interface SweepShardSettings {
  /** The run folder. */
  out: string;
  /** This process's shard. */
  shard: Shard;
  /** Items per unit. */
  unitItems: number;
  /** Tokens per prompt at most. */
  maxNewTokens: number;
  /** Rows per batch. */
  batchSize: number;
  /** NLL mode. */
  nll: "first" | "all" | false;
  /** Oracle items and warm-up (`false`: none). */
  oracle: { items: number; warmup: number } | false;
  /** Prompt template. */
  template: string;
  /** The data file read (hashed into the manifest). */
  dataFile: string;
  /** How the merged report is presented. */
  report: Record<string, unknown>;
  /** Print what was done as JSON. */
  json: boolean;
}

/**
 * Runs this process's shard of a sweep into `out/units/` (see `experiments/units.ts`).
 *
 * @param model the loaded model
 * @param items all the sweep's items
 * @param policies the policies (command-line forms)
 * @param s the shard and the run's settings
 * @returns exit code 0
 * @example
 * ```ts
 * import { sweepShard } from "./shard.ts";
 * // await sweepShard(model, items, ["full"], settings);
 * ```
 */
export async function sweepShard(
  model: Model,
  items: readonly SweepItem[],
  policies: readonly string[],
  s: SweepShardSettings,
): Promise<number> {
  const manifest: UnitManifest = {
    format: 1,
    kind: "sweep",
    toolkit: toolkitInfo(),
    config: {
      model: sweepModelInfo(model),
      modelConfig: model.config,
      backend: model.backend.name,
      policies: sweepPolicies(policies).map(String),
      data: { items: items.length, template: s.template },
      maxNewTokens: s.maxNewTokens,
      batchSize: s.batchSize,
      blockItems: s.unitItems,
      nll: s.nll,
      bootstrap: { resamples: 1000, seed: 0 },
      oracle: s.oracle &&
        { items: Math.min(s.oracle.items, items.length), warmup: s.oracle.warmup },
    },
    hashes: await contentHashes(model.dir, s.dataFile),
    report: { ...s.report, dataFile: s.dataFile },
  };
  const { shard } = s;
  const r = await runSweepShard(model, items, { dir: s.out, shard, manifest });
  const line = `shard ${shard.index}/${shard.count}: ${r.ran.length} units run, ` +
    `${r.skipped.length} already complete, of ${r.total} in all; when every shard has ended: ` +
    `skipdecode merge ${s.out}`;
  if (s.json) console.log(JSON.stringify({ shard, ...r }));
  console.error(line);
  return 0;
}

/**
 * `--slurm`: writes `out/<command>.sbatch` (an array of one task per shard running this
 * command with the same options, least privilege: it reads the repository, the model and
 * the data, writes `out`), and with `--submit` submits it, waits and merges.
 *
 * @param v parsed option values
 * @param split the split (with `slurm`)
 * @param cmd the command (its options are passed on, the Slurm ones left out)
 * @returns exit code
 * @example
 * ```ts
 * import { writeSlurmArray } from "./shard.ts";
 * // await writeSlurmArray(values, split, sweepCommand);
 * ```
 */
export async function writeSlurmArray(
  v: Record<string, unknown>,
  split: SplitSettings,
  cmd: Command,
  paths: { read?: Record<string, string>; write?: Record<string, string> } = {},
): Promise<number> {
  const slurm = split.slurm!;
  const out = resolve(v.out as string);
  const root = resolve(decodeURIComponent(new URL("../", import.meta.url).pathname));
  const reads = [root];
  const writes = [out];
  const args: string[] = [];
  // Files and folders the task reads or writes: absolute, and granted by name.
  for (const [list, named] of [[reads, paths.read], [writes, paths.write]] as const) {
    for (const [name, path] of Object.entries(named ?? {})) {
      if (path.startsWith("hf:")) {
        // a hub dataset id stays an id (fetched into the HF cache before the array is written)
        reads.push(hubCacheDir());
        args.push(`--${name}`, path);
        continue;
      }
      list.push(resolve(path));
      args.push(`--${name}`, resolve(path));
    }
  }
  const skip = new Set([
    ...SLURM_OPTION_NAMES,
    ...Object.keys(paths.read ?? {}),
    ...Object.keys(paths.write ?? {}),
    "out",
    "shard",
    "json",
    "offline",
  ]);
  for (const name of Object.keys(cmd.options)) {
    const x = v[name];
    if (skip.has(name) || x === undefined) continue;
    if (name === "model") {
      const m = String(x);
      const local = exists(m);
      const abs = local ? resolve(m) : m;
      reads.push(local ? abs : hubCacheDir());
      args.push("--model", abs);
    } else if (name === "cache-dir") args.push(`--${name}`, resolve(String(x)));
    else if (Array.isArray(x)) x.forEach((y) => args.push(`--${name}`, String(y)));
    else if (typeof x === "boolean") args.push(x ? `--${name}` : `--no-${name}`);
    else args.push(`--${name}`, String(x));
  }
  checkOutputPath(out, "--out");
  Deno.mkdirSync(join(out, "logs"), { recursive: true });
  const vk = env("VK_ICD_FILENAMES");
  const script = sbatchScript({
    jobName: `skipdecode-${cmd.name}`,
    dir: out,
    shards: slurm.shards,
    maxParallel: slurm.maxParallel,
    resources: slurm.resources,
    workdir: root,
    env: vk ? { VK_ICD_FILENAMES: vk } : {},
    command: [
      Deno.execPath(),
      "run",
      `--allow-read=${reads.join(",")}`,
      `--allow-write=${writes.join(",")}`,
      `--allow-env=${TOOLKIT_ENV.join(",")}`,
      join(root, "cli", "main.ts"),
      cmd.name,
      ...args,
      "--offline",
      "--out",
      out,
    ],
  });
  const path = join(out, `${cmd.name}.sbatch`);
  atomicWrite(path, script);
  console.error(
    `wrote ${path}: ${slurm.shards} array tasks; submit with \`sbatch ${path}\`, then ` +
      `\`skipdecode merge ${isAbsolute(v.out as string) ? out : v.out}\``,
  );
  if (!slurm.submit) return 0;
  await submitAndWait(path);
  return await mergeRunFolder(v.out as string, { json: Boolean(v.json), option: "--out" });
}

/** Settings of {@linkcode procedureShard}. */
export interface ProcedureShardSettings {
  /** The run folder. */
  out: string;
  /** This process's shard. */
  shard: Shard;
  /** Items per before-sweep unit. */
  unitItems: number;
  /** The command line that reproduces the run (for the report). */
  command: string;
  /** Print what was done as JSON. */
  json: boolean;
  /** The procedure's options, as `runProcedure` takes them. */
  options: ProcedureUnitConfig["options"];
}

/**
 * Runs this process's shard of the procedure into `out/units/` (see
 * `experiments/procedure_units.ts`).
 *
 * @param s the shard and the procedure's options
 * @returns exit code 0
 * @example
 * ```ts
 * import { procedureShard } from "./shard.ts";
 * // await procedureShard(settings);
 * ```
 */
export async function procedureShard(s: ProcedureShardSettings): Promise<number> {
  const o = s.options;
  const { test, overlap } = await procedureData(o);
  const items = test;
  const policies = procedurePolicyOrder(o.policies);
  // The base model's description, configuration and backend, as the single run's sweep has them.
  const base = await loadModel(o.model, { backend: o.backend ?? "auto" });
  const info = sweepModelInfo(base), modelConfig = base.config, backend = base.backend.name;
  base.dispose();
  const manifest: ProcedureManifest = {
    format: 1,
    kind: "procedure",
    toolkit: toolkitInfo(),
    config: {
      options: o,
      policies,
      tuned: policies.flatMap((p, k) => isTunedPolicy(p) ? [k] : []),
      before: {
        model: info,
        modelConfig,
        backend,
        policies: sweepPolicies(policies).map(String),
        data: { items: items.length, template: null },
        maxNewTokens: o.maxNewTokens ?? 64,
        batchSize: o.batchSize ?? 8,
        blockItems: s.unitItems,
        nll: "first",
        bootstrap: { resamples: o.resamples ?? 1000, seed: 0 },
        oracle: procedureOracle(o, items.length),
      },
      overlap: overlap.length,
    },
    hashes: {
      ...(await contentHashes(o.model, o.test)),
      train: await fileSha256(o.train),
    },
    report: { command: s.command },
  };
  const r = await runProcedureShard({ dir: s.out, shard: s.shard, manifest, items });
  if (s.json) console.log(JSON.stringify({ shard: s.shard, ...r }));
  console.error(
    `shard ${s.shard.index}/${s.shard.count}: ${r.ran.length} units run, ` +
      `${r.skipped.length} already complete, of ${r.total} in all; when every shard has ` +
      `ended: skipdecode merge ${s.out}`,
  );
  return 0;
}
