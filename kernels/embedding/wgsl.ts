/**
 * WGSL of the embedding kernel (a template: the table bindings depend on how each table is
 * split across buffers).
 *
 * @module
 */
import { type TableShape, tableWgsl } from "../tables.ts";

export type { TableShape };

/** Bindings a table takes (its buffers or its texture views). */
function bindingCount(t: TableShape): number {
  return "chunks" in t ? t.chunks : t.partRows.length;
}

/**
 * Token + position embedding.
 *
 * Bindings: 0 params; 1 `ids: array<u32>` laid out `[column, B]` (the batch's id grid);
 * 2 `pad: array<u32>` `[B]` (left-padding length of each row); 3 `out: array<f32>`
 * `[m, width]`; then the token table's bindings (its buffers, or the texture views of a tied
 * LM head's weights, see `TextureTable` in `kernels/tables.ts`), then the position table's.
 *
 * Row `r` of the output is column `col = colStart + r / B`, batch row `b = r % B`. Its OPT
 * position is `col - pad[b]` (`cumsum(mask) * mask - 1`), or `-1` in padding; the position
 * table is read at `pos + 2` (OPT's offset). `mode & 3`: 0 token + position (widths equal),
 * 1 token row only (before `project_in`), 2 position row only; `mode & 4`: `pad[b]` holds
 * row `b`'s position itself (the per-row engine: each row at its own position, no padding).
 *
 * Workgroup `(64, 1)`: x runs over output columns, one workgroup row per output row;
 * dispatch `(ceil(width / 64), m)`.
 */
export function embeddingWgsl(tok: TableShape, pos: TableShape): string {
  return /* wgsl */ `
// embedding: out[r, i] = tok[ids[colStart*B + r], i] (+) pos[pos(r) + 2, i]; see kernels/embedding/wgsl.ts
struct Params {
  m: u32,         // output rows
  width: u32,     // output columns
  batch: u32,     // B
  colStart: u32,  // column of output row 0
  mode: u32,      // & 3: 0 sum, 1 token only, 2 position only; & 4: pad[b] is the position
}
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> ids: array<u32>;
@group(0) @binding(2) var<storage, read> pad: array<u32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
${tableWgsl("tok", tok, 4)}
${tableWgsl("pos", pos, 4 + bindingCount(tok))}

@compute @workgroup_size(64, 1)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let r = wg.y;
  let i = wg.x * 64u + lid.x;
  if (r >= p.m || i >= p.width) { return; }
  let b = r % p.batch;
  let col = p.colStart + r / p.batch;
  let what = p.mode & 3u;
  var v = 0.0;
  if (what != 2u) {
    v = tok_at(ids[p.colStart * p.batch + r], i);
  }
  if (what != 1u) {
    // position + 2, with padding at position -1 (table row 1); mode bit 4: pad[b] is the
    // position itself (sequences at their own positions, no padding)
    var row = select(col - pad[b] + 2u, 1u, col < pad[b]);
    if ((p.mode & 4u) != 0u) { row = pad[b] + 2u; }
    v = v + pos_at(row, i);
  }
  out[r * p.width + i] = v;
}
`;
}
