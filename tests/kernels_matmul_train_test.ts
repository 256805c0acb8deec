/**
 * The training matrix products (`kernels/matmul/train.ts`: NT, NN, TN with bias, alpha and
 * accumulation) against `matmulNT` of `kernels/matmul/reference.ts`, on awkward sizes.
 */
import { matmulNT, transpose } from "../kernels/matmul/reference.ts";
import { GPU_TEST, poisoned, randomF32, readF32, upload } from "./webgpu_helpers.ts";
import { check, f64, run, setup } from "./train_kernel_harness.ts";

Deno.test({
  name: "matmul NT / NN / TN with bias, alpha and accumulation",
  ...GPU_TEST,
  fn: async () => {
    const s = await setup();
    if (!s) return;
    const { gpu, k } = s;
    for (const [m, kk, n] of [[37, 29, 45], [1, 130, 7], [66, 3, 1]]) {
      const a = randomF32(m * kk, m + kk, 1), b = randomF32(n * kk, n + 7, 1);
      const bias = randomF32(n, 3, 1), c0 = randomF32(m * n, 9, 1);
      // NT: c = 0.5 (a b^T + bias)
      const c = poisoned(gpu, m * n);
      const acc = upload(gpu, c0);
      const at = transpose(f64(a), m, kk), bt = transpose(f64(b), n, kk);
      const nn = poisoned(gpu, m * n), tn = poisoned(gpu, m * n);
      await run(gpu, (rec) => {
        k.matmul(rec, {
          kind: "NT",
          a: upload(gpu, a),
          b: upload(gpu, b),
          c,
          m,
          k: kk,
          n,
          bias: upload(gpu, bias),
          alpha: 0.5,
        });
        k.matmul(rec, {
          kind: "NT",
          a: upload(gpu, a),
          b: upload(gpu, b),
          c: acc,
          m,
          k: kk,
          n,
          accumulate: true,
        });
        // NN with b stored [K, N] (= b^T); TN with a stored [K, M] (= a^T)
        k.matmul(rec, {
          kind: "NN",
          a: upload(gpu, a),
          b: upload(gpu, Float32Array.from(bt)),
          c: nn,
          m,
          k: kk,
          n,
        });
        k.matmul(rec, {
          kind: "TN",
          a: upload(gpu, Float32Array.from(at)),
          b: upload(gpu, Float32Array.from(bt)),
          c: tn,
          m,
          k: kk,
          n,
        });
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
