/**
 * `skipdecode serve` (`deno task serve`): an OpenAI-compatible completions server on
 * `127.0.0.1` over the continuous-batching scheduler of `serve/`. SIGTERM (or SIGINT) stops
 * admitting, lets running rows finish for `--shutdown-timeout` seconds, cancels the rest and
 * exits 0. `--policy-file FILE.ts` (repeatable) loads policies at start; a request's `policy`
 * field may then name them (or a loaded file with one policy): a request never loads code.
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
  PROMPT_MODE,
  withDefault,
} from "./options.ts";
import { loadModel } from "../decode/mod.ts";
import type { BackendName } from "../backend/mod.ts";
import {
  ADMISSION_MODES,
  type AdmissionMode,
  assertDistinctNames,
  Scheduler,
  servedPolicy,
  type ServedPolicyFile,
  startServer,
} from "../serve/mod.ts";
import {
  dimsFromConfig,
  plan,
  type Policy,
  type PromptMode,
  withPromptMode,
} from "../schedule/mod.ts";
import { loadPolicyFile } from "../schedule/policy_file.ts";

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
        "overrides it; may name a --policy-file policy)",
    }),
    ...withDefault(POLICY_FILE, undefined, {
      multiple: true,
      description: "policies of your own, loaded at start (a module exporting defineSchedule " +
        "descriptors or policy functions): a request's `policy` may name them, or the file " +
        "when it holds one; the default policy when it is the only one and --policy is absent",
    }),
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
    const { policy, policyFiles } = await servedPolicies(v); // errors name the option or file
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
        policyFiles,
      });
      console.log(
        `skipdecode serve: listening on ${server.url} (model "${modelName}" = ` +
          `${modelLabel(model)} on ` +
          `${model.backend.name}, ${capacity} rows, ${mode} admission, policy ${policy}` +
          (policyFiles.length
            ? `; requests may name ${
              policyFiles.flatMap((f) => f.policies.map((p) => `${p.name} (${f.file})`)).join(", ")
            }`
            : "") +
          ")",
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

/**
 * The server's default policy and the policy files requests may name: every `--policy-file`
 * loaded (no two exporting the same name); the default is `--policy` (built-in or a loaded
 * file's), else the files' policy when there is exactly one, else `full`.
 */
async function servedPolicies(
  v: Record<string, unknown>,
): Promise<{ policy: Policy; policyFiles: ServedPolicyFile[] }> {
  const files = (v["policy-file"] as string[] | undefined) ?? [];
  const spec = v.policy as string | undefined;
  const mode = v["prompt-mode"] as PromptMode | undefined;
  const policyFiles: ServedPolicyFile[] = [];
  for (const file of files) policyFiles.push({ file, policies: await loadPolicyFile(file) });
  try {
    assertDistinctNames(policyFiles);
  } catch (e) {
    throw new UsageError(`--policy-file: ${(e as Error).message}`);
  }
  const custom = policyFiles.flatMap((f) => f.policies);
  let policy = custom.length === 1 ? custom[0] : undefined;
  try {
    if (spec !== undefined || policy === undefined) {
      policy = servedPolicy(spec ?? "full", policyFiles);
    }
  } catch (e) {
    throw new UsageError(`--policy ${spec}: ${(e as Error).message}`);
  }
  return { policy: withPromptMode(policy, mode), policyFiles };
}
