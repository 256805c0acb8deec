/**
 * Work units of a sweep, for runs split over processes and machines (Slurm job arrays,
 * Kubernetes Indexed Jobs, several terminals): a sweep is (policy x item block) units, a
 * block being whole generation batches, so a unit computes exactly what the single run
 * computes for those items (same batches, same padding, same NLL batches). Shard `I` of
 * `N` runs the units `u` with `u % N === I` (units in block-major order).
 *
 * Every unit is one JSON file `units/<id>.json` in the run folder, written atomically (a
 * temporary name, then a rename, see `output.ts`), so a unit killed at any moment leaves
 * no file under its name and a reader never sees a partial one. It carries a manifest:
 * the exact configuration, a content hash (SHA-256) of every model file and of the data
 * file, the toolkit's version and git commit (where readable). A rerun skips the units
 * already complete with the same manifest and refuses a folder holding another
 * configuration's units, naming the field that differs. A shard takes a lock
 * (`units/.shard-I-of-N.lock`, released by the OS however the process ends): a second
 * process of the same shard is refused while the first runs, and a later one finds its
 * units complete (idempotent). `merge.ts` assembles the units into the single run's report.
 *
 * @example
 * ```ts
 * import { shardUnits, sweepUnits } from "./units.ts";
 * const units = sweepUnits(["full", "constant:n=4"], 20, 8); // 2 policies x 3 blocks
 * shardUnits(units, { index: 1, count: 4, from: "--shard" }).map((u) => u.id);
 * // ["p01-b0000", "p01-b0002"]
 * ```
 * @module
 */
import { join } from "node:path";
import { sha256File } from "../model/hash.ts";
import denoJson from "../deno.json" with { type: "json" };
import type { Model } from "../decode/model.ts";
import { generate } from "../decode/engine.ts";
import type { ItemNll } from "../eval/nll.ts";
import { atomicWrite, checkOutputPath, openLock } from "../io/output.ts";
import { oracleDepths } from "../eval/oracle.ts";
import {
  accumulateGen,
  boundDecodeItems,
  type BoundItem,
  newGenPart,
  nllByItemBatch,
  type SweepGenPart,
  type SweepItem,
  sweepNllPairs,
  sweepPolicies,
} from "./sweep.ts";

/** The folder of the unit files inside a run folder. */
export const UNITS_DIR = "units";

/** A problem with work units, shards or a run folder; the message names the file or field. */
export class UnitError extends Error {
  /** Makes a unit error. */
  constructor(message: string) {
    super(message);
    this.name = "UnitError";
  }
}

/** Which share of the units this process runs, and where that was read from. */
export interface Shard {
  /** Zero-based shard index `I`. */
  index: number;
  /** Shard count `N`. */
  count: number;
  /** Where it came from: `--shard`, `SLURM_ARRAY_TASK_ID` or `JOB_COMPLETION_INDEX`. */
  from: string;
}

/**
 * Parses `I/N` (zero-based index, count).
 *
 * @param text the option's text
 * @param option the option's name for messages
 * @returns the shard
 * @throws RangeError naming the option
 * @example
 * ```ts
 * import { parseShard } from "./units.ts";
 * parseShard("2/3"); // { index: 2, count: 3, from: "--shard" }
 * ```
 */
export function parseShard(text: string, option = "--shard"): Shard {
  const m = /^(\d{1,6})\/(\d{1,6})$/.exec(text.trim());
  if (!m) throw new RangeError(`${option} must be I/N (e.g. 0/4), got "${text}"`);
  const index = Number(m[1]), count = Number(m[2]);
  if (count < 1 || index >= count) {
    throw new RangeError(`${option} ${text}: need 0 <= I < N and N >= 1`);
  }
  return { index, count, from: option };
}

/**
 * The shard of a job array task from its environment: Slurm's `SLURM_ARRAY_TASK_ID` and
 * `SLURM_ARRAY_TASK_COUNT` (the index counted from `SLURM_ARRAY_TASK_MIN`), or Kubernetes'
 * `JOB_COMPLETION_INDEX` with the count given separately (`--shards`).
 *
 * @param env reads a variable (`undefined` when unset or not readable)
 * @param count the shard count for `JOB_COMPLETION_INDEX`
 * @returns the shard, or `undefined` outside a job array
 * @throws RangeError for values that are not whole numbers or a missing count
 * @example
 * ```ts
 * import { shardFromEnv } from "./units.ts";
 * const env: Record<string, string> = { SLURM_ARRAY_TASK_ID: "3", SLURM_ARRAY_TASK_COUNT: "4" };
 * shardFromEnv((k) => env[k]); // { index: 3, count: 4, from: "SLURM_ARRAY_TASK_ID" }
 * ```
 */
export function shardFromEnv(
  env: (name: string) => string | undefined,
  count?: number,
): Shard | undefined {
  const whole = (name: string) => {
    const v = env(name);
    if (v === undefined || v === "") return undefined;
    if (!/^\d{1,6}$/.test(v)) throw new RangeError(`${name} must be a whole number, got "${v}"`);
    return Number(v);
  };
  const id = whole("SLURM_ARRAY_TASK_ID");
  if (id !== undefined) {
    const n = whole("SLURM_ARRAY_TASK_COUNT");
    if (n === undefined) {
      throw new RangeError("SLURM_ARRAY_TASK_ID is set but SLURM_ARRAY_TASK_COUNT is not");
    }
    const index = id - (whole("SLURM_ARRAY_TASK_MIN") ?? 0);
    if (index < 0 || index >= n) {
      throw new RangeError(`SLURM_ARRAY_TASK_ID ${id} is outside the array of ${n} tasks`);
    }
    return { index, count: n, from: "SLURM_ARRAY_TASK_ID" };
  }
  const k8s = whole("JOB_COMPLETION_INDEX");
  if (k8s !== undefined) {
    if (count === undefined) {
      throw new RangeError(
        "JOB_COMPLETION_INDEX is set but the shard count is not: pass --shards N (the Job's " +
          "completions)",
      );
    }
    if (k8s >= count) {
      throw new RangeError(`JOB_COMPLETION_INDEX ${k8s} is not below --shards ${count}`);
    }
    return { index: k8s, count, from: "JOB_COMPLETION_INDEX" };
  }
  return undefined;
}

/** One work unit: a policy on a block of consecutive items. */
export interface WorkUnit {
  /** File name stem: `p<policy>-b<block>`. */
  id: string;
  /** Index of the policy in the sweep's order (`full` first). */
  policyIndex: number;
  /** The policy's command-line form. */
  policy: string;
  /** Block index. */
  block: number;
  /** First item (inclusive). */
  start: number;
  /** Last item (exclusive). */
  end: number;
}

/**
 * The id of a unit: `p<policy>-b<block>`, zero-padded (file names sort by block).
 *
 * @param policyIndex the policy's index in the sweep's order
 * @param block the block's index
 * @returns the id
 * @example
 * ```ts
 * import { unitId } from "./units.ts";
 * unitId(1, 12); // "p01-b0012"
 * ```
 */
export function unitId(policyIndex: number, block: number): string {
  return `p${String(policyIndex).padStart(2, "0")}-b${String(block).padStart(4, "0")}`;
}

/**
 * The units of a sweep in block-major order (every policy of block 0, then block 1, ...).
 *
 * @param policies the policies' command-line forms in the sweep's order (`full` first)
 * @param items the number of items
 * @param blockItems items per block (a multiple of the batch size)
 * @returns the units
 * @example
 * ```ts
 * import { sweepUnits } from "./units.ts";
 * sweepUnits(["full"], 10, 4).map((u) => [u.start, u.end]); // [[0, 4], [4, 8], [8, 10]]
 * ```
 */
export function sweepUnits(
  policies: readonly string[],
  items: number,
  blockItems: number,
): WorkUnit[] {
  const units: WorkUnit[] = [];
  for (let b = 0; b * blockItems < items; b++) {
    policies.forEach((policy, k) => {
      units.push({
        id: unitId(k, b),
        policyIndex: k,
        policy,
        block: b,
        start: b * blockItems,
        end: Math.min(items, (b + 1) * blockItems),
      });
    });
  }
  return units;
}

/**
 * A shard's units: those at positions `u` with `u % count === index`.
 *
 * @param units all units, in order
 * @param shard the shard
 * @returns its units
 * @example
 * ```ts
 * import { shardUnits } from "./units.ts";
 * shardUnits([1, 2, 3, 4, 5], { index: 0, count: 2, from: "--shard" }); // [1, 3, 5]
 * ```
 */
export function shardUnits<T>(units: readonly T[], shard: Shard): T[] {
  return units.filter((_, u) => u % shard.count === shard.index);
}

/** What every unit of one run carries; units whose manifests differ are never merged. */
export interface UnitManifest {
  /** Format version of the unit files. */
  format: 1;
  /** `"sweep"`. */
  kind: "sweep";
  /** The toolkit's name, version and git commit (`null` where not readable). */
  toolkit: { name: string; version: string; commit: string | null };
  /** The exact configuration: model, backend, policies, data, lengths, batches, blocks. */
  config: SweepUnitConfig;
  /** SHA-256 of every model file (by name) and of the data file. */
  hashes: { model: Record<string, string>; data: string | null };
  /** How the merged report is presented (title, data note, chart axes); not compared. */
  report?: Record<string, unknown>;
}

/** The configuration part of a sweep unit's manifest. */
export interface SweepUnitConfig {
  /** `SweepResult.model`: source, folder, layers, hidden size, parameters. */
  model: { source: string; dir: string; layers: number; hiddenSize: number; params: number };
  /** The model's configuration. */
  modelConfig: Model["config"];
  /** The backend that ran (`cpu`, `webgpu`). */
  backend: string;
  /** The policies in the sweep's order, `full` first. */
  policies: string[];
  /** The data's item count and prompt template (the file's content is in `hashes.data`). */
  data: { items: number; template: string | null };
  /** Tokens generated per prompt at most. */
  maxNewTokens: number;
  /** Rows per batch. */
  batchSize: number;
  /** Items per unit (a multiple of `batchSize`). */
  blockItems: number;
  /** NLL mode. */
  nll: "first" | "all" | false;
  /** Bootstrap resamples and seed of the merged intervals. */
  bootstrap: { resamples: number; seed: number };
  /** Oracle depth of `full`'s outputs on the first `items` items (`false`: none). */
  oracle: { items: number; warmup: number } | false;
}

/**
 * SHA-256 of a file, read in pieces (for multi-gigabyte checkpoints).
 *
 * @param path the file
 * @returns the hex digest
 * @example
 * ```ts
 * import { fileSha256 } from "./units.ts";
 * // await fileSha256("bundled/models/tiny-opt-e2e/config.json");
 * ```
 */
export function fileSha256(path: string): Promise<string> {
  return Promise.resolve(sha256File(path));
}

/**
 * Content hashes of a model folder's files (every regular file but hidden ones and
 * Markdown) and of a data file.
 *
 * @param modelDir the checkpoint folder
 * @param dataFile the data file, if any
 * @returns `{ model: { name: sha256 }, data: sha256 | null }`
 * @example
 * ```ts
 * import { contentHashes } from "./units.ts";
 * // await contentHashes("bundled/models/tiny-opt-e2e", "bundled/data/e2e/devset.csv");
 * ```
 */
export async function contentHashes(
  modelDir: string,
  dataFile?: string,
): Promise<UnitManifest["hashes"]> {
  const names: string[] = [];
  for await (const e of Deno.readDir(modelDir)) {
    if (e.name.startsWith(".") || /\.md$/i.test(e.name)) continue;
    const st = await Deno.stat(join(modelDir, e.name)); // hub snapshots hold links to blobs
    if (st.isFile) names.push(e.name);
  }
  names.sort();
  const model: Record<string, string> = {};
  for (const n of names) model[n] = await fileSha256(join(modelDir, n));
  return { model, data: dataFile ? await fileSha256(dataFile) : null };
}

function readText(path: string): string | undefined {
  try {
    return Deno.readTextFileSync(path).trim();
  } catch {
    return undefined;
  }
}

/**
 * The toolkit's name and version (`deno.json`) and its git commit: `SKIPDECODE_GIT_COMMIT`
 * when set, else read from the repository's `.git` (worktrees and packed refs included)
 * where this process may read it, else `null`.
 *
 * @returns name, version, commit
 * @example
 * ```ts
 * import { toolkitInfo } from "./units.ts";
 * toolkitInfo().version; // "0.1.0"
 * ```
 */
export function toolkitInfo(): UnitManifest["toolkit"] {
  let commit: string | null = null;
  try {
    commit = Deno.env.get("SKIPDECODE_GIT_COMMIT") || null;
  } catch { /* not readable */ }
  if (!commit) {
    const root = decodeURIComponent(new URL("../", import.meta.url).pathname);
    let gitDir = join(root, ".git");
    const pointer = readText(gitDir);
    if (pointer?.startsWith("gitdir:")) gitDir = pointer.slice(7).trim();
    const head = readText(join(gitDir, "HEAD"));
    if (head && /^[0-9a-f]{40}$/.test(head)) commit = head;
    else if (head?.startsWith("ref:")) {
      const ref = head.slice(4).trim();
      const common = readText(join(gitDir, "commondir"));
      const dirs = [gitDir, ...(common ? [join(gitDir, common)] : [])];
      for (const d of dirs) {
        const loose = readText(join(d, ref));
        const packed = readText(join(d, "packed-refs"))?.split("\n")
          .find((l) => l.endsWith(` ${ref}`))?.split(" ")[0];
        commit = loose ?? packed ?? null;
        if (commit) break;
      }
    }
  }
  return { name: denoJson.name, version: denoJson.version, commit };
}

/**
 * The first field where two manifests differ, as `path: a vs b`, or `undefined` when they
 * agree (the `report` part is not compared).
 *
 * @param a a manifest (or any JSON value)
 * @param b another
 * @returns the difference, or `undefined`
 * @example
 * ```ts
 * import { manifestDifference } from "./units.ts";
 * manifestDifference({ config: { maxNewTokens: 16 } }, { config: { maxNewTokens: 24 } });
 * // "config.maxNewTokens: 16 vs 24"
 * ```
 */
export function manifestDifference(a: unknown, b: unknown, path = ""): string | undefined {
  const show = (v: unknown) => {
    const s = JSON.stringify(v) ?? "undefined";
    return s.length > 80 ? s.slice(0, 77) + "..." : s;
  };
  const isObj = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null;
  if (isObj(a) && isObj(b) && Array.isArray(a) === Array.isArray(b)) {
    const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])].sort();
    for (const k of keys) {
      if (path === "" && k === "report") continue;
      const d = manifestDifference(a[k], b[k], path ? `${path}.${k}` : k);
      if (d) return d;
    }
    return undefined;
  }
  return Object.is(a, b) ? undefined : `${path || "(whole)"}: ${show(a)} vs ${show(b)}`;
}

/** A unit's file: its manifest, what it is, and its per-item results. */
export interface UnitFile {
  /** The run's manifest. */
  manifest: UnitManifest;
  /** The unit. */
  unit: WorkUnit;
  /** The process run that computed it (timings of one run compare). */
  runId: string;
  /** ISO time the unit began. */
  startedAt: string;
  /** Wall milliseconds of the unit. */
  wallMs: number;
  /** The block's items (prompt, references) and prompt token counts. */
  items: SweepItem[];
  /** Prompt tokens per item of the block (BOS included). */
  promptLengths: number[];
  /** The policy's generations of the block, item by item. */
  gen: SweepGenPart;
  /** Teacher-forced NLL of the block's references (`null` without NLL). */
  nll: ItemNll[] | null;
  /**
   * `full`'s units only, for the block's items among the oracle's: their oracle depths
   * (with the positions unmatched and forwards run) and their bound decodes.
   */
  oracle?: { depths: number[][]; unmatched: number; forwards: number; bound: BoundItem[] };
}

/**
 * The path of a unit's file.
 *
 * @param dir the run folder
 * @param id the unit's id
 * @returns `dir/units/<id>.json`
 * @example
 * ```ts
 * import { unitPath } from "./units.ts";
 * unitPath("out/run", "p00-b0000"); // "out/run/units/p00-b0000.json"
 * ```
 */
export function unitPath(dir: string, id: string): string {
  return join(dir, UNITS_DIR, `${id}.json`);
}

/**
 * Reads a unit's file: `undefined` when there is none (a unit killed while running leaves
 * only a hidden temporary file, never this name).
 *
 * @param path the file
 * @returns the unit, or `undefined`
 * @throws UnitError naming the file when it is not a unit
 * @example
 * ```ts
 * import { readUnit } from "./units.ts";
 * readUnit("out/run/units/p00-b0000.json"); // undefined when not written yet
 * ```
 */
export function readUnit(path: string): UnitFile | undefined {
  let text: string;
  try {
    text = Deno.readTextFileSync(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return undefined;
    throw new UnitError(`cannot read ${path}: ${(e as Error).message}`);
  }
  let v: UnitFile;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new UnitError(`${path} is not JSON (${(e as Error).message}): remove it and rerun`);
  }
  const ok = typeof v === "object" && v !== null && v.manifest?.format === 1 &&
    typeof v.unit?.id === "string" && Array.isArray(v.items) &&
    Array.isArray(v.gen?.items) && v.gen.items.length === v.items.length &&
    Array.isArray(v.promptLengths) && v.promptLengths.length === v.items.length &&
    (v.nll === null || Array.isArray(v.nll));
  if (!ok) {
    throw new UnitError(`${path} is not a complete sweep unit (format 1): remove it and rerun`);
  }
  return v;
}

/**
 * An untimed generation before the first timed one (JIT, shader compilation), as a single
 * run does.
 *
 * @param model the model
 * @param items the sweep's items
 * @param batchSize rows per batch
 * @example
 * ```ts
 * import { warmUp } from "./units.ts";
 * // await warmUp(model, items, 8);
 * ```
 */
export async function warmUp(
  model: Model,
  items: readonly SweepItem[],
  batchSize: number,
): Promise<void> {
  await generate(model, items.slice(0, Math.min(batchSize, 2)).map((it) => it.prompt), {
    maxNewTokens: 2,
    batchSize,
  });
}

/** A unit's results: its file without the manifest and the run id. */
export type UnitBody = Omit<UnitFile, "manifest" | "runId">;

/**
 * Computes one sweep unit: the policy's generations on the block's items (batch by batch,
 * as the single run batches them), the NLL of their references, and for `full`'s units the
 * oracle of the block's items among the oracle's.
 *
 * @param model the model
 * @param items all the sweep's items
 * @param u the unit
 * @param c the sweep's configuration
 * @returns the unit's results
 * @example
 * ```ts
 * import { computeSweepUnit } from "./units.ts";
 * // const body = await computeSweepUnit(model, items, unit, config);
 * ```
 */
export async function computeSweepUnit(
  model: Model,
  items: readonly SweepItem[],
  u: WorkUnit,
  c: SweepUnitConfig,
): Promise<UnitBody> {
  const policy = sweepPolicies(c.policies)[u.policyIndex];
  const t0 = performance.now();
  const startedAt = new Date().toISOString();
  const block = items.slice(u.start, u.end);
  const prompts = block.map((it) => it.prompt);
  const gen = newGenPart();
  for (let b = 0; b < block.length; b += c.batchSize) {
    const out = await generate(model, prompts.slice(b, b + c.batchSize), {
      policy,
      maxNewTokens: c.maxNewTokens,
      batchSize: c.batchSize,
    });
    accumulateGen(gen, out);
  }
  const pairs = sweepNllPairs(block, c.nll, u.start);
  const nll = c.nll === false ? null : (await nllByItemBatch(model, pairs, {
    policy,
    horizon: c.maxNewTokens,
    batchSize: c.batchSize,
  })).items;
  // full's units carry the oracle of their items (the oracle reads full's outputs).
  let oracle: UnitFile["oracle"];
  const oEnd = c.oracle ? Math.min(u.end, c.oracle.items) : 0;
  if (c.oracle && u.policyIndex === 0 && oEnd > u.start) {
    const n = oEnd - u.start;
    const o = await oracleDepths(
      model,
      gen.items.slice(0, n).map((it, i) => ({ prompt: prompts[i], tokens: it.ids })),
      { warmup: c.oracle.warmup, batchSize: c.batchSize },
    );
    const bound = await boundDecodeItems(model, prompts.slice(0, n), o, {
      maxNewTokens: c.maxNewTokens,
    });
    oracle = { depths: o.depths, unmatched: o.unmatched, forwards: o.forwards, bound };
  }
  return {
    unit: u,
    startedAt,
    wallMs: performance.now() - t0,
    items: block.map((it) => ({
      prompt: it.prompt,
      refs: [...it.refs],
      ...(it.input !== undefined ? { input: it.input } : {}),
    })),
    promptLengths: prompts.map((p) => model.tokenizer.encode(p).length),
    gen,
    nll,
    ...(oracle ? { oracle } : {}),
  };
}

/**
 * Takes this shard's lock in `dir/units/` (an OS lock: released however the process ends).
 *
 * @param dir the run folder (its `units/` exists)
 * @param shard the shard
 * @returns the locked file; unlock and close it when the shard ends
 * @throws UnitError when another process runs the same shard into the folder; OutputError
 *   when `units/` goes through a symbolic link or the lock file is a planted link
 * @example
 * ```ts
 * import { holdShardLock } from "./units.ts";
 * // const lock = holdShardLock("out/run", shard); ... lock.close();
 * ```
 */
export function holdShardLock(dir: string, shard: Shard): Deno.FsFile {
  const udir = join(dir, UNITS_DIR);
  const lockName = `.shard-${shard.index}-of-${shard.count}.lock`;
  checkOutputPath(udir, "--out"); // a linked units/ would carry the lock and units away
  const lock = openLock(join(udir, lockName), "--out"); // a planted link is not truncated
  if (!lock.tryLockSync(true)) {
    let who = "";
    try {
      who = Deno.readTextFileSync(join(udir, lockName)).trim();
    } catch { /* say less */ }
    lock.close();
    throw new UnitError(
      `shard ${shard.index}/${shard.count} is already running into ${dir}` +
        `${who ? ` (${who})` : ""}: a second process with the same index is refused`,
    );
  }
  lock.truncateSync(0);
  lock.writeSync(new TextEncoder().encode(`pid ${Deno.pid} since ${new Date().toISOString()}\n`));
  return lock;
}

/**
 * Refuses a units folder holding units of another configuration (before any work).
 *
 * @param udir the units folder
 * @param manifest this run's manifest
 * @throws UnitError naming the file and the first field that differs
 * @example
 * ```ts
 * import { checkUnitManifests } from "./units.ts";
 * // checkUnitManifests("out/run/units", manifest);
 * ```
 */
export function checkUnitManifests(udir: string, manifest: unknown): void {
  for (const e of Deno.readDirSync(udir)) {
    if (!e.isFile || e.name.startsWith(".") || !e.name.endsWith(".json")) continue;
    let other: unknown;
    try {
      other = JSON.parse(Deno.readTextFileSync(join(udir, e.name))).manifest;
    } catch (err) {
      throw new UnitError(
        `${join(udir, e.name)} is not JSON (${(err as Error).message}): remove it and rerun`,
      );
    }
    const diff = manifestDifference(other, manifest);
    if (diff) {
      throw new UnitError(
        `${join(udir, e.name)} belongs to another run configuration (${diff}); ` +
          `use another --out folder or remove its units`,
      );
    }
  }
}

/** Options of {@linkcode runSweepShard}. */
export interface SweepShardOptions {
  /** The run folder (`units/` is created in it). */
  dir: string;
  /** This process's share. */
  shard: Shard;
  /** The manifest every unit carries (built by the caller: configuration, hashes). */
  manifest: UnitManifest;
  /** One-line notes (skipped units, progress). Default: stderr. */
  onNote?: (note: string) => void;
}

/** What {@linkcode runSweepShard} did. */
export interface SweepShardReport {
  /** Units computed and written by this process. */
  ran: string[];
  /** Units found complete and skipped. */
  skipped: string[];
  /** All units of the run. */
  total: number;
}

/**
 * Runs one shard of a sweep: every unit of the shard that is not already complete in
 * `dir/units/`, each written atomically with the manifest. The configuration comes from
 * the manifest (`policies`, `maxNewTokens`, `batchSize`, `blockItems`, `nll`).
 *
 * @param model the loaded model (the manifest's)
 * @param items all the sweep's items
 * @param o the folder, the shard, the manifest
 * @returns the units run and skipped
 * @throws UnitError when another process runs this shard, or the folder holds units of
 *   another configuration (naming the field)
 * @example
 * ```ts
 * import { runSweepShard } from "./units.ts";
 * // await runSweepShard(model, items, { dir: "out/run", shard, manifest });
 * ```
 */
export async function runSweepShard(
  model: Model,
  items: readonly SweepItem[],
  o: SweepShardOptions,
): Promise<SweepShardReport> {
  const c = o.manifest.config;
  const note = o.onNote ?? ((n: string) => console.error(`note: ${n}`));
  if (c.blockItems % c.batchSize !== 0 || c.blockItems < 1) {
    throw new RangeError(
      `items per unit (${c.blockItems}) must be a multiple of the batch size (${c.batchSize})`,
    );
  }
  if (items.length !== c.data.items) {
    throw new RangeError(`the manifest says ${c.data.items} items, got ${items.length}`);
  }
  const units = sweepUnits(c.policies, items.length, c.blockItems);
  const mine = shardUnits(units, o.shard);
  checkOutputPath(o.dir, "--out");
  const udir = join(o.dir, UNITS_DIR);
  Deno.mkdirSync(udir, { recursive: true });
  checkOutputPath(udir, "--out");
  const lock = holdShardLock(o.dir, o.shard);
  try {
    const report: SweepShardReport = { ran: [], skipped: [], total: units.length };
    checkUnitManifests(udir, o.manifest);
    const runId = `${new Date().toISOString()}-${crypto.randomUUID().slice(0, 8)}`;
    let warm = false;
    for (const u of mine) {
      const path = unitPath(o.dir, u.id);
      if (readUnit(path)) {
        report.skipped.push(u.id);
        continue;
      }
      if (!warm) {
        await warmUp(model, items, c.batchSize);
        warm = true;
      }
      const file: UnitFile = {
        manifest: o.manifest,
        runId,
        ...await computeSweepUnit(model, items, u, c),
      };
      checkOutputPath(udir, "--out");
      atomicWrite(path, JSON.stringify(file) + "\n");
      report.ran.push(u.id);
      note(`unit ${u.id} (${u.policy}, items ${u.start}-${u.end - 1}) written`);
    }
    return report;
  } finally {
    try {
      lock.unlockSync();
    } catch { /* closing releases it */ }
    lock.close();
  }
}
