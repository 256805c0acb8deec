/**
 * Dispatch of the embedding kernel (see `wgsl.ts`): token and position rows of
 * a block of columns of the id grid, with OPT's position ids from left padding.
 *
 * @example
 * ```ts
 * import { createEmbedding } from "./mod.ts";
 * // const emb = await createEmbedding(gpu, tokTable, posTable);
 * // emb.encode(rec, { ids, pad, out, batch: 2, colStart: 0, columns: 3, mode: "sum" });
 * ```
 *
 * @module
 */
import { createKernel, type GpuContext, GpuError, type Kernel } from "../device.ts";
import type { Recorder } from "../encode.ts";
import { embeddingWgsl } from "./wgsl.ts";
import {
  type RowTable,
  tableBindingKinds,
  tableBindings,
  tableKey,
  tableShape,
} from "../tables.ts";

/** What to write: token + position, the token row only, or the position row only. */
export type EmbeddingMode = "sum" | "token" | "position";

/** Arguments of one embedding dispatch. */
export interface EmbeddingArgs {
  /** `u32` id grid `[columns, B]` (column-major over the batch). */
  ids: GPUBuffer;
  /** `u32` left-padding length per row, `[B]`. */
  pad: GPUBuffer;
  /** f32 output `[columns * B, width]`. */
  out: GPUBuffer;
  /** Rows of the batch `B`. */
  batch: number;
  /** First column. */
  colStart: number;
  /** Columns to embed. */
  columns: number;
  /** What to write. */
  mode: EmbeddingMode;
  /**
   * `pad` holds each row's position itself instead of its left padding (rows at their own
   * positions: `columns` 1, `batch` the row count).
   */
  positions?: boolean;
}

/** An embedding kernel bound to a token and a position table. */
export interface EmbeddingKernel {
  /** The compiled kernel. */
  kernel: Kernel;
  /** Records one dispatch. */
  encode(rec: Recorder, args: EmbeddingArgs): void;
}

const MODES: Record<EmbeddingMode, number> = { sum: 0, token: 1, position: 2 };

/**
 * Compiles the embedding kernel for two tables.
 *
 * @example
 * ```ts
 * import { createEmbedding } from "./mod.ts";
 * // const emb = await createEmbedding(gpu, tok, pos);
 * ```
 */
export async function createEmbedding(
  ctx: GpuContext,
  tok: RowTable,
  pos: RowTable,
): Promise<EmbeddingKernel> {
  const tables = [tok, pos];
  const count = (kind: "read" | "texture") =>
    tables.flatMap(tableBindingKinds).filter((k) => k.startsWith(kind)).length;
  const storage = 3 + count("read");
  const textures = count("texture");
  const say = (t: RowTable) => `${t.label} (${tableBindings(t).length} bindings)`;
  if (storage > ctx.limits.maxStorageBuffersPerShaderStage) {
    throw new GpuError(
      `embedding: ${say(tok)} and ${say(pos)} need ${storage} storage bindings; ` +
        `"${ctx.info.description}" allows ${ctx.limits.maxStorageBuffersPerShaderStage}`,
      "too-large",
    );
  }
  if (textures > ctx.limits.maxSampledTexturesPerShaderStage) {
    throw new GpuError(
      `embedding: ${say(tok)} and ${say(pos)} need ${textures} textures; ` +
        `"${ctx.info.description}" allows ${ctx.limits.maxSampledTexturesPerShaderStage}`,
      "too-large",
    );
  }
  const name = `embedding(${tableKey(tok)};${tableKey(pos)})`;
  const bindings = [
    "uniform",
    "read",
    "read",
    "storage",
    ...tableBindingKinds(tok),
    ...tableBindingKinds(pos),
  ] as const;
  const kernel = await createKernel(
    ctx,
    name,
    embeddingWgsl(tableShape(tok), tableShape(pos)),
    bindings,
  );
  const tableViews = [...tableBindings(tok), ...tableBindings(pos)];
  return {
    kernel,
    encode(rec, a) {
      const width = a.mode === "token" ? tok.cols : pos.cols;
      if (a.mode === "sum" && tok.cols !== pos.cols) {
        throw new Error(
          `embedding: token width ${tok.cols} differs from position width ${pos.cols}; ` +
            `use mode "token" and project_in`,
        );
      }
      const m = a.columns * a.batch;
      rec.dispatch(
        kernel,
        [a.ids, a.pad, a.out, ...tableViews],
        [m, width, a.batch, a.colStart, MODES[a.mode] | (a.positions ? 4 : 0)],
        [],
        [Math.ceil(width / 64), m],
        "embedding",
      );
    },
  };
}
