/**
 * The paged KV kernels (`kernels/attention/paged.ts`, `kv_write.wgsl`) against their CPU
 * references on random awkward sizes: shuffled page ids (a slot's pages are not
 * contiguous), ragged positions per slot, query rows out of slot order, vec4 and scalar
 * head sizes.
 */
import { assertEquals, assertLess } from "@std/assert";
import {
  kvWriteReference,
  pagedAttentionReference,
  type PagedLayoutReference,
} from "../kernels/attention/reference.ts";
import { createPagedAttention, pagedAttentionWgsl } from "../kernels/attention/paged.ts";
import { intIn } from "./helpers.ts";
import {
  GPU_TEST,
  maxAbsDiff,
  poisoned,
  randomF32,
  readF32,
  recorder,
  rng,
  testGpu,
  upload,
} from "./webgpu_helpers.ts";

Deno.test("paged attention WGSL: vec4 registers for head sizes divisible by 4, scalars else", () => {
  assertEquals(pagedAttentionWgsl(12).includes("array<vec4<f32>>"), true);
  assertEquals(pagedAttentionWgsl(7).includes("array<vec4<f32>>"), false);
});

Deno.test({
  name: "paged KV write and paged attention match their CPU references",
  ...GPU_TEST,
  fn: async () => {
    const gpu = await testGpu();
    if (!gpu) return;
    for (
      const [heads, hd, capacity, pageSize, seed] of [
        [3, 12, 4, 5, 1],
        [2, 7, 3, 3, 2],
        [5, 8, 2, 16, 3],
        [2, 64, 3, 16, 4], // OPT's head size
      ] as [number, number, number, number, number][]
    ) {
      const r = rng(seed);
      const d = heads * hd;
      const maxPages = 6;
      // each slot's filled prefix before the call, and the tokens the call runs per slot
      const before = Array.from({ length: capacity }, () => intIn(r, 0, pageSize * 3));
      const adds = before.map((b) => intIn(r, 0, Math.min(4, maxPages * pageSize - b)));
      const totalPages = capacity * maxPages;
      const ids = Array.from({ length: totalPages }, (_, i) => i);
      for (let i = ids.length - 1; i > 0; i--) {
        const k = intIn(r, 0, i);
        [ids[i], ids[k]] = [ids[k], ids[i]];
      }
      const table = new Uint32Array(ids); // slot s's pages: ids[s * maxPages ..]
      // the call's tokens: slots interleaved, positions ascending within a slot
      const slot: number[] = [], pos: number[] = [];
      const next = [...before];
      while (slot.length < adds.reduce((a, b) => a + b, 0)) {
        const s = intIn(r, 0, capacity - 1);
        if (next[s] < before[s] + adds[s]) {
          slot.push(s);
          pos.push(next[s]++);
        }
      }
      // a layer runs a subset of the tokens (in token order)
      const rows = slot.map((_, t) => t).filter(() => r() < 0.8);
      const m = rows.length;
      const layout: PagedLayoutReference = { rows, slot, pos, table, pageSize, maxPages };
      const poolRows = totalPages * pageSize;
      // the pools hold the earlier positions; the write adds the call's
      const kpool = randomF32(poolRows * d, seed + 10, 1.5);
      const vpool = randomF32(poolRows * d, seed + 20, 1);
      const kin = randomF32(m * d, seed + 30, 1.5);
      const vin = randomF32(m * d, seed + 40, 1);
      const q = randomF32(m * d, seed + 50, 2);
      const kb = upload(gpu, kpool), vb = upload(gpu, vpool);
      const out = poisoned(gpu, m * d);
      const paged = await createPagedAttention(gpu, hd);
      const gpuLayout = {
        rows: upload(gpu, new Uint32Array(rows)),
        slot: upload(gpu, new Uint32Array(slot)),
        pos: upload(gpu, new Uint32Array(pos)),
        table: upload(gpu, table),
        kpool: kb,
        vpool: vb,
        pageSize,
        maxPages,
      };
      const rec = recorder(gpu);
      rec.begin();
      paged.write(rec, { ...gpuLayout, kin: upload(gpu, kin), vin: upload(gpu, vin), m, d });
      paged.attend(rec, { ...gpuLayout, q: upload(gpu, q), out, m, d, heads });
      gpu.device.queue.submit([rec.finish()]);
      kvWriteReference(kin, vin, kpool, vpool, d, layout);
      const want = pagedAttentionReference(q, kpool, vpool, d, heads, layout);
      const gotK = await readF32(gpu, kb, poolRows * d);
      const gotV = await readF32(gpu, vb, poolRows * d);
      const got = await readF32(gpu, out, m * d);
      assertEquals(maxAbsDiff(gotK, kpool), 0, "keys land in their pages");
      assertEquals(maxAbsDiff(gotV, vpool), 0, "values land in their pages");
      const err = maxAbsDiff(got, want);
      console.log(
        `paged attention heads=${heads} hd=${hd} slots=${capacity} page=${pageSize} ` +
          `rows=${m} positions ${pos.join(",")}: max |diff| ${err.toExponential(2)}`,
      );
      assertLess(err, 1e-5);
    }
  },
});
