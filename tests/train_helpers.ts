/**
 * Helpers of the `tests/train_*_test.ts` files: tiny random models built in memory (no
 * disk), planned examples with skipping and padding, and error measures.
 *
 * @module
 */
import { fixtureConfig, fixtureValues } from "../model/fixture.ts";
import { optTensorSpecs } from "../model/checkpoint.ts";
import type { OptConfig } from "../model/types.ts";
import { ParamSet, type Precision } from "../train/param_set.ts";
import { exampleSets, type PlannedExample } from "../train/batch.ts";
import { parsePolicy } from "../schedule/mod.ts";
import { rng } from "./helpers.ts";
// The shared test helpers, re-exported for the tests that import them from here.
export { relL2, rng, sharedPath } from "./helpers.ts";

/** A tiny pre-LN config (awkward sizes) and its opt-350m-style post-LN twin. */
export function tinyConfig(kind: "pre" | "post", extra: Partial<OptConfig> = {}): OptConfig {
  return fixtureConfig({
    vocabSize: 23,
    hiddenSize: 12,
    numAttentionHeads: 3,
    ffnDim: 20,
    numHiddenLayers: 4,
    maxPositionEmbeddings: 24,
    ...(kind === "post" ? { doLayerNormBefore: false, wordEmbedProjDim: 8 } : {}),
    ...extra,
  }, "F32");
}

/** Deterministic random parameters (the fixture's draws) in a precision. */
export function randomParams(config: OptConfig, seed: number, precision: Precision): ParamSet {
  const specs = optTensorSpecs(config, !config.tieWordEmbeddings);
  const arrays = specs.map((s) => {
    const v = fixtureValues(config, s, seed);
    return precision === "f64" ? Float64Array.from(v) : v;
  });
  return new ParamSet(config, precision, arrays);
}

/**
 * Examples of different prompt and target lengths (so the batch has padding), planned with
 * a skipping policy that suits `layers` (a prompt at full depth, budgets decaying to 2).
 */
export function plannedExamples(
  config: OptConfig,
  seed: number,
  lengths: [number, number][] = [[3, 5], [5, 2], [2, 6]],
  policy = `linear:max=${config.numHiddenLayers},min=2,warmup=1,horizon=4`,
): PlannedExample[] {
  const r = rng(seed);
  const id = () => 3 + Math.floor(r() * (config.vocabSize - 3));
  const p = parsePolicy(policy);
  return lengths.map(([P, R]) => {
    const prompt = [2, ...Array.from({ length: P - 1 }, id)];
    const target = [...Array.from({ length: R - 1 }, id), 2];
    return { prompt, target, sets: exampleSets(p, config.numHiddenLayers, P, R) };
  });
}
