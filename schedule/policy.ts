/**
 * Exit policies (docs/DESIGN.md §3-4): a policy maps a column to a layer budget `n` and the budget to
 * a set of active layers. This file holds the contract ({@linkcode Policy}) and the layer sets;
 * the built-ins are described once each in `builtins.ts` (see `registry.ts`), `custom.ts` wraps
 * a function of your own. Every policy is plain data plus pure functions: `toJSON()` gives its
 * parameters, `toString()` its command-line form (see `parse.ts` for the way back).
 *
 * Columns: prompts are left-padded to length `P`; column `P - 1` produces generated token 0;
 * the generated-input index of column `c >= P` is `j = c - P`. With prompt mode `full` (the
 * default) prompt columns `c < P` run all `L` layers; with `decay` the schedule is applied to
 * every column with `j = c` and horizon `P + H`.
 *
 * @module
 */
import { PolicyError } from "./errors.ts";
import type { KnownPolicyJson } from "./builtins.ts";

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

/** JSON form of a {@linkcode customPolicy}: only its name; the function is not data. */
export interface CustomPolicyJson {
  /** Discriminant. */
  kind: "custom";
  /** The custom policy's name. */
  name: string;
  /** Prompt mode. */
  promptMode: PromptMode;
}

/**
 * A built-in schedule's JSON form (see `ScheduleJson` in `registry.ts` for a typed one):
 * `kind`, its parameters by key, and its prompt mode when it takes one.
 */
export interface BuiltinPolicyJson {
  /** Discriminant: the policy's name. */
  kind: string;
  /** Prompt mode (absent for `full`). */
  promptMode?: PromptMode;
  /** Parameters by key. */
  [param: string]: number | string | undefined;
}

/** A wrapper policy's JSON form (`earlyexit`): the policy it wraps. */
export interface WrapperPolicyJson {
  /** Discriminant: the wrapper's name. */
  kind: string;
  /** The wrapped policy's JSON. */
  inner: PolicyJson;
}

/**
 * A policy as plain data, discriminated by `kind`: any built-in schedule or wrapper, a custom
 * policy, or (typed field by field) one of the built-ins of `builtins.ts`.
 */
export type PolicyJson = BuiltinPolicyJson | WrapperPolicyJson | CustomPolicyJson | KnownPolicyJson;

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

/**
 * An integer `>= lo`, else a {@linkcode PolicyError} naming `key` (`"<who>: <key> must be an
 * integer >= <lo>, got <value>"`): the check every integer parameter and argument goes through.
 *
 * @example
 * ```ts
 * import { requireInt } from "./policy.ts";
 * console.log(requireInt("linear", "max", 12, 1)); // 12
 * ```
 */
export function requireInt(who: string, key: string, value: unknown, lo: number): number {
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
