/**
 * Policies of your own from a file (`--policy-file my_policy.ts` on the command line): a
 * module whose exports are a `defineSchedule` descriptor (built with its defaults), a
 * {@linkcode Policy} (e.g. from `customPolicy`), or a layer-set function `(ctx) => layers`
 * (wrapped by `customPolicy`, named after its export; `default` after the file). Every policy
 * found is planned once on a probe run (12 layers unless told, prompt 4, 64 tokens), so a
 * file that throws, exports nothing usable, or whose policy breaks nesting is one
 * {@linkcode PolicyFileError} naming the file, before any model is loaded.
 *
 * @example
 * ```ts ignore
 * // my_policy.ts: full depth for j = 0 .. 7 (docs/DESIGN.md's j = c - P), then 6 layers
 * import { skipDecodeSet } from "./schedule/mod.ts";
 * export default ({ column, promptLength, layers }) =>
 *   skipDecodeSet(layers, column - promptLength < 8 ? layers : 6, 1);
 * ```
 * @module
 */
import { isAbsolute, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { customPolicy } from "./custom.ts";
import { isPolicy, type Policy } from "./policy.ts";
import { type ScheduleDescriptor, schedulePolicy } from "./registry.ts";
import { plan } from "./plan.ts";

/**
 * A policy file that cannot be used; the message names the file.
 *
 * @example
 * ```ts
 * import { PolicyFileError } from "./policy_file.ts";
 * new PolicyFileError("mine.ts", "exports no policy").message; // "policy file mine.ts: exports no policy"
 * ```
 */
export class PolicyFileError extends Error {
  /** The file at fault. */
  readonly file: string;
  /** Makes the error. */
  constructor(file: string, message: string, options?: ErrorOptions) {
    super(`policy file ${file}: ${message}`, options);
    this.name = "PolicyFileError";
    this.file = file;
  }
}

/** Options of {@linkcode loadPolicyFile}. */
export interface PolicyFileOptions {
  /** Layers of the probe plan (default 12: the bundled model's and OPT-125m's). */
  layers?: number;
}

function isScheduleDescriptor(v: unknown): v is ScheduleDescriptor {
  const d = v as ScheduleDescriptor;
  return typeof v === "object" && v !== null && d.form === "schedule" &&
    typeof d.name === "string" && typeof d.budget === "function" && Array.isArray(d.params);
}

function stem(file: string): string {
  const base = file.split(/[\\/]/).pop() ?? "policy";
  const s = base.replace(/\.[^.]*$/, "").replace(/[^A-Za-z0-9_.-]/g, "_");
  return /^[A-Za-z_]/.test(s) ? s : `_${s}`;
}

function oneLine(e: unknown): string {
  return String((e as Error)?.message ?? e).split(/\s*\n+\s*/).join(" ");
}

/**
 * Imports a policy file and returns its policies (in export order), each planned once.
 *
 * @param file the module's path (relative to the working folder, or absolute)
 * @param options the probe's layer count
 * @returns its policies (at least one)
 * @throws PolicyFileError naming the file: it cannot be imported or throws, exports no
 * policy, or a policy is invalid (bad parameters, broken nesting)
 * @example
 * ```ts ignore
 * const [mine] = await loadPolicyFile("my_policy.ts");
 * ```
 */
export async function loadPolicyFile(
  file: string,
  options: PolicyFileOptions = {},
): Promise<Policy[]> {
  const url = pathToFileURL(isAbsolute(file) ? file : resolve(file)).href;
  let mod: Record<string, unknown>;
  try {
    mod = await import(url);
  } catch (e) {
    const err = e as Error;
    const why = err instanceof Deno.errors.NotFound || /Module not found/i.test(err?.message)
      ? "no such file"
      : `cannot be loaded: ${oneLine(e)}`;
    throw new PolicyFileError(file, why, { cause: e });
  }
  const policies: Policy[] = [];
  for (const [name, value] of Object.entries(mod)) {
    try {
      if (isPolicy(value)) policies.push(value);
      else if (isScheduleDescriptor(value)) policies.push(schedulePolicy(value, {}));
      else if (typeof value === "function") {
        const layerSet = value as Policy["layerSet"];
        policies.push(customPolicy({ name: name === "default" ? stem(file) : name, layerSet }));
      }
    } catch (e) {
      throw new PolicyFileError(file, `export "${name}": ${oneLine(e)}`, { cause: e });
    }
  }
  if (policies.length === 0) {
    throw new PolicyFileError(
      file,
      "exports no policy: export a defineSchedule descriptor, a Policy (customPolicy) or a " +
        "layer-set function (ctx) => layers",
    );
  }
  const layers = options.layers ?? 12;
  for (const p of policies) {
    try {
      plan(p, { layers, promptLength: 4, maxNewTokens: 64 });
    } catch (e) {
      throw new PolicyFileError(
        file,
        `policy "${p.name}" on a probe run (${layers} layers, prompt 4, 64 tokens): ${oneLine(e)}`,
        { cause: e },
      );
    }
  }
  return policies;
}
