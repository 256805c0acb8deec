/**
 * The writer that `tests/kill9_test.ts` kills with SIGKILL at random moments: it saves
 * training checkpoints (`train`) or report sets (`report`) into one folder, over and over,
 * each save holding values of its own number, so that a reader can tell whether the folder
 * holds one complete save or a mix. Not a test file itself.
 *
 * Usage: `deno run --allow-read --allow-write tests/kill9_child.ts train|report DIR`
 *
 * @module
 */
import { OutputFolder } from "../io/output.ts";
import { fixtureConfig } from "../model/fixture.ts";
import { saveCheckpoint } from "../train/checkpoint.ts";
import { ParamSet } from "../train/param_set.ts";

/** The shape of the checkpoints: big enough that a save takes a while (about 3 MB). */
export const KILL9_SHAPE = fixtureConfig({ vocabSize: 2048, hiddenSize: 64, ffnDim: 128 }, "F32");

/** The value every tensor of save number `k` holds (exact in f32). */
export function saveValue(k: number): number {
  return k + 0.5;
}

function filled(k: number): ParamSet {
  const p = new ParamSet(KILL9_SHAPE, "f32");
  for (const a of p.arrays) a.fill(saveValue(k));
  return p;
}

if (import.meta.main) {
  const [mode, dir] = Deno.args;
  if (mode === "train") {
    for (let k = 1;; k++) {
      saveCheckpoint(dir, {
        params: filled(k),
        adam: { m: filled(k), v: filled(k), step: k },
        trainerState: { step: k },
      });
    }
  } else {
    const out = OutputFolder.open(dir, { option: "--out", owner: "sweep" });
    for (let k = 1;; k++) {
      const pad = `run ${k}\n`.repeat(20000);
      out.writeSet({
        "report.md": `# run ${k}\n${pad}`,
        "sweep.json": JSON.stringify({ run: k }),
        "generations.jsonl": `{"run":${k}}\n`.repeat(5000),
        [`chart-${k % 3}.html`]: `<html>run ${k}</html>`,
      });
    }
  }
}
