/**
 * WGSL template of `v4_storage_gemv`: the decode-sized product
 * `Y[M, N] = act(X[M, K] · W[N, K]^T + b[N]) (+ R[M, N])` for few rows, on real GPUs.
 *
 * - Layout: the storage variants' weight parts (`storage.ts`): `W` part `[n, kw]` row-major,
 *   f16 pairs packed in `u32` words or f32, rows zero-padded to a multiple of 16 elements of
 *   `K`, bound here as `array<vec4<u32>>` (8 halves) or `array<vec4<f32>>` (4 floats): one
 *   16-byte load per invocation and step. `X` rows of `K` f32 from element `p.xe`; `Y`/`R`
 *   rows of `p.ldy` f32 from `p.ye`/`p.re`; this part writes columns `[p.n0, p.n0 + p.n)`.
 *   Same bindings and parameters as `v1_storage_naive.wgsl` / `v3_storage_tiled.wgsl`.
 * - Workgroup: 64 invocations, `COLS` = 4 output columns and `ROWS` (1, 2, 4 or 8) rows.
 *   Invocation `t` reads the 16-byte words `t, t + 64, ...` of each of the 4 weight rows, so
 *   a warp reads contiguous bytes; the activation values of its `k` range for all `ROWS` rows
 *   sit in registers and are reused across the 4 columns. The `ROWS x COLS` partial sums
 *   are reduced with `subgroupAdd` where the device has `subgroups`, else by a shared-memory
 *   tree; invocations `0 .. ROWS*COLS-1` apply the bias / ReLU / residual epilogue.
 * - LayerNorm prologue (`ln`): the workgroup first computes mean and biased variance of its
 *   rows over `K` (two passes, the same tree), then normalises each `X` value as it loads it,
 *   so a pre-LN layer needs no LayerNorm dispatch (bindings 6, 7: `w`, `b`; eps in `p.pad0`).
 * - Dispatch: `(ceil(n / 4), ceil(m / ROWS))`: N/4 workgroups per product (more than the
 *   N/8 a GPU needs to fill its SMs at decode sizes); more than 8 rows are walked in chunks
 *   of 8 (one read of `W` per chunk).
 *
 * - Split mode (`split`, used by `qkv.ts`): q/k/v as one `[3 d, K]` product whose epilogue
 *   routes column `g` to `y` (queries), `yk` or `yv` (the KV cache, f32 or f16 with `kv16`).
 *
 * Sums run in another order than the CPU reference (16-byte chunks, then a tree): within
 * 1e-5 relative, not bit-identical as v1/v3 are.
 *
 * @example
 * ```ts
 * import { gemvWgsl, GEMV_COLS } from "./v4_storage_gemv.ts";
 * const code = gemvWgsl({ rows: 4, f16: true, subgroups: false });
 * console.log(GEMV_COLS, code.includes("@workgroup_size(64)")); // 4 true
 * ```
 *
 * @module
 */

/** Output columns per workgroup. */
export const GEMV_COLS = 4;
/** Invocations per workgroup. */
export const GEMV_THREADS = 64;
/** Row counts a pipeline is specialised for; larger `M` is walked in chunks of the last. */
export const GEMV_ROW_BUCKETS: readonly number[] = [1, 2, 4, 8];

// The epilogue of column j (of this part) of row i: bias, ReLU, residual or accumulation.
const FINISH = `fn finish(i: u32, j: u32, s: f32) {
  if (i >= p.m || j >= p.n) {
    return;
  }
  var v = s + bias[j];
  if ((p.flags & RELU) != 0u) {
    v = max(v, 0.0);
  }
  let o = i * p.ldy + p.n0 + j;
  if ((p.flags & RESIDUAL) != 0u) {
    v = v + r[p.re + o];
  }
  if ((p.flags & ACCUMULATE) != 0u) {
    v = v + y[p.ye + o];
  }
  y[p.ye + o] = v;
}
`;

// The split epilogue: bias, then global column g = n0 + j goes to q, the key or the value block.
const SPLIT_FINISH = `fn finish(i: u32, j: u32, s: f32) {
  if (i >= p.m || j >= p.n) {
    return;
  }
  let v = s + bias[j];
  let g = p.n0 + j;
  let part = g / p.ldy;
  let o = i * p.ldy + (g - part * p.ldy);
  if (part == 0u) {
    y[p.ye + o] = v;
  } else if (part == 1u) {
    yk[p.re + o] = KV(v);
  } else {
    yv[p.ve + o] = KV(v);
  }
}
`;

/** What one specialisation of the template is for. */
export interface GemvShape {
  /** Rows per workgroup (1, 2, 4 or 8). */
  rows: number;
  /** Weights are f16 pairs (else f32). */
  f16: boolean;
  /** Reduce with `subgroupAdd` (the device must have the `subgroups` feature). */
  subgroups: boolean;
  /**
   * LayerNorm prologue: normalise each row of `X` (mean and biased variance over `K`, two
   * passes, eps from `p.pad0` as f32 bits) with `lnw`/`lnb` at bindings 6 and 7.
   */
  ln?: boolean;
  /**
   * Split output (q/k/v as one product): global column `g = p.n0 + j` of the `[3 d, K]`
   * weight goes to `y` (`g < d`, from element `p.ye`), `yk` (`g < 2 d`, from `p.re`) or `yv`
   * (from `p.ve`), each a `[m, d]` row-major block with `d = p.ldy`; no ReLU or residual.
   * Bindings: 3 `y`, 4 `yk` (in place of the residual), 5 `w`, then `lnw`/`lnb` with `ln`,
   * then `yv`.
   */
  split?: boolean;
  /** With `split`: `yk`/`yv` are f16 caches (`array<f16>`, values rounded to nearest). */
  kv16?: boolean;
}

/**
 * The rows bucket for `m` rows: the smallest of {@linkcode GEMV_ROW_BUCKETS} holding them,
 * else the largest (then several workgroup rows).
 *
 * @example
 * ```ts
 * import { gemvRows } from "./v4_storage_gemv.ts";
 * console.log(gemvRows(3), gemvRows(20)); // 4 8
 * ```
 */
export function gemvRows(m: number): number {
  return GEMV_ROW_BUCKETS.find((r) => r >= m) ?? GEMV_ROW_BUCKETS[GEMV_ROW_BUCKETS.length - 1];
}

/**
 * WGSL of the GEMV kernel for one {@linkcode GemvShape} (see the module doc).
 *
 * @example
 * ```ts
 * import { gemvWgsl } from "./v4_storage_gemv.ts";
 * console.log(gemvWgsl({ rows: 1, f16: false, subgroups: true }).startsWith("enable subgroups"));
 * ```
 */
export function gemvWgsl(shape: GemvShape): string {
  const R = shape.rows, C = GEMV_COLS, T = GEMV_THREADS;
  if (!GEMV_ROW_BUCKETS.includes(R)) throw new Error(`gemv: rows must be 1, 2, 4 or 8, got ${R}`);
  const per = shape.f16 ? 8 : 4; // k values per 16-byte word
  const rows = [...Array(R).keys()], cols = [...Array(C).keys()];
  const lines: string[] = [];
  const add = (s: string) => lines.push(s);
  if (shape.subgroups) add("enable subgroups;");
  if (shape.split && shape.kv16) add("enable f16;");
  add(
    `// v4_storage_gemv (${shape.f16 ? "f16" : "f32"} weights, ${R} rows, ${C} columns, ` +
      `${shape.subgroups ? "subgroupAdd" : "shared-memory tree"}); see v4_storage_gemv.ts`,
  );
  add(`struct Params {
  m: u32, n: u32, k: u32, ldy: u32,
  n0: u32, flags: u32, kw: u32, xe: u32,
  ye: u32, re: u32, pad0: u32, ve: u32,
}
const RELU: u32 = 1u;
const RESIDUAL: u32 = 2u;
const ACCUMULATE: u32 = 4u;
const SLOTS: u32 = ${R * C}u;
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
${
    shape.split
      ? `@group(0) @binding(4) var<storage, read_write> yk: array<${shape.kv16 ? "f16" : "f32"}>;`
      : "@group(0) @binding(4) var<storage, read> r: array<f32>;"
  }
@group(0) @binding(5) var<storage, read> w: array<vec4<${shape.f16 ? "u32" : "f32"}>>;
var<workgroup> red: array<f32, ${R * C * T}>; // [slot][invocation or subgroup]
${
    shape.ln
      ? `@group(0) @binding(6) var<storage, read> lnw: array<f32>;
@group(0) @binding(7) var<storage, read> lnb: array<f32>;
`
      : ""
  }${
    shape.split
      ? `@group(0) @binding(${shape.ln ? 8 : 6}) var<storage, read_write> yv: array<${
        shape.kv16 ? "f16" : "f32"
      }>;
`
      : ""
  }
// sums red[s * ${T} + 0 .. ${T}] into red[s * ${T}] for slots s < slots (all invocations call it)
fn tree(t: u32, slots: u32) {
  workgroupBarrier();
  for (var h = ${T / 2}u; h > 0u; h = h >> 1u) {
    if (t < h) {
      for (var s = 0u; s < slots; s = s + 1u) {
        red[s * ${T}u + t] = red[s * ${T}u + t] + red[s * ${T}u + t + h];
      }
    }
    workgroupBarrier();
  }
}

// X[row, k] (normalised with the LayerNorm prologue), zero past K (rows of W are
// zero-padded, X rows are not)
fn xv(base: u32, k: u32, mean: f32, rstd: f32) -> f32 {
  let kk = min(k, p.k - 1u);
  ${
    shape.ln
      ? "let v = (x[base + kk] - mean) * rstd * lnw[kk] + lnb[kk];"
      : "let v = x[base + kk];"
  }
  return select(0.0, v, k < p.k);
}

${shape.split ? SPLIT_FINISH.replaceAll("KV(", shape.kv16 ? "f16(" : "(") : FINISH}`);
  const sgArgs = shape.subgroups
    ? `,\n  @builtin(subgroup_invocation_id) sgi: u32, @builtin(subgroup_size) sgs: u32`
    : "";
  add(`@compute @workgroup_size(${T})
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) t: u32${sgArgs}) {
  let c0 = wg.x * ${C}u;
  let m0 = wg.y * ${R}u;
  let words = p.kw / 4u; // 16-byte words per weight row (kw: 32-bit words, padded)`);
  for (const i of rows) add(`  let xb${i} = p.xe + min(m0 + ${i}u, p.m - 1u) * p.k;`);
  if (shape.ln) {
    // LayerNorm statistics of the workgroup's rows: mean, then the biased variance around it
    add("  let eps = bitcast<f32>(p.pad0);");
    for (const pass of ["mean", "var"]) {
      for (const i of rows) {
        add(`  var q${pass}${i} = 0.0;`);
        add(`  for (var k = t; k < p.k; k = k + ${T}u) {`);
        add(
          pass === "mean"
            ? `    q${pass}${i} = q${pass}${i} + x[xb${i} + k];`
            : `    let e = x[xb${i} + k] - mean${i};
    q${pass}${i} = q${pass}${i} + e * e;`,
        );
        add("  }");
        add(`  red[${i}u * ${T}u + t] = q${pass}${i};`);
      }
      add(`  tree(t, ${R}u);`);
      for (const i of rows) {
        add(
          pass === "mean"
            ? `  let mean${i} = red[${i}u * ${T}u] / f32(p.k);`
            : `  let rstd${i} = inverseSqrt(red[${i}u * ${T}u] / f32(p.k) + eps);`,
        );
      }
      add("  workgroupBarrier(); // red is written again below");
    }
  } else {
    for (const i of rows) {
      add(`  let mean${i} = 0.0;
  let rstd${i} = 1.0;`);
    }
  }
  for (const c of cols) add(`  let wr${c} = min(c0 + ${c}u, p.n - 1u) * words;`);
  for (const i of rows) for (const c of cols) add(`  var a${i}_${c} = 0.0;`);
  add(`  for (var q = t; q < words; q = q + ${T}u) {
    let k0 = q * ${per}u;`);
  for (const i of rows) {
    const at = (o: number) => `xv(xb${i}, k0 + ${o}u, mean${i}, rstd${i})`;
    add(`    let xa${i} = vec4<f32>(${at(0)}, ${at(1)}, ${at(2)}, ${at(3)});`);
    if (shape.f16) add(`    let xh${i} = vec4<f32>(${at(4)}, ${at(5)}, ${at(6)}, ${at(7)});`);
  }
  for (const c of cols) {
    add(`    let q${c} = w[wr${c} + q];`);
    if (shape.f16) {
      add(`    let lo${c} = vec4<f32>(unpack2x16float(q${c}.x), unpack2x16float(q${c}.y));`);
      add(`    let hi${c} = vec4<f32>(unpack2x16float(q${c}.z), unpack2x16float(q${c}.w));`);
      for (const i of rows) {
        add(`    a${i}_${c} = a${i}_${c} + (dot(xa${i}, lo${c}) + dot(xh${i}, hi${c}));`);
      }
    } else {
      for (const i of rows) add(`    a${i}_${c} = a${i}_${c} + dot(xa${i}, q${c});`);
    }
  }
  add("  }");
  if (shape.subgroups) {
    // one partial per subgroup, then invocations 0..SLOTS-1 sum the subgroups' partials
    add(`  let sg = t / sgs;
  let groups = (${T}u + sgs - 1u) / sgs;`);
    for (const i of rows) {
      for (const c of cols) {
        add(`  let s${i}_${c} = subgroupAdd(a${i}_${c});`);
        add(`  if (sgi == 0u) { red[${i * C + c}u * ${T}u + sg] = s${i}_${c}; }`);
      }
    }
    add(`  workgroupBarrier();
  if (t < SLOTS) {
    var s = 0.0;
    for (var g = 0u; g < groups; g = g + 1u) {
      s = s + red[t * ${T}u + g];
    }
    finish(m0 + t / ${C}u, c0 + t % ${C}u, s);
  }
}`);
  } else {
    for (const i of rows) {
      for (const c of cols) add(`  red[${i * C + c}u * ${T}u + t] = a${i}_${c};`);
    }
    add(`  tree(t, SLOTS);
  if (t < SLOTS) {
    finish(m0 + t / ${C}u, c0 + t % ${C}u, red[t * ${T}u]);
  }
}`);
  }
  return lines.join("\n");
}
