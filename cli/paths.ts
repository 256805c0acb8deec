/**
 * Where the command line finds the project's shared material (`../shared` beside the
 * repository) when no path is given.
 *
 * @module
 */
import { fileURLToPath } from "node:url";

/** `../shared` beside the repository root. */
export const SHARED_DIR: string = fileURLToPath(new URL("../../shared/", import.meta.url));

/** The small trained OPT-architecture checkpoint in `../shared`. */
export const TINY_MODEL_DIR: string = `${SHARED_DIR}models/tiny-opt-e2e`;

/** The E2E devset in `../shared`. */
export const E2E_DEVSET: string = `${SHARED_DIR}data/e2e/devset.csv`;

/**
 * Whether a path exists.
 *
 * @example
 * ```ts
 * exists("/tmp"); // true
 * ```
 */
export function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}
