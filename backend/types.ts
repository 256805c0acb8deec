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
}

/** Logits of every column: `logits[(row * T + c) * vocabSize + v]`; padding columns are 0. */
export interface ForwardOutput {
  /** Padded length. */
  length: number;
  /** `[rows, length, vocabSize]` row-major. */
  logits: Float32Array;
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
