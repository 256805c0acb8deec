/**
 * A researcher's own evaluation data: tables in CSV, TSV, JSONL or Parquet (read with
 * `hyparquet`), mapped to multi-reference items by an input and a reference column, with
 * a prompt template over the row's columns; long inputs truncated to fit the model's
 * positions on request.
 *
 * - {@linkcode loadTable}: a file as columns and rows (format from its extension; a file
 *   whose content looks like another format gets a message saying which).
 * - {@linkcode tableItems}: rows grouped by input (several rows, or a list cell, give
 *   several references), each with its prompt from the template.
 * - {@linkcode truncateItems}: inputs cut from the left or right so that prompt plus
 *   generated tokens fit the position table.
 *
 * @example
 * ```ts
 * import { loadTable, tableItems } from "./table.ts";
 * const table = await loadTable("bundled/data/e2e/devset.csv");
 * const items = tableItems(table, { template: "Data: {input}\n" }).slice(0, 2);
 * console.log(items[0].prompt); // "Data: name[The Vaults], ...\n"
 * ```
 * @module
 */
import { parquetMetadata, parquetReadObjects } from "hyparquet";
import { compressors } from "hyparquet-compressors";
import { DataError, MAX_TEXT_INPUT_BYTES, parseCsv, readText } from "./datasets.ts";
import { PathRuleError, readInputFile } from "../model/paths.ts";
import { parseDatasetId, resolveDataset, type ResolveModelOptions } from "../model/hub.ts";
import { CheckpointError } from "../model/errors.ts";

/** The table formats {@linkcode loadTable} reads. */
export type DataFormat = "csv" | "tsv" | "jsonl" | "parquet";

/** A data file read as a table. */
export interface Table {
  /** The file, for messages. */
  source: string;
  /** How it was read. */
  format: DataFormat;
  /** Column names, in file order (JSONL: every key seen, in order of first appearance). */
  columns: string[];
  /** The rows; a cell is a string, a number, a list, ... as the file holds it. */
  rows: Record<string, unknown>[];
  /** Where each row is, for messages (`line 3`, `row 3`). */
  where: string[];
}

/**
 * The format of a data file from its extension: `.csv`, `.tsv`/`.tab`, `.jsonl`/`.ndjson`,
 * `.parquet`.
 *
 * @param path the file
 * @returns its format
 * @throws DataError naming the file and the extensions read
 * @example
 * ```ts
 * import { tableFormat } from "./table.ts";
 * tableFormat("cnn_dm.parquet"); // "parquet"
 * ```
 */
export function tableFormat(path: string): DataFormat {
  const ext = /\.([A-Za-z]+)$/.exec(path)?.[1]?.toLowerCase();
  if (ext === "csv") return "csv";
  if (ext === "tsv" || ext === "tab") return "tsv";
  if (ext === "jsonl" || ext === "ndjson") return "jsonl";
  if (ext === "parquet") return "parquet";
  throw new DataError(
    `${path}: unknown data format${ext ? ` ".${ext}"` : " (no extension)"}: --data reads ` +
      `.csv, .tsv, .jsonl and .parquet files, and hf:OWNER/NAME[:CONFIG]:SPLIT datasets`,
  );
}

const PARQUET_MAGIC = "PAR1";

/** What the start of a text looks like, for a mismatch message. */
function looksLike(text: string, bytes?: Uint8Array): string | undefined {
  if (bytes && new TextDecoder().decode(bytes.subarray(0, 4)) === PARQUET_MAGIC) {
    return "a Parquet file: name it .parquet";
  }
  const first = text.replace(/^\uFEFF/, "").split(/\r?\n/, 1)[0] ?? "";
  if (/^\s*[{[]/.test(first)) return "JSON lines: name it .jsonl";
  if (first.includes("\t") && !first.includes(",")) return "tab-separated: name it .tsv";
  if (first.includes(",") && !first.includes("\t")) return "comma-separated: name it .csv";
  return undefined;
}

/**
 * Parses delimited text (CSV or TSV, RFC 4180 quoting) with a header row into a table.
 *
 * @param text the file's text
 * @param source the file, for messages
 * @param format `"csv"` or `"tsv"`
 * @returns the table (`where`: the line each row starts on)
 * @throws DataError naming the file and line of a malformed row, a duplicate or empty
 *   header, or content that looks like another format
 * @example
 * ```ts
 * import { parseDelimited } from "./table.ts";
 * parseDelimited("a\tb\nx\ty\n", "t.tsv", "tsv").rows; // [{ a: "x", b: "y" }]
 * ```
 */
export function parseDelimited(text: string, source: string, format: "csv" | "tsv"): Table {
  const delimiter = format === "tsv" ? "\t" : ",";
  const other = looksLike(text);
  let recs;
  try {
    recs = parseCsv(text, source, delimiter);
  } catch (e) {
    if (e instanceof DataError && other && !other.startsWith(format === "csv" ? "comma" : "tab")) {
      throw new DataError(`${e.message}; the file looks like ${other}`);
    }
    throw e;
  }
  if (recs.length === 0) throw new DataError(`${source}: empty file (expected a header row)`);
  const header = recs[0].fields.map((h) => h.trim());
  if (header.length === 1 && other && !other.startsWith(format === "csv" ? "comma" : "tab")) {
    throw new DataError(
      `${source}: the header has one column ${JSON.stringify(header[0].slice(0, 60))} ` +
        `when read as ${format.toUpperCase()}: the file looks like ${other}`,
    );
  }
  header.forEach((h, k) => {
    if (h === "") throw new DataError(`${source}: header column ${k + 1} has no name`);
    const again = header.indexOf(h, k + 1);
    if (again >= 0) {
      throw new DataError(
        `${source}: header has column "${h}" twice (columns ${k + 1} and ${again + 1}); ` +
          `which one is meant is unclear`,
      );
    }
  });
  const rows: Record<string, unknown>[] = [];
  const where: string[] = [];
  for (const rec of recs.slice(1)) {
    if (rec.fields.length !== header.length) {
      throw new DataError(
        `${source}: line ${rec.line}: ${rec.fields.length} fields, the header has ` +
          `${header.length}` +
          (other && !other.startsWith(format === "csv" ? "comma" : "tab")
            ? ` (the file looks like ${other})`
            : ""),
      );
    }
    rows.push(Object.fromEntries(header.map((h, k) => [h, rec.fields[k]])));
    where.push(`line ${rec.line}`);
  }
  return { source, format, columns: header, rows, where };
}

/**
 * Parses JSON lines (one object per line; blank lines skipped) into a table.
 *
 * @param text the file's text
 * @param source the file, for messages
 * @returns the table (`columns`: every key, in order of first appearance)
 * @throws DataError naming the file and line that is not a JSON object
 * @example
 * ```ts
 * import { parseJsonl } from "./table.ts";
 * parseJsonl('{"input": "a", "refs": ["x", "y"]}\n', "t.jsonl").columns; // ["input", "refs"]
 * ```
 */
export function parseJsonl(text: string, source: string): Table {
  const rows: Record<string, unknown>[] = [];
  const where: string[] = [];
  const columns = new Set<string>();
  text.split("\n").forEach((line, i) => {
    if (line.trim() === "") return;
    let v: unknown;
    try {
      v = JSON.parse(line);
    } catch (e) {
      const other = i === 0 ? looksLike(text) : undefined;
      throw new DataError(
        `${source}:${i + 1}: not JSON (${(e as Error).message})` +
          (other && !other.startsWith("JSON") ? `; the file looks ${other}` : ""),
      );
    }
    if (typeof v !== "object" || v === null || Array.isArray(v)) {
      throw new DataError(`${source}:${i + 1}: expected a JSON object (one row per line)`);
    }
    for (const k of Object.keys(v)) columns.add(k);
    rows.push(v as Record<string, unknown>);
    where.push(`line ${i + 1}`);
  });
  return { source, format: "jsonl", columns: [...columns], rows, where };
}

/**
 * Reads a Parquet file's bytes into a table with `hyparquet` (snappy, gzip, zstd, brotli
 * and lz4 pages through `hyparquet-compressors`).
 *
 * @param bytes the file's bytes
 * @param source the file, for messages
 * @returns the table (`where`: `row N`, 1-based)
 * @throws DataError naming the file when it is not Parquet or cannot be decoded
 * @example
 * ```ts
 * import { parseParquet } from "./table.ts";
 * // const table = await parseParquet(Deno.readFileSync("data.parquet"), "data.parquet");
 * ```
 */
export async function parseParquet(bytes: Uint8Array, source: string): Promise<Table> {
  const head = new TextDecoder().decode(bytes.subarray(0, 4));
  const tail = new TextDecoder().decode(bytes.subarray(bytes.length - 4));
  if (head !== PARQUET_MAGIC || tail !== PARQUET_MAGIC) {
    const other = looksLike(new TextDecoder().decode(bytes.subarray(0, 4096)));
    throw new DataError(
      `${source}: not a Parquet file (no PAR1 magic)${other ? `; it looks like ${other}` : ""}`,
    );
  }
  const file = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
  let columns: string[];
  let rows: Record<string, unknown>[];
  try {
    const meta = parquetMetadata(file as ArrayBuffer);
    // top-level columns: the root's children
    const root = meta.schema[0];
    columns = [];
    for (let k = 1, left = root.num_children ?? 0; k < meta.schema.length && left > 0; left--) {
      columns.push(meta.schema[k].name);
      // skip the nested children of a group column
      let skip = meta.schema[k].num_children ?? 0;
      k++;
      while (skip > 0 && k < meta.schema.length) {
        skip += (meta.schema[k].num_children ?? 0) - 1;
        k++;
      }
    }
    rows = await parquetReadObjects({ file: file as ArrayBuffer, compressors, metadata: meta });
  } catch (e) {
    throw new DataError(`${source}: cannot read this Parquet file: ${(e as Error).message}`);
  }
  return { source, format: "parquet", columns, rows, where: rows.map((_, i) => `row ${i + 1}`) };
}

/**
 * Reads a data file as a table; the format comes from the extension
 * ({@linkcode tableFormat}). An `hf:OWNER/NAME[:CONFIG]:SPLIT` id reads the hub's Parquet
 * conversion of that split from the Hugging Face cache, downloading it first when needed
 * (`resolveDataset` of `model/hub.ts`: resume, offline mode); its files' rows are read in
 * order as one table.
 *
 * @param path the file, or an `hf:` dataset id
 * @param options for `hf:` ids: offline mode, endpoint, cache folder, progress
 * @returns the table (`files`: the files read)
 * @throws DataError naming the file or dataset (missing, unreadable, unknown format,
 *   malformed, content of another format than its name says, not cached when offline)
 * @example
 * ```ts
 * import { loadTable } from "./table.ts";
 * const t = await loadTable("bundled/data/e2e/devset.csv");
 * console.log(t.columns); // ["mr", "ref"]
 * ```
 */
export async function loadTable(
  path: string,
  options: ResolveModelOptions = {},
): Promise<Table & { files: string[] }> {
  let files: string[];
  try {
    if (parseDatasetId(path) === undefined) files = [path];
    else files = (await resolveDataset(path, options)).files;
  } catch (e) {
    if (e instanceof CheckpointError) throw new DataError(`--data ${path}: ${e.message}`);
    throw e;
  }
  if (files.length === 1) return { ...(await loadFile(files[0])), files };
  const parts = [];
  for (const f of files) parts.push(await loadFile(f));
  return {
    source: path,
    format: "parquet",
    columns: parts[0].columns,
    rows: parts.flatMap((p) => p.rows),
    where: parts.flatMap((p, k) => p.where.map((w) => `file ${k + 1} ${w}`)),
    files,
  };
}

function startsWithParquetMagic(path: string): boolean {
  try {
    using f = Deno.openSync(path, { read: true });
    const head = new Uint8Array(4);
    return f.readSync(head) === 4 && new TextDecoder().decode(head) === PARQUET_MAGIC;
  } catch {
    return false; // readText says what is wrong
  }
}

async function loadFile(path: string): Promise<Table> {
  const format = tableFormat(path);
  if (format === "parquet") {
    let bytes: Uint8Array;
    try {
      bytes = readInputFile(path, { what: "data file", maxBytes: 4 * MAX_TEXT_INPUT_BYTES });
    } catch (e) {
      if (e instanceof PathRuleError) throw new DataError(e.message);
      await readText(path, "data file"); // its message for a missing or unreadable file
      throw e;
    }
    return await parseParquet(bytes, path);
  }
  if (startsWithParquetMagic(path)) {
    throw new DataError(`${path}: this is a Parquet file: name it .parquet`);
  }
  const text = await readText(path, "data file");
  return format === "jsonl" ? parseJsonl(text, path) : parseDelimited(text, path, format);
}

/** Options of {@linkcode tableItems}. */
export interface TableItemOptions {
  /**
   * The column holding the model's input (default: the first of `mr`, `input`, `prompt`,
   * `article`, `document`, `text` the table has).
   */
  inputColumn?: string;
  /**
   * The column holding the reference(s): a string, or a list of strings (default: the first
   * of `ref`, `refs`, `reference`, `references`, `highlights`, `summary`, `target` present).
   */
  refColumn?: string;
  /**
   * Prompt template: `{input}` is the input column, `{NAME}` any column's text, `{{`/`}}`
   * literal braces (default `"{input}\n"`, and `"{input}"` for a `prompt` column, which
   * is used as is).
   */
  template?: string;
}

/** One evaluation item: an input with all its references and its prompt. */
export interface TableItem {
  /** The input column's text. */
  input: string;
  /** Every reference given for this input, in file order. */
  refs: string[];
  /** The prompt: the template filled with the first row of this input. */
  prompt: string;
  /** The text of the template's other placeholders, from that row. */
  fields: Record<string, string>;
  /** The template, with the input column's placeholder written `{input}`. */
  template: string;
}

const INPUT_NAMES = ["mr", "input", "prompt", "article", "document", "text"];
const REF_NAMES = ["ref", "refs", "reference", "references", "highlights", "summary", "target"];

function pickColumn(
  table: Table,
  given: string | undefined,
  defaults: string[],
  option: string,
): string {
  const list = table.columns.map((c) => JSON.stringify(c)).join(", ") || "none";
  if (given !== undefined) {
    if (!table.columns.includes(given)) {
      throw new DataError(
        `${table.source}: ${option} ${JSON.stringify(given)} is not a column (columns: ${list})`,
      );
    }
    return given;
  }
  const found = defaults.find((d) => table.columns.includes(d));
  if (found === undefined) {
    throw new DataError(
      `${table.source}: no ${option.slice(2)} found (looked for ${defaults.join(", ")}); ` +
        `name it with ${option} (columns: ${list})`,
    );
  }
  return found;
}

/**
 * The placeholders of a template, in order (without `{{`/`}}` escapes).
 *
 * @param template the template
 * @returns the names inside `{...}`
 * @example
 * ```ts
 * import { templatePlaceholders } from "./table.ts";
 * templatePlaceholders("summarize: {input}\n{{x}}"); // ["input"]
 * ```
 */
export function templatePlaceholders(template: string): string[] {
  const names: string[] = [];
  for (const m of template.matchAll(/\{\{|\}\}|\{([^{}]*)\}/g)) {
    if (m[1] !== undefined) names.push(m[1]);
  }
  return names;
}

/** A cell as text: strings as they are, numbers and booleans written out; else undefined. */
function cellText(v: unknown): string | undefined {
  if (typeof v === "string") return v;
  if (typeof v === "number" || typeof v === "bigint" || typeof v === "boolean") return String(v);
  return undefined;
}

/**
 * Fills a template from a row: `{input}` is the input text, `{NAME}` the row's column.
 *
 * @param template the template (placeholders checked by {@linkcode tableItems})
 * @param input the input text
 * @param row the row
 * @returns the prompt
 * @example
 * ```ts
 * import { fillTemplate } from "./table.ts";
 * fillTemplate("summarize: {input}\n", "A long article.", {}); // "summarize: A long article.\n"
 * ```
 */
export function fillTemplate(
  template: string,
  input: string,
  row: Record<string, unknown>,
): string {
  return template.replace(/\{\{|\}\}|\{([^{}]*)\}/g, (m, key?: string) => {
    if (m === "{{") return "{";
    if (m === "}}") return "}";
    if (key === "input") return input;
    return cellText(row[key!]) ?? "";
  });
}

/**
 * Maps a table's rows to items: rows are grouped by the input column's text (in order of
 * first appearance); each row adds its reference (a string) or references (a list of
 * strings). The prompt is the template filled with the group's first row.
 *
 * @param table from {@linkcode loadTable}
 * @param options columns and template
 * @returns one item per distinct input
 * @throws DataError naming the file and: a missing column (listing those present), an
 *   unknown template placeholder (listing the names it may use), the row with an empty
 *   or non-text input or reference, or the row and column of a template placeholder whose
 *   cell is missing, null or not a text (an empty CSV cell is the text "")
 * @example
 * ```ts
 * import { parseDelimited, tableItems } from "./table.ts";
 * const t = parseDelimited("article,highlights\nA,x\nA,y\n", "t.csv", "csv");
 * tableItems(t, { template: "summarize: {input}\n" });
 * // [{ input: "A", refs: ["x", "y"], prompt: "summarize: A\n", fields: {}, template: ... }]
 * ```
 */
export function tableItems(table: Table, options: TableItemOptions = {}): TableItem[] {
  const inputCol = pickColumn(table, options.inputColumn, INPUT_NAMES, "--input-column");
  const refCol = pickColumn(table, options.refColumn, REF_NAMES, "--ref-column");
  const template = options.template ?? (inputCol === "prompt" ? "{input}" : "{input}\n");
  const names = templatePlaceholders(template);
  if (names.length === 0) {
    throw new DataError(
      `--template ${JSON.stringify(template)} has no placeholder such as {input}: every item ` +
        `would get the same prompt`,
    );
  }
  for (const n of names) {
    if (n !== "input" && !table.columns.includes(n)) {
      throw new DataError(
        `--template placeholder {${n}} is not {input} nor a column of ${table.source} ` +
          `(columns: ${table.columns.join(", ")})`,
      );
    }
  }
  // {mr} for an mr input column is {input}: a truncated input fills it too
  const own = template.replace(
    /\{\{|\}\}|\{([^{}]*)\}/g,
    (m, key?: string) => key === inputCol ? "{input}" : m,
  );
  const byInput = new Map<string, TableItem>();
  table.rows.forEach((row, r) => {
    const at = `${table.source}: ${table.where[r]}`;
    const input = cellText(row[inputCol]);
    if (input === undefined || input.trim() === "") {
      throw new DataError(`${at}: empty or non-text "${inputCol}" (the --input-column)`);
    }
    const cell = row[refCol];
    const refs = Array.isArray(cell) ? cell.map(cellText) : [cellText(cell)];
    if (refs.length === 0 || refs.some((x) => x === undefined || x.trim() === "")) {
      throw new DataError(
        `${at}: empty or non-text "${refCol}" (the --ref-column: a text or a list of texts)`,
      );
    }
    const item = byInput.get(input);
    if (item) item.refs.push(...(refs as string[]));
    else {
      const others = names.filter((n) => n !== "input" && n !== inputCol);
      // a missing key (JSONL), null (Parquet) or list cell would fill the prompt with ""
      const blank = others.find((n) => cellText(row[n]) === undefined);
      if (blank !== undefined) {
        throw new DataError(
          `${at}: the --template placeholder {${blank}} has no text here: "${blank}" is ` +
            `${row[blank] === undefined ? "missing" : row[blank] === null ? "null" : "not a text"}`,
        );
      }
      byInput.set(input, {
        input,
        refs: refs as string[],
        prompt: fillTemplate(own, input, row),
        fields: Object.fromEntries(others.map((n) => [n, cellText(row[n])!])),
        template: own,
      });
    }
  });
  if (byInput.size === 0) {
    throw new DataError(
      `${table.source}: ${
        table.format === "csv" || table.format === "tsv" ? "a header but " : ""
      }no rows`,
    );
  }
  return [...byInput.values()];
}

/** The tokenizer calls {@linkcode truncateItems} needs. */
export interface TruncateTokenizer {
  /** Token ids of a text (with BOS when the model's tokenizer adds it). */
  encode(text: string): number[];
  /** Text of token ids (special tokens skipped). */
  decode(ids: number[]): string;
}

/** Which end of a long input {@linkcode truncateItems} cuts: `"left"` keeps the end. */
export type TruncateSide = "left" | "right" | "none";

/**
 * Fits every prompt into `maxPromptTokens`: an item whose prompt is longer gets its input
 * cut (`right`: keep the start, `left`: keep the end) and the template filled again, or,
 * with `"none"`, an error naming the item. The cut is made on tokens and decoded back to
 * text, then checked again after re-encoding (shortened further where a merge differs).
 *
 * @param items the items, from {@linkcode tableItems}
 * @param tokenizer the model's tokenizer
 * @param maxPromptTokens the longest prompt that fits (positions minus new tokens plus 1)
 * @param side where to cut
 * @returns the items (new objects where cut) and how many were cut
 * @throws DataError naming the first item that does not fit (side `"none"`), or one whose
 *   template alone is too long
 * @example
 * ```ts
 * import { truncateItems } from "./table.ts";
 * const tok = {
 *   encode: (s: string) => [...s].map((c) => c.charCodeAt(0)),
 *   decode: (ids: number[]) => String.fromCharCode(...ids),
 * };
 * const it = { input: "abcdef", refs: ["x"], prompt: "S:abcdef", fields: {}, template: "S:{input}" };
 * const { items } = truncateItems([it], tok, 5, "right");
 * console.log(items[0].prompt); // "S:abc"
 * ```
 */
export function truncateItems(
  items: readonly TableItem[],
  tokenizer: TruncateTokenizer,
  maxPromptTokens: number,
  side: TruncateSide,
): { items: TableItem[]; truncated: number } {
  let truncated = 0;
  const base = tokenizer.encode("").length; // BOS and whatever else every text gets
  const out = items.map((it, i) => {
    const n = tokenizer.encode(it.prompt).length;
    if (n <= maxPromptTokens) return it;
    if (side === "none") {
      throw new DataError(
        `item ${i + 1} (input ${JSON.stringify(it.input.slice(0, 40))}...) has a ${n}-token ` +
          `prompt, more than the ${maxPromptTokens} that fit the model's positions with the ` +
          `new tokens: pass --truncate left or --truncate right to cut long inputs, or ` +
          `lower --max-new-tokens`,
      );
    }
    const body = tokenizer.encode(it.input).slice(base);
    let keep = Math.max(0, body.length - (n - maxPromptTokens));
    for (;;) {
      const part = side === "right" ? body.slice(0, keep) : body.slice(body.length - keep);
      const input = keep === 0 ? "" : tokenizer.decode(part);
      const prompt = fillTemplate(it.template, input, it.fields);
      if (tokenizer.encode(prompt).length <= maxPromptTokens) {
        truncated++;
        return { ...it, input, prompt };
      }
      if (keep === 0) {
        throw new DataError(
          `item ${i + 1}: the template alone is longer than the ${maxPromptTokens} prompt ` +
            `tokens that fit; shorten --template or lower --max-new-tokens`,
        );
      }
      keep = Math.max(0, keep - Math.max(1, Math.ceil(keep / 100)));
    }
  });
  return { items: out, truncated };
}
