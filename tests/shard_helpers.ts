/**
 * Shared pieces of the sharded-sweep and Slurm tests: a small sweep's options (tiny model,
 * 5 items in batches of 2, so the last unit is short; prompt decay, whose budgets depend on
 * the batch; NLL of every reference; the oracle on 3 items, across two units) and the comparison of a merged report with a single
 * process's (every row and interval, the outputs, the charts; timing columns aside).
 *
 * @module
 */
import { assert, assertEquals } from "@std/assert";

/** The sweep's options for a backend (no `--out`, no shard). */
export function sweepArgs(backend: "cpu" | "webgpu"): string[] {
  return [
    "sweep",
    "--backend",
    backend,
    "--data",
    "bundled/data/e2e/devset.csv",
    "--items",
    "5",
    "--batch-size",
    "2",
    "--max-new-tokens",
    "6",
    "--policy",
    "linear:max=10,min=2,warmup=1,horizon=6",
    "--policy",
    "linear:max=8,min=2,warmup=1,horizon=6,prompt=decay",
    "--nll",
    "all",
    "--oracle",
    "3",
    "--no-cache",
  ];
}

/** Items per unit in these tests: one batch (5 items: units of 2, 2 and 1 item). */
export const UNIT_ARGS = ["--unit-items", "2"];

/** Row fields measured in wall time (they differ between processes). */
export const TIMING_FIELDS = [
  "measuredSpeedup",
  "measuredSpeedupRange",
  "measuredBatches",
  "generateMs",
  "decodeMs",
  "tokensPerSecond",
  "cached",
  "timedInSameRun",
];

function withoutTiming(json: Record<string, unknown>): Record<string, unknown> {
  const rows = (json.rows as Record<string, unknown>[]).map((r) => {
    const o = { ...r };
    for (const k of TIMING_FIELDS) delete o[k];
    return o;
  });
  const { startedAt: _s, wallMs: _w, cacheHits: _c, ...rest } = json;
  return { ...rest, rows };
}

/** The Markdown table rows of a report without the measured-speedup column (the 7th cell). */
export function tableRows(md: string): string[] {
  return md.split("\n").filter((l) => l.startsWith("| `")).map((l) => {
    const cells = l.split(" | ");
    cells.splice(5, 1);
    return cells.join(" | ");
  });
}

/**
 * Asserts that a merged sweep equals a single run: `sweep --json` output (every row field
 * but timings, intervals included, per-position agreement), and in the two folders
 * `generations.jsonl`, the charts and the report's table rows.
 */
export function assertSameSweep(
  single: { json: string; dir: string },
  merged: { json: string; dir: string },
): void {
  const a = JSON.parse(single.json), b = JSON.parse(merged.json);
  assert(a.rows.length === 3 && a.rows[1].bleuCI.length === 2, "the single run has 3 rows");
  assertEquals(withoutTiming(b), withoutTiming(a));
  const read = (d: string, f: string) => Deno.readTextFileSync(`${d}/${f}`);
  assert(a.oracle.depths.length === 3, "the oracle covers 3 items (2 units)");
  const charts = ["budgets.html", "frontier.html", "nll_gap.html", "oracle_depth.html"];
  for (const f of ["generations.jsonl", "items.csv", ...charts]) {
    assert(read(single.dir, f) === read(merged.dir, f), `${f} differs`);
  }
  const rows = tableRows(read(single.dir, "report.md"));
  assertEquals(rows.length, 3);
  assertEquals(tableRows(read(merged.dir, "report.md")), rows);
}
