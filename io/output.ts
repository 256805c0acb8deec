/**
 * Output folders that are safe against bad paths, concurrent runs and interrupts: one
 * mechanism for every command that writes results (`sweep`, `demo`, `train`).
 *
 * {@linkcode OutputFolder.open} checks, before any work: that this process may write the
 * folder (Deno's permissions, so a task user gets a one-line message naming the option
 * instead of "run again with --allow-write" after an hour of work), that no part of the
 * path is a symbolic link (a link inside `reports/` must not carry writes elsewhere), that
 * the path is not a file, and that no other run uses the folder: it takes an exclusive
 * lock on `.skipdecode.lock` inside it (an OS file lock, released by the OS when the
 * process ends, however it ends, so an interrupted run never leaves a stale lock). A run
 * that created the folder and wrote nothing (it failed or diverged first) removes it.
 *
 * Every file goes through {@linkcode atomicWrite} (a temporary name in the same folder,
 * then a rename), so a reader, or an interrupt, sees the old complete file or the new
 * complete one, never a truncated one. A set of files (a report) is written with
 * {@linkcode OutputFolder.writeSet}: staged in a hidden folder, then moved into place
 * together, with Ctrl-C held back for those few renames ({@linkcode withInterruptsHeld}); files the previous set had and the new one does not (an old run's charts)
 * are removed, so a folder never mixes two runs' reports. Leftovers of interrupted runs
 * (temporary files, staging folders) are removed when the next run opens the folder.
 *
 * @example
 * ```ts
 * import { OutputFolder } from "./output.ts";
 * const out = OutputFolder.open("reports/x", { option: "--out" });
 * try {
 *   out.writeSet({ "report.md": "# hi\n", "data.json": "{}\n" });
 * } finally {
 *   out.close();
 * }
 * ```
 * @module
 */
import { sha256File } from "../model/hash.ts";
export { sha256File } from "../model/hash.ts";
import { isAbsolute, join, relative, resolve } from "node:path";
import {
  createExclusive,
  ensureRealDir,
  fileKind,
  PathRuleError,
  refuseLink,
  tempNameBeside,
} from "../model/paths.ts";

/** A problem with an output folder; the message names the option and the path. */
export class OutputError extends Error {
  /** Makes an output error. */
  constructor(message: string) {
    super(message);
    this.name = "OutputError";
  }
}

/**
 * The lock file inside every output folder, removed when the run ends
 * ({@linkcode OutputFolder.close}; a run killed outright leaves it, and the next run takes it
 * over). Removing it is safe: a run that opens the folder locks the file it opened and
 * then checks that this file is still the one at the path (else opens again), so two runs
 * never hold two different lock files of one folder.
 */
export const LOCK_FILE = ".skipdecode.lock";
/** The list of files the last completed {@linkcode OutputFolder.writeSet} wrote. */
export const MANIFEST_FILE = ".skipdecode-files.json";

/**
 * The commit journal of a set being moved into place: written (atomically) before the
 * first rename and removed after the last, so a run that finds it completes the commit
 * (every file of the set is still in the staging folder it names, or already in place).
 */
export const JOURNAL_FILE = ".skipdecode-commit.json";

const TEMP_NAME = /^\..*\.tmp-[0-9a-f-]{36}$|^\.staging-[0-9a-f-]{36}$|\.incomplete$/;
const STAGING_NAME = /^\.staging-[0-9a-f-]{36}$/;

/** What {@linkcode readFileSet} returns: the last committed set of a folder. */
export interface FileSetManifest {
  /** The command that wrote the set (`"sweep"`, `"train"`, ...), `"unknown"` for old lists. */
  owner: string;
  /** The set's file names, sorted. */
  files: string[];
  /** SHA-256 (hex) of each file as committed. */
  sha256: Record<string, string>;
}

/**
 * The last set committed into `dir` ({@linkcode commitFileSet}), or `undefined` when the
 * folder has none.
 *
 * @example
 * ```ts
 * import { readFileSet } from "./output.ts";
 * console.log(readFileSet("out/none")); // undefined
 * ```
 */
export function readFileSet(dir: string): FileSetManifest | undefined {
  let json: unknown;
  try {
    json = JSON.parse(Deno.readTextFileSync(join(dir, MANIFEST_FILE)));
  } catch {
    return undefined;
  }
  const plain = (n: unknown): n is string =>
    typeof n === "string" && n !== "" && !n.includes("/") && !n.startsWith(".");
  if (Array.isArray(json)) return { owner: "unknown", files: json.filter(plain), sha256: {} };
  if (json === null || typeof json !== "object") return undefined;
  const j = json as { owner?: unknown; files?: unknown; sha256?: unknown };
  const sha = (j.sha256 !== null && typeof j.sha256 === "object" ? j.sha256 : {}) as Record<
    string,
    unknown
  >;
  const files = Array.isArray(j.files) ? j.files.filter(plain) : [];
  return {
    owner: typeof j.owner === "string" ? j.owner : "unknown",
    files,
    sha256: Object.fromEntries(
      files.filter((n) => typeof sha[n] === "string").map((n) => [n, sha[n] as string]),
    ),
  };
}

/** Options of {@linkcode commitFileSet}. */
export interface CommitOptions {
  /** The command writing the set, recorded in the manifest. */
  owner: string;
  /** Record each file's SHA-256 in the manifest (for checkpoints that are verified). */
  hash?: boolean;
}

/**
 * Moves every file of the staging folder `stage` (inside `dir`) into `dir` as one set:
 * a journal is written first, then the renames, the removal of files the previous set had
 * and this one lacks, the manifest, and the journal is removed. Interrupts are held
 * meanwhile; after kill -9 at any point the next {@linkcode completePendingCommit} of the
 * folder finishes the set, so the folder holds the old set or the new one, never a mix.
 *
 * @param dir the folder
 * @param stage a hidden staging folder inside `dir` (`.staging-<uuid>`) holding the set
 * @param options the owner, and whether to record hashes
 * @returns the set's names, sorted
 * @example
 * ```ts
 * import { commitFileSet } from "./output.ts";
 * const dir = Deno.makeTempDirSync();
 * const stage = `${dir}/.staging-${crypto.randomUUID()}`;
 * Deno.mkdirSync(stage);
 * Deno.writeTextFileSync(`${stage}/a.txt`, "a\n");
 * commitFileSet(dir, stage, { owner: "example" });
 * ```
 */
export function commitFileSet(dir: string, stage: string, options: CommitOptions): string[] {
  const stageName = stage.slice(stage.lastIndexOf("/") + 1);
  if (!STAGING_NAME.test(stageName) || resolve(stage, "..") !== resolve(dir)) {
    throw new OutputError(`commitFileSet: ${stage} is not a staging folder of ${dir}`);
  }
  const entries = [...Deno.readDirSync(stage)].filter((e) => !e.name.startsWith("."));
  for (const e of entries) {
    if (!e.isFile) throw new OutputError(`${stage}/${e.name} is not a regular file`);
  }
  const names = entries.map((e) => e.name).sort();
  for (const n of names) {
    try {
      refuseLink(join(dir, n), "output file");
    } catch (e) {
      throw new OutputError((e as Error).message);
    }
  }
  const sha256: Record<string, string> = {};
  if (options.hash) { for (const n of names) sha256[n] = sha256File(join(stage, n)); }
  // Only files this command wrote in its previous set are removed (a set of unknown or
  // other origin is left alone: a command never deletes what it did not write).
  const before = readFileSet(dir);
  const previous = before && before.owner === options.owner ? before.files : [];
  const journal = {
    stage: stageName,
    owner: options.owner,
    files: names,
    remove: previous.filter((n) => !names.includes(n)),
    sha256,
  };
  withInterruptsHeld(() => {
    atomicWrite(join(dir, JOURNAL_FILE), JSON.stringify(journal) + "\n");
    completePendingCommit(dir);
  });
  return names;
}

/**
 * Finishes a set commit that kill -9 cut short (see {@linkcode commitFileSet}); does
 * nothing when the folder has no journal.
 *
 * @param dir the folder
 * @returns whether a pending commit was completed
 * @example
 * ```ts
 * import { completePendingCommit } from "./output.ts";
 * completePendingCommit("out/none"); // false
 * ```
 */
export function completePendingCommit(dir: string): boolean {
  let j: { stage?: unknown; owner?: unknown; files?: unknown; remove?: unknown; sha256?: unknown };
  try {
    j = JSON.parse(Deno.readTextFileSync(join(dir, JOURNAL_FILE)));
  } catch (e) {
    if (e instanceof Deno.errors.NotFound || e instanceof Deno.errors.NotADirectory) return false;
    throw new OutputError(`${join(dir, JOURNAL_FILE)} is unreadable: ${(e as Error).message}`);
  }
  const plain = (n: unknown): n is string =>
    typeof n === "string" && n !== "" && !n.includes("/") && !n.startsWith(".");
  const stageName = typeof j.stage === "string" && STAGING_NAME.test(j.stage) ? j.stage : "";
  const files = Array.isArray(j.files) ? j.files.filter(plain) : [];
  const remove = Array.isArray(j.remove) ? j.remove.filter(plain) : [];
  withInterruptsHeld(() => {
    for (const n of files) {
      const from = join(dir, stageName, n);
      if (stageName && lstat(from)?.isFile) Deno.renameSync(from, join(dir, n));
    }
    for (const n of remove) {
      // only regular files this toolkit wrote in the previous set
      if (lstat(join(dir, n))?.isFile) Deno.removeSync(join(dir, n));
    }
    atomicWrite(
      join(dir, MANIFEST_FILE),
      JSON.stringify({ owner: j.owner ?? "unknown", files, sha256: j.sha256 ?? {} }) + "\n",
    );
    Deno.removeSync(join(dir, JOURNAL_FILE));
  });
  if (stageName) {
    try {
      Deno.removeSync(join(dir, stageName), { recursive: true });
    } catch { /* removed by the next run */ }
  }
  return true;
}

/**
 * Runs `fn` with SIGINT and SIGTERM held back: an interrupt that arrives meanwhile ends
 * the process (exit code 130) only after `fn` returns, so a set of renames that must
 * happen together (a report, a checkpoint) is never cut in half by Ctrl-C.
 *
 * @param fn the work to protect (keep it short: renames, small writes)
 * @returns what `fn` returns
 * @example
 * ```ts
 * import { withInterruptsHeld } from "./output.ts";
 * withInterruptsHeld(() => console.log("not interrupted here"));
 * ```
 */
export function withInterruptsHeld<T>(fn: () => T): T {
  let interrupted = false;
  let held = true;
  const onSignal = () => {
    if (held) interrupted = true;
    else Deno.exit(130);
  };
  const signals: Deno.Signal[] = Deno.build.os === "windows" ? ["SIGINT"] : ["SIGINT", "SIGTERM"];
  const added: Deno.Signal[] = [];
  for (const s of signals) {
    try {
      Deno.addSignalListener(s, onSignal);
      added.push(s);
    } catch { /* not supported here */ }
  }
  try {
    return fn();
  } finally {
    held = false;
    if (interrupted) Deno.exit(130);
    // A signal that arrived while `fn` ran is handed to the listeners only when the event
    // loop next runs: keep them for a few turns (an interrupt then ends the process, exit
    // 130, after `fn`), then give the signals back their default action.
    if (added.length > 0) {
      setTimeout(() =>
        setTimeout(() => {
          for (const s of added) Deno.removeSignalListener(s, onSignal);
        }, 20), 0);
    }
  }
}

/**
 * Writes a file atomically: to a temporary name in the same folder, then renamed over
 * the target, so the target is always either the old complete file or the new one.
 *
 * @param path the target file
 * @param data text or bytes
 * @example
 * ```ts
 * import { atomicWrite } from "./output.ts";
 * atomicWrite("/tmp/skipdecode-example.txt", "hello\n");
 * ```
 */
export function atomicWrite(path: string, data: string | Uint8Array): void {
  const tmp = tempNameBeside(path);
  try {
    refuseLink(path, "output file");
    createExclusive(tmp, data, "temporary file");
    Deno.renameSync(tmp, path);
  } catch (e) {
    try {
      Deno.removeSync(tmp);
    } catch { /* never written */ }
    if (e instanceof PathRuleError) throw new OutputError(e.message);
    throw new OutputError(`cannot write ${path}: ${(e as Error).message}`);
  }
}

function lstat(path: string): Deno.FileInfo | undefined {
  try {
    return Deno.lstatSync(path);
  } catch {
    return undefined;
  }
}

/**
 * Checks that `path` may be used as an output folder without doing anything: write
 * permission and no symbolic link on the way (see the module documentation).
 *
 * @param path the folder
 * @param option the option that named it, for messages (e.g. `"--out"`)
 * @throws OutputError naming the option and path
 * @example
 * ```ts
 * import { checkOutputPath } from "./output.ts";
 * checkOutputPath("reports/sweep", "--out");
 * ```
 */
export function checkOutputPath(path: string, option: string): void {
  if (path.trim() === "") throw new OutputError(`${option} must not be empty`);
  const abs = resolve(path);
  let state: Deno.PermissionState = "granted";
  try {
    state = Deno.permissions.querySync({ name: "write", path: abs }).state;
  } catch { /* no permissions API: let the write itself fail */ }
  if (state !== "granted") {
    // Suggest only folders this process may write (the train task may not write reports/).
    const may = ["out", "reports"].filter((d) => {
      try {
        return Deno.permissions.querySync({ name: "write", path: resolve(d) }).state ===
          "granted";
      } catch {
        return false;
      }
    });
    throw new OutputError(
      `${option} ${path} is outside the folders this task may write` +
        (may.length > 0
          ? ` (here: ${may.map((d) => `${d}/`).join(" or ")} in the repository); choose a ` +
            `folder there`
          : `; grant write access to it (--allow-write=${path})`),
    );
  }
  // Every existing component of the path, below the working directory when the path is
  // inside it (else below the filesystem's top level), must be a real folder.
  const cwd = Deno.cwd();
  const rel = relative(cwd, abs);
  const inside = rel === "" || (!rel.startsWith("..") && !isAbsolute(rel));
  const base = inside ? cwd : abs.split("/").slice(0, 2).join("/") || "/";
  const parts = relative(base, abs).split("/").filter(Boolean);
  let at = base;
  for (const part of parts) {
    at = join(at, part);
    const st = lstat(at);
    if (!st) break;
    if (st.isSymlink) {
      throw new OutputError(
        `${option} ${path} goes through the symbolic link ${at}; give a real folder ` +
          `(a link could carry the output anywhere)`,
      );
    }
    if (!st.isDirectory) {
      throw new OutputError(`${option} ${path}: ${at} exists and is not a folder`);
    }
  }
}

/** Options of {@linkcode OutputFolder.open}. */
export interface OpenOutputOptions {
  /** The option that named the folder, for messages (default `"--out"`). */
  option?: string;
  /**
   * The command whose report sets this folder holds (`"sweep"`, `"readout"`, ...). A folder
   * holding another command's set is refused: a command never deletes what it did not
   * write. Without it, the folder's sets are not checked (e.g. `train`, `convert`).
   */
  owner?: string;
}

/**
 * Opens the lock file without following a link and without truncating anything: a link, a
 * non-regular file or a file with other hard links at its place is refused, and the file
 * opened must be the one at the path (no swap in between).
 */
/**
 * Opens (creating it when absent) a lock file for reading and writing, refusing a planted
 * link: a symbolic link, a non-file, a file hard-linked elsewhere or swapped while opened
 * (truncating such a file would truncate its target).
 *
 * @param path the lock file
 * @param option the option that named its folder, for messages (e.g. `"--out"`)
 * @returns the open file (not locked yet)
 * @throws OutputError naming the option and the path
 * @example
 * ```ts
 * import { openLock } from "./output.ts";
 * Deno.mkdirSync("out/x", { recursive: true });
 * const f = openLock("out/x/.example.lock", "--out");
 * f.close();
 * ```
 */
export function openLock(path: string, option: string): Deno.FsFile {
  for (let attempt = 0; attempt < 5; attempt++) {
    const before = lstat(path);
    if (before && !before.isFile) {
      throw new OutputError(
        `${option}: ${path} is ${fileKind(before)}; refused (a planted link must not be ` +
          `opened: remove it)`,
      );
    }
    let f: Deno.FsFile;
    try {
      f = before
        ? Deno.openSync(path, { read: true, write: true })
        : Deno.openSync(path, { read: true, write: true, createNew: true, mode: 0o644 });
    } catch (e) {
      if (e instanceof Deno.errors.AlreadyExists) continue; // made meanwhile: look again
      throw e;
    }
    const st = f.statSync(), now = lstat(path);
    if (!now?.isFile || now.ino !== st.ino || now.dev !== st.dev || (st.nlink ?? 1) > 1) {
      f.close();
      throw new OutputError(
        `${option}: ${path} is not a plain lock file of this folder (replaced while opened, ` +
          `or hard-linked elsewhere); refused: remove it`,
      );
    }
    return f;
  }
  throw new OutputError(`${option}: ${path} keeps changing; refused`);
}

/** An output folder held by this run; see the module documentation. */
export class OutputFolder {
  /** The folder. */
  readonly dir: string;
  /** The option that named it. */
  readonly option: string;
  #lock: Deno.FsFile | undefined;
  #created: boolean;

  readonly #owner: string | undefined;

  private constructor(
    dir: string,
    option: string,
    lock: Deno.FsFile,
    created: boolean,
    owner: string | undefined,
  ) {
    this.dir = dir;
    this.option = option;
    this.#lock = lock;
    this.#created = created;
    this.#owner = owner;
  }

  /**
   * Checks the path, creates the folder, takes its lock and removes leftovers of
   * interrupted runs.
   *
   * @param dir the folder
   * @param options the option's name for messages
   * @returns the held folder; {@linkcode OutputFolder.close} releases it
   * @throws OutputError naming the option and path: not writable, through a symbolic
   *   link, a file, or in use by another run
   * @example
   * ```ts
   * import { OutputFolder } from "./output.ts";
   * const out = OutputFolder.open("reports/x");
   * out.close();
   * ```
   */
  static open(dir: string, options: OpenOutputOptions = {}): OutputFolder {
    const option = options.option ?? "--out";
    checkOutputPath(dir, option);
    const lockPath = join(dir, LOCK_FILE);
    let lock: Deno.FsFile;
    let held = false;
    let created = false;
    for (let attempt = 0;; attempt++) {
      try {
        created ||= lstat(dir) === undefined;
        ensureRealDir(dir, dir, option);
        lock = openLock(lockPath, option);
      } catch (e) {
        if (e instanceof OutputError) throw e;
        if (e instanceof PathRuleError) throw new OutputError(e.message);
        throw new OutputError(
          `${option} ${dir}: cannot create the folder: ${(e as Error).message}`,
        );
      }
      try {
        held = lock.tryLockSync(true);
      } catch (e) {
        lock.close();
        throw new OutputError(
          `${option} ${dir}: cannot lock ${LOCK_FILE}: ${(e as Error).message}`,
        );
      }
      // A run that created the folder removes it when it wrote nothing: the lock we hold
      // must still be the file at the path, else open again.
      if (!held || lock.statSync().ino === lstat(lockPath)?.ino || attempt >= 5) break;
      lock.close();
    }
    if (!held) {
      // The holder writes its note right after taking the lock: a note read in between is
      // empty, so look again for a moment before saying less.
      let who = "";
      for (let look = 0; look < 50 && !who; look++) {
        if (look > 0) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 10);
        try {
          who = new TextDecoder().decode(Deno.readFileSync(join(dir, LOCK_FILE))).trim();
        } catch { /* unreadable: say less */ }
      }
      lock.close();
      throw new OutputError(
        `${option} ${dir} is in use by another run${who ? ` (${who})` : ""}; wait for it ` +
          `to finish or choose another folder`,
      );
    }
    try {
      lock.truncateSync(0);
      lock.writeSync(
        new TextEncoder().encode(`pid ${Deno.pid} since ${new Date().toISOString()}\n`),
      );
    } catch { /* the lock holds without the note */ }
    const out = new OutputFolder(dir, option, lock!, created, options.owner);
    try {
      out.#completeCommits(dir, 2);
      const set = readFileSet(dir);
      if (
        options.owner !== undefined && set && set.files.length > 0 && set.owner !== "unknown" &&
        set.owner !== options.owner
      ) {
        throw new OutputError(
          `${option} ${dir} holds the files of a ${set.owner} run (${
            set.files.slice(0, 3).join(", ")
          }${set.files.length > 3 ? ", ..." : ""}); ` +
            `${options.owner} writes its own folder and never replaces another command's ` +
            `files: choose another ${option}`,
        );
      }
    } catch (e) {
      out.close();
      throw e instanceof OutputError
        ? e
        : new OutputError(`${option} ${dir}: ${(e as Error).message}`);
    }
    out.#removeLeftovers(dir, 2);
    return out;
  }

  #completeCommits(dir: string, depth: number): void {
    completePendingCommit(dir);
    if (depth <= 1) return;
    for (const e of Deno.readDirSync(dir)) {
      if (e.isDirectory && !e.name.startsWith(".")) {
        this.#completeCommits(join(dir, e.name), depth - 1);
      }
    }
  }

  #removeLeftovers(dir: string, depth: number): void {
    let entries: Deno.DirEntry[];
    try {
      entries = [...Deno.readDirSync(dir)];
    } catch {
      return;
    }
    for (const e of entries) {
      const path = join(dir, e.name);
      if (TEMP_NAME.test(e.name)) {
        try {
          Deno.removeSync(path, { recursive: true });
        } catch { /* left for the next run */ }
      } else if (e.isDirectory && depth > 1) this.#removeLeftovers(path, depth - 1);
    }
  }

  /**
   * The folder's entries other than this module's own (lock, list, leftovers).
   *
   * @returns entry names, sorted
   * @example
   * ```ts
   * import { OutputFolder } from "./output.ts";
   * const out = OutputFolder.open("out/x");
   * console.log(out.entries()); // []
   * out.close();
   * ```
   */
  entries(): string[] {
    return [...Deno.readDirSync(this.dir)].map((e) => e.name)
      .filter((n) =>
        n !== LOCK_FILE && n !== MANIFEST_FILE && n !== JOURNAL_FILE && !TEMP_NAME.test(n)
      ).sort();
  }

  /**
   * Writes one file of the folder atomically ({@linkcode atomicWrite}).
   *
   * @param name path relative to the folder
   * @param data text or bytes
   * @example
   * ```ts
   * import { OutputFolder } from "./output.ts";
   * const out = OutputFolder.open("out/x");
   * out.write("notes.txt", "hello\n");
   * out.close();
   * ```
   */
  write(name: string, data: string | Uint8Array): void {
    this.#held();
    atomicWrite(join(this.dir, name), data);
  }

  /**
   * A hidden staging folder inside the output folder, for files another function writes
   * (e.g. PNG pictures); pass it to {@linkcode OutputFolder.writeSet} as `staged`.
   *
   * @returns the staging folder's path (created)
   * @example
   * ```ts
   * import { OutputFolder } from "./output.ts";
   * const out = OutputFolder.open("out/x");
   * const staging = out.staging();
   * out.writeSet({ "a.txt": "a\n" }, staging);
   * out.close();
   * ```
   */
  staging(): string {
    this.#held();
    const dir = join(this.dir, `.staging-${crypto.randomUUID()}`);
    Deno.mkdirSync(dir);
    return dir;
  }

  /**
   * Writes a set of files as a unit: every file is written to a staging folder first, then
   * all are renamed into place; files of the previous set missing from this one are
   * removed; the list of the set is stored for the next run. An interrupt before the
   * renames leaves the previous set untouched.
   *
   * @param files name (relative to the folder, no sub-folders) to content
   * @param staged a folder from {@linkcode OutputFolder.staging} holding more files of the set
   * @returns the names of the set, sorted
   * @example
   * ```ts
   * import { OutputFolder } from "./output.ts";
   * const out = OutputFolder.open("out/x");
   * out.writeSet({ "report.md": "# r\n" });
   * out.close();
   * ```
   */
  writeSet(files: Record<string, string | Uint8Array>, staged?: string): string[] {
    this.#held();
    const stage = staged ?? this.staging();
    try {
      for (const [name, data] of Object.entries(files)) {
        if (name.includes("/") || name.startsWith(".")) {
          throw new OutputError(`writeSet: ${name} is not a plain name`);
        }
        createExclusive(join(stage, name), data, "staged file");
      }
      return commitFileSet(this.dir, stage, { owner: this.#owner ?? "unknown" });
    } catch (e) {
      if (e instanceof OutputError) throw e;
      throw new OutputError(`cannot write ${this.dir}: ${(e as Error).message}`);
    } finally {
      try {
        Deno.removeSync(stage, { recursive: true });
      } catch { /* committed, or removed by the next run */ }
    }
  }

  #held(): void {
    if (!this.#lock) throw new OutputError(`${this.option} ${this.dir} was already closed`);
  }

  /**
   * Releases the lock and removes the lock file (while still holding it, and only when
   * the file at the path is the one this run locked). A folder this run created and wrote
   * nothing into is removed too.
   *
   * @example
   * ```ts
   * import { OutputFolder } from "./output.ts";
   * OutputFolder.open("out/x").close();
   * ```
   */
  close(): void {
    if (!this.#lock) return;
    if (this.#created) {
      // Created by this run and nothing written: leave no trace.
      try {
        const left = [...Deno.readDirSync(this.dir)].map((e) => e.name);
        if (left.every((n) => n === LOCK_FILE)) {
          Deno.removeSync(join(this.dir, LOCK_FILE));
          Deno.removeSync(this.dir);
        }
      } catch { /* keep it */ }
    }
    try {
      // Ours still (a run opening the folder now re-opens when the path changed under it).
      const path = join(this.dir, LOCK_FILE);
      const st = lstat(path);
      if (st?.isFile && st.ino === this.#lock.statSync().ino) Deno.removeSync(path);
    } catch { /* the next run takes it over */ }
    try {
      this.#lock.unlockSync();
    } catch { /* closing releases it too */ }
    this.#lock.close();
    this.#lock = undefined;
  }
}
