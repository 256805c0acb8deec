/**
 * `skipdecode merge DIR`: assembles the work units that `sweep --shard` or `procedure --shard`
 * (or a Slurm array, or a Kubernetes Indexed Job) wrote into `DIR/units/` and writes the
 * report a single process would have written into `DIR`: `report.md`, `sweep.json` (or
 * `procedure.json`), `generations.jsonl` and the charts. `--json` prints what
 * `sweep --json` (or `procedure --json`) prints. A missing unit is named;
 * `--allow-partial` merges the complete blocks into a report marked PARTIAL.
 *
 * @example
 * ```sh
 * deno task skipdecode merge out/run --json
 * ```
 * @module
 */
import { join } from "node:path";
import { type Command, pngOption, UsageError } from "./command.ts";
import { JSON_OUTPUT, withDefault } from "./options.ts";
import { OutputFolder } from "../io/output.ts";
import { describeUnits, mergeSweepUnits } from "../experiments/merge.ts";
import { UNITS_DIR } from "../experiments/units.ts";
import { sweepToJson } from "../experiments/sweep.ts";
import { procedureToJson, writeProcedureReport } from "../experiments/procedure.ts";
import { isProcedureRun, mergeProcedureUnits } from "../experiments/procedure_units.ts";
import {
  type FrontierMetric,
  type FrontierSpeedup,
  writeSweepReport,
} from "../experiments/report.ts";

/** Options of {@linkcode mergeRunFolder}. */
export interface MergeRunOptions {
  /** Merge complete blocks when units are missing (report marked PARTIAL). */
  allowPartial?: boolean;
  /** Print the table as JSON on stdout (what `sweep --json` prints). */
  json?: boolean;
  /** PNG pictures (`pngOption`). */
  png?: "auto" | false;
  /** Option name of the folder for messages (default `"DIR"`). */
  option?: string;
}

/**
 * Refuses a folder whose shards still run: each running shard holds the lock of its
 * `units/.shard-I-of-N.lock`.
 */
function checkNoShardRunning(dir: string): void {
  const udir = join(dir, UNITS_DIR);
  let names: string[] = [];
  try {
    names = [...Deno.readDirSync(udir)].map((e) => e.name).filter((n) =>
      /^\.shard-\d+-of-\d+\.lock$/.test(n)
    );
  } catch { /* no units: merge says so */ }
  for (const n of names) {
    let f: Deno.FsFile | undefined;
    try {
      f = Deno.openSync(join(udir, n), { read: true, write: true });
      if (!f.tryLockSync(true)) {
        const [, i, c] = /^\.shard-(\d+)-of-(\d+)\.lock$/.exec(n)!;
        throw new UsageError(
          `shard ${i}/${c} is still running into ${dir}; merge when every shard has ended`,
        );
      }
      f.unlockSync();
    } catch (e) {
      if (e instanceof UsageError) throw e;
    } finally {
      f?.close();
    }
  }
}

/**
 * Merges a run folder's units and writes its report (see the module documentation).
 *
 * @param dir the run folder
 * @param o partial, JSON, PNG
 * @returns 0 (errors are thrown, naming the unit or field)
 * @example
 * ```ts
 * import { mergeRunFolder } from "./merge.ts";
 * // await mergeRunFolder("out/run", { json: true });
 * ```
 */
export async function mergeRunFolder(dir: string, o: MergeRunOptions = {}): Promise<number> {
  const startedAt = new Date().toISOString();
  checkNoShardRunning(dir);
  // The merged report belongs to the kind of run the units came from (io/output.ts owners).
  const owner = isProcedureRun(dir) ? "procedure" : "sweep";
  const folder = OutputFolder.open(dir, { option: o.option ?? "DIR", owner });
  try {
    if (isProcedureRun(dir)) return await mergeProcedure(dir, folder, o);
    const m = mergeSweepUnits(dir, { allowPartial: o.allowPartial });
    const report = (m.manifest.report ?? {}) as {
      title?: string;
      data?: { file: string; heldOut?: boolean; why?: string };
      metric?: FrontierMetric;
      speedup?: FrontierSpeedup;
      dataFile?: string;
    };
    const partial = m.missing.length > 0
      ? `**PARTIAL**: ${m.missing.length} work units missing (${describeUnits(m.missing)}); ` +
        `${m.itemsLeftOut} of ${m.manifest.config.data.items} items left out. Rerun the ` +
        `missing shards and merge again for the full report.`
      : undefined;
    const files = await writeSweepReport(m.result, folder, {
      title: (partial ? "PARTIAL: " : "") + (report.title ?? "SkipDecode policy sweep"),
      intro: partial,
      png: o.png ?? false,
      data: report.data,
      metric: report.metric,
      speedup: report.speedup,
      manifest: {
        command: "merge",
        config: { dir, allowPartial: Boolean(o.allowPartial), units: m.manifest.config },
        model: { source: m.result.model.source, dir: m.result.model.dir },
        data: {
          source: report.data?.file ?? report.dataFile ?? "",
          files: report.dataFile ? [report.dataFile] : [],
          template: m.manifest.config.data.template ?? undefined,
          items: m.result.items,
        },
        backend: { name: m.result.backend },
        seed: 0,
        startedAt,
      },
    }, m.items);
    if (o.json) {
      console.log(JSON.stringify({
        ...sweepToJson(m.result),
        ...(partial ? { partial: { missingUnits: m.missing.map((u) => u.id) } } : {}),
      }));
    } else {
      console.error(
        `merged ${m.result.rows.length} policies x ${m.result.items} items into ${dir}/` +
          `${files.report}${partial ? " (PARTIAL)" : ""}`,
      );
    }
    if (partial) console.error(`warning: ${partial.replaceAll("**", "")}`);
    return 0;
  } finally {
    folder.close();
  }
}

async function mergeProcedure(
  dir: string,
  folder: OutputFolder,
  o: MergeRunOptions,
): Promise<number> {
  const m = mergeProcedureUnits(dir, { allowPartial: o.allowPartial });
  const command = (m.manifest.report?.command as string | undefined) ?? undefined;
  const files = await writeProcedureReport(m.result, folder, { command, png: o.png ?? false });
  const partial = m.missing.length > 0
    ? `PARTIAL: ${m.missing.length} work units missing (${m.missing.slice(0, 8).join(", ")}); ` +
      `rerun the missing shards and merge again for the full report.`
    : undefined;
  if (partial) {
    const md = Deno.readTextFileSync(join(dir, files.report));
    folder.write(files.report, `# ${partial}\n\n${md}`);
    console.error(`warning: ${partial}`);
  }
  if (o.json) {
    console.log(JSON.stringify({
      ...procedureToJson(m.result),
      ...(partial ? { partial: { missingUnits: m.missing } } : {}),
    }));
  } else {
    console.error(`merged the procedure's units into ${dir}/${files.report}`);
  }
  return 0;
}

/** The `merge` command. */
export const mergeCommand: Command = {
  name: "merge",
  summary: "assemble a sharded sweep's or procedure's work units (DIR/units) into its report",
  operands: ["DIR"],
  options: {
    ...withDefault(JSON_OUTPUT, undefined, {
      description: "print the table as JSON (as sweep --json does)",
    }),
    "allow-partial": {
      kind: "flag",
      description: "merge the complete blocks when units are missing (report marked PARTIAL)",
    },
    png: {
      kind: "flag",
      description: "PNG pictures of the charts with Chromium (where the task may run it)",
    },
  },
  details: () =>
    "DIR is the --out of `sweep --shard I/N` (or of its Slurm array). Every unit's manifest " +
    "must agree (configuration, model and data hashes, toolkit version and commit).",
  async run(v, positionals) {
    if (positionals.length !== 1) {
      throw new UsageError(
        `merge takes one folder, got ${positionals.length} (usage: skipdecode merge DIR)`,
      );
    }
    return await mergeRunFolder(positionals[0], {
      allowPartial: Boolean(v["allow-partial"]),
      json: Boolean(v.json),
      png: pngOption(v.png),
    });
  },
};
