/**
 * The adapter profile (`kernels/profile.ts`): one software/GPU classification whichever
 * place the fallback flag sits, vendors from PCI ids, features, the `SKIPDECODE_KERNELS`
 * override and its clear error; and the decode roofline's arithmetic (`bench/roofline.ts`):
 * the GEMV's workgroups per product are at least N/8 for OPT-125m and OPT-1.3b at batch
 * 1/8/32, bytes per product are its weights plus activations.
 */
import { assert, assertEquals, assertThrows } from "@std/assert";
import {
  adapterProfile,
  describeProfile,
  kernelsFromEnv,
  withKernelClass,
} from "../kernels/profile.ts";
import { autoVariant, variantCandidates } from "../kernels/matmul/mod.ts";
import { gemvRows, gemvWgsl } from "../kernels/matmul/v4_storage_gemv.ts";
import { decodeRoofline, parseRefGpu, shapeByName } from "../bench/roofline.ts";

const none = { features: new Set<string>(), limits: {} };

Deno.test("profile: one classification, wherever Deno puts the fallback flag", () => {
  const onInfo = adapterProfile({ ...none, info: { isFallbackAdapter: true, vendor: "65541" } });
  const onAdapter = adapterProfile({ ...none, info: { vendor: "65541" }, isFallbackAdapter: true });
  const byName = adapterProfile({
    ...none,
    info: { description: "llvmpipe (LLVM 15.0.6, 256 bits)" },
  });
  const swiftshader = adapterProfile({ ...none, info: { description: "SwiftShader Device" } });
  for (const p of [onInfo, onAdapter, byName, swiftshader]) {
    assertEquals(p.software, true);
    assertEquals(p.kernels, "software");
    assertEquals(autoVariant(p), "v2_texture_uniform");
  }
  assertEquals(onInfo.vendor, "mesa");
  const nvidia = adapterProfile({
    info: {
      vendor: "4318",
      description: "NVIDIA H100 80GB HBM3",
      subgroupMinSize: 32,
      subgroupMaxSize: 32,
    } as Partial<GPUAdapterInfo>,
    features: new Set(["shader-f16", "subgroups"]),
    limits: { maxBufferSize: 2n ** 40n },
  });
  assertEquals([nvidia.software, nvidia.kernels, nvidia.vendor, nvidia.vendorId], [
    false,
    "gpu",
    "nvidia",
    0x10de,
  ]);
  assertEquals([nvidia.f16, nvidia.subgroups], [true, true]);
  assertEquals(nvidia.subgroupSizes, [32, 32]);
  assertEquals(nvidia.limits.maxBufferSize, 2 ** 40); // BigInt limits become numbers
  assertEquals(autoVariant(nvidia), "v4_storage_gemv");
  assertEquals(variantCandidates(nvidia), ["v4_storage_gemv", "v3_storage_tiled"]);
  assertEquals(adapterProfile({ ...none, info: { vendor: "0x1002" } }).vendor, "amd");
  // an override: the GPU kernels on llvmpipe, and back
  const forced = adapterProfile({ ...none, info: { isFallbackAdapter: true } }, "gpu");
  assertEquals([forced.software, forced.kernels, forced.kernelsFrom], [true, "gpu", "option"]);
  assertEquals(autoVariant(forced), "v4_storage_gemv");
  assertEquals(withKernelClass(nvidia, "software").kernels, "software");
  assert(
    describeProfile(nvidia).includes("hardware adapter, gpu kernels"),
    describeProfile(nvidia),
  );
});

Deno.test("profile: SKIPDECODE_KERNELS forces a family, and a bad value is a one-line error", () => {
  const before = Deno.env.get("SKIPDECODE_KERNELS");
  try {
    Deno.env.set("SKIPDECODE_KERNELS", "gpu");
    const p = adapterProfile({ ...none, info: { description: "llvmpipe" } });
    assertEquals([p.kernels, p.kernelsFrom], ["gpu", "SKIPDECODE_KERNELS"]);
    // an explicit option wins over the environment
    assertEquals(adapterProfile({ ...none, info: {} }, "software").kernels, "software");
    Deno.env.set("SKIPDECODE_KERNELS", "software");
    assertEquals(adapterProfile({ ...none, info: { vendor: "4318" } }).kernels, "software");
    Deno.env.set("SKIPDECODE_KERNELS", "cuda");
    assertThrows(
      () => kernelsFromEnv(),
      Error,
      'SKIPDECODE_KERNELS must be "gpu", "software" or "auto", got "cuda"',
    );
  } finally {
    if (before === undefined) Deno.env.delete("SKIPDECODE_KERNELS");
    else Deno.env.set("SKIPDECODE_KERNELS", before);
  }
});

Deno.test("GEMV template: row buckets, subgroup and tree reductions", () => {
  assertEquals([1, 2, 3, 5, 8, 9, 64].map(gemvRows), [1, 2, 4, 8, 8, 8, 8]);
  const sg = gemvWgsl({ rows: 2, f16: true, subgroups: true });
  assert(sg.startsWith("enable subgroups;") && sg.includes("subgroupAdd("));
  const tree = gemvWgsl({ rows: 8, f16: false, subgroups: false });
  assert(
    !tree.includes("subgroupAdd") && !tree.includes("enable") &&
      tree.includes("workgroupBarrier()"),
  );
  assert(tree.includes("array<vec4<f32>>") && sg.includes("array<vec4<u32>>")); // 16-byte loads
  assertThrows(
    () => gemvWgsl({ rows: 3, f16: true, subgroups: false }),
    Error,
    "rows must be 1, 2, 4 or 8",
  );
});

Deno.test("roofline: GEMV workgroups >= N/8 per product, bytes = weights + activations", () => {
  for (const name of ["opt-125m", "opt-1.3b"]) {
    const shape = shapeByName(name);
    for (const batch of [1, 8, 32]) {
      const rows = decodeRoofline(shape, batch, 48);
      const products = rows.filter((r) => r.n !== null);
      assertEquals(products.length, 5);
      for (const r of products) {
        assert(
          r.workgroups >= r.n! / 8,
          `${name} b${batch} ${r.kernel}: ${r.workgroups} < ${r.n! / 8}`,
        );
        assert(r.workgroupsTiled! < r.n! / 8, "the old tiled product did not reach N/8");
      }
      // 5 per layer (LayerNorms folded into the GEMV prologue, q/k/v one product), embedding,
      // final LN, head, select
      assertEquals(rows.reduce((s, r) => s + r.perStep, 0), 5 * shape.layers + 4);
      const fc1 = rows.find((r) => r.kernel.startsWith("fc1"))!;
      const d = shape.hidden, f = shape.ffn;
      assertEquals(
        fc1.bytes,
        shape.layers * (f * d * 2 + f * 4 + batch * d * 4 + batch * f * 4 + 2 * d * 4),
      );
    }
  }
  assertEquals(parseRefGpu("H100:3350:132"), { name: "H100", gbps: 3350, sms: 132 });
  assertThrows(
    () => parseRefGpu("H100:fast"),
    Error,
    "--ref-gpu (or SKIPDECODE_REF_GPU) must be NAME:GBPS:SMS",
  );
  assertThrows(() => shapeByName("opt-9b"), Error, '--shapes: unknown shape "opt-9b"');
});
