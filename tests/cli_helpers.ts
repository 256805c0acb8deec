/**
 * Running the command line as a task user does: `cli/main.ts` in a subprocess with exactly
 * the permissions of a `deno.json` task, in the repository, offline; a sandbox folder under
 * `out/` (which those tasks may write) for fixtures and outputs; snapshots of folders to
 * prove nothing was written or lost.
 *
 * @module
 */
import { assert } from "@std/assert";
import { launchFlags } from "../cli/launch.ts";

/** The repository root. */
export const ROOT: string = decodeURIComponent(new URL("../", import.meta.url).pathname)
  .replace(/\/$/, "");
/** The tiny checkpoint the repository ships. */
export const TINY: string = decodeURIComponent(
  new URL("../bundled/models/tiny-opt-e2e", import.meta.url).pathname,
);
const XDG = Deno.makeTempDirSync({ prefix: "cli-xdg-" }); // quiets Mesa's Vulkan loader
Deno.chmodSync(XDG, 0o700);

/**
 * The `--allow-*` flags of a `deno.json` task (`$HOME` and the task's
 * `$(deno eval 'console.log(Deno.execPath())')` expanded, quotes removed).
 *
 * @example
 * ```ts
 * taskPermissions("skipdecode"); // ["--allow-read=.,../shared,...", ...]
 * ```
 */
export function taskPermissions(task: string): string[] {
  const json = JSON.parse(Deno.readTextFileSync(`${ROOT}/deno.json`));
  const line: string = json.tasks[task];
  assert(line, `deno.json has no task ${task}`);
  let home = "/root";
  try {
    home = Deno.env.get("HOME") ?? home;
  } catch { /* default */ }
  return line.replaceAll(`"$(deno eval 'console.log(Deno.execPath())')"`, Deno.execPath())
    .split(/\s+/).filter((w) => w.startsWith("--allow-"))
    .map((w) => w.replaceAll("$HOME", home).replaceAll('"', ""));
}

/** What a command-line run gave. */
export interface CliResult {
  /** Exit code. */
  code: number;
  /** Standard output. */
  stdout: string;
  /** Standard error. */
  stderr: string;
}

/** Options of {@linkcode cli}. */
export interface CliOptions {
  /** The `deno.json` task whose permissions apply (default `"skipdecode"`). */
  task?: string;
  /** Extra environment variables. */
  env?: Record<string, string>;
  /** Abort signal (to interrupt from outside use {@linkcode spawnCli}). */
  signal?: AbortSignal;
}

function command(args: string[], options: CliOptions): Deno.Command {
  const task = options.task ?? "skipdecode";
  // `deno task skipdecode` is a launcher (cli/launch.ts) that runs cli/main.ts with flags
  // scoped to the command line: the same flags here, without the second process.
  const perms = task === "skipdecode" ? launchFlags(args, ROOT) : taskPermissions(task);
  const entry = task === "demo" || task === "train" ? ["cli/main.ts", task] : ["cli/main.ts"];
  return new Deno.Command(Deno.execPath(), {
    args: ["run", ...perms, ...entry, ...args],
    cwd: ROOT,
    env: { NO_COLOR: "1", HF_HUB_OFFLINE: "1", XDG_RUNTIME_DIR: XDG, ...options.env },
    stdout: "piped",
    stderr: "piped",
    signal: options.signal,
  });
}

/**
 * Runs `cli/main.ts` with a task's permissions and waits for it.
 *
 * @example
 * ```ts
 * const r = await cli(["plan", "--layers", "0x4"]);
 * ```
 */
export async function cli(args: string[], options: CliOptions = {}): Promise<CliResult> {
  const out = await command(args, options).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

/**
 * Starts `cli/main.ts` with a task's permissions (for interrupts and races).
 *
 * @example
 * ```ts
 * const child = spawnCli(["sweep", "--items", "1"]);
 * child.kill("SIGINT");
 * ```
 */
export function spawnCli(args: string[], options: CliOptions = {}): Deno.ChildProcess {
  return command(args, options).spawn();
}

/** Collects a spawned run's result. */
export async function collect(
  child: Deno.ChildProcess,
): Promise<CliResult & { signal: string | null }> {
  const out = await child.output();
  const dec = new TextDecoder();
  return {
    code: out.code,
    signal: out.signal,
    stdout: dec.decode(out.stdout),
    stderr: dec.decode(out.stderr),
  };
}

/**
 * A fresh folder under `out/` (which the tasks may write), removed by `dispose`.
 *
 * @example
 * ```ts
 * using box = sandbox("bad-input");
 * ```
 */
export function sandbox(name: string): { dir: string; rel: string } & Disposable {
  const rel = `out/.test-${name}-${crypto.randomUUID().slice(0, 8)}`;
  const dir = `${ROOT}/${rel}`;
  Deno.mkdirSync(dir, { recursive: true });
  return {
    dir,
    rel,
    [Symbol.dispose]() {
      try {
        Deno.removeSync(dir, { recursive: true });
      } catch { /* already gone */ }
    },
  };
}

/**
 * Every file under a folder with its bytes (as text, for comparison), `{}` when missing.
 *
 * @example
 * ```ts
 * const before = snapshot("out/x");
 * ```
 */
export function snapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string, prefix: string) => {
    let entries: Deno.DirEntry[];
    try {
      entries = [...Deno.readDirSync(d)];
    } catch {
      return;
    }
    for (const e of entries) {
      const path = `${d}/${e.name}`;
      if (e.isDirectory) {
        out[`${prefix}${e.name}/`] = "";
        walk(path, `${prefix}${e.name}/`);
      } else if (e.isSymlink) out[`${prefix}${e.name}`] = `-> ${Deno.readLinkSync(path)}`;
      else {
        const bytes = Deno.readFileSync(path);
        out[`${prefix}${e.name}`] = `${bytes.length}:${hash(bytes)}`;
      }
    }
  };
  walk(dir, "");
  return out;
}

function hash(bytes: Uint8Array): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < bytes.length; i++) h = Math.imul(h ^ bytes[i], 0x01000193);
  return (h >>> 0).toString(16);
}

/**
 * Runs async jobs with at most `n` at a time, results in order.
 *
 * @example
 * ```ts
 * await pool([1, 2, 3], 2, async (x) => x * 2); // [2, 4, 6]
 * ```
 */
export async function pool<T, R>(items: T[], n: number, fn: (x: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(n, items.length) }, async () => {
      while (next < items.length) {
        const i = next++;
        out[i] = await fn(items[i]);
      }
    }),
  );
  return out;
}
