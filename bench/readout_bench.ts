/**
 * Does the per-layer readout option cost anything when it is off? An interleaved A/B in one
 * process on the tiny checkpoint: the uncached forward (and, on the CPU, the cached decode
 * that shares its layer loop) of this tree with `readout` absent, against the same call on a
 * baseline tree (a `git archive` of the commit before the readout, passed as `--baseline`),
 * or, without one, against `readout: undefined` passed explicitly. Repeats alternate the
 * order (ABBA) and the minimum and median of each side are printed with the load average.
 * It also times the readout when on, and, for WebGPU, how much of it the CPU-side
 * reduction (softmax, top-k, entropy over `V = 50272`) takes.
 *
 * ```sh
 * mkdir -p /tmp/readout-base && git archive c42d37f | tar -x -C /tmp/readout-base
 * deno run --allow-read=.,/tmp/readout-base --allow-env=XDG_RUNTIME_DIR --allow-sys=loadavg \
 *   bench/readout_bench.ts --baseline /tmp/readout-base [--tree DIR] \
 *   [--backend cpu|webgpu|both] [--batch 4] [--columns 40] [--repeats 7]
 * ```
 *
 * `--tree DIR` takes side B (the CPU backend) from a snapshot too, e.g. the commit that added
 * the readout, so that uncommitted edits of the working tree stay out of the comparison:
 *
 * ```sh
 * mkdir -p /tmp/readout-mine && git archive 59383a2 | tar -x -C /tmp/readout-mine
 * ```
 *
 * @module
 */
import type { Backend, ForwardRequest } from "../backend/types.ts";
import { createCpuBackend } from "../backend/cpu/backend.ts";
import { reduceLogits } from "../backend/readout.ts";
import { quietVulkanRuntimeDir } from "../kernels/device.ts";
import { loadWeights } from "../model/mod.ts";
import type { OptWeights } from "../model/types.ts";
import { fullPlanSets } from "../schedule/mod.ts";

const TINY = "bundled/models/tiny-opt-e2e";

function flag(name: string, fallback: string): string {
  const i = Deno.args.indexOf(`--${name}`);
  if (i < 0) return fallback;
  const v = Deno.args[i + 1];
  if (v === undefined || v.startsWith("--")) throw new Error(`--${name} needs a value`);
  return v;
}

const stats = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return { min: s[0], median: s[Math.floor(s.length / 2)] };
};

async function timeIt(fn: () => Promise<unknown>): Promise<number> {
  const t0 = performance.now();
  await fn();
  return performance.now() - t0;
}

/** ABBA-interleaved timing of two calls; returns per-side times. */
async function ab(
  a: () => Promise<unknown>,
  b: () => Promise<unknown>,
  repeats: number,
): Promise<{ a: number[]; b: number[] }> {
  await a(); // warm-up (compilation, caches)
  await b();
  const ta: number[] = [], tb: number[] = [];
  for (let r = 0; r < repeats; r++) {
    if (r % 2 === 0) {
      ta.push(await timeIt(a));
      tb.push(await timeIt(b));
    } else {
      tb.push(await timeIt(b));
      ta.push(await timeIt(a));
    }
  }
  return { a: ta, b: tb };
}

function line(label: string, aName: string, bName: string, t: { a: number[]; b: number[] }) {
  const sa = stats(t.a), sb = stats(t.b);
  console.log(
    `| ${label} | ${aName}: min ${sa.min.toFixed(1)} / median ${sa.median.toFixed(1)} ms | ` +
      `${bName}: min ${sb.min.toFixed(1)} / median ${sb.median.toFixed(1)} ms | ` +
      `${(sb.min / sa.min).toFixed(3)} / ${(sb.median / sa.median).toFixed(3)} |`,
  );
}

const loadavg = () => {
  try {
    return Deno.loadavg().map((x) => x.toFixed(2)).join(" ");
  } catch {
    return "unknown (grant --allow-sys=loadavg)";
  }
};

if (import.meta.main) {
  quietVulkanRuntimeDir();
  const which = flag("backend", "cpu");
  const B = Number(flag("batch", "4"));
  const T = Number(flag("columns", "40"));
  const repeats = Number(flag("repeats", "7"));
  const baseline = Deno.args.includes("--baseline") ? flag("baseline", "") : undefined;
  const tree = Deno.args.includes("--tree") ? flag("tree", "") : undefined;
  const weights = await loadWeights(TINY);
  const cfg = weights.config;
  const L = cfg.numHiddenLayers, V = cfg.vocabSize;
  const rows = Array.from(
    { length: B },
    (_, b) => Array.from({ length: T - (b % 3) }, (_, i) => i === 0 ? 2 : 4 + ((i * 7 + b) % 900)),
  );
  const req: ForwardRequest = { rows, sets: fullPlanSets(L, T), padTokenId: cfg.padTokenId };
  console.log(
    `readout bench: tiny checkpoint (L ${L}, d ${cfg.hiddenSize}, V ${V}), batch ${B}, ` +
      `${T} columns, ${repeats} interleaved repeats; load average before: ${loadavg()}`,
  );
  console.log("| call | A | B | B/A (min / median) |\n| --- | --- | --- | --- |");
  const backends: [string, Backend, Backend | undefined][] = [];
  if (which === "cpu" || which === "both") {
    let base: Backend | undefined;
    if (baseline) {
      const mod = await import(`file://${baseline}/backend/cpu/backend.ts`);
      // The baseline tree's loader reads the same checkpoint into its own weight objects.
      const w0: OptWeights = await (await import(`file://${baseline}/model/mod.ts`))
        .loadWeights(TINY);
      base = mod.createCpuBackend(w0) as Backend;
    }
    let mine: Backend = createCpuBackend(weights);
    if (tree) {
      // B from a snapshot of this change alone (e.g. `git archive <commit>`), so concurrent
      // uncommitted edits of the working tree do not enter the comparison.
      const mod = await import(`file://${tree}/backend/cpu/backend.ts`);
      const w1: OptWeights = await (await import(`file://${tree}/model/mod.ts`))
        .loadWeights(TINY);
      mine = mod.createCpuBackend(w1) as Backend;
    }
    backends.push(["cpu", mine, base]);
  }
  if (which === "webgpu" || which === "both") {
    const { createWebGpuBackend } = await import("../backend/webgpu/mod.ts");
    backends.push(["webgpu", await createWebGpuBackend(weights, { warmup: true }), undefined]);
  }
  for (const [name, be, base] of backends) {
    const bName = base ? "this tree, readout absent" : "readout: undefined";
    const aName = base ? "baseline tree" : "readout absent";
    const aBe = base ?? be;
    line(
      `${name} forward`,
      aName,
      bName,
      await ab(
        () => aBe.forward(req),
        () => be.forward(base ? req : { ...req, readout: undefined }),
        repeats,
      ),
    );
    if (name === "cpu") {
      const dreq = {
        prompts: rows.map((r) => r.slice(0, 12)),
        maxNewTokens: 16,
        sets: fullPlanSets(L, 12 + 16),
        padTokenId: cfg.padTokenId,
      };
      line(
        `${name} decode (12 + 16)`,
        aName,
        "this tree",
        await ab(() => aBe.decode(dreq), () => be.decode(dreq), repeats),
      );
    }
    const on: number[] = [];
    for (let r = 0; r < Math.max(2, Math.ceil(repeats / 3)); r++) {
      on.push(await timeIt(() => be.forward({ ...req, readout: { topK: 5 } })));
    }
    const off = stats((await ab(() => be.forward(req), () => be.forward(req), 1)).a).min;
    console.log(
      `| ${name} forward with readout (top-5, ${L} layers) | off: ${off.toFixed(1)} ms | on: ` +
        `min ${stats(on).min.toFixed(1)} ms | ${(stats(on).min / off).toFixed(2)} |`,
    );
  }
  // The CPU-side reduction the WebGPU readout does after readback: B*T*L rows of V logits.
  const logits = new Float32Array(V);
  for (let i = 0; i < V; i++) logits[i] = Math.sin(i * 12.9898) * 8;
  const n = B * T * L;
  const t0 = performance.now();
  for (let i = 0; i < n; i++) reduceLogits(logits, 5, i % V);
  const reduceMs = performance.now() - t0;
  console.log(
    `\nCPU reduction of ${n} readouts (softmax, top-5, entropy over V ${V}): ` +
      `${reduceMs.toFixed(0)} ms (${(1000 * reduceMs / n).toFixed(1)} us each)`,
  );
  console.log(`load average after: ${loadavg()}`);
  for (const [, be, base] of backends) {
    be.dispose();
    base?.dispose();
  }
}
