/**
 * Serialised policies: the command-line form (`parsePolicy`) and JSON (`policyFromJson`)
 * round-trip for every policy, the docs/DESIGN.md examples parse, and bad specs or JSON give a
 * PolicyError naming the key at fault.
 */
import { assert, assertEquals, assertStrictEquals, assertThrows } from "@std/assert";
import {
  constant,
  customPolicy,
  earlyExit,
  full,
  linear,
  parsePolicy,
  plan,
  type Policy,
  PolicyError,
  policyFromJson,
  powerLaw,
  type PromptMode,
} from "../schedule/mod.ts";
import { intIn, rng } from "./helpers.ts";

function randomPolicy(r: () => number, depth = 0): Policy {
  const w = intIn(r, 0, 3);
  const min = intIn(r, w + 1, 8);
  const max = intIn(r, min, 12);
  const promptMode: PromptMode = r() < 0.5 ? "full" : "decay";
  switch (intIn(r, 0, depth === 0 ? 4 : 3)) {
    case 0:
      return full();
    case 1:
      return constant({ n: min, warmup: w, promptMode });
    case 2:
      return linear({
        max,
        min,
        warmup: w,
        horizon: r() < 0.5 ? undefined : intIn(r, 1, 100),
        promptMode,
      });
    case 3:
      return powerLaw({
        max,
        min,
        warmup: w,
        alpha: r() < 0.5 ? intIn(r, 0, 3) : r() * 4,
        tau: r() < 0.5 ? intIn(r, 1, 20) : 1e-3 + r() * 50,
        promptMode,
      });
    default:
      return earlyExit(randomPolicy(r, depth + 1));
  }
}

Deno.test("command-line and JSON forms round-trip for 2000 random policies", () => {
  const r = rng(5);
  const seen = new Set<string>();
  for (let i = 0; i < 2000; i++) {
    const p = randomPolicy(r);
    seen.add(p.name);
    const spec = String(p);
    const q = parsePolicy(spec);
    assertEquals(String(q), spec);
    assertEquals(q.toJSON(), p.toJSON());
    assertEquals(q.name, p.name);
    assertEquals(q.promptMode, p.promptMode);
    const j = policyFromJson(JSON.parse(JSON.stringify(p)));
    assertEquals(String(j), spec);
    assertEquals(j.toJSON(), p.toJSON());
    // the rebuilt policies give the same plan
    const opts = { layers: 12, promptLength: intIn(r, 1, 8), maxNewTokens: intIn(r, 1, 24) };
    const sets = plan(p, opts).sets;
    assertEquals(plan(q, opts).sets, sets);
    assertEquals(plan(j, opts).sets, sets);
  }
  assertEquals([...seen].sort(), ["constant", "earlyexit", "full", "linear", "powerlaw"]);
});

Deno.test("the docs/DESIGN.md and brief examples parse to the intended parameters", () => {
  assertEquals(parsePolicy("full").toJSON(), { kind: "full" });
  assertEquals(parsePolicy("constant:n=6,warmup=1").toJSON(), {
    kind: "constant",
    n: 6,
    warmup: 1,
    promptMode: "full",
  });
  assertEquals(parsePolicy("linear:max=12,min=4,warmup=1,horizon=64").toJSON(), {
    kind: "linear",
    max: 12,
    min: 4,
    warmup: 1,
    horizon: 64,
    promptMode: "full",
  });
  assertEquals(parsePolicy("powerlaw:max=12,min=2,warmup=1,alpha=1,tau=8").toJSON(), {
    kind: "powerlaw",
    max: 12,
    min: 2,
    warmup: 1,
    alpha: 1,
    tau: 8,
    promptMode: "full",
  });
  const e = parsePolicy("earlyexit:linear:max=12,min=4,horizon=64");
  assertEquals(e.toJSON(), {
    kind: "earlyexit",
    inner: { kind: "linear", max: 12, min: 4, warmup: 0, horizon: 64, promptMode: "full" },
  });
  assertEquals(String(e), "earlyexit:linear:max=12,min=4,warmup=0,horizon=64");
  // warm-up defaults to 0; prompt mode via prompt=; names/keys case-insensitive; spaces ok
  const d = parsePolicy(" Linear : MAX=12, min = 4 , prompt=Decay ");
  assertEquals(d.toJSON(), { kind: "linear", max: 12, min: 4, warmup: 0, promptMode: "decay" });
  assertEquals(String(d), "linear:max=12,min=4,warmup=0,prompt=decay");
  assertEquals(parsePolicy("constant:n=3,prompt=full").promptMode, "full");
  assertEquals(parsePolicy("powerlaw:max=8,min=2,alpha=0.5,tau=2.5e1").toJSON(), {
    kind: "powerlaw",
    max: 8,
    min: 2,
    warmup: 0,
    alpha: 0.5,
    tau: 25,
    promptMode: "full",
  });
  assertEquals(parsePolicy("earlyexit:constant:n=2,prompt=decay").promptMode, "decay");
});

Deno.test("bad command-line specs name the key", () => {
  const cases: [string, string, string][] = [
    ["", "policy", "empty policy spec"],
    ["lineer:max=12,min=4", "policy", 'unknown policy "lineer"'],
    ["linear:max=12", "min", 'needs key "min"'],
    ["linear:max=12,min=4,maxx=3", "maxx", 'unknown key "maxx"'],
    ["linear:max=abc,min=4", "max", 'key "max" needs a number, got "abc"'],
    ["linear:max=,min=4", "max", "needs a number"],
    ["linear:max=0x10,min=4", "max", "needs a number"],
    ["linear:max=1e400,min=4", "max", "needs a number"],
    ["linear:max=12.5,min=4", "max", "integer"],
    ["linear:max=12,min=4,max=11", "max", "given twice"],
    ["linear:max=12,min=4,horizon=0", "horizon", "integer >= 1"],
    ["linear:max=4,min=6", "min", "must not exceed max"],
    ["linear:max=12,min=4,warmup=4", "warmup", "w < n"],
    ["constant:n", "n", 'key "n" needs a value'],
    ["constant:n=6,,warmup=1", "", "empty key"],
    ["constant:n=6,prompt=sometimes", "prompt", "full or decay"],
    ["powerlaw:max=12,min=2,alpha=-1,tau=8", "alpha", ">= 0"],
    ["powerlaw:max=12,min=2,alpha=1,tau=0", "tau", "> 0"],
    ["powerlaw:max=12,min=2,alpha=1", "tau", 'needs key "tau"'],
    ["full:max=3", "max", "takes no keys"],
    ["earlyexit", "earlyexit", "wraps another policy"],
    ["earlyexit:", "earlyexit", "wraps another policy"],
    ["earlyexit:bogus", "policy", 'unknown policy "bogus"'],
    ["earlyexit:linear:max=12", "min", 'needs key "min"'],
  ];
  for (const [spec, key, text] of cases) {
    const e = assertThrows(() => parsePolicy(spec), PolicyError, text, spec);
    assertEquals(e.key, key, `${spec}: ${e.message}`);
  }
});

Deno.test("bad policy JSON names the field", () => {
  const cases: [unknown, string, string][] = [
    [null, "kind", "must be an object"],
    [[1], "kind", "must be an object"],
    [{ kind: "linea" }, "kind", 'unknown policy kind "linea"'],
    [{ kind: "linear", max: 12 }, "min", 'missing field "min"'],
    [{ kind: "linear", max: 12, min: 4, maxx: 1 }, "maxx", 'unknown field "maxx"'],
    [{ kind: "linear", max: "12", min: 4 }, "max", 'field "max" must be a number'],
    [{ kind: "linear", max: 12, min: 4, promptMode: "x" }, "promptMode", "promptMode"],
    [{ kind: "constant", n: 3, warmup: 3 }, "warmup", "below n"],
    [{ kind: "full", n: 3 }, "n", 'unknown field "n"'],
    [{ kind: "earlyexit" }, "inner", 'missing field "inner"'],
    [{ kind: "earlyexit", inner: { kind: "nope" } }, "kind", "nope"],
    [{ kind: "custom", name: "mine" }, "name", "not registered"],
  ];
  for (const [json, key, text] of cases) {
    const e = assertThrows(() => policyFromJson(json), PolicyError, text, JSON.stringify(json));
    assertEquals(e.key, key, e.message);
  }
});

Deno.test("custom policies are found by name in the lookup", () => {
  const mine = customPolicy({
    name: "top-half",
    layerSet: ({ layers }) =>
      Array.from({ length: Math.ceil(layers / 2) }, (_, i) => layers - Math.ceil(layers / 2) + i),
  });
  assertEquals(String(mine), "top-half");
  assertEquals(mine.toJSON(), { kind: "custom", name: "top-half", promptMode: "full" });
  const lookup = { custom: [mine] };
  assertStrictEquals(parsePolicy("top-half", lookup), mine);
  assertStrictEquals(parsePolicy("earlyexit:top-half", lookup).toJSON().kind, "earlyexit");
  assertStrictEquals(policyFromJson(JSON.parse(JSON.stringify(mine)), lookup), mine);
  const e = assertThrows(() => parsePolicy("top-half:x=1", lookup), PolicyError, "takes no keys");
  assertEquals(e.key, "top-half");
  const u = assertThrows(() => parsePolicy("top-halves", lookup), PolicyError, "top-half");
  assertEquals(u.key, "policy");
  assertThrows(
    () => policyFromJson({ kind: "custom", name: "top-half", promptMode: "decay" }, lookup),
    PolicyError,
    'has prompt mode "full"',
  );
  // earlyexit over a custom policy uses its budget with the bottom layers
  const p = plan(parsePolicy("earlyexit:top-half", lookup), {
    layers: 6,
    promptLength: 2,
    maxNewTokens: 3,
  });
  assertEquals(p.sets.slice(2), [[0, 1, 2], [0, 1, 2]]);
  assert(p.sets.slice(0, 2).every((s) => s.length === 6));
});
