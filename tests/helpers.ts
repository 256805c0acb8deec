/**
 * The tests' shared helpers, in one module:
 *
 * - {@linkcode rng} / {@linkcode intIn} / {@linkcode randomF32}: seeded draws from the
 *   project's one generator (mulberry32, `model/random.ts`), so a seed means the same numbers
 *   in every test and in library code;
 * - {@linkcode relL2} / {@linkcode maxAbsDiff}: the error measures the numeric tests compare
 *   with (one definition, one documented epsilon);
 * - {@linkcode sharedPath} / {@linkcode missingShared}: where tests find their material.
 *   What the repository ships in `bundled/` (the tiny checkpoint, OPT's tokenizer files inside
 *   it, the E2E devset) is always read from there, so a bare clone tests the same files as the
 *   project's setup. Everything else (PyTorch fixtures, the dense twin, the held-out test part)
 *   lives only in the project's `../shared` folder beside the repository: `sharedPath` fails
 *   naming the missing path, and `missingShared` lets a test be skipped loudly on a machine
 *   without `../shared` (never under CI, where `../shared` exists and a missing file is an
 *   error).
 *
 * @module
 */
import { seededRandom } from "../model/random.ts";

/**
 * A seeded generator of uniforms in `[0, 1)`: `model/random.ts`'s mulberry32
 * ({@linkcode seededRandom}) without the state accessor.
 *
 * @example
 * ```ts
 * import { rng } from "./helpers.ts";
 * const r = rng(42);
 * console.log(r() < 1); // true
 * ```
 */
export function rng(seed: number): () => number {
  const r = seededRandom(seed);
  return () => r();
}

/**
 * A uniform integer in `lo..hi` (both included) drawn from `r`.
 *
 * @example
 * ```ts
 * import { intIn, rng } from "./helpers.ts";
 * const k = intIn(rng(1), 3, 5); // 3, 4 or 5
 * ```
 */
export function intIn(r: () => number, lo: number, hi: number): number {
  return lo + Math.floor(r() * (hi - lo + 1));
}

/**
 * `n` seeded values in `[-scale, scale)`.
 *
 * @example
 * ```ts
 * import { randomF32 } from "./helpers.ts";
 * console.log(randomF32(4, 1).length); // 4
 * ```
 */
export function randomF32(n: number, seed: number, scale = 1): Float32Array {
  const r = rng(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = (2 * r() - 1) * scale;
  return out;
}

/**
 * The floor {@linkcode relL2} puts under `Σ b²` (the squared norm of the reference), so an
 * all-zero reference gives 0 when `a` is zero too and a huge error (`|a|² / 1e-30`) otherwise,
 * never a division by zero. It is far below any squared norm a test compares (the smallest are
 * f32 gradients, `Σ b² >~ 1e-20`), so it never changes a real error.
 */
export const REL_L2_EPSILON = 1e-30;

/**
 * Relative L2 error `sqrt(Σ (a - b)² / max(Σ b², REL_L2_EPSILON))` of `a` against the reference
 * `b`; `Infinity` when any value of either is NaN or infinite. Throws when the lengths differ.
 *
 * @example
 * ```ts
 * import { relL2 } from "./helpers.ts";
 * console.log(relL2([1, 2], [1, 2]), relL2([0, 0], [0, 0]), relL2([NaN], [1])); // 0 0 Infinity
 * ```
 */
export function relL2(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`relL2: length ${a.length} != ${b.length}`);
  let num = 0, den = 0;
  for (let i = 0; i < a.length; i++) {
    if (!Number.isFinite(a[i]) || !Number.isFinite(b[i])) return Infinity;
    num += (a[i] - b[i]) ** 2;
    den += b[i] ** 2;
  }
  return Math.sqrt(num / Math.max(den, REL_L2_EPSILON));
}

/**
 * The largest absolute difference; `Infinity` when any difference is NaN or infinite. Throws when the lengths
 * differ.
 *
 * @example
 * ```ts
 * import { maxAbsDiff } from "./helpers.ts";
 * console.log(maxAbsDiff([1, 2], [1, 2.5])); // 0.5
 * ```
 */
export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`maxAbsDiff: length ${a.length} != ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i] - b[i]);
    if (!Number.isFinite(d)) return Infinity;
    m = Math.max(m, d);
  }
  return m;
}

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
 * import { sharedPath } from "./helpers.ts";
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
 * import { missingShared } from "./helpers.ts";
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
