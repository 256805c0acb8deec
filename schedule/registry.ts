/**
 * The policy registry: every built-in policy is one {@linkcode PolicyDescriptor}, and
 * everything else about it follows from that descriptor: the factory's validation and error
 * messages, `String(policy)` (the command-line form), `toJSON()`, parsing both forms back
 * (`parse.ts`), the examples in error messages, the prompt-mode override
 * ({@linkcode withPromptMode}) and the chart label ({@linkcode labelPolicy}).
 *
 * Adding a built-in policy is one call: {@linkcode defineSchedule} (a budget function of the
 * generated-input index with typed parameters) or {@linkcode defineWrapper} (a policy that
 * wraps another, like `earlyexit`), usually with a one-line factory beside it. Custom
 * policies written by users need none of this: see `customPolicy` in `custom.ts`.
 *
 * @module
 */
import { PolicyError } from "./errors.ts";
import { STEP_EXAMPLE, STEP_HELP } from "./step.ts";
import {
  checkContext,
  type ColumnContext,
  isPolicy,
  type Policy,
  type PolicyJson,
  type PromptMode,
  requireInt,
  skipDecodeSet,
} from "./policy.ts";

/** One typed parameter of a built-in policy (its command-line key and JSON field). */
export interface ParamSpec {
  /** The command-line key and JSON field, lower case (e.g. `"max"`). */
  readonly key: string;
  /** `"int"`: whole numbers only; `"number"`: any finite number. */
  readonly type: "int" | "number";
  /** The smallest allowed value. */
  readonly min: number;
  /** Whether `min` itself is refused (e.g. `tau > 0`). */
  readonly exclusive?: boolean;
  /** The value when not given. Without `default` or `optional` the parameter is required. */
  readonly default?: number;
  /** May stay unset (no default); the schedule then decides (e.g. linear's horizon). */
  readonly optional?: boolean;
  /** What the parameter means (shown in help and docs). */
  readonly doc: string;
}

/** The parameter values of a schedule with parameters `P`, checked and defaulted. */
export type ParamValues<P extends readonly ParamSpec[]> =
  & { readonly [S in P[number] as S extends { optional: true } ? never : S["key"]]: number }
  & {
    readonly [S in P[number] as S extends { optional: true } ? S["key"] : never]?: number;
  };

/** What a schedule's factory takes: its parameters (defaulted ones optional) and a prompt mode. */
export type ScheduleOptions<P extends readonly ParamSpec[]> =
  & {
    [
      S in P[number] as S extends { optional: true } | { default: number } ? never : S["key"]
    ]: number;
  }
  & {
    [
      S in P[number] as S extends { optional: true } | { default: number } ? S["key"] : never
    ]?: number;
  }
  & {
    /** How prompt columns are treated (default `"full"`). */
    promptMode?: PromptMode;
  };

/** The JSON form of a schedule with parameters `P`: `kind`, the parameters, the prompt mode. */
export type ScheduleJson<P extends readonly ParamSpec[]> =
  & {
    /** Discriminant: the policy's name. */
    kind: string;
    /** Prompt mode (absent for policies without one, such as `full`). */
    promptMode?: PromptMode;
  }
  & ParamValues<P>;

/**
 * A built-in policy given by a budget function over SkipDecode layer sets (docs/DESIGN.md §4):
 * column `c` runs `skipDecodeSet(L, budget, warmup)`. With prompt mode `full` prompt columns run
 * all `L` layers and generated-input index `j = c - P` uses horizon `H`; with `decay` the
 * budget function sees `j = c` and horizon `P + H`.
 */
export interface ScheduleDescriptor<P extends readonly ParamSpec[] = readonly ParamSpec[]> {
  /** Discriminant of the descriptor kinds. */
  readonly form: "schedule";
  /** The policy's name: command-line prefix and JSON `kind` (lower case). */
  readonly name: string;
  /** One line on what it does. */
  readonly summary: string;
  /** Its parameters, in the order `String(policy)` prints them. */
  readonly params: P;
  /** Whether it takes a prompt mode (`prompt=full|decay`); `full` does not. */
  readonly promptMode: boolean;
  /** A command-line example (shown in error messages and help). */
  readonly example: string;
  /** The parameter whose value is the largest budget given: checked `<= L` when planned. */
  readonly top?: P[number]["key"];
  /** The parameter holding the warm-up layers `w` (default: none, `w = 0`). */
  readonly warmup?: P[number]["key"];
  /** The parameter holding the horizon `H` (unset: the generation length `maxNewTokens`). */
  readonly horizon?: P[number]["key"];
  /** Rules between parameters; throw {@linkcode PolicyError} naming the key (see `rules`). */
  check?(p: ParamValues<P>, who: string): void;
  /** The budget at generated-input index `j` with horizon `H` on a model of `L` layers. */
  budget(p: ParamValues<P>, j: number, H: number, L: number): number;
  /** A short chart label without the prompt mode, e.g. `linear 12→4 w1 H24`. */
  label(p: ParamValues<P>): string;
}

/** A built-in policy that wraps another policy (e.g. `earlyexit:<policy>`). */
export interface WrapperDescriptor {
  /** Discriminant of the descriptor kinds. */
  readonly form: "wrapper";
  /** The policy's name: command-line prefix and JSON `kind` (lower case). */
  readonly name: string;
  /** One line on what it does. */
  readonly summary: string;
  /** A command-line example (shown in error messages and help). */
  readonly example: string;
  /** Builds the wrapping policy (its JSON is `{ kind: name, inner: inner.toJSON() }`). */
  wrap(inner: Policy): Policy;
  /** A short chart label from the wrapped policy's label. */
  label(inner: string): string;
}

/** A built-in policy's descriptor. */
export type PolicyDescriptor = ScheduleDescriptor | WrapperDescriptor;

const REGISTRY = new Map<string, PolicyDescriptor>();

/** The name custom policies use in JSON (`kind: "custom"`); no built-in may take it. */
const CUSTOM_KIND = "custom";

/** The step schedule's name (`step.ts`: its own syntax, `step:12x4,6x8,3`, not key=value). */
const STEP_KIND = "step";

function register<D extends PolicyDescriptor>(d: D): D {
  if (!/^[a-z][a-z0-9]*$/.test(d.name) || d.name === CUSTOM_KIND || REGISTRY.has(d.name)) {
    throw new Error(`policy registry: name "${d.name}" is taken or not lower-case letters`);
  }
  REGISTRY.set(d.name, d);
  return Object.freeze(d);
}

/**
 * Registers a built-in schedule policy and returns its descriptor. Its factory is then
 * `(options) => schedulePolicy(descriptor, options)`.
 *
 * @example
 * ```ts
 * import { defineSchedule, schedulePolicy } from "./registry.ts";
 * const STEP = defineSchedule({
 *   form: "schedule",
 *   name: "stepdoc",
 *   summary: "full depth for the first k generated tokens, then n layers",
 *   params: [
 *     { key: "n", type: "int", min: 1, doc: "budget after the step" },
 *     { key: "k", type: "int", min: 1, default: 4, doc: "generated tokens at full depth" },
 *   ],
 *   promptMode: true,
 *   example: "stepdoc:n=6,k=4",
 *   // j = c - P; generated token i = j + 1 (token 0 comes from the last prompt column)
 *   budget: (p, j, _H, L) => (j + 1 < p.k ? L : p.n),
 *   label: (p) => `step ${p.n} k${p.k}`,
 * });
 * console.log(String(schedulePolicy(STEP, { n: 6 }))); // "stepdoc:n=6,k=4"
 * ```
 */
export function defineSchedule<const P extends readonly ParamSpec[]>(
  descriptor: ScheduleDescriptor<P>,
): ScheduleDescriptor<P> {
  return register(descriptor) as ScheduleDescriptor<P>;
}

/**
 * Registers a built-in wrapper policy (one that wraps another policy) and returns it.
 *
 * @example
 * ```ts
 * import { defineWrapper, full } from "../mod.ts";
 * const SAME = defineWrapper({
 *   form: "wrapper",
 *   name: "samedoc",
 *   summary: "the wrapped policy, unchanged",
 *   example: "samedoc:full",
 *   wrap: (inner) => ({ ...inner, toJSON: () => ({ kind: "samedoc", inner: inner.toJSON() }) }),
 *   label: (inner) => inner,
 * });
 * console.log(SAME.wrap(full()).name); // "full"
 * ```
 */
export function defineWrapper(descriptor: WrapperDescriptor): WrapperDescriptor {
  return register(descriptor);
}

/**
 * The built-in policies' descriptors, in registration order.
 *
 * @example
 * ```ts
 * import { builtinPolicies } from "../mod.ts";
 * console.log(builtinPolicies().map((d) => d.name)); // ["full", "constant", "linear", ...]
 * ```
 */
export function builtinPolicies(): PolicyDescriptor[] {
  return [...REGISTRY.values()];
}

/**
 * The descriptor of the built-in policy `name` (case-insensitive), or `undefined`.
 *
 * @example
 * ```ts
 * import { builtinPolicy } from "../mod.ts";
 * console.log(builtinPolicy("Linear")?.example); // "linear:max=12,min=4,warmup=1,horizon=64"
 * ```
 */
export function builtinPolicy(name: string): PolicyDescriptor | undefined {
  return REGISTRY.get(name.toLowerCase());
}

/**
 * Whether `name` (case-insensitive) is reserved by a built-in policy (or is `custom`).
 *
 * @example
 * ```ts
 * import { isBuiltinName } from "../mod.ts";
 * console.log(isBuiltinName("LINEAR"), isBuiltinName("mine")); // true false
 * ```
 */
export function isBuiltinName(name: string): boolean {
  const n = name.toLowerCase();
  return n === CUSTOM_KIND || n === STEP_KIND || REGISTRY.has(n);
}

/**
 * One example of every built-in policy's command-line form, comma-separated (for messages).
 *
 * @example
 * ```ts
 * import { policyExamples } from "../mod.ts";
 * console.log(policyExamples().startsWith("full, constant:")); // true
 * ```
 */
export function policyExamples(): string {
  return [...builtinPolicies().map((d) => d.example), STEP_EXAMPLE].join(", ");
}

/**
 * Every built-in policy's documentation, from its descriptor: name, summary, example, and each
 * key with its type, range and default (what `--help` texts and notebooks show).
 *
 * @example
 * ```ts
 * import { policyHelp } from "../mod.ts";
 * console.log(policyHelp());
 * // full: every column runs all L layers
 * //   e.g. full
 * // constant: every scheduled column runs the SkipDecode set of budget n
 * //   e.g. constant:n=6,warmup=1
 * //   n       integer >= 1, required: budget of every scheduled column (w < n <= L)
 * // ...
 * ```
 */
export function policyHelp(): string {
  const lines: string[] = [];
  for (const d of builtinPolicies()) {
    lines.push(`${d.name}: ${d.summary}`, `  e.g. ${d.example}`);
    if (d.form === "wrapper") {
      lines.push(`  ${d.name}:<policy> wraps any other policy`);
      continue;
    }
    const width = Math.max(6, ...d.params.map((p) => p.key.length));
    for (const p of d.params) {
      const range = `${p.type === "int" ? "integer" : "number"} ${
        p.exclusive ? ">" : ">="
      } ${p.min}`;
      const when = p.default !== undefined
        ? `default ${p.default}`
        : p.optional
        ? "optional"
        : "required";
      lines.push(`  ${p.key.padEnd(width)}  ${range}, ${when}: ${p.doc}`);
    }
    if (d.promptMode) {
      lines.push(
        `  ${"prompt".padEnd(width)}  full or decay, default full: how prompt columns run`,
      );
    }
  }
  lines.push(STEP_HELP);
  return lines.join("\n");
}

/**
 * Builds the policy a schedule descriptor describes, checking every parameter (type, range,
 * the descriptor's rules) with a {@linkcode PolicyError} naming the one at fault.
 *
 * @example
 * ```ts
 * import { LINEAR, schedulePolicy } from "../mod.ts";
 * const p = schedulePolicy(LINEAR, { max: 12, min: 4 });
 * console.log(String(p)); // "linear:max=12,min=4,warmup=0"
 * ```
 */
export function schedulePolicy<P extends readonly ParamSpec[]>(
  d: ScheduleDescriptor<P>,
  options: ScheduleOptions<P>,
): Policy {
  const who = d.name;
  if (typeof options !== "object" || options === null) {
    throw new PolicyError(`${who}: expected an options object, got ${String(options)}`);
  }
  const given = options as Record<string, unknown>;
  const values: Record<string, number> = {};
  for (const spec of d.params) {
    const v = given[spec.key] === undefined ? spec.default : given[spec.key];
    if (v === undefined && spec.optional) continue;
    values[spec.key] = checkParam(who, spec, v);
  }
  const p = values as ParamValues<P>;
  const promptMode: PromptMode = d.promptMode ? requirePromptMode(who, given.promptMode) : "full";
  d.check?.(p, who);
  const json: Record<string, unknown> = { kind: d.name, ...values };
  if (d.promptMode) json.promptMode = promptMode;
  const keys = Object.entries(values).map(([k, v]) => `${k}=${v}`);
  if (promptMode === "decay") keys.push("prompt=decay");
  const text = keys.length ? `${d.name}:${keys.join(",")}` : d.name;
  const top = d.top === undefined ? undefined : values[d.top];
  const warmup = d.warmup === undefined ? 0 : values[d.warmup];
  const horizon = d.horizon === undefined ? undefined : values[d.horizon];
  const budget = (ctx: ColumnContext): number => {
    checkContext(ctx, who);
    if (top !== undefined && top > ctx.layers) {
      throw new PolicyError(
        `${who}: ${d.top} (${top}) exceeds the model's ${ctx.layers} layers ` +
          `(the SkipDecode set needs n <= L)`,
        d.top,
      );
    }
    if (promptMode === "full" && ctx.column < ctx.promptLength) return ctx.layers;
    const H = horizon ?? ctx.maxNewTokens;
    return promptMode === "decay"
      ? d.budget(p, ctx.column, ctx.promptLength + H, ctx.layers)
      : d.budget(p, ctx.column - ctx.promptLength, H, ctx.layers);
  };
  const frozen = JSON.stringify(json);
  return {
    name: who,
    promptMode,
    budget,
    layerSet: (ctx) => skipDecodeSet(ctx.layers, budget(ctx), warmup),
    toJSON: () => JSON.parse(frozen),
    toString: () => text,
  };
}

/**
 * The policy with its prompt mode replaced: schedules are rebuilt with `mode`, wrappers pass it
 * to the policy they wrap, a policy without a prompt mode (`full`) is returned as it is. A
 * custom policy's prompt mode is part of its code: changing it is a {@linkcode PolicyError}.
 *
 * @example
 * ```ts
 * import { parsePolicy, withPromptMode } from "../mod.ts";
 * const p = withPromptMode(parsePolicy("earlyexit:linear:max=12,min=4"), "decay");
 * console.log(String(p)); // "earlyexit:linear:max=12,min=4,warmup=0,prompt=decay"
 * ```
 */
export function withPromptMode(policy: Policy, mode: PromptMode | undefined): Policy {
  if (!isPolicy(policy)) {
    throw new PolicyError("withPromptMode: expected a Policy", "policy");
  }
  if (mode === undefined || mode === policy.promptMode) return policy;
  requirePromptMode("withPromptMode", mode);
  return rebuild(policy.toJSON(), mode, policy);
}

function rebuild(json: PolicyJson, mode: PromptMode, policy?: Policy): Policy {
  const j = json as unknown as Record<string, unknown>;
  const d = typeof j.kind === "string" ? REGISTRY.get(j.kind) : undefined;
  if (d === undefined) {
    throw new PolicyError(
      `cannot change the prompt mode of custom policy "${String(j.name ?? j.kind)}": ` +
        `set it in the policy`,
      "promptMode",
    );
  }
  if (d.form === "wrapper") return d.wrap(rebuild(j.inner as PolicyJson, mode));
  if (!d.promptMode && policy !== undefined) return policy;
  const { kind: _kind, ...options } = j;
  if (d.promptMode) options.promptMode = mode;
  return schedulePolicy(d, options as ScheduleOptions<readonly ParamSpec[]>);
}

/**
 * A short label of a policy for charts and tables: `linear 12→4 w1 H24`,
 * `power 12→2 w1 α1 τ4`, `early-exit linear 10→2 H24`, with ` decay` for prompt decay;
 * a custom policy keeps its name.
 *
 * @example
 * ```ts
 * import { labelPolicy, linear } from "../mod.ts";
 * console.log(labelPolicy(linear({ max: 12, min: 4, warmup: 1, horizon: 24 })));
 * // "linear 12→4 w1 H24"
 * ```
 */
export function labelPolicy(policy: Policy): string {
  return labelJson(policy.toJSON());
}

function labelJson(json: PolicyJson): string {
  const j = json as unknown as Record<string, unknown>;
  const d = typeof j.kind === "string" ? REGISTRY.get(j.kind) : undefined;
  if (j.kind === STEP_KIND) {
    return `step ${j.steps}${j.warmup ? ` w${j.warmup}` : ""}` +
      (j.promptMode === "decay" ? " decay" : "");
  }
  if (d === undefined) return String(j.name ?? j.kind);
  if (d.form === "wrapper") return d.label(labelJson(j.inner as PolicyJson));
  return d.label(j as ParamValues<readonly ParamSpec[]>) +
    (j.promptMode === "decay" ? " decay" : "");
}

/**
 * Checks one parameter value against its spec; the message names the policy and the key.
 *
 * @example
 * ```ts
 * import { checkParam } from "../mod.ts";
 * checkParam("linear", { key: "max", type: "int", min: 1, doc: "" }, 12); // 12
 * ```
 */
export function checkParam(who: string, spec: ParamSpec, value: unknown): number {
  const { key, min } = spec;
  if (spec.type === "int") return requireInt(who, key, value, min);
  if (typeof value !== "number" || !Number.isFinite(value)) {
    throw new PolicyError(`${who}: ${key} must be a finite number, got ${String(value)}`, key);
  }
  if (spec.exclusive ? value <= min : value < min) {
    throw new PolicyError(
      `${who}: ${key} must be ${spec.exclusive ? ">" : ">="} ${min}, got ${value}`,
      key,
    );
  }
  return value;
}

/**
 * A prompt mode, defaulting to `"full"`; anything else is a {@linkcode PolicyError}.
 *
 * @example
 * ```ts
 * import { requirePromptMode } from "../mod.ts";
 * console.log(requirePromptMode("linear", undefined)); // "full"
 * ```
 */
export function requirePromptMode(who: string, mode: unknown): PromptMode {
  if (mode === undefined) return "full";
  if (mode !== "full" && mode !== "decay") {
    throw new PolicyError(
      `${who}: promptMode must be "full" or "decay", got ${JSON.stringify(mode)}`,
      "promptMode",
    );
  }
  return mode;
}

/**
 * Common rules between parameters, for a descriptor's `check`: `min <= max`, and warm-up
 * layers below the smallest budget (the SkipDecode set needs `w < n`).
 *
 * @example
 * ```ts
 * import { rules } from "../mod.ts";
 * rules.minAtMostMax("linear", 4, 12); // ok
 * rules.warmupBelow("linear", 1, "min", 4); // ok
 * ```
 */
export const rules: {
  /** `min <= max`, else an error naming `min`. */
  minAtMostMax(who: string, min: number, max: number): void;
  /** `warmup < n` where `n` is the parameter `key`, else an error naming `warmup`. */
  warmupBelow(who: string, warmup: number, key: string, n: number): void;
} = {
  /** `min <= max`, else an error naming `min`. */
  minAtMostMax(who: string, min: number, max: number): void {
    if (min > max) {
      throw new PolicyError(`${who}: min (${min}) must not exceed max (${max})`, "min");
    }
  },
  /** `warmup < n` where `n` is the parameter `key`, else an error naming `warmup`. */
  warmupBelow(who: string, warmup: number, key: string, n: number): void {
    if (warmup >= n) {
      throw new PolicyError(
        `${who}: warmup (${warmup}) must be below ${key} (${n}): the SkipDecode set needs w < n`,
        "warmup",
      );
    }
  },
};
