/**
 * kill -9 at seeded random moments of checkpoint saves and of report-set writes, 20 trials
 * each (`tests/kill9_child.ts` saves over and over into one folder): afterwards the folder
 * holds one complete save, the old one or a new one, once the next open completes a commit
 * the kill cut short; a training resume from it either reads exactly one save (weights,
 * optimizer and trainer state of the same step) or refuses; nothing is left behind.
 * SIGINT trials through the command line are in `tests/cli_interrupt_test.ts`; the same
 * with SIGKILL through `skipdecode train --resume` is in `tests/adversarial/`.
 */
import { assert, assertEquals } from "@std/assert";
import { OutputFolder, readFileSet, sha256File } from "../io/output.ts";
import { loadTrainingCheckpoint } from "../train/checkpoint.ts";
import { rng } from "./helpers.ts";
import { saveValue } from "./kill9_child.ts";

const TRIALS = 20;
const CHILD = new URL("./kill9_child.ts", import.meta.url).pathname;

async function killAt(mode: string, dir: string, ms: number): Promise<void> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", `--allow-read`, `--allow-write=${dir}`, CHILD, mode, dir],
    stdout: "null",
    stderr: "piped",
  }).spawn();
  await new Promise((r) => setTimeout(r, ms));
  child.kill("SIGKILL");
  const st = await child.status;
  assert(st.signal === "SIGKILL", `the writer ended by itself: ${st.code}`);
}

function hidden(dir: string): string[] {
  return [...Deno.readDirSync(dir)].map((e) => e.name).filter((n) =>
    n.startsWith(".") && n !== ".skipdecode-files.json" && n !== ".skipdecode.lock"
  );
}

Deno.test(`kill -9 during checkpoint saves, ${TRIALS} trials: one complete save or a refusal`, async () => {
  const dir = Deno.makeTempDirSync({ prefix: "kill9-train-" });
  const rand = rng(20);
  const seen = { resumed: 0, refused: 0, empty: 0, completed: 0 };
  try {
    for (let t = 0; t < TRIALS; t++) {
      await killAt("train", dir, 250 + rand() * 1200);
      const pending = hidden(dir).includes(".skipdecode-commit.json");
      let ck;
      try {
        ck = loadTrainingCheckpoint(dir); // completes a cut commit, verifies the hashes
      } catch (e) {
        if ((e as Error).name !== "CheckpointError") throw e;
        // Only a folder that never got a first save may be unreadable.
        assertEquals(readFileSet(dir), undefined, `trial ${t}: refused ${(e as Error).message}`);
        seen.empty++;
        continue;
      }
      if (pending) seen.completed++;
      const step = (ck.trainerState as { step: number }).step;
      assertEquals(ck.adam?.step, step, `trial ${t}: optimizer and trainer state`);
      const v = saveValue(step);
      for (const a of ck.params.arrays) assert(a.every((x) => x === v), `trial ${t}: weights`);
      for (const a of ck.adam!.m.arrays) assert(a.every((x) => x === v), `trial ${t}: moments`);
      const set = readFileSet(dir)!;
      for (const n of set.files) {
        assertEquals(sha256File(`${dir}/${n}`), set.sha256[n], `trial ${t}: ${n}`);
      }
      seen.resumed++;
      // The next writer's open removes leftovers; check none survive a clean start.
      OutputFolder.open(dir).close();
      assertEquals(hidden(dir), [], `trial ${t}: leftovers`);
    }
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
  console.log(`  ${TRIALS} trials: ${JSON.stringify(seen)}`);
  assert(seen.resumed >= TRIALS / 2, "most kills land after a first save");
});

Deno.test(`kill -9 during report-set writes, ${TRIALS} trials: the old set or the new one`, async () => {
  const dir = Deno.makeTempDirSync({ prefix: "kill9-report-" });
  const rand = rng(21);
  const seen = { complete: 0, completedCommit: 0, empty: 0 };
  try {
    for (let t = 0; t < TRIALS; t++) {
      await killAt("report", dir, 250 + rand() * 1200);
      const pending = hidden(dir).includes(".skipdecode-commit.json");
      OutputFolder.open(dir, { owner: "sweep" }).close(); // completes a cut commit
      assertEquals(hidden(dir), [], `trial ${t}: leftovers`);
      const set = readFileSet(dir);
      if (!set) {
        seen.empty++;
        continue;
      }
      if (pending) seen.completedCommit++;
      const run = JSON.parse(Deno.readTextFileSync(`${dir}/sweep.json`)).run as number;
      const md = Deno.readTextFileSync(`${dir}/report.md`);
      assert(
        md.startsWith(`# run ${run}\n`) && md.endsWith(`run ${run}\n`),
        `trial ${t}: report.md`,
      );
      const gens = Deno.readTextFileSync(`${dir}/generations.jsonl`).trim().split("\n");
      assert(gens.every((l) => JSON.parse(l).run === run), `trial ${t}: generations mixed`);
      const charts = [...Deno.readDirSync(dir)].map((e) => e.name).filter((n) =>
        n.endsWith(".html")
      );
      assertEquals(charts, [`chart-${run % 3}.html`], `trial ${t}: charts of another run`);
      assertEquals(Deno.readTextFileSync(`${dir}/${charts[0]}`), `<html>run ${run}</html>`);
      seen.complete++;
    }
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
  console.log(`  ${TRIALS} trials: ${JSON.stringify(seen)}`);
});
