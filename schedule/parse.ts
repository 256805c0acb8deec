/**
 * The way back from a policy's two serialised forms: {@linkcode parsePolicy} reads the
 * command-line form (`linear:max=12,min=4,warmup=1,horizon=64`) and
 * {@linkcode policyFromJson} reads `policy.toJSON()`. Both are strict: an unknown policy or
 * key, a missing key or a bad number gives a {@linkcode PolicyError} naming the key.
 *
 * @module
 */
import { PolicyError } from "./errors.ts";
import {
  constant,
  earlyExit,
  full,
  isPolicy,
  linear,
  type Policy,
  powerLaw,
  type PromptMode,
} from "./policy.ts";

/** Where custom policies are looked up by name when parsing. */
export interface PolicyLookup {
  /** Custom policies that may be named (by their exact `name`). */
  custom?: readonly Policy[];
}

/** The command-line keys of each parameterised built-in policy, required ones first. */
const KEYS: Record<string, { required: string[]; optional: string[] }> = {
  constant: { required: ["n"], optional: ["warmup", "prompt"] },
  linear: { required: ["max", "min"], optional: ["warmup", "horizon", "prompt"] },
  powerlaw: { required: ["max", "min", "alpha", "tau"], optional: ["warmup", "prompt"] },
};

const EXAMPLES = "full, constant:n=6,warmup=1, linear:max=12,min=4,warmup=1,horizon=64, " +
  "powerlaw:max=12,min=2,warmup=1,alpha=1,tau=8, earlyexit:linear:max=12,min=4";

/**
 * Parses the command-line form of a policy:
 *
 * - `full`
 * - `constant:n=6,warmup=1`
 * - `linear:max=12,min=4,warmup=1,horizon=64` (`horizon` optional: the generation length)
 * - `powerlaw:max=12,min=2,warmup=1,alpha=1,tau=8`
 * - `earlyexit:<policy>`, e.g. `earlyexit:linear:max=12,min=4,horizon=64`
 * - the exact name of a custom policy given in `lookup.custom`
 *
 * `warmup` defaults to 0; `prompt=full|decay` sets the prompt mode (default `full`).
 * Names and keys are case-insensitive. `parsePolicy(String(p))` rebuilds `p`.
 *
 * @example
 * ```ts
 * import { parsePolicy } from "./mod.ts";
 * const p = parsePolicy("linear:max=12,min=4,warmup=1,horizon=64");
 * console.log(p.toJSON()); // { kind: "linear", max: 12, min: 4, warmup: 1, ... }
 * ```
 */
export function parsePolicy(spec: string, lookup: PolicyLookup = {}): Policy {
  if (typeof spec !== "string") {
    throw new PolicyError(`policy spec must be a string, got ${typeof spec}`, "policy");
  }
  const text = spec.trim();
  if (text === "") {
    throw new PolicyError(`empty policy spec; expected one of: ${EXAMPLES}`, "policy");
  }
  const colon = text.indexOf(":");
  const rawName = (colon < 0 ? text : text.slice(0, colon)).trim();
  const rest = colon < 0 ? "" : text.slice(colon + 1).trim();
  const name = rawName.toLowerCase();
  if (name === "full") {
    if (rest !== "") {
      const key = rest.split(/[=,]/)[0].trim();
      throw new PolicyError(`policy "full" takes no keys, got "${key}"`, key);
    }
    return full();
  }
  if (name === "earlyexit") {
    if (rest === "") {
      throw new PolicyError(
        `policy "earlyexit" wraps another policy, e.g. earlyexit:linear:max=12,min=4`,
        "earlyexit",
      );
    }
    return earlyExit(parsePolicy(rest, lookup));
  }
  const keys = KEYS[name];
  if (keys === undefined) {
    const custom = findCustom(rawName, lookup);
    if (custom !== undefined) {
      if (rest !== "") {
        throw new PolicyError(`custom policy "${rawName}" takes no keys, got "${rest}"`, rawName);
      }
      return custom;
    }
    throw new PolicyError(
      `unknown policy "${rawName}"; expected one of: ${EXAMPLES}` +
        (lookup.custom?.length ? `, or ${lookup.custom.map((p) => p.name).join(", ")}` : ""),
      "policy",
    );
  }
  const values = parseKeyValues(name, rest, [...keys.required, ...keys.optional]);
  // Bad values first, so `linear:max=abc` names "abc", not a missing key.
  for (const [key, v] of values) if (key !== "prompt") parseNumber(name, key, v);
  for (const key of keys.required) {
    if (!values.has(key)) {
      throw new PolicyError(`policy "${name}" needs key "${key}" (e.g. ${example(name)})`, key);
    }
  }
  const num = (key: string) => {
    const v = values.get(key);
    return v === undefined ? undefined : parseNumber(name, key, v);
  };
  const promptMode = parsePromptMode(name, values.get("prompt"));
  switch (name) {
    case "constant":
      return constant({ n: num("n")!, warmup: num("warmup"), promptMode });
    case "linear":
      return linear({
        max: num("max")!,
        min: num("min")!,
        warmup: num("warmup"),
        horizon: num("horizon"),
        promptMode,
      });
    default:
      return powerLaw({
        max: num("max")!,
        min: num("min")!,
        warmup: num("warmup"),
        alpha: num("alpha")!,
        tau: num("tau")!,
        promptMode,
      });
  }
}

/**
 * Rebuilds a policy from `policy.toJSON()` (or `JSON.parse` of it). Unknown kinds and
 * fields, missing fields and wrong types give a {@linkcode PolicyError} naming the field.
 * A `custom` policy is looked up by name in `lookup.custom` (its function is not data).
 *
 * @example
 * ```ts
 * import { linear, policyFromJson } from "./mod.ts";
 * const p = linear({ max: 12, min: 4, warmup: 1 });
 * const q = policyFromJson(JSON.parse(JSON.stringify(p)));
 * console.log(String(q) === String(p)); // true
 * ```
 */
export function policyFromJson(json: unknown, lookup: PolicyLookup = {}): Policy {
  if (typeof json !== "object" || json === null || Array.isArray(json)) {
    throw new PolicyError(`policy JSON must be an object with a "kind", got ${show(json)}`, "kind");
  }
  const o = json as Record<string, unknown>;
  const kind = o.kind;
  const fields = (allowed: string[], required: string[]) => {
    for (const k of Object.keys(o)) {
      if (k !== "kind" && !allowed.includes(k)) {
        throw new PolicyError(
          `policy JSON of kind "${kind}": unknown field "${k}" (expected ${allowed.join(", ")})`,
          k,
        );
      }
    }
    for (const k of required) {
      if (o[k] === undefined) {
        throw new PolicyError(`policy JSON of kind "${kind}": missing field "${k}"`, k);
      }
    }
  };
  const num = (k: string): number | undefined => {
    const v = o[k];
    if (v === undefined) return undefined;
    if (typeof v !== "number") {
      throw new PolicyError(
        `policy JSON of kind "${kind}": field "${k}" must be a number, got ${show(v)}`,
        k,
      );
    }
    return v;
  };
  const mode = o.promptMode as PromptMode | undefined;
  switch (kind) {
    case "full":
      fields([], []);
      return full();
    case "constant":
      fields(["n", "warmup", "promptMode"], ["n"]);
      return constant({ n: num("n")!, warmup: num("warmup"), promptMode: mode });
    case "linear":
      fields(["max", "min", "warmup", "horizon", "promptMode"], ["max", "min"]);
      return linear({
        max: num("max")!,
        min: num("min")!,
        warmup: num("warmup"),
        horizon: num("horizon"),
        promptMode: mode,
      });
    case "powerlaw":
      fields(["max", "min", "warmup", "alpha", "tau", "promptMode"], [
        "max",
        "min",
        "alpha",
        "tau",
      ]);
      return powerLaw({
        max: num("max")!,
        min: num("min")!,
        warmup: num("warmup"),
        alpha: num("alpha")!,
        tau: num("tau")!,
        promptMode: mode,
      });
    case "earlyexit":
      fields(["inner"], ["inner"]);
      return earlyExit(policyFromJson(o.inner, lookup));
    case "custom": {
      fields(["name", "promptMode"], ["name"]);
      const found = typeof o.name === "string" ? findCustom(o.name, lookup) : undefined;
      if (found === undefined) {
        throw new PolicyError(
          `custom policy ${show(o.name)} is not registered: its function is not data, so pass ` +
            `the policy in lookup.custom to rebuild it`,
          "name",
        );
      }
      if (o.promptMode !== undefined && o.promptMode !== found.promptMode) {
        throw new PolicyError(
          `custom policy "${found.name}" has prompt mode "${found.promptMode}", the JSON says ` +
            `${show(o.promptMode)}`,
          "promptMode",
        );
      }
      return found;
    }
    default:
      throw new PolicyError(
        `unknown policy kind ${show(kind)} (expected full, constant, linear, powerlaw, ` +
          `earlyexit or custom)`,
        "kind",
      );
  }
}

function findCustom(name: string, lookup: PolicyLookup): Policy | undefined {
  for (const p of lookup.custom ?? []) {
    if (!isPolicy(p)) {
      throw new PolicyError(`lookup.custom holds something that is not a Policy`, "custom");
    }
    if (p.name === name) return p;
  }
  return undefined;
}

function parseKeyValues(name: string, rest: string, allowed: string[]): Map<string, string> {
  const values = new Map<string, string>();
  if (rest === "") return values;
  for (const item of rest.split(",")) {
    const eq = item.indexOf("=");
    const key = (eq < 0 ? item : item.slice(0, eq)).trim().toLowerCase();
    if (key === "") {
      throw new PolicyError(`policy "${name}": empty key in "${rest}"`, "");
    }
    if (!allowed.includes(key)) {
      throw new PolicyError(
        `policy "${name}": unknown key "${key}" (expected ${allowed.join(", ")})`,
        key,
      );
    }
    if (eq < 0) {
      throw new PolicyError(`policy "${name}": key "${key}" needs a value (${key}=...)`, key);
    }
    if (values.has(key)) {
      throw new PolicyError(`policy "${name}": key "${key}" given twice`, key);
    }
    values.set(key, item.slice(eq + 1).trim());
  }
  return values;
}

const NUMBER = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;

function parseNumber(name: string, key: string, text: string): number {
  const v = NUMBER.test(text) ? Number(text) : NaN;
  if (!Number.isFinite(v)) {
    throw new PolicyError(`policy "${name}": key "${key}" needs a number, got "${text}"`, key);
  }
  return v;
}

function parsePromptMode(name: string, text: string | undefined): PromptMode | undefined {
  if (text === undefined) return undefined;
  const v = text.toLowerCase();
  if (v !== "full" && v !== "decay") {
    throw new PolicyError(
      `policy "${name}": key "prompt" must be full or decay, got "${text}"`,
      "prompt",
    );
  }
  return v;
}

function example(name: string): string {
  return name === "constant"
    ? "constant:n=6,warmup=1"
    : name === "linear"
    ? "linear:max=12,min=4,warmup=1,horizon=64"
    : "powerlaw:max=12,min=2,warmup=1,alpha=1,tau=8";
}

function show(v: unknown): string {
  try {
    return JSON.stringify(v) ?? String(v);
  } catch {
    return String(v);
  }
}
