/**
 * `deno task bench`: the kernel benchmark (matrix products, `bench/matmul_bench.ts`) and the
 * end-to-end decode benchmark (`bench/decode_bench.ts`), printed as tables and written as
 * JSON and Markdown under `out/bench/`. `--quick` runs in under a minute. `--serve` runs the
 * serving benchmark instead (`bench/serve_bench.ts`: continuous batching against static).
 *
 * @module
 */
import { type Command, debug, errorReport, runCommand } from "./command.ts";
import { BATCH_SIZE, OUT, withDefault } from "./options.ts";
import {
  decodeBenchMarkdown,
  ensureOpt125mFixture,
  runDecodeBench,
  sideBySideMarkdown,
  skipNeverSlowerCheck,
} from "../bench/decode_bench.ts";
import type { BackendName } from "../backend/mod.ts";
import { exists, TINY_MODEL_DIR } from "../data/bundled.ts";
import { quietVulkanRuntimeDir } from "../kernels/device.ts";
import { atomicWrite, checkOutputPath } from "../io/output.ts";
import { runServeBench, serveBenchMarkdown } from "../bench/serve_bench.ts";

/** The `bench` command (`deno task bench`), on the command framework of `cli/command.ts`. */
export const benchCommand: Command = {
  name: "bench",
  invocation: "deno task bench",
  summary: "kernel and end-to-end decode benchmarks (or --serve: the serving benchmark)",
  options: {
    quick: {
      kind: "flag",
      description: "tiny checkpoint only, batches 1 and 4, 16 tokens, 2 repeats: under a minute",
    },
    backend: {
      kind: "enum",
      choices: ["cpu", "webgpu", "both"],
      description: "which backends to run (webgpu needs an adapter; --serve: cpu or webgpu)",
      default: "both",
    },
    "skip-kernels": { kind: "flag", description: "only the end-to-end decode benchmark" },
    torch: {
      kind: "flag",
      description: "run the PyTorch eager reference when /usr/bin/python3 has torch " +
        "(--no-torch: do not)",
      default: true,
    },
    threads: {
      kind: "int",
      min: 1,
      max: 1024,
      value: "N",
      description: "PyTorch threads (default: the machine's cores)",
    },
    "torch-device": {
      kind: "enum",
      choices: ["cpu", "cuda"],
      description: "PyTorch device: CUDA eager on a GPU machine",
      default: "cpu",
    },
    ...withDefault(OUT, "out/bench", {
      description: "where to write decode.json / decode.md (serve.*, speculative.*)",
    }),
    scale: {
      kind: "flag",
      description: "only the scale benchmark (bench/scale_bench.ts): random f16 checkpoints of " +
        "the paper's OPT shapes written under .cache/scale (removed after), each backend in a " +
        "fresh process: load time, peak resident memory, tokens/s, top-k agreement",
    },
    sizes: {
      kind: "text",
      value: "LIST",
      description: "scale: shapes to measure, e.g. 125m,350m,1.3b,2.7b,6.7b (default all " +
        "five; --quick 125m)",
    },
    "cpu-sizes": {
      kind: "text",
      value: "LIST",
      description: "scale: shapes the CPU backend also runs (default 125m,350m,1.3b,2.7b)",
    },
    "max-gflop": {
      kind: "decimal",
      range: { above: 0 },
      value: "N",
      description: "scale: skip batch 8 where its full decode exceeds N GFLOP (default 100)",
    },
    train: {
      kind: "flag",
      description: "only the training benchmark (bench/train_bench.ts): one fine-tuning step " +
        "on the CPU engine (OpenBLAS and TypeScript loops), the WebGPU engine and PyTorch " +
        "eager, interleaved, as steps/s and ratios to PyTorch (dense fixture, batch 16, 2x plan)",
    },
    "kv-dtype": {
      kind: "flag",
      description: "only the KV storage benchmark (bench/kv_dtype_bench.ts): WebGPU decode " +
        "with an f32 vs an f16 KV cache, interleaved: tokens/s, KV bytes, top-3 agreement",
    },
    speculative: {
      kind: "flag",
      description: "only the speculative-decoding benchmark (full vs SkipDecode/early-exit drafts)",
    },
    best: {
      kind: "flag",
      description: "with --speculative: the dense fixture, full vs its best SkipDecode draft " +
        "only (linear:max=12,min=6,warmup=1 K=3 and 2), 8 prompts x 16 tokens, 5 repeats",
    },
    serve: {
      kind: "flag",
      description: "only the serving benchmark (bench/serve_bench.ts): static, aligned and " +
        "per-row admission on the same seeded Poisson arrivals of E2E prompts, interleaved",
    },
    requests: {
      kind: "int",
      min: 1,
      value: "N",
      description: "serving: requests per run (default 32; --quick 12)",
    },
    rate: {
      kind: "decimal",
      range: { above: 0 },
      value: "R",
      description: "serving: mean arrivals per second (default 4; --quick 8)",
    },
    ...withDefault(BATCH_SIZE, undefined, {
      description: "serving: rows decoded at once in every mode (default 8; --quick 4)",
    }),
    repeats: {
      kind: "int",
      min: 1,
      value: "N",
      description: "serving: interleaved repeats of the three modes (default 2; --quick 1)",
    },
  },
  run: (values) => runBench(values),
};

/**
 * Runs the benchmarks; returns the exit code (2 with one line for bad options).
 *
 * @example
 * ```ts
 * await benchMain(["--quick"]);
 * ```
 */
export async function benchMain(args: string[]): Promise<number> {
  try {
    return await runCommand(benchCommand, args);
  } catch (e) {
    const { message, code } = errorReport(e);
    console.error(
      `error: ${message.replace(/skipdecode bench --help/g, "deno task bench --help")}`,
    );
    if (debug()) console.error((e as Error)?.stack);
    return code;
  }
}

async function runBench(values: Record<string, unknown>): Promise<number> {
  const quick = !!values.quick;
  const threads = (values.threads as number | undefined) ?? navigator.hardwareConcurrency;
  const out = values.out as string;
  const which = values.backend as string;
  try {
    checkOutputPath(out, "--out"); // before any benchmark runs
  } catch (e) {
    console.error(`error: ${(e as Error).message}`);
    return 2;
  }
  quietVulkanRuntimeDir();
  if (values.scale) {
    const { scaleBenchMain } = await import("../bench/scale_bench.ts");
    return await scaleBenchMain(values, out);
  }
  if (values.serve) {
    return await serveBench(values, quick, out, which === "both" ? "cpu" : which);
  }
  const adapter = await navigator.gpu?.requestAdapter();
  const backends: BackendName[] = which === "both" ? ["cpu", "webgpu"] : [which as BackendName];
  if (!adapter && backends.includes("webgpu")) {
    console.warn(
      "WARNING: no WebGPU adapter: the WebGPU rows are skipped (install libvulkan1 mesa-vulkan-drivers)",
    );
    backends.splice(backends.indexOf("webgpu"), 1);
  }
  if (adapter) console.log(`adapter: ${adapter.info.description || adapter.info.vendor}`);
  Deno.mkdirSync(out, { recursive: true });
  if (values.train) return await trainBench(out, backends, quick, values.torch !== false, threads);
  if (values["kv-dtype"]) return await kvDtypeBenchMain(out, quick, !!adapter);
  if (values.speculative) {
    const { speculativeBenchMain } = await import("../bench/speculative_bench.ts");
    await speculativeBenchMain({
      out,
      backends,
      quick,
      best: !!values.best,
      log: (l) => console.log(l),
    });
    return 0;
  }

  if (!values["skip-kernels"] && adapter) {
    const { matmulBenchMain } = await import("../bench/matmul_bench.ts");
    await matmulBenchMain(
      quick ? ["--quick", "--json", `${out}/matmul.json`] : ["--json", `${out}/matmul.json`],
    );
  }
  if (!values["skip-kernels"]) {
    // bytes, bandwidth floors and workgroups per decode kernel, here and on a reference GPU
    const { rooflineBenchMain } = await import("../bench/roofline.ts");
    await rooflineBenchMain(quick ? ["--quick"] : []);
  }

  if (!exists(TINY_MODEL_DIR)) {
    console.error(
      `error: ${TINY_MODEL_DIR} is missing (the tiny checkpoint ships with the repository in bundled/)`,
    );
    return 2;
  }
  // the tiny model at batches 1 and 8 only: its batch 32 adds minutes (the CPU backend and
  // PyTorch) and nothing the OPT-125m-shaped rows do not show
  const models: { label: string; dir: string; batches?: number[] }[] = [
    { label: "tiny-opt-e2e", dir: TINY_MODEL_DIR, batches: quick ? undefined : [1, 8] },
  ];
  if (!quick) models.push({ label: "opt-125m-shaped", dir: ensureOpt125mFixture(".cache/bench") });
  const torchDevice = values["torch-device"] as "cpu" | "cuda";
  const load = () => {
    try {
      return Deno.loadavg().map((x) => x.toFixed(2)).join(" ");
    } catch {
      return "unknown";
    }
  };
  console.log(
    "\nEnd-to-end decode (greedy, EOS ignored; measured speedup = wall time of full / policy, " +
      "same run; every engine timed interleaved; tokens/s include the prefill)",
  );
  console.log(`load average at start: ${load()}`);
  console.log(decodeBenchMarkdown([]));
  let torchSkipped: string | undefined;
  let torchStarted: { description: string; warning?: string } | undefined;
  const t0 = performance.now();
  const rows = await runDecodeBench({
    models,
    backends,
    batches: quick ? [1, 4] : [1, 8, 32],
    targets: [2, 3],
    promptLength: 16,
    maxNewTokens: quick ? 16 : 32,
    repeats: quick ? 2 : 3,
    maxGflop: { cpu: quick ? 20 : 30 },
    torch: values.torch ? { threads, device: torchDevice } : false,
    onTorchSkipped: (why) => (torchSkipped = why),
    onTorchStarted: (description, warning) => (torchStarted ??= { description, warning }),
    log: (line) => console.log(line),
  });
  const side = sideBySideMarkdown(rows);
  const check = skipNeverSlowerCheck(rows);
  const torchNote = !values.torch
    ? "PyTorch reference: not run (--no-torch)"
    : torchSkipped
    ? `PyTorch reference: skipped (${torchSkipped})`
    : `PyTorch reference: bench/torch_decode.py, eager f32, KV cache, greedy, ${
      torchStarted?.description ?? (torchDevice === "cuda" ? "CUDA" : `${threads} threads`)
    }${torchStarted?.warning ? `\nWARNING: ${torchStarted.warning}` : ""}`;
  const summary = [
    "",
    `Side by side (tokens/s incl. prefill, median of ${
      quick ? 2 : 3
    } repeats; ratio = backend / PyTorch)`,
    torchNote,
    side,
    "",
    `Check: skip plans never slower than full: ${check.ok ? "PASS" : "FAIL"}`,
    ...check.lines.map((l) => `  ${l}`),
    `load average at end: ${load()}; decode benchmark ${
      ((performance.now() - t0) / 1000).toFixed(0)
    } s`,
  ].join("\n");
  console.log(summary);
  atomicWrite(`${out}/decode.json`, JSON.stringify(rows, null, 2));
  atomicWrite(`${out}/decode.md`, decodeBenchMarkdown(rows) + "\n" + summary + "\n");
  console.log(`\nwrote ${out}/decode.json and ${out}/decode.md`);
  return 0;
}

/** `--kv-dtype`: f32 vs f16 KV cache on the WebGPU backend, printed and written as kv_dtype.md. */
async function kvDtypeBenchMain(out: string, quick: boolean, adapter: boolean): Promise<number> {
  if (!adapter) {
    console.error("error: --kv-dtype needs a WebGPU adapter (with shader-f16)");
    return 2;
  }
  const { kvDtypeBench } = await import("../bench/kv_dtype_bench.ts");
  const load = () => Deno.loadavg().map((x) => x.toFixed(2)).join(" ");
  const lines = [
    "WebGPU decode, f32 vs f16 KV cache (greedy, full plan, interleaved; tokens/s incl. prefill)",
    `load average at start: ${load()}`,
  ];
  console.log(lines.join("\n"));
  const models = [{ label: "tiny-opt-e2e", dir: TINY_MODEL_DIR }];
  if (!quick) models.push({ label: "opt-125m-shaped", dir: ensureOpt125mFixture(".cache/bench") });
  for (const m of models) {
    const rows = await kvDtypeBench(m.dir, {
      batches: quick ? [1, 4] : [1, 8],
      repeats: quick ? 2 : 3,
      promptLength: quick ? 16 : 64,
      tokens: quick ? 8 : 32,
    });
    for (const r of rows) {
      lines.push(`${m.label}, ${r}`);
      console.log(lines.at(-1));
    }
  }
  lines.push(`load average at end: ${load()}`);
  console.log(lines.at(-1));
  atomicWrite(`${out}/kv_dtype.md`, lines.join("\n") + "\n");
  console.log(`\nwrote ${out}/kv_dtype.md`);
  return 0;
}

/** `--serve`: the serving benchmark, printed and written as serve.json / serve.md. */
async function serveBench(
  values: Record<string, unknown>,
  quick: boolean,
  out: string,
  backend: string,
): Promise<number> {
  const num = (name: string, fallback: number) => (values[name] as number | undefined) ?? fallback;
  if (backend !== "cpu" && backend !== "webgpu") {
    console.error(`error: --backend must be cpu or webgpu with --serve, got "${backend}"`);
    return 2;
  }
  const options = {
    backend: backend as BackendName,
    requests: num("requests", quick ? 12 : 32),
    rate: num("rate", quick ? 8 : 4),
    capacity: num("batch-size", quick ? 4 : 8),
    maxTokens: quick ? 48 : 64,
    repeats: num("repeats", quick ? 1 : 2),
    timeLimit: quick ? 60 : 240,
  };
  console.log("\nServing: static vs aligned vs per-row admission, same arrivals, interleaved");
  const r = await runServeBench({ ...options, log: (l) => console.log(l) });
  const md = serveBenchMarkdown(r);
  console.log("\n" + md);
  Deno.mkdirSync(out, { recursive: true });
  atomicWrite(`${out}/serve.json`, JSON.stringify(r, null, 2));
  atomicWrite(`${out}/serve.md`, md + "\n");
  console.log(`\nwrote ${out}/serve.json and ${out}/serve.md`);
  return r.sameTokens ? 0 : 1;
}

if (import.meta.main) Deno.exit(await benchMain(Deno.args));

/** `--train`: the training benchmark, printed and written as `train.md`/`train.json`. */
async function trainBench(
  out: string,
  backends: BackendName[],
  quick: boolean,
  torch: boolean,
  threads: number,
): Promise<number> {
  const { DENSE_FIXTURE, runTrainBench, trainBenchMarkdown } = await import(
    "../bench/train_bench.ts"
  );
  const model = exists(`${DENSE_FIXTURE}/config.json`) ? DENSE_FIXTURE : TINY_MODEL_DIR;
  const trainers = (["cpu-blas", "cpu-ts", "webgpu"] as const).filter((t) =>
    t === "webgpu" ? backends.includes("webgpu") : backends.includes("cpu")
  );
  const r = await runTrainBench({
    model,
    trainers: [...trainers],
    torch,
    threads,
    batches: quick ? 1 : 3,
    repeats: quick ? 1 : 3,
    log: (l) => console.log(l),
  });
  const md = trainBenchMarkdown(r);
  const load = Deno.loadavg().map((x) => x.toFixed(2)).join(", ");
  console.log(`\n${md}\n\nload average: ${load}`);
  atomicWrite(`${out}/train.md`, `${md}\n\nLoad average at the end: ${load}.\n`);
  atomicWrite(`${out}/train.json`, JSON.stringify({ ...r, load }, null, 2) + "\n");
  return 0;
}
