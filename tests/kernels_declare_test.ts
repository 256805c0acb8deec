/**
 * Kernels declared once in their WGSL (`kernels/declare.ts`): every training kernel's and
 * every buffer-only inference kernel's bindings and `Params` fields parse (binding 0 the uniform, integers before floats), the
 * parser refuses what the arena cannot pack, and a dispatch that lacks a binding or a field
 * fails naming it (on a GPU when one is available).
 */
import { assert, assertEquals, assertThrows } from "@std/assert";
import {
  createDeclaredKernel,
  declaredBindings,
  declaredParams,
  wgslInterface,
} from "../kernels/declare.ts";
import { layerNormWgsl } from "../kernels/layernorm/wgsl.ts";
import { SELECT_WGSL } from "../kernels/select/wgsl.ts";
import { attentionLanesWgsl, attentionVec4Wgsl, attentionWgsl } from "../kernels/attention/wgsl.ts";
import { GEMV_ROW_BUCKETS, gemvWgsl } from "../kernels/matmul/v4_storage_gemv.ts";
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

Deno.test("the inference kernels declare their bindings and Params; values are taken by name", async () => {
  const read = (f: string) => Deno.readTextFile(new URL(`../kernels/matmul/${f}`, import.meta.url));
  const [v1, v3, wF32, repack, repackLn] = await Promise.all(
    [
      "v1_storage_naive.wgsl",
      "v3_storage_tiled.wgsl",
      "w_storage_f32.wgsl",
      "repack_rows.wgsl",
      "repack_ln_rows.wgsl",
    ].map(read),
  );
  const names = (code: string) => {
    const i = wgslInterface("k", code);
    return [
      i.bindings.map((b) => `${b.kind} ${b.name}`).join(" "),
      i.ints.join(","),
      i.floats.join(","),
    ];
  };
  assertEquals(names(layerNormWgsl(8)), [
    "uniform p read x read w read b storage out",
    "m,d,inRow,outRow",
    "eps",
  ]);
  assertEquals(names(SELECT_WGSL), [
    "uniform p read logits storage ids storage done storage probs",
    "batch,vocab,outIndex,step,seed,eos,sample,topK",
    "temperature,topP",
  ]);
  for (const code of [attentionWgsl(64), attentionVec4Wgsl(64, 8), attentionLanesWgsl(6)]) {
    assertEquals(names(code), [
      "uniform p read q read k read v read pad storage out",
      "m,d,headDim,batch,colStart",
      "scale",
    ]);
  }
  const matmul = "m,n,k,ldy,n0,flags,kw,xe,ye,re,pad0,pad1";
  for (const code of [v1 + wF32, v3 + wF32]) {
    assertEquals(names(code), ["uniform p read x read bias storage y read r read w", matmul, ""]);
  }
  for (const rows of GEMV_ROW_BUCKETS) {
    for (const ln of [false, true]) {
      assertEquals(names(gemvWgsl({ rows, f16: true, subgroups: false, ln })), [
        "uniform p read x read bias storage y read r read w" + (ln ? " read lnw read lnb" : ""),
        // the GEMV's last word is its value-cache offset (split q/k/v mode, `qkv.ts`)
        matmul.replace(/pad1$/, "ve"),
        "",
      ]);
    }
  }
  assertEquals(names(repack), ["uniform p read src storage dst", "m,k,kp,xe", ""]);
  assertEquals(names(repackLn), [
    "uniform p read src storage dst read w read b",
    "m,k,kp,xe,eps_bits",
    "",
  ]);
  // values by name, in the struct's order whatever the order of the arguments
  const ln = wgslInterface("layernorm", layerNormWgsl(8));
  assertEquals(
    declaredParams("layernorm", ln, { eps: 1e-5, outRow: 2, d: 7, m: 3, inRow: true }),
    { ints: [3, 7, 1, 2], floats: [1e-5] },
  );
  assertEquals(declaredBindings("layernorm", ln, { out: "o", b: "b", x: "x", w: "w", m: 3 }), [
    "x",
    "w",
    "b",
    "o",
  ]);
  assertThrows(
    () => declaredBindings("layernorm", ln, { x: "x", w: "w", out: "o" }),
    Error,
    'kernel "layernorm": no buffer for binding b',
  );
  assertThrows(
    () => declaredParams("layernorm", ln, { m: 3, d: 7, inRow: 0, eps: 1e-5 }),
    Error,
    'kernel "layernorm": no value for Params field outRow',
  );
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
