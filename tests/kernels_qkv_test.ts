/**
 * The fused q/k/v product (`kernels/matmul/qkv.ts`): the stacked weights (`fuseLinears`) and
 * the split GEMV against the CPU reference (`linear`, `layerNorm`) on random awkward sizes:
 * 1, 3 and 11 rows (one and two row chunks), K not a multiple of the 16-element padding, f32 and
 * f16 weights, with and without the LayerNorm prologue, keys and values written at a row
 * offset into f32 or f16 caches whose other rows must stay untouched.
 */
import { assert, assertEquals, assertLess, assertThrows } from "@std/assert";
import { createQkvKernel, fuseLinears } from "../kernels/matmul/qkv.ts";
import { createMatmulKernels } from "../kernels/matmul/mod.ts";
import { linear } from "../kernels/matmul/reference.ts";
import { layerNorm } from "../kernels/layernorm/reference.ts";
import type { Tensor } from "../model/types.ts";
import {
  GPU_TEST,
  randomF32,
  readBytes,
  readF32,
  recorder,
  relL2,
  testGpu,
  upload,
} from "./webgpu_helpers.ts";

function tensor(name: string, shape: number[], v: Float32Array, dtype: "F32" | "F16"): Tensor {
  const data = dtype === "F32" ? v : new Float16Array(v);
  return {
    name,
    dtype,
    shape,
    bytes: () => new Uint8Array(data.buffer, data.byteOffset, data.byteLength),
  };
}

Deno.test("fuseLinears: rows stacked in order, missing biases zero, mixed types as F32", () => {
  const q = tensor("q.weight", [2, 3], new Float32Array([1, 2, 3, 4, 5, 6]), "F16");
  const k = tensor("k.weight", [1, 3], new Float32Array([7, 8, 9]), "F16");
  const bq = tensor("q.bias", [2], new Float32Array([0.5, -1]), "F32");
  const f = fuseLinears("qk", [{ weight: q, bias: bq }, { weight: k }]);
  assertEquals([f.weight.shape, f.weight.dtype], [[3, 3], "F16"]);
  assertEquals([...new Float16Array(f.weight.bytes().slice().buffer)], [1, 2, 3, 4, 5, 6, 7, 8, 9]);
  assertEquals([...new Float32Array(f.bias!.bytes().slice().buffer)], [0.5, -1, 0]);
  const mixed = fuseLinears("m", [
    { weight: q },
    { weight: tensor("v.weight", [1, 3], new Float32Array([0.1, 0.2, 0.3]), "F32") },
  ]);
  assertEquals(mixed.weight.dtype, "F32");
  const w = new Float32Array(mixed.weight.bytes().slice().buffer);
  assertEquals([...w.slice(0, 6)], [1, 2, 3, 4, 5, 6]);
  assertEquals([...w.slice(6)], [...new Float32Array([0.1, 0.2, 0.3])]);
  assertThrows(
    () =>
      fuseLinears("bad", [{ weight: q }, {
        weight: tensor("x.weight", [1, 4], new Float32Array(4), "F32"),
      }]),
    Error,
    "x.weight",
  );
});

const CASES = [
  { m: 1, d: 20, K: 37, ln: false, dtype: "F32" as const, kv16: false },
  { m: 3, d: 24, K: 40, ln: true, dtype: "F16" as const, kv16: false },
  { m: 11, d: 12, K: 53, ln: true, dtype: "F32" as const, kv16: false },
  { m: 3, d: 20, K: 20, ln: true, dtype: "F16" as const, kv16: true },
  { m: 11, d: 28, K: 33, ln: false, dtype: "F32" as const, kv16: true },
];

Deno.test({
  name: "qkv split GEMV equals q, k and v from the CPU reference; cache rows outside untouched",
  ...GPU_TEST,
  fn: async () => {
    const gpu = await testGpu();
    if (!gpu) return;
    const mm = createMatmulKernels(gpu.device, {
      variant: "v4_storage_gemv",
      profile: gpu.profile,
    });
    let seed = 100;
    for (const c of CASES) {
      if (c.kv16 && !gpu.features.has("shader-f16")) {
        console.log(`m ${c.m}, d ${c.d}: f16 caches skipped, the adapter has no shader-f16`);
        continue;
      }
      const { m, d, K } = c;
      const W = [0, 1, 2].map(() => randomF32(d * K, seed++, 0.3));
      // f16 weights: the reference reads the same rounded values
      const Wr = W.map((w) => (c.dtype === "F16" ? new Float32Array(new Float16Array(w)) : w));
      const b = [0, 1, 2].map(() => randomF32(d, seed++, 0.5));
      const x = randomF32(m * K, seed++, 2);
      const lnw = randomF32(K, seed++, 1), lnb = randomF32(K, seed++, 0.2);
      const names = ["q", "k", "v"];
      const fused = fuseLinears(
        "qkv",
        W.map((w, i) => ({
          weight: tensor(`${names[i]}.weight`, [d, K], w, c.dtype),
          bias: tensor(`${names[i]}.bias`, [d], b[i], "F32"),
        })),
      );
      const lin = mm.uploadLinear(fused.weight, fused.bias, "qkv");
      const kernel = await createQkvKernel(gpu, { f16: c.dtype === "F16", ln: c.ln, kv16: c.kv16 });
      const slots = m + 7, row0 = 5; // keys and values land on rows 5 .. 5 + m - 1
      const eb = c.kv16 ? 2 : 4;
      const sentinel = 7.25;
      const cacheInit = c.kv16
        ? new Uint8Array(new Float16Array(slots * d).fill(sentinel).buffer)
        : new Float32Array(slots * d).fill(sentinel);
      const kBuf = upload(gpu, cacheInit), vBuf = upload(gpu, cacheInit);
      const xBuf = upload(gpu, x), qBuf = upload(gpu, new Float32Array(m * d).fill(sentinel));
      const lnBufs = c.ln ? { w: upload(gpu, lnw), b: upload(gpu, lnb) } : undefined;
      const rec = recorder(gpu);
      rec.begin();
      kernel.encode(rec, {
        x: xBuf,
        q: qBuf,
        k: kBuf,
        v: vBuf,
        kvOffset: row0 * d * eb,
        kv16: c.kv16,
        m,
        linear: lin,
        layerNorm: lnBufs,
      });
      gpu.device.queue.submit([rec.finish()]);
      const xr = c.ln ? layerNorm(x, lnw, lnb, m, K) : x;
      const ref = Wr.map((w, i) => linear(xr, w, b[i], m, K, d));
      const q = await readF32(gpu, qBuf, m * d);
      const read = async (buf: GPUBuffer) =>
        c.kv16
          ? new Float32Array(
            new Float16Array((await readBytes(gpu, buf, slots * d * 2)).slice(0)),
          )
          : await readF32(gpu, buf, slots * d);
      const kc = await read(kBuf), vc = await read(vBuf);
      const round = (a: Float32Array) => (c.kv16 ? new Float32Array(new Float16Array(a)) : a);
      const eq = relL2(q, ref[0]);
      const ek = relL2(kc.subarray(row0 * d, (row0 + m) * d), round(ref[1]));
      const ev = relL2(vc.subarray(row0 * d, (row0 + m) * d), round(ref[2]));
      console.log(
        `m ${m}, d ${d}, K ${K}, ${c.dtype} weights${c.ln ? ", LN" : ""}${
          c.kv16 ? ", f16 KV" : ""
        }: ` +
          `rel L2 q ${eq.toExponential(2)}, k ${ek.toExponential(2)}, v ${ev.toExponential(2)}`,
      );
      assertLess(eq, 1e-5);
      // f16 caches: the kernel's sum and the reference's may round to neighbouring halves
      assertLess(ek, c.kv16 ? 1e-3 : 1e-5);
      assertLess(ev, c.kv16 ? 1e-3 : 1e-5);
      for (const cache of [kc, vc]) {
        const outside = [...cache.subarray(0, row0 * d), ...cache.subarray((row0 + m) * d)];
        assert(
          outside.every((v) => v === sentinel),
          "a cache row outside the written ones changed",
        );
      }
      for (const buf of [kBuf, vBuf, xBuf, qBuf]) buf.destroy();
      lin.destroy();
    }
    // a kernel made for f32 caches refuses an f16 target, naming the linear
    const lin = mm.uploadLinear(
      fuseLinears(
        "qkv",
        [0, 1, 2].map((i) => ({
          weight: tensor(`w${i}`, [4, 8], randomF32(32, i, 1), "F32"),
        })),
      ).weight,
      undefined,
      "small qkv",
    );
    const k32 = await createQkvKernel(gpu, { f16: false, ln: false });
    const buf = upload(gpu, new Float32Array(64));
    const rec = recorder(gpu);
    rec.begin();
    assertThrows(
      () =>
        k32.encode(rec, {
          x: buf,
          q: buf,
          k: buf,
          v: buf,
          kvOffset: 0,
          m: 1,
          linear: lin,
          kv16: true,
        }),
      Error,
      "small qkv",
    );
    assertThrows(
      () => k32.encode(rec, { x: buf, q: buf, k: buf, v: buf, kvOffset: 0, m: 40, linear: lin }),
      Error,
      "buffer",
    );
    rec.finish();
    lin.destroy();
  },
});
