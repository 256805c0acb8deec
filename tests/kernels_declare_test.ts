/**
 * Kernels declared once in their WGSL (`kernels/declare.ts`): every training kernel's
 * bindings and `Params` fields parse (binding 0 the uniform, integers before floats), the
 * parser refuses what the arena cannot pack, and a dispatch that lacks a binding or a field
 * fails naming it (on a GPU when one is available).
 */
import { assert, assertEquals, assertThrows } from "@std/assert";
import { createDeclaredKernel, wgslInterface } from "../kernels/declare.ts";
import { MATMUL_TRAIN_WGSL } from "../kernels/matmul/train.ts";
import { LAYERNORM_TRAIN_WGSL } from "../kernels/layernorm/train.ts";
import { ATTENTION_TRAIN_WGSL } from "../kernels/attention/train.ts";
import { EMBEDDING_TRAIN_WGSL } from "../kernels/embedding/train.ts";
import { ELEMENTWISE_TRAIN_WGSL } from "../kernels/elementwise/train.ts";
import { CROSS_ENTROPY_TRAIN_WGSL } from "../kernels/cross_entropy/train.ts";
import { ADAMW_TRAIN_WGSL } from "../kernels/adamw/train.ts";
import { GPU_TEST, recorder, testGpu } from "./webgpu_helpers.ts";

const ALL = {
  ...MATMUL_TRAIN_WGSL,
  ...LAYERNORM_TRAIN_WGSL,
  ...ATTENTION_TRAIN_WGSL,
  ...EMBEDDING_TRAIN_WGSL,
  ...ELEMENTWISE_TRAIN_WGSL,
  ...CROSS_ENTROPY_TRAIN_WGSL,
  ...ADAMW_TRAIN_WGSL,
};

Deno.test("every training kernel declares its bindings and uniforms parseably", () => {
  assertEquals(Object.keys(ALL).length, 20);
  for (const [name, code] of Object.entries(ALL)) {
    const i = wgslInterface(name, code);
    assertEquals(i.bindings[0], { name: "p", kind: "uniform" }, name);
    assert(i.bindings.length >= 3, `${name}: at least one input and one output`);
    assert(i.bindings.slice(1).every((b) => b.kind !== "uniform"), name);
    assert(i.bindings.some((b) => b.kind === "storage"), `${name} writes something`);
    // every declared name appears in the shader body beyond its declaration
    for (const b of i.bindings.slice(1)) {
      assert(code.split(new RegExp(`\\b${b.name}\\[`)).length > 1, `${name} indexes ${b.name}`);
    }
    assert(i.ints.length + i.floats.length > 0, name);
  }
  const mm = wgslInterface("mm", ALL.train_matmul_NT);
  assertEquals(mm.bindings.map((b) => `${b.kind} ${b.name}`), [
    "uniform p",
    "read a",
    "read b",
    "read bias",
    "storage c",
  ]);
  assertEquals([mm.ints, mm.floats], [["m", "k", "n", "accumulate", "has_bias"], ["alpha"]]);
});

Deno.test("the parser refuses bindings out of order and a float field before an integer", () => {
  const head = "@group(0) @binding(0) var<uniform> p: Params;\n";
  assertThrows(
    () =>
      wgslInterface(
        "k",
        "struct Params { n: u32, }\n" + head +
          "@group(0) @binding(2) var<storage, read> x: array<f32>;",
      ),
    Error,
    'kernel "k": binding 2 (x) is out of order',
  );
  assertThrows(
    () => wgslInterface("k", "struct Params { a: f32, n: u32, }\n" + head),
    Error,
    "Params field n (u32) follows a float field",
  );
  assertThrows(
    () => wgslInterface("k", "@group(0) @binding(0) var<storage, read> x: array<f32>;"),
    Error,
    "binding 0 must be the Params uniform",
  );
});

Deno.test({
  name: "a dispatch without a declared binding or field fails naming it",
  ...GPU_TEST,
  fn: async () => {
    const gpu = await testGpu();
    if (!gpu) return;
    const k = await createDeclaredKernel(gpu, "train_relu", ALL.train_relu);
    const buf = () => gpu.device.createBuffer({ size: 64, usage: GPUBufferUsage.STORAGE });
    const rec = recorder(gpu);
    rec.begin();
    assertThrows(
      () => k.dispatch(rec, { u: buf(), n: 4, stride: 64, mode: 0 }, [1], "t"),
      Error,
      'kernel "train_relu": no buffer for binding out',
    );
    assertThrows(
      () => k.dispatch(rec, { u: buf(), out: buf(), n: 4, stride: 64 }, [1], "t"),
      Error,
      'kernel "train_relu": no value for Params field mode',
    );
    rec.finish();
  },
});
