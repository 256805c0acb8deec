/**
 * The types every layer of the toolkit shares: an OPT configuration, a stored tensor, and
 * the named weights of one OPT model. Data flows checkpoint -> {@linkcode OptWeights} ->
 * backend; nothing downstream reads files.
 *
 * @module
 */
import type { OptLayerTree, OptTree, TensorKinds } from "./tree.ts";

/** Element types a checkpoint may store. */
export type DType = "F16" | "BF16" | "F32";

/**
 * An OPT configuration, normalised from Hugging Face `config.json` (snake_case there,
 * camelCase here). Every field a released OPT checkpoint uses, 125m to 66b.
 */
export interface OptConfig {
  /** Rows of the token embedding (50272 for OPT; the tokenizer has 50265 ids). */
  vocabSize: number;
  /** Model width `d`. */
  hiddenSize: number;
  /** Decoder layers `L`. */
  numHiddenLayers: number;
  /** Attention heads; `hiddenSize / numAttentionHeads` is the head size. */
  numAttentionHeads: number;
  /** MLP width `f`. */
  ffnDim: number;
  /** Positions the model was trained for; the table has `maxPositionEmbeddings + 2` rows. */
  maxPositionEmbeddings: number;
  /** Pre-LN (`true`, all sizes but 350m) or post-LN (`false`, opt-350m). */
  doLayerNormBefore: boolean;
  /** Width of the token embedding; differs from `hiddenSize` in opt-350m (512 vs 1024). */
  wordEmbedProjDim: number;
  /** Whether linear layers have biases (always `true` in released OPT). */
  enableBias: boolean;
  /** Whether LayerNorms have weight and bias (always `true` in released OPT). */
  layerNormElementwiseAffine: boolean;
  /** `true` when the decoder has no final LayerNorm (`_remove_final_layer_norm`). */
  removeFinalLayerNorm: boolean;
  /** Activation of the MLP; only `"relu"` is supported. */
  activationFunction: string;
  /** Beginning-of-sequence id (`</s>` = 2 in OPT). */
  bosTokenId: number;
  /** End-of-sequence id (`</s>` = 2 in OPT). */
  eosTokenId: number;
  /** Padding id (`<pad>` = 1 in OPT). */
  padTokenId: number;
  /** The dtype named by `torch_dtype`, if any. */
  torchDtype?: string;
  /** Whether the LM head is tied to the token embedding (`tie_word_embeddings`, default true). */
  tieWordEmbeddings: boolean;
}

/** A tensor as stored in a checkpoint: its name, dtype, shape and a lazy reader of its bytes. */
export interface Tensor {
  /** The normalised name, e.g. `decoder.layers.0.fc1.weight`. */
  readonly name: string;
  /** The stored element type. */
  readonly dtype: DType;
  /** The shape; linear weights are `[out, in]`. */
  readonly shape: readonly number[];
  /** Reads the little-endian bytes (length = product(shape) * dtype size). */
  bytes(): Uint8Array;
}

/** Weight and bias of a linear map `y = x W^T + b`, `W` stored `[out, in]`. */
export interface LinearWeights {
  /** `[out, in]`. */
  weight: Tensor;
  /** `[out]`, absent only when `enableBias` is false. */
  bias?: Tensor;
}

/** Scale and shift of a LayerNorm over the last axis. */
export interface LayerNormWeights {
  /** `[d]`. */
  weight: Tensor;
  /** `[d]`. */
  bias: Tensor;
}

/**
 * The weights of one decoder layer: one field per entry of `LAYER_PARAMS` (`model/tree.ts`),
 * named as in Hugging Face (`qProj` is `self_attn.q_proj`, `selfAttnLayerNorm` is
 * `self_attn_layer_norm`, ...).
 */
export type OptLayerWeights = OptLayerTree<TensorKinds>;

/**
 * All weights of an OPT model, names normalised and shapes checked against the config: one
 * field per entry of `MODEL_PARAMS` (`model/tree.ts`). `projectIn`/`projectOut` exist only
 * when `wordEmbedProjDim` differs from `hiddenSize` (opt-350m), `finalLayerNorm` only in
 * pre-LN models; `lmHead` is the same object as `embedTokens` when tied.
 */
export type OptWeights = OptTree<TensorKinds>;
