/**
 * The generation engine: load a model onto a backend, then {@linkcode generate} under any
 * exit policy of `schedule/` with column-wise batching and a plan-sized KV cache.
 *
 * @example
 * ```ts
 * import { generate, loadModel } from "./mod.ts";
 * const model = await loadModel("bundled/models/tiny-opt-e2e", { backend: "cpu" });
 * const out = await generate(model, ["name[Alimentum], area[city centre]\n"], {
 *   policy: "linear:max=12,min=4,warmup=1,horizon=32",
 * });
 * console.log(out.results[0].text);
 * ```
 * @module
 */
export { loadModel, type LoadModelOptions, type Model, ModelMismatchError } from "./model.ts";
export { checkGenerateArguments, type GenerateArguments, wholeNumber } from "./options.ts";
export {
  generate,
  type GenerateOptions,
  type GenerateOutput,
  type GenerationResult,
  resolvePolicy,
} from "./engine.ts";
export {
  checkDraftLength,
  chooseDraftLength,
  type ChooseDraftLengthOptions,
  type DraftLengthChoice,
  speculativeDecode,
  type SpeculativeOptions,
  type SpeculativeOutput,
  type SpeculativeRow,
  type SpeculativeStats,
  type SpeculativeSummary,
} from "./speculative.ts";
