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
import {
  backendOption,
  type Command,
  intOption,
  numberOption,
  promptModeOption,
  UsageError,
} from "./command.ts";
import { loadModel, resolvePolicy } from "../decode/mod.ts";
import { ADMISSION_MODES, type AdmissionMode, Scheduler, startServer } from "../serve/mod.ts";
import { dimsFromConfig, plan } from "../schedule/mod.ts";
import { TINY_MODEL_DIR } from "../data/bundled.ts";

/** The `serve` command. */
export const serveCommand: Command = {
  name: "serve",
  summary: "serve OpenAI-compatible completions on 127.0.0.1 (continuous batching)",
  options: {
    model: {
      type: "string",
      value: "DIR|ORG/NAME",
      description: "checkpoint folder or hub id",
      default: TINY_MODEL_DIR,
    },
    name: {
      type: "string",
      value: "NAME",
      description: "model name clients send (default: the folder's or hub id's last part)",
    },
    port: {
      type: "string",
      value: "PORT",
      description: "port on 127.0.0.1 (0: any free one)",
      default: "8000",
    },
    policy: {
      type: "string",
      value: "SPEC",
      description: "default exit policy (a request's `policy` field overrides it)",
      default: "full",
    },
    "prompt-mode": {
      type: "string",
      value: "full|decay",
      description: "prompt mode of the default policy",
    },
    backend: {
      type: "string",
      value: "auto|cpu|webgpu",
      description: "where to run",
      default: "auto",
    },
    "batch-size": { type: "string", value: "B", description: "rows decoded at once", default: "8" },
    mode: {
      type: "string",
      value: ADMISSION_MODES.join("|"),
      description: "admission: per-row (continuous), aligned (same position) or static",
      default: "per-row",
    },
    "max-queue": {
      type: "string",
      value: "N",
      description: "requests that may wait; more get 429 with Retry-After",
      default: "64",
    },
    "max-tokens-limit": {
      type: "string",
      value: "N",
      description: "largest max_tokens a request may ask",
      default: "256",
    },
    "api-key": {
      type: "string",
      value: "KEY",
      description: "require Authorization: Bearer KEY (also SKIPDECODE_API_KEY)",
    },
    "shutdown-timeout": {
      type: "string",
      value: "SECONDS",
      description: "on SIGTERM, how long running rows may finish before they are cancelled",
      default: "10",
    },
    offline: { type: "boolean", description: "never use the network (also HF_HUB_OFFLINE=1)" },
  },
  async run(v) {
    const port = intOption(v, "port", 0, 65535)!;
    const capacity = intOption(v, "batch-size", 1, 1024)!;
    const maxQueue = intOption(v, "max-queue", 0, 1_000_000)!;
    const maxTokensLimit = intOption(v, "max-tokens-limit", 1, 65536)!;
    const graceS = numberOption(v, "shutdown-timeout", { min: 0, max: 3600 })!;
    const mode = v.mode as AdmissionMode;
    if (!ADMISSION_MODES.includes(mode)) {
      throw new UsageError(`--mode must be ${ADMISSION_MODES.join(", ")}, got "${v.mode}"`);
    }
    let policy;
    try {
      policy = resolvePolicy(v.policy as string, promptModeOption(v["prompt-mode"]));
    } catch (e) {
      throw new UsageError(`--policy: ${(e as Error).message}`);
    }
    let apiKey = v["api-key"] as string | undefined;
    try {
      apiKey ??= Deno.env.get("SKIPDECODE_API_KEY") || undefined;
    } catch { /* no env permission: --api-key only */ }
    if (apiKey === "") throw new UsageError("--api-key is empty");
    const source = v.model as string;
    const modelName = (v.name as string | undefined) ??
      source.replace(/\/+$/, "").split("/").pop()!;
    const model = await loadModel(source, {
      backend: backendOption(v.backend),
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
        `skipdecode serve: listening on ${server.url} (model "${modelName}" on ` +
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
