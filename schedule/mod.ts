/**
 * Exit policies and plans of SkipDecode (docs/DESIGN.md §2-5).
 *
 * A {@linkcode Policy} gives each column of a batch a layer budget and a set of active
 * layers; {@linkcode plan} evaluates it over the columns a run uses (`0 .. P + N - 2`),
 * enforces the nesting invariant (`S(c) ⊆ S(c')` for `c' < c`, so every KV cache stays
 * complete without recomputation) and derives layers per token, KV-cache slots, FLOPs and
 * speedups. `plan.sets` is what a backend's `DecodeRequest.sets` takes.
 *
 * Built-ins: {@linkcode full}, {@linkcode constant}, {@linkcode linear},
 * {@linkcode powerLaw}, {@linkcode earlyExit}, each described once by a descriptor
 * ({@linkcode LINEAR} etc., `builtins.ts`) from which its parsing, printing, JSON, errors and
 * examples follow (`registry.ts`); command-line forms via {@linkcode parsePolicy}, JSON via
 * {@linkcode policyFromJson}, the prompt-mode override via {@linkcode withPromptMode}.
 *
 * @example Built-in policy, plan, table
 * ```ts
 * import { formatPlan, parsePolicy, plan } from "./mod.ts";
 * const policy = parsePolicy("linear:max=12,min=4,warmup=1,horizon=32");
 * const p = plan(policy, { layers: 12, promptLength: 5, maxNewTokens: 32 });
 * console.log(p.generatedLayers, p.layerSpeedup);
 * console.log(formatPlan(p));
 * ```
 *
 * @example Writing your own policy
 * ```ts
 * import { customPolicy, plan, skipDecodeSet } from "./mod.ts";
 * // A step schedule: full depth for the first 8 generated tokens, then 6 layers
 * // (1 warm-up layer plus the top 5). Generated token i comes from column P - 1 + i
 * // (docs/DESIGN.md §3), so "the first 8 tokens" is i < 8. Prompt columns run all layers.
 * const step = customPolicy({
 *   name: "step8",
 *   layerSet: ({ column, promptLength, layers }) =>
 *     skipDecodeSet(layers, column - promptLength + 1 < 8 ? layers : 6, 1),
 * });
 * const p = plan(step, { layers: 12, promptLength: 4, maxNewTokens: 16 });
 * console.log(p.generatedLayers.join(" ")); // 12 12 12 12 12 12 12 12 6 6 6 6 6 6 6 6
 * // A policy whose budgets grow again is refused, naming the column and layer:
 * const bad = customPolicy({
 *   name: "grows",
 *   layerSet: ({ column, layers }) => column % 2 ? [layers - 1] : [0, layers - 1],
 * });
 * try {
 *   plan(bad, { layers: 12, promptLength: 1, maxNewTokens: 4 });
 * } catch (e) {
 *   console.log((e as Error).message);
 *   // "column 2 runs layer 0, which column 1 skipped: plans must nest (docs/DESIGN.md §2)"
 * }
 * ```
 *
 * @module
 */
export { PlanError, PolicyError } from "./errors.ts";
export * from "./policy.ts";
export * from "./registry.ts";
export * from "./builtins.ts";
export * from "./custom.ts";
export * from "./step.ts";
export * from "./policy_file.ts";
export * from "./parse.ts";
export * from "./plan.ts";
export * from "./format.ts";
export * from "./active.ts";
