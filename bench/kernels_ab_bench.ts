/**
 * Old GPU kernels against new, interleaved, on one device: the WebGPU backend's decode with
 * the real-GPU kernel family (`kernels: "gpu"`) and the matmul `v3_storage_tiled` (the
 * 64x64-tile product `"auto"` picked on GPUs before issue 26) or `v4_storage_gemv` (the
 * GEMV), on random OPT-shaped checkpoints (`model/fixture.ts`, written once under
 * `.cache/bench/`), greedy, full plan, 16-token prompts. Prints tokens/s per (shape, batch,
 * kernels), the new/old ratio, whether the tokens agree, and each product's workgroups.
 * Made for a lent GPU machine (`bench/device_bench.sh`); on llvmpipe it runs but says
 * nothing about GPUs.
 *
 * Run: `deno run --allow-read=.,../shared --allow-write=./.cache,./out --allow-env=XDG_RUNTIME_DIR,SKIPDECODE_KERNELS
 *   bench/kernels_ab_bench.ts [--shapes opt-125m,opt-1.3b] [--batches 1,8,32] [--tokens 32]
 *   [--repeats 3] [--json FILE]`
 *
 * @example
 * ```ts
 * import { kernelsAbBenchMain } from "./kernels_ab_bench.ts";
 * await kernelsAbBenchMain(["--shapes", "opt-125m", "--batches", "1", "--tokens", "8"]);
 * ```
 *
 * @module
 */
import { parseArgs } from "node:util";
import { createWebGpuBackend, type WebGpuBackend } from "../backend/webgpu/backend.ts";
import { requestGpu } from "../kernels/device.ts";
import { describeProfile } from "../kernels/profile.ts";
import { loadWeights, writeRandomCheckpoint } from "../model/mod.ts";
import type { OptShapeName } from "../model/config.ts";
import { shapeByName } from "./roofline.ts";
import { TINY_MODEL_DIR } from "../data/bundled.ts";

/** One row of the table. */
export interface AbRow {
  /** Model shape. */
  shape: string;
  /** Batch rows. */
  batch: number;
  /** Median tokens/s (prefill included) of the old tiled product. */
  oldTokS: number;
  /** Median tokens/s of the GEMV. */
  newTokS: number;
  /** Greedy tokens identical between the two. */
  sameTokens: boolean;
  /** Workgroups of the fc1 product per dispatch: old, new. */
  fc1Workgroups: [number, number];
}

/** The random checkpoint of `shape` under `cache` (written on first use). */
function fixture(cache: string, shape: string): string {
  if (shape === "tiny-opt-e2e") return TINY_MODEL_DIR; // the bundled trained one
  const dir = `${cache}/${shape}-random`;
  try {
    Deno.statSync(`${dir}/model.safetensors`);
  } catch {
    Deno.mkdirSync(dir, { recursive: true });
    writeRandomCheckpoint(dir, { shape: shape as OptShapeName, seed: 125, dtype: "F16" });
  }
  return dir;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/**
 * Runs the comparison (see the module doc) and prints the table; returns its rows.
 *
 * @example
 * ```ts
 * import { kernelsAbBenchMain } from "./kernels_ab_bench.ts";
 * const rows = await kernelsAbBenchMain(["--batches", "1"]);
 * console.log(rows.length);
 * ```
 */
export async function kernelsAbBenchMain(argv: string[]): Promise<AbRow[]> {
  const { values } = parseArgs({
    args: argv,
    options: {
      shapes: { type: "string" },
      batches: { type: "string" },
      tokens: { type: "string" },
      repeats: { type: "string" },
      json: { type: "string" },
    },
  });
  const shapes = (values.shapes ?? "opt-125m,opt-1.3b").split(",");
  shapes.forEach(shapeByName); // a clear error for an unknown name
  const batches = (values.batches ?? "1,8,32").split(",").map(Number);
  const N = Number(values.tokens ?? 32), repeats = Number(values.repeats ?? 3), P = 16;
  for (const [name, v] of [["--batches", batches], ["--tokens", [N]], ["--repeats", [repeats]]]) {
    if (!(v as number[]).every((x) => Number.isInteger(x) && x >= 1)) {
      throw new Error(`${name} must be positive whole numbers`);
    }
  }
  const gpu = await requestGpu();
  console.log(`adapter: ${describeProfile(gpu.profile)}`);
  const rows: AbRow[] = [];
  try {
    for (const shape of shapes) {
      const weights = await loadWeights(fixture(".cache/bench", shape));
      const cfg = weights.config;
      const engines: [string, WebGpuBackend][] = [];
      try {
        for (const variant of ["v3_storage_tiled", "v4_storage_gemv"]) {
          engines.push([
            variant,
            await createWebGpuBackend(weights, { gpu, kernels: "gpu", matmulVariant: variant }),
          ]);
        }
      } catch (e) {
        // e.g. a kernel that fails its self-check on this adapter: say so, go on
        console.log(`${shape}: cannot compare (${(e as Error).message.split("\n")[0]})`);
        for (const [, en] of engines) en.dispose();
        continue;
      }
      try {
        const all = Array.from({ length: cfg.numHiddenLayers }, (_, l) => l);
        for (const B of batches) {
          const prompts = Array.from({ length: B }, (_, b) => [
            cfg.bosTokenId,
            ...Array.from({ length: P - 1 }, (_, i) => 4 + (b * 131 + i * 17) % 40000),
          ]);
          const req = {
            prompts,
            maxNewTokens: N,
            sets: Array.from({ length: P + N }, () => all),
            padTokenId: cfg.padTokenId,
          };
          const tokS: number[][] = engines.map(() => []);
          const tokens: number[][][] = [];
          for (const [, e] of engines) await e.decode({ ...req, maxNewTokens: 2 }); // compile
          for (let r = 0; r < repeats; r++) {
            for (let i = 0; i < engines.length; i++) { // interleaved
              const t = performance.now();
              const out = await engines[i][1].decode(req);
              tokS[i].push(B * N / ((performance.now() - t) / 1000));
              tokens[i] = out.tokens;
            }
          }
          const fc1 = engines.map(([, e]) => {
            const lin = e.model.layers[0].fc1;
            return e.matmul.dispatchShape(lin, B)?.workgroups[0] ?? 0;
          }) as [number, number];
          const row: AbRow = {
            shape,
            batch: B,
            oldTokS: median(tokS[0]),
            newTokS: median(tokS[1]),
            sameTokens: JSON.stringify(tokens[0]) === JSON.stringify(tokens[1]),
            fc1Workgroups: fc1,
          };
          rows.push(row);
          console.log(
            `| ${shape} | ${B} | ${row.oldTokS.toFixed(1)} | ${row.newTokS.toFixed(1)} | ${
              (row.newTokS / row.oldTokS).toFixed(2)
            } | ${row.sameTokens ? "yes" : "NO"} | ${fc1[0]} -> ${fc1[1]} |`,
          );
        }
      } finally {
        for (const [, e] of engines) e.dispose();
      }
    }
  } finally {
    gpu.device.destroy();
  }
  if (values.json) Deno.writeTextFileSync(values.json, JSON.stringify(rows, null, 2));
  return rows;
}

if (import.meta.main) {
  console.log(
    "| shape | batch | tok/s old (v3 tiled) | tok/s new (v4 GEMV) | new / old | same tokens | fc1 WG old -> new |",
  );
  console.log("| --- | --- | --- | --- | --- | --- | --- |");
  await kernelsAbBenchMain(Deno.args);
}
