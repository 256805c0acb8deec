/**
 * End-to-end decode benchmark: tokens/s of `full` and of linear plans at the target layer
 * speedups (`deno task bench`: about 2x and 3x), batch sizes 1, 8 and 32, on both backends
 * and on the PyTorch eager reference (`torch_engine.ts`, when it can run), for an
 * OPT-125m-shaped random model and the bundled tiny checkpoint, all engines timed
 * interleaved. Each measured speedup (wall time of `full` over wall time of the policy,
 * same model, engine and batch, same run) is printed beside the plan's layer and FLOP
 * speedups (docs/DESIGN.md §5); {@linkcode sideBySideMarkdown} puts the engines side by side and
 * {@linkcode skipNeverSlowerCheck} checks that no skip plan is slower than `full`.
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
import { startTorchEngine, type TorchEngineOptions } from "./torch_engine.ts";
import { seededRandom } from "../model/random.ts";

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
  /** Wall milliseconds of every timed repeat. */
  msAll?: number[];
  /** Fastest repeat's wall milliseconds (the least disturbed by other processes). */
  msMin?: number;
  /** Fraction of generated tokens equal to the first engine's (same batch and policy). */
  sameTokens?: number;
}

/** Options of {@linkcode runDecodeBench}. */
export interface DecodeBenchOptions {
  /** Models: label, checkpoint folder and (optionally) their own batch sizes. */
  models: { label: string; dir: string; batches?: number[] }[];
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
  maxGflop?: Partial<Record<BackendName | "torch", number>>;
  /**
   * Also time the PyTorch eager reference (`bench/torch_decode.py`) interleaved with the
   * backends, when `/usr/bin/python3` with `torch` can run here (options: its threads).
   */
  torch?: boolean | TorchEngineOptions;
  /** Called with the reason when `torch` was asked for but cannot run. */
  onTorchSkipped?: (reason: string) => void;
  /** Called with the PyTorch engine's description and warning (misleading BLAS), once. */
  onTorchStarted?: (description: string, warning?: string) => void;
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
  const r = seededRandom(seed);
  return Array.from({ length: batch }, () => [
    config.bosTokenId,
    ...Array.from(
      { length: length - 1 },
      () => 4 + Math.floor(r() * Math.min(config.vocabSize - 4, 50000)),
    ),
  ]);
}

/** Something that decodes: a project backend or the PyTorch reference. */
interface Engine {
  readonly name: string;
  decode(req: {
    prompts: number[][];
    maxNewTokens: number;
    sets: number[][];
    padTokenId: number;
  }): Promise<{ tokens: number[][]; timing: { decodeMs: number; readbacks: number } }>;
}

async function timeDecode(
  engine: Engine,
  rows: number[][],
  p: Plan,
  padTokenId: number,
): Promise<{ ms: number; decodeMs: number; readbacks: number; tokens: number[][] }> {
  const t = performance.now();
  const out = await engine.decode({
    prompts: rows,
    maxNewTokens: p.maxNewTokens,
    sets: p.sets as number[][],
    padTokenId,
  });
  return {
    ms: performance.now() - t,
    decodeMs: out.timing.decodeMs,
    readbacks: out.timing.readbacks,
    tokens: out.tokens,
  };
}

function agreement(a: number[][], b: number[][]): number {
  let same = 0, all = 0;
  a.forEach((row, i) =>
    row.forEach((id, j) => {
      all++;
      if (b[i]?.[j] === id) same++;
    })
  );
  return all ? same / all : 1;
}

/**
 * Runs the benchmark and returns one row per (model, engine, batch, policy). EOS is not
 * honoured, so every row generates exactly `maxNewTokens` tokens. All engines of a model
 * (the backends, and the PyTorch reference when `torch` is set and it can run) are loaded
 * at once and timed interleaved: each repeat rotates through the policies and, inside each
 * policy, through the engines, so that a change of machine load hits all of them alike.
 *
 * @example
 * ```ts
 * const rows = await runDecodeBench({
 *   models: [{ label: "tiny", dir: "bundled/models/tiny-opt-e2e" }], backends: ["cpu"],
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
    const engines: Engine[] = [];
    const closers: (() => Promise<void> | void)[] = [];
    try {
      for (const name of options.backends) {
        const backend: Backend = await createBackend(weights, { backend: name, onNote: log });
        engines.push(backend);
        closers.push(() => backend.dispose());
      }
      if (options.torch) {
        const t = await startTorchEngine(m.dir, options.torch === true ? {} : options.torch);
        if ("engine" in t) {
          engines.push(t.engine);
          closers.push(() => t.engine.close());
          log(`${m.label}: PyTorch reference: ${t.engine.description}`);
          if (t.engine.warning) log(`WARNING: ${t.engine.warning}`);
          options.onTorchStarted?.(t.engine.description, t.engine.warning);
        } else {
          log(`${m.label}: PyTorch reference skipped: ${t.skipped}`);
          options.onTorchSkipped?.(t.skipped);
        }
      }
      for (const batch of m.batches ?? options.batches) {
        const gflop = plans[0].accounting!.fullTotalFlops * batch / 1e9;
        const active = engines.filter((e) => {
          const limit = options.maxGflop?.[e.name as BackendName];
          if (limit !== undefined && gflop > limit) {
            log(`skip ${m.label} ${e.name} batch ${batch}: ${gflop.toFixed(0)} GFLOP > ${limit}`);
            return false;
          }
          return true;
        });
        if (!active.length) continue;
        const input = prompts(cfg, batch, P, 7);
        const pad = cfg.padTokenId;
        // warm-up (pipelines, caches, allocator): a short decode of the same batch and prompt
        const warm = plan(full(), { ...dimsFromConfig(cfg), promptLength: P, maxNewTokens: 2 });
        for (const e of active) await timeDecode(e, input, warm, pad);
        const times = active.map(() => plans.map(() => [] as number[]));
        const decodeTimes = active.map(() => plans.map(() => [] as number[]));
        const readbacks = active.map(() => plans.map(() => 0));
        const tokens = active.map(() => plans.map(() => [] as number[][]));
        for (let r = 0; r < options.repeats; r++) {
          for (let i = 0; i < plans.length; i++) {
            const k = (i + r) % plans.length;
            for (let j = 0; j < active.length; j++) {
              const e = (j + r + i) % active.length;
              const t = await timeDecode(active[e], input, plans[k], pad);
              times[e][k].push(t.ms);
              decodeTimes[e][k].push(t.decodeMs);
              readbacks[e][k] = t.readbacks;
              tokens[e][k] = t.tokens;
            }
          }
        }
        const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
        active.forEach((engine, e) => {
          const fullMs = median(times[e][0]);
          const fullDecodeMs = median(decodeTimes[e][0]);
          plans.forEach((p, k) => {
            const ms = median(times[e][k]);
            const measured = fullMs / ms;
            const flop = p.accounting!.flopSpeedup;
            const row: DecodeBenchRow = {
              model: m.label,
              backend: engine.name,
              batch,
              policy: String(p.policy),
              layerSpeedup: p.layerSpeedup,
              flopSpeedup: flop,
              ms,
              tokensPerSecond: (batch * N) / (ms / 1000),
              measuredSpeedup: measured,
              ofFlopSpeedup: measured / flop,
              decodeSpeedup: fullDecodeMs / median(decodeTimes[e][k]),
              readbacks: readbacks[e][k],
              msAll: times[e][k],
              msMin: Math.min(...times[e][k]),
            };
            if (e > 0) row.sameTokens = agreement(tokens[e][k], tokens[0][k]);
            rows.push(row);
            log(formatRow(row));
          });
        });
      }
    } finally {
      for (const c of closers) await c();
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
 * declare const rows: DecodeBenchRow[]; // from runDecodeBench
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

/**
 * The side-by-side table: per (model, batch, policy), tokens/s of each project backend and
 * of the PyTorch eager reference, and each backend's ratio to PyTorch (above 1: faster).
 *
 * @example
 * ```ts
 * declare const rows: DecodeBenchRow[]; // from runDecodeBench
 * console.log(sideBySideMarkdown(rows));
 * ```
 */
export function sideBySideMarkdown(rows: DecodeBenchRow[]): string {
  const engines = [...new Set(rows.map((r) => r.backend))].filter((e) => e !== "torch");
  const hasTorch = rows.some((r) => r.backend === "torch");
  const keys = [...new Set(rows.map((r) => `${r.model}\u0000${r.batch}\u0000${r.policy}`))];
  const head = [
    "model",
    "batch",
    "policy",
    "FLOP speedup",
    ...engines.map((e) => `${e} tok/s`),
    ...(hasTorch ? ["PyTorch tok/s", ...engines.map((e) => `${e} / PyTorch`)] : []),
    ...(hasTorch ? ["PyTorch tokens = first backend's"] : []),
  ];
  const lines = [
    `| ${head.join(" | ")} |`,
    `| ${head.map((_, i) => (i < 3 ? "---" : "---:")).join(" | ")} |`,
  ];
  for (const key of keys) {
    const [model, batch, policy] = key.split("\u0000");
    const of = (e: string) =>
      rows.find((r) =>
        r.model === model && String(r.batch) === batch && r.policy === policy && r.backend === e
      );
    const any = rows.find((r) =>
      r.model === model && String(r.batch) === batch && r.policy === policy
    )!;
    const t = of("torch");
    const cells = [
      model,
      batch,
      policy,
      any.flopSpeedup.toFixed(2),
      ...engines.map((e) => of(e)?.tokensPerSecond.toFixed(1) ?? "–"),
    ];
    if (hasTorch) {
      cells.push(t ? t.tokensPerSecond.toFixed(1) : "–");
      for (const e of engines) {
        const r = of(e);
        cells.push(r && t ? (r.tokensPerSecond / t.tokensPerSecond).toFixed(2) : "–");
      }
      cells.push(t?.sameTokens !== undefined ? `${(100 * t.sameTokens).toFixed(0)}%` : "–");
    }
    lines.push(`| ${cells.join(" | ")} |`);
  }
  return lines.join("\n");
}

/**
 * Checks that no skip plan is slower than `full` (same model, engine and batch, same run),
 * comparing the fastest of the interleaved repeats (other processes only ever add time, so
 * the minimum is the least noisy estimate); returns one line per engine and batch (with
 * the median-based speedups too) and whether all of the project's backends passed (the
 * PyTorch reference's lines are marked "info").
 *
 * @example
 * ```ts
 * declare const rows: DecodeBenchRow[]; // from runDecodeBench
 * const { ok, lines } = skipNeverSlowerCheck(rows);
 * console.log(ok, lines.join("\n"));
 * ```
 */
export function skipNeverSlowerCheck(rows: DecodeBenchRow[]): { ok: boolean; lines: string[] } {
  const lines: string[] = [];
  let ok = true;
  const groups = new Map<string, DecodeBenchRow[]>();
  for (const r of rows) {
    const k = `${r.model} ${r.backend} batch ${r.batch}`;
    groups.set(k, [...(groups.get(k) ?? []), r]);
  }
  for (const [k, rs] of groups) {
    const full = rs.find((r) => r.policy === "full");
    if (!full) continue;
    const skips = rs.filter((r) => r !== full);
    const best = (r: DecodeBenchRow) => r.msMin ?? r.ms;
    const slower = skips.filter((r) => best(r) > best(full));
    // the PyTorch reference is shown, not judged: the check is about the project's backends
    const reference = full.backend === "torch";
    if (slower.length && !reference) ok = false;
    lines.push(
      `${reference ? "info" : slower.length ? "FAIL" : "ok  "} ${k}: full ${
        best(full).toFixed(0)
      } ms (fastest ` +
        `repeat); skip plans ${
          skips.map((r) => `${(best(full) / best(r)).toFixed(2)}x`).join(", ")
        }` +
        ` (medians: ${skips.map((r) => `${r.measuredSpeedup.toFixed(2)}x`).join(", ")})` +
        (slower.length ? `; slower: ${slower.map((r) => r.policy).join("; ")}` : ""),
    );
  }
  return { ok, lines };
}
