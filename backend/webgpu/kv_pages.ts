/**
 * The paged KV memory of the per-row engine (`rows.ts`): per decoder layer, a pool of
 * fixed-size pages (`pageSize` positions x `d` elements, f32 or f16 (`elementBytes` 4 or 2),
 * keys and values in two GPU buffers)
 * and, per slot, a page table listing the pages that hold the slot's filled prefix at that
 * layer. A slot takes a page when its prefix at a layer grows past its last page, and gives
 * pages back on `truncate` and `release`. Why pages and not a slab per slot: a slot's
 * prefix length differs per layer (a plan that skips layer `l` from position 40 on holds 40
 * positions there, whatever its length), and slots come and go; pages size each (slot,
 * layer) by what it ran, rounded up to one page, with no compaction and no per-slot
 * worst-case reservation (a slab would reserve `maxLength` positions per slot and layer).
 *
 * The host keeps the tables (`[layers, capacity, maxPages]` u32, each layer's block
 * aligned for a range binding) and uploads them before each submission. A pool buffer grows
 * (doubling, copied on the GPU in the submission that needs it) and never shrinks: freed
 * pages are reused first. `bytesHeld` counts the pages slots hold (what the plans ran).
 *
 * @example
 * ```ts
 * import { KvPages } from "./kv_pages.ts";
 * import type { GpuContext } from "../../kernels/device.ts";
 * declare const gpu: GpuContext;
 * const pages = new KvPages(gpu, { layers: 12, capacity: 4, maxLength: 256, width: 128 });
 * pages.grow(0, 3, 20); // slot 0 holds 20 positions of layer 3: two pages of 16
 * console.log(pages.bytesHeld); // 2 pages * 16 positions * 128 floats * 4 bytes * 2 (K, V)
 * ```
 *
 * @module
 */
import { type GpuContext, GpuError } from "../../kernels/device.ts";

/** Positions per page. */
export const KV_PAGE_SIZE = 16;

/** Sizes of a {@linkcode KvPages}. */
export interface KvPagesShape {
  /** Decoder layers. */
  layers: number;
  /** Slots. */
  capacity: number;
  /** Positions one slot may reach. */
  maxLength: number;
  /** Floats per position (`d`). */
  width: number;
  /** Positions per page (default {@linkcode KV_PAGE_SIZE}). */
  pageSize?: number;
  /** Bytes per stored element: 4 (f32, the default) or 2 (f16 KV). */
  elementBytes?: number;
}

/** One layer's pool. */
interface Pool {
  k?: GPUBuffer;
  v?: GPUBuffer;
  /** Pages the buffers hold. */
  pages: number;
  /** Page ids handed out so far (the pool needs at least this many). */
  used: number;
  /** Freed page ids, reused first. */
  free: number[];
}

/**
 * Paged KV memory of one row batch (see the module documentation).
 *
 * @example
 * ```ts
 * import { KvPages } from "./kv_pages.ts";
 * import type { GpuContext } from "../../kernels/device.ts";
 * declare const gpu: GpuContext, encoder: GPUCommandEncoder;
 * const pages = new KvPages(gpu, { layers: 2, capacity: 1, maxLength: 64, width: 32 });
 * pages.grow(0, 1, 17); // two pages of layer 1 for slot 0
 * pages.ensure(encoder); // layer 1's pool gets GPU buffers in this submission
 * const { k, v } = pages.pools(1);
 * pages.shrink(0, 1, 0); // both pages back to the pool
 * ```
 */
export class KvPages {
  /** Positions per page. */
  readonly pageSize: number;
  /** Page-table entries per slot. */
  readonly maxPages: number;
  /** Table entries per layer block (a multiple of 64: 256-byte aligned ranges). */
  readonly layerStride: number;
  /** `[layers, layerStride]` u32 page tables (`[capacity, maxPages]` used per layer). */
  readonly table: Uint32Array<ArrayBuffer>;
  /** Bytes of the pages slots hold now. */
  bytesHeld = 0;
  #gpu: GpuContext;
  #shape: KvPagesShape;
  #pools: Pool[];
  /** `[slot][layer]` pages held, in position order. */
  #held: number[][][];
  #pageBytes: number;
  #retired: GPUBuffer[] = [];

  /** Empty pools (no GPU memory until a slot runs). */
  constructor(gpu: GpuContext, shape: KvPagesShape) {
    this.#gpu = gpu;
    this.#shape = shape;
    this.pageSize = shape.pageSize ?? KV_PAGE_SIZE;
    this.maxPages = Math.ceil(shape.maxLength / this.pageSize);
    this.layerStride = Math.ceil((shape.capacity * this.maxPages) / 64) * 64;
    this.table = new Uint32Array(shape.layers * this.layerStride);
    this.#pools = Array.from({ length: shape.layers }, () => ({ pages: 0, used: 0, free: [] }));
    this.#held = Array.from(
      { length: shape.capacity },
      () => Array.from({ length: shape.layers }, () => []),
    );
    // whole 4-byte words per page (f16 pages of an odd width round up)
    this.#pageBytes = Math.ceil((this.pageSize * shape.width * (shape.elementBytes ?? 4)) / 4) * 4;
  }

  /** Pages slot `slot` holds at layer `l`. */
  held(slot: number, l: number): number {
    return this.#held[slot][l].length;
  }

  /**
   * Pages layer `l`'s pool would need if the slots' prefixes at `l` grew to `lengths`
   * (slot -> positions): for the size check before a call changes anything.
   */
  neededPages(l: number, lengths: ReadonlyMap<number, number>): number {
    const pool = this.#pools[l];
    let extra = 0;
    for (const [slot, n] of lengths) {
      extra += Math.max(0, Math.ceil(n / this.pageSize) - this.#held[slot][l].length);
    }
    return pool.used + Math.max(0, extra - pool.free.length);
  }

  /**
   * Throws a {@linkcode GpuError} naming the layer when `pages` pages of its pool would not
   * fit one storage binding.
   */
  checkFits(l: number, pages: number): void {
    const bytes = pages * this.#pageBytes;
    if (bytes > this.#gpu.limits.maxStorageBufferBindingSize) {
      throw new GpuError(
        `layer ${l} KV pool of ${pages} pages (${bytes} bytes) exceeds the ` +
          `${this.#gpu.limits.maxStorageBufferBindingSize}-byte storage binding of ` +
          `"${this.#gpu.info.description}"`,
        "too-large",
      );
    }
  }

  /** Makes slot `slot` hold pages for `length` positions at layer `l` (taking pages). */
  grow(slot: number, l: number, length: number): void {
    const held = this.#held[slot][l];
    const pool = this.#pools[l];
    while (held.length * this.pageSize < length) {
      const page = pool.free.pop() ?? pool.used++;
      this.table[l * this.layerStride + slot * this.maxPages + held.length] = page;
      held.push(page);
      this.bytesHeld += 2 * this.#pageBytes;
    }
  }

  /** Gives back slot `slot`'s pages at layer `l` beyond the first `length` positions. */
  shrink(slot: number, l: number, length: number): void {
    const held = this.#held[slot][l];
    const keep = Math.ceil(length / this.pageSize);
    while (held.length > keep) {
      this.#pools[l].free.push(held.pop()!);
      this.bytesHeld -= 2 * this.#pageBytes;
    }
  }

  /**
   * Records, at the start of `encoder`, the growth of every pool whose buffers hold fewer
   * pages than handed out (a new buffer of twice the pages or more, the old contents
   * copied); the old buffers are destroyed by {@linkcode afterSubmit}.
   */
  ensure(encoder: GPUCommandEncoder): void {
    const device = this.#gpu.device;
    this.#pools.forEach((pool, l) => {
      if (pool.used <= pool.pages) return;
      const pages = Math.max(pool.used, 2 * pool.pages, 1);
      this.checkFits(l, pages);
      const make = (what: string) =>
        device.createBuffer({
          label: `layer ${l} ${what} pages [${pages} x ${this.pageSize}, ${this.#shape.width}]`,
          size: pages * this.#pageBytes,
          usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST,
        });
      const k = make("key"), v = make("value");
      if (pool.k && pool.v) {
        encoder.copyBufferToBuffer(pool.k, 0, k, 0, pool.pages * this.#pageBytes);
        encoder.copyBufferToBuffer(pool.v, 0, v, 0, pool.pages * this.#pageBytes);
        this.#retired.push(pool.k, pool.v);
      }
      pool.k = k;
      pool.v = v;
      pool.pages = pages;
    });
  }

  /** Layer `l`'s key and value pools (after {@linkcode ensure}). */
  pools(l: number): { k: GPUBuffer; v: GPUBuffer } {
    const pool = this.#pools[l];
    if (!pool.k || !pool.v) throw new Error(`layer ${l} has no KV pages yet`);
    return { k: pool.k, v: pool.v };
  }

  /** GPU bytes of the pools (their high-water capacity). */
  get bytesAllocated(): number {
    return this.#pools.reduce((s, p) => s + 2 * p.pages * this.#pageBytes, 0);
  }

  /** Destroys the buffers replaced by growth (call after the submission that copied them). */
  afterSubmit(): void {
    for (const b of this.#retired) b.destroy();
    this.#retired = [];
  }

  /** Frees every GPU buffer. */
  destroy(): void {
    this.afterSubmit();
    for (const p of this.#pools) {
      p.k?.destroy();
      p.v?.destroy();
      p.k = p.v = undefined;
      p.pages = 0;
    }
  }
}
