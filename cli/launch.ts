/**
 * The launcher behind `deno task skipdecode`: it parses the command line with the command's
 * own option specs (no file is touched), then runs `cli/main.ts` in a child Deno whose
 * permissions name exactly what this command line needs (docs/DESIGN.md §10):
 *
 * - **read**: the repository, `../shared`, the Hugging Face cache, and every file or folder
 *   the user names in a `path` option (model, data, prompts, policy file, config, ...),
 *   wherever it is;
 * - **write**: the output folders the user names (`--out`, `--models-dir`, `--cache-dir`, a
 *   command's default report folder), the repository's `out/` and `.cache/`, and the Hugging
 *   Face cache; nothing else;
 * - **network**: the hub's hosts only (and 127.0.0.1 for `serve`).
 *
 * Deno fixes permissions when a process starts, so the launcher itself runs with the
 * repository's read scope and the right to start Deno, and the child gets the scoped flags.
 * SIGTERM is passed on (Ctrl-C reaches the child from the terminal); the exit code is the
 * child's.
 *
 * @example
 * ```sh
 * deno task skipdecode generate --model /data/models/opt-350m --prompt-file ~/prompts.txt
 * ```
 * @module
 */
import { isAbsolute, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { optionKind, parseCommandArgs } from "./command.ts";
import { COMMANDS } from "./main.ts";
import { hubCacheDir } from "../model/hub.ts";
import { DEFAULT_BLAS_PATH } from "../train/blas.ts";
import { TOOLKIT_ENV } from "./options.ts";

/** The repository root. */
const ROOT = fileURLToPath(new URL("../", import.meta.url)).replace(/\/$/, "");

/** The hub's hosts (downloads and their CDNs). */
export const HUB_HOSTS: readonly string[] = [
  "huggingface.co",
  "cdn-lfs.huggingface.co",
  "cdn-lfs-us-1.huggingface.co",
  "cas-bridge.xethub.hf.co",
];

function envGet(name: string): string | undefined {
  try {
    return Deno.env.get(name) || undefined;
  } catch {
    return undefined;
  }
}

function abs(path: string, cwd: string): string {
  const p = path.startsWith("~/") ? `${envGet("HOME") ?? "~"}${path.slice(1)}` : path;
  return isAbsolute(p) ? p : resolve(cwd, p);
}

/** What a command line may read and write, as absolute paths. */
export interface LaunchScope {
  /** Files and folders it may read. */
  read: string[];
  /** Folders it may write. */
  write: string[];
  /** Hosts it may reach. */
  net: string[];
}

/**
 * The scope of a `skipdecode` command line: the fixed places plus every `path` option's
 * value (defaults included) as read, or as write for `writes` options.
 *
 * @param args the arguments after `skipdecode` (command first)
 * @param cwd the working folder relative paths are resolved against
 * @returns the read, write and network scope
 * @example
 * ```ts
 * import { launchScope } from "./launch.ts";
 * const s = launchScope(["generate", "--model", "/data/m", "--prompt", "x"], "/repo");
 * s.read.includes("/data/m"); // true
 * ```
 */
export function launchScope(args: string[], cwd: string): LaunchScope {
  const hf = hubCacheDir().replace(/\/hub$/, "");
  const read = [ROOT, resolve(ROOT, "../shared"), hf];
  const write = [`${ROOT}/out`, `${ROOT}/.cache`, hf];
  const cacheDir = envGet("SKIPDECODE_CACHE_DIR");
  if (cacheDir) write.push(abs(cacheDir, cwd));
  const net = [...HUB_HOSTS];
  const [name, ...rest] = args;
  const cmd = COMMANDS.find((c) => c.name === name);
  if (cmd) {
    if (cmd.name === "serve") net.push("127.0.0.1");
    let values: Record<string, unknown> = {};
    let operands: string[] = [];
    try {
      ({ values, positionals: operands } = parseCommandArgs(cmd, rest));
    } catch { /* the child prints the same usage error */ }
    // operands are folders a command works in (merge DIR: reads the units, writes the report)
    for (const p of operands) write.push(abs(p, cwd));
    for (const [opt, spec] of Object.entries(cmd.options)) {
      const v = values[opt];
      if (optionKind(spec) !== "path" || v === undefined) continue;
      for (const p of (Array.isArray(v) ? v : [v]).map((x) => abs(String(x), cwd))) {
        (spec.writes ? write : read).push(p);
      }
    }
  }
  const uniq = (xs: string[]) => [...new Set(xs)];
  return { read: uniq([...read, ...write]), write: uniq(write), net };
}

/**
 * The `deno run` permission flags of a command line (see {@linkcode launchScope}).
 *
 * @param args the arguments after `skipdecode`
 * @param cwd the working folder
 * @returns the flags, e.g. `["--allow-read=...", "--allow-write=...", ...]`
 * @example
 * ```ts
 * import { launchFlags } from "./launch.ts";
 * launchFlags(["plan"], "/repo")[0].startsWith("--allow-read="); // true
 * ```
 */
export function launchFlags(args: string[], cwd: string): string[] {
  const s = launchScope(args, cwd);
  const list = (xs: readonly string[]) => xs.map((x) => x.replaceAll(",", ",,")).join(",");
  return [
    `--allow-read=${list(s.read)}`,
    `--allow-write=${list(s.write)}`,
    `--allow-net=${s.net.join(",")}`,
    `--allow-env=${TOOLKIT_ENV.join(",")}`,
    "--allow-run=sbatch,squeue",
    `--allow-ffi=${DEFAULT_BLAS_PATH}`, // the CPU trainer's OpenBLAS (train/blas.ts)
    "--allow-sys=systemMemoryInfo", // the fit check before loading (model/memory.ts)
  ];
}

/**
 * Runs `cli/main.ts` with the scoped flags and returns its exit code (128 + the signal's
 * number when it was killed by one).
 *
 * @param args the arguments after `skipdecode`
 * @returns the exit code
 * @example
 * ```ts ignore
 * Deno.exit(await launch(["plan", "--policy", "step:12x4,3"]));
 * ```
 */
export async function launch(args: string[]): Promise<number> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", ...launchFlags(args, Deno.cwd()), `${ROOT}/cli/main.ts`, ...args],
    stdin: "inherit",
    stdout: "inherit",
    stderr: "inherit",
  }).spawn();
  // SIGTERM is passed on. Ctrl-C reaches the child from the terminal itself (the whole
  // foreground process group gets SIGINT), so the launcher only waits: passing it on too
  // would be a second Ctrl-C, which some commands read as "stop now".
  const handlers: [Deno.Signal, () => void][] = [
    ["SIGTERM", () => {
      try {
        child.kill("SIGTERM");
      } catch { /* already ended */ }
    }],
    ["SIGINT", () => {}],
  ];
  for (const [s, f] of handlers) Deno.addSignalListener(s, f);
  const status = await child.status;
  for (const [s, f] of handlers) Deno.removeSignalListener(s, f);
  if (status.signal) {
    const n: Record<string, number> = { SIGINT: 2, SIGTERM: 15, SIGKILL: 9, SIGABRT: 6 };
    return 128 + (n[status.signal] ?? 1);
  }
  return status.code;
}

if (import.meta.main) Deno.exit(await launch(Deno.args));
