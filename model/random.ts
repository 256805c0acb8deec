/**
 * The project's one seeded random generator, mulberry32 (Tommy Ettinger's 32-bit generator):
 * small, fast, and the same stream on every machine. Training shuffles, the adapter checks of
 * `kernels/validate.ts`, the random checkpoints of `model/fixture.ts` and the tests all draw
 * from it, so a seed means the same numbers everywhere.
 *
 * @module
 */

/**
 * One mulberry32 step on a 32-bit state: the next state and 32 random bits (both unsigned).
 *
 * @example
 * ```ts
 * import { mulberry32Bits } from "./random.ts";
 * const [state, bits] = mulberry32Bits(1);
 * console.log(state, bits < 2 ** 32); // 1831565814 true
 * ```
 */
export function mulberry32Bits(state: number): [number, number] {
  const a = (state + 0x6d2b79f5) >>> 0;
  let t = a;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return [a, (t ^ (t >>> 14)) >>> 0];
}

/** A seeded generator of uniforms in `[0, 1)` whose state can be saved and restored. */
export type SeededRandom = (() => number) & {
  /** The current 32-bit state (pass it back as `seededRandom(seed, state)` to resume). */
  state(): number;
};

/**
 * A seeded generator of uniforms in `[0, 1)` (mulberry32), with its state readable for
 * checkpoints (`state()`) and restorable (`seededRandom(seed, state)`).
 *
 * @example
 * ```ts
 * import { seededRandom } from "./random.ts";
 * const r = seededRandom(7);
 * const a = r(), s = r.state(), b = r();
 * console.log(a < 1, seededRandom(7, s)() === b); // true true
 * ```
 */
export function seededRandom(seed: number, state?: number): SeededRandom {
  let a = (state ?? seed) >>> 0;
  const next = () => {
    const [s, bits] = mulberry32Bits(a);
    a = s;
    return bits / 4294967296;
  };
  return Object.assign(next, { state: () => a });
}
