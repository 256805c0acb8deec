/**
 * `skipdecode train` / `deno task train`: skip-aware fine-tuning of an OPT checkpoint with
 * a fixed exit policy (the paper's setting) or random SkipDecode plans per example, on the
 * CPU reference or on WebGPU. Settings come from defaults, then a JSON config file
 * (`--config`, keys as in `train/config.ts`), then flags; `--resume DIR` continues a saved
 * run with its stored settings (flags still override, e.g. a larger `--steps`).
 *
 * @example
 * ```sh
 * deno task train --model bundled/models/tiny-opt-e2e --policy linear:max=6,min=2,warmup=1,horizon=32 \
 *   --steps 100 --batch-size 8 --lr 1e-4 --out out/ft-linear6
 * ```
 * @module
 */
import { type Command, debug, errorReport, runCommand, UsageError } from "./command.ts";
import {
  resolveTrainConfig,
  TRAIN_DEFAULTS,
  TRAIN_LIMITS,
  type TrainConfig,
} from "../train/config.ts";
import { type EvalLog, type StepLog, storedTrainConfig, train } from "../train/trainer.ts";
import { readText } from "../data/datasets.ts";

export type { Command, OptionSpec } from "./command.ts";
export type { StepLog } from "../train/trainer.ts";

const D = TRAIN_DEFAULTS;
const L = TRAIN_LIMITS;

/** Formats milliseconds as `1h02m`, `3m05s` or `12s`. */
function duration(ms: number): string {
  const s = Math.round(ms / 1000);
  if (s >= 3600) {
    return `${Math.floor(s / 3600)}h${String(Math.floor(s / 60) % 60).padStart(2, "0")}m`;
  }
  if (s >= 60) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
  return `${s}s`;
}

/**
 * One progress line: step, loss (and its running mean), learning rate, gradient norm,
 * throughput, elapsed time and ETA.
 *
 * @example
 * ```ts
 * progressLine({ step: 5, loss: 1.2, lr: 1e-4, gradNorm: 0.5, tokens: 400, targets: 200, ms: 2000 }, 100, 1.3, 10000);
 * ```
 */
export function progressLine(
  log: StepLog,
  steps: number,
  meanLoss: number,
  elapsedMs: number,
): string {
  const eta = (elapsedMs / log.step) * (steps - log.step);
  return `step ${String(log.step).padStart(String(steps).length)}/${steps}  loss ${
    log.loss.toFixed(4)
  } (avg ${meanLoss.toFixed(4)})  lr ${log.lr.toExponential(2)}  |g| ${log.gradNorm.toFixed(3)}  ${
    (log.tokens / (log.ms / 1000)).toFixed(0)
  } tok/s  ${duration(elapsedMs)} elapsed, ETA ${duration(eta)}`;
}

function evalLine(e: EvalLog): string {
  return `eval @ step ${e.step}: ` +
    e.results.map((r) =>
      `${r.policy} NLL ${r.nll.toFixed(4)} (ppl ${r.perplexity.toFixed(2)}, ${r.tokens} tok)`
    )
      .join("; ");
}

/** The `train` command (for the `skipdecode` command list). */
export const trainCmd: Command = {
  name: "train",
  summary: "fine-tune an OPT checkpoint with a skip policy active (CPU or WebGPU)",
  options: {
    model: { kind: "path", value: "DIR", description: "source model folder (HF layout)" },
    out: {
      kind: "path",
      writes: true,
      value: "DIR",
      description: "output folder (default out/finetune)",
    },
    config: {
      kind: "path",
      value: "FILE.json",
      description: "JSON config (train/config.ts keys)",
    },
    resume: {
      kind: "path",
      value: "DIR",
      description: "resume a saved run from this checkpoint",
    },
    policy: {
      kind: "text",
      value: "SPEC",
      description:
        "fixed policy, or random[:full=0.25,max=6..12,min=2,warmup=0..2,horizon=16/32/48/64]",
    },
    "eval-policy": {
      kind: "text",
      value: "SPEC",
      multiple: true,
      description: "policy to evaluate (default: the training policy and full)",
    },
    data: { kind: "path", value: "e2e|FILE", description: `"e2e", an mr,ref CSV or a text file` },
    steps: {
      kind: "int",
      min: 1,
      max: L.steps,
      value: "N",
      description: `optimiser steps (default ${D.steps})`,
    },
    "batch-size": {
      kind: "int",
      min: 1,
      max: L.batchSize,
      value: "B",
      description: `examples per micro-batch (${D.batchSize})`,
    },
    "grad-accum": {
      kind: "int",
      min: 1,
      max: L.gradAccum,
      value: "K",
      description: `micro-batches per step (${D.gradAccum})`,
    },
    lr: {
      kind: "decimal",
      range: { above: 0, max: L.lr },
      value: "LR",
      description: `peak learning rate (${D.lr})`,
    },
    "warmup-steps": {
      kind: "int",
      min: 0,
      max: L.warmupSteps,
      value: "N",
      description: `warm-up steps (${D.warmupSteps})`,
    },
    "min-lr-ratio": {
      kind: "decimal",
      range: { min: 0, max: L.minLrRatio },
      value: "R",
      description: `cosine floor / lr (${D.minLrRatio})`,
    },
    "weight-decay": {
      kind: "decimal",
      range: { min: 0, max: L.weightDecay },
      value: "W",
      description: `AdamW decay (${D.weightDecay})`,
    },
    "clip-norm": {
      kind: "decimal",
      range: { min: 0, max: L.clipNorm },
      value: "C",
      description: `gradient clip, 0 = off (${D.clipNorm})`,
    },
    "held-out": {
      kind: "int",
      min: 0,
      max: L.heldOut,
      value: "N",
      description: `MRs held out for eval (${D.heldOut})`,
    },
    "eval-examples": {
      kind: "int",
      min: 0,
      max: L.evalExamples,
      value: "N",
      description: `examples per eval (${D.evalExamples})`,
    },
    "eval-every": {
      kind: "int",
      min: 0,
      max: L.evalEvery,
      value: "N",
      description: `steps between evals (${D.evalEvery})`,
    },
    "save-every": {
      kind: "int",
      min: 0,
      max: L.saveEvery,
      value: "N",
      description: `steps between checkpoints (${D.saveEvery})`,
    },
    "max-length": {
      kind: "int",
      min: 2,
      max: L.maxLength,
      value: "N",
      description: `longest example (${D.maxLength})`,
    },
    dtype: { kind: "text", value: "F32|F16", description: `saved weights dtype (${D.dtype})` },
    seed: { kind: "int", min: 0, max: L.seed, value: "S", description: `seed (${D.seed})` },
    backend: { kind: "text", value: "cpu|webgpu", description: `device (${D.backend})` },
    overwrite: {
      kind: "flag",
      description: "replace the files of a non-empty --out (else refused)",
    },
    quiet: { kind: "flag", description: "print only evaluations and the summary" },
  },
  async run(v) {
    const flags: Record<string, unknown> = {
      model: v.model,
      out: v.out,
      policy: v.policy,
      evalPolicies: v["eval-policy"],
      data: v.data,
      steps: v.steps,
      batchSize: v["batch-size"],
      gradAccum: v["grad-accum"],
      lr: v.lr,
      warmupSteps: v["warmup-steps"],
      minLrRatio: v["min-lr-ratio"],
      weightDecay: v["weight-decay"],
      clipNorm: v["clip-norm"],
      heldOut: v["held-out"],
      evalExamples: v["eval-examples"],
      evalEvery: v["eval-every"],
      saveEvery: v["save-every"],
      maxLength: v["max-length"],
      dtype: v.dtype,
      seed: v.seed,
      backend: v.backend,
      resume: v.resume,
    };
    const parts: Record<string, unknown>[] = [];
    if (v.resume) parts.push({ ...storedTrainConfig(v.resume as string) });
    if (v.config) {
      let json: unknown;
      try {
        json = JSON.parse(await readText(v.config as string, "--config"));
      } catch (e) {
        throw new UsageError(
          (e as Error).name === "DataError"
            ? (e as Error).message
            : `--config ${v.config} is not valid JSON: ${(e as Error).message}`,
        );
      }
      if (typeof json !== "object" || json === null || Array.isArray(json)) {
        throw new UsageError(`--config ${v.config} must hold a JSON object`);
      }
      parts.push(json as Record<string, unknown>);
    }
    parts.push(flags);
    if (!parts.some((p) => p.model !== undefined)) {
      throw new UsageError('--model is required (or a --config with "model", or --resume)');
    }
    if (!parts.some((p) => p.out !== undefined)) parts.push({ out: "out/finetune" });
    let config: TrainConfig;
    try {
      config = resolveTrainConfig(parts, v.config ? `--config ${v.config} / flags` : "flags");
    } catch (e) {
      throw new UsageError((e as Error).message);
    }
    const quiet = Boolean(v.quiet);
    const tty = Deno.stdout.isTerminal();
    const every = Math.max(1, Math.floor(config.steps / 50));
    let sum = 0, count = 0;
    const enc = new TextEncoder();
    const result = await train(config, {
      overwrite: Boolean(v.overwrite),
      onNote: (n) => console.log(n),
      onStep: (log, cfg, elapsed) => {
        sum += log.loss;
        count++;
        if (quiet) return;
        const line = progressLine(log, cfg.steps, sum / count, elapsed);
        if (tty) Deno.stdout.writeSync(enc.encode(`\r${line}\x1b[K`));
        else if (log.step % every === 0 || log.step === cfg.steps) console.log(line);
      },
      onEval: (e) => {
        if (tty && !quiet) Deno.stdout.writeSync(enc.encode("\n"));
        console.log(evalLine(e));
      },
    });
    const first = result.state.evals[0], last = result.state.evals.at(-1);
    console.log(
      `done: ${result.state.step} steps of ${config.model}, ` +
        `${result.tokensPerSecond.toFixed(1)} tokens/s ` +
        `(${result.targetsPerSecond.toFixed(1)} target tokens/s) on ${config.backend}`,
    );
    if (first && last && first !== last) {
      for (const r of last.results) {
        const r0 = first.results.find((x) => x.policy === r.policy);
        if (r0) console.log(`  ${r.policy}: NLL ${r0.nll.toFixed(4)} -> ${r.nll.toFixed(4)}`);
      }
    }
    console.log(
      `model, optimizer and trainer state in ${config.out}; loss curve ${config.out}/loss.html`,
    );
    return 0;
  },
};

/**
 * Runs `train` with command-line arguments and returns the exit code (0 success, 2 bad
 * usage or input with a one-line message, 1 anything unexpected), as `cli/main.ts` does.
 *
 * @example
 * ```ts
 * const code = await trainCommand(["--help"]); // 0
 * ```
 */
export async function trainCommand(args: string[]): Promise<number> {
  try {
    return await runCommand(trainCmd, args);
  } catch (e) {
    const { message, code } = errorReport(e);
    console.error(`error: ${message}`);
    if (debug()) console.error((e as Error)?.stack);
    return code;
  }
}

if (import.meta.main) Deno.exit(await trainCommand(Deno.args));
