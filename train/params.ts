/**
 * Trainable parameters: one flat array per checkpoint tensor, by normalised Hugging Face name
 * (`decoder.layers.0.self_attn.q_proj.weight`, ...), in the order `optTensorSpecs` lists
 * them. The same {@linkcode ParamSet} shape holds the f32 master weights, their gradients
 * and AdamW's two moment buffers. The CPU reference works in f32 (training) or f64 (the
 * finite-difference check), so every array is a {@linkcode FloatArray}.
 *
 * {@linkcode modelView} gives structured references into a set (the shapes a forward pass
 * needs) without copying.
 *
 * @module
 */
import { optTensorSpecs } from "../model/checkpoint.ts";
import { float32ToBytes, memoryTensor, tensorToFloat32 } from "../model/safetensors.ts";
import type { LinearWeights, OptConfig, OptWeights, Tensor } from "../model/types.ts";

/** A float buffer: f32 for training, f64 for exact gradient checks. */
export type FloatArray = Float32Array | Float64Array;

/** Element type of a parameter set. */
export type Precision = "f32" | "f64";

/**
 * A zeroed array of `n` elements of the same type as `like`.
 *
 * @example
 * ```ts
 * allocLike(new Float64Array(1), 3); // Float64Array [0, 0, 0]
 * ```
 */
export function allocLike(like: FloatArray, n: number): FloatArray {
  return like instanceof Float64Array ? new Float64Array(n) : new Float32Array(n);
}

/**
 * A zeroed array of `n` elements of a precision.
 *
 * @example
 * ```ts
 * allocFloat("f64", 2); // Float64Array [0, 0]
 * ```
 */
export function allocFloat(precision: Precision, n: number): FloatArray {
  return precision === "f64" ? new Float64Array(n) : new Float32Array(n);
}

/** One trainable tensor. */
export interface ParamSpec {
  /** Normalised name, e.g. `decoder.layers.0.fc1.weight`. */
  name: string;
  /** Shape; linear weights are `[out, in]`. */
  shape: number[];
  /** Elements. */
  size: number;
  /**
   * Whether AdamW applies weight decay: yes for linear weights and embeddings, no for
   * biases and LayerNorm weights (as Hugging Face's `Trainer` does).
   */
  decay: boolean;
}

/**
 * The trainable tensors of a configuration, in checkpoint order. `lm_head.weight` appears
 * only for an untied head.
 *
 * @example
 * ```ts
 * import { TINY_OPT_SHAPE } from "../model/fixture.ts";
 * console.log(paramSpecs(TINY_OPT_SHAPE)[0].name); // "decoder.embed_tokens.weight"
 * ```
 */
export function paramSpecs(config: OptConfig): ParamSpec[] {
  return optTensorSpecs(config, !config.tieWordEmbeddings).map((s) => ({
    name: s.name,
    shape: [...s.shape],
    size: s.shape.reduce((a, b) => a * b, 1),
    decay: !(s.name.endsWith(".bias") || s.name.includes("layer_norm")),
  }));
}

/** Named flat tensors of one model (weights, gradients or optimizer moments). */
export class ParamSet {
  /** The configuration the shapes follow. */
  readonly config: OptConfig;
  /** The tensors, in checkpoint order. */
  readonly specs: readonly ParamSpec[];
  /** `arrays[i]` holds `specs[i]`. */
  readonly arrays: FloatArray[];
  #byName: Map<string, number>;

  /**
   * Wraps arrays (one per spec, lengths checked), or allocates zeros when `arrays` is
   * omitted.
   *
   * @example
   * ```ts
   * import { TINY_OPT_SHAPE } from "../model/fixture.ts";
   * const grads = new ParamSet(TINY_OPT_SHAPE, "f32");
   * console.log(grads.get("decoder.embed_tokens.weight").length); // 96 * 32
   * ```
   */
  constructor(config: OptConfig, precision: Precision, arrays?: FloatArray[]) {
    this.config = config;
    this.specs = paramSpecs(config);
    this.#byName = new Map(this.specs.map((s, i) => [s.name, i]));
    if (arrays) {
      if (arrays.length !== this.specs.length) {
        throw new RangeError(`expected ${this.specs.length} tensors, got ${arrays.length}`);
      }
      arrays.forEach((a, i) => {
        const s = this.specs[i];
        if (a.length !== s.size) {
          throw new RangeError(
            `tensor ${s.name}: ${a.length} values given, shape [${s.shape}] needs ${s.size}`,
          );
        }
        if ((precision === "f64") !== (a instanceof Float64Array)) {
          throw new TypeError(`tensor ${s.name} is not ${precision}`);
        }
      });
      this.arrays = arrays;
    } else {
      this.arrays = this.specs.map((s) => allocFloat(precision, s.size));
    }
  }

  /** `"f32"` or `"f64"`. */
  get precision(): Precision {
    return this.arrays[0] instanceof Float64Array ? "f64" : "f32";
  }

  /** Total elements. */
  get size(): number {
    return this.specs.reduce((a, s) => a + s.size, 0);
  }

  /**
   * The array of a tensor, by normalised name.
   *
   * @throws {RangeError} naming the tensor when the model has no such tensor.
   */
  get(name: string): FloatArray {
    const i = this.#byName.get(name);
    if (i === undefined) throw new RangeError(`the model has no trainable tensor ${name}`);
    return this.arrays[i];
  }

  /** Whether the set has a tensor of this name. */
  has(name: string): boolean {
    return this.#byName.has(name);
  }

  /** A zeroed set of the same shape (optionally another precision). */
  zerosLike(precision: Precision = this.precision): ParamSet {
    return new ParamSet(this.config, precision);
  }

  /** A deep copy (optionally converted to another precision). */
  clone(precision: Precision = this.precision): ParamSet {
    return new ParamSet(
      this.config,
      precision,
      this.arrays.map((a) => (precision === "f64" ? Float64Array.from(a) : Float32Array.from(a))),
    );
  }

  /** Sets every element to 0. */
  zero(): void {
    for (const a of this.arrays) a.fill(0);
  }
}

/**
 * Reads a model's weights into a parameter set (f16/bf16 widen exactly).
 *
 * @example
 * ```ts
 * import { loadWeightsSync } from "../model/mod.ts";
 * const params = paramsFromWeights(loadWeightsSync("bundled/models/tiny-opt-e2e"));
 * console.log(params.size); // 8.8 M
 * ```
 */
export function paramsFromWeights(weights: OptWeights, precision: Precision = "f32"): ParamSet {
  const config = weights.config;
  if (!config.layerNormElementwiseAffine) {
    // Parameter-free LayerNorms would need constants outside the set; released OPT has none.
    throw new RangeError(
      "training needs layer_norm_elementwise_affine = true (every released OPT has it)",
    );
  }
  const byName = new Map<string, Tensor>();
  const add = (t: Tensor | undefined) => t && byName.set(t.name, t);
  add(weights.embedTokens);
  add(weights.embedPositions);
  add(weights.projectIn);
  add(weights.projectOut);
  add(weights.finalLayerNorm?.weight);
  add(weights.finalLayerNorm?.bias);
  if (weights.lmHead !== weights.embedTokens) byName.set("lm_head.weight", weights.lmHead);
  for (const l of weights.layers) {
    for (
      const t of [
        l.selfAttnLayerNorm.weight,
        l.selfAttnLayerNorm.bias,
        l.qProj.weight,
        l.qProj.bias,
        l.kProj.weight,
        l.kProj.bias,
        l.vProj.weight,
        l.vProj.bias,
        l.outProj.weight,
        l.outProj.bias,
        l.finalLayerNorm.weight,
        l.finalLayerNorm.bias,
        l.fc1.weight,
        l.fc1.bias,
        l.fc2.weight,
        l.fc2.bias,
      ]
    ) add(t);
  }
  const specs = paramSpecs(config);
  const arrays = specs.map((s) => {
    const t = byName.get(s.name);
    if (!t) throw new RangeError(`the weights have no tensor ${s.name}`);
    const f = tensorToFloat32(t);
    return precision === "f64" ? Float64Array.from(f) : f;
  });
  return new ParamSet(config, precision, arrays);
}

/**
 * The weights of a parameter set as {@linkcode OptWeights} (F32 tensors in memory), so any
 * inference backend can run the model being trained without a checkpoint on disk.
 *
 * @example
 * ```ts
 * import { createCpuBackend } from "../backend/cpu/backend.ts";
 * // const backend = createCpuBackend(weightsFromParams(params));
 * ```
 */
export function weightsFromParams(params: ParamSet): OptWeights {
  const t = (name: string): Tensor => {
    const spec = params.specs.find((s) => s.name === name)!;
    const a = params.get(name);
    return memoryTensor(
      name,
      "F32",
      spec.shape,
      float32ToBytes(a instanceof Float32Array ? a : Float32Array.from(a), "F32"),
    );
  };
  const opt = (name: string) => (params.has(name) ? t(name) : undefined);
  const lin = (n: string): LinearWeights => ({ weight: t(`${n}.weight`), bias: opt(`${n}.bias`) });
  const ln = (n: string) => ({ weight: t(`${n}.weight`), bias: t(`${n}.bias`) });
  const c = params.config;
  const embedTokens = t("decoder.embed_tokens.weight");
  return {
    config: c,
    embedTokens,
    embedPositions: t("decoder.embed_positions.weight"),
    projectIn: opt("decoder.project_in.weight"),
    projectOut: opt("decoder.project_out.weight"),
    finalLayerNorm: params.has("decoder.final_layer_norm.weight")
      ? ln("decoder.final_layer_norm")
      : undefined,
    lmHead: params.has("lm_head.weight") ? t("lm_head.weight") : embedTokens,
    layers: Array.from({ length: c.numHiddenLayers }, (_, i) => {
      const n = `decoder.layers.${i}`;
      return {
        selfAttnLayerNorm: ln(`${n}.self_attn_layer_norm`),
        qProj: lin(`${n}.self_attn.q_proj`),
        kProj: lin(`${n}.self_attn.k_proj`),
        vProj: lin(`${n}.self_attn.v_proj`),
        outProj: lin(`${n}.self_attn.out_proj`),
        finalLayerNorm: ln(`${n}.final_layer_norm`),
        fc1: lin(`${n}.fc1`),
        fc2: lin(`${n}.fc2`),
      };
    }),
  };
}

/** A linear map's arrays: `w[out, in]`, `b[out]`. */
export interface LinearArrays {
  /** `[out, in]`. */
  w: FloatArray;
  /** `[out]`; absent without biases. */
  b?: FloatArray;
  /** Output features. */
  out: number;
  /** Input features. */
  in: number;
}

/** A LayerNorm's arrays, `[d]` each. */
export interface LnArrays {
  /** Scale. */
  w: FloatArray;
  /** Shift. */
  b: FloatArray;
}

/** One decoder layer's arrays. */
export interface LayerArrays {
  /** Attention LayerNorm. */
  ln1: LnArrays;
  /** Query projection `[d, d]`. */
  q: LinearArrays;
  /** Key projection. */
  k: LinearArrays;
  /** Value projection. */
  v: LinearArrays;
  /** Output projection. */
  o: LinearArrays;
  /** MLP LayerNorm. */
  ln2: LnArrays;
  /** `[f, d]`. */
  fc1: LinearArrays;
  /** `[d, f]`. */
  fc2: LinearArrays;
}

/** Structured references into a {@linkcode ParamSet} (no copies). */
export interface ModelArrays {
  /** The configuration. */
  config: OptConfig;
  /** `[V, dp]`. */
  embed: FloatArray;
  /** `[maxPos + 2, d]`. */
  pos: FloatArray;
  /** `dp -> d`, bias-free (opt-350m style). */
  projIn?: LinearArrays;
  /** `d -> dp`, bias-free. */
  projOut?: LinearArrays;
  /** Decoder final LayerNorm (pre-LN models). */
  finalLn?: LnArrays;
  /** `[V, dp]`; the same array as `embed` when tied. */
  head: FloatArray;
  /** The decoder layers. */
  layers: LayerArrays[];
}

/**
 * Structured references into a parameter set (weights or gradients alike).
 *
 * @example
 * ```ts
 * import { TINY_OPT_SHAPE } from "../model/fixture.ts";
 * const m = modelView(new ParamSet(TINY_OPT_SHAPE, "f64"));
 * console.log(m.layers[0].fc1.out, m.head === m.embed); // 64 true
 * ```
 */
export function modelView(p: ParamSet): ModelArrays {
  const c = p.config;
  const d = c.hiddenSize, f = c.ffnDim, dp = c.wordEmbedProjDim;
  const get = (n: string) => p.get(n);
  const opt = (n: string) => (p.has(n) ? p.get(n) : undefined);
  const lin = (n: string, out: number, inp: number): LinearArrays => ({
    w: get(`${n}.weight`),
    b: opt(`${n}.bias`),
    out,
    in: inp,
  });
  const ln = (n: string): LnArrays => ({ w: get(`${n}.weight`), b: get(`${n}.bias`) });
  const embed = get("decoder.embed_tokens.weight");
  return {
    config: c,
    embed,
    pos: get("decoder.embed_positions.weight"),
    projIn: p.has("decoder.project_in.weight")
      ? { w: get("decoder.project_in.weight"), out: d, in: dp }
      : undefined,
    projOut: p.has("decoder.project_out.weight")
      ? { w: get("decoder.project_out.weight"), out: dp, in: d }
      : undefined,
    finalLn: p.has("decoder.final_layer_norm.weight") ? ln("decoder.final_layer_norm") : undefined,
    head: p.has("lm_head.weight") ? get("lm_head.weight") : embed,
    layers: Array.from({ length: c.numHiddenLayers }, (_, i) => {
      const n = `decoder.layers.${i}`;
      return {
        ln1: ln(`${n}.self_attn_layer_norm`),
        q: lin(`${n}.self_attn.q_proj`, d, d),
        k: lin(`${n}.self_attn.k_proj`, d, d),
        v: lin(`${n}.self_attn.v_proj`, d, d),
        o: lin(`${n}.self_attn.out_proj`, d, d),
        ln2: ln(`${n}.final_layer_norm`),
        fc1: lin(`${n}.fc1`, f, d),
        fc2: lin(`${n}.fc2`, d, f),
      };
    }),
  };
}
