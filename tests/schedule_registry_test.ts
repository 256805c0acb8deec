/**
 * The policy registry (`schedule/registry.ts`, `schedule/builtins.ts`): every built-in is one
 * descriptor, and parsing, printing, JSON, error messages, the prompt-mode override and chart
 * labels follow from it. Checked per descriptor (so a new built-in is covered without a new
 * test), plus a policy defined in this test: one `defineSchedule` call makes it parseable,
 * printable, JSON-able and labelled.
 */
import { assert, assertEquals, assertStrictEquals, assertThrows } from "@std/assert";
import {
  builtinPolicies,
  builtinPolicy,
  customPolicy,
  defineSchedule,
  earlyExit,
  isBuiltinName,
  labelPolicy,
  linear,
  type ParamSpec,
  parsePolicy,
  plan,
  type Policy,
  PolicyError,
  policyExamples,
  policyFromJson,
  policyHelp,
  type ScheduleDescriptor,
  schedulePolicy,
  withPromptMode,
} from "../schedule/mod.ts";
import { intIn, rng } from "./helpers.ts";

const CTX = { promptLength: 3, maxNewTokens: 12, layers: 12 };

/** The built-in schedules (every built-in but the wrappers). */
function schedules(): ScheduleDescriptor[] {
  return builtinPolicies().filter((d): d is ScheduleDescriptor => d.form === "schedule");
}

/** Random valid options for a schedule descriptor (enough to satisfy the built-ins' rules). */
function randomOptions(d: ScheduleDescriptor, r: () => number): Record<string, number> {
  const o: Record<string, number> = {};
  const w = intIn(r, 0, 2);
  const lo = intIn(r, w + 1, 6);
  const hi = intIn(r, lo, 12);
  for (const p of d.params) {
    if ((p.optional || p.default !== undefined) && r() < 0.3) continue;
    o[p.key] = p.key === "warmup"
      ? w
      : p.key === "min"
      ? lo
      : p.key === "max" || p.key === "n"
      ? hi
      : p.type === "int"
      ? intIn(r, Math.max(p.min, 1), 40)
      : Number((p.min + (p.exclusive ? 0.25 : 0) + r() * 4).toFixed(3));
  }
  return o;
}

Deno.test("every built-in: String and JSON round trip, examples parse, budgets unchanged", () => {
  const r = rng(13);
  const names = builtinPolicies().map((d) => d.name);
  assertEquals(names, ["full", "constant", "linear", "powerlaw", "earlyexit"]);
  for (const d of builtinPolicies()) {
    // the example shown in error messages is a valid policy of that kind
    const ex = parsePolicy(d.example);
    assertEquals(ex.toJSON().kind, d.name, d.example);
    assert(policyExamples().includes(d.example));
    assert(isBuiltinName(d.name.toUpperCase()));
  }
  for (const d of schedules()) {
    for (let t = 0; t < 40; t++) {
      const options = randomOptions(d, r);
      const mode: "decay" | undefined = d.promptMode && r() < 0.5 ? "decay" : undefined;
      // a descriptor's keys are known only at run time here: hence `as never`
      const p = schedulePolicy(d, { ...options, promptMode: mode } as never);
      const json = p.toJSON() as unknown as Record<string, unknown>;
      // JSON holds every parameter that has a value, defaults filled in
      for (const spec of d.params) {
        const want = options[spec.key] ?? spec.default;
        assertStrictEquals(json[spec.key], want, `${d.name}.${spec.key}`);
      }
      assertEquals(json.promptMode, d.promptMode ? (mode ?? "full") : undefined);
      for (const q of [parsePolicy(String(p)), policyFromJson(JSON.parse(JSON.stringify(p)))]) {
        assertEquals(String(q), String(p));
        assertEquals(q.toJSON(), p.toJSON());
        for (let c = 0; c < CTX.promptLength + CTX.maxNewTokens - 1; c++) {
          assertEquals(q.layerSet({ ...CTX, column: c }), p.layerSet({ ...CTX, column: c }));
        }
      }
    }
  }
});

Deno.test("every parameter's range and type errors name the parameter", () => {
  for (const d of schedules()) {
    const valid = parsePolicy(d.example).toJSON() as unknown as Record<string, number>;
    for (const spec of d.params) {
      const bad: [unknown, string][] = [
        [spec.exclusive ? spec.min : spec.min - 1, spec.type === "int" ? "integer" : ""],
        ["7", spec.type === "int" ? "integer" : "finite number"],
        [NaN, spec.type === "int" ? "integer" : "finite number"],
      ];
      if (spec.type === "int") bad.push([spec.min + 0.5, "integer"]);
      for (const [value, text] of bad) {
        const options = { ...valid, [spec.key]: value } as Record<string, unknown>;
        delete options.kind;
        const e = assertThrows(
          () => schedulePolicy(d, options as never),
          PolicyError,
          text,
          `${d.name}.${spec.key} = ${value}`,
        );
        assertEquals(e.key, spec.key, e.message);
        assert(e.message.startsWith(`${d.name}: ${spec.key} must be`), e.message);
      }
      // a required key missing from the command line is named, with the example
      if (spec.default === undefined && !spec.optional) {
        const without = d.example.replace(new RegExp(`${spec.key}=[^,]*,?`), "").replace(
          /,$/,
          "",
        );
        const e = assertThrows(() => parsePolicy(without), PolicyError, `needs key "${spec.key}"`);
        assertEquals(e.key, spec.key);
        assert(e.message.includes(d.example), e.message);
      }
    }
  }
});

Deno.test("withPromptMode: schedules rebuilt, wrappers pass it on, full kept, custom refused", () => {
  const lin = linear({ max: 12, min: 4, warmup: 1, horizon: 20 });
  assertStrictEquals(withPromptMode(lin, undefined), lin);
  assertStrictEquals(withPromptMode(lin, "full"), lin);
  assertEquals(String(withPromptMode(lin, "decay")), String(lin) + ",prompt=decay");
  assertEquals(String(withPromptMode(withPromptMode(lin, "decay"), "full")), String(lin));
  const ee = withPromptMode(earlyExit(lin), "decay");
  assertEquals(String(ee), "earlyexit:linear:max=12,min=4,warmup=1,horizon=20,prompt=decay");
  assertEquals(ee.promptMode, "decay");
  const full = parsePolicy("full");
  assertStrictEquals(withPromptMode(full, "decay"), full);
  const top = customPolicy({ name: "top", layerSet: ({ layers }) => [layers - 1] });
  const e = assertThrows(() => withPromptMode(earlyExit(top), "decay"), PolicyError, '"top"');
  assertEquals(e.key, "promptMode");
  // the override changes the plan: prompt columns decay too
  const dims = { layers: 12, promptLength: 6, maxNewTokens: 4 };
  assertEquals(plan(lin, dims).budgets.slice(0, 6), new Array(6).fill(12));
  assert(plan(withPromptMode(lin, "decay"), dims).budgets[5] < 12);
});

Deno.test("policyHelp: every built-in with its example, and every key with range and default", () => {
  const help = policyHelp();
  for (const d of builtinPolicies()) {
    assert(help.includes(`${d.name}: ${d.summary}`), d.name);
    assert(help.includes(`e.g. ${d.example}`), d.name);
  }
  for (const d of schedules()) {
    for (const p of d.params) {
      const line = help.split("\n").find((l) =>
        l.trim().startsWith(`${p.key} `) && l.includes(p.doc)
      );
      assert(line !== undefined, `${d.name}.${p.key} missing from the help`);
      assert(line.includes(p.type === "int" ? "integer" : "number"), line);
      if (p.default !== undefined) assert(line.includes(`default ${p.default}`), line);
    }
  }
});

Deno.test("labelPolicy: the chart labels", () => {
  const cases: [string, string][] = [
    ["full", "full"],
    ["constant:n=6,warmup=1", "constant 6 w1"],
    ["linear:max=12,min=4,warmup=1,horizon=24", "linear 12→4 w1 H24"],
    ["linear:max=12,min=4", "linear 12→4 w0"],
    ["powerlaw:max=12,min=2,warmup=1,alpha=1,tau=4", "power 12→2 w1 α1 τ4"],
    ["earlyexit:linear:max=10,min=2,warmup=1,horizon=24", "early-exit linear 10→2 H24"],
    ["linear:max=12,min=4,prompt=decay", "linear 12→4 w0 decay"],
  ];
  for (const [spec, label] of cases) assertEquals(labelPolicy(parsePolicy(spec)), label, spec);
  const mine = customPolicy({ name: "mine", layerSet: ({ layers }) => [layers - 1] });
  assertEquals(labelPolicy(mine), "mine");
});

Deno.test("a new built-in is one defineSchedule call: parse, print, JSON, errors, label", () => {
  const params = [
    { key: "n", type: "int", min: 1, doc: "budget after the step" },
    { key: "k", type: "int", min: 0, default: 4, doc: "generated tokens at full depth" },
  ] as const satisfies readonly ParamSpec[];
  const STEP = defineSchedule({
    form: "schedule",
    name: "steptest",
    summary: "full depth for the first k generated tokens, then the top n layers",
    params,
    promptMode: true,
    example: "steptest:n=6,k=4",
    top: "n",
    budget: (p, j, _H, L) => (j + 1 < p.k ? L : p.n), // token i = j + 1 (docs/DESIGN.md §3)
    label: (p) => `step ${p.n} k${p.k}`,
  });
  assertStrictEquals(builtinPolicy("STEPTEST"), STEP);
  const p: Policy = parsePolicy("steptest:n=5,k=2");
  assertEquals(String(p), "steptest:n=5,k=2");
  assertEquals(p.toJSON(), { kind: "steptest", n: 5, k: 2, promptMode: "full" });
  assertEquals(String(policyFromJson({ kind: "steptest", n: 5 })), "steptest:n=5,k=4");
  const pl = plan(p, { layers: 12, promptLength: 3, maxNewTokens: 6 });
  // token 0 comes from the last prompt column (all layers), token i from j = i - 1: k = 2
  // keeps exactly the first 2 tokens at full depth
  assertEquals(pl.generatedLayers, [12, 12, 5, 5, 5, 5]);
  assertEquals(labelPolicy(p), "step 5 k2");
  assertEquals(String(earlyExit(p)), "earlyexit:steptest:n=5,k=2");
  assertThrows(() => parsePolicy("steptest:k=2"), PolicyError, 'needs key "n" (e.g. steptest');
  assertThrows(() => parsePolicy("steptest:n=3,j=1"), PolicyError, 'unknown key "j"');
  assertThrows(
    () => plan(parsePolicy("steptest:n=13"), { layers: 12, promptLength: 2, maxNewTokens: 2 }),
    PolicyError,
    "n (13) exceeds the model's 12 layers",
  );
  assertThrows(
    () => customPolicy({ name: "steptest", layerSet: () => [0] }),
    PolicyError,
    "built-in",
  );
  assert(policyExamples().includes("steptest:n=6,k=4"));
  // names are unique and lower case
  assertThrows(() => defineSchedule({ ...STEP }), Error, "taken");
});
