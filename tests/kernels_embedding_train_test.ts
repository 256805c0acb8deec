/**
 * The training row, elementwise and embedding kernels (`kernels/embedding/train.ts`,
 * `kernels/elementwise/train.ts`): gather, scatter, axpy, ReLU, token and position rows and
 * their segment-sum gradients, against loops written here.
 */
import { assertEquals } from "@std/assert";
import { segments } from "../kernels/train.ts";
import { GPU_TEST, poisoned, randomF32, readF32, upload } from "./webgpu_helpers.ts";
import { check, f64, run, setup, u32 } from "./train_kernel_harness.ts";

Deno.test({
  name: "rows, residual, ReLU, embeddings and their segment-sum gradients",
  ...GPU_TEST,
  fn: async () => {
    const s = await setup();
    if (!s) return;
    const { gpu, k } = s;
    const [n, w, V] = [23, 10, 9];
    const src = randomF32(n * w, 1, 1);
    const idx = [4, 0, 22, 7, 13];
    const gathered = poisoned(gpu, idx.length * w);
    const dst0 = randomF32(n * w, 2, 1);
    const scat = upload(gpu, dst0), scatAcc = upload(gpu, dst0);
    const y0 = randomF32(n * w, 3, 1), y = upload(gpu, y0);
    const z = poisoned(gpu, n * w), dz = upload(gpu, y0);
    const tokens = Array.from({ length: n }, (_, i) => (i * 5) % V);
    const positions = Array.from({ length: n }, (_, i) => (i % 6 === 0 ? -1 : i % 7));
    const table = randomF32(V * w, 4, 1), posTable = randomF32(9 * w, 5, 1);
    const emb = poisoned(gpu, n * w);
    const useful = (i: number) => positions[i] >= 0;
    const tokSeg = segments(tokens, useful);
    const posSeg = segments(positions.map((p) => p + 2), useful);
    const dE0 = randomF32(V * w, 6, 1), dP0 = randomF32(9 * w, 7, 1);
    const dE = upload(gpu, dE0), dP = upload(gpu, dP0);
    const srcB = upload(gpu, src),
      tokB = u32(gpu, tokens),
      posB = upload(gpu, new Uint32Array(Int32Array.from(positions).buffer));
    await run(gpu, (rec) => {
      k.gatherRows(rec, { src: srcB, idx: u32(gpu, idx), out: gathered, n: idx.length, width: w });
      k.scatterRows(rec, {
        rows: upload(gpu, src.subarray(0, idx.length * w)),
        idx: u32(gpu, idx),
        dst: scat,
        n: idx.length,
        width: w,
      });
      k.scatterRows(rec, {
        rows: upload(gpu, src.subarray(0, idx.length * w)),
        idx: u32(gpu, idx),
        dst: scatAcc,
        n: idx.length,
        width: w,
        accumulate: true,
      });
      k.axpy(rec, { x: srcB, y, n: n * w, alpha: -0.5 });
      k.relu(rec, { u: srcB, out: z, n: n * w });
      k.reluBackward(rec, { u: srcB, dz, n: n * w });
      k.embedForward(rec, {
        mode: "tokens",
        table: upload(gpu, table),
        tokens: tokB,
        positions: posB,
        out: emb,
        n,
        width: w,
      });
      k.embedForward(rec, {
        mode: "positions",
        table: upload(gpu, posTable),
        tokens: tokB,
        positions: posB,
        out: emb,
        n,
        width: w,
      });
      k.segmentSum(rec, {
        ids: u32(gpu, tokSeg.ids),
        seg: u32(gpu, tokSeg.seg),
        order: u32(gpu, tokSeg.order),
        src: srcB,
        dst: dE,
        units: tokSeg.ids.length,
        width: w,
      });
      k.segmentSum(rec, {
        ids: u32(gpu, posSeg.ids),
        seg: u32(gpu, posSeg.seg),
        order: u32(gpu, posSeg.order),
        src: srcB,
        dst: dP,
        units: posSeg.ids.length,
        width: w,
      });
    });
    const row = (a: Float32Array, r: number) => [...a.subarray(r * w, r * w + w)];
    check("gather", await readF32(gpu, gathered), idx.flatMap((r) => row(src, r)));
    const wantScat = Float64Array.from(dst0), wantAcc = Float64Array.from(dst0);
    idx.forEach((r, i) => {
      for (let e = 0; e < w; e++) {
        wantScat[r * w + e] = src[i * w + e];
        wantAcc[r * w + e] += src[i * w + e];
      }
    });
    check("scatter", await readF32(gpu, scat), wantScat);
    check("scatter+=", await readF32(gpu, scatAcc), wantAcc);
    check("axpy", await readF32(gpu, y), y0.map((v, i) => v - 0.5 * src[i]));
    check("relu", await readF32(gpu, z), src.map((v) => Math.max(v, 0)));
    check("relu backward", await readF32(gpu, dz), y0.map((v, i) => (src[i] > 0 ? v : 0)));
    const wantEmb = new Float64Array(n * w), wantE = f64(dE0), wantP = f64(dP0);
    for (let i = 0; i < n; i++) {
      if (positions[i] < 0) continue;
      for (let e = 0; e < w; e++) {
        wantEmb[i * w + e] = table[tokens[i] * w + e] + posTable[(positions[i] + 2) * w + e];
        wantE[tokens[i] * w + e] += src[i * w + e];
        wantP[(positions[i] + 2) * w + e] += src[i * w + e];
      }
    }
    check("embeddings", await readF32(gpu, emb), wantEmb);
    check("token embedding grad", await readF32(gpu, dE), wantE);
    check("position embedding grad", await readF32(gpu, dP), wantP);
    assertEquals([...tokSeg.seg].at(-1), positions.filter((p) => p >= 0).length);
  },
});
