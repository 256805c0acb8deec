/**
 * The LayerNorm family's adapter self-check, beside its CPU reference (`reference.ts`): 3 rows of width 45.
 * Run by `kernels/validate.ts` with the other families in one submission.
 *
 * @example
 * ```ts
 * import { layerNormSelfCheck } from "./check.ts";
 * import type { GpuContext } from "../device.ts";
 * import type { SelfCheckContext } from "../check.ts";
 * declare const gpu: GpuContext, ctx: SelfCheckContext;
 * const record = await layerNormSelfCheck(gpu, ctx); // compiles the kernels
 * record(); // records the check into ctx (a pass is open)
 * ```
 *
 * @module
 */
import { maxDiff, type SelfCheckContext, values } from "../check.ts";
import type { GpuContext } from "../device.ts";
import { createLayerNorm } from "./mod.ts";
import { layerNorm } from "./reference.ts";

/**
 * Compiles the kernels of the check; the returned function records LayerNorm over 3 rows of width 45 into `ctx`.
 *
 * @example
 * ```ts
 * import { layerNormSelfCheck } from "./check.ts";
 * import type { GpuContext } from "../device.ts";
 * import type { SelfCheckContext } from "../check.ts";
 * declare const gpu: GpuContext, ctx: SelfCheckContext;
 * (await layerNormSelfCheck(gpu, ctx))();
 * ```
 */
export async function layerNormSelfCheck(
  gpu: GpuContext,
  ctx: SelfCheckContext,
): Promise<() => void> {
  const ln = await createLayerNorm(gpu);
  return () => {
    const { buffer, nan, rec, pending } = ctx;
    const m = 3, d = 45;
    const lx = values(m * d, 11, 3), lw = values(d, 12), lb = values(d, 13);
    const out = nan(m * d, "layernorm out");
    ln.encode(rec, {
      x: buffer(lx, "ln x"),
      w: buffer(lw, "ln w"),
      b: buffer(lb, "ln b"),
      out,
      m,
      d,
    });
    const want = layerNorm(lx, lw, lb, m, d);
    pending.push({
      name: "layernorm",
      src: out,
      bytes: m * d * 4,
      tolerance: 1e-4,
      judge: (dd) => maxDiff(new Float32Array(dd), want),
    });
  };
}
