/**
 * Ctrl-C at random moments (seeded) of a sweep and of a training run, 20 trials each, over
 * a folder that already holds a complete earlier result: after every interrupt each file
 * is either the old complete one or a complete new one (never truncated, never a report
 * mixing two runs, never a checkpoint whose weights, optimizer and trainer state disagree),
 * and a rerun always completes. The sweep's and the training's trials run side by side.
 */
import { assert, assertEquals } from "@std/assert";
import { TINY_MODEL_DIR } from "../data/bundled.ts";
import { openSafetensors } from "../model/safetensors.ts";
import { cli, collect, sandbox, spawnCli } from "./cli_helpers.ts";
import { rng } from "./helpers.ts";

const TRIALS = 20;

/** Visible files under a folder (recursively), name to the SHA-256 of its bytes. */
async function files(dir: string, prefix = ""): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const e of Deno.readDirSync(dir)) {
    if (e.name.startsWith(".")) continue;
    const path = `${dir}/${e.name}`;
    if (e.isDirectory) Object.assign(out, await files(path, `${prefix}${e.name}/`));
    else {
      const digest = await crypto.subtle.digest("SHA-256", Deno.readFileSync(path));
      out[`${prefix}${e.name}`] = [...new Uint8Array(digest)].map((b) =>
        b.toString(16).padStart(2, "0")
      ).join("");
    }
  }
  return out;
}

const text = (path: string) => Deno.readTextFileSync(path);

/** Hidden leftovers (temporary files, staging folders) anywhere under a folder. */
function leftovers(dir: string): string[] {
  const out: string[] = [];
  for (const e of Deno.readDirSync(dir)) {
    const path = `${dir}/${e.name}`;
    if (/\.tmp-|^\.staging-|\.incomplete$/.test(e.name)) out.push(path);
    else if (e.isDirectory) out.push(...leftovers(path));
  }
  return out;
}

/** Visible file names under a folder (recursively, sorted), without reading them. */
function listing(dir: string, prefix = ""): string[] {
  const out: string[] = [];
  for (const e of Deno.readDirSync(dir)) {
    if (e.name.startsWith(".")) continue;
    if (e.isDirectory) out.push(...listing(`${dir}/${e.name}`, `${prefix}${e.name}/`));
    else out.push(`${prefix}${e.name}`);
  }
  return out.sort();
}

/**
 * Fails unless a file is complete: JSON parses, HTML ends with `</html>`, a safetensors file
 * holds every byte its header promises (`openSafetensors` checks the size).
 */
function complete(path: string, what: string): void {
  if (path.endsWith(".json")) JSON.parse(text(path));
  if (path.endsWith(".html")) assert(text(path).trimEnd().endsWith("</html>"), `${what} cut`);
  if (path.endsWith(".safetensors")) {
    assert(openSafetensors(path).tensors.size > 0, `${what}: no tensors`);
  }
}

/** Interrupts a run after `delayMs` (if still running); returns how it ended. */
async function interrupt(args: string[], delayMs: number, task?: "train") {
  const child = spawnCli(args, { task });
  const done = collect(child);
  await new Promise((r) => setTimeout(r, delayMs));
  try {
    child.kill("SIGINT");
  } catch { /* already finished */ }
  const r = await done;
  const how = r.signal === "SIGINT"
    ? "killed"
    : r.code === 130
    ? "held"
    : r.code === 0
    ? "finished"
    : `exit ${r.code}`;
  assert(how !== `exit ${r.code}`, `unexpected end: exit ${r.code}\n${r.stderr}`);
  return how;
}

/** The sweep's trials. */
async function sweepTrials(): Promise<void> {
  using box = sandbox("int-sweep");
  const out = `${box.rel}/report`;
  const dir = `${box.dir}/report`;
  const args = [
    "sweep",
    "--model",
    TINY_MODEL_DIR,
    "--backend",
    "cpu",
    "--policy",
    "full",
    "--policy",
    "linear:max=10,min=2,warmup=1,horizon=8",
    "--no-cache",
    "--nll",
    "none",
    "--items",
    "2",
    "--max-new-tokens",
    "4",
    "--out",
    out,
  ];
  const t0 = performance.now();
  const first = await cli(args);
  assertEquals(first.code, 0, first.stderr);
  let runMs = performance.now() - t0; // the delays follow the last full run's duration
  let old = await files(dir);
  const names = Object.keys(old).sort();
  const rand = rng(11);
  const ends: Record<string, number> = {};
  for (let t = 0; t < TRIALS; t++) {
    const how = await interrupt(args, rand() * runMs);
    ends[how] = (ends[how] ?? 0) + 1;
    const now = await files(dir);
    assertEquals(Object.keys(now).sort(), names, `trial ${t} (${how}): the set of files`);
    const same = names.filter((n) => now[n] === old[n]);
    if (same.length !== names.length) {
      // A new report: complete and all of one run.
      const json = JSON.parse(text(`${dir}/sweep.json`));
      const md = text(`${dir}/report.md`);
      assert(md.includes(`Run ${json.startedAt}`), `trial ${t}: mixed report`);
      // the report ends with its Reproduce block, the command in a closed fence
      assert(/## Reproduce\n\n```sh\n.+\n```$/.test(md.trimEnd()), `trial ${t}: report.md cut`);
      text(`${dir}/generations.jsonl`).trim().split("\n").forEach((l) => JSON.parse(l));
      for (const n of names.filter((n) => n.endsWith(".html"))) {
        assert(text(`${dir}/${n}`).trimEnd().endsWith("</html>"), `trial ${t}: ${n} cut`);
      }
    }
    const t1 = performance.now();
    const again = await cli(args);
    runMs = performance.now() - t1;
    assertEquals(again.code, 0, `trial ${t}: the rerun failed: ${again.stderr}`);
    assertEquals(leftovers(dir), [], `trial ${t}: leftovers after the rerun`);
    old = await files(dir);
  }
  console.log(
    `  sweep: ${TRIALS} trials, last run ${runMs.toFixed(0)} ms: ${JSON.stringify(ends)}`,
  );
}

/** Checks a checkpoint folder: weights, optimizer and trainer state of the same step. */
function checkCheckpoint(dir: string, what: string): number {
  const state = JSON.parse(Deno.readTextFileSync(`${dir}/trainer_state.json`));
  const opt = openSafetensors(`${dir}/optimizer.safetensors`);
  const model = openSafetensors(`${dir}/model.safetensors`);
  assert(model.tensors.size > 0, `${what}: no tensors`);
  assertEquals(Number(opt.metadata?.step), state.step, `${what}: optimizer and trainer state`);
  JSON.parse(Deno.readTextFileSync(`${dir}/config.json`));
  return state.step;
}

/** The training run's trials. */
async function trainingTrials(): Promise<void> {
  using box = sandbox("int-train");
  Deno.writeTextFileSync(
    `${box.dir}/small.csv`,
    'mr,ref\n"name[A], food[B]",A serves B.\n"name[C], food[D]",C serves D.\n' +
      '"name[E], food[F]",E serves F.\n',
  );
  const dir = `${box.dir}/run`;
  const args = (seed: number) => [
    "--model",
    TINY_MODEL_DIR,
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
    String(seed),
    "--out",
    `${box.rel}/run`,
    "--overwrite",
    "--quiet",
  ];
  const t0 = performance.now();
  const first = await cli(args(0), { task: "train" });
  assertEquals(first.code, 0, first.stderr);
  let runMs = performance.now() - t0; // the delays follow the last full run's duration
  const names = listing(dir);
  const rand = rng(12);
  const ends: Record<string, number> = {};
  for (let t = 0; t < TRIALS; t++) {
    const how = await interrupt(args(t + 1), rand() * runMs, "train");
    ends[how] = (ends[how] ?? 0) + 1;
    // Every file, old or new, is complete (the old ones were checked complete after the last
    // rerun, so this is the "old or complete new" property without hashing 200 MB per trial).
    const now = listing(dir);
    for (const n of names) assert(now.includes(n), `trial ${t} (${how}): ${n} was lost`);
    for (const name of now) complete(`${dir}/${name}`, `trial ${t} (${how}): ${name}`);
    checkCheckpoint(dir, `trial ${t} (${how}): run/`);
    checkCheckpoint(`${dir}/checkpoint-1`, `trial ${t} (${how}): run/checkpoint-1`);
    const t1 = performance.now();
    const again = await cli(args(t + 1), { task: "train" });
    runMs = performance.now() - t1;
    assertEquals(again.code, 0, `trial ${t}: the rerun failed: ${again.stderr}`);
    assertEquals(checkCheckpoint(dir, `trial ${t}: rerun`), 2);
    assertEquals(leftovers(dir), [], `trial ${t}: leftovers after the rerun`);
    assertEquals(listing(dir), names, `trial ${t}: the files after the rerun`);
  }
  console.log(
    `  training: ${TRIALS} trials, last run ${runMs.toFixed(0)} ms: ${JSON.stringify(ends)}`,
  );
}

// The two trial loops run side by side (each in its own sandbox, one child process at a time
// each): most of a loop's time is waiting for its child, so the other loop's child keeps the
// second core busy. Steps running together need the step sanitizers off; the parent test
// still checks that no process or file is left open when both are done.
Deno.test(`cli: Ctrl-C at random points of a sweep and of training, ${TRIALS} trials each`, async (t) => {
  const side = { sanitizeOps: false, sanitizeResources: false, sanitizeExit: false };
  await Promise.all([
    t.step({ name: `sweep, ${TRIALS} trials`, fn: sweepTrials, ...side }),
    t.step({ name: `training, ${TRIALS} trials`, fn: trainingTrials, ...side }),
  ]);
});
