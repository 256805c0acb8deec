/**
 * GPU time per kernel family from timestamp queries (`timestamp-query` feature). Each timed
 * pass writes a begin and an end timestamp; foreign encodes (matmuls, which open their own
 * passes) are bracketed by two empty marker passes. After a submission the query set is
 * resolved into a buffer the caller reads back with its other results, and
 * {@linkcode TimestampProfiler.accumulate} adds the durations to per-family totals.
 *
 * @example
 * ```ts
 * import { requestGpu } from "./device.ts";
 * import { TimestampProfiler } from "./profiler.ts";
 * const gpu = await requestGpu();
 * if (gpu.features.has("timestamp-query")) {
 *   const prof = new TimestampProfiler(gpu, 256);
 *   console.log(prof.totals()); // {}
 * }
 * ```
 *
 * @module
 */
import { type GpuContext, GpuError } from "./device.ts";

/** Time and pass count of one kernel family. */
export interface FamilyTime {
  /** Milliseconds of GPU time. */
  ms: number;
  /** Timed passes (dispatches, or bracketed groups). */
  count: number;
}

/** Collects timestamp pairs per family over submissions. */
export class TimestampProfiler {
  #ctx: GpuContext;
  #capacity: number;
  #querySet: GPUQuerySet;
  #resolve: GPUBuffer;
  #families: string[] = [];
  #totals = new Map<string, Map<string, FamilyTime>>();

  /**
   * Makes a profiler holding up to `capacity` timed passes per submission.
   *
   * @throws {GpuError} when the device lacks `timestamp-query`.
   */
  constructor(ctx: GpuContext, capacity = 4096) {
    if (!ctx.features.has("timestamp-query")) {
      throw new GpuError(
        `profiling needs the "timestamp-query" feature, which "${ctx.info.description}" lacks`,
        "device",
      );
    }
    this.#ctx = ctx;
    this.#capacity = capacity;
    this.#querySet = ctx.device.createQuerySet({ type: "timestamp", count: capacity * 2 });
    this.#resolve = ctx.device.createBuffer({
      label: "timestamps",
      size: capacity * 16,
      usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC,
    });
  }

  /** Timed passes one submission may hold. */
  get capacity(): number {
    return this.#capacity;
  }

  /** Timed passes recorded since the last {@linkcode resolveInto}. */
  get pending(): number {
    return this.#families.length;
  }

  #slot(family: string): number {
    if (this.#families.length >= this.#capacity) {
      throw new GpuError(
        `profiler capacity ${this.#capacity} passes per submission exceeded; use smaller chunks`,
        "validation",
      );
    }
    this.#families.push(family);
    return this.#families.length - 1;
  }

  /** Timestamp writes for one timed pass of `family`. */
  pass(family: string): GPUComputePassTimestampWrites {
    const i = this.#slot(family);
    return {
      querySet: this.#querySet,
      beginningOfPassWriteIndex: 2 * i,
      endOfPassWriteIndex: 2 * i + 1,
    };
  }

  /** Timestamp writes of the begin and end marker passes around a foreign encode. */
  bracket(family: string): [GPUComputePassTimestampWrites, GPUComputePassTimestampWrites] {
    const i = this.#slot(family);
    return [
      { querySet: this.#querySet, beginningOfPassWriteIndex: 2 * i },
      { querySet: this.#querySet, endOfPassWriteIndex: 2 * i + 1 },
    ];
  }

  /**
   * Resolves this submission's queries and copies them (8 bytes each) into `dst` at
   * `offset`. Returns the byte count copied; pass the read bytes to {@linkcode accumulate}.
   */
  resolveInto(encoder: GPUCommandEncoder, dst: GPUBuffer, offset: number): number {
    const n = this.#families.length * 2;
    if (n === 0) return 0;
    encoder.resolveQuerySet(this.#querySet, 0, n, this.#resolve, 0);
    encoder.copyBufferToBuffer(this.#resolve, 0, dst, offset, n * 8);
    return n * 8;
  }

  /**
   * Families of the resolved passes, in order; call right after {@linkcode resolveInto},
   * which this resets.
   */
  takeFamilies(): string[] {
    return this.#families.splice(0);
  }

  /**
   * Adds the durations in `stamps` (u64 nanoseconds, begin/end pairs) to the totals of
   * `phase` (e.g. `"prefill"`, `"decode"`).
   */
  accumulate(families: readonly string[], stamps: BigUint64Array, phase = "all"): void {
    let totals = this.#totals.get(phase);
    if (!totals) this.#totals.set(phase, totals = new Map());
    for (let i = 0; i < families.length; i++) {
      const begin = stamps[2 * i], end = stamps[2 * i + 1];
      const ns = end > begin ? Number(end - begin) : 0;
      const t = totals.get(families[i]) ?? { ms: 0, count: 0 };
      t.ms += ns / 1e6;
      t.count++;
      totals.set(families[i], t);
    }
  }

  /** Per-family totals of one phase so far (empty when nothing was recorded). */
  totals(phase = "all"): Record<string, FamilyTime> {
    const totals = this.#totals.get(phase) ?? new Map<string, FamilyTime>();
    return Object.fromEntries([...totals].map(([k, v]) => [k, { ...v }]));
  }

  /** Clears the totals. */
  clear(): void {
    this.#totals.clear();
  }

  /** Frees the query set and buffer. */
  destroy(): void {
    this.#querySet.destroy();
    this.#resolve.destroy();
  }
}
