/**
 * Evaluation data: the E2E-style `mr,ref` CSV (RFC 4180 quoting), grouped into
 * multi-reference items; plain prompt files; and prompt templates.
 *
 * @example
 * ```ts
 * import { applyTemplate, E2E_DEVSET_URL, E2E_TEMPLATE, loadE2eCsv } from "./datasets.ts";
 * const items = await loadE2eCsv(E2E_DEVSET_URL);
 * const prompt = applyTemplate(E2E_TEMPLATE, items[0]); // "name[Alimentum], ...\n"
 * ```
 * @module
 */
import { PathRuleError, readInputFile } from "../model/paths.ts";

/** One input with all its references, in file order. */
export interface E2eItem {
  /** The meaning representation (the model's input). */
  mr: string;
  /** Every reference text given for this `mr`, in file order. */
  refs: string[];
}

/** One CSV record and the 1-based line it starts on. */
export interface CsvRecord {
  /** The record's fields, unquoted. */
  fields: string[];
  /** 1-based line number of the record's first character. */
  line: number;
}

/**
 * The prompt format the tiny E2E model was trained with (docs/DESIGN.md §9).
 *
 * @example
 * ```ts
 * import { applyTemplate, E2E_TEMPLATE } from "./datasets.ts";
 * console.log(JSON.stringify(applyTemplate(E2E_TEMPLATE, { mr: "name[X]" }))); // "name[X]\n"
 * ```
 */
export const E2E_TEMPLATE = "{mr}\n";

/**
 * The E2E (cleaned) validation split the repository ships: `bundled/data/e2e/devset.csv`
 * (4299 `mr,ref` rows, CC BY-SA 4.0, attribution in `bundled/data/e2e/README.md`).
 *
 * @example
 * ```ts
 * import { E2E_DEVSET_URL, loadE2eCsv } from "./datasets.ts";
 * const items = await loadE2eCsv(E2E_DEVSET_URL);
 * ```
 */
export const E2E_DEVSET_URL: URL = new URL("../bundled/data/e2e/devset.csv", import.meta.url);

/**
 * Error for bad evaluation data; the message names the file and line or column.
 *
 * @example
 * ```ts
 * import { DataError, parseE2eCsv } from "./datasets.ts";
 * try {
 *   parseE2eCsv("mr,text\na,b\n", "x.csv");
 * } catch (e) {
 *   if (e instanceof DataError) console.log(e.message); // x.csv: header lacks column "ref" ...
 * }
 * ```
 */
export class DataError extends Error {
  /** Makes a data error with a message. */
  constructor(message: string) {
    super(message);
    this.name = "DataError";
  }
}

function pathName(path: string | URL): string {
  return path instanceof URL
    ? (path.protocol === "file:" ? decodeURIComponent(path.pathname) : path.href)
    : path;
}

/** The largest text input read (data sets, prompt files, hypotheses, references). */
export const MAX_TEXT_INPUT_BYTES = 256 << 20;

/**
 * Reads a whole text file, with an error naming the file (and what it was for) when it is
 * missing or unreadable.
 *
 * @param path file path or `file:` URL
 * @param what what the file is, for the error message (e.g. `"E2E CSV"`)
 * @returns the file's text
 * @example
 * ```ts
 * import { readText } from "./datasets.ts";
 * const text = await readText("hyps.txt", "hypothesis file");
 * ```
 */
export async function readText(path: string | URL, what: string): Promise<string> {
  let bytes: Uint8Array;
  try {
    await Promise.resolve();
    // regular files only (a FIFO would hang, /dev/zero fill memory), size bounded first
    bytes = readInputFile(pathName(path), { what, maxBytes: MAX_TEXT_INPUT_BYTES });
  } catch (e) {
    if (e instanceof PathRuleError) throw new DataError(e.message);
    const why = e instanceof Deno.errors.NotFound
      ? "not found"
      : e instanceof Deno.errors.IsADirectory
      ? "it is a folder"
      : e instanceof Deno.errors.NotCapable
      ? "this process may not read it (the deno.json tasks read the repository, ../shared " +
        "and ~/.cache/huggingface; grant this file alone with " +
        `\`deno run --allow-read=.,${path} --allow-env --allow-write=./out cli/main.ts ...\`)`
      : (e as Error).message;
    throw new DataError(`cannot read ${what} ${pathName(path)}: ${why}`);
  }
  return decodeUtf8(bytes, `${what} ${pathName(path)}`);
}

/**
 * Decodes UTF-8 strictly: invalid bytes are an error naming the source and the line
 * (never silently U+FFFD), and a leading byte-order mark is dropped.
 *
 * @param bytes the file's bytes
 * @param source what they are, for the message (e.g. `"prompts file p.txt"`)
 * @returns the text, without a byte-order mark
 * @throws DataError naming `source`, the line and the byte offset of the first bad byte
 * @example
 * ```ts
 * import { decodeUtf8 } from "./datasets.ts";
 * decodeUtf8(new Uint8Array([0xef, 0xbb, 0xbf, 0x68, 0x69]), "x"); // "hi"
 * ```
 */
export function decodeUtf8(bytes: Uint8Array, source: string): string {
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(bytes);
  } catch {
    // Find the first byte the lenient decoder would replace: decode growing prefixes.
    let lo = 0, hi = bytes.length;
    const ok = (n: number) => {
      try {
        new TextDecoder("utf-8", { fatal: true }).decode(bytes.subarray(0, n), { stream: true });
        return true;
      } catch {
        return false;
      }
    };
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (ok(mid)) lo = mid;
      else hi = mid - 1;
    }
    let line = 1;
    for (let i = 0; i < lo; i++) if (bytes[i] === 0x0a) line++;
    throw new DataError(
      `${source}: line ${line}: not valid UTF-8 (bad byte 0x${
        (bytes[lo] ?? 0).toString(16).padStart(2, "0")
      } at offset ${lo}); save the file as UTF-8`,
    );
  }
  return text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
}

/**
 * Parses CSV text (RFC 4180): comma-separated fields (or another delimiter, e.g. tab), records end at LF or CRLF, a field
 * in double quotes may hold commas, line breaks and doubled quotes (`""`). Blank lines
 * are skipped; a leading byte-order mark is dropped.
 *
 * @param text the CSV text
 * @param source file name for error messages
 * @param delimiter the field separator (default `","`; `"\t"` for TSV)
 * @returns the records with their starting lines
 * @throws DataError naming `source` and the line of a stray or unterminated quote
 * @example
 * ```ts
 * import { parseCsv } from "./datasets.ts";
 * const recs = parseCsv('a,b\n"x, ""y""",z\n', "t.csv");
 * console.log(recs[1].fields); // ['x, "y"', "z"]
 * ```
 */
export function parseCsv(text: string, source: string, delimiter = ","): CsvRecord[] {
  const out: CsvRecord[] = [];
  const d = delimiter;
  let i = text.charCodeAt(0) === 0xfeff ? 1 : 0;
  let line = 1;
  const n = text.length;
  while (i < n) {
    // Start of a record.
    if (text[i] === "\n" || (text[i] === "\r" && text[i + 1] === "\n")) {
      i += text[i] === "\r" ? 2 : 1;
      line++;
      continue; // blank line
    }
    const startLine = line;
    const fields: string[] = [];
    for (;;) {
      let field = "";
      if (text[i] === '"') {
        const quoteLine = line;
        i++;
        for (;;) {
          if (i >= n) {
            throw new DataError(
              `${source}: line ${quoteLine}: quoted field is never closed (missing '"')`,
            );
          }
          const c = text[i];
          if (c === '"') {
            if (text[i + 1] === '"') {
              field += '"';
              i += 2;
            } else {
              i++;
              break;
            }
          } else {
            if (c === "\n") line++;
            field += c;
            i++;
          }
        }
        if (i < n && text[i] !== d && text[i] !== "\n" && text[i] !== "\r") {
          throw new DataError(
            `${source}: line ${line}: unexpected ${JSON.stringify(text[i])} after a closing quote`,
          );
        }
      } else {
        const start = i;
        while (i < n && text[i] !== d && text[i] !== "\n" && text[i] !== "\r") {
          if (text[i] === '"') {
            throw new DataError(
              `${source}: line ${line}: stray '"' inside an unquoted field (quote the field and double the quote)`,
            );
          }
          i++;
        }
        field = text.slice(start, i);
      }
      fields.push(field);
      if (i < n && text[i] === d) {
        i++;
        continue;
      }
      // End of record: LF, CRLF, a lone CR, or end of text.
      if (text[i] === "\r") i++;
      if (text[i] === "\n") i++;
      line++;
      break;
    }
    out.push({ fields, line: startLine });
  }
  return out;
}

/**
 * Parses an E2E-style CSV (header with `mr` and `ref` columns, other columns ignored)
 * and groups rows by `mr` into multi-reference items, in order of first appearance.
 *
 * @param text the CSV text
 * @param source file name for error messages
 * @returns one item per distinct `mr`
 * @throws DataError naming `source` and the missing column, the line of a malformed
 *   row (wrong field count, empty `mr` or `ref`, bad quoting), or a header without rows
 * @example
 * ```ts
 * import { parseE2eCsv } from "./datasets.ts";
 * const items = parseE2eCsv('mr,ref\n"a[x]",one\n"a[x]",two\n', "t.csv");
 * console.log(items); // [{ mr: "a[x]", refs: ["one", "two"] }]
 * ```
 */
export function parseE2eCsv(text: string, source: string): E2eItem[] {
  const recs = parseCsv(text, source);
  if (recs.length === 0) throw new DataError(`${source}: empty file (expected a header "mr,ref")`);
  const header = recs[0].fields.map((h) => h.trim());
  const col = (name: string): number => {
    const k = header.indexOf(name);
    if (k >= 0 && header.indexOf(name, k + 1) >= 0) {
      throw new DataError(
        `${source}: header has column "${name}" twice (columns ${k + 1} and ${
          header.indexOf(name, k + 1) + 1
        }); which one is meant is unclear`,
      );
    }
    if (k < 0) {
      throw new DataError(
        `${source}: header lacks column "${name}" (found: ${header.join(", ")})`,
      );
    }
    return k;
  };
  const mrCol = col("mr");
  const refCol = col("ref");
  const byMr = new Map<string, E2eItem>();
  for (const rec of recs.slice(1)) {
    if (rec.fields.length !== header.length) {
      throw new DataError(
        `${source}: line ${rec.line}: ${rec.fields.length} fields, the header has ${header.length}`,
      );
    }
    const mr = rec.fields[mrCol];
    const ref = rec.fields[refCol];
    if (mr.trim() === "") throw new DataError(`${source}: line ${rec.line}: empty "mr" field`);
    if (ref.trim() === "") throw new DataError(`${source}: line ${rec.line}: empty "ref" field`);
    const item = byMr.get(mr);
    if (item) item.refs.push(ref);
    else byMr.set(mr, { mr, refs: [ref] });
  }
  if (byMr.size === 0) throw new DataError(`${source}: a header but no rows`);
  return [...byMr.values()];
}

/**
 * Loads an E2E-style CSV file; see {@linkcode parseE2eCsv}.
 *
 * @param path file path or `file:` URL (e.g. {@linkcode E2E_DEVSET_URL})
 * @returns one item per distinct `mr`, in order of first appearance
 * @example
 * ```ts
 * import { E2E_DEVSET_URL, loadE2eCsv } from "./datasets.ts";
 * const items = await loadE2eCsv(E2E_DEVSET_URL);
 * console.log(items.length); // 1484 distinct MRs in the 4299-row devset
 * ```
 */
export async function loadE2eCsv(path: string | URL): Promise<E2eItem[]> {
  return parseE2eCsv(await readText(path, "E2E CSV"), pathName(path));
}

/**
 * Splits text into lines (LF or CRLF); a final line break does not add an empty line.
 *
 * @param text the text
 * @returns its lines, without line breaks
 * @example
 * ```ts
 * import { splitLines } from "./datasets.ts";
 * console.log(splitLines("a\r\nb\rc\n")); // ["a", "b", "c"]
 * ```
 */
export function splitLines(text: string): string[] {
  if (text === "") return [];
  // "\r\n" (Windows), "\n" (Unix) and a lone "\r" (old Mac) all end a line
  const lines = text.split(/\r\n|\r|\n/);
  if (/[\r\n]$/.test(text)) lines.pop();
  return lines;
}

/**
 * Loads prompts: a JSON array of strings when the path ends in `.json`, otherwise one
 * prompt per line (blank lines skipped; use JSON for prompts with line breaks).
 *
 * @param path file path or `file:` URL
 * @returns the prompts, in file order
 * @throws DataError naming the file (and the entry) when the file is missing, is not a
 *   JSON array of strings, or holds no prompts
 * @example
 * ```ts
 * import { loadPrompts } from "./datasets.ts";
 * const prompts = await loadPrompts("prompts.json"); // ["Hello", "Once upon a time"]
 * ```
 */
export async function loadPrompts(path: string | URL): Promise<string[]> {
  const name = pathName(path);
  const text = await readText(path, "prompts file");
  let prompts: string[];
  if (name.toLowerCase().endsWith(".json")) {
    let v: unknown;
    try {
      v = JSON.parse(text);
    } catch (e) {
      throw new DataError(`${name}: not valid JSON: ${(e as Error).message}`);
    }
    if (!Array.isArray(v)) throw new DataError(`${name}: expected a JSON array of strings`);
    v.forEach((p, k) => {
      if (typeof p !== "string") {
        throw new DataError(`${name}: entry ${k} is ${typeof p}, expected a string`);
      }
    });
    prompts = v as string[];
  } else {
    prompts = splitLines(text).filter((l) => l.trim() !== "");
  }
  if (prompts.length === 0) throw new DataError(`${name}: no prompts`);
  return prompts;
}

/**
 * Fills a prompt template: each `{name}` is replaced by the item's string field `name`
 * (for E2E items, `{mr}`). `{{` and `}}` stand for literal braces.
 *
 * @param template e.g. {@linkcode E2E_TEMPLATE} (`"{mr}\n"`)
 * @param item the values, e.g. an {@linkcode E2eItem}
 * @returns the prompt
 * @throws DataError naming a placeholder the item has no string field for
 * @example
 * ```ts
 * import { applyTemplate } from "./datasets.ts";
 * console.log(applyTemplate("Data: {mr}\nText:", { mr: "name[X]" })); // "Data: name[X]\nText:"
 * ```
 */
export function applyTemplate(template: string, item: object): string {
  const values = item as Record<string, unknown>;
  return template.replace(/\{\{|\}\}|\{([A-Za-z_][A-Za-z0-9_]*)\}/g, (m, key?: string) => {
    if (m === "{{") return "{";
    if (m === "}}") return "}";
    const v = values[key!];
    if (typeof v !== "string") {
      const have = Object.keys(values).filter((k) => typeof values[k] === "string");
      throw new DataError(
        `template placeholder {${key}} has no string field in the item (fields: ${
          have.join(", ")
        })`,
      );
    }
    return v;
  });
}
