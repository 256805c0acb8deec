/**
 * kill -9 at seeded random moments of `skipdecode train` (tiny checkpoint, 2 steps, a save
 * after each), over a folder that holds a complete earlier run with the same seed: after
 * each kill, every checkpoint folder holds one complete save once its pending commit is
 * completed (`verifyCheckpointSet`), and `train --resume <folder>/checkpoint-1` either
 * refuses or ends with exactly the weights of an uninterrupted run (SHA-256 of
 * `model.safetensors`). The in-suite version over the same save code is
 * `tests/kill9_test.ts`; this one goes through the command line and is slower (about 30 s
 * a trial on a 2-core machine).
 *
 * ```sh
 * XDG_RUNTIME_DIR=/tmp/xdg npx -y deno@2.9.6 run -A tests/adversarial/kill9_train.ts [TRIALS]
 * ```
 *
 * @module
 */
import { cli, sandbox, spawnCli } from "../cli_helpers.ts";
import { rng } from "../helpers.ts";
import { sha256File } from "../../io/output.ts";
import { verifyCheckpointSet } from "../../train/checkpoint.ts";

const TRIALS = Number(Deno.args[0] ?? 20);
const TINY = new URL("../../bundled/models/tiny-opt-e2e", import.meta.url).pathname;

if (import.meta.main) {
  using box = sandbox("kill9-train");
  Deno.writeTextFileSync(
    `${box.dir}/small.csv`,
    'mr,ref\n"name[A], food[B]",A serves B.\n"name[C], food[D]",C serves D.\n' +
      '"name[E], food[F]",E serves F.\n',
  );
  const args = (out: string, extra: string[] = []) => [
    "--model",
    TINY,
    "--data",
    `${box.rel}/small.csv`,
    "--steps",
    "2",
    "--batch-size",
    "1",
    "--held-out",
    "1",
    "--eval-examples",
    "1",
    "--save-every",
    "1",
    "--policy",
    "full",
    "--seed",
    "1",
    "--out",
    out,
    "--quiet",
    ...extra,
  ];
  let t0 = performance.now();
  const ref = await cli(args(`${box.rel}/ref`), { task: "train" });
  if (ref.code !== 0) throw new Error(ref.stderr);
  const runMs = performance.now() - t0;
  const want = sha256File(`${box.dir}/ref/model.safetensors`);
  const first = await cli(args(`${box.rel}/run`), { task: "train" });
  if (first.code !== 0) throw new Error(first.stderr);
  const rand = rng(2020);
  const counts = { resumedExactly: 0, refused: 0, wrong: 0, mixed: 0 };
  t0 = performance.now();
  for (let t = 0; t < TRIALS; t++) {
    const child = spawnCli(args(`${box.rel}/run`, ["--overwrite"]), { task: "train" });
    const delay = rand() * runMs;
    await new Promise((r) => setTimeout(r, delay));
    try {
      child.kill("SIGKILL");
    } catch { /* finished */ }
    await child.output();
    let complete = true;
    for (const dir of [`${box.dir}/run`, `${box.dir}/run/checkpoint-1`]) {
      try {
        verifyCheckpointSet(dir);
      } catch (e) {
        complete = false;
        console.log(`  trial ${t}: ${dir}: ${(e as Error).message}`);
      }
    }
    if (!complete) counts.mixed++;
    try {
      Deno.removeSync(`${box.dir}/resumed`, { recursive: true });
    } catch { /* first */ }
    const r = await cli(
      args(`${box.rel}/resumed`, ["--resume", `${box.rel}/run/checkpoint-1`]),
      { task: "train" },
    );
    let how: string;
    if (r.code === 2) {
      counts.refused++;
      how = `refused: ${r.stderr.trim().split("\n").pop()}`;
    } else if (r.code === 0 && sha256File(`${box.dir}/resumed/model.safetensors`) === want) {
      counts.resumedExactly++;
      how = "resumed exactly";
    } else {
      counts.wrong++;
      how = `WRONG: exit ${r.code} ${r.stderr.slice(-200)}`;
    }
    console.log(`trial ${t}: killed after ${delay.toFixed(0)} ms; ${how}`);
  }
  console.log(
    `${TRIALS} trials in ${((performance.now() - t0) / 1000).toFixed(0)} s: ` +
      JSON.stringify(counts),
  );
  Deno.exit(counts.wrong + counts.mixed > 0 ? 1 : 0);
}
