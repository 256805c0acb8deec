/**
 * A restricted unpickler for PyTorch checkpoints that **never executes anything**. It knows
 * the few pickle opcodes `torch.save` writes at protocol 2 and a fixed set of globals
 * ({@linkcode ALLOWED_GLOBALS}); a pickle is first scanned from start to `STOP`, and any
 * other opcode or global is refused with a {@linkcode CheckpointError} naming the file,
 * the byte offset and the opcode or global before a single value is built. Building then
 * calls only the caller's hooks (`persistentLoad` and `reduce`) with plain data: a global
 * is a name, never a function.
 *
 * @example
 * ```ts
 * import { memorySource } from "./byte_source.ts";
 * import { unpickle } from "./torch_pickle.ts";
 * // PROTO 2, BININT1 7, STOP
 * const src = memorySource(new Uint8Array([0x80, 2, 0x4b, 7, 0x2e]), "x.pkl");
 * console.log(unpickle(src, 0, src.size, "x.pkl", {
 *   persistentLoad: () => null,
 *   reduce: () => null,
 * }).value); // 7
 * ```
 *
 * @module
 */
import type { ByteSource } from "./byte_source.ts";
import { CheckpointError } from "./errors.ts";

/** The only globals a checkpoint may name (`module.name`). */
export const ALLOWED_GLOBALS: ReadonlySet<string> = new Set([
  "collections.OrderedDict",
  "torch._utils._rebuild_tensor_v2",
  "torch._utils._rebuild_parameter",
  "torch.HalfStorage",
  "torch.FloatStorage",
  "torch.BFloat16Storage",
]);

/**
 * A global named by the pickle: only its name (nothing is imported or called).
 *
 * @example
 * ```ts
 * import { PickleGlobal } from "./torch_pickle.ts";
 * console.log(new PickleGlobal("torch.HalfStorage").name);
 * ```
 */
export class PickleGlobal {
  /** Makes a global reference. */
  constructor(
    /** `module.name`, e.g. `torch.HalfStorage`. */
    readonly name: string,
  ) {}
}

/** Callbacks of {@linkcode unpickle}: the only places where pickle data becomes objects. */
export interface UnpickleHooks {
  /** Called for `BINPERSID` with the persistent id (a tuple as an array). */
  persistentLoad(pid: unknown, pos: number): unknown;
  /** Called for `REDUCE` of an allowed global with the argument tuple. */
  reduce(global: string, args: unknown[], pos: number): unknown;
}

/** Longest string accepted (16 MiB): a fuzzed length must not allocate gigabytes. */
const MAX_STRING = 1 << 24;
/** Most memo entries accepted. */
const MAX_MEMO = 1 << 22;

interface Op {
  code: number;
  pos: number;
  /** Byte after the opcode and its argument. */
  next: number;
  /** Integer argument, string argument, or raw bytes. */
  int?: number;
  str?: string;
  bytes?: Uint8Array;
}

/** Opcode names, for messages (only the ones this reader knows, plus a few common others). */
const NAMES: Record<number, string> = {
  0x80: "PROTO",
  0x2e: "STOP",
  0x7d: "EMPTY_DICT",
  0x5d: "EMPTY_LIST",
  0x29: "EMPTY_TUPLE",
  0x28: "MARK",
  0x30: "POP",
  0x31: "POP_MARK",
  0x32: "DUP",
  0x71: "BINPUT",
  0x72: "LONG_BINPUT",
  0x68: "BINGET",
  0x6a: "LONG_BINGET",
  0x94: "MEMOIZE",
  0x58: "BINUNICODE",
  0x8c: "SHORT_BINUNICODE",
  0x54: "BINSTRING",
  0x55: "SHORT_BINSTRING",
  0x63: "GLOBAL",
  0x51: "BINPERSID",
  0x4a: "BININT",
  0x4b: "BININT1",
  0x4d: "BININT2",
  0x8a: "LONG1",
  0x47: "BINFLOAT",
  0x74: "TUPLE",
  0x85: "TUPLE1",
  0x86: "TUPLE2",
  0x87: "TUPLE3",
  0x6c: "LIST",
  0x64: "DICT",
  0x61: "APPEND",
  0x65: "APPENDS",
  0x73: "SETITEM",
  0x75: "SETITEMS",
  0x4e: "NONE",
  0x88: "NEWTRUE",
  0x89: "NEWFALSE",
  0x52: "REDUCE",
  0x62: "BUILD",
  0x95: "FRAME",
};

/** Opcodes refused by name (they exist in pickle, this reader does not run them). */
const REFUSED: Record<number, string> = {
  0x69: "INST",
  0x6f: "OBJ",
  0x81: "NEWOBJ",
  0x92: "NEWOBJ_EX",
  0x93: "STACK_GLOBAL",
  0x50: "PERSID",
  0x82: "EXT1",
  0x83: "EXT2",
  0x84: "EXT4",
  0x49: "INT",
  0x4c: "LONG",
  0x46: "FLOAT",
  0x53: "STRING",
  0x56: "UNICODE",
  0x70: "PUT",
  0x67: "GET",
  0x8b: "LONG4",
  0x42: "BINBYTES",
  0x43: "SHORT_BINBYTES",
  0x8e: "BINBYTES8",
  0x8d: "BINUNICODE8",
  0x96: "BYTEARRAY8",
  0x97: "NEXT_BUFFER",
  0x98: "READONLY_BUFFER",
  0x8f: "EMPTY_SET",
  0x90: "ADDITEMS",
  0x91: "FROZENSET",
};

function fail(file: string, where: string, pos: number, message: string): never {
  throw new CheckpointError(`${file}: ${where} at byte ${pos}: ${message}`, {
    file,
    kind: "format",
    field: where,
  });
}

const utf8 = new TextDecoder("utf-8", { fatal: true });
const latin1 = new TextDecoder("latin1");

/** Reads one opcode and its argument at `pos` (bounded by `end`). */
function readOp(src: ByteSource, pos: number, end: number, where: string): Op {
  const f = src.file;
  const need = (p: number, n: number, what: string): Uint8Array => {
    if (p + n > end) fail(f, where, pos, `the pickle ends inside ${what} (truncated)`);
    return src.read(p, n, `${where} ${what}`);
  };
  if (pos >= end) fail(f, where, pos, "the pickle ends without STOP (truncated)");
  const code = need(pos, 1, "an opcode")[0];
  const name = NAMES[code];
  if (name === undefined) {
    const refused = REFUSED[code];
    fail(
      f,
      where,
      pos,
      refused
        ? `pickle opcode ${refused} is not allowed in a PyTorch checkpoint (refused, nothing ran)`
        : `unknown pickle opcode 0x${code.toString(16).padStart(2, "0")} (not a PyTorch ` +
          `checkpoint, or corrupt)`,
    );
  }
  const p = pos + 1;
  const u = (n: number, what: string) => {
    const b = need(p, n, what);
    const dv = new DataView(b.buffer, b.byteOffset, n);
    return n === 1 ? b[0] : n === 2 ? dv.getUint16(0, true) : dv.getUint32(0, true);
  };
  const str = (lenBytes: number, decoder: TextDecoder, what: string): Op => {
    const len = u(lenBytes, `the length of ${what}`);
    if (len > MAX_STRING) fail(f, where, pos, `${what} of ${len} bytes is implausibly long`);
    const b = need(p + lenBytes, len, what);
    let s: string;
    try {
      s = decoder.decode(b);
    } catch {
      fail(f, where, pos, `${what} is not valid UTF-8`);
    }
    return { code, pos, next: p + lenBytes + len, str: s };
  };
  switch (code) {
    case 0x80:
    case 0x71:
    case 0x68:
    case 0x4b:
      return { code, pos, next: p + 1, int: u(1, "a 1-byte argument") };
    case 0x72:
    case 0x6a:
      return { code, pos, next: p + 4, int: u(4, "a 4-byte argument") };
    case 0x4d:
      return { code, pos, next: p + 2, int: u(2, "a 2-byte argument") };
    case 0x4a: {
      const b = need(p, 4, "BININT");
      return { code, pos, next: p + 4, int: new DataView(b.buffer).getInt32(0, true) };
    }
    case 0x58:
      return str(4, utf8, "a BINUNICODE string");
    case 0x8c:
      return str(1, utf8, "a SHORT_BINUNICODE string");
    case 0x54: {
      const b = need(p, 4, "the length of a BINSTRING");
      if (new DataView(b.buffer).getInt32(0, true) < 0) fail(f, where, pos, "negative length");
      return str(4, latin1, "a BINSTRING");
    }
    case 0x55:
      return str(1, latin1, "a SHORT_BINSTRING");
    case 0x8a: {
      const n = u(1, "the length of LONG1");
      return { code, pos, next: p + 1 + n, bytes: need(p + 1, n, "LONG1") };
    }
    case 0x47:
      return { code, pos, next: p + 8, bytes: need(p, 8, "BINFLOAT") };
    case 0x95:
      need(p, 8, "FRAME");
      return { code, pos, next: p + 8 };
    case 0x63: {
      // "module\nname\n", both short ASCII lines.
      const lines: string[] = [];
      let q = p;
      for (let k = 0; k < 2; k++) {
        const chunk = need(q, Math.min(256, end - q), "a GLOBAL name");
        const nl = chunk.indexOf(0x0a);
        if (nl < 0) fail(f, where, pos, "GLOBAL name without a newline within 256 bytes");
        lines.push(latin1.decode(chunk.subarray(0, nl)));
        q += nl + 1;
      }
      return { code, pos, next: q, str: `${lines[0]}.${lines[1]}` };
    }
    default:
      return { code, pos, next: p };
  }
}

/** What {@linkcode scanPickle} found. */
export interface PickleScan {
  /** Byte after `STOP`. */
  end: number;
  /** Every global named, in order of appearance. */
  globals: string[];
  /** The protocol from `PROTO`, if present. */
  protocol?: number;
}

/**
 * Walks a pickle's opcodes from `start` to `STOP` without building anything, refusing any
 * unknown or disallowed opcode and any global outside {@linkcode ALLOWED_GLOBALS}.
 *
 * @param src The bytes.
 * @param start Offset of the first opcode.
 * @param end Offset the pickle may not pass.
 * @param where What the pickle is, for messages (e.g. `archive/data.pkl`).
 * @throws {CheckpointError} naming the file, offset and opcode or global.
 *
 * @example
 * ```ts
 * import { memorySource } from "./byte_source.ts";
 * import { scanPickle } from "./torch_pickle.ts";
 * const bytes = new TextEncoder().encode("\x80\x02cos\nsystem\n.");
 * try {
 *   scanPickle(memorySource(bytes, "evil.pkl"), 0, bytes.length, "data.pkl");
 * } catch (e) {
 *   console.log((e as Error).message); // ... global os.system is not allowed ...
 * }
 * ```
 */
export function scanPickle(src: ByteSource, start: number, end: number, where: string): PickleScan {
  const globals: string[] = [];
  let protocol: number | undefined;
  let pos = start;
  while (true) {
    const op = readOp(src, pos, end, where);
    if (op.code === 0x63) {
      if (!ALLOWED_GLOBALS.has(op.str!)) {
        fail(
          src.file,
          where,
          pos,
          `global ${op.str} is not allowed in a PyTorch checkpoint (only ` +
            `${[...ALLOWED_GLOBALS].join(", ")}); refused before anything was unpickled`,
        );
      }
      globals.push(op.str!);
    }
    if (op.code === 0x80) {
      if (pos !== start) fail(src.file, where, pos, "PROTO after the first opcode");
      if (op.int! < 2 || op.int! > 5) {
        fail(src.file, where, pos, `pickle protocol ${op.int} is not supported (2 expected)`);
      }
      protocol = op.int;
    }
    pos = op.next;
    if (op.code === 0x2e) return { end: pos, globals, protocol };
  }
}

/**
 * Short description of an unpickled value for messages (never recursing deeply).
 *
 * @example
 * ```ts
 * import { describePickleValue } from "./torch_pickle.ts";
 * console.log(describePickleValue(["storage", 3, null])); // ("storage", 3, None)
 * ```
 */
export function describePickleValue(v: unknown, depth = 0): string {
  if (v === null) return "None";
  if (typeof v === "string") return JSON.stringify(v.length > 40 ? v.slice(0, 40) + "..." : v);
  if (typeof v === "number" || typeof v === "bigint" || typeof v === "boolean") return String(v);
  if (v instanceof PickleGlobal) return v.name;
  if (Array.isArray(v)) {
    if (depth > 1) return "(...)";
    const shown = v.slice(0, 6).map((x) => describePickleValue(x, depth + 1));
    return `(${shown.join(", ")}${v.length > 6 ? ", ..." : ""})`;
  }
  if (v instanceof Map) return `dict of ${v.size}`;
  return typeof v === "object" ? (v.constructor?.name ?? "object") : typeof v;
}

function signedLE(bytes: Uint8Array): number | bigint {
  if (bytes.length === 0) return 0;
  let x = 0n;
  for (let i = bytes.length - 1; i >= 0; i--) x = (x << 8n) | BigInt(bytes[i]);
  if (bytes[bytes.length - 1] & 0x80) x -= 1n << BigInt(8 * bytes.length);
  return x >= BigInt(Number.MIN_SAFE_INTEGER) && x <= BigInt(Number.MAX_SAFE_INTEGER)
    ? Number(x)
    : x;
}

/** The result of {@linkcode unpickle}. */
export interface Unpickled {
  /** The value left by `STOP`. */
  value: unknown;
  /** Byte after `STOP`. */
  end: number;
  /** Globals the pickle named. */
  globals: string[];
}

/**
 * Scans (see {@linkcode scanPickle}) and then builds a pickle's value: dicts become `Map`s,
 * tuples and lists arrays, globals {@linkcode PickleGlobal}s; `BINPERSID` and `REDUCE` go to
 * the hooks. `BUILD` is accepted on dicts only (an `OrderedDict`'s `_metadata`, ignored).
 *
 * @throws {CheckpointError} naming the file, offset and what was wrong.
 *
 * @example
 * ```ts
 * import { memorySource } from "./byte_source.ts";
 * import { unpickle } from "./torch_pickle.ts";
 * // PROTO 2, EMPTY_DICT, BINUNICODE "a", BININT1 1, SETITEM, STOP
 * const b = new Uint8Array([0x80, 2, 0x7d, 0x58, 1, 0, 0, 0, 0x61, 0x4b, 1, 0x73, 0x2e]);
 * const r = unpickle(memorySource(b, "d.pkl"), 0, b.length, "d.pkl", {
 *   persistentLoad: () => null,
 *   reduce: () => null,
 * });
 * console.log(r.value); // Map(1) { "a" => 1 }
 * ```
 */
export function unpickle(
  src: ByteSource,
  start: number,
  end: number,
  where: string,
  hooks: UnpickleHooks,
): Unpickled {
  const scan = scanPickle(src, start, end, where);
  const file = src.file;
  const stack: unknown[] = [];
  const marks: number[] = [];
  const memo = new Map<number, unknown>();
  let pos = start;
  const pop = (op: Op): unknown => {
    if (stack.length === 0 || stack.length <= (marks.at(-1) ?? -1)) {
      fail(file, where, op.pos, `${NAMES[op.code]} on an empty stack`);
    }
    return stack.pop();
  };
  const popMark = (op: Op): unknown[] => {
    const m = marks.pop();
    if (m === undefined) fail(file, where, op.pos, `${NAMES[op.code]} without a MARK`);
    return stack.splice(m);
  };
  const top = (op: Op): unknown => {
    if (stack.length === 0 || stack.length <= (marks.at(-1) ?? -1)) {
      fail(file, where, op.pos, `${NAMES[op.code]} on an empty stack`);
    }
    return stack[stack.length - 1];
  };
  const key = (op: Op, k: unknown): string | number => {
    if (typeof k === "string" || typeof k === "number") return k;
    return fail(file, where, op.pos, `dict key ${describePickleValue(k)} is not a str or int`);
  };
  const asDict = (op: Op, d: unknown): Map<unknown, unknown> => {
    if (!(d instanceof Map)) {
      fail(file, where, op.pos, `${NAMES[op.code]} on ${describePickleValue(d)}, not a dict`);
    }
    return d;
  };
  const asList = (op: Op, l: unknown): unknown[] => {
    if (!Array.isArray(l) || Object.isFrozen(l)) {
      fail(file, where, op.pos, `${NAMES[op.code]} on ${describePickleValue(l)}, not a list`);
    }
    return l;
  };
  const tuple = (items: unknown[]) => Object.freeze(items) as unknown[];
  while (pos < scan.end) {
    const op = readOp(src, pos, end, where);
    pos = op.next;
    switch (op.code) {
      case 0x80:
      case 0x95:
        break;
      case 0x2e: {
        const value = pop(op);
        if (stack.length !== 0 || marks.length !== 0) {
          fail(file, where, op.pos, "STOP with values left on the stack");
        }
        return { value, end: scan.end, globals: scan.globals };
      }
      case 0x7d:
        stack.push(new Map());
        break;
      case 0x5d:
        stack.push([]);
        break;
      case 0x29:
        stack.push(tuple([]));
        break;
      case 0x28:
        marks.push(stack.length);
        break;
      case 0x30:
        pop(op);
        break;
      case 0x31:
        popMark(op);
        break;
      case 0x32:
        stack.push(top(op));
        break;
      case 0x71:
      case 0x72:
      case 0x94: {
        if (memo.size >= MAX_MEMO) fail(file, where, op.pos, "too many memo entries");
        memo.set(op.code === 0x94 ? memo.size : op.int!, top(op));
        break;
      }
      case 0x68:
      case 0x6a:
        if (!memo.has(op.int!)) fail(file, where, op.pos, `memo entry ${op.int} was never set`);
        stack.push(memo.get(op.int!));
        break;
      case 0x58:
      case 0x8c:
      case 0x54:
      case 0x55:
        stack.push(op.str!);
        break;
      case 0x63:
        stack.push(new PickleGlobal(op.str!));
        break;
      case 0x51:
        stack.push(hooks.persistentLoad(pop(op), op.pos));
        break;
      case 0x4a:
      case 0x4b:
      case 0x4d:
        stack.push(op.int!);
        break;
      case 0x8a:
        stack.push(signedLE(op.bytes!));
        break;
      case 0x47:
        stack.push(new DataView(op.bytes!.buffer).getFloat64(0, false));
        break;
      case 0x74:
        stack.push(tuple(popMark(op)));
        break;
      case 0x85:
      case 0x86:
      case 0x87: {
        const n = op.code - 0x84;
        const items: unknown[] = [];
        for (let i = 0; i < n; i++) items.unshift(pop(op));
        stack.push(tuple(items));
        break;
      }
      case 0x6c:
        stack.push(popMark(op));
        break;
      case 0x64: {
        const items = popMark(op);
        if (items.length % 2) fail(file, where, op.pos, "DICT with an odd number of items");
        const d = new Map();
        for (let i = 0; i < items.length; i += 2) d.set(key(op, items[i]), items[i + 1]);
        stack.push(d);
        break;
      }
      case 0x61: {
        const v = pop(op);
        asList(op, top(op)).push(v);
        break;
      }
      case 0x65: {
        const items = popMark(op);
        asList(op, top(op)).push(...items);
        break;
      }
      case 0x73: {
        const v = pop(op);
        const k = pop(op);
        asDict(op, top(op)).set(key(op, k), v);
        break;
      }
      case 0x75: {
        const items = popMark(op);
        if (items.length % 2) fail(file, where, op.pos, "SETITEMS with an odd number of items");
        const d = asDict(op, top(op));
        for (let i = 0; i < items.length; i += 2) d.set(key(op, items[i]), items[i + 1]);
        break;
      }
      case 0x4e:
        stack.push(null);
        break;
      case 0x88:
        stack.push(true);
        break;
      case 0x89:
        stack.push(false);
        break;
      case 0x52: {
        const args = pop(op);
        const fn = pop(op);
        if (!(fn instanceof PickleGlobal)) {
          fail(file, where, op.pos, `REDUCE of ${describePickleValue(fn)}, not a global`);
        }
        if (!Array.isArray(args) || !Object.isFrozen(args)) {
          fail(file, where, op.pos, `REDUCE of ${fn.name} with arguments that are not a tuple`);
        }
        stack.push(hooks.reduce(fn.name, args, op.pos));
        break;
      }
      case 0x62: {
        pop(op); // the state: only an OrderedDict's attributes (_metadata), not needed
        asDict(op, top(op));
        break;
      }
      default:
        fail(file, where, op.pos, `opcode ${NAMES[op.code]} is not handled`);
    }
  }
  return fail(file, where, pos, "the pickle ends without STOP");
}
