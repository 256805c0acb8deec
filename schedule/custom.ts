/**
 * Policies of your own: {@linkcode customPolicy} wraps a layer-set function as a
 * {@linkcode Policy}. Its name may not be a built-in's; `parse.ts` finds it by name in a
 * `PolicyLookup`, and its JSON form holds only the name (the function is not data).
 *
 * @module
 */
import { PolicyError } from "./errors.ts";
import {
  checkContext,
  type ColumnContext,
  earlyExitSet,
  type Policy,
  type PromptMode,
} from "./policy.ts";
import { isBuiltinName, requirePromptMode } from "./registry.ts";
import "./builtins.ts"; // registers the built-in names custom policies may not take

/** What {@linkcode customPolicy} needs. */
export interface CustomPolicyOptions {
  /** Name (letters, digits, `_`, `.`, `-`; not a built-in name). */
  name: string;
  /**
   * Active layers of a scheduled column, ascending. With prompt mode `full` it is called
   * only for columns `c >= P` (prompt columns run all layers); with `decay`, for all.
   */
  layerSet(ctx: ColumnContext): readonly number[];
  /** Budget of a scheduled column; default: the size of its layer set. */
  budget?(ctx: ColumnContext): number;
  /** Prompt mode (default `"full"`). */
  promptMode?: PromptMode;
}

/**
 * Wraps a function of your own as a {@linkcode Policy}. Any sets are allowed; `plan()`
 * rejects those that break the nesting invariant, naming the column and layer.
 *
 * @example
 * ```ts
 * import { customPolicy, plan } from "./mod.ts";
 * // Keep the top half of the layers once 4 tokens were generated.
 * const halfAfter4 = customPolicy({
 *   name: "half-after-4",
 *   layerSet: ({ column, promptLength, layers }) => {
 *     const keep = column - promptLength >= 3 ? Math.ceil(layers / 2) : layers;
 *     return Array.from({ length: keep }, (_, i) => layers - keep + i);
 *   },
 * });
 * const p = plan(halfAfter4, { layers: 12, promptLength: 4, maxNewTokens: 10 });
 * console.log(p.generatedLayers); // [12, 12, 12, 12, 6, 6, 6, 6, 6, 6]
 * ```
 */
export function customPolicy(options: CustomPolicyOptions): Policy {
  if (typeof options !== "object" || options === null) {
    throw new PolicyError(`custom: expected an options object, got ${String(options)}`);
  }
  const o = options;
  const name = o.name;
  if (typeof name !== "string" || !/^[A-Za-z_][A-Za-z0-9_.-]*$/.test(name)) {
    throw new PolicyError(
      `custom policy: name must be letters, digits, "_", "." or "-" (starting with a letter or ` +
        `"_"), got ${JSON.stringify(name)}`,
      "name",
    );
  }
  if (isBuiltinName(name)) {
    throw new PolicyError(`custom policy: name "${name}" is taken by a built-in policy`, "name");
  }
  if (typeof o.layerSet !== "function") {
    throw new PolicyError(`custom policy "${name}": layerSet must be a function`, "layerSet");
  }
  if (o.budget !== undefined && typeof o.budget !== "function") {
    throw new PolicyError(`custom policy "${name}": budget must be a function`, "budget");
  }
  const promptMode = requirePromptMode(`custom policy "${name}"`, o.promptMode);
  const who = `custom policy "${name}"`;
  const isPrompt = (ctx: ColumnContext) => promptMode === "full" && ctx.column < ctx.promptLength;
  const layerSet = (ctx: ColumnContext): number[] => {
    checkContext(ctx, who);
    if (isPrompt(ctx)) return earlyExitSet(ctx.layers, ctx.layers);
    const set = o.layerSet(ctx);
    if (!Array.isArray(set)) {
      throw new PolicyError(
        `${who}: layerSet returned ${typeof set} for column ${ctx.column}, not an array of layers`,
        "layerSet",
      );
    }
    return [...set];
  };
  return {
    name,
    promptMode,
    layerSet,
    budget: (ctx) => {
      checkContext(ctx, who);
      if (isPrompt(ctx)) return ctx.layers;
      return o.budget ? o.budget(ctx) : layerSet(ctx).length;
    },
    toJSON: () => ({ kind: "custom", name, promptMode }),
    toString: () => name,
  };
}
