/**
 * PyTorch `.bin` checkpoints (`torch.save` of a state dict), read without executing
 * anything: the ZIP format (`<prefix>/data.pkl` plus one `<prefix>/data/<key>` entry per
 * storage, ZIP64 when large) and the legacy format (magic number, protocol, system info,
 * the state-dict pickle, the storage keys, then each storage as an int64 element count and
 * its bytes). The pickle goes through the restricted unpickler of `torch_pickle.ts`;
 * tensors are `_rebuild_tensor_v2(storage, offset, size, stride, ...)` over f16, bf16 or
 * f32 storages, possibly shared or strided. Opening reads only headers and the pickle;
 * a tensor's `bytes()` reads its own range of the file (strided views are gathered into
 * contiguous bytes), so a 10 GB shard never needs 10 GB of memory.
 *
 * @example
 * ```ts
 * import { openTorchBin } from "./torch_bin.ts";
 * const f = openTorchBin("../shared/fixtures/torch-bin/pre-ln-zip/pytorch_model.bin");
 * console.log(f.format, f.tensors.get("decoder.embed_tokens.weight")?.shape); // "zip" [1000, 64]
 * ```
 *
 * @module
 */
import { type ByteSource, openFileSource, readFileRange } from "./byte_source.ts";
import { CheckpointError } from "./errors.ts";
import type { FileTensor } from "./safetensors.ts";
import { DTYPE_SIZES } from "./safetensors.ts";
import { describePickleValue, PickleGlobal, unpickle, type UnpickleHooks } from "./torch_pickle.ts";
import { isZip, readZipDirectory } from "./torch_zip.ts";
import type { DType } from "./types.ts";

/** Storage classes and the dtype of their elements. */
const STORAGE_DTYPES: Record<string, DType> = {
  "torch.HalfStorage": "F16",
  "torch.BFloat16Storage": "BF16",
  "torch.FloatStorage": "F32",
};

/** The magic number that opens a legacy (non-ZIP) checkpoint. */
const LEGACY_MAGIC = 0x1950a86a20f9469cfc6cn;
/** The protocol version a legacy checkpoint records. */
const LEGACY_PROTOCOL = 1001;

/** A storage named by a persistent id. */
interface StorageRef {
  kind: "storage";
  key: string;
  dtype: DType;
  /** Elements of the root storage. */
  numel: number;
  /** Element offset and length of a legacy storage view, else 0 and `numel`. */
  viewOffset: number;
  viewNumel: number;
  pos: number;
}

/** A tensor as `_rebuild_tensor_v2` describes it. */
interface TensorRef {
  kind: "tensor";
  storage: StorageRef;
  offset: number;
  shape: number[];
  stride: number[];
  pos: number;
}

/** An opened `.bin` file. */
export interface TorchBinFile {
  /** The path opened. */
  readonly path: string;
  /** `zip` (torch >= 1.6) or `legacy`. */
  readonly format: "zip" | "legacy";
  /** Tensors by stored name, in pickle order. */
  readonly tensors: ReadonlyMap<string, FileTensor>;
  /** Number of distinct storages (fewer than tensors when storages are shared). */
  readonly storages: number;
}

function isCount(v: unknown): v is number {
  return typeof v === "number" && Number.isSafeInteger(v) && v >= 0;
}

/** The hooks that turn `torch.save`'s pickle into storage and tensor descriptions. */
function torchHooks(file: string, where: string, legacy: boolean): UnpickleHooks {
  const bad = (pos: number, message: string): never => {
    throw new CheckpointError(`${file}: ${where} at byte ${pos}: ${message}`, {
      file,
      kind: "format",
      field: where,
    });
  };
  const seen = new Map<string, StorageRef>();
  return {
    persistentLoad(pid, pos) {
      const n = legacy ? 6 : 5;
      if (!Array.isArray(pid) || pid.length !== n || pid[0] !== "storage") {
        bad(
          pos,
          `persistent id ${describePickleValue(pid)} is not ('storage', type, key, location, ` +
            `numel${legacy ? ", view" : ""})`,
        );
      }
      const [, type, key, location, numel] = pid as unknown[];
      if (!(type instanceof PickleGlobal) || !(type.name in STORAGE_DTYPES)) {
        bad(
          pos,
          `storage type ${describePickleValue(type)} is not a Half, BFloat16 or Float storage`,
        );
      }
      if (typeof key !== "string" || key === "" || key.includes("/") || key.includes("\\")) {
        bad(pos, `storage key ${describePickleValue(key)} is not a plain name`);
      }
      if (typeof location !== "string") bad(pos, `storage location is not a string`);
      if (!isCount(numel)) bad(pos, `storage ${key}: element count ${describePickleValue(numel)}`);
      const dtype = STORAGE_DTYPES[(type as PickleGlobal).name];
      const prev = seen.get(key as string);
      if (prev && (prev.dtype !== dtype || prev.numel !== numel)) {
        bad(pos, `storage ${key} is named twice with different types or sizes`);
      }
      const root: StorageRef = prev ??
        {
          kind: "storage",
          key: key as string,
          dtype,
          numel: numel as number,
          viewOffset: 0,
          viewNumel: numel as number,
          pos,
        };
      seen.set(root.key, root);
      const view = legacy ? (pid as unknown[])[5] : null;
      if (view === null) return root;
      if (!Array.isArray(view) || view.length !== 3 || !isCount(view[1]) || !isCount(view[2])) {
        return bad(
          pos,
          `storage ${key}: view ${describePickleValue(view)} is not (key, offset, size)`,
        );
      }
      if (view[1] + view[2] > root.numel) {
        bad(
          pos,
          `storage ${key}: view [${view[1]}, +${view[2]}) passes its ${root.numel} elements`,
        );
      }
      return { ...root, viewOffset: view[1], viewNumel: view[2] };
    },
    reduce(global, args, pos) {
      if (global === "collections.OrderedDict") {
        if (args.length !== 0) bad(pos, "OrderedDict with arguments");
        return new Map();
      }
      if (global === "torch._utils._rebuild_parameter") {
        const t = args[0] as TensorRef | undefined;
        if (args.length !== 3 || t?.kind !== "tensor") {
          bad(pos, "_rebuild_parameter of a non-tensor");
        }
        return t;
      }
      if (global === "torch._utils._rebuild_tensor_v2") {
        if (args.length !== 6 && args.length !== 7) {
          bad(pos, `_rebuild_tensor_v2 with ${args.length} arguments (6 or 7 expected)`);
        }
        const [storage, offset, size, stride] = args as unknown[];
        if ((storage as StorageRef)?.kind !== "storage") {
          bad(pos, `_rebuild_tensor_v2 of ${describePickleValue(storage)}, not a storage`);
        }
        if (!isCount(offset)) bad(pos, `tensor storage offset ${describePickleValue(offset)}`);
        if (!Array.isArray(size) || !size.every(isCount)) {
          bad(pos, `tensor size ${describePickleValue(size)} is not a tuple of counts`);
        }
        if (
          !Array.isArray(stride) || stride.length !== (size as number[]).length ||
          !stride.every(isCount)
        ) {
          bad(pos, `tensor stride ${describePickleValue(stride)} does not match size`);
        }
        const s = storage as StorageRef;
        const sz = size as number[], st = stride as number[];
        let last = offset as number;
        let count = 1;
        for (let i = 0; i < sz.length; i++) {
          count *= sz[i];
          last += (sz[i] - 1) * st[i];
        }
        if (!Number.isSafeInteger(count) || !Number.isSafeInteger(last)) {
          bad(pos, "tensor too large");
        }
        if (count > 0 && last >= s.viewNumel) {
          bad(
            pos,
            `tensor of size [${sz}] stride [${st}] at offset ${offset} reaches element ` +
              `${last} of storage ${s.key}, which has ${s.viewNumel}`,
          );
        }
        if (count > s.viewNumel) {
          // Overlapping views (stride 0) could declare 2^52 elements over a few bytes; the
          // element count is bounded by the storage's, which is bounded by the file's bytes.
          bad(
            pos,
            `tensor of size [${sz}] stride [${st}] has ${count} elements, more than its ` +
              `storage ${s.key} holds (${s.viewNumel}): overlapping views are not read`,
          );
        }
        return {
          kind: "tensor",
          storage: s,
          offset,
          shape: [...sz],
          stride: [...st],
          pos,
        } as TensorRef;
      }
      return bad(pos, `REDUCE of ${global} is not supported`);
    },
  };
}

/** The state dict's tensors by name (a dict of str to tensor). */
function stateDict(file: string, where: string, value: unknown): Map<string, TensorRef> {
  if (!(value instanceof Map)) {
    throw new CheckpointError(
      `${file}: ${where} holds ${describePickleValue(value)}, not a state dict`,
      { file, kind: "format", field: where },
    );
  }
  const out = new Map<string, TensorRef>();
  for (const [k, v] of value) {
    if (typeof k !== "string" || (v as TensorRef)?.kind !== "tensor") {
      throw new CheckpointError(
        `${file}: ${where} entry ${describePickleValue(k)} is ${describePickleValue(v)}, not a ` +
          `tensor`,
        { file, kind: "format", field: where, ...(typeof k === "string" ? { tensor: k } : {}) },
      );
    }
    out.set(k, v as TensorRef);
  }
  return out;
}

function isContiguous(shape: number[], stride: number[]): boolean {
  let expect = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    if (shape[i] !== 1 && stride[i] !== expect) return false;
    expect *= shape[i];
  }
  return true;
}

/** Copies a strided view out of the bytes of its span into contiguous bytes. */
function gather(span: Uint8Array, shape: number[], stride: number[], es: number): Uint8Array {
  const n = shape.reduce((a, b) => a * b, 1);
  const out = new Uint8Array(n * es);
  const idx = new Array(shape.length).fill(0);
  let src = 0;
  for (let i = 0; i < n; i++) {
    out.set(span.subarray(src * es, src * es + es), i * es);
    for (let d = shape.length - 1; d >= 0; d--) {
      idx[d]++;
      src += stride[d];
      if (idx[d] < shape[d]) break;
      src -= stride[d] * shape[d];
      idx[d] = 0;
    }
  }
  return out;
}

function fileTensor(file: string, name: string, t: TensorRef, storageStart: number): FileTensor {
  const dtype = t.storage.dtype;
  const es = DTYPE_SIZES[dtype];
  const n = t.shape.reduce((a, b) => a * b, 1);
  const first = storageStart + (t.storage.viewOffset + t.offset) * es;
  const shape = Object.freeze([...t.shape]);
  const what = `tensor ${JSON.stringify(name)}`;
  let bytes: () => Uint8Array;
  if (n === 0) bytes = () => new Uint8Array(0);
  else if (isContiguous(t.shape, t.stride)) bytes = () => readFileRange(file, first, n * es, what);
  else {
    let spanElems = 1;
    t.shape.forEach((s, i) => spanElems += (s - 1) * t.stride[i]);
    bytes = () => gather(readFileRange(file, first, spanElems * es, what), t.shape, t.stride, es);
  }
  return { name, storedName: name, dtype, shape, file, offset: first, byteLength: n * es, bytes };
}

function openZip(src: ByteSource): TorchBinFile {
  const file = src.file;
  const entries = readZipDirectory(src);
  const first = entries.keys().next().value;
  const prefix = first?.includes("/") ? first.slice(0, first.indexOf("/")) : undefined;
  const pkl = prefix === undefined ? undefined : entries.get(`${prefix}/data.pkl`);
  if (pkl === undefined) {
    throw new CheckpointError(
      `${file}: no <prefix>/data.pkl entry (first entry ${JSON.stringify(first ?? "")}); not a ` +
        `torch.save archive`,
      { file, kind: "format", field: "data.pkl" },
    );
  }
  const order = entries.get(`${prefix}/byteorder`);
  if (order) {
    const text = new TextDecoder().decode(
      src.read(order.dataStart, Math.min(order.size, 16), "byteorder"),
    );
    if (text !== "little") {
      throw new CheckpointError(
        `${file}: byteorder is ${JSON.stringify(text)}, only little is read`,
        {
          file,
          kind: "unsupported",
          field: "byteorder",
        },
      );
    }
  }
  const where = pkl.name;
  const { value } = unpickle(
    src,
    pkl.dataStart,
    pkl.dataStart + pkl.size,
    where,
    torchHooks(file, where, false),
  );
  const dict = stateDict(file, where, value);
  const tensors = new Map<string, FileTensor>();
  const storages = new Set<string>();
  for (const [name, t] of dict) {
    const s = t.storage;
    const entryName = `${prefix}/data/${s.key}`;
    const e = entries.get(entryName);
    if (!e) {
      throw new CheckpointError(
        `${file}: tensor ${name} uses storage ${s.key}, but the archive has no entry ${entryName}`,
        { file, kind: "format", tensor: name, field: entryName },
      );
    }
    const need = s.numel * DTYPE_SIZES[s.dtype];
    if (e.size !== need) {
      throw new CheckpointError(
        `${file}: storage entry ${entryName} (for tensor ${name}) has ${e.size} bytes, but ` +
          `${s.numel} ${s.dtype} elements need ${need}`,
        { file, kind: "format", tensor: name, field: entryName },
      );
    }
    storages.add(s.key);
    tensors.set(name, fileTensor(file, name, t, e.dataStart));
  }
  return { path: file, format: "zip", tensors, storages: storages.size };
}

function openLegacy(src: ByteSource): TorchBinFile {
  const file = src.file;
  const inert: UnpickleHooks = {
    persistentLoad: (_p, pos) => {
      throw new CheckpointError(`${file}: unexpected persistent id at byte ${pos}`, {
        file,
        kind: "format",
      });
    },
    reduce: (g, _a, pos) => {
      throw new CheckpointError(`${file}: unexpected ${g} at byte ${pos}`, {
        file,
        kind: "format",
      });
    },
  };
  const magic = unpickle(src, 0, src.size, "the legacy magic number", inert);
  if (magic.value !== LEGACY_MAGIC && magic.value !== Number(LEGACY_MAGIC)) {
    throw new CheckpointError(
      `${file}: neither a ZIP archive nor a legacy PyTorch file (magic number ` +
        `${describePickleValue(magic.value)})`,
      { file, kind: "format", field: "magic" },
    );
  }
  const proto = unpickle(src, magic.end, src.size, "the legacy protocol version", inert);
  if (proto.value !== LEGACY_PROTOCOL) {
    throw new CheckpointError(
      `${file}: legacy protocol version ${describePickleValue(proto.value)} (1001 expected)`,
      { file, kind: "unsupported", field: "protocol_version" },
    );
  }
  const info = unpickle(src, proto.end, src.size, "the legacy system info", inert);
  if (!(info.value instanceof Map) || info.value.get("little_endian") !== true) {
    throw new CheckpointError(`${file}: the legacy system info does not say little_endian`, {
      file,
      kind: "unsupported",
      field: "sys_info",
    });
  }
  const where = "the legacy state-dict pickle";
  const main = unpickle(src, info.end, src.size, where, torchHooks(file, where, true));
  const dict = stateDict(file, where, main.value);
  const keys = unpickle(src, main.end, src.size, "the legacy storage keys", inert);
  if (!Array.isArray(keys.value) || !keys.value.every((k) => typeof k === "string")) {
    throw new CheckpointError(`${file}: the legacy storage key list is not a list of names`, {
      file,
      kind: "format",
      field: "storage keys",
    });
  }
  const byKey = new Map<string, StorageRef>();
  for (const t of dict.values()) byKey.set(t.storage.key, t.storage);
  const starts = new Map<string, number>();
  let p = keys.end;
  for (const key of keys.value as string[]) {
    const s = byKey.get(key);
    if (!s) {
      throw new CheckpointError(`${file}: storage ${key} is listed but no tensor uses it`, {
        file,
        kind: "format",
        field: "storage keys",
      });
    }
    if (starts.has(key)) {
      throw new CheckpointError(`${file}: storage ${key} is listed twice`, {
        file,
        kind: "format",
        field: "storage keys",
      });
    }
    const head = src.read(p, 8, `the element count of storage ${key}`);
    const count = new DataView(head.buffer).getBigInt64(0, true);
    if (count !== BigInt(s.numel)) {
      throw new CheckpointError(
        `${file}: storage ${key} at byte ${p} records ${count} elements, the pickle says ${s.numel}`,
        { file, kind: "format", field: `storage ${key}` },
      );
    }
    const len = s.numel * DTYPE_SIZES[s.dtype];
    if (p + 8 + len > src.size) {
      throw new CheckpointError(
        `${file} is truncated: storage ${key} needs bytes ${p + 8}..${p + 8 + len} of ${src.size}`,
        { file, kind: "format", field: `storage ${key}` },
      );
    }
    starts.set(key, p + 8);
    p += 8 + len;
  }
  const tensors = new Map<string, FileTensor>();
  for (const [name, t] of dict) {
    const start = starts.get(t.storage.key);
    if (start === undefined) {
      throw new CheckpointError(
        `${file}: tensor ${name} uses storage ${t.storage.key}, which the key list lacks`,
        { file, kind: "format", tensor: name, field: "storage keys" },
      );
    }
    tensors.set(name, fileTensor(file, name, t, start));
  }
  return { path: file, format: "legacy", tensors, storages: starts.size };
}

/**
 * Opens a PyTorch `.bin` checkpoint (ZIP or legacy format) and describes its tensors
 * without reading their bytes. No file handle stays open.
 *
 * @param path The `.bin` file.
 * @throws {CheckpointError} naming the file (and tensor, entry, opcode or global) on any
 *   defect; a pickle naming a global outside the allowed set is refused before anything is
 *   built.
 *
 * @example
 * ```ts
 * import { openTorchBin } from "./torch_bin.ts";
 * const f = openTorchBin("../shared/fixtures/torch-bin/pre-ln-legacy/pytorch_model.bin");
 * console.log(f.format, f.tensors.size); // "legacy" ...
 * ```
 */
export function openTorchBin(path: string): TorchBinFile {
  const src = openFileSource(path);
  try {
    if (src.size < 4) {
      throw new CheckpointError(`${path}: only ${src.size} bytes, not a PyTorch checkpoint`, {
        file: path,
        kind: "format",
      });
    }
    return isZip(src.read(0, 4, "the magic bytes")) ? openZip(src) : openLegacy(src);
  } finally {
    src.close();
  }
}
