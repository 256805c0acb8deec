/**
 * The OPT parameter tree, declared once. {@linkcode MODEL_PARAMS} and
 * {@linkcode LAYER_PARAMS} name every parameter group of Hugging Face's `OPTForCausalLM`
 * (`decoder.embed_tokens`, `decoder.layers.{i}.self_attn.q_proj`, ...): its kind, its shape
 * as a function of the config, which configs have it, and why it exists. Everything else is
 * derived from these two tables:
 *
 * - the types ({@linkcode OptTree} over any element type: checkpoint tensors, CPU arrays,
 *   device buffers), so `OptWeights`, the CPU backend's arrays, the WebGPU upload and the
 *   training views share one spelling (`qProj`, `selfAttnLayerNorm`, `projectIn`, `lmHead`);
 * - the tensor list ({@linkcode optTensorSpecs}: names, shapes, why), which checkpoint
 *   loading checks, the random-checkpoint writer writes and training allocates;
 * - the walks ({@linkcode buildOptTree} from names, {@linkcode mapOptTree} from another
 *   tree), which every consumer uses instead of listing the fields itself.
 *
 * Adding a per-layer tensor means adding one entry to {@linkcode LAYER_PARAMS} (and using
 * it in the forward passes).
 *
 * Kinds: a `table` is looked up by row (embeddings); a `matrix` is a bias-free linear map
 * `[out, in]` stored as one tensor (`project_in`, `project_out`, the LM head); a `linear` is
 * `weight [out, in]` plus `bias [out]` when `enable_bias`; a `layerNorm` is `weight` and
 * `bias`, `[hidden_size]` each, when `layer_norm_elementwise_affine`.
 *
 * @example
 * ```ts
 * import { LAYER_PARAMS, optTensorSpecs } from "./tree.ts";
 * import { OPT_SHAPES } from "./config.ts";
 * console.log(Object.keys(LAYER_PARAMS).length); // 8 groups per layer
 * console.log(optTensorSpecs(OPT_SHAPES["opt-125m"])[0].name); // "decoder.embed_tokens.weight"
 * ```
 *
 * @module
 */
import type { LayerNormWeights, LinearWeights, OptConfig, Tensor } from "./types.ts";

/** What a parameter group is (see the module doc). */
export type ParamKind = "table" | "matrix" | "linear" | "layerNorm";

/** One parameter group of OPT. */
export interface ParamDecl {
  /** How the group is stored and used. */
  readonly kind: ParamKind;
  /**
   * Hugging Face name without `.weight`/`.bias`: relative to `decoder.layers.{i}.` in
   * {@linkcode LAYER_PARAMS}, complete in {@linkcode MODEL_PARAMS}.
   */
  readonly hf: string;
  /** `[out, in]` (`[rows, cols]` of a table); `[hidden_size]` for a LayerNorm. */
  readonly shape: (c: OptConfig) => number[];
  /** The shape in `config.json`'s names, for error messages. */
  readonly shapeWhy: string;
  /** Whether a config has the group (default: every config). */
  readonly when?: (c: OptConfig) => boolean;
  /** `true` when some configs lack the group (then its tree field is optional). */
  readonly optional?: true;
  /** Why the group exists, in one line. */
  readonly why: string;
}

/**
 * Whether the decoder has a final LayerNorm: as in Hugging Face, iff
 * `do_layer_norm_before && !_remove_final_layer_norm`.
 *
 * @example
 * ```ts
 * import { hasFinalLayerNorm } from "./tree.ts";
 * import { OPT_SHAPES } from "./config.ts";
 * console.log(hasFinalLayerNorm(OPT_SHAPES["opt-350m"])); // false
 * ```
 */
export function hasFinalLayerNorm(config: OptConfig): boolean {
  return config.doLayerNormBefore && !config.removeFinalLayerNorm;
}

const projected = (c: OptConfig) => c.wordEmbedProjDim !== c.hiddenSize;
const hidden = (c: OptConfig) => [c.hiddenSize];
const square = (c: OptConfig) => [c.hiddenSize, c.hiddenSize];
const SQUARE_WHY = "[hidden_size, hidden_size]";

/**
 * The model-level groups, in the order `OPTForCausalLM` declares them (`lm_head` after the
 * decoder's layers).
 *
 * @example
 * ```ts
 * import { MODEL_PARAMS } from "./tree.ts";
 * console.log(MODEL_PARAMS.projectIn.hf); // "decoder.project_in"
 * ```
 */
export const MODEL_PARAMS = {
  embedTokens: {
    kind: "table",
    hf: "decoder.embed_tokens",
    shape: (c: OptConfig) => [c.vocabSize, c.wordEmbedProjDim],
    shapeWhy: "[vocab_size, word_embed_proj_dim]",
    why: "token embedding; also the LM head when tie_word_embeddings",
  },
  embedPositions: {
    kind: "table",
    hf: "decoder.embed_positions",
    shape: (c: OptConfig) => [c.maxPositionEmbeddings + 2, c.hiddenSize],
    shapeWhy: "[max_position_embeddings + 2, hidden_size]",
    why: "learned positions; OPT looks up position id + 2",
  },
  projectOut: {
    kind: "matrix",
    hf: "decoder.project_out",
    shape: (c: OptConfig) => [c.wordEmbedProjDim, c.hiddenSize],
    shapeWhy: "[word_embed_proj_dim, hidden_size]",
    when: projected,
    optional: true,
    why: "maps the last hidden state to the embedding width when they differ (opt-350m)",
  },
  projectIn: {
    kind: "matrix",
    hf: "decoder.project_in",
    shape: (c: OptConfig) => [c.hiddenSize, c.wordEmbedProjDim],
    shapeWhy: "[hidden_size, word_embed_proj_dim]",
    when: projected,
    optional: true,
    why: "maps token embeddings to the model width when they differ (opt-350m)",
  },
  finalLayerNorm: {
    kind: "layerNorm",
    hf: "decoder.final_layer_norm",
    shape: hidden,
    shapeWhy: "[hidden_size]",
    when: hasFinalLayerNorm,
    optional: true,
    why: "normalises the last hidden state of pre-LN models (post-LN opt-350m has none)",
  },
  lmHead: {
    kind: "matrix",
    hf: "lm_head",
    shape: (c: OptConfig) => [c.vocabSize, c.wordEmbedProjDim],
    shapeWhy: "[vocab_size, word_embed_proj_dim]",
    why: "logits; the token embedding itself when tie_word_embeddings (stored only untied)",
  },
} as const satisfies Record<string, ParamDecl>;

/**
 * The groups of one decoder layer (`decoder.layers.{i}.*`), in the order Hugging Face's
 * `OPTDecoderLayer` declares them. Pre-LN layers normalise before each block, post-LN
 * (opt-350m) after each residual add.
 *
 * @example
 * ```ts
 * import { LAYER_PARAMS } from "./tree.ts";
 * console.log(LAYER_PARAMS.qProj.hf); // "self_attn.q_proj"
 * ```
 */
export const LAYER_PARAMS = {
  kProj: {
    kind: "linear",
    hf: "self_attn.k_proj",
    shape: square,
    shapeWhy: SQUARE_WHY,
    why: "attention keys (cached per column)",
  },
  vProj: {
    kind: "linear",
    hf: "self_attn.v_proj",
    shape: square,
    shapeWhy: SQUARE_WHY,
    why: "attention values (cached per column)",
  },
  qProj: {
    kind: "linear",
    hf: "self_attn.q_proj",
    shape: square,
    shapeWhy: SQUARE_WHY,
    why: "attention queries (scaled by head_dim ** -0.5)",
  },
  outProj: {
    kind: "linear",
    hf: "self_attn.out_proj",
    shape: square,
    shapeWhy: SQUARE_WHY,
    why: "mixes the heads' outputs back into the residual stream",
  },
  selfAttnLayerNorm: {
    kind: "layerNorm",
    hf: "self_attn_layer_norm",
    shape: hidden,
    shapeWhy: "[hidden_size]",
    why: "LayerNorm of the attention block (before it pre-LN, after the residual post-LN)",
  },
  fc1: {
    kind: "linear",
    hf: "fc1",
    shape: (c: OptConfig) => [c.ffnDim, c.hiddenSize],
    shapeWhy: "[ffn_dim, hidden_size]",
    why: "MLP up-projection (ReLU after)",
  },
  fc2: {
    kind: "linear",
    hf: "fc2",
    shape: (c: OptConfig) => [c.hiddenSize, c.ffnDim],
    shapeWhy: "[hidden_size, ffn_dim]",
    why: "MLP down-projection into the residual stream",
  },
  finalLayerNorm: {
    kind: "layerNorm",
    hf: "final_layer_norm",
    shape: hidden,
    shapeWhy: "[hidden_size]",
    why: "LayerNorm of the MLP block (before it pre-LN, after the residual post-LN)",
  },
} as const satisfies Record<string, ParamDecl>;

/** The type of {@linkcode MODEL_PARAMS} (each group's kind as a literal). */
export type ModelDecls = typeof MODEL_PARAMS;
/** The type of {@linkcode LAYER_PARAMS} (each group's kind as a literal). */
export type LayerDecls = typeof LAYER_PARAMS;

/** A model-level group's field name (`embedTokens`, ..., `lmHead`). */
export type ModelParamName = keyof ModelDecls;
/** A per-layer group's field name (`qProj`, ..., `finalLayerNorm`). */
export type LayerParamName = keyof LayerDecls;

/** The element type a tree holds for each kind of group. */
export interface ParamKinds {
  /** An embedding table. */
  table: unknown;
  /** A bias-free linear map. */
  matrix: unknown;
  /** A linear map with its bias. */
  linear: unknown;
  /** A LayerNorm's scale and shift. */
  layerNorm: unknown;
}

/** The element types of a checkpoint's tree ({@linkcode OptWeights}). */
export interface TensorKinds extends ParamKinds {
  /** The stored table. */
  table: Tensor;
  /** The stored `[out, in]` weight. */
  matrix: Tensor;
  /** Weight and optional bias. */
  linear: LinearWeights;
  /** Weight and bias. */
  layerNorm: LayerNormWeights;
}

/** One decoder layer's groups, each holding the element type of its kind. */
export type OptLayerTree<K extends ParamKinds> = {
  [P in LayerParamName]: K[LayerDecls[P]["kind"]];
};

/** The model-level groups every config has (`embedTokens`, `embedPositions`, `lmHead`). */
export type RequiredModelParam = {
  [P in ModelParamName]: ModelDecls[P] extends { optional: true } ? never : P;
}[ModelParamName];
/** The model-level groups only some configs have (`projectIn`, `projectOut`, `finalLayerNorm`). */
export type OptionalModelParam = Exclude<ModelParamName, RequiredModelParam>;

/** The whole OPT parameter tree over element types `K`, with its configuration. */
export type OptTree<K extends ParamKinds> =
  & {
    /** The configuration the shapes follow. */
    config: OptConfig;
    /** `numHiddenLayers` layers. */
    layers: OptLayerTree<K>[];
  }
  & { [P in RequiredModelParam]: K[ModelDecls[P]["kind"]] }
  & { [P in OptionalModelParam]?: K[ModelDecls[P]["kind"]] };

/** Where a group sits in the tree, as the walks hand it to builders and mappers. */
export interface ParamSite {
  /** Field name in the tree (`qProj`, `lmHead`, ...). */
  key: ModelParamName | LayerParamName;
  /** The layer, for per-layer groups. */
  layer?: number;
  /** The declaration. */
  decl: ParamDecl;
  /** Full Hugging Face name without `.weight`/`.bias`, e.g. `decoder.layers.3.fc1`. */
  name: string;
  /**
   * The name to read the values from: `name`, except for a tied LM head, which reads
   * `decoder.embed_tokens`.
   */
  source: string;
  /** Whether this is an LM head tied to the token embedding. */
  tied: boolean;
  /** The group's shape for this config (`[out, in]`, `[rows, cols]` or `[d]`). */
  shape: number[];
}

/**
 * Every group a configuration has, in checkpoint order (decoder groups, layers, LM head),
 * produced lazily: a walk that stops at the first missing tensor never lists the layers
 * after it (a config claiming a billion layers fails at the first absent one).
 *
 * @example
 * ```ts
 * import { walkSites } from "./tree.ts";
 * import { OPT_SHAPES } from "./config.ts";
 * for (const site of walkSites(OPT_SHAPES["opt-125m"])) {
 *   console.log(site.name); // "decoder.embed_tokens"
 *   break;
 * }
 * ```
 */
export function* walkSites(config: OptConfig): Generator<ParamSite> {
  const model = (key: ModelParamName): ParamSite | undefined => {
    const decl: ParamDecl = MODEL_PARAMS[key];
    if (decl.when && !decl.when(config)) return undefined;
    const tied = key === "lmHead" && config.tieWordEmbeddings;
    const source = tied ? MODEL_PARAMS.embedTokens.hf : decl.hf;
    return { key, decl, name: decl.hf, source, tied, shape: decl.shape(config) };
  };
  const keys = Object.keys(MODEL_PARAMS) as ModelParamName[];
  for (const key of keys) {
    const site = key === "lmHead" ? undefined : model(key);
    if (site) yield site;
  }
  const layerKeys = Object.keys(LAYER_PARAMS) as LayerParamName[];
  for (let layer = 0; layer < config.numHiddenLayers; layer++) {
    for (const key of layerKeys) {
      const decl: ParamDecl = LAYER_PARAMS[key];
      if (decl.when && !decl.when(config)) continue;
      const name = `decoder.layers.${layer}.${decl.hf}`;
      yield { key, layer, decl, name, source: name, tied: false, shape: decl.shape(config) };
    }
  }
  const head = model("lmHead");
  if (head) yield head;
}

/**
 * Every group a configuration has, in checkpoint order, as a list (see
 * {@linkcode walkSites}).
 *
 * @example
 * ```ts
 * import { paramSites } from "./tree.ts";
 * import { OPT_SHAPES } from "./config.ts";
 * console.log(paramSites(OPT_SHAPES["opt-350m"]).some((s) => s.key === "finalLayerNorm" && s.layer === undefined)); // false
 * ```
 */
export function paramSites(config: OptConfig): ParamSite[] {
  return [...walkSites(config)];
}

/** One tensor an OPT configuration implies, by normalised name. */
export interface OptTensorSpec {
  /** Normalised name, e.g. `decoder.layers.0.fc1.weight` or `lm_head.weight`. */
  name: string;
  /** Expected shape. */
  shape: number[];
  /** What the shape follows from, for error messages. */
  why: string;
  /** The group's kind (absent in hand-made specs). */
  kind?: ParamKind;
  /** Whether the tensor is the group's weight or its bias (absent in hand-made specs). */
  part?: "weight" | "bias";
}

/**
 * The tensors of one group: `weight` (and `bias` for a linear map with `enable_bias`, or a
 * LayerNorm); none for a LayerNorm without `layer_norm_elementwise_affine`.
 *
 * @example
 * ```ts
 * import { paramSites, siteTensors } from "./tree.ts";
 * import { OPT_SHAPES } from "./config.ts";
 * const fc1 = paramSites(OPT_SHAPES["opt-125m"]).find((s) => s.key === "fc1")!;
 * console.log(siteTensors(OPT_SHAPES["opt-125m"], fc1).map((t) => t.name));
 * // ["decoder.layers.0.fc1.weight", "decoder.layers.0.fc1.bias"]
 * ```
 */
export function siteTensors(config: OptConfig, site: ParamSite): OptTensorSpec[] {
  const { kind, shapeWhy } = site.decl;
  const spec = (part: "weight" | "bias", shape: number[], why: string): OptTensorSpec => ({
    name: `${site.name}.${part}`,
    shape,
    why,
    kind,
    part,
  });
  if (kind === "layerNorm") {
    if (!config.layerNormElementwiseAffine) return [];
    return [spec("weight", site.shape, shapeWhy), spec("bias", site.shape, shapeWhy)];
  }
  const out = [spec("weight", site.shape, shapeWhy)];
  if (kind === "linear" && config.enableBias) {
    out.push(spec("bias", [site.shape[0]], `[${shapeWhy.slice(1).split(",")[0]}]`));
  }
  return out;
}

/**
 * Lists every tensor an OPT configuration implies, with normalised names and shapes, in
 * the order Hugging Face's `OPTForCausalLM` declares them. `lm_head.weight` is listed only
 * when `withLmHead` is true (an untied head, or a tied one stored explicitly).
 *
 * @example
 * ```ts
 * import { optTensorSpecs } from "./tree.ts";
 * import { OPT_SHAPES } from "./config.ts";
 * console.log(optTensorSpecs(OPT_SHAPES["opt-350m"]).length); // 2 + 2 + 24 * 16 = 388
 * ```
 */
export function optTensorSpecs(config: OptConfig, withLmHead = false): OptTensorSpec[] {
  const specs: OptTensorSpec[] = [];
  for (const site of walkSites(config)) {
    if (site.key === "lmHead" && !withLmHead) continue;
    const tensors = siteTensors(config, site);
    if (site.tied) tensors.forEach((t) => (t.name = "lm_head.weight"));
    specs.push(...tensors);
  }
  return specs;
}

/** How a consumer makes its element of each kind from a {@linkcode ParamSite}. */
export interface TreeBuilder<K extends ParamKinds> {
  /** An embedding table. */
  table(site: ParamSite): K["table"];
  /** A bias-free linear map (a tied LM head has `site.tied` and reads `site.source`). */
  matrix(site: ParamSite): K["matrix"];
  /** A linear map with its bias. */
  linear(site: ParamSite): K["linear"];
  /** A LayerNorm. */
  layerNorm(site: ParamSite): K["layerNorm"];
}

/** How a consumer turns each element of one tree into another's. */
export interface TreeMapper<A extends ParamKinds, B extends ParamKinds> {
  /** An embedding table. */
  table(value: A["table"], site: ParamSite): B["table"];
  /** A bias-free linear map. */
  matrix(value: A["matrix"], site: ParamSite): B["matrix"];
  /** A linear map with its bias. */
  linear(value: A["linear"], site: ParamSite): B["linear"];
  /** A LayerNorm. */
  layerNorm(value: A["layerNorm"], site: ParamSite): B["layerNorm"];
}

type AnyTree = {
  config: OptConfig;
  layers: Record<string, unknown>[];
  [key: string]: unknown;
};

function place(tree: AnyTree, site: ParamSite, value: unknown): void {
  if (site.layer === undefined) tree[site.key] = value;
  else (tree.layers[site.layer] ??= {})[site.key] = value;
}

/**
 * Builds a tree for a configuration by calling the builder for every group it has, in
 * checkpoint order (so the first missing tensor a loader reports is the first in the file).
 *
 * @example
 * ```ts
 * import { buildOptTree } from "./tree.ts";
 * import { OPT_SHAPES } from "./config.ts";
 * const names = buildOptTree(OPT_SHAPES["opt-125m"], {
 *   table: (s) => s.name,
 *   matrix: (s) => s.source,
 *   linear: (s) => s.name,
 *   layerNorm: (s) => s.name,
 * });
 * console.log(names.layers[0].qProj, names.lmHead); // "decoder.layers.0.self_attn.q_proj" "decoder.embed_tokens"
 * ```
 */
export function buildOptTree<K extends ParamKinds>(
  config: OptConfig,
  builder: TreeBuilder<K>,
): OptTree<K> {
  const tree: AnyTree = { config, layers: [] };
  for (const site of walkSites(config)) place(tree, site, builder[site.decl.kind](site));
  for (let i = 0; i < config.numHiddenLayers; i++) tree.layers[i] ??= {};
  return tree as unknown as OptTree<K>;
}

/**
 * Maps every group of a tree to another element type (same structure, same config). The
 * mapper sees a tied LM head with `site.tied` (its value is then usually the embedding's).
 *
 * @example
 * ```ts
 * import { loadWeightsSync } from "./checkpoint.ts";
 * import { mapOptTree, type ParamKinds, type TensorKinds } from "./tree.ts";
 * interface Shapes extends ParamKinds {
 *   table: readonly number[];
 *   matrix: readonly number[];
 *   linear: readonly number[];
 *   layerNorm: readonly number[];
 * }
 * const w = loadWeightsSync("bundled/models/tiny-opt-e2e");
 * const shapes = mapOptTree<TensorKinds, Shapes>(w, {
 *   table: (t) => t.shape,
 *   matrix: (t) => t.shape,
 *   linear: (l) => l.weight.shape,
 *   layerNorm: (n) => n.weight.shape,
 * });
 * console.log(shapes.layers[0].fc1); // [512, 128]
 * ```
 */
export function mapOptTree<A extends ParamKinds, B extends ParamKinds>(
  tree: OptTree<A>,
  mapper: TreeMapper<A, B>,
): OptTree<B> {
  const from = tree as unknown as AnyTree;
  const out: AnyTree = { config: tree.config, layers: tree.layers.map(() => ({})) };
  for (const site of walkSites(tree.config)) {
    const value = site.layer === undefined ? from[site.key] : from.layers[site.layer][site.key];
    if (value === undefined) continue;
    const map = mapper[site.decl.kind] as (v: unknown, s: ParamSite) => unknown;
    place(out, site, map(value, site));
  }
  return out as unknown as OptTree<B>;
}

/**
 * The groups of a tree with their sites, in checkpoint order (absent optional groups
 * skipped).
 *
 * @example
 * ```ts
 * import { loadWeightsSync } from "./checkpoint.ts";
 * import { type TensorKinds, treeEntries } from "./tree.ts";
 * const w = loadWeightsSync("bundled/models/tiny-opt-e2e");
 * console.log(treeEntries<TensorKinds>(w).length); // 2 + 1 + 12 * 8 + 1 = 100
 * ```
 */
export function treeEntries<K extends ParamKinds>(
  tree: OptTree<K>,
): { site: ParamSite; value: K[ParamKind] }[] {
  const from = tree as unknown as AnyTree;
  const out: { site: ParamSite; value: K[ParamKind] }[] = [];
  for (const site of walkSites(tree.config)) {
    const value = site.layer === undefined ? from[site.key] : from.layers[site.layer][site.key];
    if (value !== undefined) out.push({ site, value: value as K[ParamKind] });
  }
  return out;
}
