/**
 * End-to-end decode benchmark: tokens/s of `full` and of linear plans at about 2x, 3x and
 * 4x layer speedup, batch sizes 1, 8 and 32, on both backends, for an OPT-125m-shaped
 * random model and the shared tiny checkpoint. Each measured speedup (wall time of `full`
 * over wall time of the policy, same model, backend and batch, same run) is printed beside
 * the plan's layer and FLOP speedups (SPEC §5).
 *
 * Run: `deno task bench` (add `--quick` for a run of under a minute).
 *
 * @module
 */
import { linear, type Plan, plan, type Policy } from "../schedule/mod.ts";
import { dimsFromConfig, full } from "../schedule/mod.ts";
import { type BackendName, createBackend } from "../backend/mod.ts";
import type { Backend } from "../backend/types.ts";
import { loadWeights, writeRandomCheckpoint } from "../model/mod.ts";
import type { OptConfig } from "../model/types.ts";

/** One measured configuration. */
export interface DecodeBenchRow {
  /** Model label. */
  model: string;
  /** Backend name. */
  backend: string;
  /** Rows per batch. */
  batch: number;
  /** Policy (command-line form). */
  policy: string;
  /** Plan's layer speedup over the generated tokens. */
  layerSpeedup: number;
  /** Plan's FLOP speedup over the generated tokens. */
  flopSpeedup: number;
  /** Wall milliseconds of the decode (prefill + tokens), median of the repeats. */
  ms: number;
  /** Generated tokens per second (all rows). */
  tokensPerSecond: number;
  /** Wall time of `full` over this policy's, same model/backend/batch, this run. */
  measuredSpeedup: number;
  /** `measuredSpeedup / flopSpeedup`. */
  ofFlopSpeedup: number;
  /**
   * Decode-phase time of `full` over the policy's (prefill excluded). The FLOP speedup is
   * taken over the generated-token columns, which is what this phase runs, while the wall
   * time also holds the full-depth prompt prefill that every policy shares.
   */
  decodeSpeedup: number;
  /** Awaited readbacks per decode. */
  readbacks: number;
}

/** Options of {@linkcode runDecodeBench}. */
export interface DecodeBenchOptions {
  /** Models: label and checkpoint folder. */
  models: { label: string; dir: string }[];
  /** Backends to run. */
  backends: BackendName[];
  /** Batch sizes. */
  batches: number[];
  /** Target layer speedups of the linear plans (besides `full`). */
  targets: number[];
  /** Prompt tokens per row. */
  promptLength: number;
  /** Tokens generated per row. */
  maxNewTokens: number;
  /** Timed repeats per policy, interleaved across policies (median reported). */
  repeats: number;
  /** Skip a (model, backend, batch) whose `full` decode would exceed this many GFLOP. */
  maxGflop?: Partial<Record<BackendName, number>>;
  /** Progress lines. */
  log?: (line: string) => void;
}

/**
 * The linear policy (warm-up 1, max = L) whose plan's layer speedup is closest to `target`
 * for this run's lengths, searching `min` and the horizon.
 *
 * @example
 * ```ts
 * const p = linearForSpeedup(12, 16, 32, 2); // about 2x fewer layers per token
 * ```
 */
export function linearForSpeedup(
  layers: number,
  promptLength: number,
  maxNewTokens: number,
  target: number,
): Policy {
  let best: { policy: Policy; err: number } | undefined;
  for (let min = 2; min <= layers; min++) {
    for (let horizon = 1; horizon <= maxNewTokens; horizon++) {
      const policy = linear({ max: layers, min, warmup: 1, horizon });
      const p = plan(policy, { layers, promptLength, maxNewTokens });
      const err = Math.abs(p.layerSpeedup - target);
      if (!best || err < best.err - 1e-9) best = { policy, err };
    }
  }
  return best!.policy;
}

function prompts(config: OptConfig, batch: number, length: number, seed: number): number[][] {
  let s = seed >>> 0;
  const next = () => (s = (Math.imul(s, 1664525) + 1013904223) >>> 0);
  return Array.from({ length: batch }, () => [
    config.bosTokenId,
    ...Array.from(
      { length: length - 1 },
      () => 4 + (next() % Math.min(config.vocabSize - 4, 50000)),
    ),
  ]);
}

async function timeDecode(
  backend: Backend,
  rows: number[][],
  p: Plan,
): Promise<{ ms: number; decodeMs: number; readbacks: number }> {
  const t = performance.now();
  const out = await backend.decode({
    prompts: rows,
    maxNewTokens: p.maxNewTokens,
    sets: p.sets,
    padTokenId: backend.config.padTokenId,
  });
  return {
    ms: performance.now() - t,
    decodeMs: out.timing.decodeMs,
    readbacks: out.timing.readbacks,
  };
}

/**
 * Runs the benchmark and returns one row per (model, backend, batch, policy). EOS is not
 * honoured, so every row generates exactly `maxNewTokens` tokens.
 *
 * @example
 * ```ts
 * const rows = await runDecodeBench({
 *   models: [{ label: "tiny", dir: "../shared/models/tiny-opt-e2e" }], backends: ["cpu"],
 *   batches: [1], targets: [2], promptLength: 8, maxNewTokens: 8, repeats: 1,
 * });
 * ```
 */
export async function runDecodeBench(options: DecodeBenchOptions): Promise<DecodeBenchRow[]> {
  const log = options.log ?? (() => {});
  const rows: DecodeBenchRow[] = [];
  for (const m of options.models) {
    const weights = await loadWeights(m.dir);
    const cfg = weights.config;
    const L = cfg.numHiddenLayers, P = options.promptLength, N = options.maxNewTokens;
    const policies = [
      full(),
      ...options.targets.map((t) => linearForSpeedup(L, P, N, t)),
    ];
    const plans = policies.map((policy) =>
      plan(policy, { ...dimsFromConfig(cfg), promptLength: P, maxNewTokens: N })
    );
    for (const name of options.backends) {
      const backend = await createBackend(weights, { backend: name, onNote: log });
      try {
        for (const batch of options.batches) {
          const gflop = plans[0].accounting!.fullTotalFlops * batch / 1e9;
          const limit = options.maxGflop?.[name];
          if (limit !== undefined && gflop > limit) {
            log(
              `skip ${m.label} ${backend.name} batch ${batch}: ${
                gflop.toFixed(0)
              } GFLOP > ${limit}`,
            );
            continue;
          }
          const input = prompts(cfg, batch, P, 7);
          await timeDecode(backend, input, plans[0]); // warm-up: pipelines, caches
          // Repeats rotate through the policies so that a change of machine load during the
          // run hits every policy alike; each policy's median is reported.
          const times = plans.map(() => [] as number[]);
          const decodeTimes = plans.map(() => [] as number[]);
          const readbacks = plans.map(() => 0);
          for (let r = 0; r < options.repeats; r++) {
            for (let i = 0; i < plans.length; i++) {
              const k = (i + r) % plans.length;
              const t = await timeDecode(backend, input, plans[k]);
              times[k].push(t.ms);
              decodeTimes[k].push(t.decodeMs);
              readbacks[k] = t.readbacks;
            }
          }
          const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
          const fullMs = median(times[0]);
          const fullDecodeMs = median(decodeTimes[0]);
          plans.forEach((p, k) => {
            const ms = median(times[k]);
            const measured = fullMs / ms;
            const flop = p.accounting!.flopSpeedup;
            const row: DecodeBenchRow = {
              model: m.label,
              backend: backend.name,
              batch,
              policy: String(p.policy),
              layerSpeedup: p.layerSpeedup,
              flopSpeedup: flop,
              ms,
              tokensPerSecond: (batch * N) / (ms / 1000),
              measuredSpeedup: measured,
              ofFlopSpeedup: measured / flop,
              decodeSpeedup: fullDecodeMs / median(decodeTimes[k]),
              readbacks: readbacks[k],
            };
            rows.push(row);
            log(formatRow(row));
          });
        }
      } finally {
        backend.dispose();
      }
    }
  }
  return rows;
}

function formatRow(r: DecodeBenchRow): string {
  return `| ${r.model} | ${r.backend} | ${r.batch} | ${r.policy} | ${
    r.layerSpeedup.toFixed(2)
  } | ` +
    `${r.flopSpeedup.toFixed(2)} | ${r.measuredSpeedup.toFixed(2)} | ${
      r.decodeSpeedup.toFixed(2)
    } | ${(100 * r.ofFlopSpeedup).toFixed(0)}% | ` +
    `${r.ms.toFixed(0)} | ${r.tokensPerSecond.toFixed(1)} | ${r.readbacks} |`;
}

/**
 * The benchmark table in Markdown.
 *
 * @example
 * ```ts
 * console.log(decodeBenchMarkdown(rows));
 * ```
 */
export function decodeBenchMarkdown(rows: DecodeBenchRow[]): string {
  return [
    "| model | backend | batch | policy | layer speedup | FLOP speedup | measured speedup | decode-phase speedup | measured / FLOP | ms | tokens/s | readbacks |",
    "| --- | --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ...rows.map(formatRow),
  ].join("\n");
}

/**
 * Writes (once) and returns the folder of the OPT-125m-shaped random benchmark model
 * (vocab 50272, hidden 768, 12 layers, f16) under `cacheDir`.
 *
 * @example
 * ```ts
 * const dir = ensureOpt125mFixture(".cache/bench");
 * ```
 */
export function ensureOpt125mFixture(cacheDir: string): string {
  const dir = `${cacheDir}/opt-125m-random`;
  try {
    Deno.statSync(`${dir}/model.safetensors`);
    return dir;
  } catch {
    Deno.mkdirSync(dir, { recursive: true });
    writeRandomCheckpoint(dir, { shape: "opt-125m", seed: 125, dtype: "F16" });
    return dir;
  }
}
