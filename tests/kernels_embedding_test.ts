import { assertEquals, assertLess } from "@std/assert";
import { positionIds } from "../kernels/embedding/reference.ts";
import { AllocationGroup } from "../kernels/device.ts";
import { createEmbedding } from "../kernels/embedding/mod.ts";
import { uploadTable } from "../kernels/tables.ts";
import { createMatmulKernels, MATMUL_VARIANTS } from "../kernels/matmul/mod.ts";
import { memoryTensor } from "../model/tensor.ts";
import { bytesToFloat32, float32ToBytes } from "../model/safetensors.ts";
import type { DType } from "../model/types.ts";
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

const V = 37, E = 45, POS = 30, B = 3, COLS = 9;
const PADS = [0, 2, 5];

type Gpu = NonNullable<Awaited<ReturnType<typeof testGpu>>>;
type Embedding = Awaited<ReturnType<typeof createEmbedding>>;
type Mode = "sum" | "token" | "position";

/**
 * Rows at their own positions (the per-row engine: `pad[b]` is row b's position): the kernel's
 * `[n, width]` output, and the CPU's (`tok`/`posT` the tables as f32, OPT's +2 position offset).
 */
async function rowsAtPositions(
  gpu: Gpu,
  emb: Embedding,
  o: { ids: Uint32Array; pos: Uint32Array; mode: Mode; width: number },
  tok: Float32Array,
  posT: Float32Array,
): Promise<{ got: Float32Array; want: Float32Array }> {
  const n = o.ids.length, W = o.width;
  const out = poisoned(gpu, n * W);
  const rec = recorder(gpu);
  rec.begin();
  emb.encode(rec, {
    ids: upload(gpu, o.ids),
    pad: upload(gpu, o.pos),
    out,
    batch: n,
    colStart: 0,
    columns: 1,
    mode: o.mode,
    positions: true,
  });
  gpu.device.queue.submit([rec.finish()]);
  const got = await readF32(gpu, out);
  const want = new Float32Array(n * W);
  for (let row = 0; row < n; row++) {
    for (let i = 0; i < W; i++) {
      const t = o.mode === "position" ? 0 : tok[o.ids[row] * W + i];
      const p = o.mode === "token" ? 0 : posT[(o.pos[row] + 2) * W + i];
      want[row * W + i] = Math.fround(t + p);
    }
  }
  return { got, want };
}

Deno.test({
  name:
    "embedding kernel: token + position rows with left padding or at given positions, every dtype, split tables",
  ...GPU_TEST,
  fn: async () => {
    const gpu = await testGpu();
    if (!gpu) return;
    const r = rng(5);
    // id grid [column, B]; padding columns hold the pad id 1
    const ids = new Uint32Array(COLS * B);
    for (let c = 0; c < COLS; c++) {
      for (let b = 0; b < B; b++) ids[c * B + b] = c < PADS[b] ? 1 : Math.floor(r() * V);
    }
    const pos = new Int32Array(COLS * B); // [column, B] OPT positions
    for (let b = 0; b < B; b++) {
      const p = positionIds(Array.from({ length: COLS }, (_, c) => (c < PADS[b] ? 0 : 1)));
      for (let c = 0; c < COLS; c++) pos[c * B + b] = p[c];
    }
    for (const dtype of ["F16", "BF16", "F32"] as DType[]) {
      for (const maxBindingBytes of [undefined, 12 * E * 4]) {
        const tokBytes = float32ToBytes(randomF32(V * E, 1), dtype);
        const posBytes = float32ToBytes(randomF32(POS * E, 2), dtype);
        const tok = bytesToFloat32(tokBytes, dtype); // exact values the GPU holds
        const posT = bytesToFloat32(posBytes, dtype);
        const group = new AllocationGroup(gpu);
        const opts = { maxBindingBytes };
        const tt = uploadTable(
          gpu,
          group,
          { label: "tok", rows: V, cols: E, dtype, bytes: tokBytes },
          opts,
        );
        const pt = uploadTable(
          gpu,
          group,
          { label: "pos", rows: POS, cols: E, dtype, bytes: posBytes },
          opts,
        );
        await group.check();
        const emb = await createEmbedding(gpu, tt, pt);
        const idsBuf = upload(gpu, ids);
        const padBuf = upload(gpu, new Uint32Array(PADS));
        for (const mode of ["sum", "token", "position"] as const) {
          for (const [colStart, columns] of [[0, COLS], [7, 1], [3, 4]]) {
            const m = columns * B;
            const out = poisoned(gpu, m * E);
            const rec = recorder(gpu);
            rec.begin();
            emb.encode(rec, { ids: idsBuf, pad: padBuf, out, batch: B, colStart, columns, mode });
            gpu.device.queue.submit([rec.finish()]);
            const got = await readF32(gpu, out);
            const want = new Float32Array(m * E);
            for (let row = 0; row < m; row++) {
              const g = colStart * B + row;
              for (let i = 0; i < E; i++) {
                const t = mode === "position" ? 0 : tok[ids[g] * E + i];
                const p = mode === "token" ? 0 : posT[(pos[g] + 2) * E + i];
                want[row * E + i] = Math.fround(t + p);
              }
            }
            const err = maxAbsDiff(got, want);
            if (colStart === 0 && mode === "sum") {
              console.log(
                `embedding ${dtype} chunks=${tt.chunks.length}/${pt.chunks.length} ${mode} ` +
                  `cols ${colStart}..${colStart + columns - 1}: max |diff| ${err}`,
              );
            }
            assertEquals(err, 0, `${dtype} ${mode} colStart ${colStart}`);
          }
        }
        // rows at their own positions (the per-row engine): pad[b] is row b's position
        const n = 11;
        const rowIds = Uint32Array.from({ length: n }, () => Math.floor(r() * V));
        const rowPos = Uint32Array.from({ length: n }, () => Math.floor(r() * (POS - 2)));
        for (const mode of ["sum", "token", "position"] as const) {
          const { got, want } = await rowsAtPositions(
            gpu,
            emb,
            { ids: rowIds, pos: rowPos, mode, width: E },
            tok,
            posT,
          );
          assertEquals(maxAbsDiff(got, want), 0, `${dtype} ${mode} at own positions`);
        }
        if (maxBindingBytes) assertLess(1, tt.chunks.length);
        tt.destroy();
        pt.destroy();
      }
    }
  },
});

Deno.test({
  name:
    "embedding kernel: token rows read from a tied LM head's matmul weights (every variant, F16/F32/BF16, split parts and texture layers)",
  ...GPU_TEST,
  fn: async () => {
    const gpu = await testGpu();
    if (!gpu) return;
    const VH = 301, EH = 45; // rows and columns not multiples of any tile or texel
    const r = rng(11);
    const n = 13;
    const ids = Uint32Array.from(
      { length: n },
      (_, i) => i < 3 ? [0, VH - 1, 7][i] : Math.floor(r() * VH),
    );
    const rowPos = Uint32Array.from({ length: n }, () => Math.floor(r() * (POS - 2)));
    const posBytes = float32ToBytes(randomF32(POS * EH, 3), "F32");
    const posT = bytesToFloat32(posBytes, "F32");
    const group = new AllocationGroup(gpu);
    const pt = uploadTable(gpu, group, {
      label: "pos",
      rows: POS,
      cols: EH,
      dtype: "F32",
      bytes: posBytes,
    });
    await group.check();
    for (const variant of MATMUL_VARIANTS) {
      // small limits split the head into several parts (and texture layers)
      for (const limits of [{}, { maxBindingBytes: 4096, maxTextureDim: 32 }]) {
        const mm = createMatmulKernels(gpu.device, { variant, ...limits });
        for (const dtype of ["F16", "F32", "BF16"] as DType[]) {
          const bytes = float32ToBytes(randomF32(VH * EH, 4), dtype);
          const tok = bytesToFloat32(bytes, dtype);
          const lin = mm.uploadLinear(memoryTensor("head", dtype, [VH, EH], bytes));
          const tt = mm.rowTable(lin, "head");
          if (!tt) throw new Error(`${variant}: no row table for its weights`);
          assertEquals([tt.rows, tt.cols], [VH, EH]);
          const parts: number = "chunks" in tt ? tt.chunks.length : tt.parts.length;
          const emb = await createEmbedding(gpu, tt, pt);
          for (const mode of ["sum", "token"] as const) {
            const { got, want } = await rowsAtPositions(
              gpu,
              emb,
              { ids, pos: rowPos, mode, width: EH },
              tok,
              posT,
            );
            assertEquals(
              maxAbsDiff(got, want),
              0,
              `${variant} ${JSON.stringify(limits)} ${dtype} ${mode} (${parts} parts)`,
            );
          }
          if (Object.keys(limits).length > 0) {
            assertLess(1, parts, `${variant} ${dtype}: the small limits split the head`);
          }
          lin.destroy();
        }
      }
    }
    pt.destroy();
  },
});
