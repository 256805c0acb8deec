/**
 * The toolkit's one rule for paths (`docs/DESIGN.md` §10), enforced here and used by every
 * reader and writer:
 *
 * - **inputs the user names** (prompt files, data, hypotheses, references, configs, policy
 *   files) are read where they are, but only when they are regular files (a FIFO, a device
 *   or a folder is refused before it is opened, so nothing hangs on a pipe or reads
 *   `/dev/zero` forever) and no larger than a stated limit ({@linkcode readInputFile});
 * - **files inside a model folder** ({@linkcode modelFile}) must resolve, after every
 *   symbolic link, inside that folder or inside the `blobs/` of the same Hugging Face cache
 *   repository (`models--org--name/blobs/`, where a snapshot's links point); anything else
 *   is refused, naming the file and where it leads, and its bytes are never read;
 * - **outputs, locks, temporaries, checkpoints and cache entries** are created only inside
 *   their resolved root and never through a symbolic link: folders are created one
 *   component at a time, each checked to be a real folder ({@linkcode ensureRealDir}), and
 *   files are created exclusively ({@linkcode createExclusive}), so a link planted where a
 *   file or folder is expected is an error naming it, not a write through it.
 *
 * @example
 * ```ts
 * import { modelFile, readInputFile } from "./paths.ts";
 * const config = modelFile("bundled/models/tiny-opt-e2e", "config.json")!;
 * console.log(readInputFile(config, { what: "config.json", maxBytes: 1 << 20 }).length > 0);
 * ```
 * @module
 */
import { basename, dirname, join, resolve, sep } from "node:path";

/** A path that breaks the rule; the message names the path and why. */
export class PathRuleError extends Error {
  /** The path at fault. */
  readonly path: string;
  /** Makes the error. */
  constructor(message: string, path: string) {
    super(message);
    this.name = "PathRuleError";
    this.path = path;
  }
}

function lstatOrUndefined(path: string): Deno.FileInfo | undefined {
  try {
    return Deno.lstatSync(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound || e instanceof Deno.errors.NotADirectory) {
      return undefined;
    }
    throw e;
  }
}

/** What kind of thing a `stat` describes, in words, for messages. */
export function fileKind(st: Deno.FileInfo): string {
  if (st.isFile) return "a regular file";
  if (st.isDirectory) return "a folder";
  if (st.isSymlink) return "a symbolic link";
  if (st.isFifo) return "a FIFO (named pipe)";
  if (st.isCharDevice) return "a character device";
  if (st.isBlockDevice) return "a block device";
  if (st.isSocket) return "a socket";
  return "not a regular file";
}

function inside(child: string, parent: string): boolean {
  return child === parent || child.startsWith(parent.endsWith(sep) ? parent : parent + sep);
}

/**
 * The `blobs/` folder of the Hugging Face cache repository that holds `realDir`, when
 * `realDir` is a snapshot (`.../models--org--name/snapshots/<rev>[/sub]`).
 */
function hubBlobs(realDir: string): string | undefined {
  const parts = realDir.split(sep);
  for (let i = parts.length - 2; i >= 1; i--) {
    if (parts[i] === "snapshots" && /^(models|datasets|spaces)--/.test(parts[i - 1])) {
      return [...parts.slice(0, i), "blobs"].join(sep);
    }
  }
  return undefined;
}

/**
 * The path of `name` inside the model folder `dir`, checked against the rule: after every
 * symbolic link it must lead inside the folder or into the same Hugging Face cache
 * repository's `blobs/`, and be a regular file. A missing file gives `undefined` (the
 * caller says what it needed). Nothing is read.
 *
 * @param dir the model folder
 * @param name a file name inside it (e.g. `config.json`, a shard)
 * @returns the path to open, or `undefined` when there is no such file
 * @throws PathRuleError naming the file and where it leads
 * @example
 * ```ts
 * import { modelFile } from "./paths.ts";
 * console.log(modelFile("bundled/models/tiny-opt-e2e", "model.safetensors") !== undefined);
 * ```
 */
export function modelFile(dir: string, name: string): string | undefined {
  const path = join(dir, name);
  const l = lstatOrUndefined(path);
  if (!l) return undefined;
  let real: string;
  try {
    real = Deno.realPathSync(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw new PathRuleError(`${path} is a symbolic link to nothing (a dangling link)`, path);
    }
    throw e;
  }
  const realDir = Deno.realPathSync(dir);
  const blobs = hubBlobs(realDir);
  if (!inside(real, realDir) && !(blobs && inside(real, blobs))) {
    throw new PathRuleError(
      `${path} leads to ${real}, outside the model folder ${realDir}` +
        `${blobs ? ` and its cache repository's ${blobs}` : ""}; refused (a model folder's ` +
        `files must stay inside it)`,
      path,
    );
  }
  const st = Deno.statSync(real);
  if (!st.isFile) {
    throw new PathRuleError(`${path} is ${fileKind(st)}, not a regular file`, path);
  }
  return path;
}

/** Options of {@linkcode readInputFile}. */
export interface ReadInputOptions {
  /** What the file is, for messages (e.g. `"--prompt-file"`). */
  what: string;
  /** The largest size accepted, in bytes. */
  maxBytes: number;
}

/**
 * Checks that `path` is a regular file (following links: inputs the user names are read
 * where they are) no larger than `maxBytes`, before anything opens it, and returns its
 * size. A FIFO or device is refused here instead of hanging or filling memory.
 *
 * @param path the file
 * @param options what it is and its size limit
 * @returns the size in bytes
 * @throws PathRuleError naming `what` and the path; `Deno.errors.NotFound` when missing
 * @example
 * ```ts
 * import { checkInputFile } from "./paths.ts";
 * console.log(checkInputFile("deno.json", { what: "deno.json", maxBytes: 1 << 20 }) > 0);
 * ```
 */
export function checkInputFile(path: string, options: ReadInputOptions): number {
  const st = Deno.statSync(path);
  if (st.isDirectory) {
    throw new PathRuleError(`cannot read ${options.what} ${path}: it is a folder`, path);
  }
  if (!st.isFile) {
    throw new PathRuleError(
      `${options.what} ${path} is ${fileKind(st)}; a regular file is needed`,
      path,
    );
  }
  if (st.size > options.maxBytes) {
    throw new PathRuleError(
      `${options.what} ${path} is ${st.size} bytes, more than the limit of ` +
        `${options.maxBytes} bytes for it`,
      path,
    );
  }
  return st.size;
}

/**
 * Reads an input file after {@linkcode checkInputFile}; stops at `maxBytes` even when the
 * file grows meanwhile.
 *
 * @param path the file
 * @param options what it is and its size limit
 * @returns its bytes
 * @throws PathRuleError naming `what` and the path; `Deno.errors.NotFound` when missing
 * @example
 * ```ts
 * import { readInputFile } from "./paths.ts";
 * const bytes = readInputFile("deno.json", { what: "deno.json", maxBytes: 1 << 20 });
 * ```
 */
export function readInputFile(path: string, options: ReadInputOptions): Uint8Array {
  checkInputFile(path, options);
  using f = Deno.openSync(path, { read: true });
  const st = f.statSync();
  if (!st.isFile) {
    throw new PathRuleError(
      `${options.what} ${path} is ${fileKind(st)}; a regular file is needed`,
      path,
    );
  }
  const cap = Math.min(st.size, options.maxBytes);
  const buf = new Uint8Array(cap + 1);
  let n = 0;
  while (n < buf.length) {
    const r = f.readSync(buf.subarray(n));
    if (r === null || r === 0) break;
    n += r;
  }
  if (n > options.maxBytes) {
    throw new PathRuleError(
      `${options.what} ${path} grew beyond the limit of ${options.maxBytes} bytes while read`,
      path,
    );
  }
  return buf.slice(0, n);
}

/**
 * Makes sure `dir` is a real folder, creating missing components one at a time; any
 * existing component that is a symbolic link, or not a folder, is refused. Components
 * above `root` (resolved) are not checked: the root is where the user chose to write.
 *
 * @param dir the folder to have
 * @param root the output or cache root it must stay inside (default: `dir` itself)
 * @param what what the folder is, for messages
 * @returns whether the folder itself was created by this call
 * @throws PathRuleError naming the link or file in the way
 * @example
 * ```ts
 * import { ensureRealDir } from "./paths.ts";
 * const root = Deno.makeTempDirSync();
 * ensureRealDir(`${root}/a/b`, root, "--out");
 * ```
 */
export function ensureRealDir(dir: string, root: string = dir, what = "folder"): boolean {
  const absRoot = resolve(root), abs = resolve(dir);
  if (!inside(abs, absRoot)) {
    throw new PathRuleError(`${what} ${dir} is outside ${root}`, dir);
  }
  const parts = abs.slice(absRoot.length).split(sep).filter(Boolean);
  let at = absRoot;
  let created = false;
  const check = (p: string) => {
    const st = lstatOrUndefined(p);
    if (!st) return false;
    if (st.isSymlink) {
      throw new PathRuleError(
        `${what}: ${p} is a symbolic link; refused (a link could carry the output anywhere: ` +
          `remove it or choose another folder)`,
        p,
      );
    }
    if (!st.isDirectory) {
      throw new PathRuleError(`${what}: ${p} exists and is ${fileKind(st)}, not a folder`, p);
    }
    return true;
  };
  if (!check(at)) {
    Deno.mkdirSync(at, { recursive: true });
    created = parts.length === 0;
  }
  for (const part of parts) {
    at = join(at, part);
    if (check(at)) continue;
    try {
      Deno.mkdirSync(at);
      created = at === abs;
    } catch (e) {
      if (!(e instanceof Deno.errors.AlreadyExists)) throw e;
      check(at); // made by someone else meanwhile: it must still be a real folder
    }
  }
  return created;
}

/**
 * Creates a new file exclusively (never opening an existing file or a link's target) with
 * the given contents. A link or file already at `path` is an error naming it.
 *
 * @param path the file to create
 * @param data its contents
 * @param what what it is, for messages
 * @throws PathRuleError when something already exists at `path`
 * @example
 * ```ts
 * import { createExclusive } from "./paths.ts";
 * createExclusive(`${Deno.makeTempDirSync()}/a.txt`, "hi\n");
 * ```
 */
export function createExclusive(path: string, data: string | Uint8Array, what = "file"): void {
  let f: Deno.FsFile;
  try {
    f = Deno.openSync(path, { write: true, createNew: true, mode: 0o644 });
  } catch (e) {
    if (e instanceof Deno.errors.AlreadyExists) {
      const st = lstatOrUndefined(path);
      throw new PathRuleError(
        `${what} ${path} already exists${st ? ` (${fileKind(st)})` : ""}; refused to write ` +
          `through it`,
        path,
      );
    }
    throw e;
  }
  try {
    const bytes = typeof data === "string" ? new TextEncoder().encode(data) : data;
    let n = 0;
    while (n < bytes.length) n += f.writeSync(bytes.subarray(n));
  } finally {
    f.close();
  }
}

/**
 * Refuses a symbolic link (or anything but a regular file) at `path`, where a file is to be
 * replaced by a rename or removed; a missing path is fine.
 *
 * @param path the file that will be replaced
 * @param what what it is, for messages
 * @throws PathRuleError naming the link
 * @example
 * ```ts
 * import { refuseLink } from "./paths.ts";
 * refuseLink("deno.json");
 * ```
 */
export function refuseLink(path: string, what = "file"): void {
  const st = lstatOrUndefined(path);
  if (st && !st.isFile) {
    throw new PathRuleError(
      `${what} ${path} is ${fileKind(st)}; refused (only a regular file written by this ` +
        `toolkit may be replaced there)`,
      path,
    );
  }
}

/**
 * A temporary name beside `path` (same folder, hidden, unique), for write-then-rename.
 *
 * @example
 * ```ts
 * import { tempNameBeside } from "./paths.ts";
 * console.log(tempNameBeside("out/x/report.md").includes("/.report.md.tmp-")); // true
 * ```
 */
export function tempNameBeside(path: string): string {
  return join(dirname(path), `.${basename(path)}.tmp-${crypto.randomUUID()}`);
}
