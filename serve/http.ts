/**
 * The HTTP front of a {@linkcode Scheduler}: an OpenAI-compatible server on `127.0.0.1`.
 * Routes: `POST /v1/completions` (JSON, or server-sent events with `stream: true` ending in
 * `data: [DONE]`), `GET /v1/models`, `GET /health`, `GET /metrics` (Prometheus text). Bad
 * requests get 400 `{"error": {message, type, param}}` naming the field, a full queue 429 and
 * a shutting-down server 503, both with `Retry-After`; a decode step that fails cuts the
 * requests it ran, which get a `server_error` body (or streamed event) instead of a choice; with an API key, `/v1/*` and `/metrics`
 * need `Authorization: Bearer KEY` (401 otherwise). A client that disconnects (streamed or
 * not) cancels the response body, which aborts its requests and frees their rows before the
 * next step.
 *
 * @example
 * ```ts
 * import { loadModel } from "../decode/mod.ts";
 * import { Scheduler } from "./scheduler.ts";
 * import { startServer } from "./http.ts";
 * const model = await loadModel("bundled/models/tiny-opt-e2e", { backend: "cpu" });
 * const server = startServer({
 *   scheduler: new Scheduler(model, { capacity: 8 }), tokenizer: model.tokenizer,
 *   config: model.config, modelName: "tiny-opt-e2e", port: 0,
 * });
 * console.log(server.url); // http://127.0.0.1:PORT
 * await server.shutdown();
 * ```
 * @module
 */
import type { OptConfig } from "../model/types.ts";
import type { OptTokenizer } from "../tokenizer/mod.ts";
import { dimsFromConfig, plan } from "../schedule/mod.ts";
import { ApiError, type CompletionParams, parseCompletionBody } from "./openai.ts";
import { prometheusText } from "./metrics.ts";
import type { ServedPolicyFile } from "./policies.ts";
import {
  type Completion,
  type CompletionHandle,
  type FinishReason,
  QueueFullError,
  type Scheduler,
  SchedulerClosedError,
} from "./scheduler.ts";

/** Options of {@linkcode startServer} and {@linkcode completionsHandler}. */
export interface ServerOptions {
  /** The scheduler that runs the requests. */
  scheduler: Scheduler;
  /** The model's tokenizer (prompt lengths are checked before queueing). */
  tokenizer: Pick<OptTokenizer, "encode">;
  /** The model's configuration. */
  config: OptConfig;
  /** The name clients pass as `model` and `/v1/models` lists. */
  modelName: string;
  /** Bearer token required on `/v1/*` and `/metrics`; none: open. */
  apiKey?: string;
  /** Largest `max_tokens` (default 256). */
  maxTokensLimit?: number;
  /**
   * Policy files loaded at start (`serve --policy-file`): a request's `policy` may name their
   * policies, or a file with one policy (`servedPolicy` in `policies.ts`).
   */
  policyFiles?: readonly ServedPolicyFile[];
  /** Port on 127.0.0.1; 0 (default) picks a free one. */
  port?: number;
}

/** A running server. */
export interface RunningServer {
  /** `http://127.0.0.1:PORT`. */
  readonly url: string;
  /** The port listened on. */
  readonly port: number;
  /**
   * Stops admitting (new completions get 503), lets running rows finish for up to `graceMs`
   * (default 10 s), cancels the rest, then closes the listener.
   */
  shutdown(graceMs?: number): Promise<void>;
  /** Resolves when the listener has closed. */
  readonly finished: Promise<void>;
}

/**
 * Starts the server on `127.0.0.1`.
 *
 * @example
 * ```ts
 * import { startServer } from "./http.ts";
 * declare const options: import("./http.ts").ServerOptions;
 * const s = startServer({ ...options, port: 8000 });
 * await s.shutdown(5000);
 * ```
 */
export function startServer(options: ServerOptions): RunningServer {
  const handler = completionsHandler(options);
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: options.port ?? 0, onListen: () => {} },
    handler,
  );
  const port = (server.addr as Deno.NetAddr).port;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    finished: server.finished,
    async shutdown(graceMs = 10_000) {
      await options.scheduler.close(graceMs);
      await server.shutdown();
    },
  };
}

const JSON_HEADERS = { "content-type": "application/json" };

function json(body: unknown, status = 200, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(body), { status, headers: { ...JSON_HEADERS, ...headers } });
}

function errorResponse(e: ApiError): Response {
  return json(e.body(), e.status, e.headers);
}

/** OpenAI's `finish_reason`: EOS and stop strings are `stop`; a cancelled row `length`. */
function finishReason(f: FinishReason): "stop" | "length" {
  return f === "eos" || f === "stop" ? "stop" : "length";
}

/**
 * The request handler of {@linkcode startServer} (for `Deno.serve` or tests).
 *
 * @example
 * ```ts
 * import { completionsHandler } from "./http.ts";
 * declare const options: import("./http.ts").ServerOptions;
 * const handle = completionsHandler(options);
 * const res = await handle(new Request("http://127.0.0.1/health"));
 * console.log(res.status); // 200
 * ```
 */
export function completionsHandler(options: ServerOptions): (req: Request) => Promise<Response> {
  const { scheduler, modelName } = options;
  const created = Math.floor(Date.now() / 1000);
  return async (req) => {
    try {
      const url = new URL(req.url);
      const path = url.pathname;
      if (path === "/health") {
        if (req.method !== "GET") throw new ApiError(405, "use GET /health", null);
        return json({ status: "ok", ...counts(scheduler) });
      }
      if (options.apiKey !== undefined) checkKey(req, options.apiKey);
      if (path === "/metrics") {
        if (req.method !== "GET") throw new ApiError(405, "use GET /metrics", null);
        return new Response(prometheusText(scheduler.metrics()), {
          headers: { "content-type": "text/plain; version=0.0.4" },
        });
      }
      if (path === "/v1/models") {
        if (req.method !== "GET") throw new ApiError(405, "use GET /v1/models", null);
        return json({
          object: "list",
          data: [{ id: modelName, object: "model", created, owned_by: "skipdecode" }],
        });
      }
      if (path === "/v1/completions") {
        if (req.method !== "POST") throw new ApiError(405, "use POST /v1/completions", null);
        return await completions(req, options);
      }
      throw new ApiError(404, `no route ${req.method} ${path}`, null, "not_found_error");
    } catch (e) {
      if (e instanceof ApiError) return errorResponse(e);
      console.error(`serve: ${req.method} ${req.url}: ${(e as Error)?.message ?? e}`);
      return errorResponse(new ApiError(500, `internal error: ${(e as Error)?.message}`, null));
    }
  };
}

function counts(s: Scheduler) {
  const m = s.metrics();
  return { running_rows: m.runningRows, queue_depth: m.queueDepth, capacity: m.capacity };
}

function checkKey(req: Request, key: string): void {
  const auth = req.headers.get("authorization") ?? "";
  if (auth !== `Bearer ${key}`) {
    throw new ApiError(
      401,
      auth ? "the API key in Authorization is wrong" : "missing Authorization: Bearer <key>",
      null,
      "authentication_error",
    );
  }
}

async function completions(req: Request, options: ServerOptions): Promise<Response> {
  const { scheduler, tokenizer, config, modelName } = options;
  let body: unknown;
  try {
    body = JSON.parse(await req.text());
  } catch (e) {
    throw new ApiError(400, `body: not valid JSON (${(e as Error).message})`, "body");
  }
  const p = parseCompletionBody(body, {
    model: modelName,
    maxTokensLimit: options.maxTokensLimit ?? 256,
    policyFiles: options.policyFiles,
  });
  const prompts = p.prompts.map((x) => typeof x === "string" ? tokenizer.encode(x) : x);
  const policy = p.policy ?? scheduler.policy;
  prompts.forEach((ids, i) => {
    const which = prompts.length > 1 ? `prompt[${i}]` : "prompt";
    const tooBig = ids.find((id) => id >= config.vocabSize);
    if (tooBig !== undefined) {
      throw new ApiError(
        400,
        `${which}: token id ${tooBig} >= vocabulary ${config.vocabSize}`,
        "prompt",
      );
    }
    if (ids.length + p.maxTokens - 1 > scheduler.maxLength) {
      throw new ApiError(
        400,
        `${which} has ${ids.length} tokens; with max_tokens ${p.maxTokens} it needs ` +
          `${ids.length + p.maxTokens - 1} positions, the model has ${scheduler.maxLength}`,
        ids.length >= scheduler.maxLength ? "prompt" : "max_tokens",
      );
    }
    try {
      plan(policy, {
        ...dimsFromConfig(config),
        promptLength: ids.length,
        maxNewTokens: p.maxTokens,
      });
    } catch (e) {
      throw new ApiError(400, `policy: ${(e as Error).message}`, "policy");
    }
  });
  if (prompts.length > scheduler.maxQueue) {
    // never admissible: a 429 would have the client retry it forever
    throw new ApiError(
      400,
      `prompt: ${prompts.length} prompts, more than this server queues at once ` +
        `(--max-queue ${scheduler.maxQueue}): send fewer per request`,
      "prompt",
    );
  }
  try {
    scheduler.assertAccepts(prompts.length); // all of the request's prompts, or none
  } catch (e) {
    throw refusal(e);
  }
  // A client that disconnects cancels the response body (streamed or not), which aborts its
  // requests. (req.signal is not used: Deno's legacy abort-on-success warns on any use.)
  const abort = new AbortController();
  let handles: CompletionHandle[];
  try {
    handles = prompts.map((ids) =>
      scheduler.submit({
        prompt: ids,
        maxTokens: p.maxTokens,
        policy,
        stop: p.stop,
        stopAtEos: !p.ignoreEos,
        sampling: samplingOf(p),
        signal: abort.signal,
        ...(p.speculative ? { speculative: p.speculative } : {}),
      })
    );
  } catch (e) {
    abort.abort();
    if (p.speculative && e instanceof RangeError && /^speculative/.test(e.message)) {
      throw new ApiError(400, e.message, "speculative"); // e.g. aligned admission
    }
    throw refusal(e);
  }
  const id = `cmpl-${crypto.randomUUID()}`;
  const created = Math.floor(Date.now() / 1000);
  const head = { id, object: "text_completion", created, model: modelName };
  const usage = (done: Completion[]) => {
    const prompt = done.reduce((a, c) => a + c.promptIds.length, 0);
    const completion = done.reduce((a, c) => a + c.ids.length, 0);
    return {
      prompt_tokens: prompt,
      completion_tokens: completion,
      total_tokens: prompt + completion,
    };
  };
  const enc = new TextEncoder();
  if (!p.stream) {
    // The JSON is written when every choice is done; the body is a stream so that a client
    // that hangs up cancels it (and so its rows) while it waits.
    const body = new ReadableStream<Uint8Array>({
      async start(controller) {
        const done = await Promise.all(handles.map((h) => h.done));
        const failed = done.find((c) => c.error !== undefined);
        const payload = failed ? stepFailure(failed.error!).body() : {
          ...head,
          choices: done.map((c, index) => ({
            index,
            text: c.text,
            finish_reason: finishReason(c.finish),
            logprobs: null,
          })),
          usage: usage(done),
          skipdecode: {
            policy: done[0]?.policy,
            layers: done.map((c) => c.layers),
            ...(p.speculative ? { speculative: done.map((c) => c.speculative) } : {}),
          },
        };
        try {
          controller.enqueue(enc.encode(JSON.stringify(payload)));
          controller.close();
        } catch { /* the client is gone */ }
      },
      cancel() {
        abort.abort();
      },
    });
    return new Response(body, { headers: JSON_HEADERS });
  }
  const stream = new ReadableStream<Uint8Array>({
    async start(controller) {
      const send = (data: unknown) => {
        try {
          controller.enqueue(enc.encode(`data: ${JSON.stringify(data)}\n\n`));
        } catch {
          abort.abort(); // the client is gone
        }
      };
      let failed: string | undefined;
      await Promise.all(handles.map(async (h, index) => {
        for await (const e of h.events) {
          if (e.type === "token" && e.text === "") continue;
          if (e.type === "done" && e.error !== undefined) {
            failed ??= e.error; // the choice was cut: an error event, not a finish_reason
            continue;
          }
          if (failed !== undefined) continue;
          send({
            ...head,
            choices: [{
              index,
              text: e.text,
              finish_reason: e.type === "done" ? finishReason(e.finish) : null,
              logprobs: null,
            }],
          });
        }
      }));
      if (failed !== undefined) send(stepFailure(failed).body());
      else if (p.includeUsage) {
        send({ ...head, choices: [], usage: usage(await Promise.all(handles.map((h) => h.done))) });
      }
      try {
        controller.enqueue(enc.encode("data: [DONE]\n\n"));
        controller.close();
      } catch { /* the client is gone */ }
    },
    cancel() {
      abort.abort();
    },
  });
  return new Response(stream, {
    headers: { "content-type": "text/event-stream", "cache-control": "no-cache" },
  });
}

/** A decode step failed and cut the request's rows: a server error, never a completion. */
function stepFailure(message: string): ApiError {
  return new ApiError(
    500,
    `a decode step failed and cancelled this request: ${message}`,
    null,
    "server_error",
  );
}

function samplingOf(p: CompletionParams) {
  return p.temperature > 0 ? { temperature: p.temperature, topP: p.topP, seed: p.seed } : undefined;
}

function refusal(e: unknown): unknown {
  if (e instanceof QueueFullError) {
    return new ApiError(429, e.message, null, "rate_limit_error", {
      "retry-after": String(e.retryAfterSeconds),
    });
  }
  if (e instanceof SchedulerClosedError) {
    return new ApiError(503, e.message, null, "server_shutting_down", { "retry-after": "5" });
  }
  return e;
}
