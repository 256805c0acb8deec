/**
 * A model ready to generate: weights on a backend plus OPT's tokenizer.
 *
 * @module
 */
import { loadCheckpoint, type ResolveModelOptions } from "../model/hub.ts";
import type { LoadedWeights } from "../model/checkpoint.ts";
import type { OptConfig } from "../model/types.ts";
import { loadTokenizer, type OptTokenizer } from "../tokenizer/mod.ts";
import { type BackendName, createBackend } from "../backend/mod.ts";
import type { Backend } from "../backend/types.ts";
import { checkFiniteWeights } from "../model/finite.ts";

/** A loaded model: configuration, tokenizer and a backend holding the weights. */
export interface Model {
  /** Where it came from: a folder or a hub id. */
  source: string;
  /** The checkpoint folder read. */
  dir: string;
  /** For a hub id: the commit read (or the revision asked for when no commit is known). */
  revision?: string;
  /** The OPT configuration. */
  config: OptConfig;
  /** OPT's tokenizer (BOS `</s>` prepended by `encode`). */
  tokenizer: OptTokenizer;
  /** The backend running it. */
  backend: Backend;
  /** The weights as loaded (lazy tensors), e.g. to build a second backend. */
  weights: LoadedWeights;
  /** Frees device memory. */
  dispose(): void;
}

/** Options of {@linkcode loadModel}. */
export interface LoadModelOptions extends ResolveModelOptions {
  /** `"auto"` (default): WebGPU when an adapter exists, else the CPU. */
  backend?: BackendName;
  /** Receives one-line notes (backend fallback). Default: print to stderr. */
  onNote?: (note: string) => void;
}

/** A tokenizer that does not fit the model; the message names the folder and sizes. */
export class ModelMismatchError extends Error {
  /** Makes the error. */
  constructor(message: string) {
    super(message);
    this.name = "ModelMismatchError";
  }
}

/**
 * Refuses a tokenizer whose ids do not fit the model's embedding rows, or one too small to
 * be a byte-level BPE (fewer than its 256 byte symbols): either gives wrong text silently.
 */
function checkTokenizerFits(tokenizer: OptTokenizer, config: OptConfig, dir: string): void {
  if (tokenizer.vocabSize > config.vocabSize) {
    throw new ModelMismatchError(
      `the tokenizer in ${dir} has ${tokenizer.vocabSize} ids but config.json's vocab_size ` +
        `is ${config.vocabSize}: its ids would index past the embedding; use the model's own ` +
        `tokenizer files`,
    );
  }
  if (tokenizer.vocabSize < 256) {
    throw new ModelMismatchError(
      `the tokenizer in ${dir} has only ${tokenizer.vocabSize} ids, fewer than the 256 byte ` +
        `symbols of a byte-level BPE, for a model of ${config.vocabSize} rows: not this ` +
        `model's tokenizer`,
    );
  }
}

/**
 * Loads a checkpoint folder or a Hugging Face hub id (from the local cache, downloading
 * when allowed) with its tokenizer onto a backend.
 *
 * @example
 * ```ts
 * const model = await loadModel("bundled/models/tiny-opt-e2e", { backend: "cpu" });
 * console.log(model.config.numHiddenLayers); // 12
 * model.dispose();
 * ```
 */
export async function loadModel(idOrDir: string, options: LoadModelOptions = {}): Promise<Model> {
  const { resolved, weights } = await loadCheckpoint(idOrDir, options);
  // Once per load: a NaN or Infinity in any weight is an error naming the tensor, never
  // silent garbage that differs between backends (model/finite.ts; cost in its docs).
  checkFiniteWeights(weights);
  const tokenizer = await loadTokenizer(resolved.dir);
  checkTokenizerFits(tokenizer, weights.config, resolved.dir);
  const backend = await createBackend(weights, {
    backend: options.backend,
    onNote: options.onNote ?? ((n) => console.error(`note: ${n}`)),
  });
  return {
    source: idOrDir,
    dir: resolved.dir,
    ...(resolved.repoId ? { revision: resolved.commit ?? resolved.revision } : {}),
    config: weights.config,
    tokenizer,
    backend,
    weights,
    dispose: () => backend.dispose(),
  };
}
