/**
 * `skipdecode generate`: generate from prompts under an exit policy and print the results
 * (as JSON with `--json`).
 *
 * @module
 */
import {
  backendOption,
  checkLength,
  type Command,
  intOption,
  MAX_BATCH,
  MAX_NEW_TOKENS,
  numberOption,
  promptModeOption,
  promptTokenCounts,
  UsageError,
} from "./command.ts";
import { generate, loadModel } from "../decode/mod.ts";
import { loadPrompts } from "../data/datasets.ts";
import { TINY_MODEL_DIR } from "../data/bundled.ts";

/** The `generate` command. */
export const generateCommand: Command = {
  name: "generate",
  summary: "generate continuations of prompts under an exit policy",
  options: {
    model: {
      type: "string",
      value: "DIR|ORG/NAME",
      description: "checkpoint folder or hub id",
      default: TINY_MODEL_DIR,
    },
    prompt: {
      type: "string",
      multiple: true,
      value: "TEXT",
      description: "a prompt (\\n is a newline)",
    },
    "prompt-file": {
      type: "string",
      value: "FILE",
      description: "prompts, one per line, or a JSON array in a .json file",
    },
    "max-new-tokens": {
      type: "string",
      value: "N",
      description: "tokens to generate per prompt",
      default: "32",
    },
    policy: {
      type: "string",
      value: "SPEC",
      description: "exit policy, e.g. linear:max=12,min=4,warmup=1,horizon=32",
      default: "full",
    },
    "prompt-mode": {
      type: "string",
      value: "full|decay",
      description: "how prompt columns are treated (overrides the policy)",
    },
    backend: {
      type: "string",
      value: "auto|cpu|webgpu",
      description: "where to run",
      default: "auto",
    },
    "batch-size": {
      type: "string",
      value: "B",
      description: "rows per column-wise batch",
      default: "8",
    },
    "logits-topk": {
      type: "string",
      value: "K",
      description: "record the K largest logits of every step",
    },
    temperature: {
      type: "string",
      value: "T",
      description: "sampling temperature (0: greedy)",
      default: "0",
    },
    "top-k": { type: "string", value: "K", description: "sample among the K most likely tokens" },
    "top-p": { type: "string", value: "P", description: "nucleus sampling threshold" },
    seed: { type: "string", value: "S", description: "sampling seed", default: "0" },
    "chunk-size": {
      type: "string",
      value: "N",
      description: "decode steps per GPU readback",
      default: "16",
    },
    speculative: {
      type: "string",
      value: "K",
      description: "self-speculative decoding: --policy drafts up to K tokens, all layers " +
        "verify them (greedy; the output equals --policy full's); auto: K from 1 to 8 picked " +
        "by a short probe of the draft's acceptance (fewest predicted layer passes per token)",
    },
    eos: { type: "boolean", description: "stop a row at EOS (--no-eos: never)", default: true },
    offline: { type: "boolean", description: "never use the network (also HF_HUB_OFFLINE=1)" },
    json: { type: "boolean", description: "print JSON" },
  },
  async run(v) {
    // Every number is checked before the prompts or the model are read.
    const maxNewTokens = intOption(v, "max-new-tokens", 1, MAX_NEW_TOKENS)!;
    const logitsTopK = intOption(v, "logits-topk", 1, 1000);
    const temperature = numberOption(v, "temperature", { min: 0, max: 100 });
    const topK = intOption(v, "top-k", 0, 1_000_000);
    const topP = numberOption(v, "top-p", { above: 0, max: 1 });
    const seed = intOption(v, "seed", 0, 2 ** 32 - 1);
    intOption(v, "batch-size", 1, MAX_BATCH);
    intOption(v, "chunk-size", 1, 4096);
    const speculative = v.speculative === "auto" ? "auto" as const : (() => {
      const k = Number(v.speculative);
      if (v.speculative !== undefined && !(Number.isInteger(k) && /^[0-9]+$/.test(String(k)))) {
        throw new UsageError(
          `--speculative must be a whole number from 1 to ${MAX_NEW_TOKENS} or auto, ` +
            `got "${v.speculative}"`,
        );
      }
      return intOption(v, "speculative", 1, MAX_NEW_TOKENS);
    })();
    if (speculative !== undefined && (temperature ?? 0) > 0) {
      throw new UsageError(
        "--speculative is greedy only: drop --temperature (or set it to 0)",
      );
    }
    const prompts: string[] = ((v.prompt as string[] | undefined) ?? []).map((p) =>
      p.replaceAll("\\n", "\n")
    );
    if (typeof v["prompt-file"] === "string") prompts.push(...await loadPrompts(v["prompt-file"]));
    if (prompts.length === 0) throw new UsageError("give at least one --prompt or a --prompt-file");
    const backend = backendOption(v.backend);
    const promptMode = promptModeOption(v["prompt-mode"]);
    const model = await loadModel(v.model as string, {
      backend,
      offline: v.offline ? true : undefined,
    });
    try {
      checkLength(model, maxNewTokens, promptTokenCounts(model, prompts));
      const positions = model.config.maxPositionEmbeddings;
      if (typeof speculative === "number" && speculative > positions - 1) {
        throw new UsageError(
          `--speculative ${speculative} is too large: a verification runs K + 1 positions and ` +
            `the model has ${positions} (max_position_embeddings), so K is at most ${
              positions - 1
            }`,
        );
      }
      const out = await generate(model, prompts, {
        policy: v.policy as string,
        promptMode,
        maxNewTokens,
        batchSize: intOption(v, "batch-size", 1, MAX_BATCH),
        logitsTopK,
        chunkSize: intOption(v, "chunk-size", 1, 4096),
        stopAtEos: v.eos !== false,
        speculative,
        onNote: (note) => console.error(`note: ${note}`),
        sampling: {
          temperature,
          topK,
          topP,
          seed,
        },
      });
      const report = {
        results: out.results.map((r) => ({
          prompt: r.prompt,
          ids: r.ids,
          text: r.text,
          finish: r.finish,
          layers: r.layers,
          ...(r.topk ? { topk: r.topk } : {}),
          ...(r.speculative ? { speculative: r.speculative } : {}),
        })),
        policy: out.policy,
        backend: out.backend,
        layerSpeedup: out.layerSpeedup,
        flopSpeedup: out.flopSpeedup,
        kvBytes: out.kvBytes,
        kvBytesFull: out.kvBytesFull,
        timing: out.timing,
        ...(out.speculative ? { speculative: out.speculative } : {}),
      };
      if (v.json) {
        console.log(JSON.stringify(report));
      } else {
        for (const r of out.results) {
          console.log(
            `--- ${JSON.stringify(r.prompt)}\n${r.text}\n[${r.finish}; layers ${
              r.layers.join(",")
            }]`,
          );
        }
        console.log(
          `policy ${out.policy} on ${out.backend}: layer speedup ${
            out.layerSpeedup.toFixed(3)
          }x, ` +
            `FLOP speedup ${
              out.flopSpeedup.toFixed(3)
            }x, KV cache ${out.kvBytes} of ${out.kvBytesFull} bytes, ` +
            `${out.timing.generatedTokens} tokens in ${out.timing.totalMs.toFixed(0)} ms ` +
            `(${
              out.timing.tokensPerSecond.toFixed(1)
            } tokens/s, ${out.timing.readbacks} readbacks)`,
        );
        const sp = out.speculative;
        if (sp) {
          console.log(
            `speculative K=${sp.k}: ${sp.accepted} of ${sp.drafted} drafts accepted ` +
              `(${(100 * sp.acceptanceRate).toFixed(1)}%, ${
                sp.meanAcceptedLength.toFixed(2)
              } per verification), ${sp.layerPassesPerToken.toFixed(2)} layer passes per ` +
              `token, FLOPs ${sp.flopRatio.toFixed(3)}x full's (speculation never lowers FLOPs)`,
          );
        }
      }
      return 0;
    } finally {
      model.dispose();
    }
  },
};
