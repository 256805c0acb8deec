/**
 * Dispatch of the next-token selection kernel (see `wgsl.ts`).
 *
 * @example
 * ```ts
 * import { createSelect } from "./mod.ts";
 * // const sel = await createSelect(gpu);
 * // sel.encode(rec, { logits, ids, done, probs, batch: 4, vocab: 1000, outIndex: 8, step: 0 });
 * ```
 *
 * @module
 */
import type { SamplingOptions } from "./sampling.ts";
import { createDeclaredKernel } from "../declare.ts";
import type { GpuContext, Kernel } from "../device.ts";
import type { Recorder } from "../encode.ts";
import { SELECT_WGSL } from "./wgsl.ts";
export { NONFINITE_ID } from "./wgsl.ts";

/** Arguments of one selection dispatch. */
export interface SelectArgs {
  /** f32 logits `[B, V]`. */
  logits: GPUBuffer;
  /** u32 id grid; row `b`'s token goes to `ids[outIndex + b]`. */
  ids: GPUBuffer;
  /** u32 EOS flags `[B]`. */
  done: GPUBuffer;
  /** f32 scratch `[B, V]` (any small buffer when greedy). */
  probs: GPUBuffer;
  /** Rows. */
  batch: number;
  /** Vocabulary (logits per row). */
  vocab: number;
  /** Where row 0's token goes in `ids`. */
  outIndex: number;
  /** Generation step (index of the token being chosen), for the sampler's hash. */
  step: number;
  /** Greedy when absent or temperature 0. */
  sampling?: SamplingOptions;
  /** EOS id (sets `done`), if any. */
  eos?: number;
}

/** The selection kernel. */
export interface SelectKernel {
  /** The compiled kernel. */
  kernel: Kernel;
  /** Records one dispatch (one workgroup per row). */
  encode(rec: Recorder, args: SelectArgs): void;
}

/**
 * Compiles the selection kernel.
 *
 * @example
 * ```ts
 * import { createSelect } from "./mod.ts";
 * // const sel = await createSelect(gpu);
 * ```
 */
export async function createSelect(ctx: GpuContext): Promise<SelectKernel> {
  // bindings logits, ids, done, probs and the Params fields as `wgsl.ts` declares them
  const select = await createDeclaredKernel(ctx, "select", SELECT_WGSL);
  return {
    kernel: select.kernel,
    encode(rec, a) {
      const s = a.sampling ?? {};
      const temperature = s.temperature ?? 0;
      const sample = temperature > 0 ? 1 : 0;
      const topK = s.topK && s.topK > 0 ? Math.min(s.topK, a.vocab) : 0;
      select.dispatch(
        rec,
        {
          logits: a.logits,
          ids: a.ids,
          done: a.done,
          probs: a.probs,
          batch: a.batch,
          vocab: a.vocab,
          outIndex: a.outIndex,
          step: a.step,
          seed: s.seed ?? 0,
          eos: a.eos ?? 0xffffffff,
          sample,
          topK,
          temperature: sample ? temperature : 1,
          topP: s.topP ?? 1,
        },
        [a.batch],
        "select",
      );
    },
  };
}
