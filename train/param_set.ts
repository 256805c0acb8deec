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
import {
  buildOptTree,
  type OptLayerTree,
  optTensorSpecs,
  type OptTree,
  type ParamKinds,
  type ParamSite,
  type TensorKinds,
  treeEntries,
} from "../model/tree.ts";
import { float32ToBytes, memoryTensor, tensorToFloat32 } from "../model/safetensors.ts";
import type { OptConfig, OptWeights, Tensor } from "../model/types.ts";

import { allocLike, type FloatArray } from "../kernels/float.ts";
export { allocLike, type FloatArray };

/** Element type of a parameter set. */
export type Precision = "f32" | "f64";

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
    decay: s.part === "weight" && s.kind !== "layerNorm",
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
  for (const { site, value } of treeEntries<TensorKinds>(weights)) {
    if (site.tied) continue; // the embedding itself
    if ("shape" in value) byName.set(`${site.name}.weight`, value);
    else {
      byName.set(`${site.name}.weight`, value.weight);
      if (value.bias) byName.set(`${site.name}.bias`, value.bias);
    }
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
  const tensors = new Map<string, Tensor>(); // one object per name: a tied head is the embedding
  const t = (name: string): Tensor => {
    if (tensors.has(name)) return tensors.get(name)!;
    const spec = params.specs.find((s) => s.name === name)!;
    const a = params.get(name);
    const tensor = memoryTensor(
      name,
      "F32",
      spec.shape,
      float32ToBytes(a instanceof Float32Array ? a : Float32Array.from(a), "F32"),
    );
    tensors.set(name, tensor);
    return tensor;
  };
  const opt = (name: string) => (params.has(name) ? t(name) : undefined);
  return buildOptTree<TensorKinds>(params.config, {
    table: (s) => t(`${s.source}.weight`),
    matrix: (s) => t(`${s.source}.weight`),
    linear: (s) => ({ weight: t(`${s.name}.weight`), bias: opt(`${s.name}.bias`) }),
    layerNorm: (s) => ({ weight: t(`${s.name}.weight`), bias: t(`${s.name}.bias`) }),
  });
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

/** The element types of a parameter set's views, one per kind of parameter group. */
export interface ArrayKinds extends ParamKinds {
  /** An embedding table `[rows, cols]`. */
  table: FloatArray;
  /** A bias-free linear map (`project_in`, `project_out`, the LM head). */
  matrix: LinearArrays;
  /** A linear map with its bias. */
  linear: LinearArrays;
  /** A LayerNorm. */
  layerNorm: LnArrays;
}

/** One decoder layer's arrays (fields as in `model/tree.ts`). */
export type LayerArrays = OptLayerTree<ArrayKinds>;

/**
 * Structured references into a {@linkcode ParamSet} (no copies): the parameter tree of
 * `model/tree.ts`; a tied `lmHead.w` is the same array as `embedTokens`.
 */
export type ModelArrays = OptTree<ArrayKinds>;

/**
 * Structured references into a parameter set (weights or gradients alike).
 *
 * @example
 * ```ts
 * import { TINY_OPT_SHAPE } from "../model/fixture.ts";
 * const m = modelView(new ParamSet(TINY_OPT_SHAPE, "f64"));
 * console.log(m.layers[0].fc1.out, m.lmHead.w === m.embedTokens); // 64 true
 * ```
 */
export function modelView(p: ParamSet): ModelArrays {
  const opt = (n: string) => (p.has(n) ? p.get(n) : undefined);
  const lin = (s: ParamSite): LinearArrays => ({
    w: p.get(`${s.source}.weight`),
    b: opt(`${s.source}.bias`),
    out: s.shape[0],
    in: s.shape[1],
  });
  return buildOptTree<ArrayKinds>(p.config, {
    table: (s) => p.get(`${s.source}.weight`),
    matrix: lin,
    linear: lin,
    layerNorm: (s) => ({ w: p.get(`${s.name}.weight`), b: p.get(`${s.name}.bias`) }),
  });
}
