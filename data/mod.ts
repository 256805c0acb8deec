/**
 * Data sets: the E2E `mr,ref` CSV grouped into multi-reference items, prompt files, plain
 * text read with a size limit and a clear error ({@linkcode DataError}), prompt templates, and a
 * researcher's own tables (CSV/TSV/JSONL/Parquet or `hf:` dataset splits, by column:
 * {@linkcode loadTable}, {@linkcode tableItems}).
 *
 * @example
 * ```ts
 * import { applyTemplate, E2E_DEVSET_URL, E2E_TEMPLATE, loadE2eCsv } from "./mod.ts";
 * const items = (await loadE2eCsv(E2E_DEVSET_URL)).slice(0, 3);
 * console.log(items.map((it) => applyTemplate(E2E_TEMPLATE, it)));
 * ```
 * @module
 */
export {
  applyTemplate,
  type CsvRecord,
  DataError,
  E2E_DEVSET_URL,
  E2E_TEMPLATE,
  type E2eItem,
  loadE2eCsv,
  loadPrompts,
  parseCsv,
  parseE2eCsv,
  readText,
  splitLines,
} from "./datasets.ts";
// A researcher's own data: CSV/TSV/JSONL/Parquet or hf: dataset splits, by column.
export {
  type DataFormat,
  fillTemplate,
  loadTable,
  parseDelimited,
  parseJsonl,
  parseParquet,
  type Table,
  tableFormat,
  type TableItem,
  type TableItemOptions,
  tableItems,
  templatePlaceholders,
  truncateItems,
  type TruncateSide,
  type TruncateTokenizer,
} from "./table.ts";
