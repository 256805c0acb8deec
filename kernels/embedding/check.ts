/**
 * The embedding family's adapter self-check, beside its CPU reference (`reference.ts`): f16 token and f32 position rows of a left-padded id grid.
 * Run by `kernels/validate.ts` with the other families in one submission.
 *
 * @example
 * ```ts
 * import { embeddingSelfCheck } from "./check.ts";
 * import type { GpuContext } from "../device.ts";
 * import type { SelfCheckContext } from "../check.ts";
 * declare const gpu: GpuContext, ctx: SelfCheckContext;
 * const record = await embeddingSelfCheck(gpu, ctx); // compiles the kernels
 * record(); // records the check into ctx (a pass is open)
 * ```
 *
 * @module
 */
import { halves, maxDiff, type SelfCheckContext, values } from "../check.ts";
import { AllocationGroup, type GpuContext } from "../device.ts";
import { uploadTable } from "../tables.ts";
import { seededRandom } from "../../model/random.ts";
import { createEmbedding } from "./mod.ts";
import { positionIds } from "./reference.ts";

/**
 * Compiles the kernels of the check; the returned function records the embedding case into `ctx`.
 *
 * @example
 * ```ts
 * import { embeddingSelfCheck } from "./check.ts";
 * import type { GpuContext } from "../device.ts";
 * import type { SelfCheckContext } from "../check.ts";
 * declare const gpu: GpuContext, ctx: SelfCheckContext;
 * (await embeddingSelfCheck(gpu, ctx))();
 * ```
 */
export async function embeddingSelfCheck(
  gpu: GpuContext,
  ctx: SelfCheckContext,
): Promise<() => void> {
  const group = new AllocationGroup(gpu);
  const E = 13, V = 11, POS = 9, B = 2, COLS = 4, PADS = [0, 2];
  const tokH = halves(V * E, 7);
  const posF = values(POS * E, 8);
  const tokT = uploadTable(gpu, group, {
    label: "validation tok",
    rows: V,
    cols: E,
    dtype: "F16",
    bytes: tokH.bytes,
  });
  const posT = uploadTable(gpu, group, {
    label: "validation pos",
    rows: POS,
    cols: E,
    dtype: "F32",
    bytes: new Uint8Array(posF.buffer),
  });
  ctx.created.push(tokT, posT);
  await group.check();
  const emb = await createEmbedding(gpu, tokT, posT);
  return () => {
    const { buffer, nan, rec, pending } = ctx;
    // embedding: token (f16) + position (f32) rows of a left-padded [COLS, B] id grid
    {
      const r = seededRandom(31);
      const ids = new Uint32Array(COLS * B);
      for (let c = 0; c < COLS; c++) {
        for (let b = 0; b < B; b++) ids[c * B + b] = c < PADS[b] ? 1 : Math.floor(r() * V);
      }
      const m = COLS * B;
      const out = nan(m * E, "embedding out");
      emb.encode(rec, {
        ids: buffer(ids, "ids"),
        pad: buffer(new Uint32Array(PADS), "pads"),
        out,
        batch: B,
        colStart: 0,
        columns: COLS,
        mode: "sum",
      });
      const want = new Float32Array(m * E);
      for (let b = 0; b < B; b++) {
        const p = positionIds(Array.from({ length: COLS }, (_, c) => (c < PADS[b] ? 0 : 1)));
        for (let c = 0; c < COLS; c++) {
          const g = c * B + b;
          for (let i = 0; i < E; i++) {
            want[g * E + i] = Math.fround(tokH.f32[ids[g] * E + i] + posF[(p[c] + 2) * E + i]);
          }
        }
      }
      pending.push({
        name: "embedding",
        src: out,
        bytes: m * E * 4,
        tolerance: 0,
        judge: (d) => maxDiff(new Float32Array(d), want),
      });
    }
  };
}
