/**
 * The GPU path's decode step, counted (issue 26): the GPU kernels forced on this adapter,
 * every compute dispatch and every bind group / buffer creation counted by wrapping the
 * WebGPU prototypes while a decode runs.
 * - dispatches per layer: (dispatches of a full-depth decode - those of a decode whose
 *   generated columns run one layer) / (steps x skipped layers): 5 for pre-LN layers (q/k/v
 *   with LN1, attention, out + residual, fc1 with LN2 + ReLU, fc2 + residual), 7 for
 *   post-LN (opt-350m: two LayerNorm dispatches);
 * - workgroups of each product of one decode step at least N/8;
 * - recording constant in the number of steps: a decode of 24 steps creates exactly as many
 *   bind groups as one of 8 (none per step), and one buffer per chunk (its readback).
 */
import { assert, assertEquals } from "@std/assert";
import { createWebGpuBackend } from "../backend/webgpu/mod.ts";
import { loadWeights, type RandomCheckpointOptions, writeRandomCheckpoint } from "../model/mod.ts";
import type { KvDtype } from "../kernels/attention/kv_dtype.ts";
import { fullPlan, GPU_TEST, testGpu } from "./webgpu_helpers.ts";

const PRE_LN: RandomCheckpointOptions = {
  shape: { hiddenSize: 40, numAttentionHeads: 5, ffnDim: 72, numHiddenLayers: 4, vocabSize: 203 },
  dtype: "F16",
  seed: 11,
};

// name, checkpoint, dispatches per layer, KV cache type
const FIXTURES: [string, RandomCheckpointOptions, number, KvDtype][] = [
  ["pre-LN f16", PRE_LN, 5, "f32"],
  // the fused q/k/v writes the f16 caches itself: no pack dispatch
  ["pre-LN f16, f16 KV cache", PRE_LN, 5, "f16"],
  [
    "opt-350m-style f32 (post-LN, project_in/out)",
    {
      shape: {
        hiddenSize: 48,
        wordEmbedProjDim: 20,
        doLayerNormBefore: false,
        numAttentionHeads: 4,
        ffnDim: 70,
        numHiddenLayers: 4,
        vocabSize: 203,
      },
      dtype: "F32",
      seed: 12,
    },
    7,
    "f32",
  ],
];

/** Counts dispatches (with their workgroups), bind groups, buffers and encoders while on. */
class Counter {
  on = false;
  dispatches: number[] = []; // workgroups of each dispatch; -1 marks a new command encoder
  bindGroups = 0;
  buffers = 0;
  #restore: (() => void)[] = [];
  constructor() {
    // deno-lint-ignore no-this-alias
    const self = this;
    const wrap = <T extends object>(proto: T, name: keyof T, count: (args: unknown[]) => void) => {
      const orig = proto[name] as (...a: unknown[]) => unknown;
      (proto as Record<keyof T, unknown>)[name] = function (this: unknown, ...a: unknown[]) {
        if (self.on) count(a);
        return orig.apply(this, a);
      };
      this.#restore.push(() => (proto as Record<keyof T, unknown>)[name] = orig);
    };
    wrap(GPUComputePassEncoder.prototype, "dispatchWorkgroups", (a) => {
      const [x, y = 1, z = 1] = a as number[];
      this.dispatches.push(x * y * z);
    });
    wrap(GPUDevice.prototype, "createBindGroup", () => this.bindGroups++);
    wrap(GPUDevice.prototype, "createBuffer", () => this.buffers++);
    wrap(GPUDevice.prototype, "createCommandEncoder", () => this.dispatches.push(-1));
  }
  async count<T>(
    fn: () => Promise<T>,
  ): Promise<{ dispatches: number[]; bindGroups: number; buffers: number }> {
    this.dispatches = [];
    this.bindGroups = this.buffers = 0;
    this.on = true;
    try {
      await fn();
    } finally {
      this.on = false;
    }
    return { dispatches: this.dispatches, bindGroups: this.bindGroups, buffers: this.buffers };
  }
  restore(): void {
    this.#restore.forEach((r) => r());
  }
}

for (const [name, options, perLayer, kvDtype] of FIXTURES) {
  Deno.test({
    name:
      `GPU kernels decode step: ${name}: ${perLayer} dispatches per layer, workgroups >= N/8, ` +
      "no bind group per step",
    ...GPU_TEST,
    fn: async () => {
      const gpu = await testGpu();
      if (!gpu) return;
      const dir = Deno.makeTempDirSync({ prefix: "webgpu-dispatch-" });
      const counter = new Counter();
      try {
        writeRandomCheckpoint(dir, options);
        const weights = await loadWeights(dir);
        const cfg = weights.config;
        const L = cfg.numHiddenLayers, d = cfg.hiddenSize, f = cfg.ffnDim, V = cfg.vocabSize;
        if (kvDtype === "f16" && !gpu.features.has("shader-f16")) {
          console.log(`${name}: skipped, the adapter has no shader-f16`);
          return;
        }
        const wg = await createWebGpuBackend(weights, { gpu, kernels: "gpu", kvDtype });
        try {
          assertEquals([wg.matmul.variant, wg.kvDtype], ["v4_storage_gemv", kvDtype]);
          const prompts = [[2, 5, 9, 33], [2, 60, 3, 7], [2, 8, 8, 1]];
          const P = 4, B = prompts.length;
          const req = (N: number, sets: number[][]) => ({
            prompts,
            maxNewTokens: N,
            sets,
            padTokenId: 1,
            chunkSize: 1,
          });
          const all = Array.from({ length: L }, (_, l) => l);
          // prompt columns at full depth, generated columns on the top layer only
          const top = (N: number) =>
            Array.from({ length: P + N }, (_, c) => (c < P ? all : [L - 1]));
          await wg.decode(req(3, fullPlan(L, P + 3))); // compile and cache what decode needs

          // dispatches per layer
          const N = 6;
          const full = await counter.count(() => wg.decode(req(N, fullPlan(L, P + N))));
          const one = await counter.count(() => wg.decode(req(N, top(N))));
          const n = (c: { dispatches: number[] }) => c.dispatches.filter((x) => x >= 0).length;
          const measured = (n(full) - n(one)) / ((N - 1) * (L - 1));
          console.log(
            `${name}: ${n(full)} dispatches at full depth, ${n(one)} on one layer, ` +
              `${measured} per layer`,
          );
          assertEquals(measured, perLayer);

          // workgroups of each dispatch of the last decode step (its own command encoder)
          const seq = full.dispatches.slice(full.dispatches.lastIndexOf(-1) + 1);
          const embed = cfg.wordEmbedProjDim !== d ? 3 : 1; // tokens, positions, project_in
          const layer = (l: number, i: number) => seq[embed + l * perLayer + i];
          const products: [string, number, number][] = [];
          for (let l = 0; l < L; l++) {
            // pre-LN: qkv, attention, out, fc1, fc2; post-LN: qkv, attention, out, LN, fc1,
            // fc2, LN
            const at = perLayer === 5 ? [0, 2, 3, 4] : [0, 2, 4, 5];
            products.push([`layer ${l} q/k/v`, layer(l, at[0]), 3 * d]);
            products.push([`layer ${l} out`, layer(l, at[1]), d]);
            products.push([`layer ${l} fc1`, layer(l, at[2]), f]);
            products.push([`layer ${l} fc2`, layer(l, at[3]), d]);
          }
          // after the layers: the final LayerNorm (pre-LN) or project_out (post-LN), the head
          const head = seq[embed + L * perLayer + 1];
          products.push(["LM head", head, V]);
          for (const [what, groups, cols] of products) {
            assert(groups >= cols / 8, `${what}: ${groups} workgroups < N/8 = ${cols / 8}`);
          }
          console.log(
            `${name}: workgroups per product (B = ${B}) ` +
              products.slice(0, 4).concat(products.slice(-1)).map(([w, g, c]) =>
                `${w} ${g} (N/8 ${Math.ceil(c / 8)})`
              ).join(", "),
          );

          // recording constant in the steps: no bind group per step, one readback buffer per chunk
          const short = await counter.count(() => wg.decode(req(8, fullPlan(L, P + 8))));
          const long = await counter.count(() => wg.decode(req(24, fullPlan(L, P + 24))));
          console.log(
            `${name}: 8 steps: ${short.bindGroups} bind groups, ${short.buffers} buffers; ` +
              `24 steps: ${long.bindGroups} bind groups, ${long.buffers} buffers`,
          );
          assertEquals(long.bindGroups, short.bindGroups, "bind groups created per step");
          assertEquals(long.buffers - short.buffers, 16, "one readback buffer per chunk");
        } finally {
          wg.dispose();
        }
      } finally {
        counter.restore();
        Deno.removeSync(dir, { recursive: true });
      }
    },
  });
}
