/**
 * Adapter validation (`kernels/validate.ts`): on a healthy adapter every kernel family
 * passes, cheaply, and once per device; a deliberately broken kernel (its WGSL rewritten by
 * `setShaderTransform` on a fresh device) is caught and named, the WebGPU backend refuses
 * that adapter, and the `auto` backend falls back to the CPU with a one-line note.
 */
import { assert, assertEquals, assertLess, assertRejects } from "@std/assert";
import { createBackend } from "../backend/mod.ts";
import { createWebGpuBackend } from "../backend/webgpu/mod.ts";
import { requestGpu, setShaderTransform, withKernels } from "../kernels/device.ts";
import { AdapterRejectedError, assertAdapterValid, validateAdapter } from "../kernels/validate.ts";
import { loadWeights, writeRandomCheckpoint } from "../model/mod.ts";
import { GPU_TEST, testGpu } from "./webgpu_helpers.ts";

const FAMILIES = ["matmul", "layernorm", "attention", "embedding", "select"];

/** A small random checkpoint (its folder is removed at exit). */
async function fixture() {
  const dir = Deno.makeTempDirSync({ prefix: "webgpu-validate-" });
  writeRandomCheckpoint(dir, { shape: { numHiddenLayers: 2, vocabSize: 64 }, seed: 3 });
  globalThis.addEventListener("unload", () => Deno.removeSync(dir, { recursive: true }));
  return await loadWeights(dir);
}

Deno.test({
  name: "adapter validation passes every kernel family on this adapter, fast, once per device",
  ...GPU_TEST,
  fn: async () => {
    const gpu = await testGpu();
    if (!gpu) return;
    const first = await validateAdapter(gpu);
    assert(first.ok, JSON.stringify(first.checks));
    for (const f of FAMILIES) {
      assert(first.checks.some((c) => c.name.startsWith(f)), `no ${f} check`);
    }
    const attention = first.checks.filter((c) => c.name.startsWith("attention"));
    assert(attention.length >= 2, "attention: one head size per kernel variant");
    assert(
      first.checks.some((c) => c.name.includes("f16")) &&
        first.checks.some((c) => c.name.includes("f32")),
    );
    // Its kernels compiled, the validation itself is one small submission and one readback.
    const again = await validateAdapter(gpu);
    console.log(
      `validation on "${first.adapter}": ${first.ms.toFixed(0)} ms first (kernel compiles ` +
        `included), ${again.ms.toFixed(0)} ms with compiled kernels; ` +
        first.checks.map((c) => `${c.name} ${c.error.toExponential(1)}`).join(", "),
    );
    // about 60 ms measured on lavapipe (2 cores); the bound leaves room for a loaded machine
    // and still catches a validation that recompiles its kernels every time
    assertLess(again.ms, 3000);
    const cached = await assertAdapterValid(gpu);
    assertEquals(await assertAdapterValid(gpu), cached, "validated once per device");
  },
});

/** A fresh device whose kernels named `prefix...` are compiled from rewritten WGSL. */
async function brokenDevice(prefix: string, from: string, to: string) {
  const gpu = await requestGpu();
  let rewrites = 0;
  setShaderTransform(gpu.device, (kernel, code) => {
    if (!kernel.startsWith(prefix)) return code;
    assert(code.includes(from), `kernel ${kernel} has no "${from}" to break`);
    rewrites++;
    return code.replace(from, to);
  });
  return { gpu, rewrites: () => rewrites };
}

Deno.test({
  name: "adapter validation names a deliberately broken LayerNorm and matmul kernel",
  ...GPU_TEST,
  fn: async () => {
    if (!(await testGpu())) return;
    // LayerNorm that subtracts its shift instead of adding it
    const ln = await brokenDevice("layernorm", "+ b[i]", "- b[i]");
    try {
      const report = await validateAdapter(ln.gpu);
      assert(ln.rewrites() > 0);
      assertEquals(report.ok, false);
      assertEquals(report.checks.filter((c) => !c.ok).map((c) => c.name), ["layernorm"]);
      const e = await assertRejects(() => assertAdapterValid(ln.gpu), AdapterRejectedError);
      assertEquals(e.kind, "adapter");
      assert(e.message.includes("layernorm (error"), e.message);
      assert(e.message.includes("apt-get install"), e.message);
      assert(e.message.includes(report.adapter), e.message);
    } finally {
      ln.gpu.device.destroy();
    }
    // The texture matmul off by 0.1 %: the kind of error a driver bug makes
    const mm = await brokenDevice(
      "v2_texture_uniform",
      "y[p.ye + o] = v;",
      "y[p.ye + o] = v * 1.001;",
    );
    try {
      const report = await validateAdapter(mm.gpu, { matmulVariant: "v2_texture_uniform" });
      assert(mm.rewrites() > 0);
      assertEquals(
        report.checks.filter((c) => !c.ok).map((c) => c.name),
        [
          "matmul v2_texture_uniform f16 weights, 3 rows",
          "matmul v2_texture_uniform f32 weights, 3 rows",
          "matmul v2_texture_uniform layernorm prologue",
        ],
      );
      // the backend refuses the adapter; "auto" runs on the CPU and says why in one line
      const weights = await fixture();
      const e = await assertRejects(
        () => createWebGpuBackend(weights, { gpu: mm.gpu, matmulVariant: "v2_texture_uniform" }),
        AdapterRejectedError,
      );
      console.log(`refused: ${e.message}`);
      const notes: string[] = [];
      const auto = await createBackend(weights, {
        backend: "auto",
        onNote: (n) => notes.push(n),
        webgpu: { gpu: mm.gpu, matmulVariant: "v2_texture_uniform" },
      });
      try {
        assertEquals(auto.name, "cpu");
        assertEquals(notes.length, 1);
        assert(!notes[0].includes("\n"), notes[0]);
        assert(notes[0].includes("using the CPU backend"), notes[0]);
        assert(notes[0].includes("matmul v2_texture_uniform"), notes[0]);
        console.log(`note: ${notes[0]}`);
      } finally {
        auto.dispose();
      }
      // an explicit webgpu request is not silently moved to the CPU
      await assertRejects(
        () =>
          createBackend(weights, {
            backend: "webgpu",
            webgpu: { gpu: mm.gpu, matmulVariant: "v2_texture_uniform" },
          }),
        AdapterRejectedError,
      );
    } finally {
      mm.gpu.device.destroy();
    }
  },
});

Deno.test({
  name: "a matmul variant that fails its self-check falls back to the next candidate that passed",
  ...GPU_TEST,
  fn: async () => {
    if (!(await testGpu())) return;
    // the GPU kernels forced on this adapter, with the GEMV (and only it) off by 0.1 %
    const broken = await brokenDevice(
      "v4_storage_gemv",
      "y[p.ye + o] = v;",
      "y[p.ye + o] = v * 1.001;",
    );
    const gpu = withKernels(broken.gpu, "gpu");
    try {
      const report = await validateAdapter(gpu);
      assert(broken.rewrites() > 0);
      assert(report.ok, JSON.stringify(report.checks));
      assertEquals(report.skipped, ["v4_storage_gemv"]);
      assertEquals(report.matmulVariant, "v3_storage_tiled");
      const failed = report.checks.filter((c) => !c.ok).map((c) => c.name);
      assert(
        failed.length >= 4 && failed.every((n) => n.startsWith("matmul v4_storage_gemv ")),
        failed.join(),
      );
      // the backend runs on the variant that passed
      const weights = await fixture();
      const backend = await createWebGpuBackend(weights, { gpu });
      try {
        assertEquals(backend.matmul.variant, "v3_storage_tiled");
      } finally {
        backend.dispose();
      }
      // the same device, unforced (software kernels here), is not affected by the GEMV
      const plain = await validateAdapter(broken.gpu);
      assertEquals(plain.ok, true);
      console.log(
        `fell back: ${report.skipped} -> ${report.matmulVariant}; failed ${failed.join(", ")}`,
      );
    } finally {
      await broken.gpu.device.queue.onSubmittedWorkDone();
      broken.gpu.device.destroy();
    }
  },
});
