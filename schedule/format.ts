/**
 * Plans as text and JSON: {@linkcode formatPlan} prints the compact table the CLI `plan`
 * command shows, {@linkcode planToJson} gives plain data for reports and notebooks.
 *
 * @module
 */
import type { PolicyJson } from "./policy.ts";
import type { Plan, PlanAccounting } from "./plan.ts";

/**
 * An ascending layer set as ranges, e.g. `[0, 8, 9, 10, 11]` -> `"0,8-11"`.
 *
 * @example
 * ```ts
 * import { formatLayerSet } from "./mod.ts";
 * console.log(formatLayerSet([0, 1, 5, 7, 8, 9])); // "0-1,5,7-9"
 * ```
 */
export function formatLayerSet(set: readonly number[]): string {
  const parts: string[] = [];
  for (let k = 0; k < set.length;) {
    let e = k;
    while (e + 1 < set.length && set[e + 1] === set[e] + 1) e++;
    parts.push(e === k ? `${set[k]}` : `${set[k]}-${set[e]}`);
    k = e + 1;
  }
  return parts.join(",");
}

/**
 * A compact text table of a plan: consecutive columns with the same set share a row, with
 * the generated tokens they produce, their budget and their layers, followed by the
 * speedups and the KV-cache slots per layer.
 *
 * @example
 * ```ts
 * import { formatPlan, linear, plan } from "./mod.ts";
 * const p = plan(linear({ max: 12, min: 4, warmup: 1, horizon: 32 }), {
 *   layers: 12, promptLength: 5, maxNewTokens: 32,
 * });
 * console.log(formatPlan(p));
 * // plan linear:max=12,min=4,warmup=1,horizon=32  L=12 P=5 N=32 (columns 0-35)
 * // columns  tokens  budget  layers
 * // 0-6      0-2     12      0-11
 * // 7-10     3-6     11      0,2-11
 * // ...
 * // 35       31      4       0,9-11
 * // layer speedup 1.455x over the 32 generated tokens; mean layers per token 8.25 of 12
 * // KV slots per layer: 36 7 11 15 19 23 27 31 35 36 36 36
 * ```
 */
export function formatPlan(plan: Plan): string {
  const P = plan.promptLength;
  const rows: string[][] = [["columns", "tokens", "budget", "layers"]];
  const key = (c: number) => plan.sets[c].join(",");
  for (let a = 0; a < plan.columns;) {
    let b = a;
    while (b + 1 < plan.columns && key(b + 1) === key(a)) b++;
    const first = Math.max(a, P - 1) - (P - 1);
    const last = b - (P - 1);
    const tokens = last < 0 ? "-" : range(first, last);
    rows.push([range(a, b), tokens, String(plan.budgets[a]), formatLayerSet(plan.sets[a])]);
    a = b + 1;
  }
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  const lines = [
    `plan ${plan.policy.toString()}  L=${plan.layers} P=${P} N=${plan.maxNewTokens} ` +
    `(columns ${range(0, plan.columns - 1)})`,
    ...rows.map((r) => r.map((x, i) => (i < r.length - 1 ? x.padEnd(widths[i]) : x)).join("  ")),
  ];
  const acc = plan.accounting;
  lines.push(
    `layer speedup ${plan.layerSpeedup.toFixed(3)}x` +
      (acc ? `, FLOP speedup ${acc.flopSpeedup.toFixed(3)}x` : "") +
      ` over the ${plan.maxNewTokens} generated tokens; ` +
      `mean layers per token ${mean(plan.generatedLayers).toFixed(2)} of ${plan.layers}`,
  );
  lines.push(`KV slots per layer: ${plan.kvSlots.join(" ")}`);
  if (acc) {
    lines.push(
      `KV cache ${formatBytes(acc.kvBytes)} of ${formatBytes(acc.fullKvBytes)} ` +
        `(batch ${acc.batch}, ${acc.bytesPerElement} B/element)`,
    );
  }
  return lines.join("\n");
}

/** Plain-data form of a {@linkcode Plan} (see {@linkcode planToJson}). */
export interface PlanJson {
  /** The policy's JSON form. */
  policy: PolicyJson;
  /** The policy's command-line form. */
  policySpec: string;
  /** Decoder layers `L`. */
  layers: number;
  /** Prompt length `P`. */
  promptLength: number;
  /** Generated tokens `N`. */
  maxNewTokens: number;
  /** Columns covered, `P + N - 1`. */
  columns: number;
  /** Active layers per column. */
  sets: number[][];
  /** Budget per column. */
  budgets: number[];
  /** Layers run per generated token. */
  generatedLayers: number[];
  /** Columns running each layer. */
  prefix: number[];
  /** KV-cache slots per layer. */
  kvSlots: number[];
  /** `Σ L / Σ |S(c)|` over the generated tokens. */
  layerSpeedup: number;
  /** FLOPs and KV bytes, when known. */
  accounting?: PlanAccounting;
}

/**
 * A plan as plain data (`JSON.stringify`-able): the policy's JSON and command-line forms
 * plus every figure of the plan.
 *
 * @example
 * ```ts
 * import { constant, plan, planToJson } from "./mod.ts";
 * const p = plan(constant({ n: 6, warmup: 1 }), { layers: 12, promptLength: 3, maxNewTokens: 4 });
 * console.log(JSON.stringify(planToJson(p)).length > 0); // true
 * ```
 */
export function planToJson(plan: Plan): PlanJson {
  const json: PlanJson = {
    policy: plan.policy.toJSON(),
    policySpec: plan.policy.toString(),
    layers: plan.layers,
    promptLength: plan.promptLength,
    maxNewTokens: plan.maxNewTokens,
    columns: plan.columns,
    sets: plan.sets.map((s) => [...s]),
    budgets: [...plan.budgets],
    generatedLayers: [...plan.generatedLayers],
    prefix: [...plan.prefix],
    kvSlots: [...plan.kvSlots],
    layerSpeedup: plan.layerSpeedup,
  };
  if (plan.accounting) json.accounting = structuredClone(plan.accounting);
  return json;
}

function range(a: number, b: number): string {
  return a === b ? `${a}` : `${a}-${b}`;
}

function mean(xs: number[]): number {
  return xs.reduce((a, b) => a + b, 0) / xs.length;
}

function formatBytes(n: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${v} B` : `${v.toFixed(2)} ${units[u]}`;
}
