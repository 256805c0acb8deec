/**
 * The decode roofline: per decode kernel of one token step, the bytes it must move, its
 * bandwidth floor on the adapter at hand and on a named reference GPU (bandwidth and SM
 * count as inputs, default H100 SXM: 3350 GB/s, 132 SMs), its workgroups with the GPU
 * kernels (`v4_storage_gemv`: N/4 per product and row chunk) and with the old tiled ones
 * (`v3_storage_tiled`: N/64), against the N/8 a GPU needs; and, where the adapter has
 * `timestamp-query`, the measured GPU time per kernel family of a profiled decode (dispatches
 * per step and per layer counted from the same profile). The expected gap on a real GPU is
 * explicit before one is lent.
 *
 * Run: `deno run --allow-read=.,../shared --allow-write=./.cache --allow-env=XDG_RUNTIME_DIR,SKIPDECODE_REF_GPU
 *   bench/roofline.ts [--quick] [--ref-gpu NAME:GBPS:SMS] [--shapes opt-125m,opt-1.3b]
 *   [--batches 1,8,32]` (also part of `deno task bench`; `SKIPDECODE_REF_GPU` sets the
 * reference there).
 *
 * @example
 * ```ts
 * import { decodeRoofline, parseRefGpu, rooflineMarkdown, shapeByName } from "./roofline.ts";
 * const rows = decodeRoofline(shapeByName("opt-125m"), 1, 48);
 * console.log(rooflineMarkdown(rows, parseRefGpu("H100:3350:132"), null));
 * ```
 *
 * @module
 */
import { parseArgs } from "node:util";
import { GEMV_COLS, gemvRows } from "../kernels/matmul/v4_storage_gemv.ts";
import type { KernelClass } from "../kernels/profile.ts";
import { OPT_SHAPES } from "../model/config.ts";
import type { OptConfig } from "../model/types.ts";

/** A GPU to compare against: memory bandwidth and SM (compute unit) count. */
export interface RefGpu {
  /** Name for the table. */
  name: string;
  /** Memory bandwidth, GB/s. */
  gbps: number;
  /** Streaming multiprocessors (compute units). */
  sms: number;
}

/** The decode-relevant shape of an OPT model. */
export interface DecodeShape {
  /** Label. */
  label: string;
  /** Hidden size `d`. */
  hidden: number;
  /** FFN size `f`. */
  ffn: number;
  /** Decoder layers. */
  layers: number;
  /** Attention heads. */
  heads: number;
  /** Vocabulary rows of the (tied) LM head. */
  vocab: number;
  /** Bytes per weight (2: f16 checkpoints stay f16 on the device). */
  weightBytes: number;
}

/**
 * The decode shape of an OPT configuration (f16 weights unless `weightBytes` says other).
 *
 * @example
 * ```ts
 * import { decodeShape } from "./roofline.ts";
 * import { OPT_SHAPES } from "../model/config.ts";
 * console.log(decodeShape("opt-1.3b", OPT_SHAPES["opt-1.3b"]).hidden); // 2048
 * ```
 */
export function decodeShape(
  label: string,
  cfg: Pick<
    OptConfig,
    "hiddenSize" | "ffnDim" | "numHiddenLayers" | "numAttentionHeads" | "vocabSize"
  >,
  weightBytes = 2,
): DecodeShape {
  return {
    label,
    hidden: cfg.hiddenSize,
    ffn: cfg.ffnDim,
    layers: cfg.numHiddenLayers,
    heads: cfg.numAttentionHeads,
    vocab: cfg.vocabSize,
    weightBytes,
  };
}

/** The bundled tiny model's shape (`bundled/models/tiny-opt-e2e/config.json`). */
const TINY = {
  hiddenSize: 128,
  ffnDim: 512,
  numHiddenLayers: 12,
  numAttentionHeads: 4,
  vocabSize: 50272,
};

/**
 * Shapes by name: Meta's OPT sizes (`model/config.ts`) and the tiny model.
 *
 * @throws {Error} naming `--shapes` and the known names.
 *
 * @example
 * ```ts
 * import { shapeByName } from "./roofline.ts";
 * console.log(shapeByName("opt-125m").ffn); // 3072
 * ```
 */
export function shapeByName(name: string): DecodeShape {
  if (name === "tiny-opt-e2e") return decodeShape(name, TINY);
  const cfg = (OPT_SHAPES as Record<string, OptConfig>)[name];
  if (!cfg) {
    throw new Error(
      `--shapes: unknown shape "${name}" (known: tiny-opt-e2e, ${
        Object.keys(OPT_SHAPES).join(", ")
      })`,
    );
  }
  return decodeShape(name, cfg);
}

/** One decode kernel of a token step. */
export interface RooflineRow {
  /** Kernel (`q/k/v`, `fc1`, `attention`, ...). */
  kernel: string;
  /** Profiler family it is timed under (`matmul`, `attention`, ...). */
  family: string;
  /** Dispatches of it per token step (all layers). */
  perStep: number;
  /** Bytes moved per token step (all its dispatches): weights, activations, KV. */
  bytes: number;
  /** Output columns `N` of a product (null for other kernels). */
  n: number | null;
  /** Workgroups per dispatch with the GPU kernels (v4 GEMV for products). */
  workgroups: number;
  /** Workgroups per dispatch with the old tiled product (`v3_storage_tiled`), products only. */
  workgroupsTiled: number | null;
}

/**
 * Workgroups of one `v4_storage_gemv` product of `m` rows and `n` columns (up to 64 rows).
 *
 * @example
 * ```ts
 * import { gemvWorkgroups } from "./roofline.ts";
 * console.log(gemvWorkgroups(768, 1)); // 192
 * ```
 */
export function gemvWorkgroups(n: number, m: number): number {
  return Math.ceil(n / GEMV_COLS) * Math.ceil(m / gemvRows(m));
}

/**
 * The decode kernels of one token step at batch `batch` with `ctx` cached columns.
 *
 * @example
 * ```ts
 * import { decodeRoofline, shapeByName } from "./roofline.ts";
 * const rows = decodeRoofline(shapeByName("opt-125m"), 8, 48);
 * console.log(rows.map((r) => r.kernel).join(", "));
 * ```
 */
export function decodeRoofline(shape: DecodeShape, batch: number, ctx: number): RooflineRow[] {
  const { hidden: d, ffn: f, layers: L, heads: H, vocab: V, weightBytes: wb } = shape;
  const B = batch, F = 4; // activations and KV are f32
  const product = (
    kernel: string,
    family: string,
    perStep: number,
    k: number,
    n: number,
    residual: boolean,
    ln = false,
  ): RooflineRow => ({
    kernel,
    family,
    perStep,
    bytes: perStep *
      (n * k * wb + n * F + B * k * F + B * n * F * (residual ? 2 : 1) + (ln ? 2 * k * F : 0)),
    n,
    workgroups: gemvWorkgroups(n, B),
    workgroupsTiled: Math.ceil(n / 64) * Math.ceil(B / 64),
  });
  const rowsOnly = (
    kernel: string,
    family: string,
    perStep: number,
    bytes: number,
    wg: number,
  ) => ({
    kernel,
    family,
    perStep,
    bytes,
    n: null,
    workgroups: wg,
    workgroupsTiled: null,
  });
  return [
    rowsOnly("embedding", "embedding", 1, B * d * (wb + F + F), B),
    // the GPU kernels fold the two LayerNorms of a pre-LN layer into the GEMV prologue of
    // q/k/v and fc1 (their parameters are counted there): only the final one dispatches
    rowsOnly("layernorm (final)", "layernorm", 1, 2 * B * d * F + 2 * d * F, B),
    // q, k and v as one product of 3d columns routed to q and the KV cache (qkv.ts)
    product("q/k/v (one split product, LN prologue)", "matmul", L, d, 3 * d, false, true),
    // the new column's keys and values are written by the q/k/v product (its output bytes);
    // attention reads the query, every cached column's keys and values, writes its output
    rowsOnly(
      "attention (KV read)",
      "attention",
      L,
      L * (2 * B * ctx * d * F + 2 * B * d * F),
      B * H,
    ),
    product("out proj", "matmul", L, d, d, true),
    product("fc1 (LN prologue, +ReLU)", "matmul", L, d, f, false, true),
    product("fc2 (+residual)", "matmul", L, f, d, true),
    product("LM head (tied)", "lm head", 1, d, V, false),
    rowsOnly("select (greedy)", "select", 1, B * V * F, B),
  ];
}

/**
 * Parses `NAME:GBPS:SMS` (e.g. `H100:3350:132`).
 *
 * @throws {Error} naming the option and the expected form.
 *
 * @example
 * ```ts
 * import { parseRefGpu } from "./roofline.ts";
 * console.log(parseRefGpu("A100:2039:108").sms); // 108
 * ```
 */
export function parseRefGpu(spec: string): RefGpu {
  const [name, gbps, sms] = spec.split(":");
  const g = Number(gbps), s = Number(sms);
  if (!name || !(g > 0) || !Number.isInteger(s) || s < 1) {
    throw new Error(
      `--ref-gpu (or SKIPDECODE_REF_GPU) must be NAME:GBPS:SMS, e.g. H100:3350:132, got "${spec}"`,
    );
  }
  return { name, gbps: g, sms: s };
}

/** The default reference: NVIDIA H100 SXM (3.35 TB/s HBM3, 132 SMs). */
export const H100: RefGpu = { name: "H100 SXM", gbps: 3350, sms: 132 };

/** What was measured on the adapter at hand. */
export interface AdapterFigures {
  /** Adapter name. */
  name: string;
  /** Measured copy bandwidth, GB/s. */
  gbps: number;
  /** Measured GPU ms per token step, by profiler family (when `timestamp-query` exists). */
  familyMs?: Record<string, number>;
  /** Dispatches per token step counted by the profiler. */
  dispatchesPerStep?: number;
}

const fmtUs = (us: number) => us >= 100 ? us.toFixed(0) : us >= 1 ? us.toFixed(1) : us.toFixed(2);

/**
 * The roofline table (Markdown): one row per kernel, then a total and, with `adapter`
 * measurements, floor against measured time per family.
 *
 * @example
 * ```ts
 * import { decodeRoofline, H100, rooflineMarkdown, shapeByName } from "./roofline.ts";
 * console.log(rooflineMarkdown(decodeRoofline(shapeByName("opt-125m"), 1, 48), H100, null));
 * ```
 */
export function rooflineMarkdown(
  rows: RooflineRow[],
  ref: RefGpu,
  adapter: AdapterFigures | null,
): string {
  const us = (bytes: number, gbps: number) => bytes / (gbps * 1e3);
  const head = [
    "kernel",
    "dispatches/step",
    "MB/step",
    `floor µs ${ref.name}`,
    ...(adapter ? [`floor µs ${adapter.name}`] : []),
    "WG/dispatch GPU kernels",
    "WG/dispatch old tiled",
    "N/8",
    `waves on ${ref.sms} SMs`,
  ];
  const lines = [`| ${head.join(" | ")} |`, `|${head.map(() => " --- ").join("|")}|`];
  let total = 0, dispatches = 0;
  for (const r of rows) {
    total += r.bytes;
    dispatches += r.perStep;
    lines.push(
      `| ${
        [
          r.kernel,
          r.perStep,
          (r.bytes / 1e6).toFixed(2),
          fmtUs(us(r.bytes, ref.gbps)),
          ...(adapter ? [fmtUs(us(r.bytes, adapter.gbps))] : []),
          r.workgroups,
          r.workgroupsTiled ?? "",
          r.n === null ? "" : Math.ceil(r.n / 8),
          (r.workgroups / ref.sms).toFixed(1),
        ].join(" | ")
      } |`,
    );
  }
  lines.push(
    `| total | ${dispatches} | ${(total / 1e6).toFixed(2)} | ${fmtUs(us(total, ref.gbps))} | ${
      adapter ? `${fmtUs(us(total, adapter.gbps))} | ` : ""
    } | | | |`,
  );
  if (adapter?.familyMs) {
    lines.push("", `| family | floor µs ${adapter.name} | measured µs | measured / floor |`);
    lines.push("| --- | --- | --- | --- |");
    const fams = [...new Set(rows.map((r) => r.family))];
    for (const fam of fams) {
      const bytes = rows.filter((r) => r.family === fam).reduce((s, r) => s + r.bytes, 0);
      const floor = us(bytes, adapter.gbps);
      const ms = adapter.familyMs[fam];
      lines.push(
        `| ${fam} | ${fmtUs(floor)} | ${ms === undefined ? "not timed" : fmtUs(ms * 1e3)} | ${
          ms === undefined ? "" : (ms * 1e3 / floor).toFixed(1)
        } |`,
      );
    }
  }
  return lines.join("\n");
}

/**
 * Copy bandwidth of `device` in GB/s (bytes read plus written over GPU time of a few large
 * buffer copies in one submission, one round trip).
 *
 * @example
 * ```ts
 * import { copyBandwidth } from "./roofline.ts";
 * declare const device: GPUDevice;
 * console.log(`${(await copyBandwidth(device)).toFixed(1)} GB/s`);
 * ```
 */
export async function copyBandwidth(
  device: GPUDevice,
  bytes = 64 << 20,
  reps = 4,
): Promise<number> {
  const a = device.createBuffer({ size: bytes, usage: GPUBufferUsage.COPY_SRC });
  const b = device.createBuffer({ size: bytes, usage: GPUBufferUsage.COPY_DST });
  try {
    const round = async (n: number) => {
      const enc = device.createCommandEncoder();
      for (let i = 0; i < n; i++) enc.copyBufferToBuffer(a, 0, b, 0, bytes);
      const t = performance.now();
      device.queue.submit([enc.finish()]);
      await device.queue.onSubmittedWorkDone();
      return performance.now() - t;
    };
    await round(1); // first touch
    // the difference of two rounds removes the fixed cost of a round trip (~11 ms in Deno)
    const one = await round(1), many = await round(1 + reps);
    const ms = Math.max(many - one, 1e-3);
    return (2 * bytes * reps) / (ms * 1e6);
  } finally {
    a.destroy();
    b.destroy();
  }
}

/**
 * A profiled decode (timestamp queries) of `dir` at batch `batch`: GPU ms per token step by
 * kernel family and dispatches per step, for the kernel family `kernels` (forced on this
 * adapter when given). `null` without `timestamp-query`.
 *
 * @example
 * ```ts
 * import { measureDecode } from "./roofline.ts";
 * const m = await measureDecode("bundled/models/tiny-opt-e2e", 1, "gpu");
 * console.log(m?.dispatchesPerStep);
 * ```
 */
export async function measureDecode(
  dir: string,
  batch: number,
  kernels?: KernelClass,
  tokens = 9,
): Promise<{ familyMs: Record<string, number>; dispatchesPerStep: number; matmul: string } | null> {
  const { createWebGpuBackend } = await import("../backend/webgpu/backend.ts");
  const { loadWeights } = await import("../model/mod.ts");
  const { requestGpu } = await import("../kernels/device.ts");
  const gpu = await requestGpu();
  if (!gpu.features.has("timestamp-query")) {
    gpu.device.destroy();
    return null;
  }
  const weights = await loadWeights(dir);
  const cfg = weights.config;
  const backend = await createWebGpuBackend(weights, { gpu, kernels, profile: true, warmup: true });
  try {
    const P = 16, L = cfg.numHiddenLayers;
    const all = Array.from({ length: L }, (_, l) => l);
    const prompts = Array.from(
      { length: batch },
      (
        _,
        b,
      ) => [
        cfg.bosTokenId,
        ...Array.from({ length: P - 1 }, (_, i) => 4 + (b * 131 + i * 17) % 40000),
      ],
    );
    const req = {
      prompts,
      maxNewTokens: tokens,
      sets: Array.from({ length: P + tokens }, () => all),
      padTokenId: cfg.padTokenId,
      chunkSize: tokens,
    };
    await backend.decode(req); // compile this batch's shapes
    const out = await backend.decode(req);
    const steps = tokens - 1; // the first token comes from the prefill
    const familyMs: Record<string, number> = {};
    let count = 0;
    for (const [fam, t] of Object.entries(out.profile!.decode)) {
      if (fam === "readback") continue;
      familyMs[fam] = t.ms / steps;
      count += t.count;
    }
    return { familyMs, dispatchesPerStep: count / steps, matmul: backend.matmul.variant };
  } finally {
    backend.dispose();
    gpu.device.destroy();
  }
}

/**
 * Prints the roofline tables (see the module doc); `argv` as the command line.
 *
 * @example
 * ```ts
 * import { rooflineBenchMain } from "./roofline.ts";
 * await rooflineBenchMain(["--quick"]);
 * ```
 */
export async function rooflineBenchMain(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      quick: { type: "boolean" },
      "ref-gpu": { type: "string" },
      shapes: { type: "string" },
      batches: { type: "string" },
      context: { type: "string" },
    },
  });
  let envRef: string | undefined;
  try {
    envRef = Deno.env.get("SKIPDECODE_REF_GPU");
  } catch { /* no env permission: the default reference */ }
  const refSpec = values["ref-gpu"] ?? envRef;
  const ref = refSpec ? parseRefGpu(refSpec) : H100;
  const shapes = (values.shapes ?? (values.quick ? "opt-125m" : "opt-125m,opt-1.3b")).split(",");
  const resolved = shapes.map(shapeByName);
  const batches = (values.batches ?? (values.quick ? "1" : "1,8,32")).split(",").map(Number);
  if (!batches.every((b) => Number.isInteger(b) && b >= 1)) {
    throw new Error(`--batches must be positive whole numbers, got "${values.batches}"`);
  }
  const ctx = Number(values.context ?? 48); // 16-token prompt + 32 new tokens, as the decode table
  let adapter: AdapterFigures | null = null;
  const gpu = await navigator.gpu?.requestAdapter();
  if (gpu) {
    const device = await gpu.requestDevice();
    try {
      adapter = {
        name: (gpu.info.description || gpu.info.vendor || "adapter").split(" (")[0],
        gbps: await copyBandwidth(device),
      };
    } finally {
      device.destroy();
    }
  }
  console.log(
    `\nDecode roofline (one token step, KV length ${ctx}, f16 weights, f32 activations and KV): ` +
      `reference ${ref.name} ${ref.gbps} GB/s, ${ref.sms} SMs` +
      (adapter ? `; ${adapter.name} copy bandwidth measured ${adapter.gbps.toFixed(1)} GB/s` : ""),
  );
  for (const s of resolved) {
    for (const b of batches) {
      console.log(`\n${s.label}, batch ${b}:\n`);
      console.log(rooflineMarkdown(decodeRoofline(s, b, ctx), ref, adapter));
    }
  }
  if (!adapter || values.quick) return; // the measured decode takes half a minute on llvmpipe
  // host recording per decode step at steps 1, 64 and 256, both kernel families
  const { recordingBenchMain } = await import("./recording_bench.ts");
  await recordingBenchMain();
  // measured on this adapter: the bundled tiny model (OPT architecture, d = 128), batch 1,
  // with its own kernels and with the GPU kernels forced
  const { TINY_MODEL_DIR } = await import("../data/bundled.ts");
  for (const kernels of [undefined, "gpu"] as const) {
    const m = await measureDecode(TINY_MODEL_DIR, 1, kernels);
    if (!m) {
      console.log("\n(no timestamp-query on this adapter: no measured column)");
      return;
    }
    const tiny = shapeByName("tiny-opt-e2e");
    console.log(
      `\ntiny-opt-e2e, batch 1, measured on ${adapter.name} (${kernels ?? "its own"} kernels, ` +
        `matmul ${m.matmul}): ${m.dispatchesPerStep.toFixed(0)} dispatches per step, ` +
        `${
          ((m.dispatchesPerStep - 4) / tiny.layers).toFixed(1)
        } per layer (timed passes; the texture ` +
        "matmul's X repack counts with its product)\n",
    );
    console.log(
      rooflineMarkdown(decodeRoofline(tiny, 1, ctx), ref, {
        ...adapter,
        ...m,
      }),
    );
  }
}

if (import.meta.main) await rooflineBenchMain(Deno.args);
