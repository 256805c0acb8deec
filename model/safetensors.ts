/**
 * A strict, lazy reader and a writer for the safetensors format: an 8-byte little-endian
 * header length `n`, `n` bytes of JSON (`{name: {dtype, shape, data_offsets: [begin, end]}}`
 * plus an optional `__metadata__` map of strings), then the tensor data, offsets counted
 * from the end of the header.
 *
 * Opening a file reads and validates only its header; a tensor's `bytes()` reads just its
 * own range. Every defect (short file, header length past the end, bad JSON, offsets out
 * of range, overlapping or with gaps, length against shape, unsupported dtype, trailing
 * bytes) is a {@linkcode CheckpointError} naming the file and tensor, raised at open time.
 * The rules are those of Hugging Face's reference implementation, so what this reader
 * accepts, `safetensors` accepts, and what {@linkcode writeSafetensors} writes, both read.
 *
 * @example
 * ```ts
 * import { openSafetensors, tensorToFloat32, writeSafetensors } from "./safetensors.ts";
 * const path = Deno.makeTempFileSync({ suffix: ".safetensors" });
 * const data = new Uint8Array(new Float32Array([1, 2, 3, 4, 5, 6]).buffer);
 * writeSafetensors(path, [{ name: "w", dtype: "F32", shape: [2, 3], data }]);
 * const file = openSafetensors(path);
 * console.log(tensorToFloat32(file.get("w")!)); // Float32Array [1, 2, 3, 4, 5, 6]
 * ```
 *
 * @module
 */
import { CheckpointError } from "./errors.ts";
import { readFileRange } from "./byte_source.ts";
import { DTYPE_SIZES, isDType } from "./dtype.ts";
import { elementCount, shapeSize } from "./tensor.ts";
import type { DType, Tensor } from "./types.ts";

// Element types and tensors moved to dtype.ts and tensor.ts; re-exported for this file's
// importers (checkpoint readers, backends, tests).
export {
  bf16BitsToFloat32,
  bytesToFloat32,
  DTYPE_SIZES,
  f16BitsToFloat32,
  float32ToBf16Bits,
  float32ToBytes,
  float32ToF16Bits,
  isDType,
  tensorToFloat32,
} from "./dtype.ts";
export { memoryTensor, renameTensor, shapeSize } from "./tensor.ts";

/** Dtypes the safetensors format defines that this toolkit does not read. */
const KNOWN_UNSUPPORTED = new Set([
  "BOOL",
  "U8",
  "I8",
  "F8_E5M2",
  "F8_E4M3",
  "F8_E8M0",
  "F4",
  "F6_E2M3",
  "F6_E3M2",
  "I16",
  "U16",
  "I32",
  "U32",
  "F64",
  "I64",
  "U64",
  "C64",
]);

/** Largest header accepted, as in Hugging Face's implementation (100 MB). */
export const MAX_HEADER_BYTES = 100_000_000;

/** A tensor stored in a safetensors file; reading opens the file and reads its range. */
export interface FileTensor extends Tensor {
  /** The name the tensor has inside the file (before any normalisation). */
  readonly storedName: string;
  /** The file holding the tensor. */
  readonly file: string;
  /** Absolute byte offset of the tensor's data in the file. */
  readonly offset: number;
  /** Byte length of the tensor's data. */
  readonly byteLength: number;
}

// ---------------------------------------------------------------- header parsing

/** One validated header entry, offsets relative to the data section. */
export interface SafetensorsEntry {
  /** Tensor name as stored. */
  name: string;
  /** Element type. */
  dtype: DType;
  /** Shape. */
  shape: number[];
  /** Start of the data, relative to the end of the header. */
  begin: number;
  /** End (exclusive) of the data, relative to the end of the header. */
  end: number;
}

/** A validated safetensors header. */
export interface SafetensorsHeader {
  /** Entries in file order (sorted by offset). */
  entries: SafetensorsEntry[];
  /** The `__metadata__` map, if present. */
  metadata?: Record<string, string>;
}

function formatError(file: string, message: string, tensor?: string, field?: string): never {
  throw new CheckpointError(`${file}: ${message}`, {
    file,
    kind: "format",
    ...(tensor !== undefined ? { tensor } : {}),
    ...(field !== undefined ? { field } : {}),
  });
}

function isNonNegInt(v: unknown): v is number {
  return typeof v === "number" && Number.isSafeInteger(v) && v >= 0;
}

/**
 * Validates a safetensors JSON header against the size of the data section that follows
 * it. Exposed so headers can be checked (and fuzzed) without touching the disk.
 *
 * @param headerBytes The `n` header bytes (UTF-8 JSON, possibly space-padded).
 * @param dataLength Bytes in the file after the header.
 * @param file Name used in error messages.
 * @throws {CheckpointError} on any defect, naming `file` and the tensor.
 *
 * @example
 * ```ts
 * import { parseSafetensorsHeader } from "./safetensors.ts";
 * const json = '{"w":{"dtype":"F16","shape":[2],"data_offsets":[0,4]}}';
 * const h = parseSafetensorsHeader(new TextEncoder().encode(json), 4, "x.safetensors");
 * console.log(h.entries[0].shape); // [2]
 * ```
 */
export function parseSafetensorsHeader(
  headerBytes: Uint8Array,
  dataLength: number,
  file: string,
): SafetensorsHeader {
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(headerBytes);
  } catch {
    formatError(file, "the header is not valid UTF-8 (not a safetensors file?)");
  }
  if (!text.startsWith("{")) {
    formatError(
      file,
      `the header is not JSON: it must start with "{" but starts with ${
        JSON.stringify(text.slice(0, 16))
      } (not a safetensors file?)`,
    );
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    formatError(file, `the header is not JSON: ${(e as Error).message}`);
  }
  if (typeof json !== "object" || json === null || Array.isArray(json)) {
    formatError(file, "the header is not a JSON object");
  }
  const header: SafetensorsHeader = { entries: [] };
  for (const [name, raw] of Object.entries(json as Record<string, unknown>)) {
    if (name === "__metadata__") {
      if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
        formatError(file, "__metadata__ must be an object of strings", undefined, "__metadata__");
      }
      for (const [k, v] of Object.entries(raw)) {
        if (typeof v !== "string") {
          formatError(file, `__metadata__.${k} must be a string`, undefined, "__metadata__");
        }
      }
      header.metadata = raw as Record<string, string>;
      continue;
    }
    header.entries.push(parseEntry(file, name, raw));
  }
  checkLayout(file, header.entries, dataLength);
  return header;
}

function parseEntry(file: string, name: string, raw: unknown): SafetensorsEntry {
  const at = `tensor ${JSON.stringify(name)}`;
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
    formatError(file, `${at}: header entry must be an object`, name);
  }
  const { dtype, shape, data_offsets: offsets } = raw as Record<string, unknown>;
  if (typeof dtype !== "string") {
    formatError(file, `${at}: missing or non-string dtype`, name, "dtype");
  }
  if (!isDType(dtype)) {
    const label = KNOWN_UNSUPPORTED.has(dtype) ? "unsupported" : "unknown";
    throw new CheckpointError(
      `${file}: ${label} dtype ${JSON.stringify(dtype).slice(0, 40)} of tensor ${
        JSON.stringify(name)
      } (supported: F16, BF16, F32)`,
      { file, kind: "dtype", tensor: name, field: "dtype" },
    );
  }
  if (!Array.isArray(shape) || !shape.every(isNonNegInt)) {
    formatError(
      file,
      `${at}: shape must be an array of non-negative integers, got ${
        JSON.stringify(shape)?.slice(0, 60)
      }`,
      name,
      "shape",
    );
  }
  if (
    !Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isNonNegInt) ||
    offsets[0] > offsets[1]
  ) {
    formatError(
      file,
      `${at}: data_offsets must be two integers 0 <= begin <= end, got ${
        JSON.stringify(offsets)?.slice(0, 60)
      }`,
      name,
      "data_offsets",
    );
  }
  const [begin, end] = offsets as number[];
  const count = elementCount(shape as number[]);
  const expected = count === undefined ? undefined : count * DTYPE_SIZES[dtype];
  if (expected === undefined || !Number.isSafeInteger(expected) || expected !== end - begin) {
    formatError(
      file,
      `${at}: data length mismatch: data_offsets [${begin}, ${end}] hold ${end - begin} bytes ` +
        `but shape [${(shape as number[]).join(", ")}] of ${dtype} needs ${expected ?? "too many"}`,
      name,
      "data_offsets",
    );
  }
  return { name, dtype, shape: shape as number[], begin, end };
}

/** Checks the entries tile the data section exactly, as HF's reader requires. Sorts them. */
function checkLayout(file: string, entries: SafetensorsEntry[], dataLength: number): void {
  entries.sort((a, b) => a.begin - b.begin || a.end - b.end);
  let pos = 0;
  let contiguous = true;
  for (const e of entries) {
    if (e.begin !== pos) contiguous = false;
    pos = Math.max(pos, e.end);
  }
  const total = pos;
  if (contiguous && total > dataLength) {
    const first = entries.find((e) => e.end > dataLength)!;
    formatError(
      file,
      `the file is truncated: the header describes ${total} data bytes but only ${dataLength} ` +
        `follow it (tensor ${JSON.stringify(first.name)}, data_offsets [${first.begin}, ` +
        `${first.end}], is out of range)`,
      first.name,
    );
  }
  for (const e of entries) {
    if (e.end > dataLength) {
      formatError(
        file,
        `tensor ${JSON.stringify(e.name)}: data_offsets [${e.begin}, ${e.end}] are out of range ` +
          `(the data section has ${dataLength} bytes)`,
        e.name,
        "data_offsets",
      );
    }
  }
  let prev: SafetensorsEntry | undefined;
  pos = 0;
  for (const e of entries) {
    if (e.begin < pos && prev) {
      formatError(
        file,
        `tensors ${JSON.stringify(prev.name)} [${prev.begin}, ${prev.end}] and ` +
          `${JSON.stringify(e.name)} [${e.begin}, ${e.end}] overlap`,
        e.name,
        "data_offsets",
      );
    }
    if (e.begin > pos) {
      formatError(
        file,
        `gap of ${e.begin - pos} unused bytes before tensor ${JSON.stringify(e.name)} ` +
          `(data_offsets [${e.begin}, ${e.end}]); tensors must be packed`,
        e.name,
        "data_offsets",
      );
    }
    pos = e.end;
    prev = e;
  }
  if (total < dataLength) {
    formatError(
      file,
      `${dataLength - total} trailing bytes after the last tensor (the header describes ` +
        `${total} data bytes, the file has ${dataLength})`,
    );
  }
}

// ---------------------------------------------------------------- files

/** An opened (header-validated) safetensors file. */
export interface SafetensorsFile {
  /** The path opened. */
  readonly path: string;
  /** File size in bytes. */
  readonly size: number;
  /** Absolute offset of the data section (8 + header length). */
  readonly dataStart: number;
  /** The `__metadata__` map, if any. */
  readonly metadata?: Readonly<Record<string, string>>;
  /** Tensors by stored name, in file order. */
  readonly tensors: ReadonlyMap<string, FileTensor>;
  /** The tensor of that name, if present. */
  get(name: string): FileTensor | undefined;
}

/**
 * Opens a safetensors file: reads and validates the header (never more than
 * {@linkcode MAX_HEADER_BYTES}) and returns lazy tensors. No file handle stays open.
 *
 * @param path The file.
 * @throws {CheckpointError} naming the file (and tensor) on any defect.
 *
 * @example
 * ```ts
 * import { openSafetensors } from "./safetensors.ts";
 * const f = openSafetensors("bundled/models/tiny-opt-e2e/model.safetensors");
 * console.log(f.tensors.size);
 * ```
 */
export function openSafetensors(path: string): SafetensorsFile {
  let size: number;
  let f: Deno.FsFile;
  try {
    f = Deno.openSync(path, { read: true });
  } catch (e) {
    const missing = e instanceof Deno.errors.NotFound;
    throw new CheckpointError(
      missing
        ? `missing weights file: ${path} does not exist`
        : `cannot open ${path}: ${(e as Error).message}`,
      { file: path, kind: missing ? "not-found" : "io", cause: e },
    );
  }
  let headerBytes: Uint8Array;
  let n: number;
  try {
    const st = f.statSync();
    if (!st.isFile) formatError(path, "not a regular file");
    size = st.size;
    if (size < 8) {
      formatError(
        path,
        `the file has ${size} bytes, shorter than the 8-byte header length (not a safetensors file)`,
      );
    }
    const prefix = new Uint8Array(8);
    readFully(f, prefix, path);
    const n64 = new DataView(prefix.buffer).getBigUint64(0, true);
    if (n64 > BigInt(MAX_HEADER_BYTES)) {
      formatError(
        path,
        `header length ${n64} is larger than the ${MAX_HEADER_BYTES}-byte limit ` +
          `(corrupt file or not safetensors)`,
        undefined,
        "header_length",
      );
    }
    n = Number(n64);
    if (8 + n > size) {
      formatError(
        path,
        `header length ${n} goes past the end of the file (${size} bytes; truncated or corrupt)`,
        undefined,
        "header_length",
      );
    }
    headerBytes = new Uint8Array(n);
    readFully(f, headerBytes, path);
  } finally {
    f.close();
  }
  const dataStart = 8 + n;
  const header = parseSafetensorsHeader(headerBytes, size - dataStart, path);
  const tensors = new Map<string, FileTensor>();
  for (const e of header.entries) tensors.set(e.name, makeFileTensor(path, dataStart, e));
  return {
    path,
    size,
    dataStart,
    ...(header.metadata ? { metadata: Object.freeze({ ...header.metadata }) } : {}),
    tensors,
    get: (name) => tensors.get(name),
  };
}

function readFully(f: Deno.FsFile, buf: Uint8Array, path: string): void {
  let got = 0;
  while (got < buf.byteLength) {
    const n = f.readSync(buf.subarray(got));
    if (n === null || n === 0) formatError(path, "unexpected end of file while reading the header");
    got += n;
  }
}

function makeFileTensor(file: string, dataStart: number, e: SafetensorsEntry): FileTensor {
  const offset = dataStart + e.begin;
  const byteLength = e.end - e.begin;
  const shape = Object.freeze([...e.shape]);
  const t: FileTensor = {
    name: e.name,
    storedName: e.name,
    dtype: e.dtype,
    shape,
    file,
    offset,
    byteLength,
    bytes: () => readFileRange(file, offset, byteLength, `tensor ${JSON.stringify(e.name)}`),
  };
  return t;
}

// ---------------------------------------------------------------- writing

/** One tensor to write; `data` may be produced lazily, one tensor at a time. */
export interface SafetensorsWriteEntry {
  /** Name in the file. */
  name: string;
  /** Element type. */
  dtype: DType;
  /** Shape. */
  shape: readonly number[];
  /** Little-endian bytes, or a function producing them when the tensor is written. */
  data: Uint8Array | (() => Uint8Array);
}

/**
 * Writes a safetensors file readable by Hugging Face's `safetensors`: header JSON padded
 * with spaces to a multiple of 8, tensors packed in the given order, offsets relative to
 * the data start. Writes to `path + ".incomplete"` and renames, so a crash never leaves a
 * half-written file under the final name. Returns the number of bytes written.
 *
 * @throws {CheckpointError} when a tensor's data length disagrees with its shape, a name
 *   repeats, or the file cannot be written.
 *
 * @example
 * ```ts
 * import { float32ToBytes, writeSafetensors } from "./safetensors.ts";
 * const path = Deno.makeTempFileSync({ suffix: ".safetensors" });
 * writeSafetensors(path, [
 *   { name: "b", dtype: "F16", shape: [3], data: float32ToBytes([0.5, 1, 2], "F16") },
 * ], { format: "pt" });
 * ```
 */
export function writeSafetensors(
  path: string,
  tensors: readonly SafetensorsWriteEntry[],
  metadata?: Record<string, string>,
): number {
  const header: Record<string, unknown> = {};
  if (metadata) header.__metadata__ = { ...metadata };
  let pos = 0;
  const lengths: number[] = [];
  for (const t of tensors) {
    if (t.name === "__metadata__" || Object.hasOwn(header, t.name)) {
      throw new CheckpointError(
        `${path}: tensor name ${JSON.stringify(t.name)} repeats or is reserved`,
        {
          file: path,
          kind: "format",
          tensor: t.name,
        },
      );
    }
    if (!isDType(t.dtype) || !t.shape.every(isNonNegInt)) {
      throw new CheckpointError(`${path}: tensor ${t.name} has a bad dtype or shape`, {
        file: path,
        kind: "format",
        tensor: t.name,
      });
    }
    const len = shapeSize(t.shape) * DTYPE_SIZES[t.dtype];
    if (t.data instanceof Uint8Array) checkLength(path, t, t.data, len);
    header[t.name] = { dtype: t.dtype, shape: [...t.shape], data_offsets: [pos, pos + len] };
    lengths.push(len);
    pos += len;
  }
  let json = new TextEncoder().encode(JSON.stringify(header));
  const padded = Math.ceil(json.byteLength / 8) * 8;
  if (padded !== json.byteLength) {
    const p = new Uint8Array(padded).fill(0x20);
    p.set(json);
    json = p;
  }
  const prefix = new Uint8Array(8);
  new DataView(prefix.buffer).setBigUint64(0, BigInt(json.byteLength), true);
  const tmp = `${path}.incomplete`;
  let f: Deno.FsFile;
  try {
    f = Deno.openSync(tmp, { write: true, create: true, truncate: true });
  } catch (e) {
    throw new CheckpointError(`cannot write ${path}: ${(e as Error).message}`, {
      file: path,
      kind: "io",
      cause: e,
    });
  }
  try {
    writeAll(f, prefix);
    writeAll(f, json);
    tensors.forEach((t, i) => {
      const data = t.data instanceof Uint8Array ? t.data : t.data();
      checkLength(path, t, data, lengths[i]);
      writeAll(f, data);
    });
  } catch (e) {
    f.close();
    try {
      Deno.removeSync(tmp);
    } catch { /* already gone */ }
    if (e instanceof CheckpointError) throw e;
    throw new CheckpointError(`cannot write ${path}: ${(e as Error).message}`, {
      file: path,
      kind: "io",
      cause: e,
    });
  }
  f.close();
  Deno.renameSync(tmp, path);
  return 8 + json.byteLength + pos;
}

function checkLength(path: string, t: SafetensorsWriteEntry, data: Uint8Array, len: number) {
  if (data.byteLength !== len) {
    throw new CheckpointError(
      `${path}: tensor ${t.name} has ${data.byteLength} bytes of data but shape ` +
        `[${t.shape.join(", ")}] of ${t.dtype} needs ${len}`,
      { file: path, kind: "format", tensor: t.name },
    );
  }
}

function writeAll(f: Deno.FsFile, data: Uint8Array): void {
  let done = 0;
  while (done < data.byteLength) done += f.writeSync(data.subarray(done));
}
