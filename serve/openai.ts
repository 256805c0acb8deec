/**
 * The OpenAI-compatible completions request: {@linkcode parseCompletionBody} checks a
 * `POST /v1/completions` body field by field and throws an {@linkcode ApiError} naming the
 * field at fault (`param`), which the server sends as HTTP 400 with `{"error": {message,
 * type, param}}`. Supported: `model`, `prompt` (a string, a list of strings, a list of token
 * ids or a list of such lists), `max_tokens`, `temperature` (0 = greedy, the default here,
 * unlike OpenAI's 1, so that a bare request equals `generate`), `top_p`, `seed`, `stop`,
 * `stream`, `stream_options.include_usage`, `n` (1 only), `user`, the SkipDecode extensions `policy` (the
 * `--policy` syntax, or a policy of a file the server loaded at start: {@linkcode servedPolicy}) and `speculative` (draft length K: the policy drafts, all layers verify) and vLLM's extension `ignore_eos`. Fields of OpenAI's API that the server cannot honour
 * (`echo`, `logprobs`, `best_of` > 1, penalties, `logit_bias`, `suffix`) and unknown fields
 * are refused, not ignored.
 *
 * @example
 * ```ts
 * import { parseCompletionBody } from "./openai.ts";
 * const r = parseCompletionBody({ model: "tiny", prompt: "Hi", max_tokens: 4 }, {
 *   model: "tiny", maxTokensLimit: 256,
 * });
 * console.log(r.prompts, r.maxTokens, r.temperature); // ["Hi"] 4 0
 * ```
 * @module
 */
import type { Policy } from "../schedule/mod.ts";
import { servedPolicy, type ServedPolicyFile } from "./policies.ts";

/** An API error: HTTP status, message, OpenAI error type and the field at fault. */
export class ApiError extends Error {
  /** HTTP status. */
  readonly status: number;
  /** OpenAI error type (`invalid_request_error`, ...). */
  readonly type: string;
  /** The request field at fault, or null. */
  readonly param: string | null;
  /** Extra response headers (`Retry-After`). */
  readonly headers: Record<string, string>;
  /** Makes the error. */
  constructor(
    status: number,
    message: string,
    param: string | null = null,
    type = "invalid_request_error",
    headers: Record<string, string> = {},
  ) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.type = type;
    this.param = param;
    this.headers = headers;
  }

  /** The response body: `{"error": {message, type, param, code}}`. */
  body(): { error: { message: string; type: string; param: string | null; code: null } } {
    return { error: { message: this.message, type: this.type, param: this.param, code: null } };
  }
}

/** A checked completions request. */
export interface CompletionParams {
  /** The model name asked for. */
  model: string;
  /** One entry per prompt: text, or token ids used as given. */
  prompts: (string | number[])[];
  /** Tokens to generate per prompt at most. */
  maxTokens: number;
  /** 0: greedy. */
  temperature: number;
  /** Nucleus threshold (1: off). */
  topP: number;
  /** Sampling seed. */
  seed: number;
  /** Stop strings (at most 4). */
  stop: string[];
  /** Server-sent events. */
  stream: boolean;
  /** Send a last chunk with `usage` (stream only). */
  includeUsage: boolean;
  /** The `ignore_eos` extension (as vLLM's): run to `max_tokens` past EOS. */
  ignoreEos: boolean;
  /** The `policy` extension field, parsed; absent: the server's default. */
  policy?: Policy;
  /**
   * The `speculative` extension field: draft length K of self-speculative decoding (the policy
   * drafts, all layers verify: the full model's tokens); greedy only.
   */
  speculative?: number;
}

/** What {@linkcode parseCompletionBody} checks against. */
export interface CompletionLimits {
  /** The served model's name (`model` must equal it). */
  model: string;
  /** Largest `max_tokens`. */
  maxTokensLimit: number;
  /**
   * Policy files loaded at server start (`serve --policy-file`): a request's `policy` may name
   * one of their policies, or a file itself (its only policy). Absent: built-in policies only.
   */
  policyFiles?: readonly ServedPolicyFile[];
}

const KNOWN = new Set([
  "model",
  "prompt",
  "max_tokens",
  "temperature",
  "top_p",
  "seed",
  "stop",
  "stream",
  "stream_options",
  "n",
  "user",
  "policy",
  "ignore_eos",
  "speculative",
  "echo",
  "logprobs",
  "best_of",
  "presence_penalty",
  "frequency_penalty",
  "logit_bias",
  "suffix",
]);

const bad = (param: string, message: string) => new ApiError(400, `${param}: ${message}`, param);

/**
 * Checks a parsed JSON body of `POST /v1/completions`; throws {@linkcode ApiError} (400) naming
 * the first field at fault.
 *
 * @example
 * ```ts
 * import { ApiError, parseCompletionBody } from "./openai.ts";
 * try {
 *   parseCompletionBody({ model: "m", prompt: "x", max_tokens: -1 }, { model: "m", maxTokensLimit: 64 });
 * } catch (e) {
 *   console.log((e as ApiError).param); // "max_tokens"
 * }
 * ```
 */
export function parseCompletionBody(body: unknown, limits: CompletionLimits): CompletionParams {
  if (typeof body !== "object" || body === null || Array.isArray(body)) {
    throw bad("body", "the request body must be a JSON object");
  }
  const b = body as Record<string, unknown>;
  for (const k of Object.keys(b)) {
    if (!KNOWN.has(k)) throw bad(k, "unknown field");
  }
  if (typeof b.model !== "string") throw bad("model", "required, a string");
  if (b.model !== limits.model) {
    throw bad("model", `this server serves "${limits.model}", not "${b.model}"`);
  }
  const prompts = parsePrompt(b.prompt);
  const maxTokens = optional(b.max_tokens, 16, (v) => {
    if (typeof v !== "number" || !Number.isInteger(v) || v < 1 || v > limits.maxTokensLimit) {
      throw bad("max_tokens", `must be an integer from 1 to ${limits.maxTokensLimit}`);
    }
    return v;
  });
  const temperature = optional(b.temperature, 0, (v) => {
    if (typeof v !== "number" || !Number.isFinite(v) || v < 0 || v > 2) {
      throw bad("temperature", "must be a number from 0 (greedy) to 2");
    }
    return v;
  });
  const topP = optional(b.top_p, 1, (v) => {
    if (typeof v !== "number" || !(v > 0 && v <= 1)) {
      throw bad("top_p", "must be a number above 0 and at most 1");
    }
    return v;
  });
  const seed = optional(b.seed, 0, (v) => {
    if (typeof v !== "number" || !Number.isInteger(v) || v < 0 || v > 2 ** 32 - 1) {
      throw bad("seed", "must be an integer from 0 to 2^32 - 1");
    }
    return v;
  });
  const stop = optional(b.stop, [] as string[], (v) => {
    const list = typeof v === "string" ? [v] : v;
    if (
      !Array.isArray(list) || list.length > 4 ||
      list.some((s) => typeof s !== "string" || s.length === 0)
    ) {
      throw bad("stop", "must be a non-empty string or a list of at most 4 non-empty strings");
    }
    return list as string[];
  });
  const stream = optional(b.stream, false, (v) => {
    if (typeof v !== "boolean") throw bad("stream", "must be true or false");
    return v;
  });
  const includeUsage = optional(b.stream_options, false, (v) => {
    if (!stream) throw bad("stream_options", "only allowed with stream: true");
    const o = v as Record<string, unknown>;
    if (
      typeof v !== "object" || Array.isArray(v) ||
      Object.keys(o).some((k) => k !== "include_usage") ||
      (o.include_usage !== undefined && typeof o.include_usage !== "boolean")
    ) {
      throw bad("stream_options", "must be an object {include_usage: boolean}");
    }
    return o.include_usage === true;
  });
  optional(b.n, 1, (v) => {
    if (v !== 1) throw bad("n", "only n = 1 is supported (send one prompt per choice)");
    return 1;
  });
  optional(b.best_of, 1, (v) => {
    if (v !== 1) throw bad("best_of", "only best_of = 1 is supported");
    return 1;
  });
  optional(b.user, "", (v) => {
    if (typeof v !== "string") throw bad("user", "must be a string");
    return v;
  });
  const unsupported: [string, unknown][] = [
    ["echo", false],
    ["logprobs", null],
    ["presence_penalty", 0],
    ["frequency_penalty", 0],
    ["suffix", null],
  ];
  for (const [k, neutral] of unsupported) {
    if (b[k] !== undefined && b[k] !== neutral) throw bad(k, "is not supported by this server");
  }
  if (b.logit_bias !== undefined && b.logit_bias !== null) {
    if (typeof b.logit_bias !== "object" || Object.keys(b.logit_bias as object).length) {
      throw bad("logit_bias", "is not supported by this server");
    }
  }
  const ignoreEos = optional(b.ignore_eos, false, (v) => {
    if (typeof v !== "boolean") throw bad("ignore_eos", "must be true or false");
    return v;
  });
  const policy = optional(b.policy, undefined as Policy | undefined, (v) => {
    if (typeof v !== "string") throw bad("policy", 'must be a policy string such as "full"');
    try {
      return servedPolicy(v, limits.policyFiles ?? []);
    } catch (e) {
      throw bad("policy", (e as Error).message);
    }
  });
  const speculative = optional(b.speculative, undefined as number | undefined, (v) => {
    if (typeof v !== "number" || !Number.isInteger(v) || v < 1 || v > limits.maxTokensLimit) {
      throw bad(
        "speculative",
        `must be a draft length K, an integer from 1 to ${limits.maxTokensLimit}`,
      );
    }
    if (temperature > 0) throw bad("speculative", "is greedy only: temperature must be 0");
    return v;
  });
  return {
    model: b.model,
    prompts,
    maxTokens,
    temperature,
    topP,
    seed,
    stop,
    stream,
    includeUsage,
    ignoreEos,
    ...(policy ? { policy } : {}),
    ...(speculative ? { speculative } : {}),
  };
}

function optional<T>(v: unknown, fallback: T, check: (v: unknown) => T): T {
  return v === undefined || v === null ? fallback : check(v);
}

const isIds = (v: unknown): v is number[] =>
  Array.isArray(v) && v.length > 0 && v.every((x) => Number.isInteger(x) && x >= 0);

function parsePrompt(v: unknown): (string | number[])[] {
  if (typeof v === "string") return [v];
  if (!Array.isArray(v) || v.length === 0) {
    throw bad("prompt", "required: a string, a list of strings or a list of token ids");
  }
  if (v.every((x) => typeof x === "number")) {
    if (!isIds(v)) throw bad("prompt", "token ids must be non-negative integers");
    return [v];
  }
  if (v.length > 64) throw bad("prompt", "at most 64 prompts per request");
  return v.map((x, i) => {
    if (typeof x === "string") return x;
    if (isIds(x)) return x;
    throw bad("prompt", `prompt[${i}] must be a string or a non-empty list of token ids`);
  });
}
