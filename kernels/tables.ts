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

/**
 * A `[rows, cols]` table read from a matmul weight texture (a tied LM head uploaded once, see
 * `MatmulKernels.rowTable`): row `r` of part `p` (`n0 <= r < n0 + n`) is texel column
 * `(r - n0) / perTexel`, lane `(r - n0) % perTexel`; column `c` is texel row `c % height` of
 * array layer `c / height`. f16: 8 halves per `rgba32uint` texel (lane `i` is half `i % 2` of
 * word `i / 2`); f32: 4 floats per `rgba32float` texel. The textures belong to the matmul
 * linear: `destroy` is a no-op and `bytes` is 0.
 *
 * @example
 * ```ts
 * import type { TextureTable } from "./tables.ts";
 * declare const t: TextureTable;
 * console.log(t.format, t.parts.length); // "tex-f16" 1
 * ```
 */
export interface TextureTable {
  /** Name used in errors. */
  label: string;
  /** Rows. */
  rows: number;
  /** Columns. */
  cols: number;
  /** Storage format: `tex-f16` (`rgba32uint`) or `tex-f32` (`rgba32float`). */
  format: "tex-f16" | "tex-f32";
  /** Texel rows per array layer. */
  height: number;
  /** The parts, in row order: first row and `2d-array` view. */
  parts: { n0: number; view: GPUTextureView }[];
  /** 0: the textures are counted by the linear that owns them. */
  bytes: number;
  /** Does nothing (the linear frees its textures). */
  destroy(): void;
}

/**
 * A table as the embedding kernel reads it: in storage buffers, or in a weight texture.
 *
 * @example
 * ```ts
 * import type { RowTable } from "./tables.ts";
 * declare const t: RowTable;
 * const inBuffers = "chunks" in t;
 * ```
 */
export type RowTable = DeviceTable | TextureTable;

/**
 * The bindings of a table, in binding order (its buffers, or its texture views).
 *
 * @example
 * ```ts
 * import { type RowTable, tableBindings } from "./tables.ts";
 * declare const t: RowTable;
 * const resources = tableBindings(t); // what the embedding kernel binds after its own
 * ```
 */
export function tableBindings(t: RowTable): (GPUBuffer | GPUTextureView)[] {
  return "chunks" in t ? t.chunks : t.parts.map((p) => p.view);
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
 * What {@linkcode tableWgsl} needs of a table (its layout, not its buffers).
 *
 * @example
 * ```ts
 * import type { TableShape } from "./tables.ts";
 * const s: TableShape = { format: "tex-f16", height: 40, partRows: [0, 256] };
 * ```
 */
export type TableShape =
  | { format: TableFormat; rowWords: number; rowsPerChunk: number; chunks: number }
  | { format: "tex-f16" | "tex-f32"; height: number; partRows: number[] };

/**
 * The layout of a table for {@linkcode tableWgsl} and {@linkcode tableKey}.
 *
 * @example
 * ```ts
 * import { type DeviceTable, tableShape } from "./tables.ts";
 * declare const t: DeviceTable;
 * const shape = tableShape(t); // { format, rowWords, rowsPerChunk, chunks }
 * ```
 */
export function tableShape(t: RowTable): TableShape {
  return "chunks" in t
    ? {
      format: t.format,
      rowWords: t.rowWords,
      rowsPerChunk: t.rowsPerChunk,
      chunks: t.chunks.length,
    }
    : { format: t.format, height: t.height, partRows: t.parts.map((p) => p.n0) };
}

/**
 * The binding kind of each of a table's bindings (see {@linkcode tableBindings}).
 *
 * @example
 * ```ts
 * import { type RowTable, tableBindingKinds } from "./tables.ts";
 * declare const t: RowTable;
 * const kinds = tableBindingKinds(t); // ["read", ...] or ["texture-uint", ...]
 * ```
 */
export function tableBindingKinds(t: RowTable): ("read" | "texture-uint" | "texture-float")[] {
  if ("chunks" in t) return t.chunks.map(() => "read" as const);
  return t.parts.map(
    () => (t.format === "tex-f16" ? "texture-uint" as const : "texture-float" as const),
  );
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
export function tableWgsl(name: string, table: TableShape, firstBinding: number): string {
  if (!("chunks" in table)) return textureTableWgsl(name, table, firstBinding);
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

/** The texture form of {@linkcode tableWgsl} (layout in {@linkcode TextureTable}). */
function textureTableWgsl(
  name: string,
  table: { format: "tex-f16" | "tex-f32"; height: number; partRows: number[] },
  firstBinding: number,
): string {
  const f16 = table.format === "tex-f16";
  const P = f16 ? 8 : 4;
  const texel = f16 ? "vec4<u32>" : "vec4<f32>";
  const lines: string[] = [];
  table.partRows.forEach((_, i) => {
    lines.push(
      `@group(0) @binding(${firstBinding + i}) var ${name}_${i}: texture_2d_array<${
        f16 ? "u32" : "f32"
      }>;`,
    );
  });
  lines.push(`fn ${name}_at(row: u32, col: u32) -> f32 {`);
  lines.push(`  let y = col % ${table.height}u;`);
  lines.push(`  let layer = col / ${table.height}u;`);
  lines.push(`  var t: ${texel};`);
  lines.push(`  var r = row;`);
  for (let i = table.partRows.length - 1; i >= 0; i--) {
    const n0 = table.partRows[i];
    const test = i === 0 ? "" : `if (row >= ${n0}u) `;
    const open = i === table.partRows.length - 1 ? "  " : " else ";
    lines.push(
      `${open}${test}{ r = row - ${n0}u; t = textureLoad(${name}_${i}, vec2<u32>(r / ${P}u, y), layer, 0); }`,
    );
  }
  lines.push(`  let i = r % ${P}u;`);
  if (f16) {
    lines.push(`  let v = unpack2x16float(t[i >> 1u]);`);
    lines.push(`  return select(v.x, v.y, (i & 1u) == 1u);`);
  } else {
    lines.push(`  return t[i];`);
  }
  lines.push(`}`);
  return lines.join("\n");
}

/**
 * Shape key of a table for pipeline caches.
 *
 * @example
 * ```ts
 * import { type RowTable, tableKey } from "./tables.ts";
 * declare const t: RowTable;
 * const key = tableKey(t); // e.g. "f16:64:1000:2"
 * ```
 */
export function tableKey(t: RowTable): string {
  return "chunks" in t
    ? `${t.format}:${t.rowWords}:${t.rowsPerChunk}:${t.chunks.length}`
    : `${t.format}:${t.height}:${t.parts.map((p) => p.n0).join(",")}`;
}
