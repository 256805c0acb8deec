/**
 * Work units of the paper's procedure (`procedure.ts`), for runs split over processes and
 * machines as sweeps are (`units.ts`): the `before` sweep's (policy x item block) units,
 * and one fine-tune unit per SkipDecode policy, which fine-tunes that policy's copy and
 * measures it (`full` and the policy on the copy, block by block as the single run's
 * sweep batches them). Fine-tune units come first in the order, so that the long ones
 * start first; no unit waits for another. Every unit is one atomically written file in
 * `DIR/units/` with the run's manifest; {@linkcode mergeProcedureUnits} assembles the
 * result `runProcedure` gives (timings aside).
 *
 * @example
 * ```ts
 * import { procedureUnitIds } from "./procedure_units.ts";
 * procedureUnitIds(["full", "constant:n=4"], [1], 10, 8); // ["t01", "p00-b0000", ...]
 * ```
 * @module
 */
import { join } from "node:path";
import type { Model } from "../decode/model.ts";
import { loadModel } from "../decode/mod.ts";
import { atomicWrite, checkOutputPath } from "../io/output.ts";
import {
  checkUnitManifests,
  computeSweepUnit,
  holdShardLock,
  readUnit,
  type Shard,
  shardUnits,
  type SweepShardReport,
  type SweepUnitConfig,
  sweepUnits,
  type UnitBody,
  UnitError,
  type UnitFile,
  type UnitManifest,
  unitPath,
  UNITS_DIR,
  warmUp,
} from "./units.ts";
import { assembleSweepUnits } from "./merge.ts";
import { type SweepItem, sweepModelInfo, type SweepResult } from "./sweep.ts";
import {
  fineTuneCopy,
  laterTokens,
  type ProcedureAfter,
  type ProcedureOptions,
  type ProcedureResult,
} from "./procedure.ts";

/** The configuration part of a procedure unit's manifest. */
export interface ProcedureUnitConfig {
  /** The procedure's options (model, data files, policies, sizes), as `runProcedure` takes them. */
  options: Omit<ProcedureOptions, "onNote" | "onStep" | "progress" | "cacheDir">;
  /** The policies in the procedure's order, `full` first when it was added. */
  policies: string[];
  /** Indices (in `policies`) of the SkipDecode policies fine-tuned, in order. */
  tuned: number[];
  /** The `before` sweep's configuration. */
  before: SweepUnitConfig;
  /** Test MRs also in the training file. */
  overlap: number;
}

/** A procedure unit's manifest (as a sweep unit's, with the procedure's configuration). */
export interface ProcedureManifest {
  /** Format version. */
  format: 1;
  /** `"procedure"`. */
  kind: "procedure";
  /** The toolkit's name, version and commit. */
  toolkit: UnitManifest["toolkit"];
  /** The exact configuration. */
  config: ProcedureUnitConfig;
  /** SHA-256 of the model files, the test file (`data`) and the training file (`train`). */
  hashes: { model: Record<string, string>; data: string | null; train: string | null };
  /** Presentation of the merged report (the command line); not compared. */
  report?: Record<string, unknown>;
}

/** A fine-tune unit's file: the copy, its training time, and its sweep's blocks. */
export interface TuneUnitFile {
  /** The run's manifest. */
  manifest: ProcedureManifest;
  /** `t<k>`. */
  id: string;
  /** The policy's index in the procedure's order. */
  index: number;
  /** The policy. */
  policy: string;
  /** The fine-tuned copy's folder. */
  modelDir: string;
  /** Where the copy came from and its shape (the after sweep's `model`). */
  model: SweepResult["model"];
  /** Training wall seconds. */
  trainSeconds: number;
  /** The run that computed it. */
  runId: string;
  /** The after sweep's units (`full` and the policy on the copy), by id. */
  units: Record<string, UnitBody>;
}

/**
 * The `after` sweep's configuration of a tuned policy: `full` and the policy, the oracle
 * for the first `afterOracle` tuned copies.
 *
 * @param c the procedure's configuration
 * @param t the position of the policy among the tuned ones
 * @returns the sweep configuration
 * @example
 * ```ts
 * import { afterConfig } from "./procedure_units.ts";
 * // afterConfig(config, 0).policies; // ["full", "linear:..."]
 * ```
 */
export function afterConfig(c: ProcedureUnitConfig, t: number): SweepUnitConfig {
  const policy = c.policies[c.tuned[t]];
  return {
    ...c.before,
    policies: ["full", policy],
    oracle: t < (c.options.afterOracle ?? 2) ? c.before.oracle : false,
  };
}

/**
 * The ids of a procedure's units in their order: fine-tune units `t<k>`, then the before
 * sweep's units.
 *
 * @param policies the procedure's policies (`full` first)
 * @param tuned the tuned policies' indices
 * @param items test items
 * @param blockItems items per block
 * @returns the ids
 * @example
 * ```ts
 * import { procedureUnitIds } from "./procedure_units.ts";
 * procedureUnitIds(["full", "a"], [1], 3, 2); // ["t01", "p00-b0000", "p01-b0000", "p00-b0001", "p01-b0001"]
 * ```
 */
export function procedureUnitIds(
  policies: readonly string[],
  tuned: readonly number[],
  items: number,
  blockItems: number,
): string[] {
  const order = [...policies].sort((a, b) => (a === "full" ? -1 : b === "full" ? 1 : 0));
  return [
    ...tuned.map(tuneId),
    ...sweepUnits(order, items, blockItems).map((u) => u.id),
  ];
}

function tuneId(k: number): string {
  return `t${String(k).padStart(2, "0")}`;
}

/** Options of {@linkcode runProcedureShard}. */
export interface ProcedureShardOptions {
  /** The run folder. */
  dir: string;
  /** This process's share. */
  shard: Shard;
  /** The run's manifest. */
  manifest: ProcedureManifest;
  /** The test items (all of them). */
  items: readonly SweepItem[];
  /** One-line notes. Default: stderr. */
  onNote?: (note: string) => void;
}

/**
 * Runs one shard of a procedure: its fine-tune units (train, then measure the copy) and
 * its before units, skipping complete ones.
 *
 * @param o the folder, shard, manifest and items
 * @returns the units run and skipped
 * @throws UnitError for a second process of the shard or another configuration's units
 * @example
 * ```ts
 * import { runProcedureShard } from "./procedure_units.ts";
 * // await runProcedureShard({ dir: "out/proc", shard, manifest, items });
 * ```
 */
export async function runProcedureShard(o: ProcedureShardOptions): Promise<SweepShardReport> {
  const c = o.manifest.config;
  const note = o.onNote ?? ((n: string) => console.error(`note: ${n}`));
  const ids = procedureUnitIds(c.policies, c.tuned, o.items.length, c.before.blockItems);
  const mine = new Set(shardUnits(ids, o.shard));
  checkOutputPath(o.dir, "--out");
  const udir = join(o.dir, UNITS_DIR);
  Deno.mkdirSync(udir, { recursive: true });
  const lock = holdShardLock(o.dir, o.shard);
  const backend = c.options.backend ?? "auto";
  let base: Model | undefined;
  try {
    checkUnitManifests(udir, o.manifest);
    const report: SweepShardReport = { ran: [], skipped: [], total: ids.length };
    const runId = `${new Date().toISOString()}-${crypto.randomUUID().slice(0, 8)}`;
    for (const [t, k] of c.tuned.entries()) {
      const id = tuneId(k);
      if (!mine.has(id)) continue;
      if (readTuneUnit(join(udir, `${id}.json`))) {
        report.skipped.push(id);
        continue;
      }
      const policy = c.policies[k];
      const { dir, trainSeconds } = await fineTuneCopy({ ...c.options, onNote: note }, k, policy);
      const tuned = await loadModel(dir, { backend, onNote: note });
      try {
        const ac = afterConfig(c, t);
        await warmUp(tuned, o.items, ac.batchSize);
        const units: Record<string, UnitBody> = {};
        for (const u of sweepUnits(ac.policies, o.items.length, ac.blockItems)) {
          units[u.id] = await computeSweepUnit(tuned, o.items, u, ac);
        }
        const file: TuneUnitFile = {
          manifest: o.manifest,
          id,
          index: k,
          policy,
          modelDir: dir,
          model: sweepModelInfo(tuned),
          trainSeconds,
          runId,
          units,
        };
        atomicWrite(join(udir, `${id}.json`), JSON.stringify(file) + "\n");
      } finally {
        tuned.dispose();
      }
      report.ran.push(id);
      note(`unit ${id} (fine-tuned for ${policy} and measured) written`);
    }
    for (const u of sweepUnits(c.before.policies, o.items.length, c.before.blockItems)) {
      if (!mine.has(u.id)) continue;
      const path = unitPath(o.dir, u.id);
      if (readUnit(path)) {
        report.skipped.push(u.id);
        continue;
      }
      if (!base) {
        base = await loadModel(c.options.model, { backend, onNote: note });
        await warmUp(base, o.items, c.before.batchSize);
      }
      const file = {
        manifest: o.manifest,
        runId,
        ...await computeSweepUnit(base, o.items, u, c.before),
      };
      atomicWrite(path, JSON.stringify(file) + "\n");
      report.ran.push(u.id);
      note(`unit ${u.id} (before: ${u.policy}, items ${u.start}-${u.end - 1}) written`);
    }
    return report;
  } finally {
    base?.dispose();
    try {
      lock.unlockSync();
    } catch { /* closing releases it */ }
    lock.close();
  }
}

function readTuneUnit(path: string): TuneUnitFile | undefined {
  let v: TuneUnitFile;
  try {
    v = JSON.parse(Deno.readTextFileSync(path));
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return undefined;
    throw new UnitError(`${path} is not a fine-tune unit (${(e as Error).message}): remove it`);
  }
  if (
    typeof v !== "object" || v === null || v.manifest?.kind !== "procedure" ||
    typeof v.units !== "object" || typeof v.modelDir !== "string"
  ) {
    throw new UnitError(`${path} is not a complete fine-tune unit: remove it and rerun`);
  }
  return v;
}

/** What {@linkcode mergeProcedureUnits} gives. */
export interface MergedProcedure {
  /** The procedure's result, as `runProcedure` gives it (timings aside). */
  result: ProcedureResult;
  /** The manifest. */
  manifest: ProcedureManifest;
  /** Units missing (empty unless `allowPartial`). */
  missing: string[];
}

/**
 * Reads a procedure's units, checks their manifests agree, and assembles its result.
 *
 * @param dir the run folder
 * @param o `allowPartial`: merge what is complete (missing fine-tune units leave their
 *   policy's after row as the before one, not fine-tuned)
 * @returns the result, the manifest, what is missing
 * @throws UnitError naming missing units or the field where manifests disagree
 * @example
 * ```ts
 * import { mergeProcedureUnits } from "./procedure_units.ts";
 * // const { result } = mergeProcedureUnits("out/proc");
 * ```
 */
export function mergeProcedureUnits(
  dir: string,
  o: { allowPartial?: boolean } = {},
): MergedProcedure {
  const udir = join(dir, UNITS_DIR);
  const names = [...Deno.readDirSync(udir)].filter((e) =>
    e.isFile && /^(t\d+|p\d+-b\d+)\.json$/.test(e.name)
  )
    .map((e) => e.name).sort();
  const first = JSON.parse(Deno.readTextFileSync(join(udir, names[0])))
    .manifest as ProcedureManifest;
  checkUnitManifests(udir, first);
  const c = first.config;
  const before = new Map<string, UnitBody & { runId: string }>();
  const tunes = new Map<number, TuneUnitFile>();
  for (const n of names) {
    if (n.startsWith("t")) {
      const f = readTuneUnit(join(udir, n))!;
      tunes.set(f.index, f);
    } else {
      const f = readUnit(join(udir, n)) as UnitFile;
      before.set(f.unit.id, f);
    }
  }
  const missingTunes = c.tuned.filter((k) => !tunes.has(k)).map(tuneId);
  const expected = procedureUnitIds(c.policies, c.tuned, c.before.data.items, c.before.blockItems);
  const missing = expected.filter((id) => !before.has(id) && !id.startsWith("t"))
    .concat(missingTunes);
  if (missing.length > 0 && !o.allowPartial) {
    throw new UnitError(
      `${missing.length} of ${expected.length} units missing in ${udir}: ` +
        `${missing.slice(0, 8).join(", ")}${missing.length > 8 ? " ..." : ""}; rerun the ` +
        `shards (complete units are skipped) or merge with --allow-partial`,
    );
  }
  const b = assembleSweepUnits(before, c.before, { where: udir, allowPartial: o.allowPartial });
  const after: ProcedureAfter[] = [];
  for (const [k, policy] of c.policies.entries()) {
    const row0 = b.result.rows.find((r) => r.policy === policy)!;
    const t = c.tuned.indexOf(k);
    const f = tunes.get(k);
    if (t < 0 || !f) {
      after.push({ row: { ...row0, fineTuned: false } });
      continue;
    }
    const found = new Map(Object.entries(f.units).map(([id, u]) => [id, { ...u, runId: f.runId }]));
    const sweep = assembleSweepUnits(found, afterConfig(c, t), {
      where: join(udir, `${f.id}.json`),
      model: f.model,
    }).result;
    const row = sweep.rows.find((r) => r.policy === policy)!;
    after.push({
      row: { ...row, fineTuned: true },
      sweep,
      modelDir: f.modelDir,
      trainSeconds: f.trainSeconds,
    });
  }
  const options: ProcedureOptions = { ...c.options };
  const wall = [...before.values()].reduce((a, u) => a + u.wallMs / 1000, 0) +
    [...tunes.values()].reduce(
      (a, f) =>
        a + f.trainSeconds + Object.values(f.units).reduce((x, u) => x + u.wallMs / 1000, 0),
      0,
    );
  const result: ProcedureResult = {
    options,
    policies: c.policies,
    before: b.result,
    after,
    overlap: c.overlap,
    heldOut: c.overlap === 0,
    laterTokens: laterTokens(b.result, after, c.options.resamples ?? 1000),
    wallSeconds: wall,
  };
  return { result, manifest: first, missing };
}

/**
 * Whether a run folder holds a procedure's units (else a sweep's).
 *
 * @param dir the run folder
 * @returns true when its first unit's manifest is a procedure's
 * @example
 * ```ts
 * import { isProcedureRun } from "./procedure_units.ts";
 * // isProcedureRun("out/proc"); // true
 * ```
 */
export function isProcedureRun(dir: string): boolean {
  try {
    const udir = join(dir, UNITS_DIR);
    const n = [...Deno.readDirSync(udir)].map((e) =>
      e.name
    ).filter((x) => /^(t\d+|p\d+-b\d+)\.json$/.test(x)).sort()[0];
    return n !== undefined &&
      JSON.parse(Deno.readTextFileSync(join(udir, n))).manifest?.kind === "procedure";
  } catch {
    return false;
  }
}
