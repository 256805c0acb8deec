/**
 * Adapter validation: before a WebGPU backend trusts an adapter, every kernel family runs
 * once on a small problem whose answer the CPU reference knows, all in one submission with
 * one readback: the matmul variant the backend will use and the storage variant it falls
 * back to (f16 and f32 weights, bias, ReLU, residual, awkward sizes), attention (the vec4
 * and the scalar kernel, padded rows), LayerNorm, the embedding (f16 token and f32 position
 * tables, left padding) and greedy selection (ties, EOS flags). An adapter whose drivers
 * compute a wrong number (wgpu's OpenGL backend on llvmpipe did, for the texture matmul) is
 * refused with an error naming each check that failed, instead of producing fluent-looking
 * garbage. Results are cached per device and matmul variant, so many backends on one
 * device validate once.
 *
 * Cost on the software adapter (2 cores, lavapipe): see `validationMs` in the report; the
 * kernels compiled here are the ones the model uses, so their compile time is not extra.
 *
 * @example
 * ```ts
 * import { requestGpu } from "./device.ts";
 * import { validateAdapter } from "./validate.ts";
 * const gpu = await requestGpu();
 * const report = await validateAdapter(gpu);
 * console.log(report.ok, report.ms.toFixed(0), report.checks.map((c) => c.name));
 * ```
 *
 * @module
 */
import { attendOne } from "./attention/reference.ts";
import { positionIds } from "./embedding/reference.ts";
import { layerNorm } from "./layernorm/reference.ts";
import { linear } from "./matmul/reference.ts";
import { bytesToFloat32 } from "../model/safetensors.ts";
import type { DType, Tensor } from "../model/types.ts";
import { createAttention } from "./attention/mod.ts";
import { AllocationGroup, type GpuContext, GpuError } from "./device.ts";
import { createEmbedding } from "./embedding/mod.ts";
import { Recorder } from "./encode.ts";
import { createLayerNorm } from "./layernorm/mod.ts";
import { createMatmulKernels } from "./matmul/mod.ts";
import { ParamArena } from "./uniforms.ts";
import { createSelect } from "./select/mod.ts";
import { uploadTable } from "./tables.ts";
import { seededRandom } from "../model/random.ts";

/** One check of {@linkcode validateAdapter}. */
export interface AdapterCheck {
  /** Kernel family and case, e.g. `matmul v2_texture_uniform f16`. */
  name: string;
  /** Largest absolute difference from the CPU reference (mismatches for integer outputs). */
  error: number;
  /** Largest accepted `error`. */
  tolerance: number;
  /** `error <= tolerance` (NaN fails). */
  ok: boolean;
}

/** What {@linkcode validateAdapter} found. */
export interface AdapterValidation {
  /** Every check passed. */
  ok: boolean;
  /** The adapter's description. */
  adapter: string;
  /** The matmul variant validated (the backend's), besides the storage fallback. */
  matmulVariant: string;
  /** Every check, in order. */
  checks: AdapterCheck[];
  /** Wall time of the validation, ms (kernel creation, upload, one round trip). */
  ms: number;
}

/** Options of {@linkcode validateAdapter}. */
export interface ValidateOptions {
  /** The matmul variant the backend will use (default `"auto"`, resolved for the adapter). */
  matmulVariant?: string;
}

/** What to install when an adapter computes wrong numbers. */
export const VALIDATION_HELP =
  "Install a Vulkan driver (on Debian: apt-get install -y --no-install-recommends libvulkan1 " +
  "mesa-vulkan-drivers), or run on the CPU (--backend cpu)";

/** `n` values in `[-scale, scale)`, never zero. */
function values(n: number, seed: number, scale = 1): Float32Array {
  const r = seededRandom(seed);
  return Float32Array.from({ length: n }, () => ((2 * r() - 1) || 0.5) * scale);
}

/** `n` f16 values (as bytes) in ±[0.25, 2), and the exact f32 values they hold. */
function halves(n: number, seed: number): { bytes: Uint8Array; f32: Float32Array } {
  const r = seededRandom(seed);
  const h = Uint16Array.from(
    { length: n },
    () => ((r() < 0.5 ? 1 : 0) << 15) | ((13 + Math.floor(r() * 3)) << 10) | Math.floor(r() * 1024),
  );
  const bytes = new Uint8Array(h.buffer);
  return { bytes, f32: bytesToFloat32(bytes, "F16") };
}

function tensor(name: string, dtype: DType, shape: number[], bytes: Uint8Array): Tensor {
  return { name, dtype, shape, bytes: () => bytes };
}

function maxDiff(got: ArrayLike<number>, want: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < want.length; i++) {
    const d = Math.abs(got[i] - want[i]);
    if (!(d <= m)) m = Number.isNaN(d) ? Infinity : d;
  }
  return m;
}

function mismatches(got: ArrayLike<number>, want: ArrayLike<number>): number {
  let n = 0;
  for (let i = 0; i < want.length; i++) if (got[i] !== want[i]) n++;
  return n;
}

/** A pending result: where it lands in the staging buffer and how to judge it. */
interface Pending {
  name: string;
  src: GPUBuffer;
  bytes: number;
  tolerance: number;
  judge: (data: ArrayBuffer) => number;
}

/**
 * Runs every kernel family once on small known problems and compares with the CPU
 * reference (one submission, one readback). Never throws for wrong numbers: the report
 * says what failed; {@linkcode assertAdapterValid} turns it into an error.
 *
 * @throws {GpuError} when a kernel cannot even be created or the device is lost.
 *
 * @example
 * ```ts
 * import { requestGpu } from "./device.ts";
 * import { validateAdapter } from "./validate.ts";
 * const report = await validateAdapter(await requestGpu(), { matmulVariant: "auto" });
 * for (const c of report.checks) console.log(c.name, c.ok);
 * ```
 */
export async function validateAdapter(
  gpu: GpuContext,
  options: ValidateOptions = {},
): Promise<AdapterValidation> {
  const t0 = performance.now();
  const { device } = gpu;
  const created: { destroy(): void }[] = [];
  const buffer = (data: Float32Array | Uint32Array | Uint8Array, label: string) => {
    const buf = device.createBuffer({
      label: `validation ${label}`,
      size: Math.max(16, Math.ceil(data.byteLength / 16) * 16),
      usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST,
    });
    device.queue.writeBuffer(buf, 0, data as Uint8Array<ArrayBuffer>);
    created.push(buf);
    return buf;
  };
  const nan = (n: number, label: string) => buffer(new Float32Array(n).fill(NaN), label);
  const pending: Pending[] = [];
  const arena = new ParamArena(gpu, 64);
  created.push(arena);
  const rec = new Recorder(gpu, arena);
  device.pushErrorScope("validation");
  const run = async (): Promise<AdapterValidation> => {
    const [ln, att, sel] = await Promise.all([
      createLayerNorm(gpu),
      createAttention(gpu, 64, undefined, { headDims: [8] }), // the lanes kernel too (llvmpipe)
      createSelect(gpu),
    ]);
    const group = new AllocationGroup(gpu);
    const E = 13, V = 11, POS = 9, B = 2, COLS = 4, PADS = [0, 2];
    const tokH = halves(V * E, 7);
    const posF = values(POS * E, 8);
    const tokT = uploadTable(gpu, group, {
      label: "validation tok",
      rows: V,
      cols: E,
      dtype: "F16",
      bytes: tokH.bytes,
    });
    const posT = uploadTable(gpu, group, {
      label: "validation pos",
      rows: POS,
      cols: E,
      dtype: "F32",
      bytes: new Uint8Array(posF.buffer),
    });
    created.push(tokT, posT);
    await group.check();
    const emb = await createEmbedding(gpu, tokT, posT);
    const variant = options.matmulVariant ?? "auto";
    const mmMain = createMatmulKernels(device, { variant, adapterInfo: gpu.info });
    const variants = [mmMain];
    if (mmMain.variant !== "v3_storage_tiled") {
      variants.push(createMatmulKernels(device, { variant: "v3_storage_tiled" }));
    }
    await Promise.all(variants.map((v) => v.ready()));
    rec.begin("adapter validation");

    // matmul: Y = relu(X W^T + b) + R, M = 3, K = 70, N = 37, f16 and f32 weights
    const M = 3, K = 70, N = 37;
    const x = values(M * K, 1);
    const res = values(M * N, 2);
    const bias = values(N, 3, 0.5);
    const xb = buffer(x, "x"), rb = buffer(res, "residual");
    for (const mm of variants) {
      for (const dtype of ["F16", "F32"] as const) {
        const w = dtype === "F16"
          ? halves(N * K, 4)
          : { f32: values(N * K, 5), bytes: new Uint8Array(0) };
        const wBytes = dtype === "F16" ? w.bytes : new Uint8Array(w.f32.buffer);
        const lin = mm.uploadLinear(
          tensor("validation.w", dtype, [N, K], wBytes),
          tensor("validation.b", "F32", [N], new Uint8Array(bias.buffer)),
          `validation ${dtype}`,
        );
        created.push(lin);
        const y = nan(M * N, "y");
        rec.foreign(
          "matmul",
          (enc) => mm.encode(enc, { x: xb, y, m: M, linear: lin, relu: true, residual: rb }),
        );
        const want = linear(x, w.f32, bias, M, K, N);
        for (let i = 0; i < want.length; i++) want[i] = Math.max(want[i], 0) + res[i];
        pending.push({
          name: `matmul ${mm.variant} ${dtype.toLowerCase()} weights`,
          src: y,
          bytes: M * N * 4,
          tolerance: 1e-4,
          judge: (d) => maxDiff(new Float32Array(d), want),
        });
      }
    }

    // matmul with a LayerNorm prologue (the texture variant's repack_ln_rows), f16 weights
    for (const mm of variants) {
      const w = halves(N * K, 6);
      const lin = mm.uploadLinear(
        tensor("validation.wln", "F16", [N, K], w.bytes),
        tensor("validation.b", "F32", [N], new Uint8Array(bias.buffer)),
        "validation LN prologue",
      );
      created.push(lin);
      if (!mm.canNormalise(lin)) continue;
      const lw = values(K, 7), lb = values(K, 8, 0.5);
      const y = nan(M * N, "y (LN prologue)");
      const lnArg = { w: buffer(lw, "prologue ln w"), b: buffer(lb, "prologue ln b") };
      rec.foreign(
        "matmul",
        (enc) => mm.encode(enc, { x: xb, y, m: M, linear: lin, layerNorm: lnArg }),
      );
      const want = linear(layerNorm(x, lw, lb, M, K), w.f32, bias, M, K, N);
      pending.push({
        name: `matmul ${mm.variant} layernorm prologue`,
        src: y,
        bytes: M * N * 4,
        tolerance: 1e-4,
        judge: (d) => maxDiff(new Float32Array(d), want),
      });
    }

    // LayerNorm over 3 rows of width 45
    {
      const m = 3, d = 45;
      const lx = values(m * d, 11, 3), lw = values(d, 12), lb = values(d, 13);
      const out = nan(m * d, "layernorm out");
      ln.encode(rec, {
        x: buffer(lx, "ln x"),
        w: buffer(lw, "ln w"),
        b: buffer(lb, "ln b"),
        out,
        m,
        d,
      });
      const want = layerNorm(lx, lw, lb, m, d);
      pending.push({
        name: "layernorm",
        src: out,
        bytes: m * d * 4,
        tolerance: 1e-4,
        judge: (dd) => maxDiff(new Float32Array(dd), want),
      });
    }

    // attention: 2 rows (one left-padded), 5 cached columns, queries of the last 2 columns;
    // heads of 8 (the lanes kernel on software adapters, else vec4), of 12 (vec4) and of 5
    // (the scalar one)
    for (const [heads, hd] of [[3, 8], [2, 12], [2, 5]]) {
      const d = heads * hd, slots = 5, pads = [0, 2], colStart = 3, columns = 2;
      const k = values(slots * B * d, 21 + hd, 1.5), v = values(slots * B * d, 22 + hd);
      const m = columns * B;
      const q = values(m * d, 23 + hd, 2);
      const out = nan(m * d, "attention out");
      att.encode(rec, {
        q: buffer(q, "q"),
        k: buffer(k, "k"),
        v: buffer(v, "v"),
        pad: buffer(new Uint32Array(pads), "pad"),
        out,
        m,
        d,
        heads,
        batch: B,
        colStart,
      });
      const want = new Float32Array(m * d);
      const scale = 1 / Math.sqrt(hd);
      for (let r = 0; r < m; r++) {
        const b = r % B, c = colStart + Math.floor(r / B);
        const keys = new Float32Array(slots * d), vals = new Float32Array(slots * d);
        for (let t = 0; t < slots; t++) {
          keys.set(k.subarray((t * B + b) * d, (t * B + b + 1) * d), t * d);
          vals.set(v.subarray((t * B + b) * d, (t * B + b + 1) * d), t * d);
        }
        const qs = q.slice(r * d, r * d + d).map((e) => e * scale);
        attendOne(qs, keys, vals, c + 1, d, heads, (t) => t >= pads[b], want.subarray(r * d));
      }
      pending.push({
        name: `attention ${att.kindFor(hd, d)}`,
        src: out,
        bytes: m * d * 4,
        tolerance: 1e-4,
        judge: (dd) => maxDiff(new Float32Array(dd), want),
      });
    }

    // embedding: token (f16) + position (f32) rows of a left-padded [COLS, B] id grid
    {
      const r = seededRandom(31);
      const ids = new Uint32Array(COLS * B);
      for (let c = 0; c < COLS; c++) {
        for (let b = 0; b < B; b++) ids[c * B + b] = c < PADS[b] ? 1 : Math.floor(r() * V);
      }
      const m = COLS * B;
      const out = nan(m * E, "embedding out");
      emb.encode(rec, {
        ids: buffer(ids, "ids"),
        pad: buffer(new Uint32Array(PADS), "pads"),
        out,
        batch: B,
        colStart: 0,
        columns: COLS,
        mode: "sum",
      });
      const want = new Float32Array(m * E);
      for (let b = 0; b < B; b++) {
        const p = positionIds(Array.from({ length: COLS }, (_, c) => (c < PADS[b] ? 0 : 1)));
        for (let c = 0; c < COLS; c++) {
          const g = c * B + b;
          for (let i = 0; i < E; i++) {
            want[g * E + i] = Math.fround(tokH.f32[ids[g] * E + i] + posF[(p[c] + 2) * E + i]);
          }
        }
      }
      pending.push({
        name: "embedding",
        src: out,
        bytes: m * E * 4,
        tolerance: 0,
        judge: (d) => maxDiff(new Float32Array(d), want),
      });
    }

    // greedy selection: 3 rows of 67 logits, a tie (lowest index wins), EOS flags
    {
      const rows = 3, vocab = 67;
      const logits = values(rows * vocab, 41, 4);
      logits[vocab + 9] = 9;
      logits[vocab + 40] = 9;
      const want: number[] = [];
      for (let b = 0; b < rows; b++) {
        let best = 0;
        for (let i = 1; i < vocab; i++) {
          if (logits[b * vocab + i] > logits[b * vocab + best]) best = i;
        }
        want.push(best);
      }
      const eos = want[2];
      const ids = buffer(new Uint32Array(2 * rows).fill(0xdeadbeef), "select ids");
      const done = buffer(new Uint32Array(rows), "select done");
      sel.encode(rec, {
        logits: buffer(logits, "logits"),
        ids,
        done,
        probs: nan(4, "probs"),
        batch: rows,
        vocab,
        outIndex: rows,
        step: 0,
        eos,
      });
      const expect = [...new Array(rows).fill(0xdeadbeef), ...want, 0, 0, 1];
      const both = buffer(new Uint32Array(3 * rows), "select result");
      rec.endPass();
      rec.encoder.copyBufferToBuffer(ids, 0, both, 0, 2 * rows * 4);
      rec.encoder.copyBufferToBuffer(done, 0, both, 2 * rows * 4, rows * 4);
      pending.push({
        name: "select (greedy, ties, EOS)",
        src: both,
        bytes: 3 * rows * 4,
        tolerance: 0,
        judge: (d) => mismatches(new Uint32Array(d), expect),
      });
    }

    // one staging buffer, one round trip
    rec.endPass();
    let offset = 0;
    const offsets = pending.map((p) => {
      const o = offset;
      offset += Math.ceil(p.bytes / 8) * 8;
      return o;
    });
    const staging = device.createBuffer({
      label: "validation readback",
      size: offset,
      usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
    });
    created.push(staging);
    pending.forEach((p, i) =>
      rec.encoder.copyBufferToBuffer(p.src, 0, staging, offsets[i], p.bytes)
    );
    device.queue.submit([rec.finish()]);
    await staging.mapAsync(GPUMapMode.READ);
    const data = staging.getMappedRange();
    const checks = pending.map((p, i): AdapterCheck => {
      const error = p.judge(data.slice(offsets[i], offsets[i] + p.bytes));
      return { name: p.name, error, tolerance: p.tolerance, ok: error <= p.tolerance };
    });
    staging.unmap();
    return {
      ok: checks.every((c) => c.ok),
      adapter: gpu.info.description || gpu.info.vendor || "unknown adapter",
      matmulVariant: mmMain.variant,
      checks,
      ms: performance.now() - t0,
    };
  };
  let report: AdapterValidation | undefined;
  let failure: unknown;
  try {
    report = await run();
  } catch (e) {
    failure = e;
  }
  const err = await device.popErrorScope();
  for (const c of created) c.destroy();
  if (failure) throw failure;
  if (err) {
    throw new GpuError(`adapter validation: WebGPU validation error: ${err.message}`, "validation");
  }
  return report!;
}

/**
 * The error that refuses an adapter computing wrong results (kind `"adapter"`), with the
 * validation report.
 *
 * @example
 * ```ts
 * import { AdapterRejectedError } from "./validate.ts";
 * try {
 *   // await createWebGpuBackend(weights);
 * } catch (e) {
 *   if (e instanceof AdapterRejectedError) console.error(e.failed.join(", "));
 * }
 * ```
 */
export class AdapterRejectedError extends GpuError {
  /** The validation that failed. */
  readonly report: AdapterValidation;
  /** Names of the failed checks. */
  readonly failed: string[];
  /** Builds the message from a failed report. */
  constructor(report: AdapterValidation) {
    const bad = report.checks.filter((c) => !c.ok);
    super(
      `the WebGPU adapter "${report.adapter}" computes wrong results: ` +
        bad.map((c) => `${c.name} (error ${c.error}, tolerance ${c.tolerance})`).join("; ") +
        ` differ from the CPU reference. Refusing it rather than reporting wrong numbers. ` +
        `${VALIDATION_HELP}.`,
      "adapter",
    );
    this.name = "AdapterRejectedError";
    this.report = report;
    this.failed = bad.map((c) => c.name);
  }
}

const cache = new WeakMap<GPUDevice, Map<string, Promise<AdapterValidation>>>();

/**
 * Validates the adapter once per device and matmul variant (later calls reuse the result)
 * and throws when any check failed.
 *
 * @throws {AdapterRejectedError} (a {@linkcode GpuError} of kind `"adapter"`) naming the
 *   adapter, every failed check with its error, and what to do; a `GpuError` of another kind
 *   when validation could not run.
 *
 * @example
 * ```ts
 * import { requestGpu } from "./device.ts";
 * import { assertAdapterValid } from "./validate.ts";
 * const report = await assertAdapterValid(await requestGpu());
 * console.log(`validated in ${report.ms.toFixed(0)} ms`);
 * ```
 */
export async function assertAdapterValid(
  gpu: GpuContext,
  options: ValidateOptions = {},
): Promise<AdapterValidation> {
  let perDevice = cache.get(gpu.device);
  if (!perDevice) {
    perDevice = new Map();
    cache.set(gpu.device, perDevice);
  }
  const key = options.matmulVariant ?? "auto";
  let result = perDevice.get(key);
  if (!result) {
    result = validateAdapter(gpu, options);
    perDevice.set(key, result);
    result.catch(() => perDevice.delete(key)); // a failure to run is retried next time
  }
  const report = await result;
  if (!report.ok) throw new AdapterRejectedError(report);
  return report;
}
