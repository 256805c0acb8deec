/**
 * Where tests find their material. What the repository ships in `bundled/` (the tiny
 * checkpoint, OPT's tokenizer files inside it, the E2E devset) is always read from there,
 * so a bare clone tests the same files as the project's setup. Everything else (PyTorch
 * fixtures, the dense twin, the held-out test part) lives only in the project's `../shared`
 * folder beside the repository: {@linkcode sharedPath} fails naming the missing path, and
 * {@linkcode missingShared} lets a test be skipped loudly on a machine without `../shared`
 * (never under CI, where `../shared` exists and a missing file is an error).
 *
 * @module
 */

/** The repository's `bundled/` folder. */
export const BUNDLED: URL = new URL("../bundled/", import.meta.url);

/** `../shared/` beside the repository (optional). */
export const SHARED: URL = new URL("../../shared/", import.meta.url);

/** Paths under `../shared` whose identical copy ships in `bundled/`. */
const BUNDLED_COPIES: Record<string, string> = {
  "models/tiny-opt-e2e": "models/tiny-opt-e2e",
  "data/e2e": "data/e2e",
  "data/e2e/devset.csv": "data/e2e/devset.csv",
  // OPT's tokenizer files: the same vocab.json, merges.txt and configs as the checkpoint's
  "tokenizers/opt": "models/tiny-opt-e2e",
};

const path = (url: URL) => decodeURIComponent(url.pathname).replace(/\/$/, "");

function exists(p: string): boolean {
  try {
    Deno.statSync(p);
    return true;
  } catch {
    return false;
  }
}

/**
 * The path of `rel` (a path under `../shared`, e.g. `models/tiny-opt-e2e`): the bundled
 * copy when the repository ships one, else the file in `../shared`.
 *
 * @throws {Error} naming the missing path and where it is expected.
 *
 * @example
 * ```ts
 * const tiny = sharedPath("models/tiny-opt-e2e"); // .../bundled/models/tiny-opt-e2e
 * ```
 */
export function sharedPath(rel: string): string {
  const key = rel.replace(/\/$/, "");
  const bundled = BUNDLED_COPIES[key];
  if (bundled !== undefined) {
    const p = path(new URL(bundled, BUNDLED));
    if (!exists(p)) throw new Error(`bundled test material missing: ${p} (part of the repository)`);
    return p;
  }
  const p = path(new URL(key, SHARED));
  if (!exists(p)) {
    throw new Error(
      `shared test material missing: ${p}. This test needs the project's ../shared folder ` +
        `beside the repository (not shipped in bundled/).`,
    );
  }
  return p;
}

const warned = new Set<string>();

/**
 * Whether a test that needs `rel` from `../shared` should be skipped: true (with one loud
 * warning naming the path) when it is missing and `CI` is not set. Use as
 * `Deno.test({ ignore: missingShared("fixtures/torch-bin"), ... })`; under CI the test runs
 * and {@linkcode sharedPath} fails naming the file.
 *
 * @example
 * ```ts
 * Deno.test({ name: "x", ignore: missingShared("fixtures/torch-bin"), fn() {} });
 * ```
 */
export function missingShared(rel: string): boolean {
  const key = rel.replace(/\/$/, "");
  if (BUNDLED_COPIES[key] !== undefined) return false;
  const p = path(new URL(key, SHARED));
  if (exists(p)) return false;
  let ci = false;
  try {
    ci = Boolean(Deno.env.get("CI"));
  } catch { /* no env permission: not CI */ }
  if (ci) return false;
  if (!warned.has(p)) {
    warned.add(p);
    console.warn(`\n!!! SKIPPING TESTS THAT NEED ${p} (the project's ../shared folder) !!!\n`);
  }
  return true;
}
