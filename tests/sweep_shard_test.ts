/**
 * Sharded sweeps: work units and shard assignment (pure), then the command line as a task
 * user runs it: three shards in three concurrent processes merged equal one process (every
 * row, intervals included, outputs, charts) on the CPU and on WebGPU; a rerun skips
 * complete units; a second process of a running shard is refused; a shard killed with
 * SIGKILL leaves only complete units, merge names what is missing, `--allow-partial` marks
 * its report PARTIAL, and a rerun completes it; units of another configuration are refused
 * naming the field.
 */
import { assert, assertEquals, assertMatch, assertThrows } from "@std/assert";
import { cli, collect, sandbox, spawnCli } from "./cli_helpers.ts";
import { testGpu } from "./webgpu_helpers.ts";
import { assertSameSweep, sweepArgs, UNIT_ARGS } from "./shard_helpers.ts";
import {
  manifestDifference,
  parseShard,
  readUnit,
  shardFromEnv,
  shardUnits,
  sweepUnits,
} from "../experiments/units.ts";

Deno.test("work units: blocks, ids, a deterministic round-robin share, shard parsing", () => {
  const units = sweepUnits(["full", "a", "b"], 5, 2);
  assertEquals(units.map((u) => u.id), [
    "p00-b0000",
    "p01-b0000",
    "p02-b0000",
    "p00-b0001",
    "p01-b0001",
    "p02-b0001",
    "p00-b0002",
    "p01-b0002",
    "p02-b0002",
  ]);
  assertEquals(units.at(-1)!.start, 4);
  assertEquals(units.at(-1)!.end, 5);
  const shares = [0, 1, 2, 3].map((i) => shardUnits(units, { index: i, count: 4, from: "x" }));
  assertEquals(shares.flat().map((u) => u.id).sort(), units.map((u) => u.id).sort());
  assertEquals(shares[1].map((u) => u.id), ["p01-b0000", "p02-b0001"]);
  assertEquals(parseShard("2/3"), { index: 2, count: 3, from: "--shard" });
  for (const bad of ["3/3", "1", "-1/2", "1/0", "a/b"]) {
    assertThrows(() => parseShard(bad), RangeError, "--shard");
  }
  const env = (o: Record<string, string>) => (k: string) => o[k];
  assertEquals(shardFromEnv(env({})), undefined);
  assertEquals(
    shardFromEnv(
      env({ SLURM_ARRAY_TASK_ID: "5", SLURM_ARRAY_TASK_COUNT: "4", SLURM_ARRAY_TASK_MIN: "2" }),
    ),
    { index: 3, count: 4, from: "SLURM_ARRAY_TASK_ID" },
  );
  assertEquals(shardFromEnv(env({ JOB_COMPLETION_INDEX: "1" }), 3), {
    index: 1,
    count: 3,
    from: "JOB_COMPLETION_INDEX",
  });
  assertThrows(() => shardFromEnv(env({ JOB_COMPLETION_INDEX: "1" })), RangeError, "--shards");
  assertThrows(() => shardFromEnv(env({ SLURM_ARRAY_TASK_ID: "1" })), RangeError, "COUNT");
  assertEquals(
    manifestDifference({ config: { a: 1, b: [1, 2] }, report: 1 }, {
      config: { a: 1, b: [1, 3] },
      report: 2,
    }),
    "config.b.1: 2 vs 3",
  );
  assertEquals(
    manifestDifference({ config: { a: 1 }, report: 1 }, { config: { a: 1 } }),
    undefined,
  );
});

/** Runs the sweep once in one process and as three concurrent shards, then merges. */
async function singleAndSharded(backend: "cpu" | "webgpu", rel: string) {
  const single = await cli([...sweepArgs(backend), "--out", `${rel}/single`, "--json"]);
  assertEquals(single.code, 0, single.stderr);
  const shards = await Promise.all(
    [0, 1, 2].map((i) =>
      cli([...sweepArgs(backend), ...UNIT_ARGS, "--shard", `${i}/3`, "--out", `${rel}/sharded`])
    ),
  );
  for (const s of shards) {
    assertEquals(s.code, 0, s.stderr);
    assertMatch(s.stderr, /3 units run, 0 already complete, of 9 in all/);
  }
  const merged = await cli(["merge", `${rel}/sharded`, "--json"]);
  assertEquals(merged.code, 0, merged.stderr);
  return { single, merged };
}

Deno.test("sweep shards (cpu): 3 concurrent shards merged == one process; reruns, SIGKILL, refusals", async (t) => {
  using box = sandbox("shards");
  const { single, merged } = await singleAndSharded("cpu", box.rel);
  assertSameSweep(
    { json: single.stdout, dir: `${box.dir}/single` },
    { json: merged.stdout, dir: `${box.dir}/sharded` },
  );

  await t.step("a rerun skips the complete units", async () => {
    const r = await cli([
      ...sweepArgs("cpu"),
      ...UNIT_ARGS,
      "--shard",
      "1/3",
      "--out",
      `${box.rel}/sharded`,
    ]);
    assertEquals(r.code, 0, r.stderr);
    assertMatch(r.stderr, /0 units run, 3 already complete/);
  });

  await t.step("a second process of a running shard is refused", async () => {
    // The test holds shard 0/3's lock as a running shard does.
    using lock = Deno.openSync(`${box.dir}/sharded/units/.shard-0-of-3.lock`, {
      read: true,
      write: true,
    });
    assert(lock.tryLockSync(true));
    const r = await cli([
      ...sweepArgs("cpu"),
      ...UNIT_ARGS,
      "--shard",
      "0/3",
      "--out",
      `${box.rel}/sharded`,
    ]);
    assertEquals(r.code, 2, r.stderr);
    assertMatch(r.stderr, /^error: shard 0\/3 is already running into .*sharded/m);
    const m = await cli(["merge", `${box.rel}/sharded`]);
    assertEquals(m.code, 2);
    assertMatch(m.stderr, /shard 0\/3 is still running/);
    lock.unlockSync();
  });

  await t.step("units of another configuration are refused, naming the field", async () => {
    const args = sweepArgs("cpu").map((a) => a === "6" ? "5" : a); // --max-new-tokens 5
    const r = await cli([...args, ...UNIT_ARGS, "--shard", "0/3", "--out", `${box.rel}/sharded`]);
    assertEquals(r.code, 2, r.stderr);
    assertMatch(r.stderr, /another run configuration \(config\.maxNewTokens: 6 vs 5\)/);
  });

  await t.step(
    "SIGKILL leaves no partial unit; merge names the missing; a rerun completes",
    async () => {
      const dir = `${box.rel}/killed`;
      const child = spawnCli([...sweepArgs("cpu"), ...UNIT_ARGS, "--shard", "0/1", "--out", dir]);
      const units = () => {
        try {
          return [...Deno.readDirSync(`${box.dir}/killed/units`)].map((e) => e.name)
            .filter((n) => n.endsWith(".json"));
        } catch {
          return [];
        }
      };
      // Block 0 complete (all three policies), then kill in the middle of the next unit.
      while (units().length < 3) await new Promise((r) => setTimeout(r, 100));
      child.kill("SIGKILL");
      const k = await collect(child);
      assertEquals(k.signal, "SIGKILL");
      const done = units();
      assert(done.length >= 3 && done.length < 9, `${done.length} units written before the kill`);
      for (const n of done) assert(readUnit(`${box.dir}/killed/units/${n}`), n); // complete, parsable
      const m = await cli(["merge", dir]);
      assertEquals(m.code, 2);
      assertMatch(
        m.stderr,
        new RegExp(`error: ${9 - done.length} of 9 units missing .*p0\\d-b000\\d`),
      );
      const p = await cli(["merge", dir, "--allow-partial", "--json"]);
      assertEquals(p.code, 0, p.stderr);
      assert(JSON.parse(p.stdout).partial.missingUnits.length === 9 - done.length);
      assertMatch(Deno.readTextFileSync(`${box.dir}/killed/report.md`), /^# PARTIAL: /);
      const again = await cli([...sweepArgs("cpu"), ...UNIT_ARGS, "--shard", "0/1", "--out", dir]);
      assertEquals(again.code, 0, again.stderr);
      assertMatch(again.stderr, new RegExp(`${9 - done.length} units run, ${done.length} already`));
      const full = await cli(["merge", dir, "--json"]);
      assertEquals(full.code, 0, full.stderr);
      assertSameSweep(
        { json: single.stdout, dir: `${box.dir}/single` },
        { json: full.stdout, dir: `${box.dir}/killed` },
      );
      assert(!/PARTIAL/.test(Deno.readTextFileSync(`${box.dir}/killed/report.md`)));

      // A unit whose manifest disagrees is refused by merge, naming the field.
      const f = `${box.dir}/killed/units/p01-b0001.json`;
      const u = JSON.parse(Deno.readTextFileSync(f));
      u.manifest.hashes.data = "0".repeat(64);
      Deno.writeTextFileSync(f, JSON.stringify(u));
      const bad = await cli(["merge", dir]);
      assertEquals(bad.code, 2);
      assertMatch(
        bad.stderr,
        /p01-b0001\.json and .* come from different configurations: hashes\.data/,
      );
    },
  );
});

Deno.test({
  name: "sweep shards (webgpu): 3 concurrent shards merged == one process",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    // The shared test device (destroyed when the module ends): null, loudly, without an
    // adapter; an error under CI. The sweeps themselves run in their own processes.
    if (!(await testGpu())) return;
    using box = sandbox("shards-gpu");
    const { single, merged } = await singleAndSharded("webgpu", box.rel);
    assertEquals(JSON.parse(single.stdout).backend, "webgpu");
    assertSameSweep(
      { json: single.stdout, dir: `${box.dir}/single` },
      { json: merged.stdout, dir: `${box.dir}/sharded` },
    );
  },
});

Deno.test("sweep --shard/--slurm and merge: bad input is one line naming the option; the sbatch script", async () => {
  using box = sandbox("shard-args");
  const cases: [string[], RegExp][] = [
    [["sweep", "--shard", "3/3", "--out", `${box.rel}/a`], /--shard 3\/3: need 0 <= I < N/],
    [["sweep", "--shard", "x", "--out", `${box.rel}/a`], /--shard must be I\/N/],
    [
      ["sweep", "--batch-size", "2", "--unit-items", "3", "--out", `${box.rel}/a`],
      /--unit-items 3 must be a multiple of --batch-size 2/,
    ],
    [["sweep", "--slurm", "--out", `${box.rel}/a`], /--slurm needs --shards N/],
    [["sweep", "--submit", "--out", `${box.rel}/a`], /--submit goes with --slurm/],
    [
      ["sweep", "--slurm", "--shards", "2", "--mem", "4G; rm -rf /", "--out", `${box.rel}/a`],
      /--mem must be a plain Slurm value/,
    ],
    [["merge"], /merge takes one folder/],
    [["merge", `${box.rel}/none`], /has no units\/ folder/],
    // merge rebuilds policies from their names and cannot load a --policy-file: every shard
    // ran to its end and merge then failed with "unknown policy"
    [
      ["sweep", "--policy-file", `${box.rel}/desc.ts`, "--shard", "0/2", "--out", `${box.rel}/a`],
      /--policy-file .*desc\.ts does not go with --shard/,
    ],
    [
      [
        "sweep",
        "--policy-file",
        `${box.rel}/desc.ts`,
        "--slurm",
        "--shards",
        "2",
        "--out",
        `${box.rel}/a`,
      ],
      /--policy-file .*desc\.ts does not go with --slurm/,
    ],
  ];
  Deno.writeTextFileSync(
    `${box.dir}/desc.ts`,
    `import { defineSchedule } from "../../schedule/mod.ts";
export const HALFWAY = defineSchedule({
  form: "schedule", name: "halfwayshard", summary: "L, then n after k tokens",
  params: [{ key: "n", type: "int", min: 1, default: 6, doc: "budget" },
           { key: "k", type: "int", min: 0, default: 2, doc: "j below k runs all layers" }],
  promptMode: true, example: "halfwayshard:n=6,k=2",
  budget: (p, j, _H, L) => (j < p.k ? L : p.n),
});
`,
  );
  for (const [args, pattern] of cases) {
    const r = await cli(args, { env: { JOB_COMPLETION_INDEX: "" } });
    assertEquals(r.code, 2, `${args.join(" ")}: exit ${r.code}, ${r.stderr}`);
    assertMatch(r.stderr, /^error: [^\n]+\n$/);
    assertMatch(r.stderr, pattern);
  }
  assert(!exists(`${box.dir}/none`), "a failed merge leaves no folder behind");
  const k8s = await cli(["sweep", "--out", `${box.rel}/a`], { env: { JOB_COMPLETION_INDEX: "1" } });
  assertEquals(k8s.code, 2);
  assertMatch(
    k8s.stderr,
    /JOB_COMPLETION_INDEX is set but the shard count is not: pass --shards N/,
  );

  const w = await cli(
    [
      "sweep",
      "--items",
      "7",
      "--slurm",
      "--shards",
      "3",
      "--gres",
      "gpu:1",
      "--backend",
      "webgpu",
      "--out",
      `${box.rel}/s`,
    ],
    { env: { VK_ICD_FILENAMES: "/usr/share/vulkan/icd.d/nvidia_icd.json" } },
  );
  assertEquals(w.code, 0, w.stderr);
  const script = Deno.readTextFileSync(`${box.dir}/s/sweep.sbatch`);
  assertMatch(script, /^#SBATCH --array=0-2%3$/m);
  assertMatch(script, /^#SBATCH --gres=gpu:1$/m);
  assertMatch(script, new RegExp(`^#SBATCH --output=${box.dir}/s/logs/%A_%a.out$`, "m"));
  assertMatch(script, /^export VK_ICD_FILENAMES=\/usr\/share\/vulkan\/icd\.d\/nvidia_icd\.json$/m);
  assertMatch(script, new RegExp(`--allow-write=${box.dir}/s `));
  assert(
    !/--allow-(all|run|net)|\s-A\s/.test(script),
    "the task gets no run, net or all permission",
  );
  for (
    const a of ["--items 7", "--backend webgpu", "--offline", `--out ${box.dir}/s`, "--data /"]
  ) {
    assert(script.replace(/ \\\n\s+/g, " ").includes(a), `the deno run line lacks ${a}`);
  }

  // procedure --slurm: the task also reads the training and test files and writes the copies.
  const csv = "bundled/data/e2e/devset.csv";
  const p = await cli([
    "procedure",
    "--model",
    "bundled/models/tiny-opt-e2e",
    "--train",
    csv,
    "--test",
    csv,
    "--slurm",
    "--shards",
    "2",
    "--models-dir",
    `${box.rel}/m`,
    "--out",
    `${box.rel}/p`,
  ]);
  assertEquals(p.code, 0, p.stderr);
  const ps = Deno.readTextFileSync(`${box.dir}/p/procedure.sbatch`).replace(/ \\\n\s+/g, " ");
  assertMatch(ps, /^#SBATCH --array=0-1%2$/m);
  assert(ps.includes(`--allow-write=${box.dir}/p,${box.dir}/m `), "writes: out and models-dir");
  assertMatch(ps, /--allow-read=\S+,\S+\/bundled\/models\/tiny-opt-e2e,\S+devset\.csv/);
  assert(ps.includes(` procedure --model `), "the task runs procedure");
  assert(ps.includes(`--models-dir ${box.dir}/m`) && ps.endsWith(`--out ${box.dir}/p\n`), ps);
});

function exists(p: string): boolean {
  try {
    Deno.statSync(p);
    return true;
  } catch {
    return false;
  }
}
