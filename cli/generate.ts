/**
 * `skipdecode generate`: generate from prompts under an exit policy and print the results
 * (as JSON with `--json`).
 *
 * @module
 */
import {
  checkLength,
  type Command,
  MAX_NEW_TOKENS as MAX_NEW_TOKENS_LIMIT,
  promptTokenCounts,
  UsageError,
} from "./command.ts";
import {
  BACKEND,
  BATCH_SIZE,
  horizonNote,
  implicitHorizon,
  JSON_OUTPUT,
  MAX_NEW_TOKENS,
  MODEL,
  modelInfo,
  modelLabel,
  OFFLINE,
  POLICY,
  POLICY_FILE,
  policyOption,
  PROMPT_MODE,
} from "./options.ts";
import { generate, loadModel } from "../decode/mod.ts";
import type { BackendName } from "../backend/mod.ts";
import { loadPrompts } from "../data/datasets.ts";

/** The `generate` command. */
export const generateCommand: Command = {
  name: "generate",
  summary: "generate continuations of prompts under an exit policy",
  options: {
    ...MODEL,
    prompt: {
      kind: "text",
      multiple: true,
      value: "TEXT",
      description: "a prompt (\\n is a newline)",
    },
    "prompt-file": {
      kind: "path",
      value: "FILE",
      description: "prompts, one per line, or a JSON array in a .json file",
    },
    ...MAX_NEW_TOKENS,
    ...POLICY,
    ...POLICY_FILE,
    ...PROMPT_MODE,
    ...BACKEND,
    ...BATCH_SIZE,
    "logits-topk": {
      kind: "int",
      min: 1,
      max: 1000,
      value: "K",
      description: "record the K largest logits of every step",
    },
    temperature: {
      kind: "decimal",
      range: { min: 0, max: 100 },
      value: "T",
      description: "sampling temperature (0: greedy)",
      default: 0,
    },
    "top-k": {
      kind: "int",
      min: 0,
      max: 1_000_000,
      value: "K",
      description: "sample among the K most likely tokens",
    },
    "top-p": {
      kind: "decimal",
      range: { above: 0, max: 1 },
      value: "P",
      description: "nucleus sampling threshold",
    },
    seed: {
      kind: "int",
      min: 0,
      max: 2 ** 32 - 1,
      value: "S",
      description: "sampling seed",
      default: 0,
    },
    "chunk-size": {
      kind: "int",
      min: 1,
      max: 4096,
      value: "N",
      description: "decode steps per GPU readback",
      default: 16,
    },
    speculative: {
      kind: "int",
      min: 1,
      max: MAX_NEW_TOKENS_LIMIT,
      also: ["auto"],
      value: "K",
      description: "self-speculative decoding: --policy drafts up to K tokens, all layers " +
        "verify them (greedy; the output equals --policy full's); auto: K from 1 to 8 picked " +
        "by a short probe of the draft's acceptance (fewest predicted layer passes per token)",
    },
    eos: { kind: "flag", description: "stop a row at EOS (--no-eos: never)", default: true },
    ...OFFLINE,
    ...JSON_OUTPUT,
  },
  async run(v) {
    // Every number was checked by runCommand before the prompts or the model are read.
    const maxNewTokens = v["max-new-tokens"] as number;
    const temperature = v.temperature as number;
    const speculative = v.speculative as number | "auto" | undefined;
    if (speculative !== undefined && temperature > 0) {
      throw new UsageError(
        "--speculative is greedy only: drop --temperature (or set it to 0)",
      );
    }
    const policy = await policyOption(v);
    const prompts: string[] = ((v.prompt as string[] | undefined) ?? []).map((p) =>
      p.replaceAll("\\n", "\n")
    );
    if (typeof v["prompt-file"] === "string") prompts.push(...await loadPrompts(v["prompt-file"]));
    if (prompts.length === 0) throw new UsageError("give at least one --prompt or a --prompt-file");
    const model = await loadModel(v.model as string, {
      backend: v.backend as BackendName,
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
        policy,
        maxNewTokens,
        batchSize: v["batch-size"] as number,
        logitsTopK: v["logits-topk"] as number | undefined,
        chunkSize: v["chunk-size"] as number,
        stopAtEos: v.eos !== false,
        speculative,
        onNote: (note) => console.error(`note: ${note}`),
        sampling: {
          temperature,
          topK: v["top-k"] as number | undefined,
          topP: v["top-p"] as number | undefined,
          seed: v.seed as number,
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
        model: modelInfo(model),
        policy: out.policy,
        horizon: implicitHorizon(policy, maxNewTokens),
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
          `model ${modelLabel(model)}; policy ${out.policy}${
            horizonNote(policy, maxNewTokens)
          } on ${out.backend}: layer speedup ${out.layerSpeedup.toFixed(3)}x, ` +
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
