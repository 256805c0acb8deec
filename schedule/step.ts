/**
 * The step schedule, `step:12x4,6x8,3`: a budget for a number of generated-input indices,
 * then the next, and a last budget for the rest. Budgets may not grow (SkipDecode's rule);
 * each column runs the SkipDecode set of its budget (`skipDecodeSet`, with `warmup=W`
 * warm-up layers, default 0).
 *
 * Index convention (docs/DESIGN.md §3, `j = c - P`): counts are of generated-input indices
 * `j`, i.e. of the columns that hold generated tokens. The first generated token comes from
 * the last prompt column (all layers under prompt mode `full`), so `step:12x4,6x8,3` runs 12
 * layers at `j = 0 .. 3` (the columns producing tokens 1 to 4; with token 0 that makes 5
 * tokens at 12 layers), 6 at `j = 4 .. 11`, and 3 from `j = 12` on. With `prompt=decay` the
 * counts start at column 0 instead (`j = c`).
 *
 * @example
 * ```ts
 * import { parsePolicy, plan } from "./mod.ts";
 * const p = plan(parsePolicy("step:12x4,6x8,3"), { layers: 12, promptLength: 3, maxNewTokens: 16 });
 * console.log(p.generatedLayers);
 * // [12, 12, 12, 12, 12, 6, 6, 6, 6, 6, 6, 6, 6, 3, 3, 3]
 * ```
 * @module
 */
import { PolicyError } from "./errors.ts";
import {
  checkContext,
  type ColumnContext,
  type Policy,
  type PromptMode,
  skipDecodeSet,
} from "./policy.ts";

/** The name of the step schedule on the command line and in JSON (`kind`). */
export const STEP_NAME = "step";

/** One part of a step schedule: `budget` layers for `count` indices (the last: the rest). */
export interface StepSegment {
  /** Layers of each column in this part. */
  budget: number;
  /** How many generated-input indices it covers; absent for the last part. */
  count?: number;
}

/** What {@linkcode stepPolicy} takes. */
export interface StepOptions {
  /** The parts, in order; only the last has no `count`. */
  steps: readonly StepSegment[];
  /** Warm-up layers every column keeps (default 0; below every budget). */
  warmup?: number;
  /** Prompt mode (default `"full"`). */
  promptMode?: PromptMode;
}

/** An example of the command-line form (for messages and help). */
export const STEP_EXAMPLE = "step:12x4,6x8,3";

/** The help text of the step schedule (appended to `policyHelp()`). */
export const STEP_HELP: string = [
  `${STEP_NAME}: budget B for K generated-input indices j = c - P (BxK), then the next part; ` +
  `the last part is a bare budget for the rest`,
  `  e.g. ${STEP_EXAMPLE} (12 layers at j = 0..3, i.e. tokens 1-4 after token 0 from the ` +
  `prompt; 6 at j = 4..11; 3 after)`,
  `  warmup  integer >= 0, default 0: warm-up layers kept by every column (below every budget)`,
  `  prompt  full or decay, default full: how prompt columns run (decay counts from column 0)`,
].join("\n");

const WHO = STEP_NAME;

function segmentText(s: StepSegment): string {
  return s.count === undefined ? `${s.budget}` : `${s.budget}x${s.count}`;
}

/**
 * Builds a step schedule, checking its parts (whole numbers, budgets >= 1 that never grow,
 * counts >= 1, a last part without a count) with a {@linkcode PolicyError} naming the part.
 *
 * @param options the parts, warm-up and prompt mode
 * @returns the policy (`String(p)` is its command-line form)
 * @throws PolicyError naming the part at fault
 * @example
 * ```ts
 * import { stepPolicy } from "./step.ts";
 * String(stepPolicy({ steps: [{ budget: 12, count: 4 }, { budget: 3 }] })); // "step:12x4,3"
 * ```
 */
export function stepPolicy(options: StepOptions): Policy {
  const steps = options?.steps;
  if (!Array.isArray(steps) || steps.length === 0) {
    throw new PolicyError(`${WHO}: needs at least one part, e.g. ${STEP_EXAMPLE}`, "steps");
  }
  const warmup = options.warmup ?? 0;
  if (!Number.isInteger(warmup) || warmup < 0) {
    throw new PolicyError(`${WHO}: warmup must be a whole number >= 0, got ${warmup}`, "warmup");
  }
  const promptMode = options.promptMode ?? "full";
  if (promptMode !== "full" && promptMode !== "decay") {
    throw new PolicyError(`${WHO}: prompt must be full or decay, got "${promptMode}"`, "prompt");
  }
  steps.forEach((s, i) => {
    const part = `part ${i + 1} ("${segmentText(s)}")`;
    if (!Number.isInteger(s.budget) || s.budget < 1) {
      throw new PolicyError(`${WHO}: ${part}: budget must be a whole number >= 1`, "steps");
    }
    if (s.budget <= warmup) {
      throw new PolicyError(
        `${WHO}: ${part}: budget must be above warmup (${warmup})`,
        "warmup",
      );
    }
    const last = i === steps.length - 1;
    if (last && s.count !== undefined) {
      throw new PolicyError(
        `${WHO}: the last part must be a bare budget for the remaining tokens (e.g. ` +
          `${STEP_EXAMPLE}), got "${segmentText(s)}"`,
        "steps",
      );
    }
    if (!last && (!Number.isInteger(s.count) || (s.count as number) < 1)) {
      throw new PolicyError(
        `${WHO}: ${part}: needs a count BxK with K a whole number >= 1`,
        "steps",
      );
    }
    if (i > 0 && s.budget > steps[i - 1].budget) {
      throw new PolicyError(
        `${WHO}: ${part}: budgets may not grow (${steps[i - 1].budget} then ${s.budget}): a ` +
          `layer skipped earlier would have no KV cache (docs/DESIGN.md §2)`,
        "steps",
      );
    }
  });
  const frozen = steps.map((s) => ({ ...s }));
  const text = frozen.map(segmentText).join(",");
  const top = frozen[0].budget;
  const budget = (ctx: ColumnContext): number => {
    checkContext(ctx, WHO);
    if (top > ctx.layers) {
      throw new PolicyError(
        `${WHO}: budget ${top} exceeds the model's ${ctx.layers} layers (needs B <= L)`,
        "steps",
      );
    }
    if (promptMode === "full" && ctx.column < ctx.promptLength) return ctx.layers;
    let j = promptMode === "full" ? ctx.column - ctx.promptLength : ctx.column;
    for (const s of frozen) {
      if (s.count === undefined || j < s.count) return s.budget;
      j -= s.count;
    }
    return frozen[frozen.length - 1].budget;
  };
  const extra = [
    ...(warmup ? [`warmup=${warmup}`] : []),
    ...(promptMode === "decay" ? ["prompt=decay"] : []),
  ];
  const cli = `${STEP_NAME}:${[text, ...extra].join(",")}`;
  return {
    name: STEP_NAME,
    promptMode,
    budget,
    layerSet: (ctx) => skipDecodeSet(ctx.layers, budget(ctx), warmup),
    toJSON: () => ({ kind: STEP_NAME, steps: text, warmup, promptMode }),
    toString: () => cli,
  };
}

/**
 * Parses the part after `step:` (`12x4,6x8,3`, optionally followed by `warmup=W` and
 * `prompt=full|decay`).
 *
 * @param rest the text after `step:`
 * @returns the policy
 * @throws PolicyError naming the part or key at fault
 * @example
 * ```ts
 * import { parseStep } from "./step.ts";
 * String(parseStep("12x4,6x8,3")); // "step:12x4,6x8,3"
 * ```
 */
export function parseStep(rest: string): Policy {
  if (rest.trim() === "") {
    throw new PolicyError(`policy "${WHO}" needs its parts, e.g. ${STEP_EXAMPLE}`, "steps");
  }
  const steps: StepSegment[] = [];
  let warmup: number | undefined;
  let promptMode: PromptMode | undefined;
  for (const raw of rest.split(",")) {
    const item = raw.trim().toLowerCase();
    const kv = /^([a-z]+)=(.*)$/.exec(item);
    if (kv) {
      if (kv[1] === "warmup" && /^[0-9]+$/.test(kv[2])) warmup = Number(kv[2]);
      else if (kv[1] === "prompt" && (kv[2] === "full" || kv[2] === "decay")) promptMode = kv[2];
      else {
        throw new PolicyError(
          `policy "${WHO}": "${raw.trim()}" is not warmup=N or prompt=full|decay`,
          kv[1],
        );
      }
      continue;
    }
    const m = /^([0-9]+)(?:x([0-9]+))?$/.exec(item);
    if (!m || warmup !== undefined || promptMode !== undefined) {
      throw new PolicyError(
        `policy "${WHO}": part "${raw.trim()}" is not BUDGETxCOUNT or a last BUDGET (e.g. ` +
          `${STEP_EXAMPLE})`,
        "steps",
      );
    }
    steps.push({ budget: Number(m[1]), ...(m[2] !== undefined ? { count: Number(m[2]) } : {}) });
  }
  return stepPolicy({ steps, warmup, promptMode });
}

/**
 * Rebuilds a step schedule from its JSON (`{ kind: "step", steps: "12x4,3", warmup,
 * promptMode }`).
 *
 * @param o the JSON object
 * @returns the policy
 * @throws PolicyError naming the field at fault
 * @example
 * ```ts
 * import { stepFromJson, parseStep } from "./step.ts";
 * String(stepFromJson({ kind: "step", steps: "12x4,3" })); // "step:12x4,3"
 * ```
 */
export function stepFromJson(o: Record<string, unknown>): Policy {
  for (const k of Object.keys(o)) {
    if (!["kind", "steps", "warmup", "promptMode"].includes(k)) {
      throw new PolicyError(
        `policy JSON of kind "${WHO}": unknown field "${k}" (expected steps, warmup, promptMode)`,
        k,
      );
    }
  }
  if (typeof o.steps !== "string" || !/^[0-9x,]+$/.test(o.steps)) {
    throw new PolicyError(
      `policy JSON of kind "${WHO}": field "steps" must be a string like "12x4,6x8,3"`,
      "steps",
    );
  }
  if (o.warmup !== undefined && typeof o.warmup !== "number") {
    throw new PolicyError(
      `policy JSON of kind "${WHO}": field "warmup" must be a number`,
      "warmup",
    );
  }
  return stepPolicy({
    steps: parseStepParts(o.steps),
    warmup: o.warmup as number | undefined,
    promptMode: o.promptMode as PromptMode | undefined,
  });
}

function parseStepParts(text: string): StepSegment[] {
  return text.split(",").map((t) => {
    const [b, c] = t.split("x");
    return { budget: Number(b), ...(c !== undefined ? { count: Number(c) } : {}) };
  });
}
