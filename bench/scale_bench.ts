/**
 * The scale benchmark (`deno task bench --scale`): random f16 checkpoints of the paper's
 * OPT shapes (125m, 350m, 1.3b, 2.7b, 6.7b), written one at a time under `.cache/scale/`
 * and removed after, each loaded and decoded by each backend in a fresh subprocess so that
 * the peak resident memory (`VmHWM`) of one run never mixes with another's. Reported per
 * (size, backend): weight bytes, load time, peak resident memory after loading and after
 * decoding, tokens/s at batch 1 and 8 for `full` and a linear policy at about 2x layer
 * speedup (interleaved repeats, same process), and the top-k agreement of the `full`
 * batch-1 decode between the backends where both ran.
 *
 * @example
 * ```ts
 * import { runScaleBench, scaleBenchMarkdown } from "./scale_bench.ts";
 * const rows = await runScaleBench({ shapes: ["opt-125m"], backends: ["cpu"] });
 * console.log(scaleBenchMarkdown(rows));
 * ```
 *
 * @module
 */
import { dimsFromConfig, full, type Plan, plan } from "../schedule/mod.ts";
import { createBackend } from "../backend/mod.ts";
import type { Backend } from "../backend/types.ts";
import { loadWeights, writeRandomCheckpoint } from "../model/mod.ts";
import type { OptShapeName } from "../model/config.ts";
import { formatBytes, peakResidentBytes, residentWeightBytes } from "../model/memory.ts";
import { linearForSpeedup } from "./decode_bench.ts";
import { atomicWrite } from "../io/output.ts";

/** The shapes measured by default, smallest first. */
export const SCALE_SHAPES: readonly OptShapeName[] = [
  "opt-125m",
  "opt-350m",
  "opt-1.3b",
  "opt-2.7b",
  "opt-6.7b",
];

/** One timed decode configuration of a child run. */
export interface ScaleTiming {
  /** Rows per batch. */
  batch: number;
  /** Policy (command-line form). */
  policy: string;
  /** The plan's layer speedup over the generated tokens. */
  layerSpeedup: number;
  /** Median wall milliseconds of the decode (prefill + generated tokens). */
  ms: number;
  /** Generated tokens per second over all rows (wall time, prefill included). */
  tokensPerSecond: number;
}

/** What one child process measured for one (shape, backend). */
export interface ScaleChildResult {
  /** Backend name. */
  backend: string;
  /** Bytes the backend holds for the weights (`model/memory.ts`). */
  weightBytes: number;
  /** Milliseconds from reading the headers to a backend ready to decode. */
  loadMs: number;
  /** `VmHWM` after loading, bytes. */
  peakAfterLoad: number;
  /** `VmHWM` at the end (after every decode), bytes. */
  peakEnd: number;
  /** Timings. */
  timings: ScaleTiming[];
  /** Top-k ids per step of the `full` batch-1 decode (row 0). */
  topk: number[][];
  /** Their logits. */
  topkLogits: number[][];
  /** Configurations left out by `maxGflop`. */
  skipped: string[];
}

/** One row of the scale table. */
export interface ScaleBenchRow extends ScaleChildResult {
  /** Shape name. */
  shape: string;
  /** Bytes of the checkpoint's tensors on disk. */
  checkpointBytes: number;
  /** For the WebGPU row: top-k ids equal to the CPU's at every step (`undefined`: no CPU run). */
  topkEqual?: boolean;
  /** Largest difference of the top-k logits against the CPU's. */
  topkMaxDiff?: number;
  /** Error line when the child failed. */
  error?: string;
}

/** Options of a child run (also the parent's, which passes them on). */
export interface ScaleChildOptions {
  /** Prompt tokens per row (default 8). */
  promptLength?: number;
  /** Generated tokens per row (default 4). */
  maxNewTokens?: number;
  /** Batch sizes (default 1 and 8). */
  batches?: number[];
  /** Interleaved repeats per configuration (default 1: `full` and the 2x policy alternate). */
  repeats?: number;
  /** Top-k width compared between backends (default 5). */
  topK?: number;
  /**
   * Skip a batch above 1 whose `full` decode exceeds this many GFLOP (default: no limit);
   * batch 1 always runs.
   */
  maxGflop?: number;
}

function prompts(vocab: number, bos: number, batch: number, length: number): number[][] {
  let s = 12345;
  const next = () => (s = (Math.imul(s, 1664525) + 1013904223) >>> 0);
  return Array.from(
    { length: batch },
    () => [bos, ...Array.from({ length: length - 1 }, () => 4 + (next() % (vocab - 4)))],
  );
}

async function timeDecode(b: Backend, rows: number[][], p: Plan, pad: number): Promise<number> {
  const t = performance.now();
  await b.decode({ prompts: rows, maxNewTokens: p.maxNewTokens, sets: p.sets, padTokenId: pad });
  return performance.now() - t;
}

/**
 * Loads `dir` on `backend` and measures it (the body of a child process).
 *
 * @example
 * ```ts
 * import { measureScaleChild } from "./scale_bench.ts";
 * const r = await measureScaleChild("bundled/models/tiny-opt-e2e", "cpu", { repeats: 1 });
 * console.log(r.loadMs, r.peakEnd);
 * ```
 */
export async function measureScaleChild(
  dir: string,
  backendName: "cpu" | "webgpu",
  options: ScaleChildOptions = {},
): Promise<ScaleChildResult> {
  const P = options.promptLength ?? 8, N = options.maxNewTokens ?? 4;
  const repeats = options.repeats ?? 1, K = options.topK ?? 5;
  const t0 = performance.now();
  const weights = await loadWeights(dir);
  const backend = await createBackend(weights, { backend: backendName });
  const loadMs = performance.now() - t0;
  const peakAfterLoad = peakResidentBytes();
  const cfg = weights.config;
  const dims = { ...dimsFromConfig(cfg), promptLength: P, maxNewTokens: N };
  const policies = [full(), linearForSpeedup(cfg.numHiddenLayers, P, N, 2)];
  const plans = policies.map((p) => plan(p, dims));
  const timings: ScaleTiming[] = [];
  const skipped: string[] = [];
  const pad = cfg.padTokenId;
  try {
    const one = prompts(Math.min(cfg.vocabSize, 50000), cfg.bosTokenId, 1, P);
    const ref = await backend.decode({
      prompts: one,
      maxNewTokens: N,
      sets: plans[0].sets,
      padTokenId: pad,
      logitsTopK: K,
    });
    const topk = ref.topk![0].map((step) => step.map(([id]) => id));
    const topkLogits = ref.topk![0].map((step) => step.map(([, v]) => v));
    for (const batch of options.batches ?? [1, 8]) {
      const gflop = plans[0].accounting!.fullTotalFlops * batch / 1e9;
      if (batch > 1 && options.maxGflop !== undefined && gflop > options.maxGflop) {
        skipped.push(`batch ${batch} (${gflop.toFixed(0)} GFLOP > ${options.maxGflop})`);
        continue;
      }
      const rows = prompts(Math.min(cfg.vocabSize, 50000), cfg.bosTokenId, batch, P);
      const ms = plans.map(() => [] as number[]);
      for (let r = 0; r < repeats; r++) {
        for (let i = 0; i < plans.length; i++) {
          const k = (i + r) % plans.length;
          ms[k].push(await timeDecode(backend, rows, plans[k], pad));
        }
      }
      plans.forEach((p, k) => {
        const sorted = [...ms[k]].sort((a, b) => a - b);
        const med = sorted[Math.floor(sorted.length / 2)];
        timings.push({
          batch,
          policy: String(policies[k]),
          layerSpeedup: p.layerSpeedup,
          ms: med,
          tokensPerSecond: (batch * N) / (med / 1000),
        });
      });
    }
    return {
      backend: backendName,
      weightBytes: residentWeightBytes(weights, backendName),
      loadMs,
      peakAfterLoad,
      peakEnd: peakResidentBytes(),
      timings,
      topk,
      topkLogits,
      skipped,
    };
  } finally {
    await backend.dispose();
  }
}

/** Options of {@linkcode runScaleBench}. */
export interface ScaleBenchOptions extends ScaleChildOptions {
  /** Shapes, in order (default {@linkcode SCALE_SHAPES}). */
  shapes?: readonly OptShapeName[];
  /** Backends per shape (default both). */
  backends?: ("cpu" | "webgpu")[];
  /** Shapes on which the CPU backend is run too (default: all of `shapes`). */
  cpuShapes?: readonly OptShapeName[];
  /** Where the temporary checkpoints go (default `.cache/scale`). */
  workDir?: string;
  /** Progress lines. */
  log?: (line: string) => void;
  /** Seconds a child may run before it is stopped (default 1800). */
  childTimeoutS?: number;
}

const CHILD_FLAG = "--scale-child";

async function runChild(
  dir: string,
  backend: "cpu" | "webgpu",
  options: ScaleBenchOptions,
): Promise<ScaleChildResult> {
  const cmd = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-read=.,../shared",
      "--allow-sys=systemMemoryInfo",
      "--allow-env=XDG_RUNTIME_DIR,SKIPDECODE_*",
      new URL(import.meta.url).pathname,
      CHILD_FLAG,
      dir,
      backend,
      JSON.stringify({ ...options, log: undefined }),
    ],
    stdout: "piped",
    stderr: "piped",
  });
  const child = cmd.spawn();
  const timer = setTimeout(() => {
    try {
      child.kill("SIGKILL");
    } catch { /* already gone */ }
  }, (options.childTimeoutS ?? 1800) * 1000);
  const out = await child.output();
  clearTimeout(timer);
  const stdout = new TextDecoder().decode(out.stdout);
  const line = stdout.split("\n").find((l) => l.startsWith("{"));
  if (!out.success || !line) {
    const err = new TextDecoder().decode(out.stderr).trim().split("\n");
    const msg = err.find((l) => /error/i.test(l)) ?? err.at(-1) ?? "";
    throw new Error(
      `${backend} child ${out.signal ? `killed by ${out.signal}` : `exited ${out.code}`}: ${msg}`,
    );
  }
  return JSON.parse(line);
}

/**
 * Writes each shape's random checkpoint, runs one child process per backend on it, removes
 * the checkpoint and returns the rows (the WebGPU rows with the top-k comparison against the
 * CPU's where both ran).
 *
 * @example
 * ```ts
 * import { runScaleBench } from "./scale_bench.ts";
 * const rows = await runScaleBench({ shapes: ["opt-125m"], backends: ["webgpu"] });
 * ```
 */
export async function runScaleBench(options: ScaleBenchOptions = {}): Promise<ScaleBenchRow[]> {
  const log = options.log ?? (() => {});
  const rows: ScaleBenchRow[] = [];
  const work = options.workDir ?? ".cache/scale";
  for (const shape of options.shapes ?? SCALE_SHAPES) {
    const dir = `${work}/${shape}`;
    const t = performance.now();
    const ck = writeRandomCheckpoint(dir, { shape, dtype: "F16", seed: 1 });
    log(
      `${shape}: wrote ${formatBytes(ck.bytes)} in ${
        ((performance.now() - t) / 1000).toFixed(0)
      } s`,
    );
    try {
      const backends = (options.backends ?? ["cpu", "webgpu"]).filter((b) =>
        b !== "cpu" || !options.cpuShapes || options.cpuShapes.includes(shape)
      );
      const got: ScaleBenchRow[] = [];
      for (const b of backends) {
        try {
          const r = await runChild(dir, b, options);
          got.push({ shape, checkpointBytes: ck.bytes, ...r });
          log(
            `${shape} ${b}: load ${(r.loadMs / 1000).toFixed(1)} s, peak ${
              formatBytes(r.peakEnd)
            } for ${formatBytes(r.weightBytes)} of weights`,
          );
        } catch (e) {
          log(`${shape} ${b}: ${(e as Error).message}`);
          got.push({
            shape,
            checkpointBytes: ck.bytes,
            backend: b,
            weightBytes: NaN,
            loadMs: NaN,
            peakAfterLoad: NaN,
            peakEnd: NaN,
            timings: [],
            topk: [],
            topkLogits: [],
            skipped: [],
            error: (e as Error).message,
          });
        }
      }
      const cpu = got.find((r) => r.backend === "cpu" && !r.error);
      for (const r of got) {
        if (r.backend === "cpu" || !cpu || r.error) continue;
        r.topkEqual = JSON.stringify(r.topk) === JSON.stringify(cpu.topk);
        r.topkMaxDiff = Math.max(
          ...r.topkLogits.flatMap((s, i) => s.map((v, j) => Math.abs(v - cpu.topkLogits[i][j]))),
        );
      }
      rows.push(...got);
    } finally {
      Deno.removeSync(dir, { recursive: true });
    }
  }
  return rows;
}

const gb = (n: number) => Number.isFinite(n) ? (n / 1e9).toFixed(2) : "-";

/**
 * The scale table as Markdown.
 *
 * @example
 * ```ts
 * import { scaleBenchMarkdown } from "./scale_bench.ts";
 * console.log(scaleBenchMarkdown([]));
 * ```
 */
export function scaleBenchMarkdown(rows: ScaleBenchRow[]): string {
  const tps = (r: ScaleBenchRow, batch: number, full: boolean) => {
    const t = r.timings.find((x) => x.batch === batch && (x.policy === "full") === full);
    return t ? t.tokensPerSecond.toFixed(2) : "-";
  };
  const lines = [
    "| shape | backend | checkpoint GB | held GB | load s | peak GB (load / end) | " +
    "peak - checkpoint GB | tok/s b1 full | b1 2x | b8 full | b8 2x | top-k vs CPU |",
    "| --- | --- | --: | --: | --: | --: | --: | --: | --: | --: | --: | --- |",
  ];
  for (const r of rows) {
    if (r.error) {
      lines.push(
        `| ${r.shape} | ${r.backend} | ${
          gb(r.checkpointBytes)
        } | | | | | | | | | failed: ${r.error} |`,
      );
      continue;
    }
    const topk = r.topkEqual === undefined
      ? "-"
      : `${r.topkEqual ? "equal" : "DIFFERENT"} (max diff ${r.topkMaxDiff!.toExponential(1)})`;
    lines.push(
      `| ${r.shape} | ${r.backend} | ${gb(r.checkpointBytes)} | ${gb(r.weightBytes)} | ` +
        `${(r.loadMs / 1000).toFixed(1)} | ${gb(r.peakAfterLoad)} / ${gb(r.peakEnd)} | ` +
        `${gb(r.peakEnd - r.checkpointBytes)} | ${tps(r, 1, true)} | ${tps(r, 1, false)} | ` +
        `${tps(r, 8, true)} | ${tps(r, 8, false)} | ${topk} |`,
    );
  }
  return lines.join("\n");
}

/**
 * `deno task bench --scale`: parses the scale options, runs {@linkcode runScaleBench},
 * prints the table with the load average and writes `scale.json` / `scale.md` under `out`.
 * Returns the exit code (2 for a bad option, 1 when a child failed or top-k differ).
 *
 * @example
 * ```ts
 * import { scaleBenchMain } from "./scale_bench.ts";
 * await scaleBenchMain({ sizes: "125m", backend: "cpu" }, "out/bench");
 * ```
 */
export async function scaleBenchMain(
  values: Record<string, unknown>,
  out: string,
): Promise<number> {
  const list = (name: string, fallback: readonly OptShapeName[]) => {
    const v = values[name];
    if (v === undefined) return [...fallback];
    return String(v).split(",").map((x) => {
      const shape = (x.trim().startsWith("opt-") ? x.trim() : `opt-${x.trim()}`) as OptShapeName;
      if (!SCALE_SHAPES.includes(shape)) {
        throw new Error(
          `--${name}: unknown size "${x}" (sizes: ${
            SCALE_SHAPES.map((s) => s.slice(4)).join(", ")
          })`,
        );
      }
      return shape;
    });
  };
  const num = (name: string, fallback: number) => {
    const v = values[name];
    if (v === undefined) return fallback;
    const n = Number(v);
    if (!/^[0-9.]+$/.test(String(v)) || !(n > 0)) {
      throw new Error(`--${name} must be a number above 0, got "${v}"`);
    }
    return n;
  };
  const which = String(values.backend ?? "both");
  let options: ScaleBenchOptions;
  try {
    if (!["cpu", "webgpu", "both"].includes(which)) {
      throw new Error(`--backend must be cpu, webgpu or both, got "${which}"`);
    }
    const quick = !!values.quick;
    options = {
      shapes: list("sizes", quick ? ["opt-125m"] : SCALE_SHAPES),
      cpuShapes: list("cpu-sizes", SCALE_SHAPES.slice(0, 4)),
      backends: which === "both" ? ["cpu", "webgpu"] : [which as "cpu" | "webgpu"],
      maxGflop: num("max-gflop", 100),
      repeats: Math.round(num("repeats", 1)),
    };
  } catch (e) {
    console.error(`error: ${(e as Error).message}`);
    return 2;
  }
  const load = () => Deno.loadavg().map((x) => x.toFixed(2)).join(" ");
  console.log(
    `\nScale: random f16 checkpoints of ${options.shapes!.join(", ")}, each backend in a fresh ` +
      `process; prompt 8, 4 new tokens, batches 1 and 8 (8 only up to ${options.maxGflop} GFLOP)`,
  );
  console.log(`load average at start: ${load()}`);
  const rows = await runScaleBench({ ...options, log: (l) => console.log(l) });
  const md = scaleBenchMarkdown(rows) + `\n\nload average at end: ${load()}\n`;
  console.log("\n" + md);
  Deno.mkdirSync(out, { recursive: true });
  atomicWrite(`${out}/scale.json`, JSON.stringify(rows, null, 2));
  atomicWrite(`${out}/scale.md`, md);
  console.log(`wrote ${out}/scale.json and ${out}/scale.md`);
  return rows.some((r) => r.error || r.topkEqual === false) ? 1 : 0;
}

if (import.meta.main && Deno.args[0] === CHILD_FLAG) {
  const [, dir, backend, json] = Deno.args;
  const { quietVulkanRuntimeDir } = await import("../kernels/device.ts");
  quietVulkanRuntimeDir();
  const r = await measureScaleChild(dir, backend as "cpu" | "webgpu", JSON.parse(json ?? "{}"));
  console.log(JSON.stringify(r));
}
