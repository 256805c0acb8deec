/**
 * `skipdecode plan`: print a policy's plan (per-column budgets and layer sets) and its
 * accounting, without a model.
 *
 * @module
 */
import { type Command, intOption, promptModeOption, UsageError } from "./command.ts";
import { formatPlan, plan, planToJson, policyHelp } from "../schedule/mod.ts";
import { resolvePolicy } from "../decode/engine.ts";

/** Most layers `plan` accepts (OPT-175B has 96). */
const MAX_LAYERS = 1024;
/** Most columns (prompt + generated) `plan` prints. */
const MAX_COLUMNS = 16384;

/** The `plan` command. */
export const planCommand: Command = {
  name: "plan",
  summary: "print the plan of a policy for given layer count and lengths",
  options: {
    policy: { type: "string", value: "SPEC", description: "exit policy", default: "full" },
    "prompt-mode": {
      type: "string",
      value: "full|decay",
      description: "overrides the policy's prompt mode",
    },
    layers: { type: "string", value: "L", description: "decoder layers", default: "12" },
    "prompt-length": { type: "string", value: "P", description: "prompt columns", default: "8" },
    "max-new-tokens": {
      type: "string",
      value: "N",
      description: "generated tokens",
      default: "32",
    },
    hidden: {
      type: "string",
      value: "D",
      description: "model width (enables FLOP accounting)",
      default: "768",
    },
    ffn: { type: "string", value: "F", description: "MLP width", default: "3072" },
    vocab: { type: "string", value: "V", description: "LM head rows", default: "50272" },
    json: { type: "boolean", description: "print JSON" },
  },
  details: () => `Policies (--policy NAME:KEY=VALUE,...):\n${policyHelp()}`,
  run(v) {
    const mode = promptModeOption(v["prompt-mode"]);
    const dims = {
      layers: intOption(v, "layers", 1, MAX_LAYERS)!,
      promptLength: intOption(v, "prompt-length", 1, MAX_COLUMNS)!,
      maxNewTokens: intOption(v, "max-new-tokens", 1, MAX_COLUMNS)!,
      hiddenSize: intOption(v, "hidden", 1, 1 << 16),
      ffnDim: intOption(v, "ffn", 1, 1 << 18),
      vocabSize: intOption(v, "vocab", 1, 1 << 20),
    };
    if (dims.promptLength + dims.maxNewTokens - 1 > MAX_COLUMNS) {
      throw new UsageError(
        `--prompt-length + --max-new-tokens - 1 must be at most ${MAX_COLUMNS} columns, got ` +
          `${dims.promptLength + dims.maxNewTokens - 1}`,
      );
    }
    const p = plan(resolvePolicy(v.policy as string, mode), dims);
    if (v.json) console.log(JSON.stringify(planToJson(p)));
    else console.log(formatPlan(p));
    return Promise.resolve(0);
  },
};
