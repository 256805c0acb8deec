/**
 * The paper's procedure split into work units (`experiments/procedure_units.ts`): three shards in
 * three concurrent processes (the before sweep's blocks and one fine-tune unit per
 * SkipDecode policy) merged equal the same procedure run in one process: every before and
 * after row (intervals included), the later-tokens analysis, the table and the charts
 * (timings aside); a rerun skips the complete units.
 */
import { assertEquals, assertMatch } from "@std/assert";
import { cli, sandbox } from "./cli_helpers.ts";
import { TIMING_FIELDS } from "./shard_helpers.ts";

const TINY = "bundled/models/tiny-opt-e2e";

function withoutTiming(json: Record<string, unknown>): Record<string, unknown> {
  const strip = (rows: Record<string, unknown>[]) =>
    rows.map((r) => {
      const o = { ...r };
      for (const k of TIMING_FIELDS) delete o[k];
      return o;
    });
  const { wallSeconds: _w, ...rest } = json;
  return {
    ...rest,
    before: strip(json.before as Record<string, unknown>[]),
    after: strip(json.after as Record<string, unknown>[]),
  };
}

Deno.test("procedure shards (cpu): 3 concurrent shards merged == one process", async () => {
  using box = sandbox("procedure-shards");
  const lines = Deno.readTextFileSync(
    new URL("../bundled/data/e2e/devset.csv", import.meta.url),
  ).split("\n").slice(0, 14).join("\n") + "\n";
  Deno.writeTextFileSync(`${box.dir}/d.csv`, lines);
  const csv = `${box.rel}/d.csv`;
  const args = [
    "procedure",
    "--model",
    TINY,
    "--train",
    csv,
    "--test",
    csv,
    "--policy",
    "linear:max=8,min=2,warmup=1,horizon=6",
    "--policy",
    "earlyexit:linear:max=8,min=2,warmup=0,horizon=6",
    "--steps",
    "2",
    "--train-batch-size",
    "2",
    "--items",
    "3",
    "--max-new-tokens",
    "6",
    "--batch-size",
    "2",
    "--oracle",
    "3",
    "--resamples",
    "50",
    "--backend",
    "cpu",
    "--no-cache",
  ];
  const single = await cli([
    ...args,
    "--json",
    "--out",
    `${box.rel}/single`,
    "--models-dir",
    `${box.rel}/models-single`,
  ]);
  assertEquals(single.code, 0, single.stderr);
  const sharded = [...args, "--unit-items", "2", "--out", `${box.rel}/sharded`, "--models-dir"];
  const shards = await Promise.all(
    [0, 1, 2].map((i) => cli([...sharded, `${box.rel}/models-sharded`, "--shard", `${i}/3`])),
  );
  for (const s of shards) assertEquals(s.code, 0, s.stderr);
  // 1 fine-tune unit + 3 policies x 2 blocks = 7 units
  assertMatch(shards.map((s) => s.stderr).join("\n"), /of 7 in all/);
  const merged = await cli(["merge", `${box.rel}/sharded`, "--json"]);
  assertEquals(merged.code, 0, merged.stderr);
  const a = JSON.parse(single.stdout), b = JSON.parse(merged.stdout);
  assertEquals(a.after.map((r: { fineTuned: boolean }) => r.fineTuned), [false, true, false]);
  assertEquals(withoutTiming(b), withoutTiming(a));
  const read = (d: string, f: string) => Deno.readTextFileSync(`${box.dir}/${d}/${f}`);
  const table = (md: string) => md.split("\n").filter((l) => l.startsWith("| `"));
  assertEquals(table(read("sharded", "report.md")), table(read("single", "report.md")));
  assertEquals(table(read("single", "report.md")).length, 3);
  for (const f of ["frontier.html", "oracle_depth.html", "nll_gap.html"]) {
    assertEquals(read("sharded", f), read("single", f), f);
  }
  const again = await cli([...sharded, `${box.rel}/models-sharded`, "--shard", "0/3"]);
  assertEquals(again.code, 0, again.stderr);
  assertMatch(again.stderr, /0 units run, 3 already complete, of 7 in all/);
});
