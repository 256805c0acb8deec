/**
 * A small on-disk cache of sweep results (generations with their timings, NLLs, oracle
 * depths): one JSON file per entry, named by the SHA-256 of a canonical JSON key, holding
 * the key, the value and the SHA-256 of the value's canonical JSON. A missing file is a
 * miss; an unreadable, edited, corrupt or wrongly shaped one is a miss with a note naming
 * the file; a cache that cannot be written (no permission, read-only disk) is turned off
 * with one note instead of failing the run.
 *
 * The default folder is `$SKIPDECODE_CACHE_DIR`, else `.cache/skipdecode/` at the
 * repository root (gitignored).
 *
 * @example
 * ```ts
 * import { ResultCache } from "./cache.ts";
 * const cache = new ResultCache("/tmp/skipdecode-cache");
 * const key = { kind: "demo", n: 1 };
 * if (!(await cache.get(key))) await cache.put(key, { value: 42 });
 * console.log(await cache.get(key)); // { value: 42 }
 * ```
 * @module
 */
import { createExclusive, ensureRealDir, refuseLink } from "../model/paths.ts";
import { checkOutputPath } from "./output.ts";
import { fileURLToPath } from "node:url";

/** Bumped when the stored format or the meaning of a key changes. */
export const CACHE_VERSION = 3;

/**
 * The default cache folder: `$SKIPDECODE_CACHE_DIR`, else `.cache/skipdecode` at the
 * repository root (or under the working directory when the code is not a local file).
 *
 * @returns the folder path
 * @example
 * ```ts
 * import { defaultCacheDir } from "./cache.ts";
 * console.log(defaultCacheDir()); // ".../skipdecode/.cache/skipdecode"
 * ```
 */
export function defaultCacheDir(): string {
  try {
    const env = Deno.env.get("SKIPDECODE_CACHE_DIR");
    if (env) return env;
  } catch { /* no --allow-env */ }
  const url = new URL("../.cache/skipdecode", import.meta.url);
  return url.protocol === "file:" ? fileURLToPath(url) : ".cache/skipdecode";
}

/**
 * JSON with object keys sorted at every level, so equal values give equal text.
 *
 * @param value any JSON-serialisable value
 * @returns canonical JSON
 * @example
 * ```ts
 * import { canonicalJson } from "./cache.ts";
 * canonicalJson({ b: 1, a: [2, { d: 3, c: 4 }] }); // '{"a":[2,{"c":4,"d":3}],"b":1}'
 * ```
 */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_k, v) => {
    if (v && typeof v === "object" && !Array.isArray(v)) {
      return Object.fromEntries(Object.keys(v).sort().map((k) => [k, v[k]]));
    }
    return v;
  });
}

/**
 * SHA-256 of the canonical JSON of a value, as 64 hex digits.
 *
 * @param value any JSON-serialisable value
 * @returns the hex digest
 * @example
 * ```ts
 * import { hashKey } from "./cache.ts";
 * console.log((await hashKey({ a: 1 })).length); // 64
 * ```
 */
export async function hashKey(value: unknown): Promise<string> {
  const bytes = new TextEncoder().encode(canonicalJson(value));
  const digest = await crypto.subtle.digest("SHA-256", bytes);
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/** A folder of cached JSON results; see the module documentation. */
export class ResultCache {
  /** The folder, or `undefined` when caching is off. */
  dir: string | undefined;
  /** Receives one note when writing fails and caching is turned off. */
  onNote: (note: string) => void;

  /**
   * Opens (lazily) a cache folder.
   *
   * @param dir the folder (created on first write); `undefined` or `false`: no caching
   * @param onNote where the note goes when the cache cannot be written (default stderr)
   * @example
   * ```ts
   * import { ResultCache } from "./cache.ts";
   * const cache = new ResultCache(".cache/skipdecode", (note) => console.log(note));
   * ```
   */
  constructor(dir: string | false | undefined, onNote?: (note: string) => void) {
    this.dir = dir || undefined;
    this.onNote = onNote ?? ((n) => console.error(`note: ${n}`));
  }

  /**
   * Reads the entry of a key; `undefined` on a miss. An entry that is not valid JSON,
   * whose content does not match its SHA-256 checksum (edited by hand, or corrupt), or
   * whose value fails `validate`, is a miss with one note naming the file (the run then
   * computes the value again and replaces the entry).
   *
   * @param key any JSON-serialisable value
   * @param validate checks the stored value's shape; returns a problem, or `undefined`
   * @returns the stored value or `undefined`
   * @example
   * ```ts
   * import { ResultCache } from "./cache.ts";
   * await new ResultCache(false).get({ a: 1 }); // undefined
   * ```
   */
  async get<T>(
    key: unknown,
    validate?: (value: unknown) => string | undefined,
  ): Promise<T | undefined> {
    if (!this.dir) return undefined;
    const hash = await hashKey({ v: CACHE_VERSION, key });
    const file = `${this.dir}/${hash}.json`;
    let text: string;
    try {
      text = await Deno.readTextFile(file);
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) {
        this.onNote(`cannot read cache entry ${file} (${(e as Error).message}); recomputing`);
      }
      return undefined;
    }
    const skip = (why: string) => {
      this.onNote(`ignoring cache entry ${file}: ${why}; recomputing it`);
      return undefined;
    };
    let entry: Record<string, unknown>;
    try {
      entry = JSON.parse(text);
    } catch (e) {
      return skip(`not valid JSON (${(e as Error).message})`);
    }
    if (typeof entry !== "object" || entry === null || Array.isArray(entry)) {
      return skip("not a JSON object");
    }
    if (entry.version !== CACHE_VERSION) return undefined; // an older format: a plain miss
    if (canonicalJson(entry.key) !== canonicalJson(key)) return skip("it holds another key");
    if (typeof entry.sha256 !== "string" || entry.sha256 !== await hashKey(entry.value)) {
      return skip("its content does not match its checksum (edited or corrupt)");
    }
    const problem = validate?.(entry.value);
    if (problem) return skip(`wrongly shaped value: ${problem}`);
    return entry.value as T;
  }

  /**
   * Stores a value under a key (written to a temporary file, then renamed).
   *
   * @param key any JSON-serialisable value
   * @param value any JSON-serialisable value
   * @example
   * ```ts
   * import { ResultCache } from "./cache.ts";
   * await new ResultCache("/tmp/c").put({ a: 1 }, [1, 2, 3]);
   * ```
   */
  async put(key: unknown, value: unknown): Promise<void> {
    if (!this.dir) return;
    const hash = await hashKey({ v: CACHE_VERSION, key });
    const path = `${this.dir}/${hash}.json`;
    try {
      // The path rule (model/paths.ts): no symbolic link on the way to the cache folder or
      // at the entry, the temporary created exclusively, so no entry lands elsewhere.
      checkOutputPath(this.dir, "result cache folder (--cache-dir or SKIPDECODE_CACHE_DIR)");
      ensureRealDir(this.dir, this.dir, "result cache folder");
      const tmp = `${path}.${crypto.randomUUID()}.tmp`;
      const sha256 = await hashKey(value);
      refuseLink(path, "cache entry");
      createExclusive(tmp, JSON.stringify({ version: CACHE_VERSION, key, value, sha256 }));
      await Deno.rename(tmp, path);
    } catch (e) {
      this.onNote(
        `cannot write the result cache in ${this.dir} (${(e as Error).message}); ` +
          `continuing without caching`,
      );
      this.dir = undefined;
    }
  }
}
