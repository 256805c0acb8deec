/**
 * Output and bookkeeping shared by every writer: atomic files and file sets with a commit
 * journal and a folder lock ({@linkcode OutputFolder}), the per-item result cache
 * ({@linkcode ResultCache}) and progress lines ({@linkcode createProgress}).
 *
 * @example
 * ```ts
 * import { atomicWrite, canonicalJson, formatDuration } from "./mod.ts";
 * const dir = Deno.makeTempDirSync();
 * atomicWrite(`${dir}/a.json`, canonicalJson({ b: 1, a: [2] }) + "\n");
 * console.log(Deno.readTextFileSync(`${dir}/a.json`), formatDuration(61_000));
 * ```
 * @module
 */
export { CACHE_VERSION, canonicalJson, defaultCacheDir, hashKey, ResultCache } from "./cache.ts";
export {
  atomicWrite,
  checkOutputPath,
  commitFileSet,
  type CommitOptions,
  completePendingCommit,
  type FileSetManifest,
  JOURNAL_FILE,
  LOCK_FILE,
  MANIFEST_FILE,
  type OpenOutputOptions,
  OutputError,
  OutputFolder,
  readFileSet,
  sha256File,
  withInterruptsHeld,
} from "./output.ts";
export {
  createProgress,
  formatDuration,
  type ProgressDisplay,
  type ProgressMode,
  type ProgressOptions,
  type ProgressState,
  progressText,
} from "./progress.ts";
