/**
 * The CPU trainer's fast paths: the linear maps on OpenBLAS (`train/blas.ts`) equal the
 * reference's TypeScript loops on random awkward shapes and give the same loss and
 * gradients in a whole training step (pre-LN and post-LN, skipping and padding); the
 * cross-entropy's folded gradient scale equals scaling afterwards. Without OpenBLAS or
 * `--allow-ffi` the BLAS tests skip loudly (and fail under `CI=true`).
 */
import { assert, assertEquals, assertLess } from "@std/assert";
import { blasLinearOps, type LinearOps, TYPESCRIPT_LINEAR } from "../train/blas.ts";
import { crossEntropy } from "../kernels/cross_entropy/reference.ts";
import { collate } from "../train/batch.ts";
import { backward, forward } from "../train/reference.ts";
import { modelView } from "../train/param_set.ts";
import { CpuEngine } from "../train/engine.ts";
import { plannedExamples, randomParams, relL2, tinyConfig } from "./train_helpers.ts";
import { maxAbsDiff, randomF32 } from "./helpers.ts";
import type { ParamSet } from "../train/param_set.ts";

/**
 * Gradients agree: relative L2 below `tol`, except the key biases', which are zero in exact
 * arithmetic (softmax ignores a shift shared by a query's scores): there only rounding
 * noise, far below the gradient's scale, is compared.
 */
function assertGradsClose(a: ParamSet, b: ParamSet, tol: number): void {
  let scale = 0;
  for (const g of b.arrays) for (const v of g) scale = Math.max(scale, Math.abs(v));
  a.arrays.forEach((g, t) => {
    const name = a.specs[t].name;
    if (name.endsWith("k_proj.bias")) {
      assertLess(maxAbsDiff(g, b.arrays[t]), 1e-5 * scale, name);
    } else assertLess(relL2(g, b.arrays[t]), tol, name);
  });
}

function blasOrSkip(): LinearOps | undefined {
  const ops = blasLinearOps();
  if (ops) return ops;
  const msg = "OpenBLAS is not loadable (libopenblas0 and --allow-ffi for it are needed)";
  if (Deno.env.get("CI")) throw new Error(`${msg}; CI is set, so the BLAS tests fail`);
  console.warn(`SKIPPED: ${msg}`);
  return undefined;
}

Deno.test("BLAS linear maps equal the TypeScript loops (awkward shapes)", () => {
  const ops = blasOrSkip();
  if (!ops) return;
  for (const [m, k, n] of [[1, 1, 1], [3, 5, 7], [17, 33, 65], [2, 128, 1031]]) {
    const x = randomF32(m * k, m + 1), w = randomF32(n * k, n + 2), b = randomF32(n, 3);
    const dy = randomF32(m * n, 4);
    assertLess(
      relL2(ops.forward(x, w, b, m, k, n), TYPESCRIPT_LINEAR.forward(x, w, b, m, k, n)),
      1e-6,
    );
    assertLess(
      relL2(
        ops.forward(x, w, undefined, m, k, n),
        TYPESCRIPT_LINEAR.forward(x, w, undefined, m, k, n),
      ),
      1e-6,
    );
    // both backwards add into what is there
    const start = randomF32(m * k, 5);
    const dx1 = start.slice(), dx2 = start.slice();
    ops.backwardInput(dy, w, m, k, n, dx1);
    TYPESCRIPT_LINEAR.backwardInput(dy, w, m, k, n, dx2);
    assertLess(relL2(dx1, dx2), 1e-6);
    const dw1 = randomF32(n * k, 6), dw2 = dw1.slice(), db1 = randomF32(n, 7), db2 = db1.slice();
    ops.backwardParams(dy, x, m, k, n, dw1, db1);
    TYPESCRIPT_LINEAR.backwardParams(dy, x, m, k, n, dw2, db2);
    assertLess(relL2(dw1, dw2), 1e-6);
    assertLess(relL2(db1, db2), 1e-6);
  }
  // f64 arrays (the finite-difference check's) take the TypeScript loops
  const y = ops.forward(new Float64Array([1, 2]), new Float64Array([3, 4]), undefined, 1, 2, 1);
  assert(y instanceof Float64Array);
  assertEquals(Array.from(y), [11]);
});

for (const kind of ["pre", "post"] as const) {
  Deno.test(`CPU engine on BLAS: the step's loss and gradients equal the TypeScript loops' (${kind}-LN)`, async () => {
    const ops = blasOrSkip();
    if (!ops) return;
    const config = tinyConfig(kind);
    const batch = collate(plannedExamples(config, 5), config.numHiddenLayers, 1);
    assert(batch.positions.includes(-1), "no padding");
    const a = new CpuEngine(randomParams(config, 11, "f32"), {}, undefined, ops);
    const b = new CpuEngine(randomParams(config, 11, "f32"), {}, undefined, TYPESCRIPT_LINEAR);
    const scale = 1 / batch.targetCount;
    const la = await a.accumulate(batch, scale), lb = await b.accumulate(batch, scale);
    assertLess(Math.abs(la - lb) / lb, 1e-5);
    assertGradsClose(a.grads, b.grads, 1e-4);
    const ra = await a.step(1e-3, 1), rb = await b.step(1e-3, 1);
    assertLess(Math.abs(ra.gradNorm - rb.gradNorm) / rb.gradNorm, 1e-5);
    // AdamW's first step moves each weight by about ±lr whatever the gradient's size, so
    // elements whose gradient is rounding noise (the key biases') may move either way: the
    // weights agree to 2·lr element-wise and closely as a whole
    a.params.arrays.forEach((p, t) => {
      assertLess(maxAbsDiff(p, b.params.arrays[t]), 2e-3, a.params.specs[t].name);
      assertLess(relL2(p, b.params.arrays[t]), 1e-3, a.params.specs[t].name);
    });
  });
}

Deno.test("cross-entropy's folded gradient scale equals scaling the gradient afterwards", () => {
  const m = 3, V = 37, scale = 0.137;
  const logits = Float64Array.from(randomF32(m * V, 9, 4));
  const targets = Int32Array.of(0, 36, 11);
  const plain = logits.slice(), folded = logits.slice();
  const n1 = crossEntropy(plain, targets, m, V, true);
  const n2 = crossEntropy(folded, targets, m, V, true, scale);
  assertEquals(Array.from(n1), Array.from(n2)); // the NLL does not depend on the scale
  for (let i = 0; i < plain.length; i++) assertLess(Math.abs(plain[i] * scale - folded[i]), 1e-15);
  // each row of softmax - onehot sums to 0
  for (let r = 0; r < m; r++) {
    let s = 0;
    for (let j = 0; j < V; j++) s += folded[r * V + j];
    assertLess(Math.abs(s), 1e-14);
  }
});

Deno.test("a backward with another scale than the forward's gradScale rescales (f64)", () => {
  const config = tinyConfig("pre");
  const params = randomParams(config, 3, "f64");
  const batch = collate(plannedExamples(config, 2), config.numHiddenLayers, 1);
  const g1 = params.zerosLike(), g2 = params.zerosLike();
  const scale = 1 / batch.targetCount;
  backward(modelView(params), modelView(g1), forward(modelView(params), batch), scale);
  const s2 = forward(modelView(params), batch, { gradScale: 0.5 });
  backward(modelView(params), modelView(g2), s2, scale);
  assertGradsClose(g2, g1, 1e-12);
  // the folded path: gradScale equal to the backward's scale, no copy
  const g3 = params.zerosLike();
  backward(
    modelView(params),
    modelView(g3),
    forward(modelView(params), batch, { gradScale: scale }),
    scale,
  );
  assertGradsClose(g3, g1, 1e-12);
});
