/**
 * The training LayerNorm kernels (`kernels/layernorm/train.ts`) and the bias gradient against
 * `layerNormForward`/`layerNormBackward` of `kernels/layernorm/reference.ts`.
 */
import { layerNormBackward, layerNormForward } from "../kernels/layernorm/reference.ts";
import { GPU_TEST, poisoned, randomF32, readF32, upload } from "./webgpu_helpers.ts";
import { check, f64, run, setup } from "./train_kernel_harness.ts";

Deno.test({
  name: "layernorm forward, input gradient and parameter gradients; bias gradient",
  ...GPU_TEST,
  fn: async () => {
    const s = await setup();
    if (!s) return;
    const { gpu, k } = s;
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
      k.layerNormForward(rec, { x: xb, w: wb, b: upload(gpu, b), y, xhat, rstd, m, d });
      k.layerNormBackward(rec, { dy: dyb, xhat, rstd, w: wb, dx, m, d, accumulate: false });
      k.layerNormBackward(rec, { dy: dyb, xhat, rstd, w: wb, dx: dxAcc, m, d, accumulate: true });
      k.lnParamGrads(rec, { dy: dyb, xhat, dw, db, m, d });
      k.biasGrad(rec, { dy: dyb, db: bg, m, n: d });
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
