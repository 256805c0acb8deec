/**
 * Where the toolkit finds its default model and data when no path is given (the command line,
 * the benchmarks): the repository's own `bundled/` folder (the tiny checkpoint with its model
 * card, the E2E devset with its CC BY-SA 4.0 attribution), so that a bare clone works without
 * network and without the project's `../shared` folder.
 *
 * @module
 */
import { fileURLToPath } from "node:url";
import { E2E_DEVSET_URL } from "./datasets.ts";

/** The repository's `bundled/` folder (default model and data, see its README.md). */
export const BUNDLED_DIR: string = fileURLToPath(new URL("../bundled/", import.meta.url));

/**
 * `../shared` beside the repository: the project's shared material (documents, test
 * fixtures). Optional: nothing the README's commands run needs it.
 */
export const SHARED_DIR: string = fileURLToPath(new URL("../../shared/", import.meta.url));

/** The small trained OPT-architecture checkpoint (not Meta's OPT) in `bundled/`. */
export const TINY_MODEL_DIR: string = `${BUNDLED_DIR}models/tiny-opt-e2e`;

/** The E2E (cleaned) validation split in `bundled/` (CC BY-SA 4.0): `E2E_DEVSET_URL` as a path. */
export const E2E_DEVSET: string = fileURLToPath(E2E_DEVSET_URL);

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
