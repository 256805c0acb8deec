/**
 * OPT configurations: reading Hugging Face `config.json` into an {@linkcode OptConfig},
 * writing one back, and the shapes of the released OPT sizes.
 *
 * @example
 * ```ts
 * import { OPT_SHAPES, optConfigToJson, parseOptConfig } from "./config.ts";
 * const cfg = parseOptConfig(optConfigToJson(OPT_SHAPES["opt-350m"]));
 * console.log(cfg.wordEmbedProjDim, cfg.doLayerNormBefore); // 512 false
 * ```
 *
 * @module
 */
import { CheckpointError } from "./errors.ts";
import { PathRuleError, readInputFile } from "./paths.ts";
import type { OptConfig } from "./types.ts";

function fail(source: string, field: string, what: string): never {
  throw new CheckpointError(`${source}: field "${field}" ${what}`, {
    file: source,
    kind: "config",
    field,
  });
}

function describe(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "an array";
  if (typeof v === "string") return `the string ${JSON.stringify(v.slice(0, 40))}`;
  if (typeof v === "object") return "an object";
  return `${typeof v} ${String(v)}`;
}

/** Reads fields of one parsed `config.json`, with errors naming the field and file. */
class Fields {
  constructor(readonly obj: Record<string, unknown>, readonly source: string) {}

  has(key: string): boolean {
    return this.obj[key] !== undefined && this.obj[key] !== null;
  }

  int(key: string, min: number, fallback?: number): number {
    if (!this.has(key)) {
      if (fallback !== undefined) return fallback;
      fail(this.source, key, "is missing (required for OPT)");
    }
    const v = this.obj[key];
    if (typeof v !== "number" || !Number.isSafeInteger(v)) {
      fail(this.source, key, `must be an integer, got ${describe(v)}`);
    }
    if (v < min) fail(this.source, key, `must be at least ${min}, got ${v}`);
    return v;
  }

  bool(key: string, fallback: boolean): boolean {
    if (!this.has(key)) return fallback;
    const v = this.obj[key];
    if (typeof v !== "boolean") fail(this.source, key, `must be true or false, got ${describe(v)}`);
    return v;
  }

  str(key: string): string | undefined {
    if (!this.has(key)) return undefined;
    const v = this.obj[key];
    if (typeof v !== "string") fail(this.source, key, `must be a string, got ${describe(v)}`);
    return v;
  }
}

/**
 * Normalises a parsed Hugging Face OPT `config.json` into an {@linkcode OptConfig}.
 *
 * Required: `vocab_size`, `hidden_size`, `num_hidden_layers`, `num_attention_heads`,
 * `ffn_dim`, `max_position_embeddings`. Defaults as in `transformers.OPTConfig`:
 * `do_layer_norm_before` true, `word_embed_proj_dim` = `hidden_size`, `enable_bias` true,
 * `layer_norm_elementwise_affine` true, `_remove_final_layer_norm` false,
 * `activation_function` `"relu"` (the only one supported), ids bos 2 / eos 2 / pad 1,
 * `tie_word_embeddings` true. `torch_dtype` (or the newer `dtype`) is kept if present.
 *
 * @param json The parsed JSON.
 * @param source The file name used in error messages.
 * @returns The configuration.
 * @throws {CheckpointError} naming the field and file when a field is missing, has the
 *   wrong type, is out of range, or the model is not an OPT with ReLU.
 *
 * @example
 * ```ts
 * import { parseOptConfig } from "./config.ts";
 * const cfg = parseOptConfig({
 *   vocab_size: 50272, hidden_size: 768, num_hidden_layers: 12, num_attention_heads: 12,
 *   ffn_dim: 3072, max_position_embeddings: 2048,
 * });
 * console.log(cfg.wordEmbedProjDim); // 768
 * ```
 */
export function parseOptConfig(json: unknown, source = "config.json"): OptConfig {
  if (typeof json !== "object" || json === null || Array.isArray(json)) {
    throw new CheckpointError(`${source}: expected a JSON object, got ${describe(json)}`, {
      file: source,
      kind: "config",
    });
  }
  const f = new Fields(json as Record<string, unknown>, source);
  const modelType = f.str("model_type");
  if (modelType !== undefined && modelType !== "opt") {
    fail(source, "model_type", `is ${JSON.stringify(modelType)}; only "opt" models are supported`);
  }
  const hiddenSize = f.int("hidden_size", 1);
  const numAttentionHeads = f.int("num_attention_heads", 1);
  if (hiddenSize % numAttentionHeads !== 0) {
    fail(
      source,
      "num_attention_heads",
      `(${numAttentionHeads}) must divide hidden_size (${hiddenSize})`,
    );
  }
  const activationFunction = f.str("activation_function") ?? "relu";
  if (activationFunction !== "relu") {
    fail(
      source,
      "activation_function",
      `is ${JSON.stringify(activationFunction)}; only "relu" is supported`,
    );
  }
  const config: OptConfig = {
    vocabSize: f.int("vocab_size", 1),
    hiddenSize,
    numHiddenLayers: f.int("num_hidden_layers", 1),
    numAttentionHeads,
    ffnDim: f.int("ffn_dim", 1),
    maxPositionEmbeddings: f.int("max_position_embeddings", 1),
    doLayerNormBefore: f.bool("do_layer_norm_before", true),
    wordEmbedProjDim: f.int("word_embed_proj_dim", 1, hiddenSize),
    enableBias: f.bool("enable_bias", true),
    layerNormElementwiseAffine: f.bool("layer_norm_elementwise_affine", true),
    removeFinalLayerNorm: f.bool("_remove_final_layer_norm", false),
    activationFunction,
    bosTokenId: f.int("bos_token_id", 0, 2),
    eosTokenId: f.int("eos_token_id", 0, 2),
    padTokenId: f.int("pad_token_id", 0, 1),
    tieWordEmbeddings: f.bool("tie_word_embeddings", true),
  };
  for (
    const [field, id] of [
      ["bos_token_id", config.bosTokenId],
      ["eos_token_id", config.eosTokenId],
      ["pad_token_id", config.padTokenId],
    ] as const
  ) {
    if (id >= config.vocabSize) {
      fail(source, field, `(${id}) must be below vocab_size (${config.vocabSize})`);
    }
  }
  const dtype = f.str("torch_dtype") ?? f.str("dtype");
  if (dtype !== undefined) config.torchDtype = dtype;
  return config;
}

/**
 * Reads and parses a `config.json` file.
 *
 * @param path Path of the `config.json`.
 * @returns The configuration.
 * @throws {CheckpointError} when the file is missing, unreadable, not JSON, or invalid.
 *
 * @example
 * ```ts
 * import { readOptConfig } from "./config.ts";
 * const cfg = readOptConfig("bundled/models/tiny-opt-e2e/config.json");
 * console.log(cfg.numHiddenLayers);
 * ```
 */
export function readOptConfig(path: string): OptConfig {
  let text: string;
  try {
    text = new TextDecoder().decode(
      readInputFile(path, { what: "config file", maxBytes: MAX_CONFIG_BYTES }),
    );
  } catch (e) {
    if (e instanceof PathRuleError) {
      throw new CheckpointError(e.message, { file: path, kind: "io", cause: e });
    }
    const missing = e instanceof Deno.errors.NotFound;
    throw new CheckpointError(
      missing
        ? `missing config.json: ${path} does not exist (a Hugging Face model folder needs one)`
        : `cannot read ${path}: ${(e as Error).message}`,
      { file: path, kind: missing ? "not-found" : "io", cause: e },
    );
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new CheckpointError(`${path} is not valid JSON: ${(e as Error).message}`, {
      file: path,
      kind: "config",
      cause: e,
    });
  }
  return parseOptConfig(json, path);
}

/** The largest `config.json` read (real ones are about 1 KB). */
export const MAX_CONFIG_BYTES = 1 << 20;

/**
 * Turns a configuration back into a Hugging Face `config.json` object (for
 * `JSON.stringify`), loadable by `transformers.OPTForCausalLM` and by
 * {@linkcode parseOptConfig}.
 *
 * @param config The configuration.
 * @returns A plain JSON object with HF's snake_case keys.
 *
 * @example
 * ```ts
 * import { OPT_SHAPES, optConfigToJson } from "./config.ts";
 * const text = JSON.stringify(optConfigToJson(OPT_SHAPES["opt-125m"]), null, 2);
 * console.log(text.includes('"hidden_size": 768')); // true
 * ```
 */
export function optConfigToJson(config: OptConfig): Record<string, unknown> {
  return {
    _remove_final_layer_norm: config.removeFinalLayerNorm,
    activation_dropout: 0.0,
    activation_function: config.activationFunction,
    architectures: ["OPTForCausalLM"],
    attention_dropout: 0.0,
    bos_token_id: config.bosTokenId,
    do_layer_norm_before: config.doLayerNormBefore,
    dropout: 0.1,
    enable_bias: config.enableBias,
    eos_token_id: config.eosTokenId,
    ffn_dim: config.ffnDim,
    hidden_size: config.hiddenSize,
    init_std: 0.02,
    layer_norm_elementwise_affine: config.layerNormElementwiseAffine,
    layerdrop: 0.0,
    max_position_embeddings: config.maxPositionEmbeddings,
    model_type: "opt",
    num_attention_heads: config.numAttentionHeads,
    num_hidden_layers: config.numHiddenLayers,
    pad_token_id: config.padTokenId,
    prefix: "</s>",
    tie_word_embeddings: config.tieWordEmbeddings,
    ...(config.torchDtype !== undefined ? { torch_dtype: config.torchDtype } : {}),
    use_cache: true,
    vocab_size: config.vocabSize,
    word_embed_proj_dim: config.wordEmbedProjDim,
  };
}

/** Names of the OPT sizes in {@linkcode OPT_SHAPES}, as in `facebook/<name>`. */
export type OptShapeName = "opt-125m" | "opt-350m" | "opt-1.3b" | "opt-2.7b" | "opt-6.7b";

function optShape(
  hiddenSize: number,
  numHiddenLayers: number,
  numAttentionHeads: number,
  extra: Partial<OptConfig> = {},
): OptConfig {
  return {
    vocabSize: 50272,
    hiddenSize,
    numHiddenLayers,
    numAttentionHeads,
    ffnDim: 4 * hiddenSize,
    maxPositionEmbeddings: 2048,
    doLayerNormBefore: true,
    wordEmbedProjDim: hiddenSize,
    enableBias: true,
    layerNormElementwiseAffine: true,
    removeFinalLayerNorm: false,
    activationFunction: "relu",
    bosTokenId: 2,
    eosTokenId: 2,
    padTokenId: 1,
    torchDtype: "float16",
    tieWordEmbeddings: true,
    ...extra,
  };
}

/**
 * The configurations of Meta's released OPT sizes, as in their Hugging Face
 * `config.json` (`facebook/opt-125m` ... `facebook/opt-6.7b`). opt-350m is the odd one:
 * post-LN, no final LayerNorm, 512-wide embeddings with `project_in`/`project_out`.
 *
 * @example
 * ```ts
 * import { OPT_SHAPES } from "./config.ts";
 * const { hiddenSize, numHiddenLayers } = OPT_SHAPES["opt-1.3b"];
 * console.log(hiddenSize, numHiddenLayers); // 2048 24
 * ```
 */
export const OPT_SHAPES: Readonly<Record<OptShapeName, Readonly<OptConfig>>> = Object.freeze({
  "opt-125m": Object.freeze(optShape(768, 12, 12)),
  "opt-350m": Object.freeze(
    optShape(1024, 24, 16, { doLayerNormBefore: false, wordEmbedProjDim: 512 }),
  ),
  "opt-1.3b": Object.freeze(optShape(2048, 24, 32)),
  "opt-2.7b": Object.freeze(optShape(2560, 32, 32)),
  "opt-6.7b": Object.freeze(optShape(4096, 32, 32)),
});
