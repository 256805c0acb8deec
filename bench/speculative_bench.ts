/**
 * The speculative-decoding benchmark: wall time of greedy decoding with `full` against
 * self-speculative decoding (`decode/speculative.ts`) with SkipDecode and early-exit drafts, on
 * held-out E2E prompts (the data's own format, `"<mr>\n"`), at batch 1 (each prompt alone) and at
 * a larger batch, interleaved in one run: each repeat rotates through the methods so that a change
 * of machine load hits all of them alike. Every speculative output is checked equal to `full`'s
 * (the method is lossless; a difference is an error, not a figure).
 *
 * @example
 * ```ts
 * import { runSpeculativeBench, speculativeBenchMarkdown } from "./speculative_bench.ts";
 * const rows = await runSpeculativeBench({
 *   model: "bundled/models/tiny-opt-e2e", backend: "cpu", prompts: ["name[Alimentum]\n"],
 *   batches: [1], drafts: [{ policy: "linear:max=12,min=4,warmup=1", k: 3 }],
 *   maxNewTokens: 8, repeats: 1,
 * });
 * console.log(speculativeBenchMarkdown(rows));
 * ```
 *
 * @module
 */
import { type BackendName, createBackend } from "../backend/mod.ts";
import { loadWeights } from "../model/mod.ts";
import { loadTokenizer } from "../tokenizer/mod.ts";
import { fullPlanSets, parsePolicy } from "../schedule/mod.ts";
import { speculativeDecode } from "../decode/speculative.ts";

/** One draft configuration: a draft policy and its draft length `K`. */
export interface DraftSpec {
  /** The draft policy's command-line form. */
  policy: string;
  /** Draft length. */
  k: number;
}

/** Options of {@linkcode runSpeculativeBench}. */
export interface SpeculativeBenchOptions {
  /** Checkpoint folder. */
  model: string;
  /** Backend to run on. */
  backend: BackendName;
  /** Prompt texts (encoded with the model's tokenizer, BOS first). */
  prompts: string[];
  /** Batch sizes: 1 decodes each prompt alone. */
  batches: number[];
  /** The drafts to compare with `full`. */
  drafts: DraftSpec[];
  /** Tokens per prompt (EOS ignored, so every method generates the same count). */
  maxNewTokens: number;
  /** Interleaved repeats; the figure is the median. */
  repeats: number;
  /** Progress lines. */
  log?: (line: string) => void;
}

/** One row: a method at a batch size. */
export interface SpeculativeBenchRow {
  /** `"full"` or `"<policy> K=<k>"`. */
  method: string;
  /** Batch size. */
  batch: number;
  /** Median wall milliseconds over the repeats. */
  ms: number;
  /** Every repeat's wall milliseconds. */
  allMs: number[];
  /** `full`'s median over this method's (above 1: faster). */
  speedup: number;
  /** Accepted over drafted (NaN for `full`). */
  acceptanceRate: number;
  /** Layer passes per generated token (`L` for `full`). */
  layerPassesPerToken: number;
  /** FLOPs over `full`'s (1 for `full`). */
  flopRatio: number;
  /** Generated tokens per repeat. */
  tokens: number;
}

/**
 * Runs the benchmark; see the module documentation. Throws when a speculative output differs
 * from `full`'s.
 *
 * @example
 * ```ts
 * import { runSpeculativeBench } from "./speculative_bench.ts";
 * await runSpeculativeBench({
 *   model: "bundled/models/tiny-opt-e2e", backend: "cpu", prompts: ["name[Zizzi]\n"],
 *   batches: [1], drafts: [{ policy: "earlyexit:constant:n=6", k: 2 }], maxNewTokens: 4,
 *   repeats: 1,
 * });
 * ```
 */
export async function runSpeculativeBench(
  options: SpeculativeBenchOptions,
): Promise<SpeculativeBenchRow[]> {
  const log = options.log ?? (() => {});
  const weights = await loadWeights(options.model);
  const tokenizer = await loadTokenizer(options.model);
  const backend = await createBackend(weights, { backend: options.backend, onNote: log });
  const cfg = weights.config, L = cfg.numHiddenLayers, N = options.maxNewTokens;
  const prompts = options.prompts.map((p) => tokenizer.encode(p));
  const rows: SpeculativeBenchRow[] = [];
  try {
    for (const batch of options.batches) {
      const groups: number[][][] = [];
      for (let i = 0; i < prompts.length; i += batch) groups.push(prompts.slice(i, i + batch));
      const methods = [undefined, ...options.drafts];
      const times = methods.map(() => [] as number[]);
      const figures = methods.map(() => ({
        drafted: 0,
        accepted: 0,
        passes: 0,
        flops: 0,
        full: 0,
      }));
      let reference: number[][] | undefined;
      let tokens = 0;
      for (let rep = 0; rep < options.repeats; rep++) {
        for (const [m, spec] of methods.entries()) {
          const got: number[][] = [];
          const f = { drafted: 0, accepted: 0, passes: 0, flops: 0, full: 0 };
          const t0 = performance.now();
          for (const group of groups) {
            if (!spec) {
              const P = Math.max(...group.map((g) => g.length));
              const out = await backend.decode({
                prompts: group,
                maxNewTokens: N,
                sets: fullPlanSets(L, P + N - 1),
                padTokenId: cfg.padTokenId,
              });
              got.push(...out.tokens);
            } else {
              const out = await speculativeDecode(backend, group, {
                draft: parsePolicy(spec.policy),
                k: spec.k,
                maxNewTokens: N,
                batchSize: batch,
              });
              for (const r of out.rows) {
                got.push(r.tokens);
                f.drafted += r.stats.drafted;
                f.accepted += r.stats.accepted;
                f.passes += r.stats.layerPasses;
                f.flops += r.stats.flops;
                f.full += r.stats.fullFlops;
              }
            }
          }
          times[m].push(performance.now() - t0);
          figures[m] = f;
          if (!spec) reference = got;
          else if (JSON.stringify(got) !== JSON.stringify(reference)) {
            throw new Error(`speculative ${spec.policy} K=${spec.k}: output differs from full's`);
          }
          tokens = got.reduce((a, r) => a + r.length, 0);
          log(
            `batch ${batch} repeat ${rep + 1}: ${spec ? `${spec.policy} K=${spec.k}` : "full"} ` +
              `${times[m][rep].toFixed(0)} ms`,
          );
        }
      }
      const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
      const fullMs = median(times[0]);
      methods.forEach((spec, m) => {
        const f = figures[m];
        rows.push({
          method: spec ? `${spec.policy} K=${spec.k}` : "full",
          batch,
          ms: median(times[m]),
          allMs: times[m],
          speedup: fullMs / median(times[m]),
          acceptanceRate: spec ? f.accepted / f.drafted : NaN,
          layerPassesPerToken: spec ? f.passes / tokens : L,
          flopRatio: spec ? f.flops / f.full : 1,
          tokens,
        });
      });
    }
  } finally {
    backend.dispose();
  }
  return rows;
}

/**
 * The benchmark's rows as a Markdown table.
 *
 * @example
 * ```ts
 * import { speculativeBenchMarkdown } from "./speculative_bench.ts";
 * console.log(speculativeBenchMarkdown([]));
 * ```
 */
export function speculativeBenchMarkdown(rows: SpeculativeBenchRow[]): string {
  const lines = [
    "| batch | method | ms (median) | speedup vs full | acceptance | layer passes / token | FLOPs vs full |",
    "| --- | --- | --- | --- | --- | --- | --- |",
  ];
  for (const r of rows) {
    lines.push(
      `| ${r.batch} | ${r.method} | ${r.ms.toFixed(0)} | ${r.speedup.toFixed(2)}x | ${
        Number.isNaN(r.acceptanceRate) ? "-" : `${(100 * r.acceptanceRate).toFixed(1)}%`
      } | ${r.layerPassesPerToken.toFixed(2)} | ${r.flopRatio.toFixed(2)}x |`,
    );
  }
  return lines.join("\n");
}

/** Options of {@linkcode speculativeBenchMain}. */
export interface SpeculativeBenchMainOptions {
  /** Output folder (checked by the caller). */
  out: string;
  /** Backends to run. */
  backends: BackendName[];
  /** A small run (2 prompts, 8 tokens, 1 repeat). */
  quick: boolean;
  /**
   * Only `full` against the best SkipDecode draft of the CPU table on the dense fixture
   * (`linear:max=12,min=6,warmup=1`, K = 3 and 2): 8 prompts x 16 tokens, 5 repeats, sized
   * for the software WebGPU adapter.
   */
  best?: boolean;
  /** Where lines go. */
  log: (line: string) => void;
}

/**
 * `deno task bench --speculative`: the dense fixture (when `../shared` has it) and the
 * skip-trained tiny model, held-out E2E prompts (`../shared/data/e2e/testset-part2.csv`, else
 * the bundled devset, said in the output), batches 1 and 8, `full` against SkipDecode,
 * constant-skip and early-exit drafts; prints the tables with the load average and writes
 * `speculative.json` and `speculative.md` under `out`.
 *
 * @example
 * ```ts
 * import { speculativeBenchMain } from "./speculative_bench.ts";
 * await speculativeBenchMain({ out: "out/bench", backends: ["cpu"], quick: true, log: console.log });
 * ```
 */
export async function speculativeBenchMain(options: SpeculativeBenchMainOptions): Promise<void> {
  const { loadE2eCsv } = await import("../data/datasets.ts");
  const { atomicWrite } = await import("../io/output.ts");
  const { exists, TINY_MODEL_DIR } = await import("../data/bundled.ts");
  const heldOut = "../shared/data/e2e/testset-part2.csv";
  const data = exists(heldOut) ? heldOut : "bundled/data/e2e/devset.csv";
  const items = await loadE2eCsv(data);
  const q = options.quick, best = !!options.best;
  const prompts = items.slice(0, q ? 2 : 8).map((it) => `${it.mr}\n`);
  const models = [
    { label: "tiny-opt-e2e-dense", dir: "../shared/models/tiny-opt-e2e-dense" },
    { label: "tiny-opt-e2e (skip-trained)", dir: TINY_MODEL_DIR.replace(/\/$/, "") },
  ].filter((m) => exists(`${m.dir}/config.json`)).slice(0, best ? 1 : 2);
  if (best && models[0]?.label !== "tiny-opt-e2e-dense") {
    throw new Error("bench --speculative --best needs ../shared/models/tiny-opt-e2e-dense");
  }
  const tokens = q ? 8 : best ? 16 : 32, repeats = q ? 1 : best ? 5 : 3;
  const drafts: DraftSpec[] = q
    ? [{ policy: "linear:max=12,min=4,warmup=1", k: 3 }]
    : best
    ? [{ policy: "linear:max=12,min=6,warmup=1", k: 3 }, {
      policy: "linear:max=12,min=6,warmup=1",
      k: 2,
    }]
    : [
      { policy: "linear:max=12,min=6,warmup=1", k: 3 },
      { policy: "linear:max=12,min=4,warmup=1", k: 4 },
      { policy: "constant:n=8,warmup=1", k: 3 },
      { policy: "earlyexit:constant:n=8", k: 3 },
    ];
  const load = () => {
    try {
      return Deno.loadavg().map((x) => x.toFixed(2)).join(" ");
    } catch {
      return "unknown";
    }
  };
  const sections: string[] = [];
  const all: (SpeculativeBenchRow & { model: string; backend: string })[] = [];
  for (const backend of options.backends) {
    for (const m of models) {
      const head =
        `${m.label} on ${backend}: ${prompts.length} ${
          data === heldOut ? "held-out" : "devset (not held out)"
        } E2E prompts, ${tokens} tokens each (EOS ignored), median of ${repeats} ` +
        `interleaved repeats; load average at start ${load()}, ${new Date().toISOString()}`;
      options.log(`\nSpeculative decoding: ${head}`);
      const rows = await runSpeculativeBench({
        model: m.dir,
        backend,
        prompts,
        batches: [1, 8],
        drafts,
        maxNewTokens: tokens,
        repeats,
        log: options.log,
      });
      const table = speculativeBenchMarkdown(rows);
      options.log(table);
      options.log(`load average at end: ${load()}`);
      sections.push(`### ${head}\n\n${table}\n\nload average at end: ${load()}\n`);
      all.push(...rows.map((r) => ({ ...r, model: m.label, backend })));
    }
  }
  atomicWrite(`${options.out}/speculative.json`, JSON.stringify(all, null, 2));
  atomicWrite(`${options.out}/speculative.md`, sections.join("\n"));
  options.log(`\nwrote ${options.out}/speculative.json and ${options.out}/speculative.md`);
}
