/**
 * Checkpoints (Hugging Face layout, F32/F16, optimizer state) and the training loop:
 * the loss goes down, a resumed run equals an uninterrupted one bit for bit, and the
 * `train` command writes its model, state, history and loss chart.
 */
import { assert, assertEquals, assertGreater, assertLess, assertStringIncludes } from "@std/assert";
import { writeRandomCheckpoint } from "../model/fixture.ts";
import { loadWeightsSync } from "../model/checkpoint.ts";
import { openSafetensors } from "../model/safetensors.ts";
import { loadTrainingCheckpoint, saveCheckpoint } from "../train/checkpoint.ts";
import { adamState, adamWConfig, adamWStep } from "../train/optim.ts";
import { paramsFromWeights } from "../train/param_set.ts";
import { resolveTrainConfig } from "../train/config.ts";
import { train } from "../train/trainer.ts";
import { trainCommand } from "../cli/train.ts";
import { sharedPath } from "./train_helpers.ts";

/** A small random model with OPT's vocabulary and tokenizer, so E2E data fits it. */
function smallModel(): string {
  const dir = Deno.makeTempDirSync({ prefix: "train-loop-" });
  writeRandomCheckpoint(dir, {
    shape: {
      vocabSize: 50272,
      hiddenSize: 16,
      numAttentionHeads: 2,
      ffnDim: 24,
      numHiddenLayers: 3,
      maxPositionEmbeddings: 128,
    },
    seed: 3,
    dtype: "F32",
    tokenizerDir: sharedPath("tokenizers/opt"),
  });
  return dir;
}

Deno.test("checkpoint: HF names, F16 with f32 master copy, optimizer state round trip", () => {
  const src = smallModel();
  const params = paramsFromWeights(loadWeightsSync(src));
  const grads = params.zerosLike();
  grads.arrays.forEach((g, i) => g.fill(1e-3 * (1 + (i % 5))));
  const adam = adamState(params);
  adamWStep(params, grads, adam, 1e-3, adamWConfig());
  const out = Deno.makeTempDirSync();
  saveCheckpoint(out, { params, adam, dtype: "F16", tokenizerDir: src, trainerState: { a: 1 } });
  saveCheckpoint(out, { params, adam, dtype: "F16", tokenizerDir: src, trainerState: { a: 1 } }); // overwrite works
  const file = openSafetensors(`${out}/model.safetensors`);
  assert(file.tensors.has("model.decoder.layers.0.self_attn.q_proj.weight"));
  assert(file.tensors.has("model.decoder.embed_tokens.weight"));
  assert(!file.tensors.has("lm_head.weight"), "tied head stored");
  assertEquals(file.get("model.decoder.layers.2.fc2.weight")?.dtype, "F16");
  const cfg = JSON.parse(Deno.readTextFileSync(`${out}/config.json`));
  assertEquals([cfg.torch_dtype, cfg.model_type, cfg.num_hidden_layers], ["float16", "opt", 3]);
  assert(Deno.statSync(`${out}/vocab.json`).isFile);
  // the loader reads it (F16 weights), and resume gets the exact f32 master weights back
  const w = loadWeightsSync(out);
  assertEquals(w.warnings, []);
  const back = loadTrainingCheckpoint(out);
  back.params.arrays.forEach((a, i) => assertEquals(a, params.arrays[i], params.specs[i].name));
  assertEquals(back.adam?.step, 1);
  back.adam!.m.arrays.forEach((a, i) => assertEquals(a, adam.m.arrays[i]));
  back.adam!.v.arrays.forEach((a, i) => assertEquals(a, adam.v.arrays[i]));
  assertEquals(back.trainerState, { a: 1 });
  // F16 weights differ from the master copy only by rounding
  const f16 = paramsFromWeights(w);
  const x = f16.get("decoder.layers.0.fc1.weight"), y = params.get("decoder.layers.0.fc1.weight");
  assert(x.some((v, i) => v !== y[i]));
  assert(x.every((v, i) => Math.abs(v - y[i]) <= Math.abs(y[i]) * 1e-3 + 1e-7));
});

Deno.test("training lowers the loss; a resumed run equals an uninterrupted one exactly", async () => {
  const src = smallModel();
  const base = {
    model: src,
    policy: "random:full=0.25",
    steps: 6,
    batchSize: 3,
    gradAccum: 2,
    lr: 3e-3,
    warmupSteps: 2,
    heldOut: 20,
    evalExamples: 6,
    evalEvery: 0,
    maxLength: 48,
    seed: 5,
  };
  const outA = Deno.makeTempDirSync();
  const a = await train(resolveTrainConfig([{ ...base, out: outA, saveEvery: 3 }]));
  const h = a.state.history;
  assertEquals(h.length, 6);
  const [e0, e1] = [a.state.evals[0], a.state.evals.at(-1)!];
  assertEquals([e0.step, e1.step], [0, 6]);
  for (const r of e1.results) {
    const r0 = e0.results.find((x) => x.policy === r.policy)!;
    assertLess(r.nll, r0.nll, `held-out NLL under ${r.policy} did not fall`);
  }
  assertEquals(e1.results.map((r) => r.policy), [
    "random:full=0.25,min=2,warmup=0..2,horizon=16/32/48/64",
    "full",
  ]);
  assertGreater(a.tokensPerSecond, 0);
  // resume from the step-3 checkpoint into another folder
  const outB = Deno.makeTempDirSync();
  const b = await train(
    resolveTrainConfig([{ ...base, out: outB, resume: `${outA}/checkpoint-3` }]),
  );
  assertEquals(b.state.history.map((x) => x.loss), h.map((x) => x.loss));
  b.params.arrays.forEach((arr, i) =>
    assertEquals(arr, a.params.arrays[i], a.params.specs[i].name)
  );
});

Deno.test("the train command: --help, usage errors, a run with a config file", async () => {
  assertEquals(await trainCommand(["--help"]), 0);
  assertEquals(await trainCommand(["--steps", "3"]), 2); // no model
  assertEquals(await trainCommand(["--model", "m", "--steps", "zero"]), 2);
  const src = smallModel();
  const out = Deno.makeTempDirSync();
  const cfg = `${out}/cfg.json`;
  Deno.writeTextFileSync(
    cfg,
    JSON.stringify({ policy: "linear:max=3,min=2,warmup=1,horizon=8", steps: 2 }),
  );
  assertEquals(await trainCommand(["--config", cfg, "--bogus", "1"]), 2);
  const code = await trainCommand([
    "--model",
    src,
    "--config",
    cfg,
    "--batch-size",
    "2",
    "--eval-examples",
    "4",
    "--held-out",
    "10",
    "--max-length",
    "40",
    "--out",
    `${out}/run`,
    "--quiet",
  ]);
  assertEquals(code, 0);
  for (
    const f of ["model.safetensors", "optimizer.safetensors", "trainer_state.json", "loss.html"]
  ) {
    assert(Deno.statSync(`${out}/run/${f}`).isFile, f);
  }
  const state = JSON.parse(Deno.readTextFileSync(`${out}/run/trainer_state.json`));
  assertEquals(state.step, 2);
  assertEquals(state.config.policy, "linear:max=3,min=2,warmup=1,horizon=8");
  assertEquals(state.evals[0].results.map((r: { policy: string }) => r.policy), [
    "linear:max=3,min=2,warmup=1,horizon=8",
    "full",
  ]);
  assertStringIncludes(Deno.readTextFileSync(`${out}/run/loss.html`), "held-out NLL (full)");
});
