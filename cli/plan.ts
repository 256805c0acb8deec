/**
 * `skipdecode plan`: print a policy's plan (per-column budgets and layer sets) and its
 * accounting, without a model.
 *
 * @module
 */
import { type Command, UsageError } from "./command.ts";
import {
  horizonNote,
  JSON_OUTPUT,
  MAX_NEW_TOKENS,
  POLICY,
  POLICY_FILE,
  policyOption,
  PROMPT_MODE,
  withDefault,
} from "./options.ts";
import { formatPlan, plan, planToJson, policyHelp } from "../schedule/mod.ts";

/** Most layers `plan` accepts (OPT-175B has 96). */
const MAX_LAYERS = 1024;
/** Most columns (prompt + generated) `plan` prints. */
const MAX_COLUMNS = 16384;

/** The `plan` command. */
export const planCommand: Command = {
  name: "plan",
  summary: "print the plan of a policy for given layer count and lengths",
  options: {
    ...POLICY,
    ...POLICY_FILE,
    ...withDefault(PROMPT_MODE, undefined, { description: "overrides the policy's prompt mode" }),
    layers: {
      kind: "int",
      min: 1,
      max: MAX_LAYERS,
      value: "L",
      description: "decoder layers",
      default: 12,
    },
    "prompt-length": {
      kind: "int",
      min: 1,
      max: MAX_COLUMNS,
      value: "P",
      description: "prompt columns",
      default: 8,
    },
    ...withDefault(MAX_NEW_TOKENS, 32, { max: MAX_COLUMNS, description: "generated tokens" }),
    hidden: {
      kind: "int",
      min: 1,
      max: 1 << 16,
      value: "D",
      description: "model width (enables FLOP accounting)",
      default: 768,
    },
    ffn: { kind: "int", min: 1, max: 1 << 18, value: "F", description: "MLP width", default: 3072 },
    vocab: {
      kind: "int",
      min: 1,
      max: 1 << 20,
      value: "V",
      description: "LM head rows",
      default: 50272,
    },
    ...JSON_OUTPUT,
  },
  details: () => `Policies (--policy NAME:KEY=VALUE,...):\n${policyHelp()}`,
  async run(v) {
    const dims = {
      layers: v.layers as number,
      promptLength: v["prompt-length"] as number,
      maxNewTokens: v["max-new-tokens"] as number,
      hiddenSize: v.hidden as number,
      ffnDim: v.ffn as number,
      vocabSize: v.vocab as number,
    };
    if (dims.promptLength + dims.maxNewTokens - 1 > MAX_COLUMNS) {
      throw new UsageError(
        `--prompt-length + --max-new-tokens - 1 must be at most ${MAX_COLUMNS} columns, got ` +
          `${dims.promptLength + dims.maxNewTokens - 1}`,
      );
    }
    const policy = await policyOption(v, dims.layers);
    const p = plan(policy, dims);
    if (v.json) console.log(JSON.stringify(planToJson(p)));
    else {
      console.log(formatPlan(p));
      const note = horizonNote(policy, dims.maxNewTokens);
      if (note) console.log(`policy ${policy}${note}`);
    }
    return 0;
  },
};
