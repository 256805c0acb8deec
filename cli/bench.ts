/**
 * `deno task bench`: the kernel benchmark (matrix products, `bench/matmul_bench.ts`) and the
 * end-to-end decode benchmark (`bench/decode_bench.ts`), printed as tables and written as
 * JSON and Markdown under `out/bench/`. `--quick` runs in under a minute. `--serve` runs the
 * serving benchmark instead (`bench/serve_bench.ts`: continuous batching against static).
 *
 * @module
 */
import { parseArgs } from "../std/cli.ts";
import {
  decodeBenchMarkdown,
  ensureOpt125mFixture,
  runDecodeBench,
  sideBySideMarkdown,
  skipNeverSlowerCheck,
} from "../bench/decode_bench.ts";
import type { BackendName } from "../backend/mod.ts";
import { exists, TINY_MODEL_DIR } from "./paths.ts";
import { quietVulkanRuntimeDir } from "../kernels/device.ts";
import { atomicWrite, checkOutputPath } from "../eval/output.ts";
import { runServeBench, serveBenchMarkdown } from "../bench/serve_bench.ts";

const HELP =
  `deno task bench [--quick] [--backend cpu|webgpu|both] [--skip-kernels] [--no-torch] [--out DIR]
deno task bench --scale [--quick] [--sizes 125m,350m,1.3b,2.7b,6.7b] [--cpu-sizes LIST]
                        [--backend cpu|webgpu|both] [--max-gflop N] [--repeats N]
  --scale         only the scale benchmark (bench/scale_bench.ts): random f16 checkpoints of the
                  paper's OPT shapes written under .cache/scale (removed after), each backend in
                  a fresh process: load time, peak resident memory, tokens/s, top-k agreement
  --sizes         scale: shapes to measure (default all five; --quick 125m)
  --cpu-sizes     scale: shapes the CPU backend also runs (default 125m,350m,1.3b,2.7b)
  --max-gflop N   scale: skip batch 8 where its full decode exceeds N GFLOP (default 100)
deno task bench --serve [--quick] [--backend cpu|webgpu] [--requests N] [--rate R] [--batch-size B]
                        [--repeats N]
  --serve         only the serving benchmark (bench/serve_bench.ts): static, aligned and per-row
                  admission on the same seeded Poisson arrivals of E2E prompts, interleaved
  --requests N    serving: requests per run (default 32; --quick 12)
  --rate R        serving: mean arrivals per second (default 4; --quick 8)
  --batch-size B  serving: rows decoded at once in every mode (default 8; --quick 4)
  --repeats N     serving: interleaved repeats of the three modes (default 2; --quick 1)
  --quick         tiny checkpoint only, batches 1 and 4, 16 tokens, 2 repeats: under a minute
  --backend       which backends to run (default both; webgpu needs an adapter)
  --skip-kernels  only the end-to-end decode benchmark
  --no-torch      do not run the PyTorch eager reference (run when /usr/bin/python3 has torch)
  --threads N     PyTorch threads (default: the machine's cores)
  --torch-device  cpu (default) or cuda: PyTorch CUDA eager on a GPU machine
  --speculative   only the speculative-decoding benchmark (full vs SkipDecode/early-exit drafts)
  --best          with --speculative: the dense fixture, full vs its best SkipDecode draft only
                  (linear:max=12,min=6,warmup=1 K=3 and 2), 8 prompts x 16 tokens, 5 repeats
  --out DIR       where to write decode.json / decode.md (default out/bench)`;

/**
 * Runs the benchmarks; returns the exit code.
 *
 * @example
 * ```ts
 * await benchMain(["--quick"]);
 * ```
 */
export async function benchMain(args: string[]): Promise<number> {
  const { values } = parseArgs(args, {
    quick: { type: "boolean" },
    backend: { type: "string" },
    "skip-kernels": { type: "boolean" },
    torch: { type: "boolean", default: true },
    threads: { type: "string" },
    "torch-device": { type: "string" },
    out: { type: "string" },
    speculative: { type: "boolean" },
    best: { type: "boolean" },
    help: { type: "boolean" },
    serve: { type: "boolean" },
    scale: { type: "boolean" },
    sizes: { type: "string" },
    "cpu-sizes": { type: "string" },
    "max-gflop": { type: "string" },
    requests: { type: "string" },
    rate: { type: "string" },
    "batch-size": { type: "string" },
    repeats: { type: "string" },
  });
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  const quick = !!values.quick;
  const threads = values.threads === undefined
    ? navigator.hardwareConcurrency
    : /^[0-9]+$/.test(values.threads as string) // decimal digits only, as cli/command.ts
    ? Number(values.threads)
    : NaN;
  if (!Number.isInteger(threads) || threads < 1 || threads > 1024) {
    console.error(
      `error: --threads must be a whole number from 1 to 1024, got "${values.threads}"`,
    );
    return 2;
  }
  const out = (values.out as string | undefined) ?? "out/bench";
  const which = (values.backend as string | undefined) ?? "both";
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
  if (!backends.every((b) => b === "cpu" || b === "webgpu")) {
    console.error(`error: --backend must be cpu, webgpu or both, got "${which}"`);
    return 2;
  }
  if (!adapter && backends.includes("webgpu")) {
    console.warn(
      "WARNING: no WebGPU adapter: the WebGPU rows are skipped (install libvulkan1 mesa-vulkan-drivers)",
    );
    backends.splice(backends.indexOf("webgpu"), 1);
  }
  if (adapter) console.log(`adapter: ${adapter.info.description || adapter.info.vendor}`);
  Deno.mkdirSync(out, { recursive: true });
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
  const torchDevice = (values["torch-device"] as string | undefined) ?? "cpu";
  if (torchDevice !== "cpu" && torchDevice !== "cuda") {
    console.error(`error: --torch-device must be cpu or cuda, got "${torchDevice}"`);
    return 2;
  }
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

/** `--serve`: the serving benchmark, printed and written as serve.json / serve.md. */
async function serveBench(
  values: Record<string, unknown>,
  quick: boolean,
  out: string,
  backend: string,
): Promise<number> {
  const num = (name: string, fallback: number, integer: boolean) => {
    const v = values[name];
    if (v === undefined) return fallback;
    const n = Number(v);
    const ok = /^[0-9.]+$/.test(String(v)) && n > 0 && (!integer || Number.isInteger(n));
    if (!ok) {
      throw new Error(`--${name} must be a ${integer ? "whole " : ""}number above 0, got "${v}"`);
    }
    return n;
  };
  if (backend !== "cpu" && backend !== "webgpu") {
    console.error(`error: --backend must be cpu or webgpu with --serve, got "${backend}"`);
    return 2;
  }
  let options;
  try {
    options = {
      backend: backend as BackendName,
      requests: num("requests", quick ? 12 : 32, true),
      rate: num("rate", quick ? 8 : 4, false),
      capacity: num("batch-size", quick ? 4 : 8, true),
      maxTokens: quick ? 48 : 64,
      repeats: num("repeats", quick ? 1 : 2, true),
      timeLimit: quick ? 60 : 240,
    };
  } catch (e) {
    console.error(`error: ${(e as Error).message}`);
    return 2;
  }
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
