/**
 * Where the WebGPU decode's time goes: one profiled decode per batch size of the
 * OPT-125m-shaped benchmark model, with GPU milliseconds per kernel family from timestamp
 * queries (`timestamp-query`; the profiled run brackets every pass, so it runs a little
 * slower than an unprofiled one), host milliseconds spent recording commands, and the
 * wall time, split into prefill and decode.
 *
 * Run: `deno run --allow-read=.,../shared --allow-write=./.cache --allow-env
 *   --allow-sys=loadavg bench/decode_profile.ts [--batches 1,8,32] [--tokens 32]
 *   [--policy full|linear:...]`
 *
 * @module
 */
import { parseArgs } from "../std/cli.ts";
import { createWebGpuBackend } from "../backend/webgpu/backend.ts";
import { loadWeights } from "../model/mod.ts";
import { dimsFromConfig, full, parsePolicy, plan } from "../schedule/mod.ts";
import { quietVulkanRuntimeDir } from "../kernels/device.ts";
import { ensureOpt125mFixture } from "./decode_bench.ts";

if (import.meta.main) {
  const { values } = parseArgs(Deno.args, {
    batches: { type: "string" },
    tokens: { type: "string" },
    prompt: { type: "string" },
    policy: { type: "string" },
    model: { type: "string" },
  });
  quietVulkanRuntimeDir();
  const batches = (values.batches ?? "1,8,32").split(",").map(Number);
  const N = Number(values.tokens ?? 32), P = Number(values.prompt ?? 16);
  const dir = values.model ?? ensureOpt125mFixture(".cache/bench");
  const weights = await loadWeights(dir);
  const cfg = weights.config;
  const policy = values.policy ? parsePolicy(values.policy) : full();
  const p = plan(policy, { ...dimsFromConfig(cfg), promptLength: P, maxNewTokens: N });
  const gpu = await createWebGpuBackend(weights, { profile: true, warmup: true });
  console.log(
    `model ${dir}, policy ${String(policy)}, P=${P}, N=${N}, load ${
      Deno.loadavg().map((x) => x.toFixed(2)).join(" ")
    }`,
  );
  for (const B of batches) {
    const prompts = Array.from(
      { length: B },
      (
        _,
        b,
      ) => [
        cfg.bosTokenId,
        ...Array.from({ length: P - 1 }, (_, i) => 4 + (b * 131 + i * 17) % 40000),
      ],
    );
    const req = { prompts, maxNewTokens: N, sets: p.sets, padTokenId: cfg.padTokenId };
    await gpu.decode({ ...req, maxNewTokens: 2 }); // compile this batch's shapes
    const t = performance.now();
    const out = await gpu.decode(req);
    const wall = performance.now() - t;
    const fmt = (fam: Record<string, { ms: number; count: number }>) =>
      Object.entries(fam).sort((a, b) => b[1].ms - a[1].ms).map(([k, v]) =>
        `${k} ${v.ms.toFixed(0)} ms/${v.count}`
      ).join(", ");
    const sum = (fam: Record<string, { ms: number }>) =>
      Object.values(fam).reduce((s, v) => s + v.ms, 0);
    console.log(
      `batch ${B}: wall ${wall.toFixed(0)} ms (${(B * N / wall * 1000).toFixed(1)} tok/s), ` +
        `prefill ${out.timing.prefillMs.toFixed(0)} ms, decode ${
          out.timing.decodeMs.toFixed(0)
        } ms, ` +
        `recording ${out.encodeMs.toFixed(0)} ms, readbacks ${out.timing.readbacks}`,
    );
    console.log(
      `  prefill GPU ${sum(out.profile!.prefill).toFixed(0)} ms: ${fmt(out.profile!.prefill)}`,
    );
    console.log(
      `  decode  GPU ${sum(out.profile!.decode).toFixed(0)} ms: ${fmt(out.profile!.decode)}`,
    );
  }
  gpu.dispose();
}
