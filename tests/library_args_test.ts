/**
 * The library checks its public arguments as the command line does, naming each: a NaN
 * `logitsTopK` used to record nothing, `seed` NaN / 1.5 / 2^32 acted as 0 / 1 / 0,
 * `generate(model, [42])` said "p is not iterable", and training's `random:` policy
 * clamped `max=13..13`, `warmup=0..20` and `min=0` silently where `linear:max=13` is
 * refused.
 */
import { assertMatch, assertRejects, assertThrows } from "@std/assert";
import { generate, loadModel } from "../decode/mod.ts";
import { checkRandomPlanOptions, parsePolicySource } from "../train/policies.ts";
import { TINY_MODEL_DIR } from "../data/bundled.ts";

Deno.test("generate: NaN, fractional and out-of-range numbers and bare ids are refused by name", async () => {
  const model = await loadModel(TINY_MODEL_DIR, { backend: "cpu", onNote: () => {} });
  try {
    const cases: [unknown[], Record<string, unknown>, RegExp][] = [
      [["a"], { logitsTopK: NaN }, /logitsTopK must be a whole number from 1 to 50272, got NaN/],
      [["a"], { sampling: { temperature: 1, seed: NaN } }, /sampling\.seed must be .* got NaN/],
      [["a"], { sampling: { temperature: 1, seed: 1.5 } }, /sampling\.seed .* got 1\.5/],
      [
        ["a"],
        { sampling: { temperature: 1, seed: 2 ** 32 } },
        /from 0 to 4294967295, got 4294967296/,
      ],
      [[42], {}, /prompt 0 is 42: each prompt must be a string or an array of token ids/],
      [["a"], { maxNewTokens: 2.5 }, /maxNewTokens must be a whole number/],
    ];
    for (const [prompts, options, want] of cases) {
      const e = await assertRejects(() =>
        generate(model, prompts as string[], { maxNewTokens: 1, ...options })
      );
      assertMatch((e as Error).message, want);
    }
  } finally {
    model.dispose();
  }
});

Deno.test("training's random: policy is checked against the model's layers, not clamped", () => {
  for (
    const [spec, want] of [
      ["random:max=13..13", /max=13\.\.13 must lie within 1\.\.12/],
      ["random:warmup=0..20", /warmup=0\.\.20 must be a range from 0 below 12/],
      ["random:min=0", /min=0 must be from 1 to 12/],
    ] as const
  ) {
    const src = parsePolicySource(spec);
    if (src.kind !== "random") throw new Error("not random");
    const e = assertThrows(() => checkRandomPlanOptions(src.options, 12, spec), RangeError);
    assertMatch(e.message, want);
  }
  const ok = parsePolicySource("random:max=6..12,warmup=0..2");
  if (ok.kind === "random") checkRandomPlanOptions(ok.options, 12, "random");
});
