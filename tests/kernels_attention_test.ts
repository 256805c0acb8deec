import { assertLess, assertThrows } from "@std/assert";
import { attendOne } from "../kernels/attention/reference.ts";
import { createAttention } from "../kernels/attention/mod.ts";
import {
  GPU_TEST,
  maxAbsDiff,
  poisoned,
  randomF32,
  readF32,
  recorder,
  testGpu,
  upload,
} from "./webgpu_helpers.ts";

Deno.test({
  name: "attention kernel matches attendOne: prefill prefix, decode column, padding rows",
  ...GPU_TEST,
  fn: async () => {
    const gpu = await testGpu();
    if (!gpu) return;
    for (const [wg, lanes] of [[8, false], [64, false], [8, true]] as const) {
      // lanes: the one-invocation-per-(row, head) kernel for head sizes 24 and 80
      const att = await createAttention(gpu, 100, wg, { lanes, headDims: [24, 80] });
      for (
        const [B, heads, hd, slots, pads] of [
          [3, 3, 24, 11, [0, 3, 8]],
          [2, 2, 80, 70, [5, 0]],
          [1, 4, 7, 5, [0]],
        ] as [number, number, number, number, number[]][]
      ) {
        const d = heads * hd;
        const k = randomF32(slots * B * d, 1 + d, 1.5);
        const v = randomF32(slots * B * d, 2 + d, 1);
        const kb = upload(gpu, k), vb = upload(gpu, v), padb = upload(gpu, new Uint32Array(pads));
        const scale = 1 / Math.sqrt(hd);
        // prefill of columns 0..Q-1 and a decode of the last column
        for (const [colStart, columns] of [[0, slots - 1], [slots - 1, 1]]) {
          const m = columns * B;
          const q = randomF32(m * d, 3 + d + colStart, 2);
          const out = poisoned(gpu, m * d);
          const rec = recorder(gpu);
          rec.begin();
          att.encode(rec, {
            q: upload(gpu, q),
            k: kb,
            v: vb,
            pad: padb,
            out,
            m,
            d,
            heads,
            batch: B,
            colStart,
          });
          gpu.device.queue.submit([rec.finish()]);
          const got = await readF32(gpu, out);
          const want = new Float32Array(m * d);
          for (let r = 0; r < m; r++) {
            const b = r % B, c = colStart + Math.floor(r / B);
            const keys = new Float32Array(slots * d), vals = new Float32Array(slots * d);
            for (let t = 0; t < slots; t++) {
              keys.set(k.subarray((t * B + b) * d, (t * B + b + 1) * d), t * d);
              vals.set(v.subarray((t * B + b) * d, (t * B + b + 1) * d), t * d);
            }
            const qs = q.slice(r * d, r * d + d).map((x) => x * scale);
            attendOne(qs, keys, vals, c + 1, d, heads, (t) => t >= pads[b], want.subarray(r * d));
          }
          const err = maxAbsDiff(got, want);
          console.log(
            `attention (${
              att.kindFor(hd, d) === "vec4" ? `vec4, wg ${wg}` : att.kindFor(hd, d)
            }) B=${B} heads=${heads} hd=${hd} cols ${colStart}..${
              colStart + columns - 1
            } pads=${pads}: max |diff| ${err}`,
          );
          assertLess(err, 1e-5);
        }
      }
    }
  },
});

Deno.test({
  name: "attention kernel refuses columns beyond its key capacity and oversize heads",
  ...GPU_TEST,
  fn: async () => {
    const gpu = await testGpu();
    if (!gpu) return;
    const att = await createAttention(gpu, 64);
    const buf = poisoned(gpu, 16);
    const rec = recorder(gpu);
    rec.begin();
    const args = { q: buf, k: buf, v: buf, pad: buf, out: buf, m: 1, d: 8, heads: 2, batch: 1 };
    assertThrows(
      () => att.encode(rec, { ...args, colStart: 64 }),
      Error,
      "beyond the 64 keys",
    );
    assertThrows(
      () => att.encode(rec, { ...args, d: 600, heads: 2, colStart: 0 }),
      Error,
      "head size 300",
    );
  },
});
