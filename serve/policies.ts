/**
 * Policies a request may name: the built-in ones (the `--policy` syntax) and those of the
 * policy files the server loaded at start (`serve --policy-file FILE.ts`, repeatable). A
 * request never loads code: its `policy` may name a loaded file's policy by name, or a loaded
 * file itself (as given at start, or the same path resolved) when that file holds exactly one
 * policy; a file the server did not load is refused with a message that says how to load it.
 *
 * @example
 * ```ts
 * import { customPolicy, skipDecodeSet } from "../schedule/mod.ts";
 * import { servedPolicy } from "./policies.ts";
 * const step8 = customPolicy({
 *   name: "step8",
 *   layerSet: ({ column, promptLength, layers }) =>
 *     skipDecodeSet(layers, column - promptLength < 8 ? layers : 6, 1),
 * });
 * const files = [{ file: "my_policy.ts", policies: [step8] }];
 * servedPolicy("step8", files).name; // "step8"
 * servedPolicy("my_policy.ts", files).name; // "step8"
 * String(servedPolicy("linear:max=12,min=4", files)); // a built-in policy
 * ```
 * @module
 */
import { resolve } from "node:path";
import { parsePolicy, type Policy } from "../schedule/mod.ts";

/** A policy file loaded at server start and its policies (in export order). */
export interface ServedPolicyFile {
  /** The path as given on the command line. */
  file: string;
  /** Its policies (at least one). */
  policies: readonly Policy[];
}

/** A `policy` value that names a file rather than a policy (a path, or a module's name). */
const FILE_LIKE = /[\\/]|\.(?:[cm]?[jt]s|tsx|jsx)$/i;

/**
 * The policy a request's `policy` string names.
 *
 * @param spec the request's `policy` field
 * @param files the policy files loaded at server start
 * @returns the policy
 * @throws Error (the server answers 400 naming `policy`) for an unknown policy, a file the
 * server did not load, a loaded file with several policies, or bad parameters
 * @example
 * ```ts
 * import { servedPolicy } from "./policies.ts";
 * try {
 *   servedPolicy("my_policy.ts", []);
 * } catch (e) {
 *   console.log((e as Error).message); // policy file my_policy.ts was not loaded at server start ...
 * }
 * ```
 */
export function servedPolicy(spec: string, files: readonly ServedPolicyFile[]): Policy {
  const text = spec.trim();
  if (FILE_LIKE.test(text)) {
    const f = files.find((f) => f.file === text || resolve(f.file) === resolve(text));
    if (f === undefined) {
      throw new Error(
        `policy file ${text} was not loaded at server start (a request cannot load code): ` +
          `start the server with --policy-file ${text}` +
          (files.length ? ` (loaded: ${files.map((f) => f.file).join(", ")})` : ""),
      );
    }
    if (f.policies.length > 1) {
      throw new Error(
        `policy file ${f.file} holds ${f.policies.length} policies ` +
          `(${f.policies.map((p) => p.name).join(", ")}): name one`,
      );
    }
    return f.policies[0];
  }
  return parsePolicy(text, { custom: files.flatMap((f) => f.policies) });
}

/**
 * Checks that no two loaded files export a policy of the same name (a request names policies
 * by name).
 *
 * @param files the loaded files
 * @throws Error naming both files and the policy
 * @example
 * ```ts
 * import { assertDistinctNames } from "./policies.ts";
 * assertDistinctNames([]); // nothing to compare
 * ```
 */
export function assertDistinctNames(files: readonly ServedPolicyFile[]): void {
  const seen = new Map<string, string>();
  for (const f of files) {
    for (const p of f.policies) {
      const other = seen.get(p.name);
      if (other !== undefined) {
        throw new Error(
          `policy "${p.name}" is exported by both ${other} and ${f.file}: a request could not ` +
            `tell them apart (rename one)`,
        );
      }
      seen.set(p.name, f.file);
    }
  }
}
