/**
 * A writer of PyTorch `.bin` checkpoints as `torch.save` lays them out, for tests and
 * benchmarks (the toolkit itself only reads them): the ZIP format (stored entries aligned
 * to 64 bytes, optional ZIP64 records) and the legacy format, with a protocol-2 pickle of
 * `_rebuild_tensor_v2` calls over persistent storages. Storages may be shared and tensors
 * may be strided views. Storage bytes may be produced lazily, one storage at a time, so a
 * gigabyte file is written without holding it in memory.
 *
 * @example
 * ```ts
 * import { contiguousCheckpoint, writeTorchBin } from "./torch_bin_writer.ts";
 * const path = Deno.makeTempFileSync({ suffix: ".bin" });
 * writeTorchBin(path, contiguousCheckpoint([
 *   { name: "w", dtype: "F32", shape: [2], data: new Uint8Array(8) },
 * ]));
 * ```
 *
 * @module
 */
import type { DType } from "../model/types.ts";
import { DTYPE_SIZES } from "../model/safetensors.ts";

/** One storage: a key and its bytes. */
export interface TorchStorageSpec {
  /** The storage key (`data/<key>` in the archive). */
  key: string;
  /** Element type. */
  dtype: DType;
  /** Elements. */
  numel: number;
  /** Little-endian bytes (`numel * size`), or a function producing them when written. */
  data: Uint8Array | (() => Uint8Array);
}

/** One tensor of the state dict: a view of a storage. */
export interface TorchTensorSpec {
  /** The state-dict key. */
  name: string;
  /** The key of its storage. */
  storage: string;
  /** Element offset in the storage. */
  offset: number;
  /** Shape. */
  shape: number[];
  /** Strides in elements. */
  stride: number[];
}

/** A checkpoint to write. */
export interface TorchCheckpointSpec {
  /** Storages, in the order their bytes are written. */
  storages: TorchStorageSpec[];
  /** Tensors, in state-dict order. */
  tensors: TorchTensorSpec[];
}

/** Options of {@linkcode writeTorchBin}. */
export interface WriteTorchBinOptions {
  /** `zip` (default) or `legacy`. */
  format?: "zip" | "legacy";
  /** Folder name inside the archive (default `archive`). */
  prefix?: string;
  /** Write ZIP64 records and extra fields even when not needed (default: only over 4 GiB). */
  zip64?: boolean;
  /** Wrap the state dict in `collections.OrderedDict` (default true, as `state_dict()`). */
  orderedDict?: boolean;
  /** Write these bytes as the state-dict pickle instead (malformed-file tests). */
  pickle?: Uint8Array;
}

const STORAGE_CLASS: Record<DType, string> = {
  F16: "HalfStorage",
  BF16: "BFloat16Storage",
  F32: "FloatStorage",
};

/**
 * One contiguous storage per tensor, keys `0, 1, ...` (what `torch.save` of fresh tensors
 * writes).
 *
 * @example
 * ```ts
 * import { contiguousCheckpoint } from "./torch_bin_writer.ts";
 * const spec = contiguousCheckpoint([{ name: "b", dtype: "F16", shape: [3], data: new Uint8Array(6) }]);
 * console.log(spec.tensors[0].stride); // [1]
 * ```
 */
export function contiguousCheckpoint(
  tensors: { name: string; dtype: DType; shape: number[]; data: Uint8Array | (() => Uint8Array) }[],
): TorchCheckpointSpec {
  const storages: TorchStorageSpec[] = [];
  const refs: TorchTensorSpec[] = [];
  tensors.forEach((t, i) => {
    const numel = t.shape.reduce((a, b) => a * b, 1);
    storages.push({ key: String(i), dtype: t.dtype, numel, data: t.data });
    const stride = t.shape.map((_, d) => t.shape.slice(d + 1).reduce((a, b) => a * b, 1));
    refs.push({ name: t.name, storage: String(i), offset: 0, shape: [...t.shape], stride });
  });
  return { storages, tensors: refs };
}

/** Builds pickle bytes, protocol 2. */
class PickleWriter {
  private parts: number[] = [];
  op(...bytes: number[]): this {
    this.parts.push(...bytes);
    return this;
  }
  raw(bytes: Uint8Array): this {
    for (const b of bytes) this.parts.push(b);
    return this;
  }
  int(n: number | bigint): this {
    if (typeof n === "number" && n >= 0 && n < 256) return this.op(0x4b, n);
    if (typeof n === "number" && n >= 0 && n < 65536) return this.op(0x4d, n & 255, n >> 8);
    if (typeof n === "number" && n >= -(2 ** 31) && n < 2 ** 31) {
      const b = new Uint8Array(4);
      new DataView(b.buffer).setInt32(0, n, true);
      return this.op(0x4a).raw(b);
    }
    let x = BigInt(n);
    const bytes: number[] = [];
    while (true) {
      bytes.push(Number(x & 255n));
      x >>= 8n;
      if ((x === 0n && !(bytes.at(-1)! & 0x80)) || (x === -1n && bytes.at(-1)! & 0x80)) break;
    }
    return this.op(0x8a, bytes.length, ...bytes);
  }
  str(s: string): this {
    const b = new TextEncoder().encode(s);
    const len = new Uint8Array(4);
    new DataView(len.buffer).setUint32(0, b.length, true);
    return this.op(0x58).raw(len).raw(b);
  }
  global(module: string, name: string): this {
    return this.op(0x63).raw(new TextEncoder().encode(`${module}\n${name}\n`));
  }
  tuple(items: (() => void)[]): this {
    if (items.length === 0) return this.op(0x29);
    if (items.length <= 3) {
      items.forEach((f) => f());
      return this.op(0x84 + items.length);
    }
    this.op(0x28);
    items.forEach((f) => f());
    return this.op(0x74);
  }
  bytes(): Uint8Array {
    return new Uint8Array(this.parts);
  }
}

/**
 * The state-dict pickle `torch.save` writes (protocol 2), with legacy persistent ids
 * (6-tuples ending in `None`) when `legacy` is true.
 *
 * @example
 * ```ts
 * import { contiguousCheckpoint, statePickle } from "./torch_bin_writer.ts";
 * const spec = contiguousCheckpoint([{ name: "b", dtype: "F16", shape: [3], data: new Uint8Array(6) }]);
 * console.log(statePickle(spec, false)[0]); // 0x80 (PROTO)
 * ```
 */
export function statePickle(
  spec: TorchCheckpointSpec,
  legacy: boolean,
  orderedDict = true,
): Uint8Array {
  const w = new PickleWriter().op(0x80, 2);
  const byKey = new Map(spec.storages.map((s) => [s.key, s]));
  if (orderedDict) w.global("collections", "OrderedDict").op(0x29, 0x52);
  else w.op(0x7d);
  w.op(0x28);
  for (const t of spec.tensors) {
    const s = byKey.get(t.storage);
    if (!s) throw new Error(`tensor ${t.name}: no storage ${t.storage}`);
    w.str(t.name).global("torch._utils", "_rebuild_tensor_v2");
    w.op(0x28);
    // The persistent id.
    w.op(0x28).str("storage").global("torch", STORAGE_CLASS[s.dtype]).str(s.key).str("cpu")
      .int(s.numel);
    if (legacy) w.op(0x4e);
    w.op(0x74, 0x51);
    w.int(t.offset);
    w.tuple(t.shape.map((d) => () => w.int(d)));
    w.tuple(t.stride.map((d) => () => w.int(d)));
    w.op(0x89).global("collections", "OrderedDict").op(0x29, 0x52);
    w.op(0x74, 0x52);
  }
  w.op(0x75, 0x2e);
  return w.bytes();
}

let crcTable: Uint32Array | undefined;

/**
 * CRC-32 (ZIP's), continuing from `crc`.
 *
 * @example
 * ```ts
 * import { crc32 } from "./torch_bin_writer.ts";
 * console.log(crc32(new TextEncoder().encode("123456789")).toString(16)); // "cbf43926"
 * ```
 */
export function crc32(bytes: Uint8Array, crc = 0): number {
  if (!crcTable) {
    crcTable = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      crcTable[n] = c >>> 0;
    }
  }
  let c = ~crc >>> 0;
  for (let i = 0; i < bytes.length; i++) c = crcTable[(c ^ bytes[i]) & 255] ^ (c >>> 8);
  return ~c >>> 0;
}

function writeAll(f: Deno.FsFile, b: Uint8Array): void {
  let off = 0;
  while (off < b.length) off += f.writeSync(b.subarray(off));
}

function storageBytes(s: TorchStorageSpec): Uint8Array {
  const b = typeof s.data === "function" ? s.data() : s.data;
  if (b.byteLength !== s.numel * DTYPE_SIZES[s.dtype]) {
    throw new Error(`storage ${s.key}: ${b.byteLength} bytes for ${s.numel} ${s.dtype}`);
  }
  return b;
}

function writeZip(path: string, spec: TorchCheckpointSpec, o: WriteTorchBinOptions): void {
  const prefix = o.prefix ?? "archive";
  const enc = new TextEncoder();
  const f = Deno.openSync(path, { write: true, create: true, truncate: true });
  const central: Uint8Array[] = [];
  let pos = 0;
  const add = (name: string, data: Uint8Array) => {
    const nameBytes = enc.encode(name);
    const zip64 = o.zip64 || data.length >= 0xffffffff || pos >= 0xffffffff;
    const z64Local = zip64 ? 20 : 0;
    // Pad with an "FB" extra field so the data starts on a 64-byte boundary, as torch does.
    const base = pos + 30 + nameBytes.length + z64Local + 4;
    const pad = (64 - (base % 64)) % 64;
    const extraLen = z64Local + 4 + pad;
    const crc = crc32(data);
    const lh = new Uint8Array(30 + nameBytes.length + extraLen);
    const lv = new DataView(lh.buffer);
    lv.setUint32(0, 0x04034b50, true);
    lv.setUint16(4, zip64 ? 45 : 20, true);
    lv.setUint32(14, crc, true);
    lv.setUint32(18, zip64 ? 0xffffffff : data.length, true);
    lv.setUint32(22, zip64 ? 0xffffffff : data.length, true);
    lv.setUint16(26, nameBytes.length, true);
    lv.setUint16(28, extraLen, true);
    lh.set(nameBytes, 30);
    let e = 30 + nameBytes.length;
    if (zip64) {
      lv.setUint16(e, 1, true);
      lv.setUint16(e + 2, 16, true);
      lv.setBigUint64(e + 4, BigInt(data.length), true);
      lv.setBigUint64(e + 12, BigInt(data.length), true);
      e += 20;
    }
    lv.setUint16(e, 0x4246, true);
    lv.setUint16(e + 2, pad, true);
    writeAll(f, lh);
    writeAll(f, data);
    const cExtra = zip64 ? 4 + 24 : 0;
    const ch = new Uint8Array(46 + nameBytes.length + cExtra);
    const cv = new DataView(ch.buffer);
    cv.setUint32(0, 0x02014b50, true);
    cv.setUint16(4, zip64 ? 45 : 20, true);
    cv.setUint16(6, zip64 ? 45 : 20, true);
    cv.setUint32(16, crc, true);
    cv.setUint32(20, zip64 ? 0xffffffff : data.length, true);
    cv.setUint32(24, zip64 ? 0xffffffff : data.length, true);
    cv.setUint16(28, nameBytes.length, true);
    cv.setUint16(30, cExtra, true);
    cv.setUint32(42, zip64 ? 0xffffffff : pos, true);
    ch.set(nameBytes, 46);
    if (zip64) {
      const q = 46 + nameBytes.length;
      cv.setUint16(q, 1, true);
      cv.setUint16(q + 2, 24, true);
      cv.setBigUint64(q + 4, BigInt(data.length), true);
      cv.setBigUint64(q + 12, BigInt(data.length), true);
      cv.setBigUint64(q + 20, BigInt(pos), true);
    }
    central.push(ch);
    pos += lh.length + data.length;
  };
  try {
    add(`${prefix}/data.pkl`, o.pickle ?? statePickle(spec, false, o.orderedDict ?? true));
    add(`${prefix}/byteorder`, enc.encode("little"));
    for (const s of spec.storages) add(`${prefix}/data/${s.key}`, storageBytes(s));
    add(`${prefix}/version`, enc.encode("3\n"));
    const dirOffset = pos;
    let dirSize = 0;
    for (const c of central) {
      writeAll(f, c);
      dirSize += c.length;
    }
    pos += dirSize;
    const zip64 = o.zip64 || dirOffset >= 0xffffffff || central.length >= 0xffff;
    if (zip64) {
      const rec = new Uint8Array(56 + 20);
      const rv = new DataView(rec.buffer);
      rv.setUint32(0, 0x06064b50, true);
      rv.setBigUint64(4, 44n, true);
      rv.setUint16(12, 45, true);
      rv.setUint16(14, 45, true);
      rv.setBigUint64(24, BigInt(central.length), true);
      rv.setBigUint64(32, BigInt(central.length), true);
      rv.setBigUint64(40, BigInt(dirSize), true);
      rv.setBigUint64(48, BigInt(dirOffset), true);
      rv.setUint32(56, 0x07064b50, true);
      rv.setBigUint64(64, BigInt(pos), true);
      rv.setUint32(72, 1, true);
      writeAll(f, rec);
    }
    const end = new Uint8Array(22);
    const ev = new DataView(end.buffer);
    ev.setUint32(0, 0x06054b50, true);
    ev.setUint16(8, zip64 ? 0xffff : central.length, true);
    ev.setUint16(10, zip64 ? 0xffff : central.length, true);
    ev.setUint32(12, zip64 ? 0xffffffff : dirSize, true);
    ev.setUint32(16, zip64 ? 0xffffffff : dirOffset, true);
    writeAll(f, end);
  } finally {
    f.close();
  }
}

function writeLegacy(path: string, spec: TorchCheckpointSpec, o: WriteTorchBinOptions): void {
  const f = Deno.openSync(path, { write: true, create: true, truncate: true });
  try {
    writeAll(f, new PickleWriter().op(0x80, 2).int(0x1950a86a20f9469cfc6cn).op(0x2e).bytes());
    writeAll(f, new PickleWriter().op(0x80, 2).int(1001).op(0x2e).bytes());
    const info = new PickleWriter().op(0x80, 2, 0x7d, 0x28).str("protocol_version").int(1001)
      .str("little_endian").op(0x88).str("type_sizes").op(0x7d, 0x28).str("short").int(2)
      .str("int").int(4).str("long").int(4).op(0x75, 0x75, 0x2e);
    writeAll(f, info.bytes());
    writeAll(f, o.pickle ?? statePickle(spec, true, o.orderedDict ?? true));
    const keys = new PickleWriter().op(0x80, 2, 0x5d, 0x28);
    for (const s of spec.storages) keys.str(s.key);
    writeAll(f, keys.op(0x65, 0x2e).bytes());
    for (const s of spec.storages) {
      const head = new Uint8Array(8);
      new DataView(head.buffer).setBigInt64(0, BigInt(s.numel), true);
      writeAll(f, head);
      writeAll(f, storageBytes(s));
    }
  } finally {
    f.close();
  }
}

/**
 * Writes a checkpoint as `torch.save` would (ZIP by default, or legacy).
 *
 * @example
 * ```ts
 * import { contiguousCheckpoint, writeTorchBin } from "./torch_bin_writer.ts";
 * const path = Deno.makeTempFileSync({ suffix: ".bin" });
 * const spec = contiguousCheckpoint([{ name: "w", dtype: "F16", shape: [2], data: new Uint8Array(4) }]);
 * writeTorchBin(path, spec, { format: "legacy" });
 * ```
 */
export function writeTorchBin(
  path: string,
  spec: TorchCheckpointSpec,
  options: WriteTorchBinOptions = {},
): void {
  if (options.format === "legacy") writeLegacy(path, spec, options);
  else writeZip(path, spec, options);
}
