/**
 * The ZIP container of `torch.save` (uncompressed entries, ZIP64 for large files): the
 * end-of-central-directory record (and its ZIP64 locator and record), the central
 * directory, and each entry's local header, which gives where its bytes start. Only
 * the tail of the file and the headers are read; entry bytes are read later by range.
 *
 * @example
 * ```ts
 * import { openFileSource } from "./byte_source.ts";
 * import { readZipDirectory } from "./torch_zip.ts";
 * const src = openFileSource("../shared/fixtures/torch-bin/pre-ln-zip/pytorch_model.bin");
 * try {
 *   console.log([...readZipDirectory(src).keys()][0]); // "pytorch_model/data.pkl"
 * } finally {
 *   src.close();
 * }
 * ```
 *
 * @module
 */
import type { ByteSource } from "./byte_source.ts";
import { CheckpointError } from "./errors.ts";

/** One stored (uncompressed) entry of the archive. */
export interface ZipEntry {
  /** The name in the archive, e.g. `archive/data/0`. */
  name: string;
  /** Absolute offset of the entry's bytes in the file. */
  dataStart: number;
  /** Bytes of the entry. */
  size: number;
}

const EOCD = 0x06054b50;
const ZIP64_LOCATOR = 0x07064b50;
const ZIP64_EOCD = 0x06064b50;
const CENTRAL = 0x02014b50;
const LOCAL = 0x04034b50;
/** Largest central directory accepted (64 MiB: a checkpoint has a few thousand entries). */
const MAX_DIRECTORY = 1 << 26;

function bad(file: string, message: string, field?: string): never {
  throw new CheckpointError(`${file}: ${message}`, {
    file,
    kind: "format",
    ...(field ? { field } : {}),
  });
}

function view(b: Uint8Array): DataView {
  return new DataView(b.buffer, b.byteOffset, b.byteLength);
}

function u64(dv: DataView, at: number, file: string, field: string): number {
  const v = dv.getBigUint64(at, true);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) bad(file, `${field} ${v} is out of range`, field);
  return Number(v);
}

/**
 * Whether the bytes start like a ZIP archive (`PK\x03\x04`).
 *
 * @example
 * ```ts
 * import { isZip } from "./torch_zip.ts";
 * console.log(isZip(new Uint8Array([0x50, 0x4b, 3, 4]))); // true
 * ```
 */
export function isZip(head: Uint8Array): boolean {
  return head.length >= 4 && head[0] === 0x50 && head[1] === 0x4b && head[2] === 3 &&
    head[3] === 4;
}

/**
 * Reads the directory of a stored ZIP archive. Every entry must be uncompressed and
 * unencrypted, lie before the central directory and have a local header that agrees
 * with it.
 *
 * @throws {CheckpointError} `format`, naming the file and the record or field at fault.
 *
 * @example
 * ```ts
 * import { openFileSource } from "./byte_source.ts";
 * import { readZipDirectory } from "./torch_zip.ts";
 * const src = openFileSource("../shared/fixtures/torch-bin/pre-ln-zip/pytorch_model.bin");
 * const entries = readZipDirectory(src);
 * src.close();
 * console.log(entries.size);
 * ```
 */
export function readZipDirectory(src: ByteSource): Map<string, ZipEntry> {
  const file = src.file;
  if (src.size < 22) bad(file, `only ${src.size} bytes: too short for a ZIP archive`);
  // The end record is in the last 22 + 65535 (comment) bytes.
  const tailLen = Math.min(src.size, 22 + 65535);
  const tailStart = src.size - tailLen;
  const tail = src.read(tailStart, tailLen, "the end of the ZIP archive");
  const tv = view(tail);
  let eocd = -1;
  for (let i = tailLen - 22; i >= 0; i--) {
    if (tv.getUint32(i, true) === EOCD && i + 22 + tv.getUint16(i + 20, true) === tailLen) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0) {
    bad(
      file,
      "no ZIP end-of-central-directory record (the file is truncated, or not a torch.save " +
        "ZIP archive)",
      "end of central directory",
    );
  }
  const eocdPos = tailStart + eocd;
  if (tv.getUint16(eocd + 4, true) !== 0 || tv.getUint16(eocd + 6, true) !== 0) {
    bad(file, "multi-disk ZIP archives are not supported", "end of central directory");
  }
  let entries = tv.getUint16(eocd + 10, true);
  let dirSize = tv.getUint32(eocd + 12, true);
  let dirOffset = tv.getUint32(eocd + 16, true);
  let dirLimit = eocdPos;
  const needs64 = entries === 0xffff || dirSize === 0xffffffff || dirOffset === 0xffffffff;
  const hasLocator = eocdPos >= 20 && eocd >= 20 && tv.getUint32(eocd - 20, true) === ZIP64_LOCATOR;
  if (needs64 || hasLocator) {
    if (!hasLocator) {
      bad(
        file,
        "the end record says ZIP64 (0xffff/0xffffffff fields) but there is no ZIP64 locator " +
          "before it",
        "zip64 locator",
      );
    }
    const recPos = u64(view(tail), eocd - 20 + 8, file, "zip64 locator offset");
    if (recPos + 56 > eocdPos - 20) {
      bad(file, `the ZIP64 locator points at ${recPos}, past its own position`, "zip64 locator");
    }
    const rec = view(src.read(recPos, 56, "the ZIP64 end-of-central-directory record"));
    if (rec.getUint32(0, true) !== ZIP64_EOCD) {
      bad(file, `no ZIP64 end-of-central-directory record at byte ${recPos}`, "zip64 record");
    }
    const n64 = u64(rec, 32, file, "zip64 entry count");
    dirSize = u64(rec, 40, file, "zip64 central directory size");
    dirOffset = u64(rec, 48, file, "zip64 central directory offset");
    entries = n64;
    dirLimit = recPos;
  }
  if (dirOffset + dirSize > dirLimit) {
    bad(
      file,
      `the central directory (offset ${dirOffset}, ${dirSize} bytes) runs past the end record ` +
        `at ${dirLimit} (truncated or corrupt)`,
      "central directory",
    );
  }
  if (dirSize > MAX_DIRECTORY) bad(file, `central directory of ${dirSize} bytes is too large`);
  if (entries * 46 > dirSize) {
    bad(file, `${entries} entries cannot fit a ${dirSize}-byte central directory`, "entries");
  }
  const dir = src.read(dirOffset, dirSize, "the ZIP central directory");
  const dv = view(dir);
  const out = new Map<string, ZipEntry>();
  const dec = new TextDecoder("utf-8", { fatal: true });
  let p = 0;
  for (let k = 0; k < entries; k++) {
    if (p + 46 > dirSize || dv.getUint32(p, true) !== CENTRAL) {
      bad(
        file,
        `central directory entry ${k} at byte ${dirOffset + p} is corrupt`,
        "central directory",
      );
    }
    const flags = dv.getUint16(p + 8, true);
    const method = dv.getUint16(p + 10, true);
    let csize = dv.getUint32(p + 20, true);
    let usize = dv.getUint32(p + 24, true);
    const nameLen = dv.getUint16(p + 28, true);
    const extraLen = dv.getUint16(p + 30, true);
    const commentLen = dv.getUint16(p + 32, true);
    let local = dv.getUint32(p + 42, true);
    const end = p + 46 + nameLen + extraLen + commentLen;
    if (end > dirSize) bad(file, `central directory entry ${k} runs past the directory`);
    let name: string;
    try {
      name = dec.decode(dir.subarray(p + 46, p + 46 + nameLen));
    } catch {
      bad(file, `central directory entry ${k} has a name that is not UTF-8`);
    }
    // ZIP64 extra field: the 64-bit values of the fields set to 0xffffffff, in order.
    let e = p + 46 + nameLen;
    const extraEnd = e + extraLen;
    while (e + 4 <= extraEnd) {
      const id = dv.getUint16(e, true);
      const len = dv.getUint16(e + 2, true);
      if (e + 4 + len > extraEnd) bad(file, `entry ${name}: extra field runs past its end`);
      if (id === 0x0001) {
        let q = e + 4;
        const take = (field: string) => {
          if (q + 8 > e + 4 + len) {
            bad(file, `entry ${name}: ZIP64 extra field lacks ${field}`, field);
          }
          const v = u64(dv, q, file, `entry ${name} ${field}`);
          q += 8;
          return v;
        };
        if (usize === 0xffffffff) usize = take("uncompressed size");
        if (csize === 0xffffffff) csize = take("compressed size");
        if (local === 0xffffffff) local = take("local header offset");
      }
      e += 4 + len;
    }
    if (usize === 0xffffffff || csize === 0xffffffff || local === 0xffffffff) {
      bad(file, `entry ${name}: 0xffffffff size or offset without a ZIP64 extra field`, name);
    }
    if (flags & 1) bad(file, `entry ${name} is encrypted`, name);
    if (method !== 0 || csize !== usize) {
      bad(
        file,
        `entry ${name} is compressed (method ${method}); torch.save writes stored entries`,
        name,
      );
    }
    if (out.has(name)) bad(file, `entry ${name} appears twice in the central directory`, name);
    // The local header: its name and extra lengths give where the bytes start.
    if (local + 30 > dirOffset) {
      bad(file, `entry ${name}: local header offset ${local} is out of range`, name);
    }
    const lh = src.read(local, 30, `the local header of ${name}`);
    const lv = view(lh);
    if (lv.getUint32(0, true) !== LOCAL) {
      bad(file, `entry ${name}: no local header at byte ${local}`, name);
    }
    const lName = lv.getUint16(26, true);
    const dataStart = local + 30 + lName + lv.getUint16(28, true);
    if (lName !== nameLen) bad(file, `entry ${name}: local header name length differs`, name);
    if (dataStart + usize > dirOffset) {
      bad(
        file,
        `entry ${name}: its ${usize} bytes at ${dataStart} run past the central directory at ` +
          `${dirOffset} (truncated or corrupt)`,
        name,
      );
    }
    out.set(name, { name, dataStart, size: usize });
    p = end;
  }
  return out;
}
