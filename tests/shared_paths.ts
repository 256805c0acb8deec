/**
 * Where tests find `../shared` (beside the repository), with a clear error naming the
 * missing path when it is absent.
 *
 * @module
 */

/** `../shared/` beside the repository. */
export const SHARED: URL = new URL("../../shared/", import.meta.url);

/**
 * The path of `rel` under `../shared`, or an error naming what is missing.
 *
 * @example
 * ```ts
 * const tiny = sharedPath("models/tiny-opt-e2e");
 * ```
 */
export function sharedPath(rel: string): string {
  const path = decodeURIComponent(new URL(rel, SHARED).pathname);
  try {
    Deno.statSync(path);
  } catch {
    throw new Error(`shared test material missing: ${path} (expected ../shared next to the repo)`);
  }
  return path;
}
