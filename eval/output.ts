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
import { dirname, isAbsolute, join, relative, resolve } from "node:path";

/** A problem with an output folder; the message names the option and the path. */
export class OutputError extends Error {
  /** Makes an output error. */
  constructor(message: string) {
    super(message);
    this.name = "OutputError";
  }
}

/**
 * The lock file inside every output folder. It stays after a run (removing a lock file
 * others may have opened would let two runs hold "the" lock), except in a folder the run
 * created and left empty, which is removed with it.
 */
export const LOCK_FILE = ".skipdecode.lock";
/** The list of files the last completed {@linkcode OutputFolder.writeSet} wrote. */
export const MANIFEST_FILE = ".skipdecode-files.json";

const TEMP_NAME = /^\..*\.tmp-[0-9a-f-]{36}$|^\.staging-[0-9a-f-]{36}$|\.incomplete$/;

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
  const onSignal = () => {
    interrupted = true;
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
    for (const s of added) Deno.removeSignalListener(s, onSignal);
    if (interrupted) Deno.exit(130);
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
  const dir = dirname(path);
  const tmp = join(dir, `.${path.slice(dir.length + 1)}.tmp-${crypto.randomUUID()}`);
  try {
    if (typeof data === "string") Deno.writeTextFileSync(tmp, data);
    else Deno.writeFileSync(tmp, data);
    Deno.renameSync(tmp, path);
  } catch (e) {
    try {
      Deno.removeSync(tmp);
    } catch { /* never written */ }
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
    throw new OutputError(
      `${option} ${path} is outside the folders this task may write (e.g. out/ or reports/ ` +
        `in the repository); choose a folder there`,
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
}

/** An output folder held by this run; see the module documentation. */
export class OutputFolder {
  /** The folder. */
  readonly dir: string;
  /** The option that named it. */
  readonly option: string;
  #lock: Deno.FsFile | undefined;
  #created: boolean;

  private constructor(dir: string, option: string, lock: Deno.FsFile, created: boolean) {
    this.dir = dir;
    this.option = option;
    this.#lock = lock;
    this.#created = created;
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
        Deno.mkdirSync(dir, { recursive: true });
        lock = Deno.openSync(lockPath, { read: true, write: true, create: true });
      } catch (e) {
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
    const out = new OutputFolder(dir, option, lock!, created);
    out.#removeLeftovers(dir, 2);
    return out;
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
      .filter((n) => n !== LOCK_FILE && n !== MANIFEST_FILE && !TEMP_NAME.test(n)).sort();
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
        if (name.includes("/")) throw new OutputError(`writeSet: ${name} is not a plain name`);
        if (typeof data === "string") Deno.writeTextFileSync(join(stage, name), data);
        else Deno.writeFileSync(join(stage, name), data);
      }
      const names = [...Deno.readDirSync(stage)].filter((e) => e.isFile).map((e) => e.name)
        .filter((n) => !n.startsWith(".")).sort();
      const previous = this.#manifest();
      withInterruptsHeld(() => {
        for (const n of names) Deno.renameSync(join(stage, n), join(this.dir, n));
        for (const n of previous) {
          if (!names.includes(n)) {
            try {
              Deno.removeSync(join(this.dir, n));
            } catch { /* already gone */ }
          }
        }
        atomicWrite(join(this.dir, MANIFEST_FILE), JSON.stringify(names) + "\n");
      });
      return names;
    } catch (e) {
      if (e instanceof OutputError) throw e;
      throw new OutputError(`cannot write ${this.dir}: ${(e as Error).message}`);
    } finally {
      try {
        Deno.removeSync(stage, { recursive: true });
      } catch { /* removed by the next run */ }
    }
  }

  #manifest(): string[] {
    try {
      const list = JSON.parse(Deno.readTextFileSync(join(this.dir, MANIFEST_FILE)));
      return Array.isArray(list)
        ? list.filter((n) => typeof n === "string" && !n.includes("/") && !n.startsWith("."))
        : [];
    } catch {
      return [];
    }
  }

  #held(): void {
    if (!this.#lock) throw new OutputError(`${this.option} ${this.dir} was already closed`);
  }

  /**
   * Releases the lock. The lock file stays, unless this run created the folder and wrote
   * nothing into it: then the folder is removed.
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
      this.#lock.unlockSync();
    } catch { /* closing releases it too */ }
    this.#lock.close();
    this.#lock = undefined;
  }
}
