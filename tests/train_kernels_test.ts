/**
 * Every training kernel of `kernels/backward/` against the CPU reference of `train/ops.ts`
 * (computed in f64) on random inputs of awkward sizes, relative L2 error below 1e-4.
 * Written outputs start poisoned (NaN), so an element a kernel fails to write fails the
 * test; accumulating outputs start from random values.
 */
import { assert, assertEquals, assertLess } from "@std/assert";
import { segments, TrainKernels } from "../kernels/backward/mod.ts";
import type { Recorder } from "../kernels/encode.ts";
import type { GpuContext } from "../kernels/device.ts";
import {
  attentionBackward,
  attentionForward,
  crossEntropy,
  layerNormBackward,
  layerNormForward,
  matmulNT,
  transpose,
} from "../train/ops.ts";
import { adamState, adamWConfig, adamWStep, clipCoefficient, gradNorm } from "../train/optim.ts";
import {
  GPU_TEST,
  poisoned,
  randomF32,
  readF32,
  recorder,
  testGpu,
  upload,
} from "./webgpu_helpers.ts";
import { randomParams, relL2, tinyConfig } from "./train_helpers.ts";

const TOL = 1e-4;
let kernels: TrainKernels | undefined;

async function setup(): Promise<{ gpu: GpuContext; k: TrainKernels } | null> {
  const gpu = await testGpu();
  if (!gpu) return null;
  kernels ??= await TrainKernels.create(gpu);
  return { gpu, k: kernels };
}

async function run(gpu: GpuContext, fn: (rec: Recorder) => void): Promise<void> {
  const rec = recorder(gpu);
  rec.arena.reserve(1024);
  rec.begin();
  fn(rec);
  gpu.device.queue.submit([rec.finish()]);
  await gpu.device.queue.onSubmittedWorkDone();
}

const f64 = (a: Float32Array) => Float64Array.from(a);
const u32 = (a: ArrayLike<number>) => upload(gpuOf(), Uint32Array.from(a));
let current: GpuContext;
const gpuOf = () => current;

function check(name: string, got: ArrayLike<number>, want: ArrayLike<number>): void {
  const err = relL2(got, want);
  assertLess(err, TOL, `${name}: relative L2 error ${err}`);
}

Deno.test({
  name: "matmul NT / NN / TN with bias, alpha and accumulation",
  ...GPU_TEST,
  fn: async () => {
    const s = await setup();
    if (!s) return;
    const { gpu, k } = s;
    current = gpu;
    for (const [m, kk, n] of [[37, 29, 45], [1, 130, 7], [66, 3, 1]]) {
      const a = randomF32(m * kk, m + kk, 1), b = randomF32(n * kk, n + 7, 1);
      const bias = randomF32(n, 3, 1), c0 = randomF32(m * n, 9, 1);
      // NT: c = 0.5 (a b^T + bias)
      const c = poisoned(gpu, m * n);
      const acc = upload(gpu, c0);
      const at = transpose(f64(a), m, kk), bt = transpose(f64(b), n, kk);
      const nn = poisoned(gpu, m * n), tn = poisoned(gpu, m * n);
      await run(gpu, (rec) => {
        k.matmul(rec, "NT", upload(gpu, a), upload(gpu, b), c, m, kk, n, {
          bias: upload(gpu, bias),
          alpha: 0.5,
        });
        k.matmul(rec, "NT", upload(gpu, a), upload(gpu, b), acc, m, kk, n, { accumulate: true });
        // NN with b stored [K, N] (= b^T); TN with a stored [K, M] (= a^T)
        k.matmul(rec, "NN", upload(gpu, a), upload(gpu, Float32Array.from(bt)), nn, m, kk, n);
        k.matmul(
          rec,
          "TN",
          upload(gpu, Float32Array.from(at)),
          upload(gpu, Float32Array.from(bt)),
          tn,
          m,
          kk,
          n,
        );
      });
      const want = matmulNT(f64(a), f64(b), m, kk, n);
      check(
        `NT ${m}x${kk}x${n}`,
        await readF32(gpu, c),
        want.map((x, i) => 0.5 * (x + bias[i % n])),
      );
      check(`NT+= ${m}x${kk}x${n}`, await readF32(gpu, acc), want.map((x, i) => x + c0[i]));
      check(`NN ${m}x${kk}x${n}`, await readF32(gpu, nn), want);
      check(`TN ${m}x${kk}x${n}`, await readF32(gpu, tn), want);
    }
  },
});

Deno.test({
  name: "layernorm forward, input gradient and parameter gradients; bias gradient",
  ...GPU_TEST,
  fn: async () => {
    const s = await setup();
    if (!s) return;
    const { gpu, k } = s;
    current = gpu;
    const [m, d] = [13, 75];
    const x = randomF32(m * d, 1, 2).map((v) => v + 0.7),
      w = randomF32(d, 2, 1),
      b = randomF32(d, 3, 1);
    const dy = randomF32(m * d, 4, 1), dx0 = randomF32(m * d, 5, 1);
    const dw0 = randomF32(d, 6, 1), db0 = randomF32(d, 7, 1), bg0 = randomF32(d, 8, 1);
    const y = poisoned(gpu, m * d), xhat = poisoned(gpu, m * d), rstd = poisoned(gpu, m);
    const dx = poisoned(gpu, m * d), dxAcc = upload(gpu, dx0);
    const dw = upload(gpu, dw0), db = upload(gpu, db0), bg = upload(gpu, bg0);
    const [xb, wb, dyb] = [upload(gpu, x), upload(gpu, w), upload(gpu, dy)];
    await run(gpu, (rec) => {
      k.layerNormForward(rec, xb, wb, upload(gpu, b), y, xhat, rstd, m, d);
      k.layerNormBackward(rec, dyb, xhat, rstd, wb, dx, m, d, false);
      k.layerNormBackward(rec, dyb, xhat, rstd, wb, dxAcc, m, d, true);
      k.lnParamGrads(rec, dyb, xhat, dw, db, m, d);
      k.biasGrad(rec, dyb, bg, m, d);
    });
    const ref = layerNormForward(f64(x), f64(w), f64(b), m, d);
    check("ln y", await readF32(gpu, y), ref.y);
    check("ln xhat", await readF32(gpu, xhat), ref.xhat);
    check("ln rstd", await readF32(gpu, rstd), ref.rstd);
    const rdx = new Float64Array(m * d), rdw = f64(dw0), rdb = f64(db0);
    layerNormBackward(f64(dy), ref, f64(w), m, d, rdx, rdw, rdb);
    check("ln dx", await readF32(gpu, dx), rdx);
    check("ln dx+=", await readF32(gpu, dxAcc), rdx.map((v, i) => v + dx0[i]));
    check("ln dw", await readF32(gpu, dw), rdw);
    check("ln db", await readF32(gpu, db), rdb);
    const colsum = f64(bg0);
    for (let i = 0; i < m; i++) for (let t = 0; t < d; t++) colsum[t] += dy[i * d + t];
    check("bias grad", await readF32(gpu, bg), colsum);
  },
});

Deno.test({
  name: "attention forward and backward over packed rows with different lengths",
  ...GPU_TEST,
  fn: async () => {
    const s = await setup();
    if (!s) return;
    const { gpu, k } = s;
    current = gpu;
    const [d, H] = [12, 3];
    const rows = [5, 1, 9, 3]; // active columns per sequence
    const m = rows.reduce((a, b) => a + b, 0), tmax = Math.max(...rows);
    const start = new Int32Array(m), end = new Int32Array(m);
    let o = 0;
    for (const r of rows) {
      for (let t = 0; t < r; t++) {
        start[o + t] = o;
        end[o + t] = o + r - 1;
      }
      o += r;
    }
    const q = randomF32(m * d, 1, 1), kk = randomF32(m * d, 2, 1), v = randomF32(m * d, 3, 1);
    const dctx = randomF32(m * d, 4, 1);
    const probs = poisoned(gpu, m * H * tmax),
      ctx = poisoned(gpu, m * d),
      ds = poisoned(gpu, m * H * tmax);
    const dq = poisoned(gpu, m * d), dk = poisoned(gpu, m * d), dv = poisoned(gpu, m * d);
    const [qb, kb, vb, sb] = [upload(gpu, q), upload(gpu, kk), upload(gpu, v), u32(start)];
    await run(gpu, (rec) => {
      k.attentionForward(rec, qb, kb, vb, sb, probs, ctx, m, d, H, tmax);
      k.attentionBackward(
        rec,
        upload(gpu, dctx),
        qb,
        kb,
        vb,
        probs,
        sb,
        u32(end),
        ds,
        dq,
        dk,
        dv,
        m,
        d,
        H,
        tmax,
        0.25,
      );
    });
    const ref = attentionForward(f64(q), f64(kk), f64(v), start, m, d, H);
    check("ctx", await readF32(gpu, ctx), ref.ctx);
    // probabilities: [m, H, tmax] on the GPU, packed per query on the CPU
    const gp = await readF32(gpu, probs), flat: number[] = [];
    for (let i = 0; i < m; i++) {
      for (let h = 0; h < H; h++) {
        for (let t = 0; t <= i - start[i]; t++) flat.push(gp[(i * H + h) * tmax + t]);
      }
    }
    check("probs", flat, ref.probs);
    const rq = new Float64Array(m * d), rk = new Float64Array(m * d), rv = new Float64Array(m * d);
    attentionBackward(
      f64(dctx),
      f64(q),
      f64(kk),
      f64(v),
      ref.probs,
      ref.off,
      start,
      m,
      d,
      H,
      rq,
      rk,
      rv,
    );
    check("dq", await readF32(gpu, dq), rq.map((x) => 0.25 * x));
    check("dk", await readF32(gpu, dk), rk);
    check("dv", await readF32(gpu, dv), rv);
  },
});

Deno.test({
  name: "rows, residual, ReLU, embeddings and their segment-sum gradients",
  ...GPU_TEST,
  fn: async () => {
    const s = await setup();
    if (!s) return;
    const { gpu, k } = s;
    current = gpu;
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
      tokB = u32(tokens),
      posB = upload(gpu, new Uint32Array(Int32Array.from(positions).buffer));
    await run(gpu, (rec) => {
      k.gatherRows(rec, srcB, u32(idx), gathered, idx.length, w);
      k.scatterRows(
        rec,
        upload(gpu, src.subarray(0, idx.length * w)),
        u32(idx),
        scat,
        idx.length,
        w,
      );
      k.scatterRows(
        rec,
        upload(gpu, src.subarray(0, idx.length * w)),
        u32(idx),
        scatAcc,
        idx.length,
        w,
        true,
      );
      k.axpy(rec, srcB, y, n * w, -0.5);
      k.relu(rec, srcB, z, n * w);
      k.reluBackward(rec, srcB, dz, n * w);
      k.embedForward(rec, "tokens", upload(gpu, table), tokB, posB, emb, n, w);
      k.embedForward(rec, "positions", upload(gpu, posTable), tokB, posB, emb, n, w);
      k.segmentSum(
        rec,
        u32(tokSeg.ids),
        u32(tokSeg.seg),
        u32(tokSeg.order),
        srcB,
        dE,
        tokSeg.ids.length,
        w,
      );
      k.segmentSum(
        rec,
        u32(posSeg.ids),
        u32(posSeg.seg),
        u32(posSeg.order),
        srcB,
        dP,
        posSeg.ids.length,
        w,
      );
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

Deno.test({
  name: "cross-entropy: NLL and in-place scaled gradient over a large vocabulary",
  ...GPU_TEST,
  fn: async () => {
    const s = await setup();
    if (!s) return;
    const { gpu, k } = s;
    current = gpu;
    const [rows, V] = [7, 1031];
    const logits = randomF32(rows * V, 1, 6);
    const targets = [0, 1030, 17, 500, 3, 999, 17];
    const lb = upload(gpu, logits), nll = poisoned(gpu, rows);
    const lb2 = upload(gpu, logits), nll2 = poisoned(gpu, rows);
    await run(gpu, (rec) => {
      k.crossEntropy(rec, u32(targets), lb, nll, rows, V, true, 0.125);
      k.crossEntropy(rec, u32(targets), lb2, nll2, rows, V, false, 1);
    });
    const ref = f64(logits);
    const want = crossEntropy(ref, Int32Array.from(targets), rows, V, true);
    check("nll", await readF32(gpu, nll), want);
    check("nll (eval)", await readF32(gpu, nll2), want);
    check("dlogits", await readF32(gpu, lb), ref.map((x) => 0.125 * x));
    check("logits untouched in eval", await readF32(gpu, lb2), logits);
  },
});

Deno.test({
  name: "global gradient norm, clipping and AdamW equal the CPU optimizer",
  ...GPU_TEST,
  fn: async () => {
    const s = await setup();
    if (!s) return;
    const { gpu, k } = s;
    current = gpu;
    const config = tinyConfig("post");
    const params = randomParams(config, 4, "f32");
    const grads = randomParams(config, 5, "f32");
    const adam = adamState(params);
    adam.m.arrays.forEach((a, i) => a.set(randomF32(a.length, 10 + i, 0.01)));
    adam.v.arrays.forEach((a, i) => a.set(randomF32(a.length, 50 + i, 0.01).map(Math.abs)));
    adam.step = 3;
    const cfg = adamWConfig({ weightDecay: 0.1 });
    const lr = 2e-3;
    const norm = gradNorm(grads);
    const maxNorm = norm / 3; // clipping active
    const bufs = params.specs.map((_, i) => ({
      g: upload(gpu, grads.arrays[i] as Float32Array),
      p: upload(gpu, params.arrays[i] as Float32Array),
      m: upload(gpu, adam.m.arrays[i] as Float32Array),
      v: upload(gpu, adam.v.arrays[i] as Float32Array),
    }));
    const partialCount = params.specs.reduce((a, s) => a + Math.ceil(s.size / 2048), 0);
    const partials = poisoned(gpu, partialCount), normBuf = poisoned(gpu, 2);
    const t = adam.step + 1;
    await run(gpu, (rec) => {
      let off = 0;
      params.specs.forEach((s, i) => (off += k.sumSquares(rec, bufs[i].g, partials, s.size, off)));
      assertEquals(off, partialCount);
      k.normFinalize(rec, partials, normBuf, off, maxNorm);
      params.specs.forEach((s, i) =>
        k.adamw(rec, bufs[i].g, normBuf, bufs[i].p, bufs[i].m, bufs[i].v, s.size, {
          decay: s.decay ? 1 - lr * cfg.weightDecay : 1,
          beta1: cfg.beta1,
          beta2: cfg.beta2,
          stepSize: lr / (1 - cfg.beta1 ** t),
          bc2Sqrt: Math.sqrt(1 - cfg.beta2 ** t),
          eps: cfg.eps,
        })
      );
    });
    const gotNorm = await readF32(gpu, normBuf);
    assertLess(Math.abs(gotNorm[0] - norm) / norm, 1e-5);
    assertLess(Math.abs(gotNorm[1] - clipCoefficient(norm, maxNorm)), 1e-6);
    adamWStep(params, grads, adam, lr, cfg, clipCoefficient(norm, maxNorm));
    for (let i = 0; i < params.specs.length; i++) {
      const name = params.specs[i].name;
      assertLess(
        relL2(await readF32(gpu, bufs[i].p, params.specs[i].size), params.arrays[i]),
        1e-6,
        name,
      );
      assertLess(
        relL2(await readF32(gpu, bufs[i].m, params.specs[i].size), adam.m.arrays[i]),
        1e-5,
        name,
      );
      assertLess(
        relL2(await readF32(gpu, bufs[i].v, params.specs[i].size), adam.v.arrays[i]),
        1e-5,
        name,
      );
    }
    assert(partialCount > params.specs.length - 1);
  },
});
