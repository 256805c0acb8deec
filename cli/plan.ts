/**
 * `skipdecode plan`: print a policy's plan (per-column budgets and layer sets) and its
 * accounting, without a model.
 *
 * @module
 */
import { type Command, intOption, promptModeOption } from "./command.ts";
import { formatPlan, plan, planToJson } from "../schedule/mod.ts";
import { resolvePolicy } from "../decode/engine.ts";

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
  run(v) {
    const mode = promptModeOption(v["prompt-mode"]);
    const p = plan(resolvePolicy(v.policy as string, mode), {
      layers: intOption(v, "layers", 1)!,
      promptLength: intOption(v, "prompt-length", 1)!,
      maxNewTokens: intOption(v, "max-new-tokens", 1)!,
      hiddenSize: intOption(v, "hidden", 1),
      ffnDim: intOption(v, "ffn", 1),
      vocabSize: intOption(v, "vocab", 1),
    });
    if (v.json) console.log(JSON.stringify(planToJson(p)));
    else console.log(formatPlan(p));
    return Promise.resolve(0);
  },
};
