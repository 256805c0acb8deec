/**
 * The two errors of `schedule/`: {@linkcode PolicyError} for a bad policy (parameters,
 * command-line or JSON form) and {@linkcode PlanError} for a bad plan (empty, out-of-range
 * or unsorted sets, or sets that break the nesting invariant of docs/DESIGN.md §2).
 *
 * @module
 */

/**
 * A policy's parameters or serialised form are invalid. `key` names the parameter at fault
 * when there is one (e.g. `"min"`, `"horizon"`, `"policy"`).
 *
 * @example
 * ```ts
 * import { linear, PolicyError } from "./mod.ts";
 * try {
 *   linear({ max: 4, min: 6, warmup: 1 });
 * } catch (e) {
 *   if (e instanceof PolicyError) console.log(e.key); // "min"
 * }
 * ```
 */
export class PolicyError extends Error {
  /** The parameter (or serialised key) at fault, if any. */
  readonly key?: string;
  /** Makes a policy error; `key` names the parameter at fault. */
  constructor(message: string, key?: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "PolicyError";
    this.key = key;
  }
}

/**
 * A plan is invalid. `column` and `layer` locate the first offence when there is one
 * (for a nesting violation: the column that runs a layer an earlier column skipped).
 *
 * @example
 * ```ts
 * import { checkNesting, PlanError } from "./mod.ts";
 * try {
 *   checkNesting([[0, 1], [1], [0, 1]]);
 * } catch (e) {
 *   if (e instanceof PlanError) console.log(e.column, e.layer); // 2 0
 * }
 * ```
 */
export class PlanError extends Error {
  /** The first offending column, if any. */
  readonly column?: number;
  /** The offending layer of that column, if any. */
  readonly layer?: number;
  /** Makes a plan error locating the offending column and layer. */
  constructor(
    message: string,
    where: { column?: number; layer?: number } = {},
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = "PlanError";
    this.column = where.column;
    this.layer = where.layer;
  }
}
