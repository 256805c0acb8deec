/**
 * Exit policies (docs/DESIGN.md §3-4): a policy maps a column to a layer budget `n` and the budget to
 * a set of active layers. The built-ins are {@linkcode full}, {@linkcode constant},
 * {@linkcode linear}, {@linkcode powerLaw}, {@linkcode earlyExit}; {@linkcode customPolicy}
 * wraps a function of your own. Every policy is plain data plus pure functions: `toJSON()`
 * gives its parameters, `toString()` its command-line form (see `parse.ts` for the way back).
 *
 * Columns: prompts are left-padded to length `P`; column `P - 1` produces generated token 0;
 * the generated-input index of column `c >= P` is `j = c - P`. With prompt mode `full` (the
 * default) prompt columns `c < P` run all `L` layers; with `decay` the schedule is applied to
 * every column with `j = c` and horizon `P + H`.
 *
 * @module
 */
import { PolicyError } from "./errors.ts";

/** What a policy may look at when it chooses the layers of one column. */
export interface ColumnContext {
  /** Column index `c` of the padded batch (0-based). */
  column: number;
  /** Common prompt length `P` after left padding (`>= 1`). */
  promptLength: number;
  /** Tokens to generate `N` (`>= 1`); the default horizon `H` of `linear`. */
  maxNewTokens: number;
  /** Decoder layers `L` of the model. */
  layers: number;
}

/**
 * How prompt columns (`c < P`) are treated: `full` runs all layers there (the paper's
 * choice); `decay` applies the schedule from column 0 over the whole sequence.
 */
export type PromptMode = "full" | "decay";

/**
 * An exit policy. Implement it yourself or use {@linkcode customPolicy}; `plan()` validates
 * whatever sets it returns against the nesting invariant.
 *
 * @example
 * ```ts
 * import { linear } from "./mod.ts";
 * const p = linear({ max: 12, min: 4, warmup: 1, horizon: 32 });
 * const ctx = { column: 9, promptLength: 5, maxNewTokens: 32, layers: 12 };
 * console.log(p.budget(ctx), p.layerSet(ctx)); // 11 [0, 2, 3, ..., 11]
 * console.log(String(p)); // "linear:max=12,min=4,warmup=1,horizon=32"
 * ```
 */
export interface Policy {
  /** `"full"`, `"constant"`, `"linear"`, `"powerlaw"`, `"earlyexit"` or a custom name. */
  readonly name: string;
  /** How prompt columns are treated. */
  readonly promptMode: PromptMode;
  /** Active layers of one column: ascending, no duplicates, non-empty, each in `0..L-1`. */
  layerSet(ctx: ColumnContext): number[];
  /** Budget `n` of a column (the size of its layer set). */
  budget(ctx: ColumnContext): number;
  /** The policy as plain data (see {@linkcode PolicyJson}). */
  toJSON(): PolicyJson;
  /** The command-line form, e.g. `linear:max=12,min=4,warmup=1,horizon=64`. */
  toString(): string;
}

/** JSON form of {@linkcode full}. */
export interface FullPolicyJson {
  /** Discriminant. */
  kind: "full";
}

/** JSON form of {@linkcode constant}. */
export interface ConstantPolicyJson {
  /** Discriminant. */
  kind: "constant";
  /** Budget of every scheduled column. */
  n: number;
  /** Bottom warm-up layers `w`. */
  warmup: number;
  /** Prompt mode. */
  promptMode: PromptMode;
}

/** JSON form of {@linkcode linear}. */
export interface LinearPolicyJson {
  /** Discriminant. */
  kind: "linear";
  /** Budget at `j = 0`. */
  max: number;
  /** Budget from `j = H - 1` on. */
  min: number;
  /** Bottom warm-up layers `w`. */
  warmup: number;
  /** Horizon `H`; absent: the generation length `maxNewTokens`. */
  horizon?: number;
  /** Prompt mode. */
  promptMode: PromptMode;
}

/** JSON form of {@linkcode powerLaw}. */
export interface PowerLawPolicyJson {
  /** Discriminant. */
  kind: "powerlaw";
  /** Budget at `j = 0`. */
  max: number;
  /** Asymptotic budget. */
  min: number;
  /** Bottom warm-up layers `w`. */
  warmup: number;
  /** Decay exponent (`>= 0`). */
  alpha: number;
  /** Decay scale in columns (`> 0`). */
  tau: number;
  /** Prompt mode. */
  promptMode: PromptMode;
}

/** JSON form of {@linkcode earlyExit}. */
export interface EarlyExitPolicyJson {
  /** Discriminant. */
  kind: "earlyexit";
  /** The policy whose budgets are used. */
  inner: PolicyJson;
}

/** JSON form of a {@linkcode customPolicy}: only its name; the function is not data. */
export interface CustomPolicyJson {
  /** Discriminant. */
  kind: "custom";
  /** The custom policy's name. */
  name: string;
  /** Prompt mode. */
  promptMode: PromptMode;
}

/** A policy as plain data, discriminated by `kind`. */
export type PolicyJson =
  | FullPolicyJson
  | ConstantPolicyJson
  | LinearPolicyJson
  | PowerLawPolicyJson
  | EarlyExitPolicyJson
  | CustomPolicyJson;

/** Names the built-in policies use; custom policies may not take them. */
export const BUILTIN_POLICY_NAMES: readonly string[] = Object.freeze([
  "full",
  "constant",
  "linear",
  "powerlaw",
  "earlyexit",
  "custom",
]);

/**
 * The SkipDecode layer set of docs/DESIGN.md §4 for budget `n` and `w` warm-up layers:
 * `{0 .. w-1} ∪ {L-(n-w) .. L-1}`, ascending. Requires integers `0 <= w < n <= L`.
 *
 * @example
 * ```ts
 * import { skipDecodeSet } from "./mod.ts";
 * console.log(skipDecodeSet(12, 5, 1)); // [0, 8, 9, 10, 11]
 * ```
 */
export function skipDecodeSet(layers: number, n: number, warmup: number): number[] {
  requireInt("skipDecodeSet", "layers", layers, 1);
  requireInt("skipDecodeSet", "n", n, 1);
  requireInt("skipDecodeSet", "warmup", warmup, 0);
  if (n > layers) {
    throw new PolicyError(
      `skipDecodeSet: n (${n}) exceeds the ${layers} layers (needs n <= L)`,
      "n",
    );
  }
  if (warmup >= n) {
    throw new PolicyError(
      `skipDecodeSet: warmup (${warmup}) must be below n (${n}) (needs w < n)`,
      "warmup",
    );
  }
  const set: number[] = [];
  for (let l = 0; l < warmup; l++) set.push(l);
  for (let l = layers - (n - warmup); l < layers; l++) set.push(l);
  return set;
}

/**
 * The early-termination set `{0 .. n-1}` (bottom layers), `1 <= n <= L`.
 *
 * @example
 * ```ts
 * import { earlyExitSet } from "./mod.ts";
 * console.log(earlyExitSet(12, 3)); // [0, 1, 2]
 * ```
 */
export function earlyExitSet(layers: number, n: number): number[] {
  requireInt("earlyExitSet", "layers", layers, 1);
  requireInt("earlyExitSet", "n", n, 1);
  if (n > layers) {
    throw new PolicyError(
      `earlyExitSet: n (${n}) exceeds the ${layers} layers (needs n <= L)`,
      "n",
    );
  }
  return Array.from({ length: n }, (_, l) => l);
}

/**
 * Checks a {@linkcode ColumnContext}: integer fields, `column >= 0`, the others `>= 1`.
 * Throws a {@linkcode PolicyError} naming the field otherwise.
 *
 * @example
 * ```ts
 * import { checkContext } from "./mod.ts";
 * checkContext({ column: 0, promptLength: 3, maxNewTokens: 8, layers: 12 }); // ok
 * ```
 */
export function checkContext(ctx: ColumnContext, who = "policy"): void {
  if (typeof ctx !== "object" || ctx === null) {
    throw new PolicyError(`${who}: the column context must be an object`, "ctx");
  }
  requireInt(who, "column", ctx.column, 0);
  requireInt(who, "promptLength", ctx.promptLength, 1);
  requireInt(who, "maxNewTokens", ctx.maxNewTokens, 1);
  requireInt(who, "layers", ctx.layers, 1);
}

/**
 * The `full` policy: every column runs all `L` layers.
 *
 * @example
 * ```ts
 * import { full } from "./mod.ts";
 * console.log(full().layerSet({ column: 7, promptLength: 3, maxNewTokens: 8, layers: 4 }));
 * // [0, 1, 2, 3]
 * ```
 */
export function full(): Policy {
  const budget = (ctx: ColumnContext): number => {
    checkContext(ctx, "full");
    return ctx.layers;
  };
  return {
    name: "full",
    promptMode: "full",
    budget,
    layerSet: (ctx) => earlyExitSet(ctx.layers, budget(ctx)),
    toJSON: () => ({ kind: "full" }),
    toString: () => "full",
  };
}

/** Parameters of {@linkcode constant}. */
export interface ConstantOptions {
  /** Budget of every scheduled column (`w < n <= L`). */
  n: number;
  /** Bottom warm-up layers `w` (default 0). */
  warmup?: number;
  /** Prompt mode (default `"full"`). */
  promptMode?: PromptMode;
}

/**
 * `constant(n)`: every scheduled column runs the SkipDecode set of budget `n`; prompt
 * columns run all layers unless the prompt mode is `decay`.
 *
 * @example
 * ```ts
 * import { constant } from "./mod.ts";
 * const p = constant({ n: 6, warmup: 1 });
 * console.log(p.layerSet({ column: 5, promptLength: 3, maxNewTokens: 8, layers: 12 }));
 * // [0, 7, 8, 9, 10, 11]
 * ```
 */
export function constant(options: ConstantOptions): Policy {
  const who = "constant";
  const o = requireOptions(who, options);
  const n = requireInt(who, "n", o.n, 1);
  const warmup = requireInt(who, "warmup", o.warmup ?? 0, 0);
  const promptMode = requirePromptMode(who, o.promptMode);
  requireWarmupBelow(who, warmup, "n", n);
  const json: ConstantPolicyJson = { kind: "constant", n, warmup, promptMode };
  return scheduled({
    name: who,
    promptMode,
    warmup,
    top: n,
    topKey: "n",
    at: () => n,
    json,
    text: `constant:n=${n},warmup=${warmup}${promptSuffix(promptMode)}`,
  });
}

/** Parameters of {@linkcode linear}. */
export interface LinearOptions {
  /** Budget at `j = 0` (`<= L`). */
  max: number;
  /** Budget from `j = H - 1` on (`warmup < min <= max`). */
  min: number;
  /** Bottom warm-up layers `w` (default 0). */
  warmup?: number;
  /** Horizon `H` (`>= 1`); default: the generation length `maxNewTokens`. */
  horizon?: number;
  /** Prompt mode (default `"full"`). */
  promptMode?: PromptMode;
}

/**
 * `linear(max, min, warmup, H)`: budget
 * `clamp(round(max - (max - min) * min(j / (H - 1), 1)), min, max)`, `H = 1` gives `min`.
 *
 * The expression is evaluated literally with `Math.round` on doubles (docs/DESIGN.md §4): e.g.
 * `max=20, min=1, H=39, j=21` is 9.5 on paper but 9.4999… in doubles, so the budget is 9.
 *
 * @example
 * ```ts
 * import { linear } from "./mod.ts";
 * const p = linear({ max: 12, min: 4, warmup: 1, horizon: 32 });
 * console.log(p.budget({ column: 5, promptLength: 5, maxNewTokens: 32, layers: 12 })); // 12
 * ```
 */
export function linear(options: LinearOptions): Policy {
  const who = "linear";
  const o = requireOptions(who, options);
  const max = requireInt(who, "max", o.max, 1);
  const min = requireInt(who, "min", o.min, 1);
  const warmup = requireInt(who, "warmup", o.warmup ?? 0, 0);
  const horizon = o.horizon === undefined ? undefined : requireInt(who, "horizon", o.horizon, 1);
  const promptMode = requirePromptMode(who, o.promptMode);
  requireMinMax(who, min, max);
  requireWarmupBelow(who, warmup, "min", min);
  const json: LinearPolicyJson = { kind: "linear", max, min, warmup, promptMode };
  if (horizon !== undefined) json.horizon = horizon;
  const h = horizon === undefined ? "" : `,horizon=${horizon}`;
  return scheduled({
    name: who,
    promptMode,
    warmup,
    top: max,
    topKey: "max",
    horizon,
    at: (j, H) => linearBudget(max, min, j, H),
    json,
    text: `linear:max=${max},min=${min},warmup=${warmup}${h}${promptSuffix(promptMode)}`,
  });
}

/** Parameters of {@linkcode powerLaw}. */
export interface PowerLawOptions {
  /** Budget at `j = 0` (`<= L`). */
  max: number;
  /** Asymptotic budget (`warmup < min <= max`). */
  min: number;
  /** Bottom warm-up layers `w` (default 0). */
  warmup?: number;
  /** Decay exponent (finite, `>= 0`). */
  alpha: number;
  /** Decay scale in columns (finite, `> 0`). */
  tau: number;
  /** Prompt mode (default `"full"`). */
  promptMode?: PromptMode;
}

/**
 * `powerLaw(max, min, warmup, alpha, tau)`: budget
 * `clamp(round(min + (max - min) * (1 + j / tau) ** -alpha), min, max)` (`Math.round`).
 *
 * @example
 * ```ts
 * import { powerLaw } from "./mod.ts";
 * const p = powerLaw({ max: 12, min: 2, warmup: 1, alpha: 1, tau: 8 });
 * // j = 8: 2 + 10 * 2 ** -1 = 7
 * console.log(p.budget({ column: 11, promptLength: 3, maxNewTokens: 32, layers: 12 })); // 7
 * ```
 */
export function powerLaw(options: PowerLawOptions): Policy {
  const who = "powerlaw";
  const o = requireOptions(who, options);
  const max = requireInt(who, "max", o.max, 1);
  const min = requireInt(who, "min", o.min, 1);
  const warmup = requireInt(who, "warmup", o.warmup ?? 0, 0);
  const alpha = requireNumber(who, "alpha", o.alpha);
  const tau = requireNumber(who, "tau", o.tau);
  if (alpha < 0) throw new PolicyError(`${who}: alpha must be >= 0, got ${alpha}`, "alpha");
  if (tau <= 0) throw new PolicyError(`${who}: tau must be > 0, got ${tau}`, "tau");
  const promptMode = requirePromptMode(who, o.promptMode);
  requireMinMax(who, min, max);
  requireWarmupBelow(who, warmup, "min", min);
  const json: PowerLawPolicyJson = { kind: "powerlaw", max, min, warmup, alpha, tau, promptMode };
  return scheduled({
    name: who,
    promptMode,
    warmup,
    top: max,
    topKey: "max",
    at: (j) => clamp(Math.round(min + (max - min) * (1 + j / tau) ** -alpha), min, max),
    json,
    text: `powerlaw:max=${max},min=${min},warmup=${warmup},alpha=${alpha},tau=${tau}` +
      promptSuffix(promptMode),
  });
}

/**
 * `earlyExit(policy)`: the wrapped policy's budget `n`, but the bottom layers `{0 .. n-1}`
 * (early termination, the baseline the paper argues against). The wrapped policy's warm-up
 * does not change its budget and is otherwise ignored; its prompt mode is kept.
 *
 * @example
 * ```ts
 * import { earlyExit, linear } from "./mod.ts";
 * const p = earlyExit(linear({ max: 12, min: 4, horizon: 64 }));
 * console.log(String(p)); // "earlyexit:linear:max=12,min=4,warmup=0,horizon=64"
 * ```
 */
export function earlyExit(inner: Policy): Policy {
  if (!isPolicy(inner)) {
    throw new PolicyError("earlyexit: the wrapped policy must implement Policy", "inner");
  }
  const budget = (ctx: ColumnContext): number => {
    checkContext(ctx, "earlyexit");
    const n = inner.budget(ctx);
    if (!Number.isInteger(n) || n < 1 || n > ctx.layers) {
      throw new PolicyError(
        `earlyexit: policy "${inner.name}" gave budget ${n} for column ${ctx.column}, ` +
          `not an integer in 1..${ctx.layers}`,
        "inner",
      );
    }
    return n;
  };
  return {
    name: "earlyexit",
    promptMode: inner.promptMode,
    budget,
    layerSet: (ctx) => earlyExitSet(ctx.layers, budget(ctx)),
    toJSON: () => ({ kind: "earlyexit", inner: inner.toJSON() }),
    toString: () => `earlyexit:${inner.toString()}`,
  };
}

/** What {@linkcode customPolicy} needs. */
export interface CustomPolicyOptions {
  /** Name (letters, digits, `_`, `.`, `-`; not a built-in name). */
  name: string;
  /**
   * Active layers of a scheduled column, ascending. With prompt mode `full` it is called
   * only for columns `c >= P` (prompt columns run all layers); with `decay`, for all.
   */
  layerSet(ctx: ColumnContext): readonly number[];
  /** Budget of a scheduled column; default: the size of its layer set. */
  budget?(ctx: ColumnContext): number;
  /** Prompt mode (default `"full"`). */
  promptMode?: PromptMode;
}

/**
 * Wraps a function of your own as a {@linkcode Policy}. Any sets are allowed; `plan()`
 * rejects those that break the nesting invariant, naming the column and layer.
 *
 * @example
 * ```ts
 * import { customPolicy, plan } from "./mod.ts";
 * // Keep the top half of the layers once 4 tokens were generated.
 * const halfAfter4 = customPolicy({
 *   name: "half-after-4",
 *   layerSet: ({ column, promptLength, layers }) => {
 *     const keep = column - promptLength >= 3 ? Math.ceil(layers / 2) : layers;
 *     return Array.from({ length: keep }, (_, i) => layers - keep + i);
 *   },
 * });
 * const p = plan(halfAfter4, { layers: 12, promptLength: 4, maxNewTokens: 10 });
 * console.log(p.generatedLayers); // [12, 12, 12, 12, 6, 6, 6, 6, 6, 6]
 * ```
 */
export function customPolicy(options: CustomPolicyOptions): Policy {
  const o = requireOptions("custom", options);
  const name = o.name;
  if (typeof name !== "string" || !/^[A-Za-z_][A-Za-z0-9_.-]*$/.test(name)) {
    throw new PolicyError(
      `custom policy: name must be letters, digits, "_", "." or "-" (starting with a letter or ` +
        `"_"), got ${JSON.stringify(name)}`,
      "name",
    );
  }
  if (BUILTIN_POLICY_NAMES.includes(name.toLowerCase())) {
    throw new PolicyError(`custom policy: name "${name}" is taken by a built-in policy`, "name");
  }
  if (typeof o.layerSet !== "function") {
    throw new PolicyError(`custom policy "${name}": layerSet must be a function`, "layerSet");
  }
  if (o.budget !== undefined && typeof o.budget !== "function") {
    throw new PolicyError(`custom policy "${name}": budget must be a function`, "budget");
  }
  const promptMode = requirePromptMode(`custom policy "${name}"`, o.promptMode);
  const who = `custom policy "${name}"`;
  const isPrompt = (ctx: ColumnContext) => promptMode === "full" && ctx.column < ctx.promptLength;
  const layerSet = (ctx: ColumnContext): number[] => {
    checkContext(ctx, who);
    if (isPrompt(ctx)) return earlyExitSet(ctx.layers, ctx.layers);
    const set = o.layerSet(ctx);
    if (!Array.isArray(set)) {
      throw new PolicyError(
        `${who}: layerSet returned ${typeof set} for column ${ctx.column}, not an array of layers`,
        "layerSet",
      );
    }
    return [...set];
  };
  return {
    name,
    promptMode,
    layerSet,
    budget: (ctx) => {
      checkContext(ctx, who);
      if (isPrompt(ctx)) return ctx.layers;
      return o.budget ? o.budget(ctx) : layerSet(ctx).length;
    },
    toJSON: () => ({ kind: "custom", name, promptMode }),
    toString: () => name,
  };
}

/**
 * Whether a value looks like a {@linkcode Policy} (has the methods and fields).
 *
 * @example
 * ```ts
 * import { full, isPolicy } from "./mod.ts";
 * console.log(isPolicy(full()), isPolicy({})); // true false
 * ```
 */
export function isPolicy(value: unknown): value is Policy {
  if (typeof value !== "object" || value === null) return false;
  const v = value as Record<string, unknown>;
  return typeof v.name === "string" && (v.promptMode === "full" || v.promptMode === "decay") &&
    typeof v.layerSet === "function" && typeof v.budget === "function" &&
    typeof v.toJSON === "function" && typeof v.toString === "function";
}

// ---------------------------------------------------------------------------------------
// internals

/** A SkipDecode-set schedule: a budget function of `(j, H)` plus its fixed data. */
interface Schedule {
  name: string;
  promptMode: PromptMode;
  warmup: number;
  /** The largest budget it can give and the parameter that sets it (checked `<= L`). */
  top: number;
  topKey: string;
  /** Horizon `H` when set; otherwise `maxNewTokens`. */
  horizon?: number;
  /** Budget at generated-input index `j` with horizon `H` (already shifted for decay). */
  at(j: number, H: number): number;
  json: PolicyJson;
  text: string;
}

function scheduled(s: Schedule): Policy {
  const budget = (ctx: ColumnContext): number => {
    checkContext(ctx, s.name);
    if (s.top > ctx.layers) {
      throw new PolicyError(
        `${s.name}: ${s.topKey} (${s.top}) exceeds the model's ${ctx.layers} layers ` +
          `(the SkipDecode set needs n <= L)`,
        s.topKey,
      );
    }
    if (s.promptMode === "full" && ctx.column < ctx.promptLength) return ctx.layers;
    const H = s.horizon ?? ctx.maxNewTokens;
    return s.promptMode === "decay"
      ? s.at(ctx.column, ctx.promptLength + H)
      : s.at(ctx.column - ctx.promptLength, H);
  };
  const json = JSON.stringify(s.json);
  return {
    name: s.name,
    promptMode: s.promptMode,
    budget,
    layerSet: (ctx) => skipDecodeSet(ctx.layers, budget(ctx), s.warmup),
    toJSON: () => JSON.parse(json),
    toString: () => s.text,
  };
}

/**
 * `clamp(round(max - (max - min) * min(j / (H - 1), 1)), min, max)` evaluated literally in
 * JavaScript doubles, as docs/DESIGN.md §4 states it, so any other implementation of the formula
 * agrees bit for bit (including the rare exact halves that doubles round down).
 */
function linearBudget(max: number, min: number, j: number, H: number): number {
  if (H === 1) return min;
  return clamp(Math.round(max - (max - min) * Math.min(j / (H - 1), 1)), min, max);
}

function clamp(x: number, lo: number, hi: number): number {
  return x < lo ? lo : x > hi ? hi : x;
}

function promptSuffix(mode: PromptMode): string {
  return mode === "decay" ? ",prompt=decay" : "";
}

function requireOptions<T>(who: string, options: T): T {
  if (typeof options !== "object" || options === null) {
    throw new PolicyError(`${who}: expected an options object, got ${String(options)}`);
  }
  return options;
}

function requireInt(who: string, key: string, value: unknown, lo: number): number {
  if (typeof value !== "number" || !Number.isInteger(value) || value < lo) {
    throw new PolicyError(
      `${who}: ${key} must be an integer >= ${lo}, got ${
        typeof value === "string" ? JSON.stringify(value) : String(value)
      }`,
      key,
    );
  }
  return value;
}

function requireNumber(who: string, key: string, value: unknown): number {
  if (typeof value !== "number" || !Number.isFinite(value)) {
    throw new PolicyError(`${who}: ${key} must be a finite number, got ${String(value)}`, key);
  }
  return value;
}

function requirePromptMode(who: string, mode: unknown): PromptMode {
  if (mode === undefined) return "full";
  if (mode !== "full" && mode !== "decay") {
    throw new PolicyError(
      `${who}: promptMode must be "full" or "decay", got ${JSON.stringify(mode)}`,
      "promptMode",
    );
  }
  return mode;
}

function requireMinMax(who: string, min: number, max: number): void {
  if (min > max) {
    throw new PolicyError(`${who}: min (${min}) must not exceed max (${max})`, "min");
  }
}

function requireWarmupBelow(who: string, warmup: number, key: string, n: number): void {
  if (warmup >= n) {
    throw new PolicyError(
      `${who}: warmup (${warmup}) must be below ${key} (${n}): the SkipDecode set needs w < n`,
      "warmup",
    );
  }
}
