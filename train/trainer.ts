/**
 * The training loop: data tokenized once and batched by length, per-example layer masks
 * from a fixed or random policy, gradient accumulation, warm-up + cosine AdamW with
 * clipping, periodic NLL evaluation under each evaluation policy, checkpoints in the
 * Hugging Face layout, exact resume (data order and random policies continue where they
 * stopped), a loss-curve chart and a history file.
 *
 * @module
 */
import { loadE2eCsv, readText } from "../data/datasets.ts";
import { atomicWrite, checkOutputPath, OutputFolder, withInterruptsHeld } from "../io/output.ts";
import { lossCurveChart } from "../plots/charts.ts";
import { toHtml } from "../plots/html.ts";
import { loadTokenizer, type OptTokenizer } from "../tokenizer/mod.ts";
import { collate, type Example } from "./batch.ts";
import { loadTrainingCheckpoint, saveCheckpoint } from "./checkpoint.ts";
import { resolveTrainConfig, type TrainConfig, TrainError } from "./config.ts";
import { lengthBatches, promptExamples, splitItems, textExamples } from "./data.ts";
import { seededRandom } from "../model/random.ts";
import { CpuEngine, type TrainEngine } from "./engine.ts";
import { evaluateNll, type TrainNllResult } from "./evaluate.ts";
import { learningRate } from "./optim.ts";
import {
  checkRandomPlanOptions,
  parsePolicySource,
  planExamples,
  type PolicySource,
  policySourceToString,
} from "./policies.ts";
import type { AdamState } from "./optim.ts";
import type { ParamSet } from "./param_set.ts";
import { relative, resolve } from "node:path";

/**
 * Where `data: "e2e"` points: the E2E devset the repository ships
 * (`bundled/data/e2e/devset.csv`, CC BY-SA 4.0). The name is kept from when it lived in
 * `../shared`.
 */
export const SHARED_E2E_DEVSET: URL = new URL("../bundled/data/e2e/devset.csv", import.meta.url);

/** One logged optimiser step. */
export interface StepLog {
  /** 1-based step. */
  step: number;
  /** Mean NLL per target token of the step's batches. */
  loss: number;
  /** Learning rate used. */
  lr: number;
  /** Gradient norm before clipping. */
  gradNorm: number;
  /** Real (non-padding) input tokens of the step. */
  tokens: number;
  /** Target tokens of the step. */
  targets: number;
  /** Wall milliseconds of the step (forward, backward, update). */
  ms: number;
}

/** One evaluation. */
export interface EvalLog {
  /** Step after which it ran (0: before training). */
  step: number;
  /** One result per evaluation policy. */
  results: TrainNllResult[];
}

/** The state written to `trainer_state.json`. */
export interface TrainerState {
  /** Format marker. */
  format: "skipdecode-trainer-1";
  /** The run's configuration (without `resume`). */
  config: TrainConfig;
  /** Optimiser steps done. */
  step: number;
  /** Data position: epoch, next batch, generator state at the epoch's start. */
  data: { epoch: number; cursor: number; epochState: number };
  /** State of the generator of random policies. */
  policyState: number;
  /** Every step's log. */
  history: StepLog[];
  /** Every evaluation. */
  evals: EvalLog[];
}

/** Callbacks of {@linkcode train}. */
export interface TrainHooks {
  /** After every optimiser step. */
  onStep?: (log: StepLog, config: TrainConfig, elapsedMs: number) => void;
  /** After every evaluation. */
  onEval?: (log: EvalLog) => void;
  /** One-line notes (data sizes, saved checkpoints). */
  onNote?: (note: string) => void;
  /**
   * Replace the files of a non-empty `config.out` (default `false`: a non-empty output
   * folder is refused, unless it holds the checkpoint being resumed).
   */
  overwrite?: boolean;
  /**
   * The training items, prompts made (e.g. a data table's items through a template; the
   * procedure's `--train` in any format): used instead of reading `config.data`, which then
   * only names them. Split by item with `config.heldOut` and `config.seed` as an E2E file is.
   */
  items?: readonly { prompt: string; refs: readonly string[] }[];
  /** Builds the engine (default: the CPU engine, or the WebGPU one for `backend: "webgpu"`). */
  engine?: (params: ParamSet, config: TrainConfig, adam?: AdamState) => Promise<TrainEngine>;
}

/** What {@linkcode train} returns. */
export interface TrainResult {
  /** The configuration run. */
  config: TrainConfig;
  /** The final trainer state (as saved). */
  state: TrainerState;
  /** Mean real input tokens per second over the steps of this run. */
  tokensPerSecond: number;
  /** Mean target tokens per second. */
  targetsPerSecond: number;
  /** The final weights. */
  params: ParamSet;
}

/** Batches of one epoch after another, resumable at any batch. */
class BatchStream {
  #examples: readonly Example[];
  #size: number;
  #seed: number;
  epoch = 0;
  cursor = 0;
  epochState: number;
  #batches: Example[][];

  constructor(examples: readonly Example[], size: number, seed: number, at?: TrainerState["data"]) {
    this.#examples = examples;
    this.#size = size;
    this.#seed = seed;
    this.epochState = at?.epochState ?? seededRandom(seed).state();
    this.epoch = at?.epoch ?? 0;
    this.cursor = at?.cursor ?? 0;
    this.#batches = this.#make();
  }

  #make(): Example[][] {
    const r = seededRandom(this.#seed, this.epochState);
    const batches = lengthBatches(this.#examples, this.#size, r);
    this.#nextState = r.state();
    return batches;
  }
  #nextState = 0;

  next(): Example[] {
    if (this.cursor >= this.#batches.length) {
      this.epoch++;
      this.cursor = 0;
      this.epochState = this.#nextState;
      this.#batches = this.#make();
    }
    return this.#batches[this.cursor++];
  }

  position(): TrainerState["data"] {
    return { epoch: this.epoch, cursor: this.cursor, epochState: this.epochState };
  }
}

/** Loads the training and held-out examples a configuration names. */
async function loadData(
  config: TrainConfig,
  tokenizerDir: string,
  note: (s: string) => void,
  given?: readonly { prompt: string; refs: readonly string[] }[],
): Promise<{ train: Example[]; heldOut: Example[] }> {
  const tok = await loadTokenizer(tokenizerDir);
  if (given !== undefined) return itemExamples(given, config, tok, note, "data");
  const isText = config.data !== "e2e" && !config.data.endsWith(".csv");
  if (isText) {
    const text = await readText(config.data, "training text");
    const all = textExamples(text, tok, config.maxLength);
    const { train, heldOut } = splitItems(
      all,
      Math.min(config.heldOut, all.length - 1),
      config.seed,
    );
    note(`text data: ${train.length} training windows, ${heldOut.length} held out`);
    return { train, heldOut };
  }
  const items = await loadE2eCsv(config.data === "e2e" ? SHARED_E2E_DEVSET : config.data);
  const prompted = items.map((it) => ({ prompt: `${it.mr}\n`, refs: it.refs }));
  return itemExamples(prompted, config, tok, note, "E2E data");
}

/** Examples of prompted items: split by item (heldOut, seed), one per (prompt, reference). */
function itemExamples(
  items: readonly { prompt: string; refs: readonly string[] }[],
  config: TrainConfig,
  tok: OptTokenizer,
  note: (s: string) => void,
  what: string,
): { train: Example[]; heldOut: Example[] } {
  const split = splitItems(items, Math.min(config.heldOut, items.length - 1), config.seed);
  const train = promptExamples(split.train, tok, config.maxLength);
  // held-out examples: the first reference of each held-out mr, then the second, ...
  const perMr = split.heldOut.map((it) => promptExamples([it], tok, config.maxLength).examples);
  const heldOut: Example[] = [];
  for (let k = 0; heldOut.length < config.evalExamples; k++) {
    const round = perMr.filter((e) => e.length > k).map((e) => e[k]);
    if (round.length === 0) break;
    heldOut.push(...round.slice(0, config.evalExamples - heldOut.length));
  }
  note(
    `${what}: ${train.examples.length} training pairs from ${split.train.length} MRs` +
      `${
        train.dropped ? ` (${train.dropped} longer than ${config.maxLength} tokens dropped)` : ""
      }` +
      `, ${heldOut.length} held-out pairs from ${split.heldOut.length} MRs`,
  );
  return { train: train.examples, heldOut };
}

/** The evaluation policies of a configuration (the training one when fixed, then `full`). */
export function evalPolicySources(config: TrainConfig): { name: string; source: PolicySource }[] {
  const names = config.evalPolicies.length > 0 ? [...config.evalPolicies] : (() => {
    const own = parsePolicySource(config.policy);
    return own.kind === "fixed" && String(own.policy) !== "full"
      ? [String(own.policy), "full"]
      : [policySourceToString(own), "full"];
  })();
  return [...new Set(names)].map((n) => {
    const source = parsePolicySource(n);
    return { name: source.kind === "fixed" ? String(source.policy) : n, source };
  });
}

/** Writes `history.json` and the loss-curve chart `loss.html`. */
function writeReports(out: string, state: TrainerState): void {
  atomicWrite(
    `${out}/history.json`,
    JSON.stringify({ history: state.history, evals: state.evals }, null, 1) + "\n",
  );
  const steps = state.history.map((h) => h.step);
  const series = [{ name: "train loss", values: state.history.map((h) => h.loss) }];
  const evalNames = state.evals[0]?.results.map((r) => r.policy) ?? [];
  const allSteps = [...new Set([...steps, ...state.evals.map((e) => e.step)])].sort((a, b) =>
    a - b
  );
  const at = (vals: Map<number, number>) => allSteps.map((s) => vals.get(s) ?? null);
  const trainMap = new Map(state.history.map((h) => [h.step, h.loss]));
  const lines = [{ name: series[0].name, values: at(trainMap) }];
  for (const name of evalNames) {
    const m = new Map<number, number>();
    for (const e of state.evals) {
      const r = e.results.find((x) => x.policy === name);
      if (r) m.set(e.step, r.nll);
    }
    lines.push({ name: `held-out NLL (${name})`, values: at(m) });
  }
  if (allSteps.length === 0) return;
  const fig = lossCurveChart(allSteps, lines, {
    title: `fine-tuning ${
      state.config.model.split("/").filter(Boolean).pop()
    } (${state.config.policy})`,
    yTitle: "NLL per target token (nats)",
  });
  // evaluation curves have few points: draw markers and connect them across the gaps
  for (const t of fig.data.slice(1)) {
    t.mode = "lines+markers";
    t.connectgaps = true;
  }
  atomicWrite(`${out}/loss.html`, toHtml(fig, { title: "training loss" }));
}

/**
 * Runs a training configuration (see {@linkcode TrainConfig}); with `config.resume`, it
 * continues the saved run exactly (weights, AdamW state, data position, random-policy
 * generator) up to `config.steps` steps in all.
 *
 * @example
 * ```ts
 * import { resolveTrainConfig } from "./config.ts";
 * const r = await train(resolveTrainConfig([{
 *   model: "bundled/models/tiny-opt-e2e",
 *   out: "out/ft",
 *   policy: "linear:max=6,min=2,warmup=1,horizon=32",
 *   steps: 50,
 * }]));
 * console.log(r.state.evals.at(-1));
 * ```
 */
export async function train(config: TrainConfig, hooks: TrainHooks = {}): Promise<TrainResult> {
  const note = hooks.onNote ?? (() => {});
  const source = config.resume ?? config.model;
  // The output folder first: writable, no link on the way, and empty unless allowed.
  try {
    checkOutputPath(config.out, "--out");
  } catch (e) {
    throw new TrainError((e as Error).message);
  }
  const resumesInside = config.resume !== undefined &&
    !relative(resolve(config.out), resolve(config.resume)).startsWith("..");
  const checkEmpty = (names: string[]) => {
    if (names.length > 0 && !hooks.overwrite && !resumesInside) {
      throw new TrainError(
        `--out ${config.out} is not empty (${names.slice(0, 4).join(", ")}` +
          `${names.length > 4 ? ", ..." : ""}); pass --overwrite to replace its files, or ` +
          `choose another --out`,
      );
    }
  };
  checkEmpty(visibleEntries(config.out));
  const ck = loadTrainingCheckpoint(source);
  let state: TrainerState;
  if (config.resume) {
    const saved = ck.trainerState as TrainerState | undefined;
    const file = `${config.resume}/trainer_state.json`;
    if (!saved || saved.format !== "skipdecode-trainer-1") {
      throw new TrainError(`${file} is missing or not a skipdecode trainer state`);
    }
    if (!ck.adam) {
      throw new TrainError(`${config.resume} has no optimizer.safetensors to resume from`);
    }
    checkResumeState(saved, file, config, ck.adam.step);
    state = { ...saved, config: { ...config, resume: undefined } };
    note(`resuming ${config.resume} at step ${saved.step}`);
  } else {
    state = {
      format: "skipdecode-trainer-1",
      config: { ...config, resume: undefined },
      step: 0,
      data: { epoch: 0, cursor: 0, epochState: seededRandom(config.seed).state() },
      policyState: seededRandom(config.seed ^ 0x5eed).state(),
      history: [],
      evals: [],
    };
  }
  const modelCfg = ck.params.config;
  const L = modelCfg.numHiddenLayers, pad = modelCfg.padTokenId;
  const maxLength = Math.min(config.maxLength, modelCfg.maxPositionEmbeddings + 1);
  const data = await loadData({ ...config, maxLength }, source, note, hooks.items);
  if (data.train.length === 0) throw new TrainError(`no training examples in ${config.data}`);
  const policySource = parsePolicySource(config.policy);
  if (policySource.kind === "random") {
    try {
      checkRandomPlanOptions(policySource.options, L, config.policy);
    } catch (e) {
      throw new TrainError(`--policy: ${(e as Error).message}`);
    }
  }
  if (policySource.kind === "fixed") {
    const j = policySource.policy.toJSON() as unknown as Record<string, unknown>;
    const lin = j.kind === "earlyexit" ? j.inner as Record<string, unknown> : j;
    if (lin.kind === "linear" && lin.horizon === undefined) {
      note(
        `${config.policy} has no horizon: in training its decay spans each example's own ` +
          `target length (at inference, maxNewTokens); add horizon=H to fix it`,
      );
    }
  }
  const evals = evalPolicySources(config);
  if (config.batchSize > data.train.length) {
    throw new TrainError(
      `batchSize ${config.batchSize} is larger than the ${data.train.length} training ` +
        `examples of ${config.data}; use at most ${data.train.length}`,
    );
  }
  let folder: OutputFolder;
  try {
    folder = OutputFolder.open(config.out, { option: "--out" });
  } catch (e) {
    throw new TrainError((e as Error).message);
  }
  try {
    checkEmpty(visibleEntries(config.out)); // again under the lock: another run may have written
  } catch (e) {
    folder.close();
    throw e;
  }
  // A loss above twice that of guessing uniformly over the vocabulary, and above three
  // times the run's first one, has diverged.
  let baseline: number | undefined;
  const diverged = (what: string, value: number) => {
    if (baseline === undefined && Number.isFinite(value)) baseline = value;
    const limit = Math.max(2 * Math.log(modelCfg.vocabSize), 3 * (baseline ?? 0));
    if (Number.isFinite(value) && value <= limit) return;
    throw new TrainError(
      `training diverged at step ${state.step}: ${what} is ${value} (limit ${
        limit.toFixed(1)
      }); stopped without saving it. Lower --lr (now ${config.lr})` +
        (config.clipNorm > 0 ? "" : " or set --clip-norm"),
    );
  };
  const makeEngine = hooks.engine ?? defaultEngine;
  let engine: TrainEngine;
  try {
    engine = await makeEngine(ck.params, config, ck.adam);
  } catch (e) {
    folder.close();
    throw e;
  }
  const stream = new BatchStream(data.train, config.batchSize, config.seed, state.data);
  const policyRandom = seededRandom(0, state.policyState);
  const schedule = {
    lr: config.lr,
    warmupSteps: config.warmupSteps,
    totalSteps: config.steps,
    minLrRatio: config.minLrRatio,
  };

  const evaluate = async () => {
    if (data.heldOut.length === 0) return;
    const results: TrainNllResult[] = [];
    for (const e of evals) {
      results.push(
        await evaluateNll(engine, data.heldOut, e.source, L, pad, config.batchSize * 2, e.name),
      );
    }
    for (const r of results) diverged(`held-out NLL under ${r.policy}`, r.nll);
    const log = { step: state.step, results };
    state.evals.push(log);
    hooks.onEval?.(log);
  };
  const save = async (dir: string) => {
    const snap = await engine.snapshot();
    state.data = stream.position();
    state.policyState = policyRandom.state();
    // Every file of a checkpoint is renamed into place; Ctrl-C waits for the whole set,
    // so weights, optimizer and trainer state always belong to the same step.
    withInterruptsHeld(() =>
      saveCheckpoint(dir, {
        params: snap.params,
        adam: snap.adam,
        dtype: config.dtype,
        tokenizerDir: source,
        trainerState: state,
      })
    );
    note(`saved ${dir}`);
  };

  try {
    if (state.step === 0 && !state.evals.some((e) => e.step === 0)) await evaluate();
    const start = performance.now();
    let runTokens = 0, runTargets = 0, runMs = 0;
    while (state.step < config.steps) {
      const t0 = performance.now();
      const micro = Array.from({ length: config.gradAccum }, () => stream.next());
      const batches = micro.map((ex) =>
        collate(planExamples(ex, policySource, L, policyRandom), L, pad)
      );
      const targets = batches.reduce((a, b) => a + b.targetCount, 0);
      let loss = 0, tokens = 0;
      for (const b of batches) {
        loss += await engine.accumulate(b, 1 / targets);
        for (const p of b.positions) if (p >= 0) tokens++;
      }
      const lr = learningRate(schedule, state.step);
      const rep = await engine.step(lr, config.clipNorm);
      state.step++;
      const ms = performance.now() - t0;
      const log: StepLog = {
        step: state.step,
        loss: loss / targets,
        lr,
        gradNorm: rep.gradNorm,
        tokens,
        targets,
        ms,
      };
      diverged("the training loss", log.loss);
      if (!Number.isFinite(log.gradNorm)) diverged("the gradient norm", log.gradNorm);
      state.history.push(log);
      runTokens += tokens;
      runTargets += targets;
      runMs += ms;
      hooks.onStep?.(log, config, performance.now() - start);
      const last = state.step === config.steps;
      if (last || (config.evalEvery > 0 && state.step % config.evalEvery === 0)) {
        await evaluate();
        writeReports(config.out, state);
      }
      if (!last && config.saveEvery > 0 && state.step % config.saveEvery === 0) {
        await save(`${config.out}/checkpoint-${state.step}`);
      }
    }
    await save(config.out);
    writeReports(config.out, state);
    const snap = await engine.snapshot();
    return {
      config,
      state,
      tokensPerSecond: runMs ? runTokens / (runMs / 1000) : 0,
      targetsPerSecond: runMs ? runTargets / (runMs / 1000) : 0,
      params: snap.params,
    };
  } finally {
    engine.dispose();
    folder.close();
  }
}

/** Entries of a folder other than the output lock and leftovers; none when it is missing. */
function visibleEntries(dir: string): string[] {
  try {
    return [...Deno.readDirSync(dir)].map((e) => e.name)
      .filter((n) => !n.startsWith(".") && !n.endsWith(".incomplete")).sort();
  } catch {
    return [];
  }
}

/**
 * Checks a saved trainer state before resuming from it: a step that is a whole number
 * below `config.steps` and equal to the optimizer's, a data position and generator states
 * of the right kind, and history arrays.
 *
 * @throws {TrainError} naming the file and the field at fault.
 */
function checkResumeState(
  saved: TrainerState,
  file: string,
  config: TrainConfig,
  optimizerStep: number,
): void {
  const isInt = (v: unknown) => typeof v === "number" && Number.isSafeInteger(v) && v >= 0;
  if (!isInt(saved.step)) {
    throw new TrainError(`${file}: field "step" must be a whole number >= 0, got ${saved.step}`);
  }
  if (saved.step >= config.steps) {
    throw new TrainError(
      `${file} is at step ${saved.step}, not below --steps ${config.steps}: nothing to ` +
        `train; give --steps above ${saved.step}`,
    );
  }
  if (optimizerStep !== saved.step) {
    throw new TrainError(
      `${file} is at step ${saved.step} but optimizer.safetensors beside it at step ` +
        `${optimizerStep}: they come from different saves`,
    );
  }
  const d = saved.data as unknown as Record<string, unknown> | undefined;
  if (!d || !isInt(d.epoch) || !isInt(d.cursor) || !Number.isFinite(d.epochState)) {
    throw new TrainError(`${file}: field "data" must hold whole-number epoch, cursor, epochState`);
  }
  if (!Number.isFinite(saved.policyState)) {
    throw new TrainError(`${file}: field "policyState" must be a number`);
  }
  if (!Array.isArray(saved.history) || !Array.isArray(saved.evals)) {
    throw new TrainError(`${file}: fields "history" and "evals" must be arrays`);
  }
}

async function defaultEngine(
  params: ParamSet,
  config: TrainConfig,
  adam?: AdamState,
): Promise<TrainEngine> {
  const opts = {
    beta1: config.beta1,
    beta2: config.beta2,
    eps: config.eps,
    weightDecay: config.weightDecay,
  };
  if (config.backend === "cpu") return new CpuEngine(params, opts, adam);
  const gpu = await import("./gpu_engine.ts");
  return await gpu.createGpuEngine(params, opts, adam);
}

/**
 * Reads the configuration stored in a checkpoint's `trainer_state.json` (to resume with
 * the same settings).
 *
 * @throws {TrainError} naming the file when it is missing or not a trainer state.
 *
 * @example
 * ```ts
 * const stored = storedTrainConfig("out/ft/checkpoint-50");
 * console.log(stored.steps);
 * ```
 */
export function storedTrainConfig(dir: string): TrainConfig {
  const path = `${dir}/trainer_state.json`;
  let json: TrainerState;
  try {
    json = JSON.parse(Deno.readTextFileSync(path));
  } catch (e) {
    const why = e instanceof Deno.errors.NotFound ? "no such file" : (e as Error).message;
    throw new TrainError(`cannot read ${path} to resume: ${why.split("\n")[0]}`);
  }
  if (json?.format !== "skipdecode-trainer-1") {
    throw new TrainError(`${path} is not a skipdecode trainer state`);
  }
  try {
    return resolveTrainConfig([json.config as unknown as Record<string, unknown>], path);
  } catch (e) {
    throw new TrainError((e as Error).message);
  }
}
