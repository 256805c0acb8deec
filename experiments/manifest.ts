/**
 * Provenance of a run folder: the one writer of `manifest.json` (command line, full
 * configuration, toolkit version and git commit, model and data content hashes, backend
 * and adapter, seed, start and end time), of `items.csv` (one row per policy x item with
 * every per-item metric, RFC 4180 quoting that pandas and polars read), and of the
 * Reproduce block of a report (a complete command: every option with its value, defaults
 * included, so a later change of a default does not change what it runs).
 *
 * @example
 * ```ts
 * import { buildManifest, manifestJson } from "./manifest.ts";
 * const m = buildManifest({
 *   command: "sweep",
 *   config: { items: 2 },
 *   startedAt: new Date().toISOString(),
 * });
 * console.log(manifestJson(m).includes('"toolkit"')); // true
 * ```
 * @module
 */
import { sha256File } from "../model/hash.ts";
import { toolkitInfo } from "./units.ts";

/** The manifest file of a run folder. */
export const RUN_MANIFEST_FILE = "manifest.json";
/** The per-item table of a run folder. */
export const ITEMS_CSV_FILE = "items.csv";

/** A file and its content hash. */
export interface HashedFile {
  /** The path as given (or inside the model folder). */
  path: string;
  /** Bytes. */
  bytes: number;
  /** Hex SHA-256 of its bytes (`model/hash.ts`). */
  sha256: string;
}

/** What `manifest.json` holds. */
export interface RunManifest {
  /** Format version of this file. */
  manifest: 1;
  /** The command (e.g. `sweep`). */
  command: string;
  /** A complete command line that reruns it (every option, defaults included). */
  commandLine?: string;
  /** The process's own arguments (`Deno.args`), as typed. */
  argv: string[];
  /** Every option's value, defaults included, and settings the run derived. */
  config: Record<string, unknown>;
  /**
   * The toolkit: name, version (`deno.json`), git commit (`SKIPDECODE_GIT_COMMIT` or the
   * checkout's `.git`, as `toolkitInfo` of `units.ts` reads it) when known, Deno's version.
   */
  toolkit: { name: string; version: string; commit?: string; deno: string };
  /** The model: what was asked for, where it was found, and its files' hashes. */
  model?: { source: string; dir?: string; files: HashedFile[] };
  /** The data: what was asked for and its files' hashes. */
  data?: { source: string; files: HashedFile[]; template?: string; items?: number };
  /** Backend name and, for WebGPU, the adapter. */
  backend?: { name: string; adapter?: Record<string, string> };
  /** Seed of everything random in the run (sampling, bootstrap), when it has one. */
  seed?: number;
  /** ISO time the run started. */
  startedAt: string;
  /** ISO time the run ended (the manifest was written). */
  endedAt: string;
}

/** Input of {@linkcode buildManifest}. */
export interface ManifestInput {
  /** The command. */
  command: string;
  /** The option values (from the parser, defaults filled in). */
  config: Record<string, unknown>;
  /** A complete command line ({@linkcode reproduceCommand}). */
  commandLine?: string;
  /** Model source and folder; its `config.json`, weight and tokenizer files are hashed. */
  model?: { source: string; dir: string; files?: string[] };
  /** Data source (file or `hf:` id) and its files (hashed), template, items used. */
  data?: { source: string; files: string[]; template?: string; items?: number };
  /** The backend (its `name`; a WebGPU backend's adapter info is read when present). */
  backend?: { name: string };
  /** Seed. */
  seed?: number;
  /** ISO start time. */
  startedAt: string;
  /** ISO end time (default now). */
  endedAt?: string;
}

const MODEL_FILES = [
  "config.json",
  "model.safetensors.index.json",
  "pytorch_model.bin.index.json",
  "tokenizer.json",
  "vocab.json",
  "merges.txt",
  "tokenizer_config.json",
  "special_tokens_map.json",
];

function hashed(path: string, shown = path): HashedFile | undefined {
  try {
    const st = Deno.statSync(path);
    if (!st.isFile) return undefined;
    return { path: shown, bytes: st.size, sha256: sha256File(path) };
  } catch {
    return undefined;
  }
}

/**
 * Collects a run's manifest: hashes the model's and the data's files, reads the toolkit's
 * version and commit, and the WebGPU adapter's description when the backend has one.
 *
 * @param input the run's settings
 * @returns the manifest
 * @example
 * ```ts
 * import { buildManifest } from "./manifest.ts";
 * const m = buildManifest({ command: "sweep", config: {}, startedAt: "2026-01-01T00:00:00Z" });
 * console.log(m.toolkit.name); // "@skipdecode/skipdecode"
 * ```
 */
export function buildManifest(input: ManifestInput): RunManifest {
  let argv: string[] = [];
  try {
    argv = [...Deno.args];
  } catch { /* no args */ }
  const m: RunManifest = {
    manifest: 1,
    command: input.command,
    ...(input.commandLine ? { commandLine: input.commandLine } : {}),
    argv,
    config: input.config,
    toolkit: (() => {
      const t = toolkitInfo(); // the same reading as work-unit manifests
      return {
        name: t.name,
        version: t.version,
        ...(t.commit ? { commit: t.commit } : {}),
        deno: Deno.version.deno,
      };
    })(),
    startedAt: input.startedAt,
    endedAt: input.endedAt ?? new Date().toISOString(),
  };
  if (input.model) {
    const dir = input.model.dir;
    const names = [...MODEL_FILES, ...(input.model.files ?? []).map((f) => relativeTo(dir, f))];
    const files = [...new Set(names)].flatMap((n) => hashed(`${dir}/${n}`, n) ?? []);
    m.model = { source: input.model.source, dir, files };
  }
  if (input.data) {
    const d = input.data;
    m.data = {
      source: d.source,
      files: d.files.flatMap((f) => hashed(f) ?? []),
      ...(d.template !== undefined ? { template: d.template } : {}),
      ...(d.items !== undefined ? { items: d.items } : {}),
    };
  }
  if (input.backend) {
    const gpu = (input.backend as { gpu?: { info?: GPUAdapterInfo } }).gpu?.info;
    m.backend = {
      name: input.backend.name,
      ...(gpu
        ? {
          adapter: {
            vendor: gpu.vendor,
            architecture: gpu.architecture,
            device: gpu.device,
            description: gpu.description,
          },
        }
        : {}),
    };
  }
  if (input.seed !== undefined) m.seed = input.seed;
  return m;
}

function relativeTo(dir: string, file: string): string {
  return file.startsWith(`${dir}/`) ? file.slice(dir.length + 1) : file;
}

/**
 * The manifest as the text of `manifest.json`.
 *
 * @param m the manifest
 * @returns pretty JSON with a final newline
 * @example
 * ```ts
 * import { buildManifest, manifestJson } from "./manifest.ts";
 * manifestJson(buildManifest({ command: "x", config: {}, startedAt: "" })).endsWith("}\n"); // true
 * ```
 */
export function manifestJson(m: RunManifest): string {
  return JSON.stringify(m, null, 2) + "\n";
}

/**
 * Quotes a word for a POSIX shell (single quotes when it holds anything but safe
 * characters).
 *
 * @param word the word
 * @returns the quoted word
 * @example
 * ```ts
 * import { shellQuote } from "./manifest.ts";
 * shellQuote("{input}\\n"); // "'{input}\\n'"
 * ```
 */
export function shellQuote(word: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(word) ? word : `'${word.replaceAll("'", `'\\''`)}'`;
}

/**
 * Splits a command line written by {@linkcode reproduceCommand} back into words: the
 * inverse of {@linkcode shellQuote} (plain words and single-quoted ones, `'\\''` inside).
 *
 * @param line the command line
 * @returns its words, unquoted
 * @example
 * ```ts
 * import { shellWords } from "./manifest.ts";
 * shellWords("a --t 'it'\\''s x'"); // ["a", "--t", "it's x"]
 * ```
 */
export function shellWords(line: string): string[] {
  const words: string[] = [];
  for (const m of line.matchAll(/(?:'[^']*'|\\'|[^\s'\\])+/g)) {
    words.push(m[0].replace(/'([^']*)'|\\'/g, (_q, inner?: string) => inner ?? "'"));
  }
  return words;
}

/** An option as {@linkcode reproduceCommand} reads it (the command's option spec). */
export interface ReproduceOption {
  /** `string` or `boolean` (a flag): the parser's type, where the spec gives it. */
  type?: "string" | "boolean";
  /** The option's kind (`cli/command.ts`): `flag` is a boolean. */
  kind?: string;
  /** Given several times. */
  multiple?: boolean;
}

/**
 * A complete command line for a command's option values: every option that has a value
 * (defaults included), booleans as `--x`/`--no-x`, lists repeated, in the spec's order.
 *
 * @param prefix the program and command (e.g. `"deno task skipdecode sweep"`)
 * @param options the command's option spec
 * @param values the parsed values (defaults filled in)
 * @param skip options to leave out (e.g. `help`)
 * @returns the command line
 * @example
 * ```ts
 * import { reproduceCommand } from "./manifest.ts";
 * reproduceCommand("deno task skipdecode sweep", {
 *   items: { type: "string" },
 *   policy: { type: "string", multiple: true },
 *   cache: { type: "boolean" },
 * }, { items: "2", policy: ["full", "linear:max=8,min=2"], cache: false });
 * // "deno task skipdecode sweep --items 2 --policy full --policy linear:max=8,min=2 --no-cache"
 * ```
 */
export function reproduceCommand(
  prefix: string,
  options: Record<string, ReproduceOption>,
  values: Record<string, unknown>,
  skip: readonly string[] = ["help"],
): string {
  const words: string[] = [];
  for (const [name, o] of Object.entries(options)) {
    const v = values[name];
    if (v === undefined || skip.includes(name)) continue;
    if (o.type === "boolean" || o.kind === "flag") words.push(v ? `--${name}` : `--no-${name}`);
    else for (const x of Array.isArray(v) ? v : [v]) words.push(`--${name}`, shellQuote(String(x)));
  }
  return [prefix, ...words].join(" ");
}

/**
 * Writes one CSV field (RFC 4180): quoted when it holds a comma, quote, line break or
 * leading/trailing space, quotes doubled; numbers written in full, `null`/`undefined`
 * empty.
 *
 * @param v the value
 * @returns the field
 * @example
 * ```ts
 * import { csvField } from "./manifest.ts";
 * csvField('say "hi", then\ngo'); // '"say ""hi"", then\ngo"'
 * ```
 */
export function csvField(v: unknown): string {
  if (v === null || v === undefined) return "";
  if (typeof v === "number") return Number.isFinite(v) ? String(v) : "";
  const s = typeof v === "string" ? v : typeof v === "boolean" ? String(v) : JSON.stringify(v);
  return /[",\r\n]|^\s|\s$/.test(s) ? `"${s.replaceAll('"', '""')}"` : s;
}

/**
 * A table as CSV text: a header of `columns`, one line per row (CRLF-free, `\n` ends each
 * record; fields with line breaks are quoted).
 *
 * @param columns column names, in order
 * @param rows the rows (missing values empty)
 * @returns the CSV text
 * @example
 * ```ts
 * import { toCsv } from "./manifest.ts";
 * toCsv(["a", "b"], [{ a: 1, b: "x,y" }]); // 'a,b\n1,"x,y"\n'
 * ```
 */
export function toCsv(
  columns: readonly string[],
  rows: readonly Record<string, unknown>[],
): string {
  const lines = [columns.map(csvField).join(",")];
  for (const r of rows) lines.push(columns.map((c) => csvField(r[c])).join(","));
  return lines.join("\n") + "\n";
}
