/**
 * The contract every backend (CPU reference, WebGPU) implements. A backend owns a model's
 * weights on its device and runs two things: a cached decode (prefill + token loop) and an
 * uncached forward over whole sequences. Both take per-column active-layer sets, so any
 * plan of `schedule/` runs on any backend; a skipped layer is the identity.
 *
 * Columns: rows are left-padded to a common prompt length `P`; column `c` is shared by all
 * rows. Column `P - 1` produces the first generated token, column `P + j` consumes generated
 * token `j` and produces token `j + 1`.
 *
 * @module
 */
import type { OptConfig } from "../model/types.ts";
import type { SamplingOptions } from "../kernels/select/sampling.ts";
import type { KvDtype, KvDtypeOption } from "../kernels/attention/kv_dtype.ts";
export type { KvDtype, KvDtypeOption, SamplingOptions };

/** Active layer indices of each column, ascending; `sets[c]` is column `c`'s set. */
export type ColumnLayerSets = readonly (readonly number[])[];

/** One cached decode: prompts in, generated tokens out. */
export interface DecodeRequest {
  /** Token ids of each row's prompt, BOS included, not padded. */
  prompts: readonly (readonly number[])[];
  /** Tokens to generate per row at most. */
  maxNewTokens: number;
  /**
   * Active layers per column of the padded batch; needs at least
   * `P + maxNewTokens - 1` entries. Must satisfy the nesting invariant (the engine checks).
   */
  sets: ColumnLayerSets;
  /** A row stops after emitting this id; `undefined`: never stop early. */
  eosTokenId?: number;
  /** Id placed in padding columns (never attended to). */
  padTokenId: number;
  /** Greedy by default. */
  sampling?: SamplingOptions;
  /** Record the K largest logits of every step, highest first. */
  logitsTopK?: number;
  /** Record every step's full logits (tests; costly). */
  recordLogits?: boolean;
  /** Steps encoded between readbacks (WebGPU); default 16. */
  chunkSize?: number;
}

/** Timing of one decode. */
export interface DecodeTiming {
  /** Milliseconds spent on the prompt columns. */
  prefillMs: number;
  /** Milliseconds spent on generated columns. */
  decodeMs: number;
  /** Awaited device-to-host round trips (0 on the CPU). */
  readbacks: number;
}

/** The output of a cached decode. */
export interface DecodeOutput {
  /** Generated ids per row (EOS included when it was produced). */
  tokens: number[][];
  /** Why each row stopped. */
  finish: ("eos" | "length")[];
  /** `[row][step][k] = [id, logit]`, when `logitsTopK` was asked. */
  topk?: [number, number][][][];
  /** `[row][step]` full logits (`vocabSize`), when `recordLogits` was asked. */
  logits?: Float32Array[][];
  /** Common prompt length `P` after left padding. */
  promptLength: number;
  /** Generated columns actually run (stops early when every row finished). */
  steps: number;
  /** Where the time went. */
  timing: DecodeTiming;
}

/** An uncached forward over whole sequences (teacher forcing, recompute checks). */
export interface ForwardRequest {
  /** Token ids per row, not padded; rows are left-padded to the longest. */
  rows: readonly (readonly number[])[];
  /** Active layers of each column of the padded batch (at least `T` entries). */
  sets: ColumnLayerSets;
  /** Id placed in padding columns. */
  padTokenId: number;
  /**
   * Per-layer readout (logit lens), off when absent: see {@linkcode ReadoutRequest}. When
   * absent the forward does no extra work and allocates nothing for it.
   */
  readout?: ReadoutRequest;
}

/**
 * What the per-layer readout (logit lens) of {@linkcode ForwardRequest} returns. For the
 * output `h_l` of every decoder layer `l = 1 .. L` (index `l - 1` here) at every column:
 * `p_l = softmax(head(h_l))`, where `head` is the model's own head (final LayerNorm when the
 * model has one, `project_out` when it has one, then the LM head), so the last layer's
 * readout is the model's own next-token distribution.
 *
 * A layer skipped at a column (not in that column's active set) is the identity, so its
 * readout there equals the previous layer's (for layer 0, the readout of the embedding).
 */
export interface ReadoutRequest {
  /** How many most likely tokens to keep per layer and column (1 or more). */
  topK: number;
}

/**
 * The per-layer readout of a forward: flat arrays, row-major over
 * `[rows, length, layers(, topK)]`. Padding columns hold id -1, probability 0 and NaN
 * entropy; `nextProb` is the probability of the token in the next column of the row
 * (teacher forcing) and NaN at the last column. Read one entry with `readoutEntry`
 * (`backend/readout.ts`).
 */
export interface Readout {
  /** Rows of the batch. */
  rows: number;
  /** Padded length `T`. */
  length: number;
  /** Decoder layers `L` (readouts per column). */
  layers: number;
  /** Tokens kept per readout. */
  topK: number;
  /** Ids of the `topK` most likely tokens, most likely first (ties: lower id first). */
  topIds: Int32Array;
  /** Their probabilities. */
  topProbs: Float32Array;
  /** Entropy of the distribution, nats. */
  entropy: Float32Array;
  /** Probability of the next column's token; NaN at the last column and in padding. */
  nextProb: Float32Array;
}

/** Logits of every column: `logits[(row * T + c) * vocabSize + v]`; padding columns are 0. */
export interface ForwardOutput {
  /** Padded length. */
  length: number;
  /** `[rows, length, vocabSize]` row-major. */
  logits: Float32Array;
  /** The per-layer readout, when the request asked for it. */
  readout?: Readout;
}

/** A model loaded on a device. */
export interface Backend {
  /** `"cpu"` or `"webgpu"`. */
  readonly name: string;
  /** The model's configuration. */
  readonly config: OptConfig;
  /** Storage type of the KV cache (`"f32"` when absent). */
  readonly kvDtype?: KvDtype;
  /** Prefill plus token loop with a KV cache sized by the plan. */
  decode(request: DecodeRequest): Promise<DecodeOutput>;
  /** Uncached forward, every column's logits. */
  forward(request: ForwardRequest): Promise<ForwardOutput>;
  /** Opens a {@linkcode RowBatch}: sequences at their own positions (continuous batching). */
  openRows(options: RowBatchOptions): RowBatch;
  /** Frees device memory. */
  dispose(): void;
}

/**
 * Options of {@linkcode Backend.openRows}: how many sequences a {@linkcode RowBatch} holds at
 * once and how long any of them may grow.
 */
export interface RowBatchOptions {
  /** Slots (sequences held at once), 1 or more. */
  capacity: number;
  /**
   * Positions one slot may reach at most (prompt plus generated tokens); at most the model's
   * position table (`max_position_embeddings`). Sizes the per-slot page tables, not the KV
   * memory, which grows with what each slot's plan actually runs.
   */
  maxLength: number;
}

/**
 * Work for one slot in a {@linkcode RowBatch.run} call: `tokens` run at the slot's next
 * positions `length(slot) .. length(slot) + tokens.length - 1`, token `i` at the layers
 * `sets[i]`. A new sequence's prompt is one entry with the whole prompt (prefill); a decode
 * step is one token; a speculative verification is several.
 */
export interface RowWork {
  /** The slot, `0 .. capacity - 1`. */
  slot: number;
  /** Token ids to run, 1 or more. */
  tokens: readonly number[];
  /** Active layers of each token, ascending, non-empty: `sets[i]` is `tokens[i]`'s set. */
  sets: ColumnLayerSets;
  /**
   * Whose next-token choice to return: `"last"` (default) the last token's only, `"all"`
   * one per token (speculative verification).
   */
  want?: "last" | "all";
  /** How the next token is chosen; greedy by default. */
  sampling?: SamplingOptions;
  /**
   * The sampler's step of the first choice returned (the row's generated-token index; `want:
   * "all"` counts up from it). The draw depends on `(sampling.seed, step)` only, never on the
   * slot or the batch mates. Default 0.
   */
  step?: number;
  /** Also return the K largest logits of every choice, highest first. */
  logitsTopK?: number;
  /** Also return the full logits of every choice (tests; costly). */
  recordLogits?: boolean;
}

/** What {@linkcode RowBatch.run} returns for one {@linkcode RowWork}. */
export interface RowResult {
  /** The chosen next token after each wanted position (one for `want: "last"`). */
  tokens: number[];
  /** `[choice][k] = [id, logit]` when `logitsTopK` was asked. */
  topk?: [number, number][][];
  /** Full logits per choice when `recordLogits` was asked. */
  logits?: Float32Array[];
}

/** Counters of a {@linkcode RowBatch}, for the no-recompute tests and the server's metrics. */
export interface RowBatchStats {
  /** KV entries written (one per slot, layer and position run there). */
  kvWrites: number;
  /** Of those, writes to a (slot, layer, position) already written since the slot last started
   * or was truncated below it: always 0 (the engine never recomputes KV). */
  kvRewrites: number;
  /** KV bytes allocated now, and the most ever allocated. */
  kvBytes: number;
  /** The most KV bytes ever allocated at once. */
  peakKvBytes: number;
  /** Layer evaluations of tokens (one per token and active layer). */
  layerSteps: number;
}

/**
 * Sequences at their own positions (continuous batching, speculative verification): a
 * backend's per-slot state. Each {@linkcode RowBatch.run} call runs some tokens of some slots,
 * each token at its slot's next position with its own active-layer set, as one batched product
 * per layer over every token that runs that layer (a skipped layer is the identity on that
 * token's hidden state). Positions are the slot's own (`0 ..`, OPT table row `p + 2`; no
 * padding). Attention at layer `l` reads the slot's own KV of layer `l`.
 *
 * The nesting invariant, per slot: the backend keeps, per slot and layer, how many leading
 * positions have KV. Running layer `l` at position `p` needs every position before `p` to have
 * run `l`; a call that breaks this is refused before any work with a `RangeError` naming the
 * slot, the position and the layer. So KV is never recomputed: a position's KV at a layer is
 * written once, unless {@linkcode RowBatch.truncate} dropped it.
 */
export interface RowBatch {
  /** Slots held at once. */
  readonly capacity: number;
  /** Runs the entries (distinct slots) as one batched forward; one result per entry, in order. */
  run(entries: readonly RowWork[]): Promise<RowResult[]>;
  /** Tokens run so far in `slot` (its next position). */
  length(slot: number): number;
  /**
   * Keeps the first `length` positions of `slot` and drops its KV beyond them at every layer;
   * the next token runs at position `length` (speculative decoding's rollback).
   */
  truncate(slot: number, length: number): void;
  /** Frees `slot` and its KV; its next `run` starts a new sequence at position 0. */
  release(slot: number): void;
  /** Counters since the batch was opened. */
  stats(): RowBatchStats;
  /** Frees the device memory; the batch cannot be used afterwards. */
  dispose(): void;
}
