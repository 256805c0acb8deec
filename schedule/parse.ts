/**
 * The way back from a policy's two serialised forms: {@linkcode parsePolicy} reads the
 * command-line form (`linear:max=12,min=4,warmup=1,horizon=64`) and
 * {@linkcode policyFromJson} reads `policy.toJSON()`. Both are strict: an unknown policy or
 * key, a missing key or a bad number gives a {@linkcode PolicyError} naming the key. Both are
 * driven by the built-in policies' descriptors (`builtins.ts`, `registry.ts`): keys, required
 * ones, examples and the factories come from there.
 *
 * @module
 */
import { PolicyError } from "./errors.ts";
import { isPolicy, type Policy, type PromptMode } from "./policy.ts";
import {
  builtinPolicies,
  builtinPolicy,
  type ParamSpec,
  policyExamples,
  type ScheduleDescriptor,
  type ScheduleOptions,
  schedulePolicy,
} from "./registry.ts";
import "./builtins.ts"; // registers the built-in policies
import { parseStep, STEP_NAME, stepFromJson } from "./step.ts";

/** Where custom policies are looked up by name when parsing. */
export interface PolicyLookup {
  /** Custom policies that may be named (by their exact `name`). */
  custom?: readonly Policy[];
}

/** How deep wrapper policies (`earlyexit:...`) may nest in a policy string. */
export const MAX_WRAPPER_DEPTH = 16;
let wrapDepth = 0;

/**
 * Parses the command-line form of a policy: `name:key=value,...` for a built-in schedule
 * (`linear:max=12,min=4,warmup=1,horizon=64`; the keys, their ranges and defaults are its
 * descriptor's, see {@linkcode builtinPolicies}), `name:<policy>` for a wrapper
 * (`earlyexit:linear:max=12,min=4`), or the exact name of a custom policy given in
 * `lookup.custom`.
 *
 * `prompt=full|decay` sets the prompt mode (default `full`) of a schedule that has one.
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
    throw new PolicyError(`empty policy spec; expected one of: ${policyExamples()}`, "policy");
  }
  const colon = text.indexOf(":");
  const rawName = (colon < 0 ? text : text.slice(0, colon)).trim();
  const rest = colon < 0 ? "" : text.slice(colon + 1).trim();
  const name = rawName.toLowerCase();
  if (name === STEP_NAME) return parseStep(rest);
  const d = builtinPolicy(name);
  if (d === undefined) {
    const custom = findCustom(rawName, lookup);
    if (custom !== undefined) {
      if (rest !== "") {
        throw new PolicyError(`custom policy "${rawName}" takes no keys, got "${rest}"`, rawName);
      }
      return custom;
    }
    throw new PolicyError(
      `unknown policy "${rawName}"; expected one of: ${policyExamples()}` +
        (lookup.custom?.length ? `, or ${lookup.custom.map((p) => p.name).join(", ")}` : ""),
      "policy",
    );
  }
  if (d.form === "wrapper") {
    if (rest === "") {
      throw new PolicyError(
        `policy "${d.name}" wraps another policy, e.g. ${d.example}`,
        d.name,
      );
    }
    // A wrapper of a wrapper is legal but pointless; thousands of them overflowed the stack.
    if (wrapDepth >= MAX_WRAPPER_DEPTH) {
      throw new PolicyError(
        `policy "${d.name}" nests wrapped policies more than ${MAX_WRAPPER_DEPTH} deep`,
        d.name,
      );
    }
    wrapDepth++;
    try {
      return d.wrap(parsePolicy(rest, lookup));
    } finally {
      wrapDepth--;
    }
  }
  const allowed = keysOf(d);
  if (allowed.length === 0 && rest !== "") {
    const key = rest.split(/[=,]/)[0].trim();
    throw new PolicyError(`policy "${d.name}" takes no keys, got "${key}"`, key);
  }
  const values = parseKeyValues(d.name, rest, allowed);
  // Bad values first, so `linear:max=abc` names "abc", not a missing key.
  const options: Record<string, unknown> = {};
  for (const [key, v] of values) {
    options[key === "prompt" ? "promptMode" : key] = key === "prompt"
      ? parsePromptMode(d.name, v)
      : parseNumber(d.name, key, v);
  }
  for (const spec of d.params) {
    if (isRequired(spec) && !values.has(spec.key)) {
      throw new PolicyError(
        `policy "${d.name}" needs key "${spec.key}" (e.g. ${d.example})`,
        spec.key,
      );
    }
  }
  return schedulePolicy(d, options as ScheduleOptions<readonly ParamSpec[]>);
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
  if (kind === "custom") {
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
  if (kind === STEP_NAME) return stepFromJson(o);
  // JSON kinds are exact (lower case), unlike the command line's names.
  const d = typeof kind === "string" && kind === kind.toLowerCase()
    ? builtinPolicy(kind)
    : undefined;
  if (d === undefined) {
    throw new PolicyError(
      `unknown policy kind ${show(kind)} (expected ` +
        `${builtinPolicies().map((b) => b.name).join(", ")} or custom)`,
      "kind",
    );
  }
  if (d.form === "wrapper") {
    fields(["inner"], ["inner"]);
    return d.wrap(policyFromJson(o.inner, lookup));
  }
  fields(
    [...d.params.map((p) => p.key), ...(d.promptMode ? ["promptMode"] : [])],
    d.params.filter(isRequired).map((p) => p.key),
  );
  const options: Record<string, unknown> = {};
  for (const spec of d.params) {
    const v = o[spec.key];
    if (v === undefined) continue;
    if (typeof v !== "number") {
      throw new PolicyError(
        `policy JSON of kind "${kind}": field "${spec.key}" must be a number, got ${show(v)}`,
        spec.key,
      );
    }
    options[spec.key] = v;
  }
  if (d.promptMode) options.promptMode = o.promptMode;
  return schedulePolicy(d, options as ScheduleOptions<readonly ParamSpec[]>);
}

/** The command-line keys of a schedule: its parameters, then `prompt` when it takes one. */
function keysOf(d: ScheduleDescriptor): string[] {
  return [...d.params.map((p) => p.key), ...(d.promptMode ? ["prompt"] : [])];
}

function isRequired(spec: ParamSpec): boolean {
  return spec.default === undefined && !spec.optional;
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

function show(v: unknown): string {
  try {
    return JSON.stringify(v) ?? String(v);
  } catch {
    return String(v);
  }
}
