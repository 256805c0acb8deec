/**
 * The matmul family's adapter self-check, beside its CPU reference (`reference.ts`): one
 * kernels object (one variant) on awkward sizes, `Y = relu(X W^T + b) + R` with `K = 70`,
 * `N = 37`, f16 and f32 weights, at `M = 3` and (storage variants: the GEMV's chunked rows)
 * `M = 11`, plus the LayerNorm prologue where the variant has one. Run by
 * `kernels/validate.ts`, which keeps the first candidate variant whose checks all pass.
 *
 * @example
 * ```ts
 * import { matmulSelfCheck } from "./check.ts";
 * import type { SelfCheckContext } from "../check.ts";
 * import type { MatmulKernels } from "./mod.ts";
 * declare const ctx: SelfCheckContext, mm: MatmulKernels;
 * matmulSelfCheck(ctx, mm); // records the products, adds results to ctx.pending
 * ```
 *
 * @module
 */
import { halves, maxDiff, type SelfCheckContext, tensor, values } from "../check.ts";
import { layerNorm } from "../layernorm/reference.ts";
import type { MatmulKernels } from "./mod.ts";
import { linear } from "./reference.ts";

/**
 * Records the matmul checks of `mm`'s variant into `ctx` (names start
 * `matmul <variant> `).
 *
 * @example
 * ```ts
 * import { matmulSelfCheck } from "./check.ts";
 * import type { SelfCheckContext } from "../check.ts";
 * import type { MatmulKernels } from "./mod.ts";
 * declare const ctx: SelfCheckContext, mm: MatmulKernels;
 * matmulSelfCheck(ctx, mm);
 * ```
 */
export function matmulSelfCheck(ctx: SelfCheckContext, mm: MatmulKernels): void {
  const { buffer, nan, created, rec, pending } = ctx;
  const K = 70, N = 37, MMAX = 11;
  const x = values(MMAX * K, 1);
  const res = values(MMAX * N, 2);
  const bias = values(N, 3, 0.5);
  const xb = buffer(x, "x"), rb = buffer(res, "residual");
  for (const dtype of ["F16", "F32"] as const) {
    const w = dtype === "F16"
      ? halves(N * K, 4)
      : { f32: values(N * K, 5), bytes: new Uint8Array(0) };
    const wBytes = dtype === "F16" ? w.bytes : new Uint8Array(w.f32.buffer);
    const lin = mm.uploadLinear(
      tensor("validation.w", dtype, [N, K], wBytes),
      tensor("validation.b", "F32", [N], new Uint8Array(bias.buffer)),
      `validation ${dtype}`,
    );
    created.push(lin);
    // the texture variant compiles a kernel per row group: M = 3 only there
    const rowCases = mm.dispatchShape(lin, MMAX) === null ? [3] : [3, MMAX];
    for (const M of rowCases) {
      const y = nan(M * N, "y");
      rec.foreign(
        "matmul",
        (enc) => mm.encode(enc, { x: xb, y, m: M, linear: lin, relu: true, residual: rb }),
      );
      const want = linear(x.subarray(0, M * K), w.f32, bias, M, K, N);
      for (let i = 0; i < want.length; i++) want[i] = Math.max(want[i], 0) + res[i];
      pending.push({
        name: `matmul ${mm.variant} ${dtype.toLowerCase()} weights, ${M} rows`,
        src: y,
        bytes: M * N * 4,
        tolerance: 1e-4,
        judge: (d) => maxDiff(new Float32Array(d), want),
      });
    }
  }

  // with a LayerNorm prologue (the texture variant's repack_ln_rows), f16 weights
  const M = 3;
  const w = halves(N * K, 6);
  const lin = mm.uploadLinear(
    tensor("validation.wln", "F16", [N, K], w.bytes),
    tensor("validation.b", "F32", [N], new Uint8Array(bias.buffer)),
    "validation LN prologue",
  );
  created.push(lin);
  if (!mm.canNormalise(lin)) return;
  const lw = values(K, 7), lb = values(K, 8, 0.5);
  const y = nan(M * N, "y (LN prologue)");
  const lnArg = { w: buffer(lw, "prologue ln w"), b: buffer(lb, "prologue ln b") };
  rec.foreign(
    "matmul",
    (enc) => mm.encode(enc, { x: xb, y, m: M, linear: lin, layerNorm: lnArg }),
  );
  const want = linear(layerNorm(x.subarray(0, M * K), lw, lb, M, K), w.f32, bias, M, K, N);
  pending.push({
    name: `matmul ${mm.variant} layernorm prologue`,
    src: y,
    bytes: M * N * 4,
    tolerance: 1e-4,
    judge: (d) => maxDiff(new Float32Array(d), want),
  });
}
