/**
 * The scheduler's counters in Prometheus text exposition format (version 0.0.4), for the
 * server's `GET /metrics`.
 *
 * @example
 * ```ts
 * import { prometheusText } from "./metrics.ts";
 * import type { SchedulerMetrics } from "./scheduler.ts";
 * declare const m: SchedulerMetrics; // Scheduler.metrics()
 * console.log(prometheusText(m).split("\n")[0]); // "# HELP skipdecode_requests_total ..."
 * ```
 * @module
 */
import type { SchedulerMetrics } from "./scheduler.ts";

/**
 * Formats the counters (`skipdecode_*`: requests, finished by reason, tokens, queue depth,
 * running rows, mean active layers per token, layer steps, KV bytes).
 *
 * @example
 * ```ts
 * import { prometheusText } from "./metrics.ts";
 * import type { SchedulerMetrics } from "./scheduler.ts";
 * declare const m: SchedulerMetrics;
 * const text = prometheusText(m); // "skipdecode_running_rows 3" is one of its lines
 * ```
 */
export function prometheusText(m: SchedulerMetrics): string {
  const lines: string[] = [];
  const metric = (
    name: string,
    type: "counter" | "gauge",
    help: string,
    values: [string, number][],
  ) => {
    lines.push(`# HELP skipdecode_${name} ${help}`, `# TYPE skipdecode_${name} ${type}`);
    for (const [labels, v] of values) lines.push(`skipdecode_${name}${labels} ${v}`);
  };
  metric("requests_total", "counter", "Completion requests accepted.", [["", m.requests]]);
  metric("requests_rejected_total", "counter", "Requests refused with a full queue.", [[
    "",
    m.rejected,
  ]]);
  metric(
    "requests_finished_total",
    "counter",
    "Requests ended, by reason (eos, stop string, length, cancelled).",
    Object.entries(m.finished).map(([k, v]) => [`{reason="${k}"}`, v]),
  );
  metric("tokens_total", "counter", "Generated tokens.", [["", m.tokens]]);
  metric("prompt_tokens_total", "counter", "Prompt tokens prefilled.", [["", m.promptTokens]]);
  metric("queue_depth", "gauge", "Requests waiting for a row.", [["", m.queueDepth]]);
  metric("running_rows", "gauge", "Rows decoding now.", [["", m.runningRows]]);
  metric("capacity_rows", "gauge", "Rows decoded at once at most.", [["", m.capacity]]);
  metric(
    "mean_active_layers_per_token",
    "gauge",
    "Mean decoder layers run per generated token since start.",
    [["", m.meanActiveLayers]],
  );
  metric("steps_total", "counter", "Batched steps run.", [["", m.steps]]);
  metric("layer_steps_total", "counter", "Layer evaluations of tokens, prompts included.", [[
    "",
    m.rows.layerSteps,
  ]]);
  metric("kv_bytes", "gauge", "KV-cache bytes allocated now.", [["", m.rows.kvBytes]]);
  return lines.join("\n") + "\n";
}
