/**
 * Merging a sweep's work units (`units.ts`) into the result a single process would have
 * computed: the per-item generations and NLLs of every (policy, block) unit are put back
 * in item order and go through the same assembly as a single run (`assembleSweep`), so
 * the table, the bootstrap intervals (same seed, same per-item data), the per-position
 * figures and the outputs are equal; only timings differ (they come from other processes:
 * a measured speedup whose units were not all timed in one run is marked `†`).
 *
 * Only complete unit files are read (a unit is written by a rename, so a killed one has no
 * file). Units whose manifests disagree are refused, naming the file and the field. A
 * missing unit is named; with `allowPartial` the blocks that every policy completed are
 * merged and the result says PARTIAL.
 *
 * @example
 * ```ts
 * import { mergeSweepUnits } from "./merge.ts";
 * // const { result, items, missing } = mergeSweepUnits("out/run");
 * ```
 * @module
 */
import { join } from "node:path";
import { summarizeNll } from "../eval/nll.ts";
import { oracleSummary } from "../eval/oracle.ts";
import {
  manifestDifference,
  readUnit,
  type SweepUnitConfig,
  sweepUnits,
  type UnitBody,
  UnitError,
  type UnitFile,
  unitId,
  type UnitManifest,
  UNITS_DIR,
  type WorkUnit,
} from "./units.ts";
import {
  assembleOracle,
  assembleSweep,
  concatGenParts,
  type SweepItem,
  type SweepOracle,
  sweepPolicies,
  type SweepResult,
} from "./sweep.ts";

/** Options of {@linkcode mergeSweepUnits}. */
export interface MergeOptions {
  /** Merge the complete blocks when units are missing (the result is PARTIAL). */
  allowPartial?: boolean;
}

/** What {@linkcode mergeSweepUnits} gives. */
export interface MergedSweep {
  /** The sweep's result, as a single run gives it (timings aside). */
  result: SweepResult;
  /** The merged items (all of them unless partial). */
  items: SweepItem[];
  /** The runs' manifest. */
  manifest: UnitManifest;
  /** Units missing (empty unless `allowPartial`). */
  missing: WorkUnit[];
  /** Items left out because a unit of their block is missing. */
  itemsLeftOut: number;
}

/**
 * Names missing units for a message: `p01-b0002 (linear:..., items 8-15)`, at most 8.
 *
 * @param units the missing units
 * @returns one line
 * @example
 * ```ts
 * import { describeUnits } from "./merge.ts";
 * describeUnits([{ id: "p00-b0001", policyIndex: 0, policy: "full", block: 1, start: 4, end: 8 }]);
 * // "p00-b0001 (full, items 4-7)"
 * ```
 */
export function describeUnits(units: readonly WorkUnit[]): string {
  const shown = units.slice(0, 8).map((u) =>
    `${u.id} (${u.policy}, items ${u.start}-${u.end - 1})`
  );
  return shown.join(", ") + (units.length > 8 ? ` and ${units.length - 8} more` : "");
}

/**
 * Reads every complete unit of a run folder, checks that their manifests agree, and
 * assembles the sweep's result.
 *
 * @param dir the run folder (holding `units/`)
 * @param options `allowPartial`
 * @returns the result, its items, the manifest, what is missing
 * @throws UnitError: no units, a unit that is not one, disagreeing manifests (naming the
 *   field), missing units (named) without `allowPartial`
 * @example
 * ```ts
 * import { mergeSweepUnits } from "./merge.ts";
 * // const merged = mergeSweepUnits("out/run", { allowPartial: true });
 * ```
 */
export function mergeSweepUnits(dir: string, options: MergeOptions = {}): MergedSweep {
  const udir = join(dir, UNITS_DIR);
  let names: string[];
  try {
    names = [...Deno.readDirSync(udir)].filter((e) => e.isFile && /^p\d+-b\d+\.json$/.test(e.name))
      .map((e) => e.name).sort();
  } catch (e) {
    throw new UnitError(
      `${dir} has no ${UNITS_DIR}/ folder of work units (${(e as Error).message})`,
    );
  }
  if (names.length === 0) throw new UnitError(`${udir} holds no complete work unit`);
  const found = new Map<string, UnitFile>();
  let first: { name: string; file: UnitFile } | undefined;
  for (const name of names) {
    const file = readUnit(join(udir, name))!;
    if (`${file.unit.id}.json` !== name) {
      throw new UnitError(`${join(udir, name)} holds unit ${file.unit.id}, not ${name}`);
    }
    if (!first) first = { name, file };
    else {
      const diff = manifestDifference(first.file.manifest, file.manifest);
      if (diff) {
        throw new UnitError(
          `${join(udir, name)} and ${join(udir, first.name)} come from different ` +
            `configurations: ${diff}; merge only units of one run`,
        );
      }
    }
    found.set(file.unit.id, file);
  }
  const manifest = first!.file.manifest;
  const c = manifest.config;
  const expected = sweepUnits(c.policies, c.data.items, c.blockItems);
  for (const id of found.keys()) {
    if (!expected.some((u) => u.id === id)) {
      throw new UnitError(`${unitFile(dir, id)} is not a unit of this run's configuration`);
    }
  }
  const m = assembleSweepUnits(found, c, {
    where: udir,
    allowPartial: options.allowPartial,
  });
  return { ...m, manifest };
}

/**
 * Assembles one sweep from its units' results (a sweep's, or one of a procedure's sweeps):
 * the blocks that every policy completed, in item order, through `assembleSweep`.
 *
 * @param found unit results by id (with the run that computed each)
 * @param c the sweep's configuration
 * @param o where the units are (for messages), `allowPartial`, the model's description
 *   when it is not `c.model` (a fine-tuned copy)
 * @returns the result, its items, what is missing
 * @throws UnitError naming the missing units (without `allowPartial`) or when no block is
 *   complete
 * @example
 * ```ts
 * import { assembleSweepUnits } from "./merge.ts";
 * // const { result } = assembleSweepUnits(units, config, { where: "out/run/units" });
 * ```
 */
export function assembleSweepUnits(
  found: ReadonlyMap<string, UnitBody & { runId: string }>,
  c: SweepUnitConfig,
  o: { where: string; allowPartial?: boolean; model?: SweepResult["model"] },
): Omit<MergedSweep, "manifest"> {
  const expected = sweepUnits(c.policies, c.data.items, c.blockItems);
  const missing = expected.filter((u) => !found.has(u.id));
  if (missing.length > 0 && !o.allowPartial) {
    throw new UnitError(
      `${missing.length} of ${expected.length} units missing in ${o.where}: ` +
        `${describeUnits(missing)}; rerun the shards (complete units are skipped) or merge ` +
        `with --allow-partial`,
    );
  }
  const K = c.policies.length;
  const blocks = [...new Set(expected.map((u) => u.block))].sort((a, b) => a - b)
    .filter((b) => c.policies.every((_, k) => found.has(unitId(k, b))));
  if (blocks.length === 0) {
    throw new UnitError(
      `no block of items has all ${K} policies' units in ${o.where} (missing: ` +
        `${describeUnits(missing)}): nothing to merge`,
    );
  }
  const unitsOf = (k: number) => blocks.map((b) => found.get(unitId(k, b))!);
  const base = unitsOf(0);
  const items = base.flatMap((u) => u.items);
  const promptLengths = base.flatMap((u) => u.promptLengths);
  const all = [...found.values()];
  const gens = c.policies.map((_, k) => {
    const units = unitsOf(k);
    const runs = new Set(units.map((u) => u.runId));
    return {
      part: concatGenParts(units.map((u) => u.gen)),
      // One run's timings compare with another's only when each policy was timed in one run.
      runId: runs.size === 1 ? units[0].runId : `several runs (policy ${k})`,
      cached: false,
    };
  });
  const nlls = c.policies.map((name, k) =>
    c.nll === false ? undefined : summarizeNll(name, unitsOf(k).flatMap((u) => u.nll ?? []))
  );
  let oracle: SweepOracle | undefined;
  if (c.oracle) {
    const parts = base.flatMap((u) => u.oracle ? [u.oracle] : []);
    const depths = parts.flatMap((p) => p.depths);
    const n = depths.length;
    const summary = oracleSummary(depths, {
      unmatched: parts.reduce((a, p) => a + p.unmatched, 0),
      forwards: parts.reduce((a, p) => a + p.forwards, 0),
      layers: c.model.layers,
      warmup: c.oracle.warmup,
      kind: "skipdecode",
    });
    oracle = assembleOracle(
      summary,
      parts.flatMap((p) => p.bound),
      base.flatMap((u) => u.gen.items).slice(0, n),
      items.slice(0, n).map((it) => it.refs),
    );
  }
  const startedAt = all.map((u) => u.startedAt).sort()[0];
  const result = assembleSweep({
    model: o.model ?? c.model,
    config: c.modelConfig,
    backend: c.backend,
    items,
    promptLengths,
    names: c.policies,
    resolved: sweepPolicies(c.policies),
    N: c.maxNewTokens,
    batchSize: c.batchSize,
    gens,
    nlls,
    oracle,
    runId: `merge of ${found.size} units`,
    startedAt,
    wallMs: all.reduce((a, u) => a + u.wallMs, 0),
    cacheHits: 0,
    resamples: c.bootstrap.resamples,
    seed: c.bootstrap.seed,
  });
  return { result, items, missing, itemsLeftOut: c.data.items - items.length };
}

function unitFile(dir: string, id: string): string {
  return join(dir, UNITS_DIR, `${id}.json`);
}
