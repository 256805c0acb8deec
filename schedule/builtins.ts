/**
 * The built-in exit policies, one descriptor each (see `registry.ts`): {@linkcode FULL},
 * {@linkcode CONSTANT}, {@linkcode LINEAR}, {@linkcode POWERLAW} and the wrapper
 * {@linkcode EARLYEXIT}. A descriptor holds a policy's typed parameters (ranges, defaults,
 * docs), its rules and its budget function; parsing, printing, JSON, error messages, examples,
 * the prompt-mode override and chart labels all follow from it. The factories
 * ({@linkcode full}, {@linkcode constant}, {@linkcode linear}, {@linkcode powerLaw},
 * {@linkcode earlyExit}) are one line each.
 *
 * @module
 */
import { PolicyError } from "./errors.ts";
import {
  checkContext,
  type ColumnContext,
  earlyExitSet,
  isPolicy,
  type Policy,
  type PolicyJson,
} from "./policy.ts";
import {
  builtinPolicies,
  defineSchedule,
  defineWrapper,
  type ParamSpec,
  rules,
  type ScheduleDescriptor,
  type ScheduleJson,
  type ScheduleOptions,
  schedulePolicy,
  type WrapperDescriptor,
} from "./registry.ts";

/** The parameters of {@linkcode FULL} (their keys type its options and JSON). */
export const FULL_PARAMS: readonly [] = [];

/** `full`: every column runs all `L` layers (no parameters, no prompt mode). */
export const FULL: ScheduleDescriptor<typeof FULL_PARAMS> = defineSchedule({
  form: "schedule",
  name: "full",
  summary: "every column runs all L layers",
  params: FULL_PARAMS,
  promptMode: false,
  example: "full",
  budget: (_p, _j, _H, L) => L,
  label: () => "full",
});

/** The parameters of {@linkcode CONSTANT} (their keys type its options and JSON). */
export const CONSTANT_PARAMS = [
  { key: "n", type: "int", min: 1, doc: "budget of every scheduled column (w < n <= L)" },
  { key: "warmup", type: "int", min: 0, default: 0, doc: "bottom warm-up layers w" },
] as const satisfies readonly ParamSpec[];

/** `constant`: every scheduled column runs the SkipDecode set of budget `n`. */
export const CONSTANT: ScheduleDescriptor<typeof CONSTANT_PARAMS> = defineSchedule({
  form: "schedule",
  name: "constant",
  summary: "every scheduled column runs the SkipDecode set of budget n",
  params: CONSTANT_PARAMS,
  promptMode: true,
  example: "constant:n=6,warmup=1",
  top: "n",
  warmup: "warmup",
  check: (p, who) => rules.warmupBelow(who, p.warmup, "n", p.n),
  budget: (p) => p.n,
  label: (p) => `constant ${p.n} w${p.warmup}`,
});

/** The parameters of {@linkcode LINEAR} (their keys type its options and JSON). */
export const LINEAR_PARAMS = [
  { key: "max", type: "int", min: 1, doc: "budget at j = 0, i.e. generated token i = 1 (<= L)" },
  {
    key: "min",
    type: "int",
    min: 1,
    doc: "budget from j = H - 1 (token i = H) on (warmup < min <= max)",
  },
  { key: "warmup", type: "int", min: 0, default: 0, doc: "bottom warm-up layers w" },
  {
    key: "horizon",
    type: "int",
    min: 1,
    optional: true,
    doc: "horizon H (default: the generation length maxNewTokens)",
  },
] as const satisfies readonly ParamSpec[];

/**
 * `linear`: budget `clamp(round(max - (max - min) * min(j / (H - 1), 1)), min, max)`,
 * `H = 1` gives `min`. Evaluated literally with `Math.round` on doubles (docs/DESIGN.md §4):
 * e.g. `max=20, min=1, H=39, j=21` is 9.5 on paper but 9.4999… in doubles, so the budget is 9.
 */
export const LINEAR: ScheduleDescriptor<typeof LINEAR_PARAMS> = defineSchedule({
  form: "schedule",
  name: "linear",
  summary: "budget falls linearly from max at j = 0 to min at j = H - 1 (j = c - P = i - 1)",
  params: LINEAR_PARAMS,
  promptMode: true,
  example: "linear:max=12,min=4,warmup=1,horizon=64",
  top: "max",
  warmup: "warmup",
  horizon: "horizon",
  check: decayRules,
  budget: (p, j, H) => {
    if (H === 1) return p.min;
    return clamp(Math.round(p.max - (p.max - p.min) * Math.min(j / (H - 1), 1)), p.min, p.max);
  },
  label: (p) => `linear ${p.max}→${p.min} w${p.warmup}${p.horizon ? ` H${p.horizon}` : ""}`,
});

/** The parameters of {@linkcode POWERLAW} (their keys type its options and JSON). */
export const POWERLAW_PARAMS = [
  { key: "max", type: "int", min: 1, doc: "budget at j = 0, i.e. generated token i = 1 (<= L)" },
  { key: "min", type: "int", min: 1, doc: "asymptotic budget (warmup < min <= max)" },
  { key: "warmup", type: "int", min: 0, default: 0, doc: "bottom warm-up layers w" },
  { key: "alpha", type: "number", min: 0, doc: "decay exponent (finite, >= 0)" },
  { key: "tau", type: "number", min: 0, exclusive: true, doc: "decay scale in columns (> 0)" },
] as const satisfies readonly ParamSpec[];

/** `powerlaw`: budget `clamp(round(min + (max - min) * (1 + j / tau) ** -alpha), min, max)`. */
export const POWERLAW: ScheduleDescriptor<typeof POWERLAW_PARAMS> = defineSchedule({
  form: "schedule",
  name: "powerlaw",
  summary: "budget decays from max towards min as (1 + j / tau) ** -alpha (j = c - P = i - 1)",
  params: POWERLAW_PARAMS,
  promptMode: true,
  example: "powerlaw:max=12,min=2,warmup=1,alpha=1,tau=8",
  top: "max",
  warmup: "warmup",
  check: decayRules,
  budget: (p, j) =>
    clamp(Math.round(p.min + (p.max - p.min) * (1 + j / p.tau) ** -p.alpha), p.min, p.max),
  label: (p) => `power ${p.max}→${p.min} w${p.warmup} α${p.alpha} τ${p.tau}`,
});

/**
 * `earlyexit:<policy>`: the wrapped policy's budget `n`, but the bottom layers `{0 .. n-1}`
 * (early termination, the baseline the paper argues against). The wrapped policy's warm-up
 * does not change its budget and is otherwise ignored; its prompt mode is kept.
 */
export const EARLYEXIT: WrapperDescriptor = defineWrapper({
  form: "wrapper",
  name: "earlyexit",
  summary: "the wrapped policy's budgets on the bottom layers (early termination)",
  example: "earlyexit:linear:max=12,min=4",
  wrap: (inner: Policy): Policy => {
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
  },
  // the bottom layers: the wrapped policy's warm-up means nothing here
  label: (inner) => `early-exit ${inner.replace(/ w\d+/, "")}`,
});

/** Parameters of {@linkcode constant} (from {@linkcode CONSTANT}). */
export type ConstantOptions = ScheduleOptions<typeof CONSTANT.params>;
/** Parameters of {@linkcode linear} (from {@linkcode LINEAR}). */
export type LinearOptions = ScheduleOptions<typeof LINEAR.params>;
/** Parameters of {@linkcode powerLaw} (from {@linkcode POWERLAW}). */
export type PowerLawOptions = ScheduleOptions<typeof POWERLAW.params>;
/** JSON form of {@linkcode full}: `{ kind: "full" }`. */
export type FullPolicyJson = ScheduleJson<typeof FULL.params>;
/** JSON form of {@linkcode constant}. */
export type ConstantPolicyJson = ScheduleJson<typeof CONSTANT.params>;
/** JSON form of {@linkcode linear}. */
export type LinearPolicyJson = ScheduleJson<typeof LINEAR.params>;
/** JSON form of {@linkcode powerLaw}. */
export type PowerLawPolicyJson = ScheduleJson<typeof POWERLAW.params>;

/** The built-ins' JSON forms, typed field by field (a convenience: `PolicyJson` covers any). */
export type KnownPolicyJson =
  | FullPolicyJson
  | ConstantPolicyJson
  | LinearPolicyJson
  | PowerLawPolicyJson
  | EarlyExitPolicyJson;

/** JSON form of {@linkcode earlyExit}. */
export interface EarlyExitPolicyJson {
  /** Discriminant. */
  kind: "earlyexit";
  /** The policy whose budgets are used. */
  inner: PolicyJson;
}

/**
 * The `full` policy: every column runs all `L` layers.
 *
 * @example
 * ```ts
 * import { full } from "../mod.ts";
 * console.log(full().layerSet({ column: 7, promptLength: 3, maxNewTokens: 8, layers: 4 }));
 * // [0, 1, 2, 3]
 * ```
 */
export function full(): Policy {
  return schedulePolicy(FULL, {});
}

/**
 * `constant(n)`: every scheduled column runs the SkipDecode set of budget `n`; prompt
 * columns run all layers unless the prompt mode is `decay`.
 *
 * @example
 * ```ts
 * import { constant } from "../mod.ts";
 * const p = constant({ n: 6, warmup: 1 });
 * console.log(p.layerSet({ column: 5, promptLength: 3, maxNewTokens: 8, layers: 12 }));
 * // [0, 7, 8, 9, 10, 11]
 * ```
 */
export function constant(options: ConstantOptions): Policy {
  return schedulePolicy(CONSTANT, options);
}

/**
 * `linear(max, min, warmup, H)`: see {@linkcode LINEAR}.
 *
 * @example
 * ```ts
 * import { linear } from "../mod.ts";
 * const p = linear({ max: 12, min: 4, warmup: 1, horizon: 32 });
 * console.log(p.budget({ column: 5, promptLength: 5, maxNewTokens: 32, layers: 12 })); // 12
 * ```
 */
export function linear(options: LinearOptions): Policy {
  return schedulePolicy(LINEAR, options);
}

/**
 * `powerLaw(max, min, warmup, alpha, tau)`: see {@linkcode POWERLAW}.
 *
 * @example
 * ```ts
 * import { powerLaw } from "../mod.ts";
 * const p = powerLaw({ max: 12, min: 2, warmup: 1, alpha: 1, tau: 8 });
 * // j = 8: 2 + 10 * 2 ** -1 = 7
 * console.log(p.budget({ column: 11, promptLength: 3, maxNewTokens: 32, layers: 12 })); // 7
 * ```
 */
export function powerLaw(options: PowerLawOptions): Policy {
  return schedulePolicy(POWERLAW, options);
}

/**
 * `earlyExit(policy)`: see {@linkcode EARLYEXIT}.
 *
 * @example
 * ```ts
 * import { earlyExit, linear } from "../mod.ts";
 * const p = earlyExit(linear({ max: 12, min: 4, horizon: 64 }));
 * console.log(String(p)); // "earlyexit:linear:max=12,min=4,warmup=0,horizon=64"
 * ```
 */
export function earlyExit(inner: Policy): Policy {
  return EARLYEXIT.wrap(inner);
}

/** Names the built-in policies use (and `custom`, the JSON kind of custom policies). */
export const BUILTIN_POLICY_NAMES: readonly string[] = Object.freeze([
  ...builtinPolicies().map((d) => d.name),
  "custom",
]);

/** The rules of a decay from `max` to `min` above `warmup` layers (linear, power law). */
function decayRules(p: { min: number; max: number; warmup: number }, who: string): void {
  rules.minAtMostMax(who, p.min, p.max);
  rules.warmupBelow(who, p.warmup, "min", p.min);
}

function clamp(x: number, lo: number, hi: number): number {
  return x < lo ? lo : x > hi ? hi : x;
}
