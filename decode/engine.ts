/**
 * The SkipDecode engine: column-wise batches, one plan per batch, any backend.
 *
 * Prompts are split into batches of `batchSize`; each batch is left-padded to its longest
 * prompt `P`, so every row's first generated token sits in column `P - 1` and all rows
 * share one layer budget per column (docs/DESIGN.md §1-3). The plan of the policy for that batch is
 * validated (nesting invariant) and run by the backend with a KV cache sized per layer.
 *
 * @module
 */
import { checkGenerateArguments } from "./options.ts";
import type { DecodeOutput, SamplingOptions } from "../backend/types.ts";
import { checkTokenIds } from "../backend/batch.ts";
import { kvElementBytes } from "../kernels/attention/kv_dtype.ts";
import {
  dimsFromConfig,
  kvBytes as planKvBytes,
  parsePolicy,
  type Plan,
  plan as makePlan,
  type Policy,
  type PromptMode,
  withPromptMode,
} from "../schedule/mod.ts";
import type { Model } from "./model.ts";
import {
  checkDraftLength,
  chooseDraftLength,
  speculativeGenerate,
  type SpeculativeStats,
  type SpeculativeSummary,
} from "./speculative.ts";

/** Options of {@linkcode generate}. */
export interface GenerateOptions {
  /** A policy or its command-line form; default `"full"`. */
  policy?: Policy | string;
  /** Overrides the policy's prompt mode. */
  promptMode?: PromptMode;
  /** Tokens to generate per prompt at most (default 32). */
  maxNewTokens?: number;
  /** Rows per batch (default 8). */
  batchSize?: number;
  /** Greedy by default. */
  sampling?: SamplingOptions;
  /** Record the K largest logits of every step. */
  logitsTopK?: number;
  /** Record full logits of every step (tests). */
  recordLogits?: boolean;
  /** Steps per readback on WebGPU (default 16). */
  chunkSize?: number;
  /** Stop a row at EOS (default true). */
  stopAtEos?: boolean;
  /** Called after each batch with prompts done and total. */
  onProgress?: (done: number, total: number) => void;
  /**
   * Self-speculative decoding (`decode/speculative.ts`): the policy drafts up to this many
   * tokens per round and the full model verifies them, so greedy outputs equal `full`'s.
   * Greedy only. Absent: plain decoding under the policy. `"auto"`: K from 1 to 8 picked by
   * {@linkcode chooseDraftLength} (a short probe measures the draft's acceptance and K
   * minimises the predicted layer passes per token); the pick is in `speculative.auto`.
   */
  speculative?: number | "auto";
  /** Receives one-line notes (e.g. a `full` draft policy, which cannot gain). */
  onNote?: (note: string) => void;
}

/** One prompt's generation. */
export interface GenerationResult {
  /** The prompt text (`null` when ids were given). */
  prompt: string | null;
  /** Prompt ids, BOS included. */
  promptIds: number[];
  /** Generated ids only (EOS included when produced). */
  ids: number[];
  /** Decoded generated text (special tokens skipped). */
  text: string;
  /** Why it stopped. */
  finish: "eos" | "length";
  /** `layers[i]`: layers run on the column that produced generated token `i`. */
  layers: number[];
  /** `flops[i]`: FLOPs spent on that column for this row (docs/DESIGN.md §5). */
  flops: number[];
  /** `[step][k] = [id, logit]` when `logitsTopK` was asked. */
  topk?: [number, number][][];
  /** Full logits per step when `recordLogits` was asked. */
  logits?: Float32Array[];
  /** Per-row drafting figures, with `speculative`. */
  speculative?: SpeculativeStats;
}

/** What {@linkcode generate} returns. */
export interface GenerateOutput {
  /** One result per prompt, in input order. */
  results: GenerationResult[];
  /** The policy's command-line form. */
  policy: string;
  /** Backend name. */
  backend: string;
  /** `Σ L / Σ layers` over every generated token (the paper's headline figure). */
  layerSpeedup: number;
  /** Full-model FLOPs over the plan's FLOPs on the same generated tokens. */
  flopSpeedup: number;
  /** Peak KV-cache bytes of one batch under its plan (f32). */
  kvBytes: number;
  /** The same with every layer cached on every column. */
  kvBytesFull: number;
  /** The plan of each batch (the draft's plans, with `speculative`). */
  plans: Plan[];
  /** Totals over all rows, with `speculative` (layer speedup then counts layer passes). */
  speculative?: SpeculativeSummary;
  /** Where the time went. */
  timing: {
    /** Prefill milliseconds, all batches. */
    prefillMs: number;
    /** Decode milliseconds, all batches. */
    decodeMs: number;
    /** Wall milliseconds of the whole call. */
    totalMs: number;
    /** Awaited device readbacks. */
    readbacks: number;
    /** Tokens generated. */
    generatedTokens: number;
    /** `generatedTokens / (decode + prefill seconds)`. */
    tokensPerSecond: number;
  };
}

/**
 * Resolves a policy argument (a policy or its command-line form) and applies a prompt-mode
 * override (`withPromptMode` of `schedule/`).
 *
 * @example
 * ```ts
 * import { resolvePolicy } from "./engine.ts";
 * console.log(resolvePolicy("linear:max=12,min=4,warmup=1", "decay").promptMode); // "decay"
 * ```
 */
export function resolvePolicy(policy: Policy | string = "full", promptMode?: PromptMode): Policy {
  return withPromptMode(typeof policy === "string" ? parsePolicy(policy) : policy, promptMode);
}

/**
 * Generates continuations of prompts (text, or token ids with BOS) under an exit policy.
 *
 * @example
 * ```ts
 * import { loadModel } from "./model.ts";
 * const model = await loadModel("bundled/models/tiny-opt-e2e", { backend: "cpu" });
 * const out = await generate(model, ["name[Alimentum], area[city centre]\n"], {
 *   policy: "linear:max=12,min=4,warmup=1,horizon=32", maxNewTokens: 32,
 * });
 * console.log(out.results[0].text, out.layerSpeedup);
 * ```
 */
export async function generate(
  model: Pick<Model, "backend" | "tokenizer" | "config">,
  prompts: readonly (string | readonly number[])[],
  options: GenerateOptions = {},
): Promise<GenerateOutput> {
  const start = performance.now();
  const { backend, tokenizer, config } = model;
  checkGenerateArguments({ prompts, ...options }, config.vocabSize); // decode/options.ts
  const policy = resolvePolicy(options.policy, options.promptMode);
  const N = options.maxNewTokens ?? 32;
  const batchSize = options.batchSize ?? 8;
  if (!Number.isInteger(N) || N < 1) {
    throw new RangeError(`maxNewTokens must be an integer >= 1, got ${N}`);
  }
  if (!Number.isInteger(batchSize) || batchSize < 1) {
    throw new RangeError(`batchSize must be an integer >= 1, got ${batchSize}`);
  }
  const encoded = prompts.map((p) => typeof p === "string" ? tokenizer.encode(p) : [...p]);
  encoded.forEach((ids, i) => {
    if (ids.length === 0) throw new RangeError(`prompt ${i} is empty: it needs at least BOS`);
    if (ids.length + N - 1 > config.maxPositionEmbeddings) {
      throw new RangeError(
        `prompt ${i} has ${ids.length} tokens; with maxNewTokens ${N} it needs ${
          ids.length + N - 1
        } ` +
          `positions but the model's position table has ${config.maxPositionEmbeddings} ` +
          `(max_position_embeddings): shorten the prompt or maxNewTokens`,
      );
    }
  });
  checkTokenIds(encoded, config.vocabSize, "prompt"); // before any batch runs
  if (options.speculative !== undefined) {
    if (options.speculative !== "auto") {
      if (typeof options.speculative !== "number") {
        throw new RangeError(
          `speculative must be an integer K from 1 or "auto", got ${
            JSON.stringify(options.speculative)
          }`,
        );
      }
      checkDraftLength(options.speculative, config.maxPositionEmbeddings);
    }
    if ((options.sampling?.temperature ?? 0) > 0) {
      throw new RangeError(
        "speculative decoding is greedy only: sampling.temperature must be 0 with speculative",
      );
    }
    if (policy.toJSON().kind === "full") {
      options.onNote?.(
        "the draft policy is full: every draft runs all layers, so speculation cannot gain",
      );
    }
    if (options.speculative === "auto") {
      const auto = await chooseDraftLength(model.backend, encoded, {
        draft: policy,
        maxNewTokens: N,
        probePrompts: Math.min(batchSize, 4),
      });
      options.onNote?.(
        `speculative auto: K=${auto.k} (probe of ${
          Math.min(batchSize, 4, encoded.length)
        } prompts at K=8: prefix acceptance ${
          auto.prefixAcceptance.map((a) => a.toFixed(2)).join(",")
        }, draft ${auto.draftLayers.toFixed(1)} layers, predicted ${
          auto.passesPerToken[auto.k - 1].toFixed(2)
        } layer passes per token, ${auto.probeMs.toFixed(0)} ms)`,
      );
      const opts = { ...options, speculative: auto.k };
      const out = await speculativeGenerate(
        model,
        prompts,
        encoded,
        policy,
        N,
        batchSize,
        opts,
        start,
      );
      out.speculative!.auto = auto;
      return out;
    }
    return speculativeGenerate(model, prompts, encoded, policy, N, batchSize, options, start);
  }
  const results: GenerationResult[] = [];
  const plans: Plan[] = [];
  let prefillMs = 0, decodeMs = 0, readbacks = 0;
  let kvBytes = 0, kvBytesFull = 0;
  for (let b0 = 0; b0 < encoded.length; b0 += batchSize) {
    const rows = encoded.slice(b0, b0 + batchSize);
    const P = Math.max(...rows.map((r) => r.length));
    const p = makePlan(policy, { ...dimsFromConfig(config), promptLength: P, maxNewTokens: N });
    plans.push(p);
    const kv = planKvBytes(p, {
      batch: rows.length,
      bytesPerElement: kvElementBytes(backend.kvDtype ?? "f32"),
    });
    kvBytes = Math.max(kvBytes, kv.bytes);
    kvBytesFull = Math.max(kvBytesFull, kv.fullBytes);
    const out: DecodeOutput = await backend.decode({
      prompts: rows,
      maxNewTokens: N,
      sets: p.sets,
      eosTokenId: options.stopAtEos === false ? undefined : config.eosTokenId,
      padTokenId: config.padTokenId,
      sampling: options.sampling,
      logitsTopK: options.logitsTopK,
      recordLogits: options.recordLogits,
      chunkSize: options.chunkSize,
    });
    prefillMs += out.timing.prefillMs;
    decodeMs += out.timing.decodeMs;
    readbacks += out.timing.readbacks;
    rows.forEach((ids, r) => {
      const gen = out.tokens[r];
      const prompt = prompts[b0 + r];
      results.push({
        prompt: typeof prompt === "string" ? prompt : null,
        promptIds: ids,
        ids: gen,
        text: tokenizer.decode(gen),
        finish: out.finish[r],
        layers: p.generatedLayers.slice(0, gen.length),
        flops: p.accounting!.columnFlops.slice(P - 1, P - 1 + gen.length),
        ...(out.topk ? { topk: out.topk[r] } : {}),
        ...(out.logits ? { logits: out.logits[r] } : {}),
      });
    });
    options.onProgress?.(Math.min(b0 + batchSize, encoded.length), encoded.length);
  }
  const L = config.numHiddenLayers;
  let layersRun = 0, tokens = 0, flops = 0, fullFlops = 0;
  results.forEach((r, i) => {
    const p = plans[Math.floor(i / batchSize)];
    const acc = p.accounting!;
    tokens += r.ids.length;
    layersRun += r.layers.reduce((a, b) => a + b, 0);
    flops += r.flops.reduce((a, b) => a + b, 0);
    fullFlops += acc.fullColumnFlops.slice(p.promptLength - 1, p.promptLength - 1 + r.ids.length)
      .reduce((a, b) => a + b, 0);
  });
  return {
    results,
    policy: String(policy),
    backend: backend.name,
    layerSpeedup: layersRun ? (tokens * L) / layersRun : 1,
    flopSpeedup: flops ? fullFlops / flops : 1,
    kvBytes,
    kvBytesFull,
    plans,
    timing: {
      prefillMs,
      decodeMs,
      totalMs: performance.now() - start,
      readbacks,
      generatedTokens: tokens,
      tokensPerSecond: tokens / Math.max((prefillMs + decodeMs) / 1000, 1e-9),
    },
  };
}
