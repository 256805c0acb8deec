/**
 * The cross-entropy kernel (`kernels/cross_entropy/train.ts`) against `crossEntropy` of
 * `kernels/cross_entropy/reference.ts` over a large vocabulary.
 */
import { crossEntropy } from "../kernels/cross_entropy/reference.ts";
import { GPU_TEST, poisoned, randomF32, readF32, upload } from "./webgpu_helpers.ts";
import { check, f64, run, setup, u32 } from "./train_kernel_harness.ts";

Deno.test({
  name: "cross-entropy: NLL and in-place scaled gradient over a large vocabulary",
  ...GPU_TEST,
  fn: async () => {
    const s = await setup();
    if (!s) return;
    const { gpu, k } = s;
    const [rows, V] = [7, 1031];
    const logits = randomF32(rows * V, 1, 6);
    const targets = [0, 1030, 17, 500, 3, 999, 17];
    const lb = upload(gpu, logits), nll = poisoned(gpu, rows);
    const lb2 = upload(gpu, logits), nll2 = poisoned(gpu, rows);
    await run(gpu, (rec) => {
      k.crossEntropy(rec, {
        targets: u32(gpu, targets),
        logits: lb,
        nll,
        rows,
        vocab: V,
        train: true,
        scale: 0.125,
      });
      k.crossEntropy(rec, {
        targets: u32(gpu, targets),
        logits: lb2,
        nll: nll2,
        rows,
        vocab: V,
        train: false,
        scale: 1,
      });
    });
    const ref = f64(logits);
    const want = crossEntropy(ref, Int32Array.from(targets), rows, V, true);
    check("nll", await readF32(gpu, nll), want);
    check("nll (eval)", await readF32(gpu, nll2), want);
    check("dlogits", await readF32(gpu, lb), ref.map((x) => 0.125 * x));
    check("logits untouched in eval", await readF32(gpu, lb2), logits);
  },
});
