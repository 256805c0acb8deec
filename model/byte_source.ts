/**
 * Random-access byte sources for the PyTorch checkpoint reader: a file read by range (never
 * whole) or bytes in memory. Every read past the end is a {@linkcode CheckpointError}
 * naming the file and what was being read.
 *
 * @example
 * ```ts
 * import { memorySource } from "./byte_source.ts";
 * const src = memorySource(new Uint8Array([1, 2, 3]), "x.bin");
 * console.log(src.read(1, 2, "two bytes")); // Uint8Array [2, 3]
 * ```
 *
 * @module
 */
import { CheckpointError } from "./errors.ts";

/** Bytes that can be read by range. */
export interface ByteSource {
  /** The file name used in error messages. */
  readonly file: string;
  /** Total size in bytes. */
  readonly size: number;
  /**
   * Reads `length` bytes at `pos` (a fresh copy).
   *
   * @throws {CheckpointError} when the range passes the end, naming `what`.
   */
  read(pos: number, length: number, what: string): Uint8Array;
}

function pastEnd(file: string, pos: number, length: number, size: number, what: string): never {
  throw new CheckpointError(
    `${file} is truncated or corrupt: ${what} needs bytes ${pos}..${pos + length} but the ` +
      `file has ${size} bytes`,
    { file, kind: "format" },
  );
}

/**
 * A source over bytes in memory (tests, fuzzing).
 *
 * @example
 * ```ts
 * import { memorySource } from "./byte_source.ts";
 * console.log(memorySource(new Uint8Array(4), "m.bin").size); // 4
 * ```
 */
export function memorySource(bytes: Uint8Array, file: string): ByteSource {
  return {
    file,
    size: bytes.byteLength,
    read(pos, length, what) {
      if (!(pos >= 0 && length >= 0 && pos + length <= bytes.byteLength)) {
        pastEnd(file, pos, length, bytes.byteLength, what);
      }
      return bytes.slice(pos, pos + length);
    },
  };
}

/**
 * Reads `length` bytes at `pos` of a file, opening and closing it (no handle stays open).
 *
 * @throws {CheckpointError} `io` when the file cannot be read, `format` when it ends early.
 *
 * @example
 * ```ts
 * import { readFileRange } from "./byte_source.ts";
 * const head = readFileRange("../shared/fixtures/torch-bin/pre-ln-zip/pytorch_model.bin", 0, 4, "magic");
 * console.log(head); // Uint8Array [0x50, 0x4b, 3, 4]
 * ```
 */
export function readFileRange(file: string, pos: number, length: number, what: string): Uint8Array {
  let f: Deno.FsFile;
  try {
    f = Deno.openSync(file, { read: true });
  } catch (e) {
    throw new CheckpointError(`cannot open ${file} to read ${what}: ${(e as Error).message}`, {
      file,
      kind: e instanceof Deno.errors.NotFound ? "not-found" : "io",
      cause: e,
    });
  }
  try {
    return readAt(f, file, pos, length, what);
  } finally {
    f.close();
  }
}

function readAt(f: Deno.FsFile, file: string, pos: number, length: number, what: string) {
  const out = new Uint8Array(length);
  try {
    f.seekSync(pos, Deno.SeekMode.Start);
    let got = 0;
    while (got < length) {
      const n = f.readSync(out.subarray(got));
      if (n === null || n === 0) {
        throw new CheckpointError(
          `${file} is truncated: ${what} needs bytes ${pos}..${pos + length} but the file ends ` +
            `after ${pos + got} (was it changed after opening?)`,
          { file, kind: "format" },
        );
      }
      got += n;
    }
  } catch (e) {
    if (e instanceof CheckpointError) throw e;
    throw new CheckpointError(`cannot read ${what} from ${file}: ${(e as Error).message}`, {
      file,
      kind: "io",
      cause: e,
    });
  }
  return out;
}

/** A {@linkcode ByteSource} over an open file; `close()` releases it. */
export interface FileSource extends ByteSource {
  /** Closes the file. */
  close(): void;
}

/**
 * Opens a file as a {@linkcode ByteSource} with a small read-ahead window, so that parsing
 * many small fields (pickle opcodes, ZIP headers) costs few system calls.
 *
 * @throws {CheckpointError} `not-found` or `io` when the file cannot be opened.
 *
 * @example
 * ```ts
 * import { openFileSource } from "./byte_source.ts";
 * const src = openFileSource("../shared/fixtures/torch-bin/pre-ln-zip/pytorch_model.bin");
 * try {
 *   console.log(src.size);
 * } finally {
 *   src.close();
 * }
 * ```
 */
export function openFileSource(file: string, windowBytes = 1 << 16): FileSource {
  let f: Deno.FsFile;
  let size: number;
  try {
    f = Deno.openSync(file, { read: true });
  } catch (e) {
    const missing = e instanceof Deno.errors.NotFound;
    throw new CheckpointError(
      missing ? `missing weights file: ${file} does not exist` : `cannot open ${file}: ${e}`,
      { file, kind: missing ? "not-found" : "io", cause: e },
    );
  }
  try {
    const st = f.statSync();
    if (!st.isFile) {
      throw new CheckpointError(`${file} is not a regular file`, { file, kind: "format" });
    }
    size = st.size;
  } catch (e) {
    f.close();
    if (e instanceof CheckpointError) throw e;
    throw new CheckpointError(`cannot stat ${file}: ${e}`, { file, kind: "io", cause: e });
  }
  let winPos = 0;
  let win = new Uint8Array(0);
  return {
    file,
    size,
    read(pos, length, what) {
      if (!(Number.isSafeInteger(pos) && pos >= 0 && length >= 0 && pos + length <= size)) {
        pastEnd(file, pos, length, size, what);
      }
      if (pos >= winPos && pos + length <= winPos + win.byteLength) {
        return win.slice(pos - winPos, pos - winPos + length);
      }
      if (length > windowBytes) return readAt(f, file, pos, length, what);
      winPos = pos;
      win = readAt(f, file, pos, Math.min(windowBytes, size - pos), what);
      return win.slice(0, length);
    },
    close: () => f.close(),
  };
}
