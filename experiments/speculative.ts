/**
 * The research comparison of issue 25: at equal draft cost, does a SkipDecode draft (top layers
 * kept, warm-up, budget decaying with position) draft better than early exit or a constant
 * mid-layer skip? {@linkcode compareDrafts} runs self-speculative decoding
 * (`decode/speculative.ts`) with each draft and `K` on the same prompts and reports, with 95%
 * bootstrap intervals over prompts: the acceptance rate, layer passes per token (and the layer
 * speedup `L / passes`), the draft's cost (its mean active layers per draft step over `L`),
 * acceptance by draft index and by generated position, and wall time. Outputs are the full
 * model's by construction (checked in `tests/speculative_test.ts`).
 *
 * @example
 * ```ts
 * import { compareDrafts } from "./speculative.ts";
 * import { loadModel } from "../decode/mod.ts";
 * const model = await loadModel("bundled/models/tiny-opt-e2e", { backend: "cpu" });
 * const rows = await compareDrafts(model.backend, [model.tokenizer.encode("name[Zizzi]\n")], {
 *   drafts: ["linear:max=12,min=4,warmup=1", "earlyexit:constant:n=8"], ks: [3],
 *   maxNewTokens: 8,
 * });
 * console.log(rows.map((r) => [r.draft, r.acceptanceRate, r.ci.acceptanceRate]));
 * ```
 *
 * @module
 */
import type { Backend } from "../backend/types.ts";
import { parsePolicy, type Policy } from "../schedule/mod.ts";
import { speculativeDecode } from "../decode/speculative.ts";
import {
  bootstrapMean,
  type BootstrapOptions,
  bootstrapRatio,
  type Interval,
  positionIntervals,
} from "../eval/bootstrap.ts";

/** Options of {@linkcode compareDrafts}. */
export interface CompareDraftsOptions {
  /** Draft policies (or their command-line forms). */
  drafts: (Policy | string)[];
  /** Draft lengths to try with each. */
  ks: number[];
  /** Tokens per prompt at most. */
  maxNewTokens: number;
  /** Rows decoded at once (default 8). */
  batchSize?: number;
  /** Stop a row at this id (default: never, so every prompt drafts the same length). */
  eosTokenId?: number;
  /** Bootstrap resamples and seed. */
  bootstrap?: BootstrapOptions;
}

/** A per-position figure with its interval. */
export interface PositionFigure {
  /** Draft index (0: the first draft of a round) or generated-token index. */
  position: number;
  /** Mean over the prompts present there. */
  mean: number;
  /** 95% bootstrap interval. */
  ci: Interval;
  /** Prompts with a value there. */
  items: number;
}

/** One draft at one `K`: see {@linkcode compareDrafts}. */
export interface DraftComparisonRow {
  /** The draft policy's command-line form. */
  draft: string;
  /** Draft length. */
  k: number;
  /** Mean active layers of a draft step over `L` (the draft's cost relative to a full step). */
  draftCost: number;
  /** Accepted drafts over drafted, all prompts. */
  acceptanceRate: number;
  /** Mean accepted drafts per verification that checked at least one. */
  meanAcceptedLength: number;
  /** Layer passes per generated token. */
  layerPassesPerToken: number;
  /** `L / layerPassesPerToken`: above 1 when speculation reads fewer layers per token. */
  layerSpeedup: number;
  /** FLOPs over a full decode's (at least 1). */
  flopRatio: number;
  /** Intervals over prompts (95% bootstrap). */
  ci: { acceptanceRate: Interval; layerPassesPerToken: Interval; layerSpeedup: Interval };
  /** Acceptance by draft index within a round. */
  byDraftIndex: PositionFigure[];
  /** Acceptance by generated-token index (tokens that were drafted). */
  byTokenPosition: PositionFigure[];
  /** Wall milliseconds of this decode. */
  wallMs: number;
}

/**
 * Runs self-speculative decoding of `prompts` with every draft and `K`; see the module
 * documentation.
 *
 * @example
 * ```ts
 * import { compareDrafts } from "./speculative.ts";
 * import { createCpuBackend } from "../backend/cpu/backend.ts";
 * import { loadWeights } from "../model/mod.ts";
 * const cpu = createCpuBackend(await loadWeights("bundled/models/tiny-opt-e2e"));
 * const rows = await compareDrafts(cpu, [[2, 100, 101]], {
 *   drafts: ["constant:n=8,warmup=1"], ks: [2, 4], maxNewTokens: 6,
 * });
 * ```
 */
export async function compareDrafts(
  backend: Backend,
  prompts: readonly (readonly number[])[],
  options: CompareDraftsOptions,
): Promise<DraftComparisonRow[]> {
  const L = backend.config.numHiddenLayers;
  const boot = { resamples: 1000, ...options.bootstrap };
  const out: DraftComparisonRow[] = [];
  for (const d of options.drafts) {
    const draft = typeof d === "string" ? parsePolicy(d) : d;
    for (const k of options.ks) {
      const res = await speculativeDecode(backend, prompts, {
        draft,
        k,
        maxNewTokens: options.maxNewTokens,
        batchSize: options.batchSize,
        eosTokenId: options.eosTokenId,
      });
      const st = res.rows.map((r) => r.stats);
      const tokens = res.rows.map((r) => r.tokens.length);
      const drafted = st.map((s) => s.drafted), accepted = st.map((s) => s.accepted);
      const passes = st.map((s) => s.layerPasses);
      const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
      // draft layers = passes less L per verification and for the prefill
      const draftLayers = sum(st.map((s) => s.layerPasses - L * (s.verifications + 1)));
      const totalTokens = sum(tokens);
      out.push({
        draft: String(draft),
        k,
        draftCost: sum(drafted) ? draftLayers / (sum(drafted) * L) : NaN,
        acceptanceRate: sum(accepted) / sum(drafted),
        meanAcceptedLength: sum(accepted) / sum(st.map((s) => s.draftedAt[0] ?? 0)),
        layerPassesPerToken: sum(passes) / totalTokens,
        layerSpeedup: (L * totalTokens) / sum(passes),
        flopRatio: sum(st.map((s) => s.flops)) / sum(st.map((s) => s.fullFlops)),
        ci: {
          acceptanceRate: bootstrapRatio(accepted, drafted, boot),
          layerPassesPerToken: bootstrapRatio(passes, tokens, boot),
          layerSpeedup: bootstrapRatio(tokens.map((t) => t * L), passes, boot),
        },
        byDraftIndex: positionIntervals(
          st.map((s) => s.draftedAt.map((n, j) => s.acceptedAt[j] / n)),
          { ...boot, resamples: Math.min(boot.resamples, 300) },
        ),
        byTokenPosition: tokenPositions(st.map((s) => s.draftOutcome), boot),
        wallMs: res.wallMs,
      });
    }
  }
  return out;
}

/** Acceptance by generated position from each prompt's draft outcomes (-1: not drafted). */
function tokenPositions(outcomes: number[][], boot: BootstrapOptions): PositionFigure[] {
  const longest = Math.max(0, ...outcomes.map((o) => o.length));
  const out: PositionFigure[] = [];
  for (let t = 0; t < longest; t++) {
    const at: number[] = outcomes.map((o) => o[t]).filter((x) => x === 0 || x === 1);
    if (at.length === 0) continue;
    out.push({
      position: t,
      mean: at.reduce((a, b) => a + b, 0) / at.length,
      ci: bootstrapMean(at, {
        ...boot,
        resamples: Math.min(boot.resamples ?? 1000, 300),
        seed: (boot.seed ?? 0) + t,
      }),
      items: at.length,
    });
  }
  return out;
}

/**
 * {@linkcode compareDrafts}' rows as a Markdown table (the `sweep --speculative` section):
 * draft, K, draft cost, acceptance and layer speedup with their 95% intervals, layer passes per
 * token, FLOP ratio (never below 1: speculation never lowers FLOPs) and wall time.
 *
 * @example
 * ```ts
 * import { draftComparisonMarkdown } from "./speculative.ts";
 * console.log(draftComparisonMarkdown([]));
 * ```
 */
export function draftComparisonMarkdown(rows: readonly DraftComparisonRow[]): string {
  const f = (x: number, d = 2) => Number.isFinite(x) ? x.toFixed(d) : "-";
  const ci = ([lo, hi]: Interval) => `[${f(lo)}, ${f(hi)}]`;
  const lines = [
    "| draft | K | draft cost | acceptance | layer passes / token | layer speedup | FLOPs vs full | wall ms |",
    "| --- | --- | --- | --- | --- | --- | --- | --- |",
  ];
  for (const r of rows) {
    lines.push(
      `| ${r.draft} | ${r.k} | ${f(r.draftCost)} | ${f(r.acceptanceRate)} ${
        ci(r.ci.acceptanceRate)
      } | ${f(r.layerPassesPerToken)} | ${f(r.layerSpeedup)}x ${ci(r.ci.layerSpeedup)} | ${
        f(r.flopRatio)
      }x | ${r.wallMs.toFixed(0)} |`,
    );
  }
  return lines.join("\n");
}
