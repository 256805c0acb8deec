/**
 * The select family's adapter self-check, beside its CPU reference (`reference.ts`): greedy selection over 3 rows of 67 logits, a tie (lowest index wins), EOS flags.
 * Run by `kernels/validate.ts` with the other families in one submission.
 *
 * @example
 * ```ts
 * import { selectSelfCheck } from "./check.ts";
 * import type { GpuContext } from "../device.ts";
 * import type { SelfCheckContext } from "../check.ts";
 * declare const gpu: GpuContext, ctx: SelfCheckContext;
 * const record = await selectSelfCheck(gpu, ctx); // compiles the kernels
 * record(); // records the check into ctx (a pass is open)
 * ```
 *
 * @module
 */
import { mismatches, type SelfCheckContext, values } from "../check.ts";
import type { GpuContext } from "../device.ts";
import { createSelect } from "./mod.ts";

/**
 * Compiles the kernels of the check; the returned function records the selection case into `ctx`.
 *
 * @example
 * ```ts
 * import { selectSelfCheck } from "./check.ts";
 * import type { GpuContext } from "../device.ts";
 * import type { SelfCheckContext } from "../check.ts";
 * declare const gpu: GpuContext, ctx: SelfCheckContext;
 * (await selectSelfCheck(gpu, ctx))();
 * ```
 */
export async function selectSelfCheck(
  gpu: GpuContext,
  ctx: SelfCheckContext,
): Promise<() => void> {
  const sel = await createSelect(gpu);
  return () => {
    const { buffer, nan, rec, pending } = ctx;
    // greedy selection: 3 rows of 67 logits, a tie (lowest index wins), EOS flags
    {
      const rows = 3, vocab = 67;
      const logits = values(rows * vocab, 41, 4);
      logits[vocab + 9] = 9;
      logits[vocab + 40] = 9;
      const want: number[] = [];
      for (let b = 0; b < rows; b++) {
        let best = 0;
        for (let i = 1; i < vocab; i++) {
          if (logits[b * vocab + i] > logits[b * vocab + best]) best = i;
        }
        want.push(best);
      }
      const eos = want[2];
      const ids = buffer(new Uint32Array(2 * rows).fill(0xdeadbeef), "select ids");
      const done = buffer(new Uint32Array(rows), "select done");
      sel.encode(rec, {
        logits: buffer(logits, "logits"),
        ids,
        done,
        probs: nan(4, "probs"),
        batch: rows,
        vocab,
        outIndex: rows,
        step: 0,
        eos,
      });
      const expect = [...new Array(rows).fill(0xdeadbeef), ...want, 0, 0, 1];
      const both = buffer(new Uint32Array(3 * rows), "select result");
      rec.endPass();
      rec.encoder.copyBufferToBuffer(ids, 0, both, 0, 2 * rows * 4);
      rec.encoder.copyBufferToBuffer(done, 0, both, 2 * rows * 4, rows * 4);
      pending.push({
        name: "select (greedy, ties, EOS)",
        src: both,
        bytes: 3 * rows * 4,
        tolerance: 0,
        judge: (d) => mismatches(new Uint32Array(d), expect),
      });
    }
  };
}
