/**
 * Serving: the continuous-batching {@linkcode Scheduler} (rows at their own positions, per-row
 * SkipDecode plans, `per-row` / `aligned` / `static` admission) and its OpenAI-compatible HTTP
 * server ({@linkcode startServer}: `/v1/completions` with SSE streaming, `/v1/models`,
 * `/health`, `/metrics`). `deno task serve` runs it from the command line.
 *
 * @example
 * ```ts
 * import { loadModel } from "../decode/mod.ts";
 * import { Scheduler, startServer } from "./mod.ts";
 * const model = await loadModel("bundled/models/tiny-opt-e2e", { backend: "cpu" });
 * const scheduler = new Scheduler(model, { capacity: 8, mode: "per-row", policy: "full" });
 * const server = startServer({
 *   scheduler, tokenizer: model.tokenizer, config: model.config, modelName: "tiny", port: 0,
 * });
 * await server.shutdown();
 * ```
 * @module
 */
export {
  ADMISSION_MODES,
  type AdmissionMode,
  type Completion,
  type CompletionEvent,
  type CompletionHandle,
  type CompletionRequest,
  type FinishReason,
  QueueFullError,
  Scheduler,
  SchedulerClosedError,
  type SchedulerMetrics,
  type SchedulerModel,
  type SchedulerOptions,
  type StepInfo,
} from "./scheduler.ts";
export { StopText } from "./stop.ts";
export {
  ApiError,
  type CompletionLimits,
  type CompletionParams,
  parseCompletionBody,
} from "./openai.ts";
export { prometheusText } from "./metrics.ts";
export { assertDistinctNames, servedPolicy, type ServedPolicyFile } from "./policies.ts";
export { completionsHandler, type RunningServer, type ServerOptions, startServer } from "./http.ts";
