/**
 * `skipdecode serve` (`deno task serve`): an OpenAI-compatible completions server on
 * `127.0.0.1` over the continuous-batching scheduler of `serve/`. SIGTERM (or SIGINT) stops
 * admitting, lets running rows finish for `--shutdown-timeout` seconds, cancels the rest and
 * exits 0.
 *
 * @example
 * ```sh
 * deno task serve --port 8000 --policy linear:max=12,min=4,warmup=1 --batch-size 8
 * curl -s http://127.0.0.1:8000/v1/completions -H 'content-type: application/json' \
 *   -d '{"model": "tiny-opt-e2e", "prompt": "name[Alimentum]\n", "max_tokens": 24}'
 * ```
 * @module
 */
import { type Command, UsageError } from "./command.ts";
import {
  BACKEND,
  BATCH_SIZE,
  MODEL,
  modelLabel,
  OFFLINE,
  POLICY,
  POLICY_FILE,
  policyOption,
  PROMPT_MODE,
  withDefault,
} from "./options.ts";
import { loadModel } from "../decode/mod.ts";
import type { BackendName } from "../backend/mod.ts";
import { ADMISSION_MODES, type AdmissionMode, Scheduler, startServer } from "../serve/mod.ts";
import { dimsFromConfig, plan } from "../schedule/mod.ts";

/** The `serve` command. */
export const serveCommand: Command = {
  name: "serve",
  summary: "serve OpenAI-compatible completions on 127.0.0.1 (continuous batching)",
  options: {
    ...MODEL,
    name: {
      kind: "text",
      value: "NAME",
      description: "model name clients send (default: the folder's or hub id's last part)",
    },
    port: {
      kind: "int",
      min: 0,
      max: 65535,
      value: "PORT",
      description: "port on 127.0.0.1 (0: any free one)",
      default: 8000,
    },
    ...withDefault(POLICY, undefined, {
      description: "default exit policy, full unless given (a request's `policy` field " +
        "overrides it)",
    }),
    ...POLICY_FILE,
    ...withDefault(PROMPT_MODE, undefined, { description: "prompt mode of the default policy" }),
    ...BACKEND,
    ...withDefault(BATCH_SIZE, 8, { description: "rows decoded at once" }),
    mode: {
      kind: "enum",
      choices: ADMISSION_MODES,
      description: "admission: per-row (continuous), aligned (same position) or static",
      default: "per-row",
    },
    "max-queue": {
      kind: "int",
      min: 1,
      max: 1_000_000,
      value: "N",
      description: "requests that may wait; more get 429 with Retry-After",
      default: 64,
    },
    "max-tokens-limit": {
      kind: "int",
      min: 1,
      max: 65536,
      value: "N",
      description: "largest max_tokens a request may ask",
      default: 256,
    },
    "api-key": {
      kind: "text",
      value: "KEY",
      description: "require Authorization: Bearer KEY (also SKIPDECODE_API_KEY)",
    },
    "shutdown-timeout": {
      kind: "decimal",
      range: { min: 0, max: 3600 },
      value: "SECONDS",
      description: "on SIGTERM, how long running rows may finish before they are cancelled",
      default: 10,
    },
    ...OFFLINE,
  },
  async run(v) {
    const port = v.port as number;
    const capacity = v["batch-size"] as number;
    const maxQueue = v["max-queue"] as number;
    const maxTokensLimit = v["max-tokens-limit"] as number;
    const graceS = v["shutdown-timeout"] as number;
    const mode = v.mode as AdmissionMode;
    const policy = await policyOption(v); // errors name --policy or the policy file
    let apiKey = v["api-key"] as string | undefined;
    try {
      apiKey ??= Deno.env.get("SKIPDECODE_API_KEY") || undefined;
    } catch { /* no env permission: --api-key only */ }
    if (apiKey === "") throw new UsageError("--api-key is empty");
    const source = v.model as string;
    const modelName = (v.name as string | undefined) ??
      source.replace(/\/+$/, "").split("/").pop()!;
    const model = await loadModel(source, {
      backend: v.backend as BackendName,
      offline: v.offline ? true : undefined,
    });
    try {
      try {
        plan(policy, { ...dimsFromConfig(model.config), promptLength: 1, maxNewTokens: 1 });
      } catch (e) {
        throw new UsageError(`--policy: ${(e as Error).message}`);
      }
      const scheduler = new Scheduler(model, { capacity, mode, maxQueue, policy });
      const server = startServer({
        scheduler,
        tokenizer: model.tokenizer,
        config: model.config,
        modelName,
        apiKey,
        maxTokensLimit,
        port,
      });
      console.log(
        `skipdecode serve: listening on ${server.url} (model "${modelName}" = ` +
          `${modelLabel(model)} on ` +
          `${model.backend.name}, ${capacity} rows, ${mode} admission, policy ${policy})`,
      );
      let stopping = false;
      const stop = () => {
        if (stopping) return;
        stopping = true;
        console.log(`skipdecode serve: stopping (in-flight rows get ${graceS} s)`);
        server.shutdown(graceS * 1000).catch((e) => console.error(`shutdown: ${e?.message ?? e}`));
      };
      const signals: Deno.Signal[] = Deno.build.os === "windows"
        ? ["SIGINT"]
        : ["SIGTERM", "SIGINT"];
      for (const s of signals) Deno.addSignalListener(s, stop);
      await server.finished;
      for (const s of signals) Deno.removeSignalListener(s, stop);
      console.log("skipdecode serve: stopped");
      return 0;
    } finally {
      model.dispose();
    }
  },
};
