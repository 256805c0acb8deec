/**
 * Loading a Hugging Face OPT checkpoint folder into {@linkcode OptWeights}: `config.json`
 * plus weights, looked for in the order transformers uses: `model.safetensors`, sharded
 * safetensors listed in `model.safetensors.index.json`, PyTorch's `pytorch_model.bin`,
 * then `.bin` shards listed in `pytorch_model.bin.index.json` (read by `torch_bin.ts`,
 * never executing anything). Names are normalised (`model.decoder.*` and `decoder.*`
 * both become `decoder.*`), a missing `lm_head.weight` is tied to the token embedding (and
 * a file holding only `lm_head.weight` gives the embedding when the head is tied), and
 * every tensor the config implies must be present with the shape it implies. Only
 * headers are read here; tensor bytes are read when a backend asks for them.
 *
 * @example
 * ```ts
 * import { describeModel, loadWeights } from "./checkpoint.ts";
 * const w = await loadWeights("bundled/models/tiny-opt-e2e");
 * console.log(describeModel(w).summary);
 * ```
 *
 * @module
 */
import { readOptConfig } from "./config.ts";
import { CheckpointError } from "./errors.ts";
import { type FileTensor, memoryTensor, openSafetensors, renameTensor } from "./safetensors.ts";
import { DTYPE_SIZES, shapeSize } from "./safetensors.ts";
import { openTorchBin } from "./torch_bin.ts";
import { modelFile, PathRuleError } from "./paths.ts";
import {
  buildOptTree,
  type ParamSite,
  siteTensors,
  type TensorKinds,
  treeEntries,
} from "./tree.ts";
import type { DType, OptWeights, Tensor } from "./types.ts";

export { hasFinalLayerNorm, optTensorSpecs } from "./tree.ts";
export type { OptTensorSpec } from "./tree.ts";

/** Name of the single-file weights. */
export const SAFE_WEIGHTS_NAME = "model.safetensors";
/** Name of the shard index of sharded weights. */
export const SAFE_WEIGHTS_INDEX_NAME = "model.safetensors.index.json";
/** Name of single-file PyTorch weights. */
export const WEIGHTS_NAME = "pytorch_model.bin";
/** Name of the shard index of sharded PyTorch weights. */
export const WEIGHTS_INDEX_NAME = "pytorch_model.bin.index.json";

/** {@linkcode OptWeights} plus where they came from and what was odd about them. */
export interface LoadedWeights extends OptWeights {
  /** The checkpoint folder. */
  dir: string;
  /** The weight files read (safetensors or `.bin`), in order. */
  files: string[];
  /** `safetensors` or PyTorch `bin`. */
  format: "safetensors" | "bin";
  /** Whether the weights were sharded (read through the index). */
  sharded: boolean;
  /** Non-fatal findings, e.g. tensors in the files that OPT does not use. */
  warnings: string[];
}

function join(dir: string, file: string): string {
  return dir.endsWith("/") ? dir + file : `${dir}/${file}`;
}

/**
 * Maps a stored weight name to its normalised form: `model.decoder.X` and `decoder.X`
 * become `decoder.X`, `lm_head.weight` stays; anything else gives `undefined`. Attention
 * projections stored as `layers.N.q_proj.*` (without Hugging Face's `self_attn.` segment,
 * as in `bundled/models/tiny-opt-e2e`) are mapped to `layers.N.self_attn.q_proj.*`.
 *
 * @example
 * ```ts
 * import { normalizeWeightName } from "./checkpoint.ts";
 * console.log(normalizeWeightName("model.decoder.layers.0.fc1.weight"));
 * // "decoder.layers.0.fc1.weight"
 * ```
 */
export function normalizeWeightName(stored: string): string | undefined {
  if (stored === "lm_head.weight" || stored === "model.lm_head.weight") return "lm_head.weight";
  let name: string;
  if (stored.startsWith("model.decoder.")) name = stored.slice("model.".length);
  else if (stored.startsWith("decoder.")) name = stored;
  else return undefined;
  return name.replace(BARE_ATTENTION, "decoder.layers.$1.self_attn.$2");
}

/** Attention projections stored without HF's `self_attn.` segment (a non-standard layout). */
const BARE_ATTENTION = /^decoder\.layers\.(\d+)\.((?:q|k|v|out)_proj\.(?:weight|bias))$/;

function isPlainName(name: string): boolean {
  return name.length > 0 && !name.includes("/") && !name.includes("\\") && name !== "." &&
    name !== "..";
}

/** Reads the shard index and returns shard file names and the tensor -> shard map. */
function readIndex(indexPath: string): { shards: string[]; weightMap: Map<string, string> } {
  let json: unknown;
  try {
    json = JSON.parse(Deno.readTextFileSync(indexPath));
  } catch (e) {
    throw new CheckpointError(
      e instanceof SyntaxError
        ? `${indexPath} is not valid JSON: ${e.message}`
        : `cannot read ${indexPath}: ${(e as Error).message}`,
      { file: indexPath, kind: e instanceof SyntaxError ? "index" : "io", cause: e },
    );
  }
  const wm = (json as { weight_map?: unknown } | null)?.weight_map;
  if (typeof wm !== "object" || wm === null || Array.isArray(wm)) {
    throw new CheckpointError(`${indexPath}: missing or invalid "weight_map" object`, {
      file: indexPath,
      kind: "index",
      field: "weight_map",
    });
  }
  const weightMap = new Map<string, string>();
  const shards: string[] = [];
  for (const [tensor, shard] of Object.entries(wm)) {
    if (typeof shard !== "string" || !isPlainName(shard)) {
      throw new CheckpointError(
        `${indexPath}: weight_map entry for tensor ${tensor} must be a file name in the same ` +
          `folder, got ${JSON.stringify(shard)}`,
        { file: indexPath, kind: "index", tensor, field: "weight_map" },
      );
    }
    weightMap.set(tensor, shard);
    if (!shards.includes(shard)) shards.push(shard);
  }
  if (shards.length === 0) {
    throw new CheckpointError(`${indexPath}: "weight_map" names no tensors`, {
      file: indexPath,
      kind: "index",
      field: "weight_map",
    });
  }
  return { shards, weightMap };
}

/**
 * The path of `name` in the model folder under the path rule (`paths.ts`: it must resolve
 * inside the folder or its cache repository's blobs, and be a regular file), or
 * `undefined` when missing; a breach is a {@linkcode CheckpointError} naming the file.
 */
function checkedFile(dir: string, name: string): string | undefined {
  try {
    return modelFile(dir, name);
  } catch (e) {
    if (e instanceof PathRuleError) {
      throw new CheckpointError(e.message, { file: e.path, kind: "io", cause: e });
    }
    if (e instanceof Deno.errors.NotCapable || e instanceof Deno.errors.PermissionDenied) {
      throw new CheckpointError(
        `${join(dir, name)} exists but this process may not read it ` +
          `(${(e as Error).message.replace(/,? run again with.*$/i, "")})`,
        { file: join(dir, name), kind: "io", cause: e },
      );
    }
    throw e;
  }
}

/** Opens one weight file by its kind. */
function openFile(path: string, bin: boolean): Map<string, FileTensor> {
  return new Map(bin ? openTorchBin(path).tensors : openSafetensors(path).tensors);
}

/** Opens the shards of an index; returns all stored tensors by stored name. */
function openSharded(dir: string, indexPath: string, bin: boolean) {
  const { shards, weightMap } = readIndex(indexPath);
  const tensors = new Map<string, FileTensor>();
  const files: string[] = [];
  for (const shard of shards) {
    const path = join(dir, shard);
    if (checkedFile(dir, shard) === undefined) {
      const example = [...weightMap].find(([, s]) => s === shard)![0];
      throw new CheckpointError(
        `shard ${shard} named in ${indexPath} (e.g. for tensor ${example}) is missing: ` +
          `${path} does not exist`,
        { file: path, kind: "index", tensor: example },
      );
    }
    files.push(path);
    for (const [name, t] of openFile(path, bin)) {
      const other = tensors.get(name);
      if (other) {
        throw new CheckpointError(
          `tensor ${name} is stored twice, in ${other.file} and in ${path}`,
          { file: path, kind: "index", tensor: name },
        );
      }
      tensors.set(name, t);
    }
  }
  for (const [name, shard] of weightMap) {
    const t = tensors.get(name);
    if (!t || t.file !== join(dir, shard)) {
      throw new CheckpointError(
        `${indexPath} says tensor ${name} is in ${shard}, but ${
          t ? `it is in ${t.file}` : "no shard holds it"
        }`,
        { file: indexPath, kind: "index", tensor: name },
      );
    }
  }
  return { files, sharded: true, tensors, where: `the shards of ${indexPath}`, blame: indexPath };
}

/**
 * The weight files of a folder in the order transformers looks for them, or `undefined`.
 *
 * @example
 * ```ts
 * import { findWeightFile } from "./checkpoint.ts";
 * console.log(findWeightFile("../shared/fixtures/torch-bin/pre-ln-sharded"));
 * // { name: "pytorch_model.bin.index.json", sharded: true, bin: true }
 * ```
 */
export function findWeightFile(
  dir: string,
): { name: string; sharded: boolean; bin: boolean } | undefined {
  const order: [string, boolean, boolean][] = [
    [SAFE_WEIGHTS_NAME, false, false],
    [SAFE_WEIGHTS_INDEX_NAME, true, false],
    [WEIGHTS_NAME, false, true],
    [WEIGHTS_INDEX_NAME, true, true],
  ];
  for (const [name, sharded, bin] of order) {
    if (checkedFile(dir, name) !== undefined) return { name, sharded, bin };
  }
  return undefined;
}

/** Opens the weight files of a folder; returns all stored tensors by stored name. */
function openWeights(dir: string): {
  files: string[];
  sharded: boolean;
  bin: boolean;
  tensors: Map<string, FileTensor>;
  where: string;
  /** The file a missing tensor is blamed on: the single file or the index. */
  blame: string;
} {
  const found = findWeightFile(dir);
  if (found) {
    const path = join(dir, found.name);
    if (found.sharded) return { ...openSharded(dir, path, found.bin), bin: found.bin };
    return {
      files: [path],
      sharded: false,
      bin: found.bin,
      tensors: openFile(path, found.bin),
      where: path,
      blame: path,
    };
  }
  let names: string[] = [];
  try {
    names = [...Deno.readDirSync(dir)].map((e) => e.name);
  } catch { /* reported below */ }
  const shardsWithoutIndex = names.filter((n) =>
    n.endsWith(".safetensors") || /^pytorch_model.*\.bin$/.test(n)
  );
  const single = join(dir, SAFE_WEIGHTS_NAME);
  throw new CheckpointError(
    shardsWithoutIndex.length > 0
      ? `${dir} has ${shardsWithoutIndex.join(", ")} but none of ${SAFE_WEIGHTS_NAME}, ` +
        `${SAFE_WEIGHTS_INDEX_NAME}, ${WEIGHTS_NAME}, ${WEIGHTS_INDEX_NAME}`
      : `no weights in ${dir}: expected ${SAFE_WEIGHTS_NAME}, ${SAFE_WEIGHTS_INDEX_NAME}, ` +
        `${WEIGHTS_NAME} or ${WEIGHTS_INDEX_NAME}`,
    { file: single, kind: "not-found" },
  );
}

/** Tensors synthesised for LayerNorms without parameters; they hold no parameters. */
const synthetic = new WeakSet<Tensor>();

function constantTensor(name: string, n: number, value: number): Tensor {
  const t = memoryTensor(name, "F32", [n], new Uint8Array(new Float32Array(n).fill(value).buffer));
  synthetic.add(t);
  return t;
}

/**
 * Loads the weights of a Hugging Face OPT folder (headers only; bytes are read lazily).
 * Synchronous; see {@linkcode loadWeights} for the async form.
 *
 * @param dir The checkpoint folder (holding `config.json`).
 * @returns The weights, names normalised and shapes checked, plus warnings.
 * @throws {CheckpointError} naming the file, tensor or field at fault.
 *
 * @example
 * ```ts
 * import { loadWeightsSync } from "./checkpoint.ts";
 * const w = loadWeightsSync("bundled/models/tiny-opt-e2e");
 * console.log(w.layers.length, w.lmHead === w.embedTokens); // 12 true
 * ```
 */
export function loadWeightsSync(dir: string): LoadedWeights {
  let st: Deno.FileInfo;
  try {
    st = Deno.statSync(dir);
  } catch (e) {
    if (e instanceof Deno.errors.NotCapable || e instanceof Deno.errors.PermissionDenied) {
      throw new CheckpointError(
        `model directory ${dir} exists or may exist, but this process may not read it ` +
          `(${(e as Error).message.replace(/,? run again with.*$/i, "")})`,
        { file: dir, kind: "io", cause: e },
      );
    }
    throw new CheckpointError(`model directory ${dir} does not exist`, {
      file: dir,
      kind: "not-found",
      cause: e,
    });
  }
  if (!st.isDirectory) {
    throw new CheckpointError(`${dir} is not a directory (expected a Hugging Face model folder)`, {
      file: dir,
      kind: "not-found",
    });
  }
  const configPath = checkedFile(dir, "config.json") ?? join(dir, "config.json");
  const config = readOptConfig(configPath);
  const { files, sharded, bin, tensors, where, blame } = openWeights(dir);

  // Normalise names; remember which stored name each normalised one came from.
  const byName = new Map<string, FileTensor>();
  const warnings: string[] = [];
  const ignored: string[] = [];
  let bareAttention = 0;
  for (const [stored, t] of tensors) {
    const norm = normalizeWeightName(stored);
    if (norm === undefined) {
      ignored.push(stored);
      continue;
    }
    const prev = byName.get(norm);
    if (prev) {
      throw new CheckpointError(
        `tensor ${norm} appears twice: as ${prev.storedName} (${prev.file}) and as ${stored} ` +
          `(${t.file})`,
        { file: t.file, kind: "format", tensor: stored },
      );
    }
    byName.set(norm, t);
    if (norm.includes(".self_attn.") && !stored.includes(".self_attn.")) bareAttention++;
  }
  const head = byName.get("lm_head.weight");
  if (!byName.has("decoder.embed_tokens.weight") && head && config.tieWordEmbeddings) {
    // Some conversions kept only one of the two tied tensors, under the head's name.
    byName.set("decoder.embed_tokens.weight", head);
    byName.delete("lm_head.weight");
    warnings.push(
      `the token embedding is read from ${head.storedName} (${head.file}): the file holds the ` +
        `tied LM head but no decoder.embed_tokens.weight`,
    );
  }
  if (bareAttention > 0) {
    warnings.push(
      `${bareAttention} attention tensor(s) are stored as decoder.layers.N.q_proj.* without ` +
        `Hugging Face's "self_attn." segment; read as decoder.layers.N.self_attn.q_proj.* ` +
        `(transformers itself would not load them)`,
    );
  }
  const used = new Set<string>();
  const got = new Map<string, Tensor>(); // one object per name: a tied head is the embedding
  const need = (name: string, shape: number[], why: string): Tensor => {
    const known = got.get(name);
    if (known) return known;
    const t = byName.get(name);
    if (!t) {
      const hint = name.startsWith("decoder.layers.")
        ? ` (config.json says num_hidden_layers = ${config.numHiddenLayers})`
        : "";
      throw new CheckpointError(
        `missing tensor ${name} (looked for model.${name} and ${name} in ${where})${hint}`,
        { file: blame, kind: "missing-tensor", tensor: name },
      );
    }
    if (t.shape.length !== shape.length || t.shape.some((v, i) => v !== shape[i])) {
      throw new CheckpointError(
        `tensor ${t.storedName} in ${t.file} has shape [${t.shape.join(", ")}], expected ` +
          `[${shape.join(", ")}] = ${why} from ${configPath}`,
        { file: t.file, kind: "shape", tensor: t.storedName },
      );
    }
    used.add(name);
    const renamed = renameTensor(t, name);
    got.set(name, renamed);
    return renamed;
  };
  const c = config;
  // One walk over the parameter tree (model/tree.ts): every group the config implies,
  // each tensor checked by name and shape. A tied head is the embedding object itself.
  const tensor = (site: ParamSite, part: "weight" | "bias"): Tensor => {
    const spec = siteTensors(c, site).find((t) => t.part === part)!;
    return need(spec.name, spec.shape, spec.why);
  };
  const tree = buildOptTree<TensorKinds>(c, {
    table: (site) => tensor(site, "weight"),
    matrix: (site) => {
      if (!site.tied) {
        if (site.key === "lmHead" && !byName.has("lm_head.weight")) {
          throw new CheckpointError(
            `missing tensor lm_head.weight in ${where}: config.json sets tie_word_embeddings ` +
              `to false, so the LM head cannot be tied to the token embedding`,
            { file: blame, kind: "missing-tensor", tensor: "lm_head.weight" },
          );
        }
        return tensor(site, "weight");
      }
      if (byName.has("lm_head.weight")) {
        used.add("lm_head.weight");
        warnings.push(
          "lm_head.weight is ignored because tie_word_embeddings is true (as in Hugging Face, " +
            "the LM head is the token embedding)",
        );
      }
      return need(`${site.source}.weight`, site.shape, site.decl.shapeWhy);
    },
    linear: (site) => ({
      weight: tensor(site, "weight"),
      ...(c.enableBias ? { bias: tensor(site, "bias") } : {}),
    }),
    layerNorm: (site) =>
      c.layerNormElementwiseAffine
        ? { weight: tensor(site, "weight"), bias: tensor(site, "bias") }
        : {
          weight: constantTensor(`${site.name}.weight`, site.shape[0], 1),
          bias: constantTensor(`${site.name}.bias`, site.shape[0], 0),
        },
  });
  const weights: LoadedWeights = {
    ...tree,
    dir,
    files,
    format: bin ? "bin" : "safetensors",
    sharded,
    warnings,
  };
  const unusedNames = [...byName.keys()].filter((n) => !used.has(n));
  // Weights of layers the config does not count: the config is wrong, and running fewer
  // layers than the model was trained with would give wrong outputs without a word.
  const extra = unusedNames.map((n) => /^decoder\.layers\.(\d+)\./.exec(n)?.[1])
    .filter((x): x is string => x !== undefined).map(Number);
  if (extra.length > 0) {
    const top = Math.max(...extra);
    throw new CheckpointError(
      `${configPath}: field "num_hidden_layers" is ${config.numHiddenLayers} but the weights ` +
        `in ${where} hold layers up to decoder.layers.${top} (${top + 1} layers): fix ` +
        `num_hidden_layers`,
      { file: configPath, kind: "config", field: "num_hidden_layers" },
    );
  }
  const unused = unusedNames.map((n) => byName.get(n)!.storedName);
  ignored.push(...unused);
  if (ignored.length > 0) {
    const shown = ignored.slice(0, 5).join(", ");
    warnings.push(
      `ignored ${ignored.length} tensor(s) an OPT with this config does not use: ${shown}` +
        (ignored.length > 5 ? ", ..." : ""),
    );
  }
  return weights;
}

/**
 * Loads the weights of a Hugging Face OPT folder (headers only; bytes are read lazily).
 *
 * @param dir The checkpoint folder (holding `config.json`).
 * @returns The weights, names normalised and shapes checked, plus warnings.
 * @throws {CheckpointError} (as a rejection) naming the file, tensor or field at fault.
 *
 * @example
 * ```ts
 * import { loadWeights } from "./checkpoint.ts";
 * const w = await loadWeights("bundled/models/tiny-opt-e2e");
 * console.log(w.config.hiddenSize); // 128
 * ```
 */
export function loadWeights(dir: string): Promise<LoadedWeights> {
  try {
    return Promise.resolve(loadWeightsSync(dir));
  } catch (e) {
    return Promise.reject(e);
  }
}

/**
 * Every distinct tensor of a model (the tied LM head once; synthesised parameter-free
 * LayerNorm tensors excluded).
 *
 * @example
 * ```ts
 * import { allTensors, loadWeightsSync } from "./checkpoint.ts";
 * const w = loadWeightsSync("bundled/models/tiny-opt-e2e");
 * console.log(allTensors(w).length); // 196
 * ```
 */
export function allTensors(weights: OptWeights): Tensor[] {
  const out = new Set<Tensor>();
  const add = (t: Tensor | undefined) => {
    if (t && !synthetic.has(t)) out.add(t);
  };
  for (const { value } of treeEntries<TensorKinds>(weights)) {
    if ("shape" in value) add(value);
    else {
      add(value.weight);
      add(value.bias);
    }
  }
  return [...out];
}

/** Size figures of a model, from {@linkcode describeModel}. */
export interface ModelDescription {
  /** Distinct parameters (tied head counted once). */
  parameters: number;
  /** Bytes of those parameters as stored. */
  bytes: number;
  /** Number of distinct tensors. */
  tensors: number;
  /** Parameters per stored dtype. */
  dtypes: Partial<Record<DType, number>>;
  /** Whether the LM head is the token embedding. */
  tiedLmHead: boolean;
  /** One line for humans, e.g. `OPT 12 layers, d 128, ... 8.85 M parameters (F16, 17.69 MB)`. */
  summary: string;
}

/**
 * Counts a model's parameters and stored bytes.
 *
 * @example
 * ```ts
 * import { describeModel, loadWeightsSync } from "./checkpoint.ts";
 * const info = describeModel(loadWeightsSync("bundled/models/tiny-opt-e2e"));
 * console.log(info.parameters, info.bytes);
 * ```
 */
export function describeModel(weights: OptWeights): ModelDescription {
  const dtypes: Partial<Record<DType, number>> = {};
  let parameters = 0, bytes = 0;
  const tensors = allTensors(weights);
  for (const t of tensors) {
    const n = shapeSize(t.shape);
    parameters += n;
    bytes += n * DTYPE_SIZES[t.dtype];
    dtypes[t.dtype] = (dtypes[t.dtype] ?? 0) + n;
  }
  const c = weights.config;
  const tiedLmHead = weights.lmHead === weights.embedTokens;
  const scaled = (n: number, unit: string) =>
    n >= 1e9
      ? `${(n / 1e9).toFixed(2)} G${unit}`
      : n >= 1e6
      ? `${(n / 1e6).toFixed(2)} M${unit}`
      : `${n} ${unit}`;
  const summary = `OPT ${c.numHiddenLayers} layers, d ${c.hiddenSize}, ffn ${c.ffnDim}, ` +
    `${c.numAttentionHeads} heads, vocab ${c.vocabSize}` +
    (c.wordEmbedProjDim !== c.hiddenSize ? `, embed ${c.wordEmbedProjDim}` : "") +
    `, ${c.doLayerNormBefore ? "pre" : "post"}-LN, ${tiedLmHead ? "tied" : "separate"} LM head: ` +
    `${scaled(parameters, "").trim()} parameters (${Object.keys(dtypes).join("+")}, ` +
    `${scaled(bytes, "B")})`;
  return { parameters, bytes, tensors: tensors.length, dtypes, tiedLmHead, summary };
}
