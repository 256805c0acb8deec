/**
 * The WebGPU backend: OPT on hand-written WGSL kernels with f16 weights kept f16, a KV cache
 * per layer sized by the plan, and a decode loop that does not wait on the CPU between
 * tokens. The prompt columns are prefilled layer by layer (layer `l` on the prefix of
 * columns that run it); then each chosen token stays on the GPU (the selection kernel
 * writes it into the id grid the next step's embedding reads), a chunk of steps is encoded
 * per submission with per-dispatch parameters in a uniform arena, and tokens, EOS flags
 * (and logits, when asked) are read back once per chunk (one awaited round trip), and
 * the loop stops after the chunk in which every row emitted EOS. The next chunk is recorded
 * while the GPU runs the current one and submitted only if it is needed. (Two submissions
 * in flight would not help in Deno 2.9: a `mapAsync` resolves only once the queue is idle,
 * measured.)
 *
 * @example
 * ```ts
 * import { createWebGpuBackend } from "./backend.ts";
 * import { loadWeights } from "../../model/mod.ts";
 * const gpu = await createWebGpuBackend(await loadWeights("bundled/models/tiny-opt-e2e"));
 * const out = await gpu.decode({
 *   prompts: [[2, 100, 101]], maxNewTokens: 8, padTokenId: 1, eosTokenId: 2,
 *   sets: Array.from({ length: 10 }, () => [...Array(12).keys()]),
 * });
 * console.log(out.tokens[0], out.timing);
 * gpu.dispose();
 * ```
 *
 * @module
 */
import {
  AllocationGroup,
  assertAlive,
  type GpuContext,
  GpuError,
  requestGpu,
  withKernels,
} from "../../kernels/device.ts";
import type { KernelClass } from "../../kernels/profile.ts";
import {
  type KvDtype,
  type KvDtypeOption,
  resolveKvDtype,
} from "../../kernels/attention/kv_dtype.ts";
import { Recorder } from "../../kernels/encode.ts";
import { createMatmulKernels, type MatmulKernels } from "../../kernels/matmul/mod.ts";
import { type AdapterValidation, assertAdapterValid } from "../../kernels/validate.ts";
import { ParamArena } from "../../kernels/uniforms.ts";
import { type FamilyTime, TimestampProfiler } from "../../kernels/profiler.ts";
import type { OptConfig, OptWeights } from "../../model/types.ts";
import { checkNesting } from "../../schedule/plan.ts";
import { layerCapacity, layerPrefix } from "../../schedule/active.ts";
import { validateDecodeRequest } from "../requests.ts";
import { checkColumns } from "../batch.ts";
import { ReadoutBuilder } from "../readout.ts";
import type {
  Backend,
  ColumnLayerSets,
  DecodeOutput,
  DecodeRequest,
  ForwardOutput,
  ForwardRequest,
  RowBatch,
  RowBatchOptions,
} from "../types.ts";
import { createRowKernels, type RowKernels, WebGpuRowBatch } from "./rows.ts";
import {
  allocateWorkspace,
  createGraph,
  type Graph,
  type Workspace,
  type WorkspaceShape,
} from "./graph.ts";
import { type DeviceModel, uploadModel } from "./weights.ts";
import { DecodeLoop, type DecodePlan } from "./decode_loop.ts";
import { checkFiniteLogits } from "../finite.ts";

/** Options of {@linkcode createWebGpuBackend}. */
export interface WebGpuBackendOptions {
  /** A device to use (shared, not destroyed by `dispose`); default: a new one. */
  gpu?: GpuContext;
  /** Matmul variant (`"auto"` by default; see `kernels/matmul`). */
  matmulVariant?: string;
  /**
   * Kernel family (`kernels/profile.ts`): `"gpu"` runs the real-GPU kernels (storage GEMV,
   * 64-wide workgroups) even on a software adapter, `"software"` the llvmpipe-tuned ones;
   * default `SKIPDECODE_KERNELS`, else by the adapter.
   */
  kernels?: KernelClass;
  /**
   * Largest bytes per storage binding for weights (embedding tables and matmul weights);
   * default the device limit. Smaller values force the split paths (tests).
   */
  maxBindingBytes?: number;
  /** Measure GPU time per kernel family with timestamp queries (one pass per dispatch). */
  profile?: boolean;
  /**
   * Run a 2-token decode after loading, so first-use costs (the software adapter compiles
   * shaders at their first dispatch) do not land in the first measured decode.
   */
  warmup?: boolean;
  /** Steps per submission when a request gives no `chunkSize` (default 16). */
  chunkSize?: number;
  /**
   * Check the adapter before trusting it (default true): every kernel family runs once on
   * a small known problem (`kernels/validate.ts`, once per device), and an adapter that
   * computes a wrong number is refused with a {@linkcode GpuError} of kind `"adapter"`.
   */
  validate?: boolean;
  /**
   * Storage type of the KV cache (both the column decode and `openRows`' pages): `"f16"`
   * halves its bytes (keys and values rounded to f16 when stored, attention still in f32;
   * needs `shader-f16`, else a {@linkcode GpuError} naming the adapter), `"f32"` (the
   * default) keeps them exact, `"auto"` takes f16 on hardware adapters running the GPU
   * kernels with `shader-f16` (see `resolveKvDtype` in `kernels/attention/kv_dtype.ts`).
   */
  kvDtype?: KvDtypeOption;
}

/** A decode's output with WebGPU-specific details. */
export interface WebGpuDecodeOutput extends DecodeOutput {
  /** Generated columns executed on the GPU (whole chunks, so at least `steps`). */
  columnsRun: number;
  /** Decode submissions (chunks) after the prefill. */
  chunks: number;
  /** Bytes of the KV caches this decode allocated (halved with `kvDtype: "f16"`). */
  kvCacheBytes: number;
  /** Host milliseconds spent recording and submitting commands (prefill and chunks). */
  encodeMs: number;
  /**
   * Host milliseconds spent recording each decode chunk, in order (the prefill excluded):
   * with `chunkSize: 1`, entry `j - 1` is decode step `j`'s recording time.
   */
  chunkEncodeMs: number[];
  /**
   * GPU milliseconds per kernel family (embedding, layernorm, attention, matmul, lm head,
   * select, readback) of the prefill submission and of the decode chunks, when the backend
   * was created with `profile`.
   */
  profile?: { prefill: Record<string, FamilyTime>; decode: Record<string, FamilyTime> };
}

/** The WebGPU implementation of {@linkcode Backend}. */
export class WebGpuBackend implements Backend {
  /** Always `"webgpu"`. */
  readonly name = "webgpu";
  /** The model configuration. */
  readonly config: OptConfig;
  /** The device. */
  readonly gpu: GpuContext;
  /** The matmul kernels (their variant is `matmul.variant`). */
  readonly matmul: MatmulKernels;
  /** The weights on the device. */
  readonly model: DeviceModel;
  /** Storage type of the KV cache (see {@linkcode WebGpuBackendOptions.kvDtype}). */
  get kvDtype(): KvDtype {
    return this.#graph.kvDtype;
  }
  /** The adapter validation this backend relied on (absent with `validate: false`). */
  validation?: AdapterValidation;
  #graph: Graph;
  #ownsDevice: boolean;
  #options: WebGpuBackendOptions;
  #disposed = false;
  #rowKernels?: Promise<RowKernels>;

  /** Use {@linkcode createWebGpuBackend}. */
  constructor(
    gpu: GpuContext,
    mm: MatmulKernels,
    model: DeviceModel,
    graph: Graph,
    ownsDevice: boolean,
    options: WebGpuBackendOptions,
  ) {
    this.gpu = gpu;
    this.matmul = mm;
    this.model = model;
    this.config = model.config;
    this.#graph = graph;
    this.#ownsDevice = ownsDevice;
    this.#options = options;
  }

  #check(operation: string): void {
    if (this.#disposed) throw new GpuError(`${operation}: the backend was disposed`, "device");
    assertAlive(this.gpu, operation);
  }

  /** Validates token ids and the plan; returns left paddings. */
  #validate(
    rows: readonly (readonly number[])[],
    what: string,
    padTokenId: number,
    sets: ColumnLayerSets,
    columns: number,
  ): number[] {
    const V = this.config.vocabSize;
    if (rows.length === 0) throw new RangeError(`${what}: no rows`);
    const T = Math.max(...rows.map((r) => r.length));
    rows.forEach((r, b) => {
      if (r.length === 0) throw new RangeError(`${what} row ${b} is empty (needs at least BOS)`);
      r.forEach((id, i) => {
        if (!Number.isInteger(id) || id < 0 || id >= V) {
          throw new RangeError(`${what} row ${b} token ${i} is ${id}, not an id in 0..${V - 1}`);
        }
      });
    });
    if (!Number.isInteger(padTokenId) || padTokenId < 0 || padTokenId >= V) {
      throw new RangeError(`padTokenId ${padTokenId} is not an id in 0..${V - 1}`);
    }
    checkColumns(sets, columns, this.config.numHiddenLayers, this.config.maxPositionEmbeddings);
    checkNesting(sets.slice(0, columns));
    this.#fitsAttention(columns);
    return rows.map((r) => T - r.length);
  }

  /** Refuses more columns than the column attention kernel holds on this device. */
  #fitsAttention(columns: number): void {
    if (columns > this.#graph.maxColumns) {
      throw new GpuError(
        `${columns} columns exceed the ${this.#graph.maxColumns} the attention kernel holds ` +
          `on "${this.gpu.info.description}"`,
        "too-large",
      );
    }
  }

  /** Slots of each layer's KV cache: the columns `< columns` that run it (a prefix). */
  #slots(sets: ColumnLayerSets, columns: number): number[] {
    return layerCapacity(sets, this.config.numHiddenLayers, columns);
  }

  /** Uploads the id grid's first `P` columns and the paddings. */
  #writeInputs(
    ws: Workspace,
    rows: readonly (readonly number[])[],
    pads: number[],
    P: number,
    pad: number,
  ): void {
    const B = rows.length;
    const grid = new Uint32Array(P * B);
    for (let b = 0; b < B; b++) {
      for (let c = 0; c < P; c++) grid[c * B + b] = c < pads[b] ? pad : rows[b][c - pads[b]];
    }
    const q = this.gpu.device.queue;
    q.writeBuffer(ws.ids, 0, grid);
    q.writeBuffer(ws.pad, 0, new Uint32Array(pads));
    q.writeBuffer(ws.done, 0, new Uint32Array(B));
  }

  /** Allocates a workspace, reporting the buffer that does not fit. */
  async #allocate(shape: WorkspaceShape): Promise<{ ws: Workspace; destroy(): void }> {
    const group = new AllocationGroup(this.gpu);
    let handle: { ws: Workspace; destroy(): void } | undefined;
    try {
      handle = allocateWorkspace(this.gpu, this.model, group, shape);
      await group.check();
      return handle;
    } catch (e) {
      handle?.destroy();
      await group.check().catch(() => {});
      throw e;
    }
  }

  /** Records the prompt (or whole-sequence) columns: each layer on its prefix. */
  #encodePrefix(rec: Recorder, ws: Workspace, sets: ColumnLayerSets, P: number): void {
    const B = ws.batch;
    this.#graph.embed(rec, ws, 0, P);
    for (let l = 0; l < this.config.numHiddenLayers; l++) {
      const q = layerPrefix(sets, l, P); // columns 0 .. q-1 run layer l
      if (q > 0) this.#graph.layer(rec, ws, l, q * B, 0);
    }
  }

  /** Checks a decode request against the model; returns the sizes the loop needs. */
  #planDecode(req: DecodeRequest): DecodePlan {
    // the validator both backends share: ids, sizes, fields, the plan's coverage and nesting
    const { B, P, N, columns, sampling } = validateDecodeRequest(req, this.config);
    this.#fitsAttention(columns);
    const pads = req.prompts.map((p) => P - p.length);
    const V = this.config.vocabSize;
    const eos = req.eosTokenId;
    const kTop = req.logitsTopK ?? 0;
    const chunk = req.chunkSize ?? this.#options.chunkSize ?? 16;
    if (!Number.isInteger(chunk) || chunk < 1) {
      throw new RangeError(`chunkSize must be a positive integer, got ${chunk}`);
    }
    const record = kTop > 0 || !!req.recordLogits;
    const greedy = !((sampling.temperature ?? 0) > 0);
    return { req, sampling, B, P, N, V, columns, pads, eos, kTop, chunk, record, greedy };
  }

  /**
   * Prefill + token loop (see the module documentation): check the request, allocate the
   * workspace, upload the inputs, run the {@linkcode DecodeLoop}, free everything.
   */
  async decode(req: DecodeRequest): Promise<WebGpuDecodeOutput> {
    this.#check("decode");
    const plan = this.#planDecode(req);
    const { B, P, N, chunk } = plan;
    const t0 = performance.now();
    const { ws, destroy } = await this.#allocate({
      batch: B,
      rows: P * B,
      columns: P + N,
      headRows: B,
      slots: this.#slots(req.sets, plan.columns),
      sampling: !plan.greedy,
      kvDtype: this.kvDtype,
    });
    let profiler: TimestampProfiler | undefined;
    let loop: DecodeLoop | undefined;
    // per call: concurrent decodes on one backend must not share parameter slices
    const arena = new ParamArena(this.gpu, this.#graph.slicesPerStep * chunk + 8);
    try {
      this.#writeInputs(ws, req.prompts, plan.pads, P, req.padTokenId);
      if (this.#options.profile) {
        const L = this.config.numHiddenLayers;
        profiler = new TimestampProfiler(
          this.gpu,
          (chunk + 1) * (this.#graph.slicesPerStep + 6 * L + 4),
        );
      }
      const rec = new Recorder(this.gpu, arena, profiler);
      loop = new DecodeLoop(
        this.gpu,
        this.#graph,
        rec,
        ws,
        plan,
        profiler,
        (r) => this.#encodePrefix(r, ws, req.sets, P),
      );
      const out = await loop.run(t0);
      return {
        ...out,
        kvCacheBytes: ws.kvBytes,
        profile: profiler
          ? { prefill: profiler.totals("prefill"), decode: profiler.totals("decode") }
          : undefined,
      };
    } finally {
      loop?.destroy();
      profiler?.destroy();
      arena.destroy();
      destroy();
    }
  }

  /**
   * Uncached forward over whole sequences; every column's logits (padding columns 0), and
   * with `readout` the per-layer readout (see {@linkcode ForwardRequest.readout}).
   */
  async forward(req: ForwardRequest): Promise<ForwardOutput> {
    this.#check("forward");
    const cfg = this.config;
    const V = cfg.vocabSize;
    const B = req.rows.length;
    const T = Math.max(0, ...req.rows.map((r) => r.length));
    const pads = this.#validate(req.rows, "forward", req.padTokenId, req.sets, T);
    if (req.readout) return await this.#forwardReadout(req, pads, T);
    const M = T * B;
    const { ws, block, chunkRows, out, rec, release } = await this.#forwardResources(req, T);
    const device = this.gpu.device;
    try {
      this.#writeInputs(ws, req.rows, pads, T, req.padTokenId);
      let src: { buf: GPUBuffer; row: number } | undefined;
      let r0 = 0;
      while (r0 < M) {
        // one submission: (the layers, the first time) then LM-head blocks into one staging
        const rows = Math.min(M - r0, chunkRows);
        const staging = device.createBuffer({
          label: `forward logits rows ${r0}..${r0 + rows - 1}`,
          size: rows * V * 4,
          usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
        });
        try {
          device.pushErrorScope("validation");
          rec.begin("forward");
          if (!src) {
            this.#encodePrefix(rec, ws, req.sets, T);
            src = this.#graph.finalNorm(rec, ws, 0, M);
          }
          for (let b0 = 0; b0 < rows; b0 += block) {
            const n = Math.min(block, rows - b0);
            this.#graph.logits(rec, ws, { buf: src.buf, row: src.row + r0 + b0 }, n);
            rec.foreign(
              "readback",
              (e) => e.copyBufferToBuffer(ws.logits, 0, staging, b0 * V * 4, n * V * 4),
            );
          }
          await this.#submitAndMap(rec, staging);
          const data = new Float32Array(staging.getMappedRange());
          // GPU row r = c * B + b  ->  output [b, c, :]
          for (let r = r0; r < r0 + rows; r++) {
            const c = Math.floor(r / B), b = r % B;
            if (c < pads[b]) continue; // padding columns stay 0
            const row = data.subarray((r - r0) * V, (r - r0 + 1) * V);
            checkFiniteLogits(row, V, "webgpu backend (forward)", () => `row ${b}, column ${c}`);
            out.set(row, (b * T + c) * V);
          }
          staging.unmap();
        } finally {
          staging.destroy();
        }
        r0 += rows;
      }
      return { length: T, logits: out };
    } finally {
      release();
    }
  }

  /**
   * What both forwards hold for a call: LM-head blocks of rows whose logits fit one binding
   * (and 64 MiB of scratch), staging chunks of whole blocks (at most 256 MiB or the
   * device's buffer limit), the workspaces, the output logits and a command recorder;
   * `release` frees the device memory.
   */
  async #forwardResources(req: ForwardRequest, T: number) {
    const V = this.config.vocabSize;
    const B = req.rows.length;
    const M = T * B;
    const block = Math.max(
      1,
      Math.min(
        M,
        Math.floor(Math.min(this.gpu.limits.maxStorageBufferBindingSize, 1 << 26) / (V * 4)),
      ),
    );
    const { ws, destroy } = await this.#allocate({
      batch: B,
      rows: M,
      columns: T,
      headRows: block,
      slots: this.#slots(req.sets, T),
      sampling: false,
      kvDtype: this.kvDtype,
    });
    const maxStaging = Math.max(block * V * 4, Math.min(this.gpu.limits.maxBufferSize, 1 << 28));
    const chunkRows = Math.max(block, Math.floor(maxStaging / (V * 4 * block)) * block);
    const arena = new ParamArena(this.gpu, this.#graph.slicesPerStep + 8);
    return {
      ws,
      block,
      chunkRows,
      out: new Float32Array(M * V),
      rec: new Recorder(this.gpu, arena),
      release: () => {
        arena.destroy();
        destroy();
      },
    };
  }

  /**
   * Submits what `rec` recorded (inside the validation scope its caller pushed), maps
   * `staging` for reading when given, and throws a `GpuError` on a validation error or a
   * lost device.
   */
  async #submitAndMap(rec: Recorder, staging: GPUBuffer | undefined): Promise<void> {
    const device = this.gpu.device;
    device.queue.submit([rec.finish()]);
    const validation = device.popErrorScope();
    const mapped = staging ? staging.mapAsync(GPUMapMode.READ) : Promise.resolve();
    const [err] = await Promise.all([validation, mapped.catch((e) => e)]);
    assertAlive(this.gpu, "forward");
    if (err) throw new GpuError(`forward: GPU validation error: ${err.message}`, "validation");
  }

  /**
   * The forward with a per-layer readout: one submission per layer (and per staging block
   * of rows), each running the layer on its prefix of columns, then the model's head
   * (final LN, `project_out`, LM head: the existing kernels) on the rows whose readout
   * changed, whose logits are read back and reduced on the CPU
   * (`backend/readout.ts`). After the last layer the head runs on every row, which also
   * gives the forward's logits.
   */
  async #forwardReadout(req: ForwardRequest, pads: number[], T: number): Promise<ForwardOutput> {
    const cfg = this.config;
    const V = cfg.vocabSize, L = cfg.numHiddenLayers;
    const B = req.rows.length;
    const M = T * B;
    const builder = new ReadoutBuilder(req.rows, req.sets, L, req.readout!.topK);
    const { ws, block, chunkRows, out, rec, release } = await this.#forwardResources(req, T);
    const device = this.gpu.device;
    const g = this.#graph;
    try {
      this.#writeInputs(ws, req.rows, pads, T, req.padTokenId);
      for (let l = 0; l < L; l++) {
        const q = layerPrefix(req.sets, l, T); // columns 0 .. q-1 run layer l (nesting)
        const todo = builder.columns(l);
        const wanted = new Uint8Array(M); // GPU row c * B + b whose readout is computed
        for (const [b, c] of todo) wanted[c * B + b] = 1;
        // rows to run the head on: those computed (a prefix), all of them after the last layer
        const R = l === L - 1 ? M : (l === 0 ? T : q) * B;
        let encoded = false;
        for (let r0 = 0; r0 < Math.max(R, 1); r0 += chunkRows) {
          const rows = Math.min(chunkRows, R - r0);
          const staging = rows > 0
            ? device.createBuffer({
              label: `readout of layer ${l} rows ${r0}..${r0 + rows - 1}`,
              size: rows * V * 4,
              usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
            })
            : undefined;
          try {
            device.pushErrorScope("validation");
            rec.begin(`readout layer ${l}`);
            if (!encoded) {
              if (l === 0) g.embed(rec, ws, 0, T);
              if (q > 0) g.layer(rec, ws, l, q * B, 0);
              encoded = true;
            }
            if (staging) {
              const src = g.finalNorm(rec, ws, r0, rows);
              for (let b0 = 0; b0 < rows; b0 += block) {
                const n = Math.min(block, rows - b0);
                g.logits(rec, ws, { buf: src.buf, row: src.row + b0 }, n);
                rec.foreign(
                  "readback",
                  (e) => e.copyBufferToBuffer(ws.logits, 0, staging, b0 * V * 4, n * V * 4),
                );
              }
            }
            await this.#submitAndMap(rec, staging);
            if (!staging) continue;
            const data = new Float32Array(staging.getMappedRange());
            for (let r = r0; r < r0 + rows; r++) {
              const c = Math.floor(r / B), b = r % B;
              if (c < pads[b]) continue; // padding: no readout, logits stay 0
              const row = data.subarray((r - r0) * V, (r - r0 + 1) * V);
              if (wanted[r]) builder.set(l, b, c, row);
              if (l === L - 1) out.set(row, (b * T + c) * V);
            }
            staging.unmap();
          } finally {
            staging?.destroy();
          }
        }
        builder.repeatSkipped(l);
      }
      return { length: T, logits: out, readout: builder.finish() };
    } finally {
      release();
    }
  }

  /**
   * Sequences at their own positions (continuous batching): a {@linkcode WebGpuRowBatch}
   * with paged KV (see `rows.ts`). Its extra kernels compile once per backend, at the
   * first `run`.
   */
  openRows(options: RowBatchOptions): RowBatch {
    this.#check("openRows");
    const cfg = this.config;
    this.#rowKernels ??= createRowKernels(
      this.gpu,
      cfg.hiddenSize / cfg.numAttentionHeads,
      this.kvDtype,
    );
    return new WebGpuRowBatch(
      this.gpu,
      this.#graph,
      this.#rowKernels,
      options,
      (operation) => this.#check(operation),
    );
  }

  /** Frees the weights (and the device, when the backend created it). */
  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    this.#rowKernels?.then((k) => k.rows.spare.destroy(), () => {});
    this.model.destroy();
    if (this.#ownsDevice) this.gpu.device.destroy();
  }
}

/**
 * Loads an OPT model onto a WebGPU device (a new one unless `options.gpu` is given) and
 * returns the backend.
 *
 * @throws {GpuError} when no adapter exists, the adapter computes wrong results (kind
 *   `"adapter"`, see `kernels/validate.ts`), a tensor does not fit the device, or a kernel
 *   fails to compile (each naming what is at fault).
 *
 * @example
 * ```ts
 * import { createWebGpuBackend } from "./backend.ts";
 * import { loadWeights } from "../../model/mod.ts";
 * const backend = await createWebGpuBackend(await loadWeights("bundled/models/tiny-opt-e2e"));
 * console.log(backend.name, backend.matmul.variant);
 * backend.dispose();
 * ```
 */
export async function createWebGpuBackend(
  weights: OptWeights,
  options: WebGpuBackendOptions = {},
): Promise<WebGpuBackend> {
  const owns = !options.gpu;
  const gpu = withKernels(options.gpu ?? (await requestGpu()), options.kernels);
  if (options.profile && !gpu.features.has("timestamp-query")) {
    if (owns) gpu.device.destroy();
    throw new GpuError(
      `profile: true needs the "timestamp-query" feature, which "${gpu.info.description}" ` +
        "does not offer (or the device was created without it)",
      "device",
    );
  }
  try {
    const kvDtype = resolveKvDtype(gpu.profile, options.kvDtype);
    const validation = options.validate === false
      ? undefined
      : await assertAdapterValid(gpu, { matmulVariant: options.matmulVariant ?? "auto" });
    const mm = createMatmulKernels(gpu.device, {
      // the validated variant: the first candidate whose self-check passed
      variant: validation?.matmulVariant ?? options.matmulVariant ?? "auto",
      profile: gpu.profile,
      maxBindingBytes: options.maxBindingBytes,
    });
    const model = await uploadModel(gpu, mm, weights, {
      maxBindingBytes: options.maxBindingBytes,
      // the GPU path's GEMV runs q/k/v as one product (kernels/matmul/qkv.ts)
      fuseQkv: mm.variant === "v4_storage_gemv",
    });
    try {
      const graph = await createGraph(gpu, mm, model, kvDtype);
      const backend = new WebGpuBackend(gpu, mm, model, graph, owns, options);
      backend.validation = validation;
      if (options.warmup) {
        const cfg = weights.config;
        const all = Array.from({ length: cfg.numHiddenLayers }, (_, l) => l);
        await backend.decode({
          prompts: [[cfg.bosTokenId, cfg.bosTokenId]],
          maxNewTokens: 2,
          sets: [all, all, all],
          padTokenId: cfg.padTokenId,
        });
      }
      return backend;
    } catch (e) {
      model.destroy();
      throw e;
    }
  } catch (e) {
    if (owns) gpu.device.destroy();
    throw e;
  }
}
