/**
 * Tests of `kernels/matmul`: every variant against the CPU reference `linear` on random
 * inputs of awkward sizes (F16/F32/BF16 weights, bias or not, ReLU, residual, accumulate,
 * offsets, poisoned outputs and guard zones), the weight/row split paths under small
 * artificial limits, many encodes in one submission, and clear errors.
 */
import { assert, assertEquals, assertLess, assertRejects, assertThrows } from "@std/assert";
import { layerNorm as cpuLayerNorm } from "../kernels/layernorm/reference.ts";
import { linear as cpuLinear } from "../kernels/matmul/reference.ts";
import type { DType, Tensor } from "../model/types.ts";
import {
  autoVariant,
  createMatmulKernels,
  type DeviceLinear,
  MATMUL_VARIANTS,
  type MatmulKernels,
} from "../kernels/matmul/mod.ts";
import { compilePipeline } from "../kernels/matmul/common.ts";
import { halfToFloat } from "../kernels/matmul/host.ts";
import { rng as uniform } from "./helpers.ts";

const adapter = await navigator.gpu.requestAdapter();
if (!adapter) {
  throw new Error(
    "no WebGPU adapter: install a Vulkan driver (apt-get install libvulkan1 mesa-vulkan-drivers)",
  );
}
const device = await adapter.requestDevice({
  requiredLimits: {
    maxStorageBufferBindingSize: Number(adapter.limits.maxStorageBufferBindingSize),
    maxBufferSize: Number(adapter.limits.maxBufferSize),
  },
});
// Destroyed when this module ends (see webgpu_helpers.ts).
globalThis.addEventListener("unload", () => device.destroy());
device.addEventListener("uncapturederror", (e) => {
  console.error("uncaptured WebGPU error:", (e as GPUUncapturedErrorEvent).error.message);
});

/** Deterministic values in [-1, 1) from the shared seeded generator (tests/helpers.ts). */
function rng(seed: number): () => number {
  const r = uniform(seed);
  return () => r() * 2 - 1;
}

function floatToHalf(v: number): number {
  const f = new Float32Array([v]);
  const u = new Uint32Array(f.buffer)[0];
  const s = (u >>> 16) & 0x8000;
  const e = ((u >>> 23) & 0xff) - 127 + 15;
  const m = u & 0x7fffff;
  if (e <= 0) return s; // flush tiny values (not produced here)
  if (e >= 31) return s | 0x7c00;
  let h = s | (e << 10) | (m >> 13);
  if ((m & 0x1fff) > 0x1000 || ((m & 0x1fff) === 0x1000 && (h & 1))) h++;
  return h;
}

/** A random tensor of `dtype` and the exact f32 values it holds. */
function randomTensor(
  name: string,
  dtype: DType,
  shape: number[],
  next: () => number,
): { tensor: Tensor; values: Float32Array } {
  const count = shape.reduce((a, b) => a * b, 1);
  const values = new Float32Array(count);
  let bytes: Uint8Array;
  if (dtype === "F32") {
    for (let i = 0; i < count; i++) values[i] = next();
    bytes = new Uint8Array(values.slice().buffer);
  } else if (dtype === "F16") {
    const h = new Uint16Array(count);
    for (let i = 0; i < count; i++) {
      h[i] = floatToHalf(next());
      values[i] = halfToFloat(h[i]);
    }
    bytes = new Uint8Array(h.buffer);
  } else {
    const h = new Uint16Array(count);
    const u = new Uint32Array(values.buffer);
    for (let i = 0; i < count; i++) {
      values[i] = next();
      h[i] = u[i] >>> 16;
      u[i] = h[i] << 16;
    }
    bytes = new Uint8Array(h.buffer);
  }
  return { tensor: { name, dtype, shape, bytes: () => bytes }, values };
}

const POISON = NaN;
const GUARD = Math.fround(1e30);

interface Case {
  m: number;
  k: number;
  n: number;
  dtype: DType;
  bias: boolean;
  mode: "plain" | "relu" | "residual" | "accumulate";
  xOffset: number;
  yOffset: number;
}

interface Prepared {
  c: Case;
  lin: DeviceLinear;
  x: GPUBuffer;
  y: GPUBuffer;
  r?: GPUBuffer;
  expect: Float32Array;
}

function storageBuffer(data: Float32Array<ArrayBuffer>, label: string): GPUBuffer {
  const b = device.createBuffer({
    label,
    size: Math.max(16, data.byteLength),
    usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST | GPUBufferUsage.COPY_SRC,
  });
  device.queue.writeBuffer(b, 0, data);
  return b;
}

/** Uploads a case, encodes it, and returns what to compare. */
function prepare(mm: MatmulKernels, enc: GPUCommandEncoder, c: Case, seed: number): Prepared {
  const next = rng(seed);
  const w = randomTensor("w", c.dtype, [c.n, c.k], next);
  const b = c.bias ? randomTensor("b", c.dtype, [c.n], next) : undefined;
  const lin = mm.uploadLinear(w.tensor, b?.tensor, `case${seed}`);
  const xv = new Float32Array(c.m * c.k).map(() => next());
  const xAll = new Float32Array(c.xOffset / 4 + xv.length + 7).fill(GUARD);
  xAll.set(xv, c.xOffset / 4);
  const rv = new Float32Array(c.m * c.n).map(() => next());
  const expect = cpuLinear(xv, w.values, b?.values, c.m, c.k, c.n);
  if (c.mode === "relu") {
    for (let i = 0; i < expect.length; i++) expect[i] = Math.max(0, expect[i]);
  }
  if (c.mode === "residual" || c.mode === "accumulate") {
    for (let i = 0; i < expect.length; i++) expect[i] += rv[i];
  }
  // y: guard zone, [M, N] region (poisoned, or the residual when accumulating), guard zone.
  const yAll = new Float32Array(c.yOffset / 4 + c.m * c.n + 64).fill(GUARD);
  yAll.fill(POISON, c.yOffset / 4, c.yOffset / 4 + c.m * c.n);
  if (c.mode === "accumulate") yAll.set(rv, c.yOffset / 4);
  const x = storageBuffer(xAll, "x");
  const y = storageBuffer(yAll, "y");
  const r = c.mode === "residual" ? storageBuffer(rv, "r") : undefined;
  mm.encode(enc, {
    x,
    xOffset: c.xOffset,
    y,
    yOffset: c.yOffset,
    m: c.m,
    linear: lin,
    relu: c.mode === "relu",
    residual: c.mode === "accumulate" ? y : r,
    residualOffset: c.mode === "accumulate" ? c.yOffset : 0,
  });
  return { c, lin, x, y, r, expect };
}

async function readBack(buf: GPUBuffer): Promise<Float32Array> {
  const staging = device.createBuffer({
    size: buf.size,
    usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
  });
  const enc = device.createCommandEncoder();
  enc.copyBufferToBuffer(buf, 0, staging, 0, buf.size);
  device.queue.submit([enc.finish()]);
  await staging.mapAsync(GPUMapMode.READ);
  const out = new Float32Array(staging.getMappedRange().slice(0));
  staging.destroy();
  return out;
}

/** Checks a prepared case: max |diff| / max |expect| < tol, guards untouched. */
async function check(p: Prepared, variant: string, tol = 1e-5): Promise<number> {
  const all = await readBack(p.y);
  const o = p.c.yOffset / 4;
  for (let i = 0; i < o; i++) {
    assertEquals(all[i], GUARD, `guard before Y overwritten at ${i}`);
  }
  for (let i = o + p.expect.length; i < all.length; i++) {
    assertEquals(all[i], GUARD, `guard after Y overwritten at ${i}`);
  }
  let maxDiff = 0, maxAbs = 0;
  for (let i = 0; i < p.expect.length; i++) {
    const d = Math.abs(all[o + i] - p.expect[i]);
    if (!(d <= maxDiff)) maxDiff = Number.isNaN(d) ? Infinity : Math.max(maxDiff, d);
    maxAbs = Math.max(maxAbs, Math.abs(p.expect[i]));
  }
  const rel = maxDiff / Math.max(maxAbs, 1e-30);
  const { m, k, n, dtype, bias, mode, xOffset, yOffset } = p.c;
  const what = `${variant} M=${m} K=${k} N=${n} ${dtype} bias=${bias} ${mode} xOff=${xOffset} ` +
    `yOff=${yOffset}`;
  assertLess(rel, tol, `${what}: relative max error ${rel}`);
  return rel;
}

function destroyAll(ps: Prepared[]): void {
  for (const p of ps) {
    p.lin.destroy();
    p.x.destroy();
    p.y.destroy();
    p.r?.destroy();
  }
}

const MS = [1, 2, 3, 6, 8, 17, 33];
const KS = [5, 64, 77, 768];
const NS = [1, 7, 50, 300];
const DTYPES: DType[] = ["F16", "F32", "BF16"];
const MODES: Case["mode"][] = ["plain", "relu", "residual", "accumulate"];

function awkwardCases(): Case[] {
  const cases: Case[] = [];
  let i = 0;
  for (const m of MS) {
    for (const k of KS) {
      for (const n of NS) {
        cases.push({
          m,
          k,
          n,
          dtype: DTYPES[i % 3],
          bias: i % 2 === 0,
          mode: MODES[(i >> 1) % 4],
          xOffset: (i % 3) * 256,
          yOffset: (i % 5) * 4 * 3,
        });
        i++;
      }
    }
  }
  return cases;
}

async function runCases(mm: MatmulKernels, cases: Case[], seed0: number): Promise<number> {
  const enc = device.createCommandEncoder();
  const ps = cases.map((c, i) => prepare(mm, enc, c, seed0 + i));
  device.queue.submit([enc.finish()]);
  let worst = 0;
  try {
    for (const p of ps) worst = Math.max(worst, await check(p, mm.variant));
  } finally {
    destroyAll(ps);
  }
  return worst;
}

for (const variant of MATMUL_VARIANTS) {
  Deno.test(`matmul ${variant}: awkward shapes, dtypes, bias/relu/residual/accumulate`, async () => {
    const mm = createMatmulKernels(device, { variant });
    await mm.ready();
    assertEquals(mm.variant, variant);
    const cases = awkwardCases();
    const worst = await runCases(mm, cases, 1000);
    console.log(
      `  ${variant}: ${cases.length} cases M∈{${MS}} K∈{${KS}} N∈{${NS}} F16/F32/BF16, ` +
        `max rel error ${worst.toExponential(2)}`,
    );
  });

  Deno.test(`matmul ${variant}: weight and row splits under small binding/texture limits`, async () => {
    const mm = createMatmulKernels(device, { variant, maxBindingBytes: 4096, maxTextureDim: 96 });
    // Kept to few row-group sizes: each new texture shape class costs llvmpipe a compile.
    const cases: Case[] = [
      {
        m: 33,
        k: 64,
        n: 800,
        dtype: "F16",
        bias: true,
        mode: "residual",
        xOffset: 256,
        yOffset: 8,
      },
      { m: 17, k: 64, n: 50, dtype: "F32", bias: true, mode: "accumulate", xOffset: 0, yOffset: 4 },
      { m: 2, k: 90, n: 61, dtype: "BF16", bias: false, mode: "relu", xOffset: 512, yOffset: 0 },
      { m: 2, k: 300, n: 420, dtype: "F32", bias: true, mode: "plain", xOffset: 0, yOffset: 0 },
    ];
    const worst = await runCases(mm, cases, 2000);
    console.log(
      `  ${variant}: split parts/rows/layers with maxBindingBytes=4096 maxTextureDim=96, ` +
        `max rel error ${worst.toExponential(2)}`,
    );
  });

  Deno.test(`matmul ${variant}: wide weights (power-of-two texture widths, unpadded)`, async () => {
    const mm = createMatmulKernels(device, { variant });
    // N = 4096 f16 gives a 512-texel texture, kept at a power of two (one row: one more
    // llvmpipe compile, the texture variant's only one for that width class)
    const cases: Case[] = [
      { m: 1, k: 77, n: 4096, dtype: "F16", bias: true, mode: "plain", xOffset: 0, yOffset: 0 },
    ];
    const worst = await runCases(mm, cases, 3000);
    console.log(`  ${variant}: N 4096, max rel error ${worst.toExponential(2)}`);
  });

  Deno.test(`matmul ${variant}: many encodes of one linear in one submission`, async () => {
    const mm = createMatmulKernels(device, { variant });
    const next = rng(7);
    const k = 96, n = 40;
    const w = randomTensor("w", "F16", [n, k], next);
    const b = randomTensor("b", "F32", [n], next);
    const lin = mm.uploadLinear(w.tensor, b.tensor, "shared");
    const enc = device.createCommandEncoder();
    const runs: { m: number; y: GPUBuffer; expect: Float32Array }[] = [];
    const x = storageBuffer(new Float32Array(9 * k).map(() => next()), "x");
    const xs = new Float32Array(9 * k);
    await readBack(x).then((v) => xs.set(v.subarray(0, 9 * k)));
    for (const m of [1, 9, 4, 1, 9, 2]) {
      const y = storageBuffer(new Float32Array(m * n).fill(POISON), "y");
      mm.encode(enc, { x, y, m, linear: lin });
      runs.push({ m, y, expect: cpuLinear(xs.subarray(0, m * k), w.values, b.values, m, k, n) });
    }
    device.queue.submit([enc.finish()]);
    for (const r of runs) {
      const got = await readBack(r.y);
      for (let i = 0; i < r.expect.length; i++) {
        assert(Math.abs(got[i] - r.expect[i]) < 1e-5, `m=${r.m} element ${i}: ${got[i]}`);
      }
      r.y.destroy();
    }
    console.log(`  ${variant}: 6 encodes (m = 1, 9, 4, 1, 9, 2) of one linear in one submission`);
    lin.destroy();
    x.destroy();
  });

  Deno.test(`matmul ${variant}: xUnchanged (q, k, v of one X) is exact, and ignored when X differs`, async () => {
    const mm = createMatmulKernels(device, { variant });
    const next = rng(11);
    const k = 77, n = 50;
    const ws = [0, 1, 2].map((i) => randomTensor(`w${i}`, i === 1 ? "F32" : "F16", [n, k], next));
    const b = randomTensor("b", "F32", [n], next);
    const lins = ws.map((w, i) => mm.uploadLinear(w.tensor, b.tensor, `qkv ${i}`));
    const data = [0, 1].map(() => new Float32Array(17 * k).map(() => next()));
    const xs = data.map((d, i) => storageBuffer(d, `x${i}`));
    const enc = device.createCommandEncoder();
    const runs: { what: string; y: GPUBuffer; expect: Float32Array }[] = [];
    // (x, m, linear, xUnchanged): a true promise, a changed m, a changed buffer, a repeat
    const steps: [number, number, number, boolean][] = [
      [0, 17, 0, false],
      [0, 17, 1, true],
      [0, 17, 2, true],
      [0, 5, 0, true], // m differs from the last repack: must repack
      [1, 5, 1, true], // another buffer: must repack
      [1, 5, 2, true],
      [0, 17, 0, true], // X 0 again after X 1: must repack
    ];
    for (const [xi, m, li, xUnchanged] of steps) {
      const y = storageBuffer(new Float32Array(m * n).fill(POISON), "y");
      mm.encode(enc, { x: xs[xi], y, m, linear: lins[li], xUnchanged });
      runs.push({
        what: `x${xi} m=${m} w${li} xUnchanged=${xUnchanged}`,
        y,
        expect: cpuLinear(data[xi].subarray(0, m * k), ws[li].values, b.values, m, k, n),
      });
    }
    device.queue.submit([enc.finish()]);
    for (const r of runs) {
      const got = await readBack(r.y);
      for (let i = 0; i < r.expect.length; i++) {
        assert(Math.abs(got[i] - r.expect[i]) < 1e-5, `${r.what} element ${i}: ${got[i]}`);
      }
      r.y.destroy();
    }
    lins.forEach((l) => l.destroy());
    xs.forEach((x) => x.destroy());
  });

  Deno.test(`matmul ${variant}: LayerNorm prologue equals layerNorm then linear`, async () => {
    const mm = createMatmulKernels(device, { variant });
    const next = rng(13);
    let worst = 0, cases = 0;
    for (const k of [5, 77, 768]) {
      for (const m of [1, 6, 17]) {
        const n = 50;
        const w = randomTensor("w", m === 6 ? "F32" : "F16", [n, k], next);
        const b = randomTensor("b", "F32", [n], next);
        const lin = mm.uploadLinear(w.tensor, b.tensor, "ln prologue");
        // rows with an offset mean and scale, as a residual stream has
        const xData = new Float32Array(m * k).map((_, i) => 3 * next() + (i % 7) - 2);
        const lw = new Float32Array(k).map(() => 1 + next()), lb = new Float32Array(k).map(next);
        const x = storageBuffer(xData, "x");
        const lnw = storageBuffer(lw, "ln w"), lnb = storageBuffer(lb, "ln b");
        const y = storageBuffer(new Float32Array(m * n).fill(POISON), "y");
        const y2 = storageBuffer(new Float32Array(m * n).fill(POISON), "y2");
        if (!mm.canNormalise(lin)) {
          const enc = device.createCommandEncoder();
          assertThrows(
            () => mm.encode(enc, { x, y, m, linear: lin, layerNorm: { w: lnw, b: lnb } }),
            Error,
            "no LayerNorm prologue",
          );
        } else {
          const enc = device.createCommandEncoder();
          const layerNorm = { w: lnw, b: lnb };
          mm.encode(enc, { x, y, m, linear: lin, layerNorm, relu: true });
          // a second product of the same normalised X reuses the repack (xUnchanged)
          mm.encode(enc, { x, y: y2, m, linear: lin, layerNorm, xUnchanged: true });
          device.queue.submit([enc.finish()]);
          const normed = cpuLayerNorm(xData, lw, lb, m, k);
          const want = cpuLinear(normed, w.values, b.values, m, k, n);
          const [got, got2] = [await readBack(y), await readBack(y2)];
          for (let i = 0; i < want.length; i++) {
            const e1 = Math.abs(got[i] - Math.max(want[i], 0)) / (1 + Math.abs(want[i]));
            const e2 = Math.abs(got2[i] - want[i]) / (1 + Math.abs(want[i]));
            assert(
              e1 < 1e-4 && e2 < 1e-4, // LN sums in another order than the CPU (as the validation)
              `K=${k} M=${m} element ${i}: ${got[i]} ${got2[i]} vs ${want[i]}`,
            );
            worst = Math.max(worst, e1, e2);
          }
          cases++;
        }
        [x, lnw, lnb, y, y2].forEach((bf) => bf.destroy());
        lin.destroy();
      }
    }
    console.log(
      `  ${variant}: LayerNorm prologue, ${cases} cases, max rel error ${worst.toExponential(2)}`,
    );
  });
}

Deno.test("matmul: a K too large for the texture variant falls back to a storage variant", async () => {
  const mm = createMatmulKernels(device, { variant: "v2_texture_uniform" });
  const c: Case = {
    m: 3,
    k: 16400,
    n: 5,
    dtype: "F16",
    bias: true,
    mode: "residual",
    xOffset: 0,
    yOffset: 0,
  };
  const enc = device.createCommandEncoder();
  const p = prepare(mm, enc, c, 3000);
  device.queue.submit([enc.finish()]);
  try {
    assertEquals(p.lin.variant, "v3_storage_tiled");
    const rel = await check(p, `${mm.variant} -> ${p.lin.variant}`);
    console.log(
      `  K=16400 > 16384 uploaded as ${p.lin.variant}, max rel error ${rel.toExponential(2)}`,
    );
  } finally {
    destroyAll([p]);
  }
});

Deno.test("matmul: auto picks a variant and the API rejects bad input clearly", () => {
  const mm = createMatmulKernels(device, { adapterInfo: adapter.info });
  assert(MATMUL_VARIANTS.includes(mm.variant), mm.variant);
  assertEquals(autoVariant({ isFallbackAdapter: true } as GPUAdapterInfo), "v2_texture_uniform");
  assertEquals(
    autoVariant({ isFallbackAdapter: false, description: "llvmpipe (LLVM 15)" } as GPUAdapterInfo),
    "v2_texture_uniform",
  );
  assertEquals(
    autoVariant({ isFallbackAdapter: false, description: "NVIDIA H200" } as GPUAdapterInfo),
    "v4_storage_gemv",
  );
  const next = rng(3);
  assertThrows(
    () => mm.uploadLinear(randomTensor("bad", "F32", [4], next).tensor),
    Error,
    "bad must have shape [N, K]",
  );
  const w = randomTensor("w", "F32", [4, 3], next).tensor;
  assertThrows(
    () => mm.uploadLinear(w, randomTensor("bb", "F32", [5], next).tensor),
    Error,
    "bias bb must have shape [4]",
  );
  const short: Tensor = {
    name: "short",
    dtype: "F16",
    shape: [2, 2],
    bytes: () => new Uint8Array(6),
  };
  assertThrows(() => mm.uploadLinear(short), Error, "short");
  const lin = mm.uploadLinear(w);
  const x = storageBuffer(new Float32Array(12), "x");
  const y = storageBuffer(new Float32Array(12), "y");
  const enc = device.createCommandEncoder();
  assertThrows(() => mm.encode(enc, { x, y: x, m: 1, linear: lin }), Error, "different buffers");
  assertThrows(() => mm.encode(enc, { x, y, m: 5, linear: lin }), Error, "x [5, 3] needs 60 bytes");
  assertThrows(() => mm.encode(enc, { x, y, m: 0, linear: lin }), Error, "m must be");
  assertThrows(
    () => mm.encode(enc, { x, y, m: 1, linear: lin, residual: y, residualOffset: 4 }),
    Error,
    "must sit at yOffset",
  );
  assertThrows(
    () => createMatmulKernels(device, { variant: "nope" }),
    Error,
    'unknown matmul variant "nope"',
  );
  lin.destroy();
  assertThrows(() => mm.encode(enc, { x, y, m: 1, linear: lin }), Error, "destroyed");
  x.destroy();
  y.destroy();
});

Deno.test("matmul v4_storage_gemv: workgroups per decode dispatch (>= N/8), tiled above 64 rows", () => {
  const mm = createMatmulKernels(device, { variant: "v4_storage_gemv" });
  const lin = mm.uploadLinear(randomTensor("w", "F16", [300, 77], rng(5)).tensor);
  try {
    assertEquals(mm.dispatchShape(lin, 1), { kernel: "gemv", dispatches: 1, workgroups: [75] });
    assertEquals(mm.dispatchShape(lin, 8)!.workgroups, [75]);
    assertEquals(mm.dispatchShape(lin, 33)!.workgroups, [75 * 5]); // chunks of 8 rows
    assertEquals(mm.dispatchShape(lin, 65), {
      kernel: "v4_storage_gemv",
      dispatches: 1,
      workgroups: [5 * 2],
    });
    for (const m of [1, 2, 5, 8, 17, 64]) {
      assert(mm.dispatchShape(lin, m)!.workgroups[0] >= 300 / 8, `m=${m}`);
    }
  } finally {
    lin.destroy();
  }
  const v2 = createMatmulKernels(device, { variant: "v2_texture_uniform" });
  const l2 = v2.uploadLinear(randomTensor("w", "F16", [30, 7], rng(6)).tensor);
  assertEquals(v2.dispatchShape(l2, 1), null);
  l2.destroy();
});

Deno.test("matmul: a WGSL compile error names the kernel", async () => {
  const bad = compilePipeline(device, "broken test kernel", "fn main( {");
  await assertRejects(() => bad.check, Error, 'WGSL kernel "broken test kernel" failed to compile');
  assert(bad.failure() !== null);
});
