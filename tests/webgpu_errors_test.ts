/**
 * Failures of the WebGPU layer are clear errors naming what is at fault: no adapter, a
 * shader that does not compile, a buffer beyond the device limits, an allocation error
 * (attributed to its tensor), a lost device, a disposed backend, bad requests and plans.
 * Also: profiling reports time per kernel family.
 */
import { assert, assertEquals, assertGreater, assertRejects, assertThrows } from "@std/assert";
import { createWebGpuBackend } from "../backend/webgpu/mod.ts";
import { AllocationGroup, createKernel, GpuError, requestGpu } from "../kernels/device.ts";
import { uploadTable } from "../kernels/tables.ts";
import { loadWeights, writeRandomCheckpoint } from "../model/mod.ts";
import { PlanError } from "../schedule/errors.ts";
import { fullPlan, GPU_TEST, testGpu } from "./webgpu_helpers.ts";

/** A small random checkpoint (its folder is removed at exit; tensors read lazily). */
async function fixture() {
  const dir = Deno.makeTempDirSync({ prefix: "webgpu-errors-" });
  writeRandomCheckpoint(dir, { shape: { numHiddenLayers: 3, vocabSize: 64 }, seed: 9 });
  globalThis.addEventListener("unload", () => Deno.removeSync(dir, { recursive: true }));
  return await loadWeights(dir);
}

Deno.test({
  name: "requestGpu without an adapter says how to get a software one",
  ...GPU_TEST,
  fn: async () => {
    const gpu = navigator.gpu;
    Object.defineProperty(gpu, "requestAdapter", {
      value: () => Promise.resolve(null),
      configurable: true,
    });
    try {
      const e = await assertRejects(() => requestGpu(), GpuError);
      assertEquals(e.kind, "no-adapter");
      assert(e.message.includes("mesa-vulkan-drivers"), e.message);
      console.log(`no adapter: ${e.message}`);
    } finally {
      delete (gpu as unknown as Record<string, unknown>).requestAdapter;
    }
  },
});

Deno.test({
  name: "a WGSL kernel that fails to compile names the kernel and the line",
  ...GPU_TEST,
  fn: async () => {
    const gpu = await testGpu();
    if (!gpu) return;
    const code = "@group(0) @binding(0) var<uniform> p: vec4<u32>;\n" +
      "@compute @workgroup_size(1) fn main() {\n  let x: u32 = 1.5;\n}";
    const e = await assertRejects(
      () => createKernel(gpu, "broken-kernel", code, ["uniform"]),
      GpuError,
    );
    assertEquals(e.kind, "shader");
    assert(e.message.includes('"broken-kernel"') && e.message.includes("line 3"), e.message);
  },
});

Deno.test({
  name: "buffers beyond the device limits and failed allocations name the tensor",
  ...GPU_TEST,
  fn: async () => {
    const gpu = await testGpu();
    if (!gpu) return;
    const group = new AllocationGroup(gpu);
    const big = assertThrows(
      () =>
        group.buffer({ label: "decoder.embed_tokens.weight", size: gpu.limits.maxBufferSize + 4 }),
      GpuError,
    );
    assertEquals(big.kind, "too-large");
    assert(
      big.message.includes("decoder.embed_tokens.weight") && big.message.includes("maxBufferSize"),
    );
    const bind = assertThrows(
      () =>
        group.buffer({
          label: "layer 3 key cache",
          size: gpu.limits.maxStorageBufferBindingSize + 4,
          bindWhole: true,
        }),
      GpuError,
    );
    assert(
      bind.message.includes("layer 3 key cache") &&
        bind.message.includes("maxStorageBufferBindingSize"),
    );
    // an allocation the device rejects is attributed to its label
    group.buffer({ label: "fine", size: 64 });
    group.run(
      "decoder.layers.0.fc1.weight",
      () =>
        gpu.device.createBuffer({
          size: 16,
          usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.STORAGE,
        }),
    );
    const e = await assertRejects(() => group.check(), GpuError);
    assert(e.message.includes("decoder.layers.0.fc1.weight"), e.message);
    // a table whose single row exceeds the forced binding limit
    const t = assertThrows(
      () =>
        uploadTable(gpu, new AllocationGroup(gpu), {
          label: "pos table",
          rows: 2,
          cols: 64,
          dtype: "F32",
          bytes: new Uint8Array(512),
        }, { maxBindingBytes: 100 }),
      GpuError,
    );
    assert(t.message.includes("pos table"));
  },
});

Deno.test({
  name: "webgpu backend: lost device, disposal, bad requests and non-nested plans are clear errors",
  ...GPU_TEST,
  fn: async () => {
    if (!(await testGpu())) return;
    const weights = await fixture();
    const L = weights.config.numHiddenLayers;
    const own = await createWebGpuBackend(weights); // owns its device
    const base = { prompts: [[2, 5, 6]], maxNewTokens: 3, sets: fullPlan(L, 5), padTokenId: 1 };
    assertEquals((await own.decode(base)).tokens[0].length, 3);
    await assertRejects(
      () => own.decode({ ...base, prompts: [[2, 64]] }),
      RangeError,
      "prompt 0, token 1: id 64", // the shared validator's wording (backend/requests.ts), as on the CPU
    );
    await assertRejects(() => own.decode({ ...base, eosTokenId: -1 }), RangeError, "eosTokenId");
    await assertRejects(() => own.decode({ ...base, chunkSize: 0 }), RangeError, "chunkSize");
    await assertRejects(
      () => own.decode({ ...base, maxNewTokens: 99 }),
      RangeError,
      "position table",
    );
    const bad = fullPlan(L, 5);
    bad[3] = [0, 1];
    bad[2] = [0, 2];
    const pe = await assertRejects(() => own.decode({ ...base, sets: bad }), PlanError);
    assert(pe.message.includes("column 3 runs layer 1"), pe.message);
    await assertRejects(
      () => own.forward({ rows: [[2, 5, 6, 7]], sets: bad, padTokenId: 1 }),
      PlanError,
    );
    own.gpu.device.destroy();
    await new Promise((r) => setTimeout(r, 50));
    const lost = await assertRejects(() => own.decode(base), GpuError);
    assertEquals(lost.kind, "lost");
    assert(lost.message.includes("lost") && lost.message.includes("destroyed"), lost.message);
    console.log(`lost device: ${lost.message}`);
    own.dispose();
    const gone = await assertRejects(() => own.decode(base), GpuError);
    assert(gone.message.includes("disposed"));
  },
});

Deno.test({
  name: "webgpu profiling reports GPU time per kernel family",
  ...GPU_TEST,
  fn: async () => {
    const gpu = await testGpu();
    if (!gpu) return;
    if (!gpu.features.has("timestamp-query")) {
      await assertRejects(
        async () => createWebGpuBackend(await fixture(), { gpu, profile: true }),
        GpuError,
        "timestamp-query",
      );
      return;
    }
    const weights = await fixture();
    const wg = await createWebGpuBackend(weights, { gpu, profile: true });
    try {
      const L = weights.config.numHiddenLayers;
      const out = await wg.decode({
        prompts: [[2, 5, 6], [2, 7]],
        maxNewTokens: 6,
        sets: fullPlan(L, 8),
        padTokenId: 1,
      });
      const { prefill, decode } = out.profile!;
      console.log(`profile: ${JSON.stringify(out.profile)}`);
      for (const p of [prefill, decode]) {
        for (
          const family of ["embedding", "layernorm", "attention", "matmul", "lm head", "select"]
        ) {
          assert(p[family], `family ${family} missing`);
          assertGreater(p[family].count, 0);
        }
        assertGreater(Object.values(p).reduce((s, f) => s + f.ms, 0), 0);
      }
      assertEquals(prefill.select.count, 1);
      assertEquals(decode.select.count, 5); // one selection per generated token
      assertEquals(prefill.attention.count, L);
      assertEquals(decode.attention.count, 5 * L); // 5 steps, every layer
    } finally {
      wg.dispose();
    }
  },
});
