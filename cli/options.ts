/**
 * The options several commands share, declared once and spread into each command's
 * `options` (`{ ...MODEL, ...BACKEND, ...JSON }`); {@linkcode withDefault} changes one's
 * default or description where a command needs another. Each carries its kind
 * ({@linkcode OptionSpec}), so `runCommand` converts and checks it before `run`.
 *
 * @example
 * ```ts
 * import { BACKEND, JSON_OUTPUT, MAX_NEW_TOKENS, MODEL, withDefault } from "./options.ts";
 * const options = { ...MODEL, ...BACKEND, ...withDefault(MAX_NEW_TOKENS, 64), ...JSON_OUTPUT };
 * ```
 * @module
 */
import { MAX_BATCH, MAX_NEW_TOKENS as MAX_TOKENS, type OptionSpec, UsageError } from "./command.ts";
import { TINY_MODEL_DIR } from "../data/bundled.ts";
import {
  builtinPolicy,
  parsePolicy,
  type Policy,
  type PromptMode,
  withPromptMode,
} from "../schedule/mod.ts";
import { loadPolicyFile } from "../schedule/policy_file.ts";

/** Options keyed by name, as a command declares them. */
export type Options = Record<string, OptionSpec>;

/** `--model DIR|ORG/NAME`: a checkpoint folder or a hub id (default: the bundled tiny model). */
export const MODEL: Options = {
  model: {
    kind: "path",
    value: "DIR|ORG/NAME",
    description: "checkpoint folder or hub id",
    default: TINY_MODEL_DIR,
  },
};

/** `--backend auto|cpu|webgpu`. */
export const BACKEND: Options = {
  backend: {
    kind: "enum",
    choices: ["auto", "cpu", "webgpu"],
    description: "where to run",
    default: "auto",
  },
};

/** `--policy SPEC` (one exit policy, default `full`). */
export const POLICY: Options = {
  policy: {
    kind: "text",
    value: "SPEC",
    description: "exit policy, e.g. linear:max=12,min=4,warmup=1,horizon=32 or step:12x4,6x8,3 " +
      "(default full; with --policy-file: the name of one of its policies)",
  },
};

/** `--policy SPEC`, repeatable (sweep, procedure). */
export const POLICIES: Options = {
  policy: {
    kind: "text",
    multiple: true,
    value: "SPEC",
    description: "a policy (full is always added)",
  },
};

/**
 * `--policy-file FILE.ts`: a module exporting a `defineSchedule` descriptor or a policy
 * function (`schedule/policy_file.ts`); repeatable where `--policy` is.
 */
export const POLICY_FILE: Options = {
  "policy-file": {
    kind: "path",
    value: "FILE.ts",
    description: "your own policy: a module exporting a defineSchedule descriptor or a " +
      "policy function (used instead of --policy)",
  },
};

/** `--prompt-mode full|decay` (overrides the policy's). */
export const PROMPT_MODE: Options = {
  "prompt-mode": {
    kind: "enum",
    choices: ["full", "decay"],
    description: "how prompt columns are treated (overrides the policy)",
  },
};

/** `--out DIR`: the report folder (the only place a command writes, besides the caches). */
export const OUT: Options = {
  out: { kind: "path", writes: true, value: "DIR", description: "report folder" },
};

/** `--json`: print JSON on stdout. */
export const JSON_OUTPUT: Options = { json: { kind: "flag", description: "print JSON" } };

/** `--offline`: never use the network. */
export const OFFLINE: Options = {
  offline: { kind: "flag", description: "never use the network (also HF_HUB_OFFLINE=1)" },
};

/** `--max-new-tokens N` (default 32). */
export const MAX_NEW_TOKENS: Options = {
  "max-new-tokens": {
    kind: "int",
    min: 1,
    max: MAX_TOKENS,
    value: "N",
    description: "tokens to generate per prompt",
    default: 32,
  },
};

/** `--batch-size B` (default 8). */
export const BATCH_SIZE: Options = {
  "batch-size": {
    kind: "int",
    min: 1,
    max: MAX_BATCH,
    value: "B",
    description: "rows per column-wise batch",
    default: 8,
  },
};

/** `--no-cache` and `--cache-dir DIR`: the decode cache of report commands. */
export const CACHE: Options = {
  cache: {
    kind: "flag",
    description: "reuse and store results in the cache (--no-cache: neither)",
    default: true,
  },
  "cache-dir": {
    kind: "path",
    writes: true,
    value: "DIR",
    description: "result cache (default .cache/skipdecode or $SKIPDECODE_CACHE_DIR)",
  },
};

/**
 * A shared option with another default or description (one option per call).
 *
 * @param options one shared option, e.g. {@linkcode MAX_NEW_TOKENS}
 * @param def the new default (`undefined`: none)
 * @param patch other fields to change
 * @returns the option, changed
 * @example
 * ```ts
 * import { MAX_NEW_TOKENS, withDefault } from "./options.ts";
 * withDefault(MAX_NEW_TOKENS, 64)["max-new-tokens"].default; // 64
 * ```
 */
export function withDefault(
  options: Options,
  def: string | number | boolean | undefined,
  patch: Partial<OptionSpec> = {},
): Options {
  const [name, spec] = Object.entries(options)[0];
  return { [name]: { ...spec, default: def, ...patch } };
}

/**
 * The one policy of a command from `--policy`, `--policy-file` and `--prompt-mode`: the
 * file's only policy when `--policy` is absent, the one `--policy NAME` names among the
 * file's (or a built-in spec) otherwise; `full` when neither is given.
 *
 * @param v the command's converted values
 * @param layers layers of the file's probe plan (default 12)
 * @returns the policy
 * @throws UsageError when the file holds several policies and `--policy` names none;
 * PolicyFileError naming a bad file; PolicyError naming a bad spec
 * @example
 * ```ts
 * import { policyOption } from "./options.ts";
 * String(await policyOption({ policy: "step:12x4,3" })); // "step:12x4,3"
 * ```
 */
export async function policyOption(
  v: Record<string, unknown>,
  layers?: number,
): Promise<Policy> {
  const file = v["policy-file"] as string | undefined;
  const spec = v.policy as string | undefined;
  const mode = v["prompt-mode"] as PromptMode | undefined;
  if (file === undefined) return withPromptMode(parseSpec(spec ?? "full", []), mode);
  const custom = await loadPolicyFile(file, { layers });
  if (spec === undefined) {
    if (custom.length > 1) {
      throw new UsageError(
        `--policy-file ${file} holds ${custom.length} policies (${
          custom.map((p) => p.name).join(", ")
        }): choose one with --policy NAME`,
      );
    }
    return withPromptMode(custom[0], mode);
  }
  return withPromptMode(parseSpec(spec, custom), mode);
}

/** A `--policy` spec parsed, its error naming the option and the spec. */
function parseSpec(spec: string, custom: Policy[]): Policy {
  try {
    return parsePolicy(spec, { custom });
  } catch (e) {
    if ((e as Error).name !== "PolicyError") throw e;
    throw new UsageError(`--policy ${spec}: ${(e as Error).message}`);
  }
}

/**
 * The policies of a command that runs several (`sweep`): the `--policy` specs (which may
 * name the file's policies) followed by every policy of `--policy-file` not named already;
 * `undefined` when neither is given (the command's default set applies).
 *
 * @param v the command's converted values
 * @param layers layers of the file's probe plan (default 12)
 * @returns the policies, or `undefined`
 * @example
 * ```ts
 * import { policiesOption } from "./options.ts";
 * (await policiesOption({ policy: ["full", "step:12x4,3"] }))?.map(String);
 * ```
 */
export async function policiesOption(
  v: Record<string, unknown>,
  layers?: number,
): Promise<Policy[] | undefined> {
  const file = v["policy-file"] as string | undefined;
  const specs = (v.policy as string[] | undefined) ?? [];
  const custom = file === undefined ? [] : await loadPolicyFile(file, { layers });
  if (file === undefined && specs.length === 0) return undefined;
  const named = specs.map((s) => parseSpec(s, custom));
  const names = new Set(named.map(String));
  return [...named, ...custom.filter((c) => !names.has(String(c)))];
}

/** What a command reports about its model: what was asked for, the folder, the revision. */
export interface ModelInfo {
  /** The `--model` value: a folder or a hub id. */
  source: string;
  /** The folder read (a cache snapshot for a hub id). */
  dir: string;
  /** The hub commit (or revision) read; absent for a local folder. */
  revision?: string;
}

/**
 * The model a command ran, for `--json` output.
 *
 * @example
 * ```ts
 * import { modelInfo } from "./options.ts";
 * modelInfo({ source: "facebook/opt-125m", dir: "/c/snap", revision: "abc" }).revision; // "abc"
 * ```
 */
export function modelInfo(model: { source: string; dir: string; revision?: string }): ModelInfo {
  return {
    source: model.source,
    dir: model.dir,
    ...(model.revision ? { revision: model.revision } : {}),
  };
}

/**
 * The model a command ran, for text output: the folder, or `hub-id@revision`.
 *
 * @example
 * ```ts
 * import { modelLabel } from "./options.ts";
 * modelLabel({ source: "facebook/opt-125m", dir: "/c/snap", revision: "abc" }); // "facebook/opt-125m@abc"
 * ```
 */
export function modelLabel(model: { source: string; dir: string; revision?: string }): string {
  return model.revision ? `${model.source}@${model.revision}` : model.source;
}

/**
 * The horizon `H` a policy uses in a run of `maxNewTokens` tokens: its own `horizon` key,
 * or `maxNewTokens` when the key is unset (implicit); `null` for a policy without one.
 *
 * @example
 * ```ts
 * import { implicitHorizon } from "./options.ts";
 * import { parsePolicy } from "../schedule/mod.ts";
 * implicitHorizon(parsePolicy("linear:max=12,min=4"), 32); // { value: 32, implicit: true }
 * ```
 */
export function implicitHorizon(
  policy: Policy,
  maxNewTokens: number,
): { value: number; implicit: boolean } | null {
  let json = policy.toJSON() as unknown as Record<string, unknown>;
  while (json.inner && typeof json.inner === "object") {
    json = json.inner as Record<string, unknown>;
  }
  const d = typeof json.kind === "string" ? builtinPolicy(json.kind) : undefined;
  if (d?.form !== "schedule" || d.horizon === undefined) return null;
  const h = json[d.horizon];
  return typeof h === "number"
    ? { value: h, implicit: false }
    : { value: maxNewTokens, implicit: true };
}

/**
 * ` (horizon 32 = --max-new-tokens)` for a policy whose horizon is implicit, else `""`.
 *
 * @example
 * ```ts
 * import { horizonNote } from "./options.ts";
 * import { parsePolicy } from "../schedule/mod.ts";
 * horizonNote(parsePolicy("linear:max=12,min=4"), 32); // " (horizon 32 = --max-new-tokens)"
 * ```
 */
export function horizonNote(policy: Policy, maxNewTokens: number): string {
  const h = implicitHorizon(policy, maxNewTokens);
  return h?.implicit ? ` (horizon ${h.value} = --max-new-tokens)` : "";
}

/**
 * The environment variables the toolkit reads: the `--allow-env` of the launcher
 * (`cli/launch.ts`) and of Slurm tasks (`cli/shard.ts`).
 *
 * @example
 * ```ts
 * import { TOOLKIT_ENV } from "./options.ts";
 * TOOLKIT_ENV.includes("HF_HOME"); // true
 * ```
 */
export const TOOLKIT_ENV: readonly string[] = [
  "HOME",
  "USERPROFILE",
  "XDG_CACHE_HOME",
  "XDG_RUNTIME_DIR",
  "HF_HUB_CACHE",
  "HF_HOME",
  "HF_HUB_OFFLINE",
  "HF_ENDPOINT",
  "SKIPDECODE_*",
  "SLURM_ARRAY_TASK_ID",
  "SLURM_ARRAY_TASK_COUNT",
  "SLURM_ARRAY_TASK_MIN",
  "JOB_COMPLETION_INDEX",
  "VK_ICD_FILENAMES",
];
