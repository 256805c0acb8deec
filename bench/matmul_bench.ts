/**
 * Benchmark of the WebGPU matmul variants (`kernels/matmul`) against the plain TypeScript
 * `linear` of the CPU reference, on OPT-125m shapes: decode (M = 1, 8, 32) and prefill
 * (M = 512) for q/k/v/out (K=768, N=768), fc1 (768 -> 3072), fc2 (3072 -> 768), and the LM
 * head (768 -> 50272, M = 1, 8).
 *
 * GPU time: many repetitions encoded into one submission, one awaited readback (each await
 * costs ~11 ms here; the measured empty round trip is subtracted), best of three. The CPU
 * `linear` works row by row, so its rate does not depend on M; for large M it is timed on
 * the first 32 rows only (`cpu rows` in the JSON).
 *
 * Usage:
 *   deno run --allow-read --allow-write --allow-env [--allow-sys=loadavg] \
 *     bench/matmul_bench.ts [--quick]
 *     [--json FILE] [--variants v1_storage_naive,v2_texture_uniform] [--dtype F16,F32]
 *
 * @example
 * ```sh
 * deno run --allow-read --allow-write --allow-env bench/matmul_bench.ts --quick --json out/mm.json
 * ```
 * @module
 */
import { parseArgs } from "node:util";
import { linear as cpuLinear } from "../backend/cpu/ops.ts";
import type { DType } from "../model/types.ts";
import { autoVariant, createMatmulKernels, MATMUL_VARIANTS } from "../kernels/matmul/mod.ts";
import { seededRandom } from "../model/random.ts";

/** One measured row of the table. */
export interface BenchRow {
  /** Layer name (qkv/out, fc1, fc2, lm_head). */
  shape: string;
  /** Input width. */
  k: number;
  /** Output width. */
  n: number;
  /** Rows. */
  m: number;
  /** Weight dtype uploaded to the GPU. */
  dtype: DType;
  /** CPU reference GFLOP/s (f32). */
  cpu: number;
  /** Rows the CPU was timed on. */
  cpuRows: number;
  /** GFLOP/s per variant. */
  gpu: Record<string, number>;
}

const SHAPES = [
  { shape: "qkv/out", k: 768, n: 768, ms: [1, 8, 32, 512] },
  { shape: "fc1", k: 768, n: 3072, ms: [1, 8, 32, 512] },
  { shape: "fc2", k: 3072, n: 768, ms: [1, 8, 32, 512] },
  { shape: "lm_head", k: 768, n: 50272, ms: [1, 8] },
];

function rand(count: number, seed: number): Float32Array<ArrayBuffer> {
  const r = seededRandom(seed);
  const out = new Float32Array(count);
  for (let i = 0; i < count; i++) out[i] = (r() - 0.5) * 0.2;
  return out;
}

/** Rounds f32 values to f16 bit patterns (round to nearest even; no subnormal care). */
function toHalf(v: Float32Array): Uint16Array<ArrayBuffer> {
  const u = new Uint32Array(v.buffer, v.byteOffset, v.length);
  const out = new Uint16Array(v.length);
  for (let i = 0; i < v.length; i++) {
    const x = u[i];
    const s = (x >>> 16) & 0x8000;
    const e = ((x >>> 23) & 0xff) - 112;
    const m = x & 0x7fffff;
    if (e <= 0) out[i] = s;
    else if (e >= 31) out[i] = s | 0x7c00;
    else {
      let h = s | (e << 10) | (m >> 13);
      if ((m & 0x1fff) > 0x1000 || ((m & 0x1fff) === 0x1000 && (h & 1))) h++;
      out[i] = h;
    }
  }
  return out;
}

/**
 * Runs the matmul benchmark with command-line style arguments (`--quick`, `--json FILE`,
 * `--variants a,b`, `--dtype F16,F32`) and prints its table.
 *
 * @example
 * ```ts
 * await matmulBenchMain(["--quick"]);
 * ```
 */
export async function matmulBenchMain(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      quick: { type: "boolean", default: false },
      json: { type: "string" },
      variants: { type: "string" },
      dtype: { type: "string", default: "F16" },
    },
  });
  const quick = values.quick!;
  const targetMs = quick ? 60 : 300;
  const capMs = quick ? 400 : 2000; // one repetition longer than this is measured once

  const dtypes = values.dtype!.split(",") as DType[];
  for (const d of dtypes) {
    if (d !== "F16" && d !== "F32") throw new Error(`--dtype: F16 or F32, got ${d}`);
  }
  const adapter = await navigator.gpu.requestAdapter();
  if (!adapter) throw new Error("no WebGPU adapter (install mesa-vulkan-drivers for llvmpipe)");
  const device = await adapter.requestDevice({
    requiredLimits: {
      maxStorageBufferBindingSize: Number(adapter.limits.maxStorageBufferBindingSize),
      maxBufferSize: Number(adapter.limits.maxBufferSize),
    },
  });
  device.addEventListener("uncapturederror", (e) => {
    console.error("WebGPU error:", (e as GPUUncapturedErrorEvent).error.message);
  });
  const info = adapter.info;
  // --quick measures only the variant "auto" picks here, unless --variants names others.
  const variants = values.variants
    ? values.variants.split(",")
    : quick
    ? [autoVariant(info)]
    : [...MATMUL_VARIANTS];
  const load = () => {
    try {
      return Deno.loadavg().map((v) => v.toFixed(2)).join(" ");
    } catch {
      return "unknown (add --allow-sys=loadavg to record it)";
    }
  };
  const loadBefore = load();
  console.log(
    `adapter: ${info.description || info.vendor} (fallback: ${info.isFallbackAdapter}); ` +
      `${quick ? "quick" : "full"} run, ${new Date().toISOString()}, load average ${loadBefore}`,
  );

  const rb = device.createBuffer({
    size: 16,
    usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
  });
  const roundTrip = async (encode: (enc: GPUCommandEncoder) => void, src?: GPUBuffer) => {
    const enc = device.createCommandEncoder();
    encode(enc);
    if (src) enc.copyBufferToBuffer(src, 0, rb, 0, 16);
    const t0 = performance.now();
    device.queue.submit([enc.finish()]);
    await rb.mapAsync(GPUMapMode.READ);
    rb.unmap();
    return performance.now() - t0;
  };
  let latency = Infinity;
  for (let i = 0; i < 5; i++) latency = Math.min(latency, await roundTrip(() => {}));
  console.log(`empty submission round trip: ${latency.toFixed(1)} ms (subtracted)`);

  const mms = new Map(variants.map((v) => [v, createMatmulKernels(device, { variant: v })]));
  const rows: BenchRow[] = [];
  const shapes = quick ? [{ ...SHAPES[1], ms: [1, 8, 512] }, { ...SHAPES[3], ms: [1] }] : SHAPES;
  for (const { shape, k, n, ms } of shapes) {
    const w32 = rand(n * k, k * 7 + n);
    const bias = rand(n, 5);
    const mMax = Math.max(...ms);
    const xs = rand(mMax * k, 11);
    const x = device.createBuffer({
      size: mMax * k * 4,
      usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST,
    });
    device.queue.writeBuffer(x, 0, xs);
    const y = device.createBuffer({
      size: mMax * n * 4,
      usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC,
    });
    for (const dtype of dtypes) {
      const bytes = dtype === "F16"
        ? new Uint8Array(toHalf(w32).buffer)
        : new Uint8Array(w32.buffer);
      const weight = { name: shape, dtype, shape: [n, k], bytes: () => bytes };
      const biasT = {
        name: `${shape}.bias`,
        dtype: "F32" as DType,
        shape: [n],
        bytes: () => new Uint8Array(bias.buffer),
      };
      const lins = new Map(
        [...mms].map(([v, mm]) => [v, mm.uploadLinear(weight, biasT, `${shape} ${dtype}`)]),
      );
      for (const m of ms) {
        const flop = 2 * m * k * n;
        // CPU reference (f32), timed on at most 32 rows.
        const cpuRows = Math.min(m, 32);
        const out = new Float32Array(cpuRows * n);
        let cpuMs = Infinity;
        for (let rep = 0, spent = 0; rep < 3 && (rep === 0 || spent < targetMs * 3); rep++) {
          const t0 = performance.now();
          cpuLinear(xs.subarray(0, cpuRows * k), w32, bias, cpuRows, k, n, out);
          const dt = performance.now() - t0;
          spent += dt;
          cpuMs = Math.min(cpuMs, dt);
        }
        const row: BenchRow = {
          shape,
          k,
          n,
          m,
          dtype,
          cpu: (2 * cpuRows * k * n) / cpuMs / 1e6,
          cpuRows,
          gpu: {},
        };
        for (const [v, mm] of mms) {
          const linear = lins.get(v)!;
          const run = (reps: number) =>
            roundTrip((enc) => {
              for (let i = 0; i < reps; i++) mm.encode(enc, { x, y, m, linear });
            }, y);
          const first = await run(1); // includes shader compilation
          let ms1: number;
          if (first > capMs) {
            ms1 = (await run(1)) - latency;
          } else {
            let reps = 1, t = await run(reps);
            while (t - latency < targetMs && reps < 4096) {
              reps *= 2;
              t = await run(reps);
            }
            const best = Math.min(t, await run(reps), ...(quick ? [] : [await run(reps)]));
            ms1 = (best - latency) / reps;
          }
          row.gpu[v] = flop / Math.max(ms1, 1e-3) / 1e6;
        }
        rows.push(row);
        const cells = variants.map((v) => row.gpu[v].toFixed(2).padStart(8));
        const best = Math.max(...variants.map((v) => row.gpu[v]));
        console.log(
          `${shape.padEnd(8)} K=${String(k).padEnd(5)} N=${String(n).padEnd(6)} M=${
            String(m).padEnd(4)
          } ${dtype}  cpu ${row.cpu.toFixed(2).padStart(6)} | ${cells.join(" ")} | x${
            (best / row.cpu).toFixed(1)
          }`,
        );
      }
      for (const l of lins.values()) l.destroy();
    }
    x.destroy();
    y.destroy();
  }
  const loadAfter = load();
  console.log(`load average after: ${loadAfter} (other processes slow every column)`);
  console.log(
    `\ncolumns (GFLOP/s): cpu = backend/cpu/ops.ts linear (f32); ${variants.join(", ")}; ` +
      `last = best GPU / cpu`,
  );
  if (values.json) {
    await Deno.writeTextFile(
      values.json,
      JSON.stringify(
        {
          date: new Date().toISOString(),
          adapter: { description: info.description, fallback: info.isFallbackAdapter },
          quick,
          loadAverage: { before: loadBefore, after: loadAfter },
          variants,
          rows,
        },
        null,
        1,
      ),
    );
    console.log(`wrote ${values.json}`);
  }
  device.destroy();
}

if (import.meta.main) await matmulBenchMain(Deno.args);
