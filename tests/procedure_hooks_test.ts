/**
 * The procedure as a library runner (`runProcedure`, the one fine-tune-and-measure path the
 * fine-tuning notebook uses): `onStep` sees every optimiser step of each fine-tuning with its
 * policy, the `after` entry of a tuned policy carries the same steps as `history`, and
 * `warmupSteps` reaches the trainer (the first step's learning rate). In process, tiny sizes.
 */
// @tier e2e
import { assert, assertEquals } from "@std/assert";
import { runProcedure } from "../experiments/procedure.ts";
import type { StepLog } from "../train/trainer.ts";

const TINY = new URL("../bundled/models/tiny-opt-e2e", import.meta.url).pathname;
const DEVSET = new URL("../bundled/data/e2e/devset.csv", import.meta.url);

Deno.test("procedure: onStep, history and warmupSteps of the fine-tuning", async () => {
  const dir = await Deno.makeTempDir({ prefix: "skipdecode-procedure-hooks-" });
  try {
    const lines = Deno.readTextFileSync(DEVSET).split("\n");
    Deno.writeTextFileSync(`${dir}/train.csv`, lines.slice(0, 12).join("\n") + "\n");
    Deno.writeTextFileSync(`${dir}/test.csv`, [lines[0], ...lines.slice(40, 44)].join("\n") + "\n");
    const policy = "linear:max=8,min=2,warmup=1,horizon=6";
    const seen: [string, StepLog][] = [];
    const r = await runProcedure({
      model: TINY,
      train: `${dir}/train.csv`,
      test: `${dir}/test.csv`,
      policies: [policy],
      steps: 3,
      items: 1,
      modelsDir: `${dir}/models`,
      maxNewTokens: 4,
      batchSize: 1,
      trainBatchSize: 2,
      lr: 1e-4,
      warmupSteps: 3,
      backend: "cpu",
      cacheDir: false,
      oracleItems: 1,
      afterOracle: 0,
      resamples: 20,
      onNote: () => {},
      onStep: (p, log) => seen.push([p, log]),
    });
    assertEquals(seen.map(([p, s]) => [p, s.step]), [[policy, 1], [policy, 2], [policy, 3]]);
    const tuned = r.after.find((a) => a.row.fineTuned)!;
    assertEquals(tuned.row.policy, policy);
    assertEquals(tuned.history, seen.map(([, s]) => s));
    assert(tuned.history!.every((s) => Number.isFinite(s.loss) && s.loss > 0));
    // linear warm-up over 3 steps: the first step runs at a third of the peak rate
    assert(Math.abs(tuned.history![0].lr - 1e-4 / 3) < 1e-9, `lr ${tuned.history![0].lr}`);
    assertEquals(r.after[0].history, undefined); // full is measured, not tuned
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
