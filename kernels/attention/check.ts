/**
 * The attention family's adapter self-check, beside its CPU reference (`reference.ts`): padded rows over a cached prefix, heads of 8 (the lanes kernel on software kernels, else vec4), 12 (vec4) and 5 (scalar).
 * Run by `kernels/validate.ts` with the other families in one submission.
 *
 * @example
 * ```ts
 * import { attentionSelfCheck } from "./check.ts";
 * import type { GpuContext } from "../device.ts";
 * import type { SelfCheckContext } from "../check.ts";
 * declare const gpu: GpuContext, ctx: SelfCheckContext;
 * const record = await attentionSelfCheck(gpu, ctx); // compiles the kernels
 * record(); // records the check into ctx (a pass is open)
 * ```
 *
 * @module
 */
import { maxDiff, type SelfCheckContext, values } from "../check.ts";
import type { GpuContext } from "../device.ts";
import { createAttention } from "./mod.ts";
import { attendOne } from "./reference.ts";

/**
 * Compiles the kernels of the check; the returned function records the attention cases into `ctx`.
 *
 * @example
 * ```ts
 * import { attentionSelfCheck } from "./check.ts";
 * import type { GpuContext } from "../device.ts";
 * import type { SelfCheckContext } from "../check.ts";
 * declare const gpu: GpuContext, ctx: SelfCheckContext;
 * (await attentionSelfCheck(gpu, ctx))();
 * ```
 */
export async function attentionSelfCheck(
  gpu: GpuContext,
  ctx: SelfCheckContext,
): Promise<() => void> {
  const att = await createAttention(gpu, 64, undefined, { headDims: [8] }); // lanes kernel too
  const B = 2;
  return () => {
    const { buffer, nan, rec, pending } = ctx;
    // attention: 2 rows (one left-padded), 5 cached columns, queries of the last 2 columns;
    // heads of 8 (the lanes kernel on software adapters, else vec4), of 12 (vec4) and of 5
    // (the scalar one)
    for (const [heads, hd] of [[3, 8], [2, 12], [2, 5]]) {
      const d = heads * hd, slots = 5, pads = [0, 2], colStart = 3, columns = 2;
      const k = values(slots * B * d, 21 + hd, 1.5), v = values(slots * B * d, 22 + hd);
      const m = columns * B;
      const q = values(m * d, 23 + hd, 2);
      const out = nan(m * d, "attention out");
      att.encode(rec, {
        q: buffer(q, "q"),
        k: buffer(k, "k"),
        v: buffer(v, "v"),
        pad: buffer(new Uint32Array(pads), "pad"),
        out,
        m,
        d,
        heads,
        batch: B,
        colStart,
      });
      const want = new Float32Array(m * d);
      const scale = 1 / Math.sqrt(hd);
      for (let r = 0; r < m; r++) {
        const b = r % B, c = colStart + Math.floor(r / B);
        const keys = new Float32Array(slots * d), vals = new Float32Array(slots * d);
        for (let t = 0; t < slots; t++) {
          keys.set(k.subarray((t * B + b) * d, (t * B + b + 1) * d), t * d);
          vals.set(v.subarray((t * B + b) * d, (t * B + b + 1) * d), t * d);
        }
        const qs = q.slice(r * d, r * d + d).map((e) => e * scale);
        attendOne(qs, keys, vals, c + 1, d, heads, (t) => t >= pads[b], want.subarray(r * d));
      }
      pending.push({
        name: `attention ${att.kindFor(hd, d)}`,
        src: out,
        bytes: m * d * 4,
        tolerance: 1e-4,
        judge: (dd) => maxDiff(new Float32Array(dd), want),
      });
    }
  };
}
