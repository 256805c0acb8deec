/**
 * The built-in step schedule (`schedule/step.ts`): budgets per generated-input index
 * `j = c - P` (docs/DESIGN.md §3), the rule that budgets never grow, round trips, and errors
 * that name the part at fault.
 *
 * @module
 */
import { assertEquals, assertMatch, assertThrows } from "@std/assert";
import {
  labelPolicy,
  parsePolicy,
  plan,
  PolicyError,
  policyExamples,
  policyFromJson,
  policyHelp,
  stepPolicy,
} from "../schedule/mod.ts";

const dims = { layers: 12, promptLength: 3, maxNewTokens: 16 };

Deno.test("step:12x4,6x8,3 follows DESIGN's j = c - P", () => {
  const p = plan(parsePolicy("step:12x4,6x8,3"), dims);
  // budgets by column: prompt columns 0..2 run all layers; j = 0..3 -> 12, 4..11 -> 6, 12.. -> 3
  const P = dims.promptLength;
  for (let c = 0; c < p.budgets.length; c++) {
    const j = c - P;
    const want = j < 0 ? 12 : j < 4 ? 12 : j < 12 ? 6 : 3;
    assertEquals(p.budgets[c], want, `column ${c} (j = ${j})`);
  }
  // generated token i is produced by column P - 1 + i: token 0 by the last prompt column
  assertEquals(p.generatedLayers, [12, 12, 12, 12, 12, 6, 6, 6, 6, 6, 6, 6, 6, 3, 3, 3]);
  // the SkipDecode set of each budget: the top layers
  assertEquals(p.sets[P + 4], [6, 7, 8, 9, 10, 11]);
  assertEquals(p.sets[P + 12], [9, 10, 11]);
});

Deno.test("step: warm-up layers, prompt decay, round trips and labels", () => {
  const w = plan(parsePolicy("step:8x2,4,warmup=1"), { ...dims, maxNewTokens: 4 });
  assertEquals(w.sets[dims.promptLength + 2], [0, 9, 10, 11]);
  const d = plan(parsePolicy("step:12x2,6,prompt=decay"), { ...dims, maxNewTokens: 2 });
  assertEquals(d.budgets, [12, 12, 6, 6], "decay counts from column 0");
  for (const spec of ["step:12x4,6x8,3", "step:8x2,4,warmup=1", "step:6,prompt=decay"]) {
    const p = parsePolicy(spec);
    assertEquals(String(p), spec);
    assertEquals(String(parsePolicy(String(p))), spec);
    assertEquals(String(policyFromJson(JSON.parse(JSON.stringify(p)))), spec);
  }
  assertEquals(String(parsePolicy("STEP: 12x4 , 3")), "step:12x4,3");
  assertEquals(labelPolicy(parsePolicy("step:12x4,6x8,3")), "step 12x4,6x8,3");
  assertEquals(
    String(stepPolicy({ steps: [{ budget: 10, count: 2 }, { budget: 5 }] })),
    "step:10x2,5",
  );
  assertMatch(policyExamples(), /step:12x4,6x8,3/);
  assertMatch(policyHelp(), /^step: /m);
});

Deno.test("step: bad schedules name the part at fault", () => {
  const cases: [string, RegExp][] = [
    ["step:", /needs its parts/],
    ["step:6x4,8", /part 2 \("8"\): budgets may not grow \(6 then 8\)/],
    ["step:12x4,6x8", /last part must be a bare budget .* got "6x8"/],
    ["step:12x0,3", /part 1 \("12x0"\): needs a count/],
    ["step:0", /part 1 \("0"\): budget must be a whole number >= 1/],
    ["step:abc", /part "abc" is not BUDGETxCOUNT/],
    ["step:12x4,3,warmup=x", /"warmup=x" is not warmup=N/],
    ["step:12x4,warmup=1,3", /part "3" is not/],
    ["step:4x2,1,warmup=1", /budget must be above warmup/],
  ];
  for (const [spec, pattern] of cases) {
    const e = assertThrows(() => parsePolicy(spec), PolicyError, undefined, spec);
    assertMatch(e.message, pattern, spec);
  }
  const big = parsePolicy("step:13x2,3");
  assertThrows(() => plan(big, dims), PolicyError, "budget 13 exceeds the model's 12 layers");
  assertThrows(
    () => policyFromJson({ kind: "step", steps: "12x4,3", extra: 1 }),
    PolicyError,
    'unknown field "extra"',
  );
});
