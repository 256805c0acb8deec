/**
 * Quality against speedup of a model in training, before and after fine-tuning: for each
 * policy, BLEU of greedy generations on E2E meaning representations (all references of an
 * `mr`), the layer and FLOP speedups those generations got, and teacher-forced NLL of
 * held-out pairs, in memory (a parameter set, no checkpoint written between). The command
 * line's fine-tune-and-measure run is the paper's procedure (`skipdecode procedure`,
 * `procedure.ts`), which fine-tunes one copy per policy and writes its report set.
 *
 * @module
 */
import { createBackend } from "../backend/mod.ts";
import { generate } from "../decode/engine.ts";
import { corpusBleu } from "../eval/bleu.ts";
import { corpusRougeL } from "../eval/rouge.ts";
import { type E2eItem, loadE2eCsv } from "../data/datasets.ts";
import type { FrontierPoint } from "../plots/charts.ts";
import { loadTokenizer, type OptTokenizer } from "../tokenizer/mod.ts";
import type { Example } from "../train/batch.ts";
import { loadTrainingCheckpoint } from "../train/checkpoint.ts";
import type { TrainConfig } from "../train/config.ts";
import { e2eExamples, shuffled, splitItems } from "../train/data.ts";
import { seededRandom } from "../model/random.ts";
import { evaluateNll } from "../train/evaluate.ts";
import { modelView, type ParamSet, weightsFromParams } from "../train/param_set.ts";
import { parsePolicySource } from "../train/policies.ts";
import { forward } from "../train/reference.ts";
import { SHARED_E2E_DEVSET, train, type TrainHooks } from "../train/trainer.ts";

/** One policy's figures. */
export interface PolicyQuality {
  /** The policy's command-line form. */
  policy: string;
  /** Corpus BLEU (0 to 100) of greedy generations, all references per `mr`. */
  bleu: number;
  /** Corpus ROUGE-L F-measure (0 to 1). */
  rougeL: number;
  /** Teacher-forced NLL per target token of the held-out pairs (nats). */
  nll: number;
  /** Target tokens the NLL covers. */
  nllTokens: number;
  /** NLL of pairs the fine-tuning trains on (when `seenExamples` were given). */
  seenNll?: number;
  /** `Σ L / Σ layers` over the generated tokens. */
  layerSpeedup: number;
  /** Full-model FLOPs over the policy's, same tokens. */
  flopSpeedup: number;
  /** Tokens generated. */
  generatedTokens: number;
  /** A few generations, for reading. */
  samples: string[];
}

/** Options of {@linkcode policyQuality}. */
export interface QualityOptions {
  /** Generation length cap (default 64). */
  maxNewTokens?: number;
  /** Rows per generation batch (default 8). */
  batchSize?: number;
  /** Backend that generates (default `"cpu"`). */
  backend?: "cpu" | "webgpu";
  /** Called with a line per finished policy. */
  onNote?: (line: string) => void;
  /** Pairs of the training split, scored as `seenNll`. */
  seenExamples?: readonly Example[];
}

/**
 * Measures each policy on a model given as a parameter set: BLEU and ROUGE-L of greedy
 * generations for `items` (prompt `"<mr>\n"`), speedups of those generations, and
 * teacher-forced NLL of `nllExamples` (same layer sets as inference).
 *
 * @example
 * ```ts
 * import type { ParamSet } from "../train/param_set.ts";
 * import type { Example } from "../train/batch.ts";
 * import type { OptTokenizer } from "../tokenizer/mod.ts";
 * import type { E2eItem } from "../data/datasets.ts";
 * declare const params: ParamSet, tok: OptTokenizer;
 * declare const heldOutItems: E2eItem[], heldOutPairs: Example[];
 * const policies = ["full", "linear:max=6,min=2,warmup=1,horizon=16"];
 * const q = await policyQuality(params, tok, heldOutItems, heldOutPairs, policies);
 * ```
 */
export async function policyQuality(
  params: ParamSet,
  tokenizer: OptTokenizer,
  items: readonly E2eItem[],
  nllExamples: readonly Example[],
  policies: readonly string[],
  options: QualityOptions = {},
): Promise<PolicyQuality[]> {
  const config = params.config;
  const backend = await createBackend(weightsFromParams(params), {
    backend: options.backend ?? "cpu",
  });
  const scorer = {
    score: (b: Parameters<typeof forward>[1]) =>
      Promise.resolve(forward(modelView(params), b, { train: false }).nll),
  };
  const out: PolicyQuality[] = [];
  try {
    for (const policy of policies) {
      const gen = await generate({ backend, tokenizer, config }, items.map((it) => `${it.mr}\n`), {
        policy,
        maxNewTokens: options.maxNewTokens ?? 64,
        batchSize: options.batchSize ?? 8,
      });
      const hyps = gen.results.map((r) => r.text.trim());
      const refs = items.map((it) => it.refs);
      const nll = await evaluateNll(
        scorer,
        nllExamples,
        parsePolicySource(policy),
        config.numHiddenLayers,
        config.padTokenId,
        16,
        policy,
      );
      const seen = options.seenExamples
        ? await evaluateNll(
          scorer,
          options.seenExamples,
          parsePolicySource(policy),
          config.numHiddenLayers,
          config.padTokenId,
          16,
          policy,
        )
        : undefined;
      const q: PolicyQuality = {
        policy,
        ...(seen ? { seenNll: seen.nll } : {}),
        bleu: corpusBleu(hyps, refs).score,
        rougeL: corpusRougeL(hyps, refs).fmeasure,
        nll: nll.nll,
        nllTokens: nll.tokens,
        layerSpeedup: gen.layerSpeedup,
        flopSpeedup: gen.flopSpeedup,
        generatedTokens: gen.timing.generatedTokens,
        samples: hyps.slice(0, 3),
      };
      options.onNote?.(
        `${policy}: BLEU ${q.bleu.toFixed(2)}, ROUGE-L ${q.rougeL.toFixed(4)}, NLL ${
          q.nll.toFixed(4)
        }${seen ? ` (seen pairs ${seen.nll.toFixed(4)})` : ""}, layer speedup ${
          q.layerSpeedup.toFixed(2)
        }x`,
      );
      out.push(q);
    }
  } finally {
    backend.dispose();
  }
  return out;
}

/**
 * Frontier points (quality against layer speedup) of measured policies, for `frontierChart`.
 *
 * @example
 * ```ts
 * import { frontierChart } from "../plots/charts.ts";
 * declare const before: PolicyQuality[]; // from policyQuality
 * const fig = frontierChart(frontierPoints(before, "BLEU", "before: "));
 * ```
 */
export function frontierPoints(
  q: readonly PolicyQuality[],
  metric: "BLEU" | "NLL" = "BLEU",
  prefix = "",
): FrontierPoint[] {
  return q.map((x) => ({
    name: prefix + x.policy.replace(/^linear:/, "lin:"),
    speedup: x.policy === "full" ? 1 : x.layerSpeedup,
    quality: metric === "BLEU" ? x.bleu : x.nll,
    metric,
  }));
}

/** What {@linkcode finetuneExperiment} measures. */
export interface ExperimentReport {
  /** The training configuration. */
  config: TrainConfig;
  /** Policies measured before and after. */
  policies: string[];
  /** Held-out meaning representations used for BLEU. */
  bleuItems: number;
  /** Held-out pairs used for NLL. */
  nllPairs: number;
  /** Training-split pairs scored as `seenNll`. */
  seenPairs: number;
  /** Figures of the source model. */
  before: PolicyQuality[];
  /** Figures of the fine-tuned model. */
  after: PolicyQuality[];
  /** Training throughput: real input tokens per second. */
  tokensPerSecond: number;
  /** Target tokens per second. */
  targetsPerSecond: number;
  /** Wall seconds of training (without evaluations). */
  trainSeconds: number;
}

/**
 * Fine-tunes a model for a configuration and measures the policies before and after on
 * held-out E2E meaning representations (the trainer's held-out split, so no training pair
 * shares an `mr` with them).
 *
 * @example
 * ```ts
 * import { resolveTrainConfig } from "../train/config.ts";
 * const policy = "linear:max=6,min=2,warmup=1,horizon=16";
 * const config = resolveTrainConfig([
 *   { model: "bundled/models/tiny-opt-e2e", out: "out/ft", policy, steps: 50 },
 * ]);
 * const r = await finetuneExperiment(config, ["full", policy]);
 * ```
 */
export async function finetuneExperiment(
  config: TrainConfig,
  policies: readonly string[],
  options: QualityOptions & {
    bleuItems?: number;
    nllPairs?: number;
    seenPairs?: number;
    hooks?: TrainHooks;
  } = {},
): Promise<ExperimentReport> {
  const note = options.onNote ?? (() => {});
  const tokenizer = await loadTokenizer(config.model);
  const items = await loadE2eCsv(config.data === "e2e" ? SHARED_E2E_DEVSET : config.data);
  const split = splitItems(items, Math.min(config.heldOut, items.length - 1), config.seed);
  const bleuItems = split.heldOut.slice(0, options.bleuItems ?? split.heldOut.length);
  const pairs = e2eExamples(split.heldOut, tokenizer, config.maxLength).examples;
  const nllPairs = pairs.slice(0, options.nllPairs ?? pairs.length);
  const trainPairs = e2eExamples(split.train, tokenizer, config.maxLength).examples;
  const seen = shuffled(trainPairs, seededRandom(config.seed + 1)).slice(0, options.seenPairs ?? 0);
  note(
    `held out: ${bleuItems.length} MRs for BLEU, ${nllPairs.length} pairs for NLL; ` +
      `${seen.length} training pairs scored as "seen"`,
  );
  const qOpts = { ...options, seenExamples: seen.length ? seen : undefined };
  const base = loadTrainingCheckpoint(config.model).params;
  note("before fine-tuning:");
  const before = await policyQuality(base, tokenizer, bleuItems, nllPairs, policies, qOpts);
  const result = await train(config, options.hooks);
  const trainMs = result.state.history.reduce((a, h) => a + h.ms, 0);
  note("after fine-tuning:");
  const after = await policyQuality(
    result.params,
    tokenizer,
    bleuItems,
    nllPairs,
    policies,
    qOpts,
  );
  return {
    config,
    policies: [...policies],
    bleuItems: bleuItems.length,
    nllPairs: nllPairs.length,
    seenPairs: seen.length,
    before,
    after,
    tokensPerSecond: result.tokensPerSecond,
    targetsPerSecond: result.targetsPerSecond,
    trainSeconds: trainMs / 1000,
  };
}

/**
 * The report as a Markdown table (before/after per policy).
 *
 * @example
 * ```ts
 * declare const report: ExperimentReport; // from finetuneExperiment
 * console.log(reportMarkdown(report));
 * ```
 */
export function reportMarkdown(r: ExperimentReport): string {
  const lines = [
    `Fine-tuning ${r.config.model} for ${r.config.policy}: ${r.config.steps} steps x ` +
    `${
      r.config.batchSize * r.config.gradAccum
    } examples, lr ${r.config.lr}, ${r.config.backend}; ` +
    `${r.tokensPerSecond.toFixed(1)} tokens/s (${
      r.targetsPerSecond.toFixed(1)
    } target tokens/s), ` +
    `${r.trainSeconds.toFixed(0)} s of training.`,
    `Held out: ${r.bleuItems} MRs (BLEU, greedy, max 64 new tokens), ${r.nllPairs} pairs ` +
    `(NLL held out); ${r.seenPairs} pairs of the fine-tuning split (NLL seen).`,
    "",
    "| policy | layer speedup | NLL held out | NLL seen | BLEU | ROUGE-L |",
    "| --- | --- | --- | --- | --- | --- |",
  ];
  const ba = (b: number | undefined, a: number | undefined, digits: number) =>
    b === undefined || a === undefined ? "-" : `${b.toFixed(digits)} -> ${a.toFixed(digits)}`;
  r.before.forEach((b, i) => {
    const a = r.after[i];
    lines.push(
      `| ${b.policy} | ${ba(b.layerSpeedup, a.layerSpeedup, 2)} | ${ba(b.nll, a.nll, 4)} | ${
        ba(b.seenNll, a.seenNll, 4)
      } | ${ba(b.bleu, a.bleu, 2)} | ${ba(b.rougeL, a.rougeL, 4)} |`,
    );
  });
  return lines.join("\n");
}
