/**
 * The WebGPU decode loop, in named steps: {@linkcode DecodeLoop.prefill} records the prompt
 * columns and the first token; {@linkcode DecodeLoop.ahead} records the next chunk of decode
 * steps while the GPU runs the current one; {@linkcode DecodeLoop.prepare} gives each
 * submission one staging buffer (tokens, EOS flags, logits, timestamps);
 * {@linkcode DecodeLoop.launch} submits it and starts the readback;
 * {@linkcode DecodeLoop.receive} appends the tokens read back to the rows still running;
 * {@linkcode DecodeLoop.run} pipelines these until every row is done. `backend.ts` checks
 * the request ({@linkcode DecodePlan}), allocates the workspace and owns the cleanup.
 *
 * @example
 * ```ts
 * import type { GpuContext, Recorder } from "../../kernels/mod.ts";
 * import type { Graph, Workspace } from "./graph.ts";
 * // the backend's device, command graph, recorder, workspace and the decode's plan
 * declare const gpu: GpuContext, graph: Graph, rec: Recorder, ws: Workspace, plan: DecodePlan;
 * const loop = new DecodeLoop(gpu, graph, rec, ws, plan, undefined, () => {});
 * const out = await loop.run(performance.now());
 * loop.destroy();
 * ```
 *
 * @module
 */
import { assertAlive, type GpuContext, GpuError } from "../../kernels/device.ts";
import type { Recorder } from "../../kernels/encode.ts";
import type { TimestampProfiler } from "../../kernels/profiler.ts";
import { topK } from "../cpu/ops.ts";
import type { ColumnLayerSets, DecodeOutput, DecodeRequest, SamplingOptions } from "../types.ts";
import type { Graph, Workspace } from "./graph.ts";
import { checkFiniteLogits, NonFiniteError } from "../finite.ts";
import { NONFINITE_ID } from "../../kernels/select/mod.ts";

/** A decode request checked against the model, with the sizes the loop needs. */
export interface DecodePlan {
  /** The request. */
  req: DecodeRequest;
  /** Its sampling options (`{}`: greedy). */
  sampling: SamplingOptions;
  /** Rows. */
  B: number;
  /** Prompt columns (the longest prompt). */
  P: number;
  /** Tokens to generate at most. */
  N: number;
  /** Vocabulary size. */
  V: number;
  /** Columns run: `P + N - 1`. */
  columns: number;
  /** Left padding of each row. */
  pads: number[];
  /** End-of-sequence id, if any. */
  eos?: number;
  /** Top-k entries recorded per token (0: none). */
  kTop: number;
  /** Decode steps per submission. */
  chunk: number;
  /** Whether logits are read back (top-k or `recordLogits`). */
  record: boolean;
  /** Greedy selection (no temperature). */
  greedy: boolean;
}

/** What a decode returns beyond {@linkcode DecodeOutput}'s fields. */
export interface DecodeLoopOutput extends DecodeOutput {
  /** Generated columns executed on the GPU (whole chunks, so at least `steps`). */
  columnsRun: number;
  /** Decode submissions (chunks) after the prefill. */
  chunks: number;
  /** Host milliseconds spent recording and submitting commands. */
  encodeMs: number;
  /** Host milliseconds spent recording each decode chunk (the prefill excluded), in order. */
  chunkEncodeMs: number[];
}

/** Recorded work (a command buffer) and where its results will be read. */
interface Prepared {
  commands: GPUCommandBuffer;
  staging: GPUBuffer;
  /** Token indices `first .. first + count - 1` are in the staging buffer. */
  first: number;
  count: number;
  doneOffset: number;
  logitsOffset: number;
  stampsOffset: number;
  families: string[];
}

/** Submitted work whose results are read back with one `mapAsync`. */
interface InFlight extends Prepared {
  mapped: Promise<void>;
  validation: Promise<GPUError | null>;
}

function sortedSet(sets: ColumnLayerSets, c: number): number[] {
  return [...sets[c]].sort((a, b) => a - b);
}

/** One decode's loop state: host-side results, staging buffers in use, and the steps. */
export class DecodeLoop {
  /** Tokens generated per row. */
  readonly tokens: number[][];
  /** Why each row stopped. */
  readonly finish: ("eos" | "length")[];
  /** Top-k logits per row and token, when asked. */
  readonly topk?: [number, number][][][];
  /** Logits per row and token, when asked. */
  readonly logits?: Float32Array[][];
  /** Host milliseconds spent recording. */
  encodeMs = 0;
  /** Host milliseconds spent recording each decode chunk, in order. */
  readonly chunkEncodeMs: number[] = [];
  #finished: boolean[];
  #stagings = new Set<GPUBuffer>();
  #next = 1; // next token index to record (decode step j = next - 1 runs at column P + j)
  #gpu: GpuContext;
  #graph: Graph;
  #rec: Recorder;
  #ws: Workspace;
  #plan: DecodePlan;
  #profiler?: TimestampProfiler;
  #encodePrefix: (rec: Recorder) => void;

  /**
   * Sets up the loop; `encodePrefix` records the prompt columns (every layer on the prefix
   * of columns that run it).
   */
  constructor(
    gpu: GpuContext,
    graph: Graph,
    rec: Recorder,
    ws: Workspace,
    plan: DecodePlan,
    profiler: TimestampProfiler | undefined,
    encodePrefix: (rec: Recorder) => void,
  ) {
    this.#gpu = gpu;
    this.#graph = graph;
    this.#rec = rec;
    this.#ws = ws;
    this.#plan = plan;
    this.#profiler = profiler;
    this.#encodePrefix = encodePrefix;
    const prompts = plan.req.prompts;
    this.tokens = prompts.map(() => []);
    this.finish = prompts.map(() => "length");
    this.#finished = new Array<boolean>(plan.B).fill(false);
    if (plan.kTop) this.topk = prompts.map(() => []);
    if (plan.req.recordLogits) this.logits = prompts.map(() => []);
  }

  /**
   * Records the work producing tokens `first .. first + count - 1` (not yet submitted);
   * `body` records it, writing logits of slot `s` via `copyLogits(s)`. One staging buffer
   * gets the tokens, EOS flags, logits and timestamps. Parameters go to the arena with a
   * `writeBuffer` that the queue orders after earlier submissions, so a chunk can be
   * recorded while the previous one runs.
   */
  prepare(
    first: number,
    count: number,
    body: (copyLogits: (slot: number) => void) => void,
  ): Prepared {
    const { B, V, P, record } = this.#plan;
    const device = this.#gpu.device, rec = this.#rec, ws = this.#ws, profiler = this.#profiler;
    const te = performance.now();
    const doneOffset = count * B * 4;
    const logitsOffset = doneOffset + B * 4;
    const stampsOffset = Math.ceil((logitsOffset + (record ? count * B * V * 4 : 0)) / 8) * 8;
    const staging = device.createBuffer({
      label: `readback of tokens ${first}..${first + count - 1}`,
      size: stampsOffset + (profiler ? profiler.capacity * 16 : 0) + 8,
      usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
    });
    this.#stagings.add(staging);
    device.pushErrorScope("validation");
    const enc = rec.begin(`decode tokens ${first}..${first + count - 1}`);
    body((slot) => {
      if (!record) return;
      rec.foreign(
        "readback",
        (e) =>
          e.copyBufferToBuffer(ws.logits, 0, staging, logitsOffset + slot * B * V * 4, B * V * 4),
      );
    });
    rec.endPass();
    enc.copyBufferToBuffer(ws.ids, (P + first) * B * 4, staging, 0, count * B * 4);
    enc.copyBufferToBuffer(ws.done, 0, staging, doneOffset, B * 4);
    let families: string[] = [];
    if (profiler) {
      profiler.resolveInto(enc, staging, stampsOffset);
      families = profiler.takeFamilies();
    }
    const commands = rec.finish();
    const ms = performance.now() - te;
    this.encodeMs += ms;
    if (first > 0) this.chunkEncodeMs.push(ms);
    return { commands, staging, first, count, doneOffset, logitsOffset, stampsOffset, families };
  }

  /** Submits prepared work and starts its readback. */
  launch(p: Prepared): InFlight {
    const device = this.#gpu.device;
    device.queue.submit([p.commands]);
    const validation = device.popErrorScope();
    const mapped = p.staging.mapAsync(GPUMapMode.READ);
    mapped.catch(() => {}); // reported by receive()
    return { ...p, mapped, validation };
  }

  /** Drops prepared work that will not run. */
  discard(p: Prepared): void {
    this.#gpu.device.popErrorScope().catch(() => {});
    this.#stagings.delete(p.staging);
    p.staging.destroy();
  }

  /** Final LN, LM head, logits copy and selection of the token produced at column `c`. */
  head(c: number, inRow: number, slot: number, copy: (s: number) => void): void {
    const { B, P, sampling, eos } = this.#plan;
    const g = this.#graph, rec = this.#rec, ws = this.#ws;
    g.logits(rec, ws, g.finalNorm(rec, ws, inRow, B), B);
    copy(slot);
    g.select(rec, ws, (c + 1) * B, c - P + 1, sampling, eos);
  }

  /** Prefill: every prompt column, then token 0 from the last prompt column. */
  prefill(): Prepared {
    const { B, P } = this.#plan;
    return this.prepare(0, 1, (copy) => {
      this.#encodePrefix(this.#rec);
      this.head(P - 1, (P - 1) * B, 0, copy);
    });
  }

  /** Records the next chunk of decode steps, or `undefined` when every token is recorded. */
  ahead(): Prepared | undefined {
    const { B, N, P, chunk, req } = this.#plan;
    if (this.#next >= N) return undefined;
    const first = this.#next, count = Math.min(chunk, N - this.#next);
    this.#next += count;
    return this.prepare(first, count, (copy) => {
      for (let s = 0; s < count; s++) {
        const c = P + first + s - 1; // column consuming token first + s - 1
        this.#graph.embed(this.#rec, this.#ws, c, 1);
        for (const l of sortedSet(req.sets, c)) this.#graph.layer(this.#rec, this.#ws, l, B, c);
        this.head(c, 0, s, copy);
      }
    });
  }

  /** Reads one submission back and appends its tokens to the rows still running. */
  async receive(f: InFlight): Promise<void> {
    const { B, N, V, eos, kTop } = this.#plan;
    let mapError: unknown;
    try {
      await f.mapped;
    } catch (e) {
      mapError = e;
    }
    const err = await f.validation;
    assertAlive(this.#gpu, "decode");
    if (err) throw new GpuError(`decode: GPU validation error: ${err.message}`, "validation");
    if (mapError) {
      throw new GpuError(`decode: readback failed: ${(mapError as Error).message}`, "device", {
        cause: mapError,
      });
    }
    const data = f.staging.getMappedRange();
    const ids = new Uint32Array(data, 0, f.count * B);
    const flags = new Uint32Array(data, f.doneOffset, B);
    const logitsAll = this.#plan.record
      ? new Float32Array(data, f.logitsOffset, f.count * B * V)
      : undefined;
    for (let s = 0; s < f.count; s++) {
      const i = f.first + s; // token index
      if (i >= N) break;
      for (let b = 0; b < B; b++) {
        if (this.#finished[b]) continue;
        const id = ids[s * B + b];
        if (id === NONFINITE_ID) throw nonFiniteOnGpu("decode", `row ${b}, new token ${i}`);
        this.tokens[b].push(id);
        if (logitsAll) {
          const row = logitsAll.subarray((s * B + b) * V, (s * B + b + 1) * V);
          checkFiniteLogits(row, V, "webgpu backend (decode)", () => `row ${b}, new token ${i}`);
          if (this.topk) this.topk[b].push(topK(row, kTop));
          if (this.logits) this.logits[b].push(row.slice());
        }
        if (eos !== undefined && id === eos) {
          this.#finished[b] = true;
          this.finish[b] = "eos";
        }
      }
    }
    for (let b = 0; b < B; b++) {
      if ((flags[b] === 1) !== this.#finished[b]) {
        throw new GpuError(
          `decode: row ${b}: GPU EOS flag ${flags[b]} disagrees with its tokens`,
          "validation",
        );
      }
    }
    const profiler = this.#profiler;
    if (profiler && f.families.length) {
      const stamps = new BigUint64Array(
        data.slice(f.stampsOffset, f.stampsOffset + f.families.length * 16),
      );
      profiler.accumulate(f.families, stamps, f.first === 0 ? "prefill" : "decode");
    }
    f.staging.unmap();
    this.#stagings.delete(f.staging);
    f.staging.destroy();
  }

  /** Whether no row needs more tokens. */
  get done(): boolean {
    return this.#finished.every(Boolean) ||
      this.tokens.every((t) => t.length >= this.#plan.N);
  }

  /**
   * The whole loop: the prefill, then chunks pipelined (the next recorded while the GPU
   * runs the current one, submitted only if needed). `t0` is when the decode started.
   */
  async run(t0: number): Promise<DecodeLoopOutput> {
    let current = this.launch(this.prefill());
    let prepared = this.ahead();
    let chunks = 0, prefillMs = 0, tPrefill = t0, received = 0;
    while (true) {
      await this.receive(current);
      if (received++ === 0) {
        tPrefill = performance.now();
        prefillMs = tPrefill - t0;
      }
      if (this.done || !prepared) {
        if (prepared) this.discard(prepared);
        break;
      }
      current = this.launch(prepared);
      chunks++;
      prepared = this.ahead();
    }
    const t2 = performance.now();
    const produced = Math.max(...this.tokens.map((t) => t.length));
    return {
      tokens: this.tokens,
      finish: this.finish,
      topk: this.topk,
      logits: this.logits,
      promptLength: this.#plan.P,
      steps: produced - 1,
      timing: { prefillMs, decodeMs: t2 - tPrefill, readbacks: received },
      columnsRun: current.first + current.count - 1,
      chunks,
      encodeMs: this.encodeMs,
      chunkEncodeMs: this.chunkEncodeMs,
    };
  }

  /** Frees the staging buffers still held (after an error). */
  destroy(): void {
    for (const s of this.#stagings) s.destroy();
    this.#stagings.clear();
  }
}

/**
 * The error for a row the GPU's selection kernel flagged (`NONFINITE_ID`: a logit was NaN or
 * ±Infinity), worded as the CPU's `checkFiniteLogits`.
 *
 * @example
 * ```ts
 * console.log(nonFiniteOnGpu("decode", "row 0, new token 3").message);
 * ```
 */
export function nonFiniteOnGpu(what: string, label: string): NonFiniteError {
  return new NonFiniteError(
    `webgpu backend (${what}): the LM head produced a NaN or infinite logit for ${label}: an ` +
      `activation overflowed or a weight is not finite; the output would be garbage`,
  );
}
