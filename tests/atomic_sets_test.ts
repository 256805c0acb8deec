/**
 * Sets of files that belong together (a checkpoint, a report) at their causes: a resume
 * refuses a checkpoint mixed from two saves (it used to accept weights of step 4 beside the
 * optimizer and trainer state of step 2), a commit cut between two renames is completed by
 * the next open, and an interrupt that arrives while a save is held is delivered when the
 * save ends (exit 130), not swallowed.
 */
import { assert, assertEquals, assertMatch, assertThrows } from "@std/assert";
import { JOURNAL_FILE, OutputFolder, readFileSet } from "../io/output.ts";
import { CheckpointError } from "../model/errors.ts";
import { loadTrainingCheckpoint, saveCheckpoint } from "../train/checkpoint.ts";
import { ParamSet } from "../train/param_set.ts";
import { KILL9_SHAPE, saveValue } from "./kill9_child.ts";

function save(dir: string, k: number): void {
  const filled = () => {
    const p = new ParamSet(KILL9_SHAPE, "f32");
    for (const a of p.arrays) a.fill(saveValue(k));
    return p;
  };
  saveCheckpoint(dir, {
    params: filled(),
    adam: { m: filled(), v: filled(), step: k },
    trainerState: { step: k },
  });
}

Deno.test("resume: weights of one save beside the optimizer and state of another are refused", () => {
  const root = Deno.makeTempDirSync();
  try {
    save(`${root}/a`, 2);
    save(`${root}/b`, 4);
    assertEquals((loadTrainingCheckpoint(`${root}/a`).trainerState as { step: number }).step, 2);
    Deno.copyFileSync(`${root}/b/model.safetensors`, `${root}/a/model.safetensors`);
    const e = assertThrows(() => loadTrainingCheckpoint(`${root}/a`), CheckpointError);
    assertMatch(e.message, /does not hold one complete save: model\.safetensors \(changed/);
    // A save over it makes it whole again.
    save(`${root}/a`, 5);
    assertEquals(loadTrainingCheckpoint(`${root}/a`).adam?.step, 5);
  } finally {
    Deno.removeSync(root, { recursive: true });
  }
});

Deno.test("report set: a commit cut after some renames is completed by the next open", () => {
  const root = Deno.makeTempDirSync();
  try {
    const dir = `${root}/r`;
    const out = OutputFolder.open(dir, { owner: "sweep" });
    out.writeSet({ "report.md": "old\n", "old-chart.html": "old\n", "sweep.json": "old\n" });
    // What kill -9 leaves after the journal and one of three renames.
    const stage = out.staging();
    for (const n of ["report.md", "sweep.json", "new-chart.html"]) {
      Deno.writeTextFileSync(`${stage}/${n}`, "new\n");
    }
    const name = stage.slice(stage.lastIndexOf("/") + 1);
    Deno.writeTextFileSync(
      `${dir}/${JOURNAL_FILE}`,
      JSON.stringify({
        stage: name,
        owner: "sweep",
        files: ["new-chart.html", "report.md", "sweep.json"],
        remove: ["old-chart.html"],
        sha256: {},
      }),
    );
    Deno.renameSync(`${stage}/report.md`, `${dir}/report.md`);
    out.close();
    OutputFolder.open(dir, { owner: "sweep" }).close();
    const names = [...Deno.readDirSync(dir)].map((e) => e.name).filter((n) => !n.startsWith("."));
    assertEquals(names.sort(), ["new-chart.html", "report.md", "sweep.json"]);
    for (const n of names) assertEquals(Deno.readTextFileSync(`${dir}/${n}`), "new\n");
    assertEquals(readFileSet(dir)?.files, ["new-chart.html", "report.md", "sweep.json"]);
  } finally {
    Deno.removeSync(root, { recursive: true });
  }
});

Deno.test("an interrupt during a held save is delivered after it: exit 130, the save complete", async () => {
  const url = new URL("../io/output.ts", import.meta.url).href;
  const code = `
    import { withInterruptsHeld } from ${JSON.stringify(url)};
    console.log("start");
    withInterruptsHeld(() => {
      const t = Date.now();
      while (Date.now() - t < 1500) { /* a long save */ }
      console.log("saved");
    });
    await new Promise((r) => setTimeout(r, 3000));
    console.log("went on to the end");
  `;
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    const child = new Deno.Command(Deno.execPath(), {
      args: ["eval", code],
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const out = child.stdout.getReader();
    const first = new TextDecoder().decode((await out.read()).value);
    assert(first.includes("start"), first);
    await new Promise((r) => setTimeout(r, 300));
    child.kill(signal);
    let rest = "";
    for (;;) {
      const { value, done } = await out.read();
      if (done) break;
      rest += new TextDecoder().decode(value);
    }
    const st = await child.status;
    await child.stderr.cancel();
    assertEquals(st.code, 130, `${signal}: ${rest}`);
    assert(rest.includes("saved"), `${signal}: the save finished first`);
    assert(!rest.includes("went on"), `${signal}: the interrupt was lost`);
  }
});
