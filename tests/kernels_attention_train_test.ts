/**
 * The training attention kernels (`kernels/attention/train.ts`) against `attentionForward`/
 * `attentionBackward` of `kernels/attention/reference.ts`, packed rows of different lengths.
 */
import { attentionBackward, attentionForward } from "../kernels/attention/reference.ts";
import { GPU_TEST, poisoned, randomF32, readF32, upload } from "./webgpu_helpers.ts";
import { check, f64, run, setup, u32 } from "./train_kernel_harness.ts";

Deno.test({
  name: "attention forward and backward over packed rows with different lengths",
  ...GPU_TEST,
  fn: async () => {
    const s = await setup();
    if (!s) return;
    const { gpu, k } = s;
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
    const [qb, kb, vb, sb] = [upload(gpu, q), upload(gpu, kk), upload(gpu, v), u32(gpu, start)];
    await run(gpu, (rec) => {
      k.attentionForward(rec, { q: qb, k: kb, v: vb, start: sb, probs, ctx, m, d, heads: H, tmax });
      k.attentionBackward(rec, {
        dctx: upload(gpu, dctx),
        q: qb,
        k: kb,
        v: vb,
        probs,
        start: sb,
        rowEnd: u32(gpu, end),
        ds,
        dq,
        dk,
        dv,
        m,
        d,
        heads: H,
        tmax,
        scale: 0.25,
      });
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
