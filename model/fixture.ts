/**
 * Deterministic random OPT checkpoints in real Hugging Face layout, for tests and
 * benchmarks: `config.json`, `generation_config.json`, `model.safetensors` (or shards plus
 * `model.safetensors.index.json`) and, optionally, the tokenizer files copied from a folder.
 *
 * Values depend only on the seed and the tensor's normalised name (not on dtype rounding,
 * sharding or the name prefix), are never zero-filled, and are scaled so activations stay
 * in a sane range at any width (normal draws, quantised to 65536 levels; std = standard
 * deviation): linear weights
 * std `1/sqrt(fan_in)`, token embeddings (and an untied head) std `2/sqrt(width)`,
 * positions std `1/sqrt(hidden)`, LayerNorm weights `1` plus std `0.1`, all biases and
 * LayerNorm shifts std `0.1`.
 *
 * @example
 * ```ts
 * import { writeRandomCheckpoint } from "./fixture.ts";
 * import { loadWeightsSync } from "./checkpoint.ts";
 * const dir = Deno.makeTempDirSync();
 * writeRandomCheckpoint(dir, { shape: { hiddenSize: 32, numHiddenLayers: 2 }, seed: 1 });
 * console.log(loadWeightsSync(dir).layers.length); // 2
 * ```
 *
 * @module
 */
import {
  type OptTensorSpec,
  optTensorSpecs,
  SAFE_WEIGHTS_INDEX_NAME,
  SAFE_WEIGHTS_NAME,
} from "./checkpoint.ts";
import { OPT_SHAPES, optConfigToJson, type OptShapeName, parseOptConfig } from "./config.ts";
import {
  DTYPE_SIZES,
  float32ToBytes,
  type SafetensorsWriteEntry,
  shapeSize,
  writeSafetensors,
} from "./safetensors.ts";
import type { DType, OptConfig } from "./types.ts";
import { mulberry32Bits } from "./random.ts";

/** The shape used for fields a partial shape leaves out: tiny and fast. */
export const TINY_OPT_SHAPE: Readonly<OptConfig> = Object.freeze({
  vocabSize: 96,
  hiddenSize: 32,
  numHiddenLayers: 2,
  numAttentionHeads: 4,
  ffnDim: 64,
  maxPositionEmbeddings: 64,
  doLayerNormBefore: true,
  wordEmbedProjDim: 32,
  enableBias: true,
  layerNormElementwiseAffine: true,
  removeFinalLayerNorm: false,
  activationFunction: "relu",
  bosTokenId: 2,
  eosTokenId: 2,
  padTokenId: 1,
  tieWordEmbeddings: true,
});

/** Options of {@linkcode writeRandomCheckpoint}. */
export interface RandomCheckpointOptions {
  /**
   * A preset name (`"opt-125m"`, `"opt-350m"`, ...) or fields overriding
   * {@linkcode TINY_OPT_SHAPE}; `wordEmbedProjDim` follows `hiddenSize` unless given.
   */
  shape?: Partial<OptConfig> | OptShapeName;
  /** Seed of the generator (default 0). */
  seed?: number;
  /** Stored dtype (default `"F16"`). */
  dtype?: DType;
  /** Number of shards; 0 or 1 (default) writes a single `model.safetensors`. */
  sharded?: number;
  /** Name prefix of decoder tensors (default `"model.decoder"`, as `OPTForCausalLM` saves). */
  prefix?: "model.decoder" | "decoder";
  /**
   * `true` (default): no `lm_head.weight`, `tie_word_embeddings: true`. `false`: a separate
   * random `lm_head.weight` and `tie_word_embeddings: false`.
   */
  tieLmHead?: boolean;
  /** Folder to copy `vocab.json`, `merges.txt`, `tokenizer.json` and configs from. */
  tokenizerDir?: string;
}

/** What {@linkcode writeRandomCheckpoint} wrote. */
export interface RandomCheckpoint {
  /** The folder. */
  dir: string;
  /** The configuration written to `config.json`. */
  config: OptConfig;
  /** Safetensors files written (full paths). */
  files: string[];
  /** Stored name -> file name (no folder) of every tensor. */
  weightMap: Record<string, string>;
  /** Total tensor bytes. */
  bytes: number;
  /** Tokenizer files copied (names). */
  tokenizerFiles: string[];
}

/**
 * Resolves a fixture shape option into a full, validated configuration.
 *
 * @example
 * ```ts
 * import { fixtureConfig } from "./fixture.ts";
 * console.log(fixtureConfig({ hiddenSize: 64 }).wordEmbedProjDim); // 64
 * ```
 */
export function fixtureConfig(
  shape: Partial<OptConfig> | OptShapeName = {},
  dtype: DType = "F16",
): OptConfig {
  let merged: OptConfig;
  if (typeof shape === "string") {
    const preset = OPT_SHAPES[shape];
    if (!preset) throw new Error(`unknown OPT shape preset ${JSON.stringify(shape)}`);
    merged = { ...preset };
  } else {
    merged = {
      ...TINY_OPT_SHAPE,
      wordEmbedProjDim: shape.hiddenSize ?? TINY_OPT_SHAPE.wordEmbedProjDim,
      ...shape,
    };
  }
  merged.torchDtype = { F16: "float16", BF16: "bfloat16", F32: "float32" }[dtype];
  // Round trip through the parser to reject impossible shapes with its messages.
  return parseOptConfig(optConfigToJson(merged), "fixture shape");
}

let normalTable: Float32Array | undefined;

/** Acklam's rational approximation of the inverse standard normal CDF (error < 1.2e-9). */
function inverseNormal(p: number): number {
  const a = [
    -39.69683028665376,
    220.9460984245205,
    -275.9285104469687,
    138.357751867269,
    -30.66479806614716,
    2.506628277459239,
  ];
  const b = [
    -54.47609879822406,
    161.5858368580409,
    -155.6989798598866,
    66.80131188771972,
    -13.28068155288572,
  ];
  const c = [
    -0.007784894002430293,
    -0.3223964580411365,
    -2.400758277161838,
    -2.549732539343734,
    4.374664141464968,
    2.938163982698783,
  ];
  const d = [0.007784695709041462, 0.3224671290700398, 2.445134137142996, 3.754408661907416];
  const tail = (q: number) =>
    (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) /
    ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1);
  if (p < 0.02425) return tail(Math.sqrt(-2 * Math.log(p)));
  if (p > 1 - 0.02425) return -tail(Math.sqrt(-2 * Math.log(1 - p)));
  const q = p - 0.5, r = q * q;
  return (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q /
    (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1);
}

/** 65536 standard-normal quantiles at the midpoints of equal-probability bins. */
function getNormalTable(): Float32Array {
  if (!normalTable) {
    normalTable = new Float32Array(65536);
    for (let i = 0; i < 65536; i++) normalTable[i] = inverseNormal((i + 0.5) / 65536);
  }
  return normalTable;
}

/** FNV-1a of a string mixed with a seed. */
function hashSeed(seed: number, name: string): number {
  let h = (0x811c9dc5 ^ Math.imul(seed >>> 0, 0x9e3779b1)) >>> 0;
  for (let i = 0; i < name.length; i++) {
    h ^= name.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h;
}

/**
 * The f32 values the fixture draws for one tensor (before rounding to the stored dtype).
 * Depends only on the seed, the normalised name, the shape and the config.
 *
 * @example
 * ```ts
 * import { fixtureValues, TINY_OPT_SHAPE } from "./fixture.ts";
 * const v = fixtureValues(TINY_OPT_SHAPE, { name: "decoder.layers.0.fc1.bias", shape: [64], why: "" }, 7);
 * console.log(v.length); // 64
 * ```
 */
export function fixtureValues(config: OptConfig, spec: OptTensorSpec, seed: number): Float32Array {
  const n = shapeSize(spec.shape);
  const values = valueTable(config, spec.name, spec.shape);
  const out = new Float32Array(n);
  drawIndices(n, hashSeed(seed, spec.name), (i, k) => (out[i] = values[k]));
  return out;
}

/**
 * The 65,536 values a tensor's 16-bit quantile indices map to: `mean + std * normal[k]`,
 * rounded to f32 (mean and std by the tensor's role).
 */
function valueTable(config: OptConfig, name: string, shape: readonly number[]): Float32Array {
  let mean = 0, std: number;
  if (name.endsWith("_layer_norm.weight")) {
    mean = 1;
    std = 0.1;
  } else if (name.endsWith(".bias")) {
    std = 0.1;
  } else if (name === "decoder.embed_tokens.weight" || name === "lm_head.weight") {
    std = 2 / Math.sqrt(config.wordEmbedProjDim);
  } else if (name === "decoder.embed_positions.weight") {
    std = 1 / Math.sqrt(config.hiddenSize);
  } else {
    std = 1 / Math.sqrt(shape[1]); // linear [out, in]
  }
  const normal = getNormalTable();
  const values = new Float32Array(65536);
  for (let k = 0; k < 65536; k++) values[k] = mean + std * normal[k];
  return values;
}

/** Each 32 random bits give two 16-bit quantile indices: fast and plenty for a fixture. */
function drawIndices(n: number, seedState: number, put: (i: number, k: number) => void): void {
  let state = seedState;
  for (let i = 0; i < n; i += 2) {
    const [next, bits] = mulberry32Bits(state);
    state = next;
    put(i, bits & 0xffff);
    if (i + 1 < n) put(i + 1, bits >>> 16);
  }
}

/**
 * A tensor's stored bytes: for F16 straight from a table of the 65,536 possible halves
 * (the same bytes as rounding {@linkcode fixtureValues}, several times faster, which an
 * OPT-6.7b shape's 13.4 GB needs), else {@linkcode fixtureValues} converted.
 */
function fixtureBytes(config: OptConfig, spec: OptTensorSpec, seed: number, dtype: DType) {
  if (dtype !== "F16") return float32ToBytes(fixtureValues(config, spec, seed), dtype);
  const n = shapeSize(spec.shape);
  const halves = new Uint16Array(
    float32ToBytes(valueTable(config, spec.name, spec.shape), "F16").buffer,
  );
  const out = new Uint16Array(n);
  let state = hashSeed(seed, spec.name);
  const n2 = n - (n % 2);
  for (let i = 0; i < n2; i += 2) {
    const [next, bits] = mulberry32Bits(state);
    state = next;
    out[i] = halves[bits & 0xffff];
    out[i + 1] = halves[bits >>> 16];
  }
  if (n2 < n) out[n2] = halves[mulberry32Bits(state)[1] & 0xffff];
  return new Uint8Array(out.buffer);
}

/**
 * The tensors a fixture with these options stores (stored names, lazy data), in order.
 *
 * @example
 * ```ts
 * import { fixtureConfig, fixtureTensors } from "./fixture.ts";
 * const ts = fixtureTensors(fixtureConfig(), { seed: 1, dtype: "BF16" });
 * console.log(ts[0].name); // "model.decoder.embed_tokens.weight"
 * ```
 */
export function fixtureTensors(
  config: OptConfig,
  options: Pick<RandomCheckpointOptions, "seed" | "dtype" | "prefix" | "tieLmHead"> = {},
): SafetensorsWriteEntry[] {
  const seed = options.seed ?? 0;
  const dtype = options.dtype ?? "F16";
  const prefix = options.prefix ?? "model.decoder";
  const specs = optTensorSpecs(config, !(options.tieLmHead ?? true));
  return specs.map((spec) => ({
    name: spec.name.startsWith("decoder.") ? prefix + spec.name.slice("decoder".length) : spec.name,
    dtype,
    shape: spec.shape,
    data: () => fixtureBytes(config, spec, seed, dtype),
  }));
}

const TOKENIZER_FILES = [
  "tokenizer.json",
  "vocab.json",
  "merges.txt",
  "tokenizer_config.json",
  "special_tokens_map.json",
];

/**
 * Writes a deterministic random OPT checkpoint folder in Hugging Face layout (created if
 * needed). Tensors are produced and written one at a time, so an OPT-125m shape needs
 * only one tensor in memory at once.
 *
 * @param dir Target folder.
 * @param options Shape, seed, dtype, sharding, name prefix, tying, tokenizer source.
 * @returns What was written.
 * @throws {Error} for an unknown preset or a `tokenizerDir` without tokenizer files;
 *   {@linkcode CheckpointError} for an impossible shape.
 *
 * @example
 * ```ts
 * import { writeRandomCheckpoint } from "./fixture.ts";
 * const dir = Deno.makeTempDirSync();
 * const ck = writeRandomCheckpoint(dir, {
 *   shape: { hiddenSize: 64, wordEmbedProjDim: 32, doLayerNormBefore: false }, // 350m style
 *   dtype: "F32",
 *   sharded: 3,
 * });
 * console.log(ck.files.length); // 3
 * ```
 */
export function writeRandomCheckpoint(
  dir: string,
  options: RandomCheckpointOptions = {},
): RandomCheckpoint {
  const dtype = options.dtype ?? "F16";
  const config = fixtureConfig(options.shape, dtype);
  const tieLmHead = options.tieLmHead ?? true;
  config.tieWordEmbeddings = tieLmHead;
  Deno.mkdirSync(dir, { recursive: true });
  const tensors = fixtureTensors(config, { ...options, dtype, tieLmHead });
  const sizes = tensors.map((t) => shapeSize(t.shape) * DTYPE_SIZES[t.dtype]);
  const total = sizes.reduce((a, b) => a + b, 0);
  const nShards = Math.max(1, Math.floor(options.sharded ?? 1));
  if (nShards > tensors.length) {
    throw new Error(`cannot split ${tensors.length} tensors into ${nShards} shards`);
  }
  const groups: SafetensorsWriteEntry[][] = Array.from({ length: nShards }, () => []);
  let acc = 0;
  tensors.forEach((t, i) => {
    // Greedy by bytes, but leave at least one tensor for every later shard.
    let k = Math.min(nShards - 1, Math.floor((acc * nShards) / Math.max(total, 1)));
    k = Math.max(k, nShards - (tensors.length - i));
    for (let j = 0; j < k; j++) if (groups[j].length === 0) k = j;
    groups[k].push(t);
    acc += sizes[i];
  });
  const fileNames = nShards === 1
    ? [SAFE_WEIGHTS_NAME]
    : groups.map((_, k) =>
      `model-${String(k + 1).padStart(5, "0")}-of-${String(nShards).padStart(5, "0")}.safetensors`
    );
  const weightMap: Record<string, string> = {};
  const files: string[] = [];
  groups.forEach((g, k) => {
    const path = `${dir}/${fileNames[k]}`;
    writeSafetensors(path, g, { format: "pt" });
    files.push(path);
    for (const t of g) weightMap[t.name] = fileNames[k];
  });
  if (nShards > 1) {
    const sorted = Object.fromEntries(Object.entries(weightMap).sort(([a], [b]) => a < b ? -1 : 1));
    Deno.writeTextFileSync(
      `${dir}/${SAFE_WEIGHTS_INDEX_NAME}`,
      JSON.stringify({ metadata: { total_size: total }, weight_map: sorted }, null, 2) + "\n",
    );
  }
  Deno.writeTextFileSync(
    `${dir}/config.json`,
    JSON.stringify(optConfigToJson(config), null, 2) + "\n",
  );
  Deno.writeTextFileSync(
    `${dir}/generation_config.json`,
    JSON.stringify(
      {
        bos_token_id: config.bosTokenId,
        eos_token_id: config.eosTokenId,
        pad_token_id: config.padTokenId,
      },
      null,
      2,
    ) + "\n",
  );
  const tokenizerFiles: string[] = [];
  if (options.tokenizerDir !== undefined) {
    for (const name of TOKENIZER_FILES) {
      try {
        Deno.copyFileSync(`${options.tokenizerDir}/${name}`, `${dir}/${name}`);
        tokenizerFiles.push(name);
      } catch (e) {
        if (!(e instanceof Deno.errors.NotFound)) throw e;
      }
    }
    if (tokenizerFiles.length === 0) {
      throw new Error(
        `tokenizerDir ${options.tokenizerDir} holds none of ${TOKENIZER_FILES.join(", ")}`,
      );
    }
  }
  return { dir, config, files, weightMap, bytes: total, tokenizerFiles };
}
