/**
 * The training benchmark (`deno task bench --train`): one fine-tuning step (forward,
 * backward, clipping, AdamW) of the same model, batches, sequence lengths and skip plan on
 * the toolkit's trainers (`train/`: the CPU engine on OpenBLAS, the CPU engine on the
 * reference's TypeScript loops, the WebGPU engine) and on PyTorch eager
 * (`bench/torch_train.py`, f32, `torch.optim.AdamW`), interleaved in one run: every repeat
 * runs the same batches on each trainer in turn, each from the checkpoint's weights. Prints
 * steps/s (median over repeats of the mean over the batches) and each trainer's ratio to
 * PyTorch, and the first batch's loss on each (they start from the same weights, so the
 * losses agree to f32 rounding: a check that every trainer ran the same step).
 *
 * @example
 * ```ts
 * import { runTrainBench, trainBenchMarkdown } from "./train_bench.ts";
 * const r = await runTrainBench({ model: "bundled/models/tiny-opt-e2e", batches: 1, repeats: 1,
 *   trainers: ["cpu-blas"], torch: false });
 * console.log(trainBenchMarkdown(r));
 * ```
 * @module
 */
import { loadE2eCsv } from "../data/datasets.ts";
import { loadTokenizer } from "../tokenizer/mod.ts";
import { collate, type TrainBatch } from "../train/batch.ts";
import { blasLinearOps, TYPESCRIPT_LINEAR } from "../train/blas.ts";
import { loadTrainingCheckpoint } from "../train/checkpoint.ts";
import { e2eExamples, lengthBatches } from "../train/data.ts";
import { seededRandom } from "../model/random.ts";
import { CpuEngine, type TrainEngine } from "../train/engine.ts";
import { parsePolicySource, planExamples } from "../train/policies.ts";
import type { ParamSet } from "../train/param_set.ts";
import { TORCH_PYTHON } from "./torch_engine.ts";

/** The toolkit's trainers the bench can time. */
export type TrainerName = "cpu-blas" | "cpu-ts" | "webgpu";

/** Options of {@linkcode runTrainBench}. */
export interface TrainBenchOptions {
  /** Checkpoint folder (default: the dense tiny fixture in `../shared`). */
  model: string;
  /** E2E `mr,ref` CSV (default: the bundled devset). */
  data?: string;
  /** Examples per batch (default 16, the procedure's). */
  batchSize?: number;
  /** Batches per repeat (default 3). */
  batches?: number;
  /** Interleaved repeats (default 3). */
  repeats?: number;
  /** The skip plan (default: the 2x linear decay with warm-up). */
  policy?: string;
  /** Trainers to time (default all; unavailable ones are reported, not run). */
  trainers?: TrainerName[];
  /** Run PyTorch (default true; "not installed" when it cannot run). */
  torch?: boolean;
  /** PyTorch threads (default: the machine's cores). */
  threads?: number;
  /** Progress lines. */
  log?: (line: string) => void;
}

/** One trainer's figures. */
export interface TrainBenchRow {
  /** `cpu-blas`, `cpu-ts`, `webgpu` or `torch`. */
  trainer: string;
  /** What ran, or why it did not. */
  detail: string;
  /** Median steps/s (undefined when it did not run). */
  stepsPerSecond?: number;
  /** Loss of the first batch from the checkpoint's weights. */
  firstLoss?: number;
}

/** What {@linkcode runTrainBench} returns. */
export interface TrainBenchResult {
  /** The options run. */
  options: Required<Omit<TrainBenchOptions, "log" | "data" | "trainers" | "threads">> & {
    data: string;
  };
  /** Examples, real tokens and targets per batch. */
  shapes: { rows: number; length: number; tokens: number; targets: number }[];
  /** One row per trainer, PyTorch last. */
  rows: TrainBenchRow[];
}

/** The dense tiny fixture. */
export const DENSE_FIXTURE = "../shared/models/tiny-opt-e2e-dense";

const median = (a: number[]) => {
  const s = [...a].sort((x, y) => x - y);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

/** A PyTorch training process (`torch_train.py`), or why there is none. */
async function startTorch(
  model: string,
  threads: number,
  lr: number,
): Promise<
  | {
    call: (req: unknown) => Promise<Record<string, unknown>>;
    close: () => Promise<void>;
    detail: string;
  }
  | { skipped: string }
> {
  const perm = await Deno.permissions.query({ name: "run", command: TORCH_PYTHON });
  if (perm.state !== "granted") return { skipped: `not run (no --allow-run=${TORCH_PYTHON})` };
  let child: Deno.ChildProcess;
  try {
    child = new Deno.Command(TORCH_PYTHON, {
      args: ["-u", new URL("./torch_train.py", import.meta.url).pathname],
      clearEnv: true, // OpenBLAS's fast kernels need OPENBLAS_CORETYPE/L2_SIZE unset
      env: { PATH: "/usr/bin:/bin", LANG: "C.UTF-8" },
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
  } catch {
    return { skipped: `not installed (${TORCH_PYTHON} cannot be started)` };
  }
  const writer = child.stdin.getWriter();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  const stderr = new Response(child.stderr).text();
  let buf = "";
  const call = async (req: unknown): Promise<Record<string, unknown>> => {
    await writer.write(new TextEncoder().encode(JSON.stringify(req) + "\n"));
    while (!buf.includes("\n")) {
      const { value, done } = await reader.read();
      if (done) {
        const err = (await stderr).trim().split("\n").slice(-1)[0] ?? "";
        throw new Error(err || "the PyTorch process exited");
      }
      buf += value;
    }
    const line = buf.slice(0, buf.indexOf("\n"));
    buf = buf.slice(buf.indexOf("\n") + 1);
    const reply = JSON.parse(line);
    if (!reply.ok) throw new Error(`PyTorch: ${reply.error}`);
    return reply;
  };
  const close = async () => {
    try {
      await writer.write(new TextEncoder().encode('{"cmd":"quit"}\n'));
      await writer.close();
    } catch { /* gone */ }
    await reader.cancel().catch(() => {});
    await child.status;
    await stderr.catch(() => "");
  };
  try {
    const r = await call({ cmd: "load", dir: await Deno.realPath(model), threads, lr });
    const blas = ((r.blas as string[]) ?? []).map((p) => p.split("/").slice(-2).join("/"));
    return {
      call,
      close,
      detail: `PyTorch ${r.torch} eager f32, ${r.threads} threads, BLAS ${blas.join(", ")} ` +
        `(GEMM ${(r.gemmGflops as number).toFixed(0)} GFLOP/s)`,
    };
  } catch (e) {
    await close();
    const msg = (e as Error).message;
    return { skipped: /No module named 'torch'/.test(msg) ? "not installed" : msg };
  }
}

/** Loads, batches and plans the bench's data once. */
async function benchBatches(
  o: { model: string; data: string; batchSize: number; batches: number; policy: string },
  layers: number,
  pad: number,
): Promise<TrainBatch[]> {
  const tok = await loadTokenizer(o.model);
  const { examples } = e2eExamples(await loadE2eCsv(o.data), tok, 256);
  const r = seededRandom(7);
  const source = parsePolicySource(o.policy);
  // lengthBatches groups similar lengths; take a spread of them (short, middle, long)
  const all = lengthBatches(examples, o.batchSize, r)
    .filter((b) => b.length === o.batchSize)
    .sort((a, b) =>
      a[0].target.length + a[0].prompt.length - b[0].target.length - b[0].prompt.length
    );
  const picks = Array.from(
    { length: o.batches },
    (_, i) => all[Math.floor(((i + 0.5) / o.batches) * all.length)],
  );
  return picks.map((b) => collate(planExamples(b, source, layers, r), layers, pad));
}

/** One step on a toolkit engine: accumulate the batch, AdamW at `lr`, clip at 1. */
async function engineStep(e: TrainEngine, b: TrainBatch, lr: number): Promise<number> {
  const loss = await e.accumulate(b, 1 / b.targetCount);
  await e.step(lr, 1);
  return loss / b.targetCount;
}

/**
 * Runs the training benchmark.
 *
 * @param options what to time
 * @returns the rows, PyTorch last
 * @example
 * ```ts
 * import { runTrainBench } from "./train_bench.ts";
 * const r = await runTrainBench({ model: "bundled/models/tiny-opt-e2e", batches: 1, repeats: 1,
 *   trainers: ["cpu-blas"], torch: false });
 * console.log(r.rows[0].stepsPerSecond);
 * ```
 */
export async function runTrainBench(options: TrainBenchOptions): Promise<TrainBenchResult> {
  const log = options.log ?? (() => {});
  const o = {
    model: options.model,
    data: options.data ?? new URL("../bundled/data/e2e/devset.csv", import.meta.url).pathname,
    batchSize: options.batchSize ?? 16,
    batches: options.batches ?? 3,
    repeats: options.repeats ?? 3,
    policy: options.policy ?? "linear:max=10,min=2,warmup=1,horizon=24",
    torch: options.torch ?? true,
  };
  const lr = 1e-4;
  const ck = loadTrainingCheckpoint(o.model);
  const cfg = ck.params.config;
  const batches = await benchBatches(o, cfg.numHiddenLayers, cfg.padTokenId);
  const shapes = batches.map((b) => ({
    rows: b.rows,
    length: b.length,
    tokens: b.positions.filter((p) => p >= 0).length,
    targets: b.targetCount,
  }));
  log(`batches: ${shapes.map((s) => `${s.rows}x${s.length} (${s.targets} targets)`).join(", ")}`);
  type Runner = {
    row: TrainBenchRow;
    make?: () => Promise<
      { step: (b: TrainBatch, i: number) => Promise<number>; done: () => Promise<void> }
    >;
    times: number[];
  };
  const runners: Runner[] = [];
  const want = options.trainers ?? ["cpu-blas", "cpu-ts", "webgpu"];
  const fresh = (): ParamSet => ck.params.clone();
  const blas = blasLinearOps();
  for (const t of want) {
    if (t === "cpu-blas" && !blas) {
      runners.push({
        row: {
          trainer: t,
          detail: "not run: OpenBLAS not loadable (needs --allow-ffi and libopenblas0)",
        },
        times: [],
      });
      continue;
    }
    if (t === "webgpu" && !(await navigator.gpu?.requestAdapter())) {
      runners.push({ row: { trainer: t, detail: "not run: no WebGPU adapter" }, times: [] });
      continue;
    }
    const detail = t === "cpu-blas"
      ? `CPU engine, linear maps on ${blas!.name}`
      : t === "cpu-ts"
      ? "CPU engine, TypeScript loops (the reference's matmul)"
      : "WebGPU engine (train/gpu_engine.ts)";
    runners.push({
      row: { trainer: t, detail },
      times: [],
      make: async () => {
        const e: TrainEngine = t === "webgpu"
          ? await (await import("../train/gpu_engine.ts")).createGpuEngine(fresh())
          : new CpuEngine(fresh(), {}, undefined, t === "cpu-blas" ? blas : TYPESCRIPT_LINEAR);
        return { step: (b) => engineStep(e, b, lr), done: () => Promise.resolve(e.dispose()) };
      },
    });
  }
  const torchRow: Runner = { row: { trainer: "torch", detail: "not run (--no-torch)" }, times: [] };
  if (o.torch) {
    const threads = options.threads ?? navigator.hardwareConcurrency;
    const t = await startTorch(o.model, threads, lr);
    if ("skipped" in t) torchRow.row.detail = t.skipped;
    else {
      torchRow.row.detail = t.detail;
      await t.close();
      torchRow.make = async () => {
        const p = await startTorch(o.model, threads, lr);
        if ("skipped" in p) throw new Error(`PyTorch: ${p.skipped}`);
        await p.call({
          cmd: "batches",
          batches: batches.map((b) => ({
            rows: b.rows,
            length: b.length,
            layers: b.layers,
            tokens: Array.from(b.tokens),
            positions: Array.from(b.positions),
            targets: Array.from(b.targets),
            active: Array.from(b.active),
          })),
        });
        return {
          step: async (_b, i) => {
            const r = await p.call({ cmd: "steps", first: i, count: 1 });
            return (r.losses as number[])[0];
          },
          done: () => p.close(),
        };
      };
    }
  }
  runners.push(torchRow);
  for (let rep = 0; rep < o.repeats; rep++) {
    for (const r of runners) {
      if (!r.make) continue;
      const run = await r.make(); // fresh weights and optimiser state every repeat
      try {
        const t0 = performance.now();
        for (let i = 0; i < batches.length; i++) {
          const loss = await run.step(batches[i], i);
          if (i === 0 && r.row.firstLoss === undefined) r.row.firstLoss = loss;
        }
        const s = (performance.now() - t0) / 1000;
        r.times.push(batches.length / s);
        log(`repeat ${rep + 1}: ${r.row.trainer} ${(batches.length / s).toFixed(3)} steps/s`);
      } finally {
        await run.done();
      }
    }
  }
  for (const r of runners) if (r.times.length) r.row.stepsPerSecond = median(r.times);
  return { options: o, shapes, rows: runners.map((r) => r.row) };
}

/**
 * The result as a Markdown table: steps/s, ratio to PyTorch, first loss.
 *
 * @param r a result of {@linkcode runTrainBench}
 * @returns the table and a line on the batches
 * @example
 * ```ts
 * import { trainBenchMarkdown } from "./train_bench.ts";
 * trainBenchMarkdown({ options: { model: "m", data: "d", batchSize: 16, batches: 1, repeats: 1,
 *   policy: "full", torch: false }, shapes: [], rows: [] });
 * ```
 */
export function trainBenchMarkdown(r: TrainBenchResult): string {
  const torch = r.rows.find((x) => x.trainer === "torch")?.stepsPerSecond;
  const lines = [
    `Model \`${r.options.model}\`, batch ${r.options.batchSize}, plan \`${r.options.policy}\`, ` +
    `${r.options.batches} batches x ${r.options.repeats} interleaved repeats; batches ` +
    r.shapes.map((s) => `${s.rows}x${s.length} (${s.tokens} tokens, ${s.targets} targets)`)
      .join(", ") +
    ".",
    "",
    "| trainer | steps/s | vs PyTorch | first loss | what ran |",
    "| ------- | ------: | ---------: | ---------: | -------- |",
  ];
  for (const x of r.rows) {
    const sps = x.stepsPerSecond;
    lines.push(
      `| ${x.trainer} | ${sps === undefined ? "-" : sps.toFixed(3)} | ${
        sps === undefined
          ? "-"
          : x.trainer === "torch"
          ? "1.00x"
          : torch
          ? `${(sps / torch).toFixed(2)}x`
          : "not installed"
      } | ${x.firstLoss === undefined ? "-" : x.firstLoss.toFixed(5)} | ${x.detail} |`,
    );
  }
  return lines.join("\n");
}
