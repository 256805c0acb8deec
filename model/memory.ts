/**
 * Memory accounting for loading a model: the bytes a backend will hold for a checkpoint's
 * weights ({@linkcode residentWeightBytes}), what the machine offers (`MemAvailable` of
 * `/proc/meminfo`, or the `SKIPDECODE_MEMORY_LIMIT` override) and the refusal before loading
 * ({@linkcode checkModelFits}), plus the process's peak resident memory (`ru_maxrss` of
 * `getrusage`, the `VmHWM` of `/proc/self/status`) that the scale benchmark reports.
 *
 * Deno asks for `--allow-all` to read `/proc/meminfo` or `/proc/self/status`, so the figures
 * come from `Deno.systemMemoryInfo()` (`--allow-sys=systemMemoryInfo`; its `available` is
 * `MemAvailable`) and `node:process`'s `resourceUsage().maxRSS` (no permission).
 *
 * @example
 * ```ts
 * import { checkModelFits, residentWeightBytes } from "./memory.ts";
 * import { loadWeights } from "./checkpoint.ts";
 * const w = await loadWeights("bundled/models/tiny-opt-e2e");
 * const need = residentWeightBytes(w, "cpu");
 * checkModelFits(need, { what: "tiny-opt-e2e on the CPU backend", limitBytes: 1 << 30 });
 * ```
 *
 * @module
 */
import process from "node:process";
import { type TensorKinds, treeEntries } from "./tree.ts";
import { DTYPE_SIZES } from "./dtype.ts";
import { shapeSize } from "./tensor.ts";
import type { OptWeights, Tensor } from "./types.ts";

/** Environment variable that caps the memory a model may use (bytes, or `512M`, `2.5G`, ...). */
export const MEMORY_LIMIT_ENV = "SKIPDECODE_MEMORY_LIMIT";

/** A model that does not fit, refused before any weight is read. */
export class ModelTooLargeError extends Error {
  /** Bytes the weights need. */
  readonly neededBytes: number;
  /** Bytes on offer. */
  readonly availableBytes: number;
  /** Builds the error; `message` is one line. */
  constructor(message: string, neededBytes: number, availableBytes: number) {
    super(message);
    this.name = "ModelTooLargeError";
    this.neededBytes = neededBytes;
    this.availableBytes = availableBytes;
  }
}

/**
 * Formats bytes as `1.23 GB` (decimal units, as `free -g` and disk tools print them).
 *
 * @example
 * ```ts
 * import { formatBytes } from "./memory.ts";
 * console.log(formatBytes(2_630_000_000)); // "2.63 GB"
 * ```
 */
export function formatBytes(n: number): string {
  if (n >= 1e9) return `${(n / 1e9).toFixed(2)} GB`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(1)} MB`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)} kB`;
  return `${n} B`;
}

/**
 * Parses a memory size: a whole number of bytes or a number with a `K`, `M`, `G` or `T`
 * suffix (powers of 1024, optional `B`/`iB`).
 *
 * @throws {RangeError} naming `what` when the text is not a size.
 *
 * @example
 * ```ts
 * import { parseMemorySize } from "./memory.ts";
 * console.log(parseMemorySize("1.5G", "x")); // 1610612736
 * ```
 */
export function parseMemorySize(text: string, what: string): number {
  const m = /^\s*([0-9]+(?:\.[0-9]+)?)\s*([kmgt]?)(i?b)?\s*$/i.exec(text);
  if (!m) {
    throw new RangeError(
      `${what} must be a size in bytes such as 8000000000, 512M or 2.5G, got ${
        JSON.stringify(text)
      }`,
    );
  }
  const scale = { "": 1, k: 2 ** 10, m: 2 ** 20, g: 2 ** 30, t: 2 ** 40 }[m[2].toLowerCase()]!;
  return Math.floor(Number(m[1]) * scale);
}

/**
 * Which backend's layout {@linkcode residentWeightBytes} counts: `cpu` (F16 kept as
 * halves), `cpu-f32` (everything widened to f32) or `webgpu`.
 */
export type WeightLayout = "cpu" | "cpu-f32" | "webgpu";

/**
 * Bytes a backend holds for the weights: F16 stays f16 and F32 f32 in matrices and tables,
 * BF16 matrices become f32, biases and LayerNorms are f32. A tied LM head is held once (on
 * WebGPU the embedding kernel reads its rows from the head's weights). Activations and the KV
 * cache are not included.
 *
 * @example
 * ```ts
 * import { residentWeightBytes } from "./memory.ts";
 * import { loadWeights } from "./checkpoint.ts";
 * const w = await loadWeights("bundled/models/tiny-opt-e2e");
 * console.log(residentWeightBytes(w, "cpu-f32") > residentWeightBytes(w, "cpu")); // true
 * ```
 */
export function residentWeightBytes(weights: OptWeights, layout: WeightLayout): number {
  const seen = new Set<Tensor>();
  let total = 0;
  const matrix = (t: Tensor) => {
    if (seen.has(t)) return;
    seen.add(t);
    const size = layout === "cpu-f32" || t.dtype === "BF16" ? 4 : DTYPE_SIZES[t.dtype];
    total += shapeSize(t.shape) * size;
  };
  const f32 = (t: Tensor) => (total += shapeSize(t.shape) * 4);
  for (const { site, value } of treeEntries<TensorKinds>(weights)) {
    const kind = site.decl.kind;
    if (kind === "table" || kind === "matrix") matrix(value as Tensor);
    else if (kind === "linear") {
      const l = value as TensorKinds["linear"];
      matrix(l.weight);
      if (l.bias) f32(l.bias);
    } else {
      const n = value as TensorKinds["layerNorm"];
      f32(n.weight);
      f32(n.bias);
    }
  }
  return total;
}

/**
 * `MemAvailable` of `/proc/meminfo` in bytes (through `Deno.systemMemoryInfo()`), or
 * `undefined` where it cannot be read (no `--allow-sys=systemMemoryInfo`).
 *
 * @example
 * ```ts
 * import { memAvailableBytes } from "./memory.ts";
 * console.log(memAvailableBytes()); // e.g. 23000000000
 * ```
 */
export function memAvailableBytes(): number | undefined {
  try {
    return Deno.systemMemoryInfo().available;
  } catch {
    return undefined;
  }
}

/**
 * Peak resident memory of this process in bytes (`ru_maxrss` of `getrusage`, which Linux
 * keeps equal to `VmHWM` of `/proc/self/status`).
 *
 * @example
 * ```ts
 * import { peakResidentBytes } from "./memory.ts";
 * console.log(peakResidentBytes() > 0); // true
 * ```
 */
export function peakResidentBytes(): number {
  return process.resourceUsage().maxRSS * 1024;
}

/** Options of {@linkcode checkModelFits}. */
export interface ModelFitOptions {
  /** What is being loaded, for the message (e.g. `"opt-6.7b on the webgpu backend"`). */
  what: string;
  /**
   * Bytes on offer; default: `SKIPDECODE_MEMORY_LIMIT` when set, else `MemAvailable` (no
   * check when neither can be read).
   */
  limitBytes?: number;
  /** Where `limitBytes` came from, for the message (default `"the given limit"`). */
  limitSource?: string;
}

/**
 * The memory on offer and where that figure comes from: `SKIPDECODE_MEMORY_LIMIT` when it
 * is set (and readable), else `MemAvailable`; `undefined` when neither can be read.
 *
 * @throws {RangeError} when `SKIPDECODE_MEMORY_LIMIT` is set but not a size.
 *
 * @example
 * ```ts
 * import { memoryOnOffer } from "./memory.ts";
 * const offer = memoryOnOffer();
 * if (offer) console.log(offer.bytes, offer.source);
 * ```
 */
export function memoryOnOffer(): { bytes: number; source: string } | undefined {
  let env: string | undefined;
  try {
    env = Deno.env.get(MEMORY_LIMIT_ENV);
  } catch {
    env = undefined; // no --allow-env for it: the variable cannot be set for us either
  }
  if (env !== undefined && env.trim() !== "") {
    return { bytes: parseMemorySize(env, MEMORY_LIMIT_ENV), source: MEMORY_LIMIT_ENV };
  }
  const avail = memAvailableBytes();
  return avail === undefined
    ? undefined
    : { bytes: avail, source: "MemAvailable of /proc/meminfo" };
}

/**
 * Refuses, before anything is read, a model whose weights need more bytes than are on
 * offer: one line with the bytes needed, the bytes available and where that figure came
 * from. Does nothing when no figure is available.
 *
 * @throws {ModelTooLargeError} when `neededBytes` exceeds the offer.
 * @throws {RangeError} when `SKIPDECODE_MEMORY_LIMIT` is set but not a size.
 *
 * @example
 * ```ts
 * import { checkModelFits, ModelTooLargeError } from "./memory.ts";
 * try {
 *   checkModelFits(2e9, { what: "a model", limitBytes: 1e9 });
 * } catch (e) {
 *   console.log(e instanceof ModelTooLargeError); // true
 * }
 * ```
 */
export function checkModelFits(neededBytes: number, options: ModelFitOptions): void {
  const offer = options.limitBytes !== undefined
    ? { bytes: options.limitBytes, source: options.limitSource ?? "the given limit" }
    : memoryOnOffer();
  if (!offer || neededBytes <= offer.bytes) return;
  throw new ModelTooLargeError(
    `${options.what} needs ${formatBytes(neededBytes)} (${neededBytes} bytes) of weights in ` +
      `memory but only ${formatBytes(offer.bytes)} (${offer.bytes} bytes) are available ` +
      `(${offer.source}); use a smaller model, or free memory`,
    neededBytes,
    offer.bytes,
  );
}
