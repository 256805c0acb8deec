/**
 * Row tables on the GPU (token and position embeddings): a `[rows, cols]` tensor kept in
 * its checkpoint precision (f16 and bf16 as packed pairs in `u32` words, f32 as bits) and
 * split by rows across as many storage buffers as `maxStorageBufferBindingSize` (or a
 * smaller forced limit) requires. {@linkcode tableWgsl} writes the bindings and a
 * `NAME_at(row, col) -> f32` accessor that hides the split from the kernels.
 *
 * Layout: row `r` lives in chunk `r / rowsPerChunk` at word `(r % rowsPerChunk) * rowWords`;
 * f16/bf16 rows are padded to an even column count (`rowWords = ceil(cols / 2)`), element
 * `c` is the low half of word `c / 2` when `c` is even.
 *
 * @example
 * ```ts
 * import { AllocationGroup, requestGpu } from "./device.ts";
 * import { uploadTable } from "./tables.ts";
 * const gpu = await requestGpu();
 * const group = new AllocationGroup(gpu);
 * const t = uploadTable(gpu, group, {
 *   label: "pos", rows: 3, cols: 2, dtype: "F32",
 *   bytes: new Uint8Array(new Float32Array([1, 2, 3, 4, 5, 6]).buffer),
 * });
 * await group.check();
 * console.log(t.chunks.length); // 1
 * ```
 *
 * @module
 */
import type { DType } from "../model/types.ts";
import { type AllocationGroup, type GpuContext, GpuError } from "./device.ts";

/** Storage format of a table on the GPU. */
export type TableFormat = "f16" | "bf16" | "f32";

/** A `[rows, cols]` table uploaded to one or more storage buffers. */
export interface DeviceTable {
  /** Name used in errors (e.g. the tensor name). */
  label: string;
  /** Rows. */
  rows: number;
  /** Columns. */
  cols: number;
  /** Storage format. */
  format: TableFormat;
  /** `u32` words per row. */
  rowWords: number;
  /** Rows per buffer (the last may hold fewer). */
  rowsPerChunk: number;
  /** The buffers, in row order. */
  chunks: GPUBuffer[];
  /** Bytes on the device. */
  bytes: number;
  /** Frees the buffers. */
  destroy(): void;
}

/** The data of a table to upload. */
export interface TableSource {
  /** Name used in errors. */
  label: string;
  /** Rows. */
  rows: number;
  /** Columns. */
  cols: number;
  /** Element type of `bytes`. */
  dtype: DType;
  /** Little-endian row-major elements. */
  bytes: Uint8Array;
}

/** Options of {@linkcode uploadTable}. */
export interface TableOptions {
  /** Largest bytes per buffer (default and cap: `maxStorageBufferBindingSize`). */
  maxBindingBytes?: number;
}

const SIZES: Record<DType, number> = { F16: 2, BF16: 2, F32: 4 };

/**
 * Uploads a table, split across buffers when it exceeds one binding.
 *
 * @throws {GpuError} when the byte length disagrees with the shape, a row alone exceeds a
 *   binding, or the allocation fails (via `group.check()`).
 *
 * @example
 * ```ts
 * import { AllocationGroup, requestGpu } from "./device.ts";
 * import { uploadTable } from "./tables.ts";
 * const gpu = await requestGpu();
 * const group = new AllocationGroup(gpu);
 * const bytes = new Uint8Array(new Uint16Array([0x3c00, 0x4000]).buffer); // f16 1, 2
 * const t = uploadTable(gpu, group, { label: "t", rows: 1, cols: 2, dtype: "F16", bytes });
 * await group.check();
 * console.log(t.format, t.rowWords); // f16 1
 * ```
 */
export function uploadTable(
  ctx: GpuContext,
  group: AllocationGroup,
  source: TableSource,
  options: TableOptions = {},
): DeviceTable {
  const { label, rows, cols, dtype, bytes } = source;
  const size = SIZES[dtype];
  if (size === undefined) throw new GpuError(`${label}: unsupported dtype ${dtype}`, "validation");
  if (bytes.byteLength !== rows * cols * size) {
    throw new GpuError(
      `${label}: ${bytes.byteLength} bytes do not match shape [${rows}, ${cols}] of ${dtype}`,
      "validation",
    );
  }
  const format: TableFormat = dtype === "F16" ? "f16" : dtype === "BF16" ? "bf16" : "f32";
  const rowWords = format === "f32" ? cols : Math.ceil(cols / 2);
  const cap = Math.min(
    options.maxBindingBytes ?? Infinity,
    ctx.limits.maxStorageBufferBindingSize,
    ctx.limits.maxBufferSize,
  );
  const rowsPerChunk = Math.min(rows, Math.floor(cap / (rowWords * 4)));
  if (rowsPerChunk < 1) {
    throw new GpuError(
      `${label}: one row (${rowWords * 4} bytes) exceeds the binding limit of ${cap} bytes`,
      "too-large",
    );
  }
  const chunks: GPUBuffer[] = [];
  const direct = format === "f32" || cols % 2 === 0;
  for (let r0 = 0; r0 < rows; r0 += rowsPerChunk) {
    const n = Math.min(rowsPerChunk, rows - r0);
    const chunkBytes = n * rowWords * 4;
    const name = `${label} rows ${r0}..${r0 + n - 1}`;
    const buffer = group.buffer({ label: name, size: chunkBytes, bindWhole: true });
    group.run(`upload of ${name}`, () => {
      if (direct) {
        const view = bytes as Uint8Array<ArrayBuffer>; // offsets below are in bytes
        ctx.device.queue.writeBuffer(buffer, 0, view, r0 * cols * size, chunkBytes);
      } else {
        // Odd f16/bf16 rows: pad each row to an even number of halves.
        const src = new Uint16Array(bytes.buffer, bytes.byteOffset, rows * cols);
        const packed = new Uint16Array(n * rowWords * 2);
        for (let r = 0; r < n; r++) {
          packed.set(src.subarray((r0 + r) * cols, (r0 + r + 1) * cols), r * rowWords * 2);
        }
        ctx.device.queue.writeBuffer(buffer, 0, packed);
      }
    });
    chunks.push(buffer);
  }
  return {
    label,
    rows,
    cols,
    format,
    rowWords,
    rowsPerChunk,
    chunks,
    bytes: chunks.reduce((s, b) => s + b.size, 0),
    destroy: () => chunks.forEach((b) => b.destroy()),
  };
}

/**
 * WGSL declarations for a table bound at `firstBinding ..` of group 0 and its accessor
 * `NAME_at(row: u32, col: u32) -> f32`.
 *
 * @example
 * ```ts
 * import { tableWgsl } from "./tables.ts";
 * const code = tableWgsl("tok", { format: "f16", rowWords: 4, rowsPerChunk: 10, chunks: 2 }, 3);
 * console.log(code.includes("fn tok_at")); // true
 * ```
 */
export function tableWgsl(
  name: string,
  table: { format: TableFormat; rowWords: number; rowsPerChunk: number; chunks: number },
  firstBinding: number,
): string {
  const { format, rowWords, rowsPerChunk, chunks } = table;
  const lines: string[] = [];
  for (let i = 0; i < chunks; i++) {
    lines.push(
      `@group(0) @binding(${firstBinding + i}) var<storage, read> ${name}_${i}: array<u32>;`,
    );
  }
  lines.push(`fn ${name}_word(row: u32, w: u32) -> u32 {`);
  if (chunks === 1) {
    lines.push(`  return ${name}_0[row * ${rowWords}u + w];`);
  } else {
    lines.push(`  let chunk = row / ${rowsPerChunk}u;`);
    lines.push(`  let i = (row - chunk * ${rowsPerChunk}u) * ${rowWords}u + w;`);
    lines.push(`  switch chunk {`);
    for (let i = 0; i < chunks - 1; i++) {
      lines.push(`    case ${i}u: { return ${name}_${i}[i]; }`);
    }
    lines.push(`    default: { return ${name}_${chunks - 1}[i]; }`);
    lines.push(`  }`);
  }
  lines.push(`}`);
  lines.push(`fn ${name}_at(row: u32, col: u32) -> f32 {`);
  if (format === "f32") {
    lines.push(`  return bitcast<f32>(${name}_word(row, col));`);
  } else {
    lines.push(`  let w = ${name}_word(row, col >> 1u);`);
    lines.push(`  let odd = (col & 1u) == 1u;`);
    if (format === "f16") {
      lines.push(`  let v = unpack2x16float(w);`);
      lines.push(`  return select(v.x, v.y, odd);`);
    } else {
      lines.push(`  return bitcast<f32>(select(w << 16u, w & 0xffff0000u, odd));`);
    }
  }
  lines.push(`}`);
  return lines.join("\n");
}

/** Shape key of a table for pipeline caches. */
export function tableKey(t: DeviceTable): string {
  return `${t.format}:${t.rowWords}:${t.rowsPerChunk}:${t.chunks.length}`;
}
