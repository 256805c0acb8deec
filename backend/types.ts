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

/** Active layer indices of each column, ascending; `sets[c]` is column `c`'s set. */
export type ColumnLayerSets = readonly (readonly number[])[];

/** How the next token is chosen. `temperature` 0 (the default) is greedy argmax. */
export interface SamplingOptions {
  /** 0 or absent: greedy. Otherwise logits are divided by it before softmax. */
  temperature?: number;
  /** Keep only the `topK` most likely tokens (0 or absent: all). */
  topK?: number;
  /** Keep the smallest set whose probability reaches `topP` (1 or absent: all). */
  topP?: number;
  /** Seed of the counter-based generator (see `backend/sampling.ts`); default 0. */
  seed?: number;
}

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
  /** Prefill plus token loop with a KV cache sized by the plan. */
  decode(request: DecodeRequest): Promise<DecodeOutput>;
  /** Uncached forward, every column's logits. */
  forward(request: ForwardRequest): Promise<ForwardOutput>;
  /** Frees device memory. */
  dispose(): void;
}
