/**
 * Sweeps on a real (one-node) Slurm cluster that the test starts itself
 * (`slurm_cluster.ts`): `sweep --slurm --submit` runs a 4-task array through `sbatch`,
 * waits and merges, equal to the same sweep in one process; a task cancelled (`scancel`)
 * leaves its units missing, merge names them, resubmitting the same script
 * runs only those (complete units are skipped) and the merge equals the single run again.
 * Skipped loudly where Slurm cannot start (an error under `CI`).
 */
import { assert, assertEquals, assertMatch } from "@std/assert";
import { cli, sandbox } from "./cli_helpers.ts";
import { assertSameSweep, sweepArgs, UNIT_ARGS } from "./shard_helpers.ts";
import { startSlurm, waitForJob } from "./slurm_cluster.ts";

Deno.test({
  name: "slurm: a 4-task array merged == one process; scancel one task, rerun, same tables",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn(t) {
    const cluster = await startSlurm();
    if (!cluster) return;
    using box = sandbox("slurm");
    try {
      const single = await cli([...sweepArgs("cpu"), "--out", `${box.rel}/single`, "--json"]);
      assertEquals(single.code, 0, single.stderr);
      const slurmArgs = [...UNIT_ARGS, "--slurm", "--shards", "4", "--cpus-per-task", "1"];

      await t.step("sweep --slurm --submit: sbatch array of 4, wait, merge", async () => {
        const r = await cli(
          [
            ...sweepArgs("cpu"),
            ...slurmArgs,
            "--max-parallel",
            "2",
            "--submit",
            "--json",
            "--out",
            `${box.rel}/array`,
          ],
          { env: cluster.env },
        );
        assertEquals(r.code, 0, r.stderr);
        const script = Deno.readTextFileSync(`${box.dir}/array/sweep.sbatch`);
        assertMatch(script, /^#SBATCH --array=0-3%2$/m);
        assertMatch(script, /^#SBATCH --cpus-per-task=1$/m);
        assertMatch(script, /--allow-write=\S+\/array /);
        const logs = [...Deno.readDirSync(`${box.dir}/array/logs`)].map((e) => e.name);
        assertEquals(logs.filter((n) => n.endsWith(".err")).length, 4, logs.join(" "));
        const errs = logs.filter((n) => n.endsWith(".err")).map((n) =>
          Deno.readTextFileSync(`${box.dir}/array/logs/${n}`)
        ).join("\n");
        for (const i of [0, 1, 2, 3]) {
          assertMatch(errs, new RegExp(`shard ${i}/4 from the environment \\(SLURM_ARRAY_TASK_ID`));
        }
        assertSameSweep(
          { json: single.stdout, dir: `${box.dir}/single` },
          { json: r.stdout, dir: `${box.dir}/array` },
        );
      });

      await t.step(
        "scancel one task of the array; merge names its units; a rerun completes",
        async () => {
          const out = `${box.rel}/cancel`;
          const w = await cli([...sweepArgs("cpu"), ...slurmArgs, "--out", out], {
            env: cluster.env,
          });
          assertEquals(w.code, 0, w.stderr);
          const script = `${box.dir}/cancel/sweep.sbatch`;
          // Deterministic: submitted held, task 1 cancelled before it can start, the rest
          // released and run. (Cancelling a task that is already RUNNING raced with a task
          // that finishes its two units in a second; SIGKILL in the middle of a unit is
          // tested by kill9_test.ts.)
          const id = (await cluster.run("sbatch", ["--parsable", "--hold", script]))
            .split(";")[0].trim();
          await cluster.run("scancel", [`${id}_1`]);
          await cluster.run("scontrol", ["release", id]);
          await waitForJob(cluster, id);
          // Task 1 of 4 holds units 1 and 5 of the block-major order: p01-b0000, p02-b0001.
          const m = await cli(["merge", out]);
          assertEquals(m.code, 2, m.stderr);
          assertMatch(m.stderr, /units missing .*p01-b0000/);
          assert(
            [...Deno.readDirSync(`${box.dir}/cancel/units`)].every((e) =>
              !e.name.endsWith(".json") || JSON.parse(
                Deno.readTextFileSync(`${box.dir}/cancel/units/${e.name}`),
              ).manifest
            ),
          );
          const again = (await cluster.run("sbatch", ["--parsable", script])).split(";")[0];
          await waitForJob(cluster, again);
          const merged = await cli(["merge", out, "--json"]);
          assertEquals(merged.code, 0, merged.stderr);
          assertSameSweep(
            { json: single.stdout, dir: `${box.dir}/single` },
            { json: merged.stdout, dir: `${box.dir}/cancel` },
          );
          const logs = [...Deno.readDirSync(`${box.dir}/cancel/logs`)]
            .filter((e) => e.name.startsWith(`${again}_`) && e.name.endsWith(".err"))
            .map((e) => Deno.readTextFileSync(`${box.dir}/cancel/logs/${e.name}`)).join("\n");
          assertMatch(logs, /shard 0\/4: 0 units run, 3 already complete/);
        },
      );
    } finally {
      await cluster.stop();
    }
  },
});
