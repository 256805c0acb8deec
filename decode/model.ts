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

/** A loaded model: configuration, tokenizer and a backend holding the weights. */
export interface Model {
  /** Where it came from: a folder or a hub id. */
  source: string;
  /** The checkpoint folder read. */
  dir: string;
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
  const tokenizer = await loadTokenizer(resolved.dir);
  const backend = await createBackend(weights, {
    backend: options.backend,
    onNote: options.onNote ?? ((n) => console.error(`note: ${n}`)),
  });
  return {
    source: idOrDir,
    dir: resolved.dir,
    config: weights.config,
    tokenizer,
    backend,
    weights,
    dispose: () => backend.dispose(),
  };
}
