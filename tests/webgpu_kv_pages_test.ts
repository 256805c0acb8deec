/**
 * The host side of the WebGPU paged KV (`backend/webgpu/kv_pages.ts`), no device needed:
 * pages taken as a slot's prefix grows, given back on shrink and reused first, page tables
 * filled in position order, the pool size check naming the layer.
 */
import { assertEquals, assertThrows } from "@std/assert";
import { KvPages } from "../backend/webgpu/kv_pages.ts";
import { type GpuContext, GpuError } from "../kernels/device.ts";

/** Just what KvPages reads of a context before it allocates (limits and the name). */
const fake = {
  limits: { maxStorageBufferBindingSize: 10 * 16 * 8 * 4 },
  info: { description: "fake adapter" },
} as unknown as GpuContext;

Deno.test("KvPages: pages follow each slot's prefix per layer, freed pages are reused", () => {
  const kv = new KvPages(fake, { layers: 2, capacity: 3, maxLength: 40, width: 8 });
  assertEquals(kv.maxPages, 3);
  assertEquals(kv.layerStride % 64, 0);
  const page = 2 * 16 * 8 * 4;
  kv.grow(0, 0, 20); // 2 pages at layer 0
  kv.grow(1, 0, 1); // 1 page
  kv.grow(1, 1, 33); // 3 pages at layer 1
  assertEquals([kv.held(0, 0), kv.held(1, 0), kv.held(1, 1)], [2, 1, 3]);
  assertEquals(kv.bytesHeld, 6 * page);
  const row = (l: number, s: number) =>
    Array.from(kv.table.subarray(l * kv.layerStride + s * 3, l * kv.layerStride + s * 3 + 3));
  assertEquals(row(0, 0).slice(0, 2), [0, 1]);
  assertEquals(row(0, 1)[0], 2);
  assertEquals(row(1, 1), [0, 1, 2]);
  kv.shrink(0, 0, 5); // keeps 1 page: page 1 is free again
  assertEquals(kv.held(0, 0), 1);
  assertEquals(kv.bytesHeld, 5 * page);
  // the pool needs no new page while a freed one can serve
  assertEquals(kv.neededPages(0, new Map([[2, 16]])), 3);
  assertEquals(kv.neededPages(0, new Map([[2, 17]])), 4);
  kv.grow(2, 0, 3);
  assertEquals(row(0, 2)[0], 1, "the freed page is reused first");
  kv.shrink(1, 1, 0);
  assertEquals(kv.held(1, 1), 0);
  assertEquals(kv.bytesHeld, 3 * page);
});

Deno.test("KvPages: a pool beyond one storage binding is refused naming the layer", () => {
  const kv = new KvPages(fake, { layers: 3, capacity: 1, maxLength: 16, width: 8 });
  kv.checkFits(2, 10); // exactly the limit
  const e = assertThrows(() => kv.checkFits(2, 11), GpuError, "layer 2 KV pool of 11 pages");
  assertEquals((e as GpuError).kind, "too-large");
});
