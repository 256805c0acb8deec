/**
 * The serving benchmark (issue 19): `N` requests (E2E prompts `"<mr>\n"` from the bundled
 * devset, each stopping at EOS under a generous cap: the model's natural output length) arrive
 * as a seeded Poisson process at `rate` requests per second, and the continuous-batching
 * scheduler serves them in `static`, `aligned` and `per-row` admission at the same batch size
 * on the very same arrival times. Runs rotate through the modes per repeat (interleaved, so load
 * changes hit all alike); each run is bounded by a time limit (unfinished requests are cancelled
 * and counted).
 *
 * It drives the {@linkcode Scheduler} in-process rather than `serve` over HTTP: on a 2-core
 * machine a client process competes with the server for the same cores and the JSON/SSE work
 * per token is the same in every mode, so the in-process run measures the scheduling difference
 * (what the modes change) with less noise; `tests/serve_http_test.ts` covers the HTTP path.
 *
 * Reported per mode: throughput (generated tokens / (last completion - first arrival)), time to
 * first token and latency (p50, p99; from the scheduled arrival, so queueing counts), running
 * rows over time (mean, slot utilisation, and steps where requests waited while slots idled),
 * layer-steps executed (one per token and active layer, prompts included), and the ratios to
 * `static`. Every request's tokens are compared across modes (they must agree: each equals its
 * solo decode).
 *
 * @example
 * ```ts
 * import { runServeBench, serveBenchMarkdown } from "./serve_bench.ts";
 * const result = await runServeBench({ backend: "cpu", requests: 8, rate: 4, capacity: 4, repeats: 1 });
 * console.log(serveBenchMarkdown(result));
 * ```
 * @module
 */
import { loadModel } from "../decode/mod.ts";
import type { BackendName } from "../backend/mod.ts";
import { applyTemplate, E2E_DEVSET_URL, E2E_TEMPLATE, loadE2eCsv } from "../data/datasets.ts";
import { seededRandom } from "../model/random.ts";
import {
  ADMISSION_MODES,
  type AdmissionMode,
  type Completion,
  Scheduler,
  type StepInfo,
} from "../serve/mod.ts";

/** Options of {@linkcode runServeBench}. */
export interface ServeBenchOptions {
  /** Checkpoint folder (default the bundled tiny model). */
  model?: string;
  /** Backend (default `cpu`). */
  backend?: BackendName;
  /** Requests per run (default 32). */
  requests?: number;
  /** Mean arrivals per second of the Poisson process (default 4). */
  rate?: number;
  /** Rows decoded at once, the same for every mode (default 8). */
  capacity?: number;
  /** Token cap per request; requests stop at EOS before it (default 64). */
  maxTokens?: number;
  /** Policy of every request (default `linear:max=12,min=4,warmup=1`). */
  policy?: string;
  /** Interleaved repeats of the three modes (default 2). */
  repeats?: number;
  /** Seconds one run may take before the rest is cancelled (default 180). */
  timeLimit?: number;
  /** Seed of the arrivals and of the prompt sample (default 19). */
  seed?: number;
  /** Progress lines. */
  log?: (line: string) => void;
}

/** One mode's figures (medians over repeats where several). */
export interface ServeBenchRow {
  /** Admission mode. */
  mode: AdmissionMode;
  /** Requests finished within the time limit (of `requests`). */
  completed: number;
  /** Generated tokens of those. */
  tokens: number;
  /** Tokens per second, first arrival to last completion. */
  tokensPerSecond: number;
  /** Time to first token, ms, from the scheduled arrival. */
  ttftP50: number;
  /** 99th percentile of the same. */
  ttftP99: number;
  /** Latency (arrival to last token), ms. */
  latencyP50: number;
  /** 99th percentile of the same. */
  latencyP99: number;
  /** Mean rows per step. */
  meanRows: number;
  /** `Σ rows / (steps * capacity)`. */
  utilisation: number;
  /** Steps run while requests waited and slots were free (where static idles). */
  idleWaitSteps: number;
  /** Batched steps. */
  steps: number;
  /** Layer evaluations of tokens (prompts included). */
  layerSteps: number;
  /** Running rows over time: the mean in each tenth of the run. */
  timeline: number[];
  /** Wall seconds of each repeat. */
  wallSeconds: number[];
  /** Mean milliseconds of a step without prefill, by running rows (all repeats). */
  stepMsByRows: Record<number, number>;
}

/** What {@linkcode runServeBench} returns. */
export interface ServeBenchResult {
  /** The options used. */
  options: Required<Omit<ServeBenchOptions, "log">>;
  /** Mean of the requests' natural lengths (tokens generated under the cap). */
  meanOutputTokens: number;
  /** One row per mode. */
  rows: ServeBenchRow[];
  /** Whether every request got the same tokens in every mode and repeat. */
  sameTokens: boolean;
  /** Load average before and after. */
  load: { before: string; after: string };
  /** ISO date of the run. */
  date: string;
}

const loadavg = () => {
  try {
    return Deno.loadavg().map((x) => x.toFixed(2)).join(" ");
  } catch {
    return "unknown (grant --allow-sys=loadavg)";
  }
};

const quantile = (xs: number[], q: number) => {
  if (!xs.length) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil(q * s.length) - 1)];
};
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

/**
 * Runs the three admission modes on the same seeded arrivals, interleaved.
 *
 * @example
 * ```ts
 * import { runServeBench } from "./serve_bench.ts";
 * const r = await runServeBench({ requests: 6, rate: 10, capacity: 2, repeats: 1, maxTokens: 16 });
 * console.log(r.rows.map((row) => [row.mode, row.tokensPerSecond]));
 * ```
 */
export async function runServeBench(options: ServeBenchOptions = {}): Promise<ServeBenchResult> {
  const o = {
    model: options.model ?? new URL("../bundled/models/tiny-opt-e2e", import.meta.url).pathname,
    backend: options.backend ?? "cpu",
    requests: options.requests ?? 32,
    rate: options.rate ?? 4,
    capacity: options.capacity ?? 8,
    maxTokens: options.maxTokens ?? 64,
    policy: options.policy ?? "linear:max=12,min=4,warmup=1",
    repeats: options.repeats ?? 2,
    timeLimit: options.timeLimit ?? 180,
    seed: options.seed ?? 19,
  };
  const log = options.log ?? (() => {});
  const before = loadavg();
  const model = await loadModel(o.model, { backend: o.backend, onNote: log });
  try {
    const items = await loadE2eCsv(E2E_DEVSET_URL);
    const random = seededRandom(o.seed);
    const prompts: string[] = [];
    const arrivals: number[] = [];
    let t = 0;
    for (let i = 0; i < o.requests; i++) {
      prompts.push(applyTemplate(E2E_TEMPLATE, items[Math.floor(random() * items.length)]));
      arrivals.push(t);
      t += -Math.log(1 - random()) / o.rate * 1000; // exponential gaps, ms
    }
    const perMode = new Map<AdmissionMode, RunFigures[]>();
    const tokensOf = new Map<number, string>();
    let sameTokens = true;
    for (let rep = 0; rep < o.repeats; rep++) {
      const order = ADMISSION_MODES.map((_, k) =>
        ["static", "aligned", "per-row"][(k + rep) % 3] as AdmissionMode
      );
      for (const mode of order) {
        const fig = await runOnce(model, mode, prompts, arrivals, o);
        fig.ids.forEach((ids, i) => {
          if (!ids) return;
          const key = ids.join(",");
          if (tokensOf.has(i) && tokensOf.get(i) !== key) sameTokens = false;
          tokensOf.set(i, key);
        });
        if (!perMode.has(mode)) perMode.set(mode, []);
        perMode.get(mode)!.push(fig);
        log(
          `  repeat ${rep + 1} ${mode.padEnd(7)}: ${fig.completed}/${o.requests} done, ` +
            `${fig.tokensPerSecond.toFixed(1)} tokens/s, p99 latency ${
              (fig.latencyP99 / 1000).toFixed(2)
            } s, ${fig.wall.toFixed(1)} s`,
        );
      }
    }
    const rows: ServeBenchRow[] = ["static", "aligned", "per-row"].map((m) => {
      const figs = perMode.get(m as AdmissionMode)!;
      const med = (f: (x: RunFigures) => number) => median(figs.map(f));
      return {
        mode: m as AdmissionMode,
        completed: Math.min(...figs.map((f) => f.completed)),
        tokens: med((f) => f.tokens),
        tokensPerSecond: med((f) => f.tokensPerSecond),
        ttftP50: med((f) => f.ttftP50),
        ttftP99: med((f) => f.ttftP99),
        latencyP50: med((f) => f.latencyP50),
        latencyP99: med((f) => f.latencyP99),
        meanRows: med((f) => f.meanRows),
        utilisation: med((f) => f.utilisation),
        idleWaitSteps: med((f) => f.idleWaitSteps),
        steps: med((f) => f.steps),
        layerSteps: med((f) => f.layerSteps),
        timeline: figs[0].timeline,
        wallSeconds: figs.map((f) => f.wall),
        stepMsByRows: meanByRows(figs.flatMap((f) => f.decodeSteps)),
      };
    });
    const lengths = [...tokensOf.values()].map((k) => k.split(",").length);
    return {
      options: o,
      meanOutputTokens: lengths.reduce((a, b) => a + b, 0) / Math.max(lengths.length, 1),
      rows,
      sameTokens,
      load: { before, after: loadavg() },
      date: new Date().toISOString(),
    };
  } finally {
    model.dispose();
  }
}

/** One run of one mode: a row's figures before the medians, with what the medians need. */
interface RunFigures extends Omit<ServeBenchRow, "mode" | "wallSeconds" | "stepMsByRows"> {
  wall: number;
  ids: (number[] | undefined)[];
  decodeSteps: [number, number][];
}

function meanByRows(steps: [number, number][]): Record<number, number> {
  const sums = new Map<number, [number, number]>();
  for (const [rows, ms] of steps) {
    const [a, n] = sums.get(rows) ?? [0, 0];
    sums.set(rows, [a + ms, n + 1]);
  }
  return Object.fromEntries([...sums].sort((x, y) => x[0] - y[0]).map(([k, [a, n]]) => [k, a / n]));
}

async function runOnce(
  model: Awaited<ReturnType<typeof loadModel>>,
  mode: AdmissionMode,
  prompts: string[],
  arrivals: number[],
  o: { capacity: number; maxTokens: number; policy: string; timeLimit: number },
): Promise<RunFigures> {
  const steps: StepInfo[] = [];
  const scheduler = new Scheduler(model, {
    capacity: o.capacity,
    mode,
    maxQueue: prompts.length,
    policy: o.policy,
    onStep: (s) => steps.push(s),
  });
  const t0 = performance.now();
  const results: { c: Completion; offset: number; end: number }[] = [];
  const pending: Promise<void>[] = [];
  const deadline = t0 + o.timeLimit * 1000;
  for (let i = 0; i < prompts.length; i++) {
    const wait = t0 + arrivals[i] - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    if (performance.now() > deadline) break;
    const offset = performance.now() - (t0 + arrivals[i]);
    const h = scheduler.submit({ prompt: prompts[i], maxTokens: o.maxTokens });
    const k = i;
    pending.push(h.done.then((c) => {
      results[k] = { c, offset, end: performance.now() };
    }));
  }
  const timer = setTimeout(() => scheduler.close(0), Math.max(0, deadline - performance.now()));
  await Promise.all(pending);
  clearTimeout(timer);
  await scheduler.close(0);
  const rowsStats = scheduler.metrics().rows;
  const done = results.filter((r) => r && r.c.finish !== "cancelled");
  const tokens = done.reduce((a, r) => a + r.c.ids.length, 0);
  const last = Math.max(...done.map((r) => r.end));
  const wall = (last - t0) / 1000;
  const ttft = done.map((r) => r.offset + r.c.timing.firstTokenMs);
  const latency = done.map((r) => r.offset + r.c.timing.totalMs);
  const rowSum = steps.reduce((a, s) => a + s.rows, 0);
  const timeline = Array.from({ length: 10 }, (_, b) => {
    const lo = t0 + (b / 10) * (last - t0), hi = t0 + ((b + 1) / 10) * (last - t0);
    const inBin = steps.filter((s) => s.time >= lo && s.time < hi);
    return inBin.length ? inBin.reduce((a, s) => a + s.rows, 0) / inBin.length : 0;
  });
  return {
    completed: done.length,
    tokens,
    tokensPerSecond: tokens / wall,
    ttftP50: quantile(ttft, 0.5),
    ttftP99: quantile(ttft, 0.99),
    latencyP50: quantile(latency, 0.5),
    latencyP99: quantile(latency, 0.99),
    meanRows: rowSum / Math.max(steps.length, 1),
    utilisation: rowSum / Math.max(steps.length * o.capacity, 1),
    idleWaitSteps: steps.filter((s) => s.queued > 0 && s.rows < o.capacity).length,
    steps: steps.length,
    layerSteps: rowsStats.layerSteps,
    timeline,
    wall,
    ids: results.map((r) => r && r.c.finish !== "cancelled" ? r.c.ids : undefined),
    decodeSteps: steps.filter((s) => s.admitted === 0).map((s) => [s.rows, s.ms]),
  };
}

/**
 * The result as a Markdown table with ratios to `static`, and the run's conditions.
 *
 * @example
 * ```ts
 * import { serveBenchMarkdown } from "./serve_bench.ts";
 * declare const r: import("./serve_bench.ts").ServeBenchResult;
 * console.log(serveBenchMarkdown(r));
 * ```
 */
export function serveBenchMarkdown(r: ServeBenchResult): string {
  const o = r.options;
  const base = r.rows.find((x) => x.mode === "static")!;
  const s = (ms: number) => (ms / 1000).toFixed(2);
  const x = (a: number, b: number) => `${(a / b).toFixed(2)}x`;
  const lines = [
    `${o.requests} E2E requests, Poisson ${o.rate}/s (seed ${o.seed}), batch size ${o.capacity}, ` +
    `policy ${o.policy}, cap ${o.maxTokens} tokens (EOS ends a request; mean natural length ` +
    `${r.meanOutputTokens.toFixed(1)} tokens), ${o.backend} backend, ${o.repeats} interleaved ` +
    `repeat(s) (medians); ${r.date}; load average ${r.load.before} before, ${r.load.after} after`,
    "",
    "| mode | done | tokens/s | TTFT p50 / p99 (s) | latency p50 / p99 (s) | mean rows (util.) | " +
    "steps waiting with idle slots | steps | layer-steps | throughput vs static | p99 latency vs static |",
    "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ...r.rows.map((row) =>
      `| ${row.mode} | ${row.completed}/${o.requests} | ${row.tokensPerSecond.toFixed(1)} | ${
        s(row.ttftP50)
      } / ${s(row.ttftP99)} | ${s(row.latencyP50)} / ${s(row.latencyP99)} | ${
        row.meanRows.toFixed(2)
      } (${
        (100 * row.utilisation).toFixed(0)
      }%) | ${row.idleWaitSteps} | ${row.steps} | ${row.layerSteps} | ${
        x(row.tokensPerSecond, base.tokensPerSecond)
      } | ${x(row.latencyP99, base.latencyP99)} |`
    ),
    "",
    "Running rows over time (mean per tenth of the run, first repeat):",
    ...r.rows.map((row) => `- ${row.mode}: ${row.timeline.map((v) => v.toFixed(1)).join(" ")}`),
    "",
    "Step time by running rows (ms, steps without a prefill, mean over all repeats): what a",
    "free slot would cost to fill; a step whose time grows in proportion to its rows gains",
    "nothing from fuller batches.",
    ...r.rows.map((row) =>
      `- ${row.mode}: ${
        Object.entries(row.stepMsByRows).map(([k, v]) => `${k}: ${v.toFixed(0)}`).join(", ")
      }`
    ),
    "",
    `Same tokens for every request in every mode and repeat: ${r.sameTokens ? "yes" : "NO"}`,
  ];
  return lines.join("\n");
}
