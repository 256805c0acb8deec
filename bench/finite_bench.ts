/**
 * What the load-time check for non-finite weights (`model/finite.ts`) costs: the scan of
 * every stored tensor against reading the same tensors' bytes alone (what any backend does
 * anyway), interleaved in one run, on the bundled tiny checkpoint and on a random
 * checkpoint of OPT-125m's shape (F16, written to a temporary folder).
 *
 * `deno run --allow-read --allow-write=/tmp --allow-sys=loadavg bench/finite_bench.ts`
 *
 * @module
 */
import { allTensors, loadWeightsSync } from "../model/checkpoint.ts";
import { checkFiniteWeights } from "../model/finite.ts";
import { writeRandomCheckpoint } from "../model/fixture.ts";
import { TINY_MODEL_DIR } from "../data/bundled.ts";

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

function measure(name: string, dir: string, reps: number): void {
  const w = loadWeightsSync(dir);
  const bytes = allTensors(w).reduce((a, t) => a + t.bytes().length, 0);
  const read: number[] = [], check: number[] = [];
  for (let r = 0; r < reps; r++) {
    let t0 = performance.now();
    for (const t of allTensors(w)) t.bytes();
    read.push(performance.now() - t0);
    t0 = performance.now();
    checkFiniteWeights(w);
    check.push(performance.now() - t0);
  }
  const mr = median(read), mc = median(check);
  console.log(
    `${name}: ${(bytes / 1e6).toFixed(1)} MB; read ${mr.toFixed(1)} ms, read + scan ` +
      `${mc.toFixed(1)} ms (scan ${(mc - mr).toFixed(1)} ms, ${
        ((mc - mr) / (bytes / 1e6)).toFixed(2)
      } ms/MB), median of ${reps}`,
  );
}

if (import.meta.main) {
  console.log(`load average ${Deno.loadavg().map((x) => x.toFixed(2)).join(" ")}`);
  measure("tiny-opt-e2e", TINY_MODEL_DIR, 7);
  const dir = Deno.makeTempDirSync({ prefix: "finite-bench-" });
  try {
    writeRandomCheckpoint(dir, { shape: "opt-125m", dtype: "F16" });
    measure("opt-125m-shaped random", dir, 5);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
}
