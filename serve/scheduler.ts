/**
 * The continuous-batching scheduler (the paper's "infinite loop" mode, issue 19): requests
 * queue, a free slot of a {@linkcode RowBatch} admits the next one, and every step runs one
 * batched `RowBatch.run` over all running rows, each at its own position with its own
 * per-token layer sets.
 *
 * **Plans.** A request's layer sets are those of `plan(policy, {promptLength: P, maxNewTokens:
 * N, ...dims})` of `schedule/`, exactly what a solo decode of the request uses: its prompt runs
 * columns `0 .. P-1` with `sets[0 .. P-1]` and its generated token `i` is fed back at position
 * `P + i` with `sets[P + i]`. So a request's tokens equal its solo decode (`generate` with batch
 * size 1) whatever its batch mates are: rows never share a budget, only a batched product.
 *
 * **Prefill placement.** A newly admitted request's whole prompt is one `RowWork` entry of the
 * *same* `run` call as the running rows' decode steps (the contract allows mixing): an
 * admission never stalls the other rows for a step of its own. Prompts are not chunked.
 *
 * **Admission modes** (`SchedulerOptions.mode`):
 * - `per-row`: whenever a slot is free, the queue's head takes it at the next step.
 * - `aligned` (the paper's suggestion, made precise): all running rows sit at the same position
 *   `c` (the column of their next `run` token), as in a column-wise batch. A waiting request of
 *   prompt length `P` joins only at a step where `P - 1 == c`, so its prefill's last column
 *   is the batch's column and from then on it moves in lock-step with the others (the queue is
 *   scanned in arrival order for such requests). An empty batch takes the queue's head and every
 *   waiting request of the same prompt length. Every row still runs its own plan (so tokens
 *   equal the solo decode); rows of one column share one budget whenever their policies give
 *   the same budget to the same column (same policy, horizon and prompt length, or a policy
 *   whose budget depends on the column alone).
 * - `static`: lock-step batches for comparison: a batch is admitted only when every slot is
 *   free (up to `capacity` requests in arrival order) and runs until its last row finishes;
 *   slots of finished rows idle meanwhile. Under the `full` prompt mode, for requests with one
 *   policy and one `maxTokens`, this gives the tokens and the layer sets per generated index of
 *   today's column-wise `generate` of those requests (without its padding).
 *
 * A row frees its slot (`RowBatch.release`) in the step it finishes: EOS, a stop string (in
 * the decoded text, matched across token boundaries and never splitting a multi-byte
 * character), its token limit, its `AbortSignal` or shutdown. An aborted row is dropped
 * before the next step.
 *
 * @module
 */
import type {
  Backend,
  RowBatch,
  RowBatchStats,
  RowWork,
  SamplingOptions,
} from "../backend/types.ts";
import { checkTokenIds } from "../backend/batch.ts";
import type { OptConfig } from "../model/types.ts";
import { dimsFromConfig, parsePolicy, plan, type Policy } from "../schedule/mod.ts";
import type { OptTokenizer } from "../tokenizer/mod.ts";
import { StopText } from "./stop.ts";
import { checkDraftLength } from "../decode/speculative.ts";

/** How waiting requests join the running batch (see the module documentation). */
export type AdmissionMode = "per-row" | "aligned" | "static";

/** The admission modes, for option parsing. */
export const ADMISSION_MODES: readonly AdmissionMode[] = ["per-row", "aligned", "static"];

/** Options of a {@linkcode Scheduler}. */
export interface SchedulerOptions {
  /** Rows decoded at once (the `RowBatch`'s slots); default 8. */
  capacity?: number;
  /** Admission mode; default `"per-row"`. */
  mode?: AdmissionMode;
  /**
   * Requests that may wait (at least 1: a request waits until the next step admits it);
   * `submit` refuses more with {@linkcode QueueFullError}. Default 64.
   */
  maxQueue?: number;
  /** Policy of requests that name none; default `"full"`. */
  policy?: Policy | string;
  /** Positions a row may reach (prompt + generated); default the model's position table. */
  maxLength?: number;
  /** Called after every step (benchmarks: running rows over time). */
  onStep?: (step: StepInfo) => void;
}

/** What {@linkcode SchedulerOptions.onStep} receives. */
export interface StepInfo {
  /** `performance.now()` at the end of the step. */
  time: number;
  /** Rows run in the step (prefills included). */
  rows: number;
  /** Of those, newly admitted (prefill entries). */
  admitted: number;
  /** Requests waiting after the step. */
  queued: number;
  /** Layer evaluations of the step (one per token and active layer). */
  layerSteps: number;
  /** Milliseconds the step's `RowBatch.run` took. */
  ms: number;
}

/** One completion request. */
export interface CompletionRequest {
  /** Prompt text (BOS is prepended) or token ids (used as given; include BOS). */
  prompt: string | readonly number[];
  /** Tokens to generate at most, 1 or more. */
  maxTokens: number;
  /** The request's policy; default the scheduler's. */
  policy?: Policy | string;
  /** Greedy by default. */
  sampling?: SamplingOptions;
  /** Stop strings: the text ends before the first occurrence of any. */
  stop?: readonly string[];
  /** Stop at EOS (default true). */
  stopAtEos?: boolean;
  /** Aborting frees the request's slot (or drops it from the queue). */
  signal?: AbortSignal;
  /**
   * Self-speculative decoding (DESIGN §3b): the request's policy drafts up to this many tokens
   * (an integer from 1), all layers verify them, so the tokens are the full model's. Greedy
   * only; not with `aligned` admission (rows advance by their own accepted counts).
   */
  speculative?: number;
}

/**
 * Why a request ended. `cancelled`: aborted by its signal, by shutdown, or by a failed step
 * (then the completion's `error` says why).
 */
export type FinishReason = "eos" | "stop" | "length" | "cancelled";

/** A streamed event of one request. */
export type CompletionEvent =
  | {
    /** A generated token and the text it released (may be `""`). */
    type: "token";
    /** Generated-token index. */
    index: number;
    /** Token id. */
    id: number;
    /** Text delta (held back while it could start a stop string or splits a character). */
    text: string;
    /** Layers run to produce this token. */
    layers: number;
  }
  | {
    /** The request ended; `text` is the last delta. */
    type: "done";
    /** The last text delta. */
    text: string;
    /** Why it ended. */
    finish: FinishReason;
    /** A step failed and cancelled the request: the failure's message. */
    error?: string;
  };

/** The finished request. */
export interface Completion {
  /** Prompt ids (BOS included). */
  promptIds: number[];
  /** Generated ids (EOS included when produced, as `generate` reports them). */
  ids: number[];
  /** Generated text (special tokens skipped, cut before a stop string). */
  text: string;
  /** Why it ended. */
  finish: FinishReason;
  /** A step failed and cancelled the request (`finish: "cancelled"`): the failure's message. */
  error?: string;
  /** `layers[i]`: layers run to produce generated token `i`. */
  layers: number[];
  /** The policy's command-line form. */
  policy: string;
  /** Milliseconds from `submit` to admission, to the first token, and to the end. */
  timing: { queuedMs: number; firstTokenMs: number; totalMs: number };
  /** Speculative requests: the draft length and the drafts made and accepted. */
  speculative?: { k: number; drafted: number; accepted: number };
}

/** A submitted request: its events as they happen and its result. */
export interface CompletionHandle {
  /** Scheduler-wide request number. */
  readonly id: number;
  /** The events, in order, ending with `done` (one reader). */
  readonly events: AsyncIterable<CompletionEvent>;
  /** Resolves when the request ends (never rejects for cancellation: `finish: "cancelled"`). */
  readonly done: Promise<Completion>;
}

/** Thrown by {@linkcode Scheduler.submit} when the queue is full (HTTP 429). */
export class QueueFullError extends Error {
  /** Suggested seconds to wait before retrying. */
  readonly retryAfterSeconds: number;
  /** Makes the error. */
  constructor(message: string, retryAfterSeconds: number) {
    super(message);
    this.name = "QueueFullError";
    this.retryAfterSeconds = retryAfterSeconds;
  }
}

/** Thrown by {@linkcode Scheduler.submit} after {@linkcode Scheduler.close} (HTTP 503). */
export class SchedulerClosedError extends Error {
  /** Makes the error. */
  constructor(message = "the server is shutting down and admits no new requests") {
    super(message);
    this.name = "SchedulerClosedError";
  }
}

/** Counters and gauges of a {@linkcode Scheduler} (the server's `/metrics`). */
export interface SchedulerMetrics {
  /** Requests accepted by `submit`. */
  requests: number;
  /** Requests refused because the queue was full. */
  rejected: number;
  /** Ended requests by reason. */
  finished: Record<FinishReason, number>;
  /** Generated tokens. */
  tokens: number;
  /** Prompt tokens prefilled. */
  promptTokens: number;
  /** Requests waiting now. */
  queueDepth: number;
  /** Rows holding a slot now. */
  runningRows: number;
  /** Slots. */
  capacity: number;
  /** Σ layers run per generated token. */
  layerSum: number;
  /** `layerSum / tokens` (0 before the first token). */
  meanActiveLayers: number;
  /** `RowBatch.run` calls. */
  steps: number;
  /** The row batch's counters (zeros before the first step). */
  rows: RowBatchStats;
}

/** The model parts a scheduler needs. */
export type SchedulerModel = {
  backend: Pick<Backend, "openRows">;
  tokenizer: Pick<OptTokenizer, "encode" | "createStreamDecoder">;
  config: OptConfig;
};

interface Entry {
  id: number;
  promptIds: number[];
  maxTokens: number;
  policy: Policy;
  sets: number[][];
  generatedLayers: number[];
  sampling?: SamplingOptions;
  stopAtEos: boolean;
  signal?: AbortSignal;
  stop: StopText;
  decoder: { push(id: number): string; flush(): string };
  ids: number[];
  slot: number;
  prefilled: boolean;
  aborted: boolean;
  submitted: number;
  admitted: number;
  firstToken: number;
  events: EventQueue;
  resolve: (c: Completion) => void;
  onAbort?: () => void;
  /** Speculative rows: the draft length K and the round in progress. */
  spec?: { k: number; drafts: number[]; kRound: number; drafted: number; accepted: number };
}

/**
 * Runs completion requests on a backend's {@linkcode RowBatch} (see the module documentation
 * for plans, prefill placement and the admission modes).
 *
 * @example
 * ```ts
 * import { loadModel } from "../decode/mod.ts";
 * import { Scheduler } from "./scheduler.ts";
 * const model = await loadModel("bundled/models/tiny-opt-e2e", { backend: "cpu" });
 * const scheduler = new Scheduler(model, { capacity: 4, mode: "per-row" });
 * const a = scheduler.submit({ prompt: "name[Alimentum]\n", maxTokens: 8 });
 * const b = scheduler.submit({
 *   prompt: "name[The Eagle]\n", maxTokens: 8, policy: "linear:max=12,min=4,warmup=1",
 * });
 * for await (const e of a.events) if (e.type === "token") console.log(e.text);
 * console.log((await b.done).text, scheduler.metrics().meanActiveLayers);
 * await scheduler.close();
 * ```
 */
export class Scheduler {
  readonly #model: SchedulerModel;
  readonly #capacity: number;
  readonly #mode: AdmissionMode;
  readonly #maxQueue: number;
  readonly #policy: Policy;
  readonly #maxLength: number;
  readonly #onStep?: (s: StepInfo) => void;
  #rows?: RowBatch;
  readonly #queue: Entry[] = [];
  readonly #slots: (Entry | undefined)[];
  #nextId = 0;
  #pumping?: Promise<void>;
  #closed = false;
  #failure?: Error;
  readonly #m = {
    requests: 0,
    rejected: 0,
    finished: { eos: 0, stop: 0, length: 0, cancelled: 0 } as Record<FinishReason, number>,
    tokens: 0,
    promptTokens: 0,
    layerSum: 0,
    steps: 0,
  };
  #stepMs = 0;
  /** The row batch's counters when it was freed (metrics after close). */
  #lastStats?: RowBatchStats;

  /** Makes a scheduler; the row batch is opened at the first step. */
  constructor(model: SchedulerModel, options: SchedulerOptions = {}) {
    this.#model = model;
    this.#capacity = options.capacity ?? 8;
    if (!Number.isInteger(this.#capacity) || this.#capacity < 1) {
      throw new RangeError(`capacity must be an integer >= 1, got ${options.capacity}`);
    }
    this.#mode = options.mode ?? "per-row";
    if (!ADMISSION_MODES.includes(this.#mode)) {
      throw new RangeError(
        `mode must be one of ${ADMISSION_MODES.join(", ")}, got "${String(options.mode)}"`,
      );
    }
    this.#maxQueue = options.maxQueue ?? 64;
    if (!Number.isInteger(this.#maxQueue) || this.#maxQueue < 1) {
      // every request waits in the queue until a step admits it: 0 would refuse them all
      throw new RangeError(`maxQueue must be an integer >= 1, got ${options.maxQueue}`);
    }
    this.#policy = resolve(options.policy ?? "full");
    this.#maxLength = options.maxLength ?? model.config.maxPositionEmbeddings;
    if (
      !Number.isInteger(this.#maxLength) || this.#maxLength < 1 ||
      this.#maxLength > model.config.maxPositionEmbeddings
    ) {
      throw new RangeError(
        `maxLength must be an integer from 1 to the model's position table ` +
          `(${model.config.maxPositionEmbeddings}), got ${options.maxLength}`,
      );
    }
    this.#onStep = options.onStep;
    this.#slots = new Array(this.#capacity).fill(undefined);
  }

  /** Slots. */
  get capacity(): number {
    return this.#capacity;
  }

  /** Requests that may wait (a request of more prompts can never be accepted). */
  get maxQueue(): number {
    return this.#maxQueue;
  }

  /** The admission mode. */
  get mode(): AdmissionMode {
    return this.#mode;
  }

  /** Positions a row may reach (prompt + generated tokens - 1 must fit). */
  get maxLength(): number {
    return this.#maxLength;
  }

  /** The default policy. */
  get policy(): Policy {
    return this.#policy;
  }

  /** Whether `count` more requests fit in the queue now. */
  canAccept(count = 1): boolean {
    return !this.#closed && this.#queue.length + count <= this.#maxQueue;
  }

  /**
   * Throws {@linkcode SchedulerClosedError} after `close`, {@linkcode QueueFullError} (counted
   * as a refusal) when `count` more requests do not fit in the queue now.
   */
  assertAccepts(count: number): void {
    if (this.#closed) throw new SchedulerClosedError();
    if (this.#failure) throw this.#failure;
    if (!this.canAccept(count)) {
      this.#m.rejected++;
      throw new QueueFullError(
        `the queue is full (${this.#queue.length} requests waiting, ` +
          `${this.#slots.filter((e) => e !== undefined).length} of ${this.#capacity} rows ` +
          `running): retry later`,
        this.#retryAfter(),
      );
    }
  }

  /**
   * Queues a request. Throws `RangeError`/`PolicyError` for a bad request (naming the field),
   * {@linkcode QueueFullError} when the queue is full and {@linkcode SchedulerClosedError}
   * after {@linkcode Scheduler.close}.
   */
  submit(request: CompletionRequest): CompletionHandle {
    const entry = this.#prepare(request);
    this.assertAccepts(1);
    const done = new Promise<Completion>((r) => (entry.resolve = r));
    if (entry.signal) {
      if (entry.signal.aborted) {
        entry.aborted = true;
      } else {
        entry.onAbort = () => this.#abort(entry);
        entry.signal.addEventListener("abort", entry.onAbort, { once: true });
      }
    }
    this.#m.requests++;
    if (entry.aborted) this.#finish(entry, "cancelled");
    else {
      this.#queue.push(entry);
      this.#kick();
    }
    return { id: entry.id, events: entry.events, done };
  }

  /** The counters now. */
  metrics(): SchedulerMetrics {
    const running = this.#slots.filter((e) => e !== undefined).length;
    return {
      ...this.#m,
      finished: { ...this.#m.finished },
      queueDepth: this.#queue.length,
      runningRows: running,
      capacity: this.#capacity,
      meanActiveLayers: this.#m.tokens ? this.#m.layerSum / this.#m.tokens : 0,
      rows: this.#rows?.stats() ?? this.#lastStats ??
        { kvWrites: 0, kvRewrites: 0, kvBytes: 0, peakKvBytes: 0, layerSteps: 0 },
    };
  }

  /**
   * Stops admitting: waiting requests end `cancelled` at once, running rows may finish for up
   * to `graceMs` (default 10 s), then the rest end `cancelled`; resolves when no row is left
   * and the row batch is freed.
   */
  async close(graceMs = 10_000): Promise<void> {
    this.#closed = true;
    for (const e of this.#queue.splice(0)) this.#finish(e, "cancelled");
    if (this.#pumping) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const expired = new Promise<void>((r) => (timer = setTimeout(r, graceMs)));
      await Promise.race([this.#pumping, expired]);
      clearTimeout(timer);
      for (const e of this.#slots) if (e) e.aborted = true;
      await this.#pumping;
    }
    if (this.#rows) this.#lastStats = this.#rows.stats();
    this.#rows?.dispose();
    this.#rows = undefined;
  }

  #prepare(r: CompletionRequest): Entry {
    if (typeof r !== "object" || r === null) throw new TypeError("request must be an object");
    const { tokenizer, config } = this.#model;
    let promptIds: number[];
    if (typeof r.prompt === "string") promptIds = tokenizer.encode(r.prompt);
    else if (Array.isArray(r.prompt)) promptIds = [...r.prompt];
    else throw new TypeError("prompt must be a string or an array of token ids");
    if (promptIds.length === 0) throw new RangeError("prompt is empty: it needs at least BOS");
    checkTokenIds([promptIds], config.vocabSize, "prompt");
    const N = r.maxTokens;
    if (!Number.isInteger(N) || N < 1) {
      throw new RangeError(`maxTokens must be an integer >= 1, got ${N}`);
    }
    const P = promptIds.length;
    if (P + N - 1 > this.#maxLength) {
      throw new RangeError(
        `maxTokens: the prompt has ${P} tokens; with maxTokens ${N} it needs ${P + N - 1} ` +
          `positions but rows hold ${this.#maxLength}: shorten the prompt or maxTokens`,
      );
    }
    const policy = r.policy === undefined ? this.#policy : resolve(r.policy);
    const p = plan(policy, { ...dimsFromConfig(config), promptLength: P, maxNewTokens: N });
    const K = r.speculative, L = config.numHiddenLayers;
    if (K !== undefined) {
      checkDraftLength(K, config.maxPositionEmbeddings);
      if ((r.sampling?.temperature ?? 0) > 0) {
        throw new RangeError("speculative: greedy only, the temperature must be 0");
      }
      if (this.#mode === "aligned") {
        throw new RangeError(
          "speculative: not with aligned admission (rows advance by their own accepted counts)",
        );
      }
    }
    const stop = new StopText(r.stop ?? []);
    return {
      id: this.#nextId++,
      promptIds,
      maxTokens: N,
      policy,
      sets: p.sets,
      // a speculative row's tokens are the full model's: every one counts L layers
      generatedLayers: K === undefined ? p.generatedLayers : p.generatedLayers.map(() => L),
      sampling: r.sampling,
      stopAtEos: r.stopAtEos ?? true,
      signal: r.signal,
      stop,
      decoder: tokenizer.createStreamDecoder(),
      ids: [],
      slot: -1,
      prefilled: false,
      aborted: false,
      submitted: performance.now(),
      admitted: NaN,
      firstToken: NaN,
      events: new EventQueue(),
      resolve: () => {},
      ...(K === undefined
        ? {}
        : { spec: { k: K, drafts: [], kRound: -1, drafted: 0, accepted: 0 } }),
    };
  }

  #retryAfter(): number {
    // Rough: the queue drains `capacity` requests per (mean request steps * step time).
    const perStep = Math.max(this.#stepMs, 1) / 1000;
    return Math.max(1, Math.ceil(((this.#queue.length + 1) / this.#capacity) * 32 * perStep));
  }

  #abort(e: Entry): void {
    e.aborted = true;
    const q = this.#queue.indexOf(e);
    if (q >= 0) {
      this.#queue.splice(q, 1);
      this.#finish(e, "cancelled");
    }
    // A running row is dropped before the next step (a step in flight cannot be interrupted).
  }

  #kick(): void {
    if (this.#pumping) return;
    this.#pumping = this.#pump().catch((err) => this.#fail(err)).finally(() => {
      this.#pumping = undefined;
      if (this.#queue.length && !this.#closed && !this.#failure) this.#kick();
    });
  }

  #fail(err: unknown): void {
    this.#failure = err instanceof Error ? err : new Error(String(err));
    console.error(`scheduler: a step failed, every request is cancelled: ${this.#failure.message}`);
    const running = this.#slots.filter((e): e is Entry => e !== undefined);
    this.#slots.fill(undefined);
    for (const e of [...this.#queue.splice(0), ...running]) {
      this.#finish(e, "cancelled", this.#failure.message);
    }
  }

  /** Fills free slots from the queue according to the admission mode. */
  #admit(): void {
    if (this.#closed) return;
    const free = () => this.#slots.indexOf(undefined);
    const running = this.#slots.filter((e): e is Entry => e !== undefined);
    const take = (e: Entry) => {
      const slot = free();
      this.#queue.splice(this.#queue.indexOf(e), 1);
      e.slot = slot;
      e.admitted = performance.now();
      this.#slots[slot] = e;
    };
    if (this.#mode === "per-row") {
      while (this.#queue.length && free() >= 0) take(this.#queue[0]);
    } else if (this.#mode === "static") {
      if (running.length > 0) return;
      while (this.#queue.length && free() >= 0) take(this.#queue[0]);
    } else {
      // aligned: the column every running row runs next (all equal by construction).
      let column = running.length ? nextPosition(running[0]) : -1;
      if (column < 0 && this.#queue.length) column = this.#queue[0].promptIds.length - 1;
      for (const e of [...this.#queue]) {
        if (free() < 0) break;
        if (e.promptIds.length - 1 === column) take(e);
      }
    }
  }

  async #pump(): Promise<void> {
    while (true) {
      for (const e of this.#slots) {
        if (e?.aborted) this.#release(e, "cancelled");
      }
      this.#admit();
      const running = this.#slots.filter((e): e is Entry => e !== undefined);
      if (running.length === 0) return;
      this.#rows ??= this.#model.backend.openRows({
        capacity: this.#capacity,
        maxLength: this.#maxLength,
      });
      const L = this.#model.config.numHiddenLayers;
      const all = Array.from({ length: L }, (_, l) => l);
      const work: RowWork[] = running.map((e) => {
        const g = e.ids.length;
        const base = { slot: e.slot, step: g, ...(e.sampling ? { sampling: e.sampling } : {}) };
        const P = e.promptIds.length;
        if (!e.prefilled) {
          // a speculative row's prompt runs at full depth: its verifier reads that KV
          const sets = e.spec ? e.promptIds.map(() => all) : e.sets.slice(0, P);
          return { ...base, tokens: e.promptIds, sets };
        }
        const pos = P + g - 1;
        const sp = e.spec;
        if (!sp) return { ...base, tokens: [e.ids[g - 1]], sets: [e.sets[pos]] };
        // Speculative: draft steps (one token each, the draft plan's set), then one step that
        // verifies the last token and the drafts at every layer (their draft KV dropped first).
        if (sp.kRound < 0) sp.kRound = Math.min(sp.k, e.maxTokens - g - 1);
        const d = sp.drafts.length;
        if (d < sp.kRound) {
          return {
            ...base,
            tokens: [d ? sp.drafts[d - 1] : e.ids[g - 1]],
            sets: [e.sets[pos + d]],
          };
        }
        if (d > 0) this.#rows!.truncate(e.slot, pos);
        const tokens = [e.ids[g - 1], ...sp.drafts];
        return { ...base, tokens, sets: tokens.map(() => all), want: "all" as const };
      });
      const admitted = running.filter((e) => !e.prefilled).length;
      const before = this.#rows.stats().layerSteps;
      const t0 = performance.now();
      const results = await this.#rows.run(work);
      const t1 = performance.now();
      this.#stepMs = this.#stepMs ? 0.8 * this.#stepMs + 0.2 * (t1 - t0) : t1 - t0;
      this.#m.steps++;
      running.forEach((e, i) => {
        if (!e.prefilled) {
          e.prefilled = true;
          this.#m.promptTokens += e.promptIds.length;
        }
        const sp = e.spec;
        if (!sp || work[i].want !== "all") {
          if (sp && e.ids.length > 0) sp.drafts.push(results[i].tokens[0]); // a draft step
          else this.#accept(e, results[i].tokens[0], t1);
          return;
        }
        // Verified: accept the drafts equal to the full model's tokens, then its own token.
        const got = results[i].tokens, k = sp.drafts.length;
        let m = 0;
        while (m < k && sp.drafts[m] === got[m]) m++;
        sp.drafted += k;
        sp.accepted += m;
        sp.drafts = [];
        sp.kRound = -1;
        const pos = e.promptIds.length + e.ids.length - 1;
        this.#rows!.truncate(e.slot, pos + m + 1);
        for (let j = 0; j <= m && this.#slots[e.slot] === e; j++) this.#accept(e, got[j], t1);
      });
      this.#onStep?.({
        time: performance.now(),
        rows: running.length,
        admitted,
        queued: this.#queue.length,
        layerSteps: this.#rows.stats().layerSteps - before,
        ms: t1 - t0,
      });
      // Let the event loop serve HTTP and timers between steps.
      await new Promise((r) => setTimeout(r, 0));
    }
  }

  /** Takes a row's new token: events, stop checks, slot release. */
  #accept(e: Entry, id: number, now: number): void {
    const index = e.ids.length;
    e.ids.push(id);
    if (index === 0) e.firstToken = now;
    const layers = e.generatedLayers[index];
    this.#m.tokens++;
    this.#m.layerSum += layers;
    let finish: FinishReason | undefined;
    if (e.stopAtEos && id === this.#model.config.eosTokenId) finish = "eos";
    if (e.stop.push(e.decoder.push(id))) finish = "stop";
    else if (!finish && e.ids.length >= e.maxTokens) finish = "length";
    e.events.push({ type: "token", index, id, text: finish ? "" : e.stop.take(), layers });
    if (finish) this.#release(e, finish);
  }

  #release(e: Entry, finish: FinishReason): void {
    if (e.slot >= 0 && this.#slots[e.slot] === e) {
      this.#slots[e.slot] = undefined;
      this.#rows?.release(e.slot);
    }
    this.#finish(e, finish);
  }

  #finish(e: Entry, finish: FinishReason, error?: string): void {
    if (e.onAbort) e.signal?.removeEventListener("abort", e.onAbort);
    if (finish !== "stop") e.stop.push(e.decoder.flush());
    const now = performance.now();
    this.#m.finished[finish]++;
    e.events.push({ type: "done", text: e.stop.take(true), finish, ...(error ? { error } : {}) });
    e.events.end();
    e.resolve({
      promptIds: e.promptIds,
      ids: e.ids,
      text: e.stop.text,
      finish,
      ...(error ? { error } : {}),
      layers: e.generatedLayers.slice(0, e.ids.length),
      policy: String(e.policy),
      timing: {
        queuedMs: (Number.isNaN(e.admitted) ? now : e.admitted) - e.submitted,
        firstTokenMs: e.firstToken - e.submitted,
        totalMs: now - e.submitted,
      },
      ...(e.spec
        ? { speculative: { k: e.spec.k, drafted: e.spec.drafted, accepted: e.spec.accepted } }
        : {}),
    });
  }
}

function resolve(policy: Policy | string): Policy {
  return typeof policy === "string" ? parsePolicy(policy) : policy;
}

/** The position a running row's next token runs at (its prompt's last one before prefill). */
function nextPosition(e: Entry): number {
  return e.prefilled ? e.promptIds.length + e.ids.length - 1 : e.promptIds.length - 1;
}

/** An unbounded single-reader queue of events. */
class EventQueue implements AsyncIterable<CompletionEvent> {
  #items: CompletionEvent[] = [];
  #ended = false;
  #wake?: () => void;

  push(e: CompletionEvent): void {
    if (this.#ended) return;
    this.#items.push(e);
    this.#wake?.();
  }

  end(): void {
    this.#ended = true;
    this.#wake?.();
  }

  async *[Symbol.asyncIterator](): AsyncIterator<CompletionEvent> {
    while (true) {
      if (this.#items.length) {
        yield this.#items.shift()!;
        continue;
      }
      if (this.#ended) return;
      await new Promise<void>((r) => (this.#wake = r));
      this.#wake = undefined;
    }
  }
}
