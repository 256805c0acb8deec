/**
 * Lossless SkipDecode: self-speculative decoding where the skip plan drafts and the full model
 * verifies (docs/DESIGN.md §3b). Built on the `RowBatch` contract (rows at their own
 * positions), so it runs on any backend that implements `openRows`.
 *
 * One round for every live row of the batch:
 *
 * 1. **Draft** up to `k` tokens, one `run` call per draft step over all drafting rows: the
 *    row's last token at its next position `p`, with the draft policy's set `S(p)` (its plan for
 *    the row's prompt length and token limit, indexed by the row's own position). A draft step
 *    reads the KV of earlier positions at its active layers, which verification filled at full
 *    depth, so nesting holds (`S(p) ⊆` all layers).
 * 2. **Roll back** the drafted positions (`truncate`): their KV was computed with skipped layers.
 * 3. **Verify** in one `run` call for the whole batch (new rows' prompt prefills ride in the same
 *    call): the last token and the `k` drafts at all layers with `want: "all"`, which writes their
 *    full-depth KV and returns the full model's greedy token after each of them.
 * 4. **Accept** the longest prefix of drafts equal to the full model's tokens, append the full
 *    model's token at the first mismatch (or after the last draft), and truncate the rejected
 *    positions. Rows accept different counts and sit at different positions afterwards.
 *
 * Every emitted token is the full model's greedy token with the full model's logits, so the
 * output equals a `full` decode token for token; the KV cache after verification equals a
 * full-depth decode's; no kept position is ever verified twice (a verification starts at the
 * row's first position without full-depth KV). Finished rows free their slot and the next
 * prompt is admitted (continuous batching).
 *
 * @example
 * ```ts
 * import { loadModel } from "./model.ts";
 * import { speculativeDecode } from "./speculative.ts";
 * import { parsePolicy } from "../schedule/mod.ts";
 * const model = await loadModel("bundled/models/tiny-opt-e2e", { backend: "cpu" });
 * const out = await speculativeDecode(model.backend, [model.tokenizer.encode("name[Alimentum]\n")], {
 *   draft: parsePolicy("linear:max=12,min=4,warmup=1"), k: 4, maxNewTokens: 16,
 * });
 * console.log(out.rows[0].tokens, out.rows[0].stats.acceptanceRate);
 * ```
 *
 * @module
 */
import type { Backend, RowWork } from "../backend/types.ts";
import { topK as topKEntries } from "../backend/cpu/ops.ts";
import { columnFlops, dimsFromConfig, type Plan, plan, type Policy } from "../schedule/mod.ts";
import type { GenerateOptions, GenerateOutput, GenerationResult } from "./engine.ts";
import type { Model } from "./model.ts";

/** Options of {@linkcode speculativeDecode}. */
export interface SpeculativeOptions {
  /** The draft policy (any: SkipDecode budgets, early exit, custom). */
  draft: Policy;
  /** Draft length `K`: tokens drafted per round at most (an integer from 1). */
  k: number;
  /** Tokens to generate per prompt at most. */
  maxNewTokens: number;
  /** Rows decoded at once (slots of the `RowBatch`); default 8. */
  batchSize?: number;
  /** A row stops after emitting this id; `undefined`: never stops early. */
  eosTokenId?: number;
  /** Record the full model's logits of every emitted token (tests; costly). */
  recordLogits?: boolean;
  /** Record the K largest logits of every emitted token. */
  logitsTopK?: number;
}

/** Per-row statistics of speculative decoding. */
export interface SpeculativeStats {
  /** Tokens drafted. */
  drafted: number;
  /** Drafted tokens accepted (equal to the full model's). */
  accepted: number;
  /** `accepted / drafted` (NaN when nothing was drafted). */
  acceptanceRate: number;
  /** Verification passes (rounds), the prefill excluded. */
  verifications: number;
  /** Mean accepted drafts per verification that checked at least one draft. */
  meanAcceptedLength: number;
  /** `draftedAt[i]`: rounds that drafted an `i + 1`-th token. */
  draftedAt: number[];
  /** `acceptedAt[i]`: rounds whose `i + 1`-th draft was accepted. */
  acceptedAt: number[];
  /**
   * Per generated token `t` (index into `tokens`): 1 when it was drafted and accepted, 0 when a
   * draft for it was rejected (the full model's token replaced it), -1 when it was not drafted
   * (the prefill's token, or the token after a round's last draft).
   */
  draftOutcome: number[];
  /**
   * Layer passes: each draft step counts its active layers, each verification pass (over
   * `k + 1` positions) and the prefill count `L` once (a pass reads each layer's weights once).
   */
  layerPasses: number;
  /** `layerPasses / tokens` (`L` for a plain full-depth decode). */
  layerPassesPerToken: number;
  /** FLOPs of every position's layer evaluations and head (drafts, verifier, rejected ones). */
  flops: number;
  /** FLOPs of a plain full-depth decode of the same tokens. */
  fullFlops: number;
  /** `flops / fullFlops`: at least 1, speculation never lowers it. */
  flopRatio: number;
}

/** One row's output. */
export interface SpeculativeRow {
  /** Generated ids (EOS included when produced). */
  tokens: number[];
  /** Why it stopped. */
  finish: "eos" | "length";
  /** The statistics of this row. */
  stats: SpeculativeStats;
  /** The full model's logits of every emitted token, when asked. */
  logits?: Float32Array[];
  /** `[token][k] = [id, logit]` when `logitsTopK` was asked. */
  topk?: [number, number][][];
}

/** What {@linkcode speculativeDecode} returns. */
export interface SpeculativeOutput {
  /** One per prompt, in input order. */
  rows: SpeculativeRow[];
  /** Wall milliseconds of the whole decode. */
  wallMs: number;
  /** `run` calls made (draft steps and verifications). */
  calls: number;
  /** The most KV bytes the `RowBatch` held at once. */
  peakKvBytes: number;
}

/**
 * Checks a draft length `K` against the model's position table: an integer from 1 to
 * `maxPositionEmbeddings - 1` (a verification runs `K + 1` positions).
 *
 * @example
 * ```ts
 * import { checkDraftLength } from "./speculative.ts";
 * checkDraftLength(4, 2048); // ok
 * ```
 */
export function checkDraftLength(k: number, maxPositions: number): void {
  if (!Number.isInteger(k) || k < 1 || k > maxPositions - 1) {
    throw new RangeError(
      `speculative draft length K must be an integer from 1 to ${maxPositions - 1} ` +
        `(a verification runs K + 1 positions of the ${maxPositions}-row position table), ` +
        `got ${k}`,
    );
  }
}

/** A live row of the decode. */
interface Live {
  index: number; // prompt index
  P: number;
  sets: number[][]; // the draft plan's sets, one per column of the row
  gen: number[];
  out: SpeculativeRow;
  drafts: number[];
  kRound: number;
  p0: number; // position of the row's last token (not yet run)
}

/**
 * Greedy self-speculative decoding of `prompts` (token ids, BOS first): see the module
 * documentation. Throws a `RangeError` for a bad `k` (see {@linkcode checkDraftLength}),
 * `maxNewTokens` or `batchSize`, and for prompts that do not fit the position table.
 *
 * @example
 * ```ts
 * import { createCpuBackend } from "../backend/cpu/backend.ts";
 * import { loadWeights } from "../model/mod.ts";
 * import { parsePolicy } from "../schedule/mod.ts";
 * import { speculativeDecode } from "./speculative.ts";
 * const cpu = createCpuBackend(await loadWeights("bundled/models/tiny-opt-e2e"));
 * const out = await speculativeDecode(cpu, [[2, 100, 101]], {
 *   draft: parsePolicy("earlyexit:constant:n=6"), k: 3, maxNewTokens: 8,
 * });
 * console.log(out.rows[0].stats.meanAcceptedLength);
 * ```
 */
export async function speculativeDecode(
  backend: Backend,
  prompts: readonly (readonly number[])[],
  options: SpeculativeOptions,
): Promise<SpeculativeOutput> {
  const t0 = performance.now();
  const cfg = backend.config;
  const L = cfg.numHiddenLayers;
  const all = Array.from({ length: L }, (_, l) => l);
  const { k: K, maxNewTokens: N } = options;
  checkDraftLength(K, cfg.maxPositionEmbeddings);
  if (!Number.isInteger(N) || N < 1) {
    throw new RangeError(`maxNewTokens must be an integer >= 1, got ${N}`);
  }
  const batchSize = options.batchSize ?? 8;
  if (!Number.isInteger(batchSize) || batchSize < 1) {
    throw new RangeError(`batchSize must be an integer >= 1, got ${batchSize}`);
  }
  if (prompts.length === 0) return { rows: [], wallMs: 0, calls: 0, peakKvBytes: 0 };
  prompts.forEach((p, i) => {
    if (p.length === 0) throw new RangeError(`prompt ${i} is empty: it needs at least BOS`);
    if (p.length + N - 1 > cfg.maxPositionEmbeddings) {
      throw new RangeError(
        `prompt ${i} has ${p.length} tokens; with maxNewTokens ${N} it needs ` +
          `${p.length + N - 1} positions but the position table has ${cfg.maxPositionEmbeddings}`,
      );
    }
  });
  const dims = { ...dimsFromConfig(cfg) };
  const flopsAt = (layers: number, p: number) => columnFlops(dims, layers, p);
  const maxLength = Math.max(...prompts.map((p) => p.length)) + N - 1;
  const rows = backend.openRows({ capacity: Math.min(batchSize, prompts.length), maxLength });
  const outputs: SpeculativeRow[] = new Array(prompts.length);
  const live = new Map<number, Live>(); // slot -> row
  let next = 0, calls = 0, peakKvBytes = 0;
  const want = { recordLogits: !!options.recordLogits || !!options.logitsTopK };

  /** Appends the full model's token (and its logits) to a row; true when the row is done. */
  const emit = (row: Live, id: number, logits?: Float32Array): boolean => {
    row.gen.push(id);
    row.out.tokens.push(id);
    if (options.recordLogits) row.out.logits!.push(logits!);
    if (options.logitsTopK) row.out.topk!.push(topKEntries(logits!, options.logitsTopK));
    if (options.eosTokenId !== undefined && id === options.eosTokenId) {
      row.out.finish = "eos";
      return true;
    }
    return row.gen.length >= N;
  };
  const finish = (slot: number, row: Live) => {
    const s = row.out.stats;
    s.draftOutcome.length = row.gen.length; // a row stopped at EOS inside a round
    s.acceptanceRate = s.drafted ? s.accepted / s.drafted : NaN;
    const checked = s.draftedAt[0] ?? 0;
    s.meanAcceptedLength = checked ? s.accepted / checked : NaN;
    s.layerPassesPerToken = s.layerPasses / row.gen.length;
    for (let c = row.P - 1; c < row.P - 1 + row.gen.length; c++) s.fullFlops += flopsAt(L, c);
    s.flopRatio = s.flops / s.fullFlops;
    outputs[row.index] = row.out;
    rows.release(slot);
    live.delete(slot);
  };

  try {
    while (next < prompts.length || live.size > 0) {
      const verify: RowWork[] = [];
      const admitted: Live[] = [];
      // Admit prompts into free slots: their prefill (all layers) rides in the verify call.
      for (let slot = 0; slot < rows.capacity && next < prompts.length; slot++) {
        if (live.has(slot)) continue;
        const prompt = prompts[next];
        const P = prompt.length;
        const row: Live = {
          index: next++,
          P,
          sets: plan(options.draft, { layers: L, promptLength: P, maxNewTokens: N }).sets,
          gen: [],
          out: {
            tokens: [],
            finish: "length",
            stats: {
              drafted: 0,
              accepted: 0,
              acceptanceRate: NaN,
              verifications: 0,
              meanAcceptedLength: NaN,
              draftedAt: [],
              acceptedAt: [],
              draftOutcome: [],
              layerPasses: L,
              layerPassesPerToken: NaN,
              flops: flopsAt(L, P - 1),
              fullFlops: 0,
              flopRatio: NaN,
            },
            ...(options.recordLogits ? { logits: [] } : {}),
            ...(options.logitsTopK ? { topk: [] } : {}),
          },
          drafts: [],
          kRound: 0,
          p0: P,
        };
        live.set(slot, row);
        admitted.push(row);
        verify.push({
          slot,
          tokens: [...prompt],
          sets: Array.from({ length: P }, () => all),
          ...want,
        });
      }
      // Draft: rows that already hold a token draft up to K (never past their token limit).
      const drafting = [...live.entries()].filter(([, r]) => r.gen.length > 0);
      for (const [, r] of drafting) {
        r.drafts = [];
        r.kRound = Math.min(K, N - r.gen.length - 1);
        r.p0 = r.P + r.gen.length - 1;
      }
      for (let s = 0; s < K; s++) {
        const step = drafting.filter(([, r]) => r.kRound > s);
        if (step.length === 0) break;
        const results = await rows.run(step.map(([slot, r]) => ({
          slot,
          tokens: [s === 0 ? r.gen[r.gen.length - 1] : r.drafts[s - 1]],
          sets: [r.sets[r.p0 + s]],
        })));
        calls++;
        step.forEach(([, r], i) => {
          r.drafts.push(results[i].tokens[0]);
          const layers = r.sets[r.p0 + s].length;
          r.out.stats.layerPasses += layers;
          r.out.stats.flops += flopsAt(layers, r.p0 + s);
        });
      }
      // Roll back the drafts' KV, then verify every drafting row at full depth in one call.
      for (const [slot, r] of drafting) {
        if (r.kRound > 0) rows.truncate(slot, r.p0);
        verify.push({
          slot,
          tokens: [r.gen[r.gen.length - 1], ...r.drafts],
          sets: Array.from({ length: r.drafts.length + 1 }, () => all),
          want: "all",
          ...want,
        });
      }
      const results = await rows.run(verify);
      calls++;
      verify.forEach((w, i) => {
        const row = live.get(w.slot)!;
        const res = results[i];
        if (admitted.includes(row)) {
          row.out.stats.draftOutcome.push(-1); // the prefill's token: never drafted
          if (emit(row, res.tokens[0], res.logits?.[0])) finish(w.slot, row);
          return;
        }
        const s = row.out.stats;
        const k = row.drafts.length;
        s.verifications++;
        s.layerPasses += L;
        for (let j = 0; j <= k; j++) s.flops += flopsAt(L, row.p0 + j);
        let m = 0; // accepted drafts: drafts[j] == the full model's token after position p0 + j
        while (m < k && row.drafts[m] === res.tokens[m]) m++;
        s.drafted += k;
        s.accepted += m;
        for (let j = 0; j < k; j++) {
          s.draftedAt[j] = (s.draftedAt[j] ?? 0) + 1;
          s.acceptedAt[j] = (s.acceptedAt[j] ?? 0) + (j < m ? 1 : 0);
        }
        // The round's tokens: drafts 0..m-1 accepted, then the full model's (draft m rejected
        // when m < k, nothing drafted for it when m == k).
        for (let j = 0; j <= m; j++) s.draftOutcome.push(j < m ? 1 : m < k ? 0 : -1);
        // Positions p0 .. p0 + m hold correct inputs at full depth; drop the rejected rest.
        rows.truncate(w.slot, row.p0 + m + 1);
        for (let j = 0; j <= m; j++) {
          if (emit(row, res.tokens[j], res.logits?.[j])) return finish(w.slot, row);
        }
      });
    }
    peakKvBytes = rows.stats().peakKvBytes;
  } finally {
    rows.dispose();
  }
  return { rows: outputs, wallMs: performance.now() - t0, calls, peakKvBytes };
}

/** Totals of a speculative `generate` over all rows. */
export interface SpeculativeSummary {
  /** The draft length `K`. */
  k: number;
  /** Tokens drafted. */
  drafted: number;
  /** Drafts accepted. */
  accepted: number;
  /** `accepted / drafted`. */
  acceptanceRate: number;
  /** Mean accepted drafts per verification that checked at least one. */
  meanAcceptedLength: number;
  /** Layer passes per generated token (`L` for a plain full decode). */
  layerPassesPerToken: number;
  /** FLOPs over a plain full decode's (at least 1). */
  flopRatio: number;
  /** Wall milliseconds of the decode. */
  wallMs: number;
}

/**
 * `generate` with `speculative: K` (called by `generate`, which has checked the options and
 * the prompts): the policy drafts, the full model verifies. Each result's `layers` and `flops`
 * are the full model's (every emitted token is the full model's), `speculative` holds the
 * row's drafting figures; the output's `layerSpeedup` is `L` over layer passes per token and
 * its `flopSpeedup` is `1 / flopRatio` (at most 1: speculation saves weight reads, not FLOPs).
 *
 * @example
 * ```ts
 * import { generate, loadModel } from "./mod.ts";
 * const model = await loadModel("bundled/models/tiny-opt-e2e", { backend: "cpu" });
 * const out = await generate(model, ["name[Alimentum]\n"], {
 *   policy: "linear:max=12,min=4,warmup=1", speculative: 4, maxNewTokens: 16,
 * });
 * console.log(out.speculative?.acceptanceRate, out.results[0].speculative?.accepted);
 * ```
 */
export async function speculativeGenerate(
  model: Pick<Model, "backend" | "tokenizer" | "config">,
  prompts: readonly (string | readonly number[])[],
  encoded: number[][],
  policy: Policy,
  N: number,
  batchSize: number,
  options: GenerateOptions,
  start: number,
): Promise<GenerateOutput> {
  const { backend, tokenizer, config } = model;
  const L = config.numHiddenLayers;
  const k = options.speculative!;
  const out = await speculativeDecode(backend, encoded, {
    draft: policy,
    k,
    maxNewTokens: N,
    batchSize,
    eosTokenId: options.stopAtEos === false ? undefined : config.eosTokenId,
    recordLogits: options.recordLogits,
    logitsTopK: options.logitsTopK,
  });
  const dims = dimsFromConfig(config);
  const plans: Plan[] = [];
  const results: GenerationResult[] = out.rows.map((r, i) => {
    const P = encoded[i].length;
    const p = plan(policy, { ...dims, promptLength: P, maxNewTokens: N });
    plans.push(p);
    const prompt = prompts[i];
    return {
      prompt: typeof prompt === "string" ? prompt : null,
      promptIds: encoded[i],
      ids: r.tokens,
      text: tokenizer.decode(r.tokens),
      finish: r.finish,
      layers: r.tokens.map(() => L),
      flops: r.tokens.map((_, j) => p.accounting!.fullColumnFlops[P - 1 + j]),
      ...(r.topk ? { topk: r.topk } : {}),
      ...(r.logits ? { logits: r.logits } : {}),
      speculative: r.stats,
    };
  });
  options.onProgress?.(encoded.length, encoded.length);
  const sum = (f: (s: SpeculativeStats) => number) => out.rows.reduce((a, r) => a + f(r.stats), 0);
  const tokens = out.rows.reduce((a, r) => a + r.tokens.length, 0);
  const drafted = sum((s) => s.drafted), accepted = sum((s) => s.accepted);
  const checked = sum((s) => s.draftedAt[0] ?? 0);
  const passes = sum((s) => s.layerPasses);
  const flops = sum((s) => s.flops), fullFlops = sum((s) => s.fullFlops);
  const maxLength = Math.max(...encoded.map((e) => e.length)) + N - 1;
  const slots = Math.min(batchSize, encoded.length);
  return {
    results,
    policy: String(policy),
    backend: backend.name,
    layerSpeedup: (tokens * L) / passes,
    flopSpeedup: fullFlops / flops,
    kvBytes: out.peakKvBytes,
    kvBytesFull: L * maxLength * 2 * config.hiddenSize * 4 * slots,
    plans,
    speculative: {
      k,
      drafted,
      accepted,
      acceptanceRate: drafted ? accepted / drafted : NaN,
      meanAcceptedLength: checked ? accepted / checked : NaN,
      layerPassesPerToken: passes / tokens,
      flopRatio: flops / fullFlops,
      wallMs: out.wallMs,
    },
    timing: {
      prefillMs: 0,
      decodeMs: out.wallMs,
      totalMs: performance.now() - start,
      readbacks: 0,
      generatedTokens: tokens,
      tokensPerSecond: tokens / Math.max(out.wallMs / 1000, 1e-9),
    },
  };
}
