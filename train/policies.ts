/**
 * Which exit policy each training example runs under: one fixed policy (the paper's
 * setting: fine-tune for the policy you will decode with) or a random SkipDecode linear
 * plan per example (how `bundled/models/tiny-opt-e2e` was trained, so one model tolerates
 * many policies).
 *
 * Command-line forms: any policy (`linear:max=6,min=2,warmup=1,horizon=32`, `full`, ...),
 * or `random` with optional fields `random:full=0.25,max=6..12,min=2,warmup=0..2,horizon=16/32/48/64`.
 *
 * @module
 */
import { full, linear, parsePolicy, type Policy } from "../schedule/mod.ts";
import { type Example, exampleSets, type PlannedExample } from "./batch.ts";

/** Ranges of the random linear plans. */
export interface RandomPlanOptions {
  /** Share of examples trained at full depth (default 0.25). */
  fullFraction: number;
  /** Range of `max` (inclusive; default `ceil(L/2) .. L`). */
  max?: [number, number];
  /** Lowest `min` (default 2); `min` is drawn in `minLow .. max`. */
  minLow: number;
  /** Range of warm-up layers (default 0..2; always below `min`). */
  warmup: [number, number];
  /** Horizons to draw from (default 16, 32, 48, 64). */
  horizons: number[];
}

/** How examples get their policy. */
export type PolicySource =
  | { kind: "fixed"; policy: Policy }
  | { kind: "random"; options: RandomPlanOptions };

/** The defaults of `random` (the tiny model's README). */
export const RANDOM_PLAN_DEFAULTS: Readonly<RandomPlanOptions> = Object.freeze({
  fullFraction: 0.25,
  minLow: 2,
  warmup: [0, 2] as [number, number],
  horizons: [16, 32, 48, 64],
});

function range(field: string, text: string): [number, number] {
  const m = /^(\d+)(?:\.\.(\d+))?$/.exec(text);
  if (!m) throw new RangeError(`random policy: ${field} must be N or N..M, got "${text}"`);
  const lo = Number(m[1]), hi = Number(m[2] ?? m[1]);
  if (hi < lo) throw new RangeError(`random policy: ${field} range ${text} is empty`);
  return [lo, hi];
}

/**
 * Parses a training policy: `random[:fields]` or any policy string of `schedule/`.
 *
 * @throws {RangeError} (or the policy parser's error) naming the bad field.
 *
 * @example
 * ```ts
 * parsePolicySource("random:full=0.5,horizon=32").kind; // "random"
 * parsePolicySource("linear:max=6,min=2,warmup=1,horizon=32").kind; // "fixed"
 * ```
 */
export function parsePolicySource(spec: string): PolicySource {
  const s = spec.trim();
  if (s !== "random" && !s.startsWith("random:")) return { kind: "fixed", policy: parsePolicy(s) };
  const options: RandomPlanOptions = {
    ...RANDOM_PLAN_DEFAULTS,
    horizons: [...RANDOM_PLAN_DEFAULTS.horizons],
  };
  const body = s.slice("random".length + 1);
  for (const part of body ? body.split(",") : []) {
    const [key, value] = part.split("=").map((x) => x.trim());
    if (value === undefined) throw new RangeError(`random policy: "${part}" is not key=value`);
    if (key === "full") {
      const f = Number(value);
      if (!(f >= 0 && f <= 1)) throw new RangeError(`random policy: full must be in [0, 1]`);
      options.fullFraction = f;
    } else if (key === "max") options.max = range("max", value);
    else if (key === "min") options.minLow = range("min", value)[0];
    else if (key === "warmup") options.warmup = range("warmup", value);
    else if (key === "horizon") {
      options.horizons = value.split("/").map((h) => {
        const n = Number(h);
        if (!Number.isInteger(n) || n < 1) {
          throw new RangeError(`random policy: horizon "${h}" is not an integer >= 1`);
        }
        return n;
      });
    } else {
      throw new RangeError(
        `random policy: unknown field "${key}" (known: full, max, min, warmup, horizon)`,
      );
    }
  }
  return { kind: "random", options };
}

/**
 * The command-line form of a policy source.
 *
 * @example
 * ```ts
 * policySourceToString(parsePolicySource("random")); // "random:full=0.25,min=2,warmup=0..2,horizon=16/32/48/64"
 * ```
 */
export function policySourceToString(src: PolicySource): string {
  if (src.kind === "fixed") return String(src.policy);
  const o = src.options;
  const max = o.max ? `,max=${o.max[0]}..${o.max[1]}` : "";
  return `random:full=${o.fullFraction}${max},min=${o.minLow},warmup=${o.warmup[0]}..${
    o.warmup[1]
  },horizon=${o.horizons.join("/")}`;
}

/**
 * Draws a random linear SkipDecode policy for `layers` layers (or `full`, with probability
 * `fullFraction`): `max` in its range, `min` in `minLow .. max`, warm-up in its range but
 * below `min`, a horizon from the list; prompt columns at full depth.
 *
 * @example
 * ```ts
 * import { seededRandom } from "../model/random.ts";
 * const p = randomPolicy(RANDOM_PLAN_DEFAULTS, 12, seededRandom(3));
 * console.log(String(p));
 * ```
 */
export function randomPolicy(
  o: RandomPlanOptions,
  layers: number,
  random: () => number,
): Policy {
  const int = (lo: number, hi: number) => lo + Math.floor(random() * (hi - lo + 1));
  if (random() < o.fullFraction) return full();
  const [maxLo, maxHi] = o.max ?? [Math.ceil(layers / 2), layers];
  const max = int(Math.min(maxLo, layers), Math.min(maxHi, layers));
  const min = int(Math.min(Math.max(1, o.minLow), max), max);
  const warmup = int(Math.min(o.warmup[0], min - 1), Math.min(o.warmup[1], min - 1));
  const horizon = o.horizons[Math.floor(random() * o.horizons.length)];
  return linear({ max, min, warmup, horizon });
}

/**
 * Checks random-policy options against a model's layer count, so that nothing is clamped
 * silently: the `max` range must lie within `1..layers`, `min` must be at least 1 and
 * reachable (at most the largest `max`), and the warm-up's upper bound below the largest
 * `max` (a warm-up needs fewer layers than the budget). The same limits a fixed
 * `linear:max=...` policy is refused beyond.
 *
 * @param o the options of a `random:` policy
 * @param layers the model's decoder layers
 * @param spec the policy as given, for messages
 * @throws RangeError naming the field, its value and the limit
 * @example
 * ```ts
 * import { checkRandomPlanOptions, parsePolicySource } from "./policies.ts";
 * const src = parsePolicySource("random:max=6..12");
 * if (src.kind === "random") checkRandomPlanOptions(src.options, 12, "random:max=6..12");
 * ```
 */
export function checkRandomPlanOptions(o: RandomPlanOptions, layers: number, spec: string): void {
  const [maxLo, maxHi] = o.max ?? [Math.ceil(layers / 2), layers];
  if (maxLo < 1 || maxHi > layers || maxLo > maxHi) {
    throw new RangeError(
      `policy ${spec}: max=${maxLo}..${maxHi} must lie within 1..${layers} (the model's layers)`,
    );
  }
  if (!(o.minLow >= 1) || o.minLow > maxHi) {
    throw new RangeError(
      `policy ${spec}: min=${o.minLow} must be from 1 to ${maxHi} (the largest max)`,
    );
  }
  if (o.warmup[0] < 0 || o.warmup[0] > o.warmup[1] || o.warmup[1] >= maxHi) {
    throw new RangeError(
      `policy ${spec}: warmup=${o.warmup[0]}..${o.warmup[1]} must be a range from 0 below ` +
        `${maxHi} (the largest max): warm-up layers are part of the budget`,
    );
  }
}

/**
 * Attaches layer sets to examples: the fixed policy's, or a fresh random policy per
 * example (drawn from `random`, so a seeded generator makes it reproducible).
 *
 * @example
 * ```ts
 * import { parsePolicy } from "../schedule/mod.ts";
 * const [p] = planExamples([{ prompt: [2, 5], target: [6, 2] }], { kind: "fixed", policy: parsePolicy("full") }, 2, Math.random);
 * console.log(p.sets); // [[0, 1], [0, 1], [0, 1]]
 * ```
 */
export function planExamples(
  examples: readonly Example[],
  source: PolicySource,
  layers: number,
  random: () => number,
): PlannedExample[] {
  return examples.map((e) => {
    const policy = source.kind === "fixed"
      ? source.policy
      : randomPolicy(source.options, layers, random);
    return { ...e, sets: exampleSets(policy, layers, e.prompt.length, e.target.length) };
  });
}
