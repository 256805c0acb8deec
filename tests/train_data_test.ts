/**
 * Training data (E2E pairs, plain text, length batches, held-out split), policies (fixed,
 * random linear plans) and batches (left padding, targets, masks), and the configuration.
 */
import { assert, assertEquals, assertLess, assertThrows } from "@std/assert";
import { loadTokenizer } from "../tokenizer/mod.ts";
import { seededRandom } from "../model/random.ts";
import { e2eExamples, lengthBatches, splitItems, textExamples } from "../train/data.ts";
import {
  parsePolicySource,
  planExamples,
  policySourceToString,
  RANDOM_PLAN_DEFAULTS,
  randomPolicy,
} from "../train/policies.ts";
import { collate, exampleSets } from "../train/batch.ts";
import { resolveTrainConfig } from "../train/config.ts";
import { checkNesting, parsePolicy, plan } from "../schedule/mod.ts";
import { sharedPath } from "./train_helpers.ts";

const tok = await loadTokenizer(sharedPath("tokenizers/opt"));

Deno.test("E2E pairs: BOS + '<mr>\\n' prompt, reference + EOS target", () => {
  const items = [{
    mr: "name[Alimentum], area[city centre]",
    refs: ["Alimentum is in the city centre .", "x"],
  }];
  const { examples, dropped } = e2eExamples(items, tok);
  assertEquals(dropped, 0);
  assertEquals(examples.length, 2);
  const [e] = examples;
  assertEquals(e.prompt, tok.encode("name[Alimentum], area[city centre]\n"));
  assertEquals(e.prompt[0], 2);
  assertEquals(tok.decode(e.prompt.slice(1)), "name[Alimentum], area[city centre]\n");
  assertEquals(e.target.at(-1), 2);
  assertEquals(tok.decode(e.target), "Alimentum is in the city centre .");
  const short = e2eExamples(items, tok, e.prompt.length + 2); // "x" + EOS fits, the other not
  assertEquals(short.dropped, 1);
  assertEquals(tok.decode(short.examples[0].target), "x");
});

Deno.test("plain text: documents cut into windows, every token but BOS a target", () => {
  const text = "The first document is here.\n\nA second one, a little longer than the first.\n";
  const ex = textExamples(text, tok, 6);
  const ids = [
    ...tok.encode("The first document is here.", { addBos: false }),
    2,
    ...tok.encode("A second one, a little longer than the first.", { addBos: false }),
    2,
  ];
  assertEquals(ex.flatMap((e) => e.target), ids);
  assert(ex.every((e) => e.prompt.length === 1 && e.prompt[0] === 2 && e.target.length <= 5));
  assertThrows(() => textExamples(text, tok, 1), RangeError, "maxLength");
});

Deno.test("length batches: every example once per epoch, similar lengths together", () => {
  const ex = Array.from(
    { length: 23 },
    (_, i) => ({ prompt: [2], target: Array(1 + (i * 7) % 23).fill(5) }),
  );
  const batches = lengthBatches(ex, 4, seededRandom(3));
  assertEquals(batches.length, 6);
  assertEquals(new Set(batches.flat()).size, 23);
  for (const b of batches) {
    const lens = b.map((e) => e.target.length);
    assertLess(Math.max(...lens) - Math.min(...lens), 4); // 23 distinct lengths, 4 per batch
  }
  // reproducible and shuffled differently by another seed
  assertEquals(lengthBatches(ex, 4, seededRandom(3)), batches);
  const other = lengthBatches(ex, 4, seededRandom(4));
  assert(other.some((b, i) => b !== batches[i] && b[0] !== batches[i][0]));
});

Deno.test("held-out split is by item, disjoint and reproducible", () => {
  const items = Array.from({ length: 30 }, (_, i) => ({ mr: `m${i}`, refs: ["a", "b"] }));
  const s = splitItems(items, 7, 1);
  assertEquals(s.heldOut.length, 7);
  assertEquals(s.train.length, 23);
  assertEquals(new Set([...s.train, ...s.heldOut]).size, 30);
  assertEquals(splitItems(items, 7, 1).heldOut, s.heldOut);
  assertThrows(() => splitItems(items, 31, 1), RangeError, "hold out 31 of 30");
});

Deno.test("random linear plans: valid and nested for any draw, full share respected", () => {
  const r = seededRandom(9);
  for (const L of [12, 5, 3]) {
    let fulls = 0;
    for (let i = 0; i < 400; i++) {
      const p = randomPolicy(RANDOM_PLAN_DEFAULTS, L, r);
      if (p.name === "full") {
        fulls++;
        continue;
      }
      const pl = plan(p, { layers: L, promptLength: 7, maxNewTokens: 70 });
      checkNesting(pl.sets);
      const j = p.toJSON() as { max: number; min: number; warmup: number; horizon: number };
      assert(j.max >= Math.ceil(L / 2) && j.max <= L, String(p));
      assert(j.warmup <= 2 && j.warmup < j.min, String(p));
      assert([16, 32, 48, 64].includes(j.horizon), String(p));
    }
    assert(fulls > 60 && fulls < 140, `${fulls} of 400 full, expected about 100`);
  }
});

Deno.test("policy sources: parse, print, and plan examples as inference would", () => {
  const src = parsePolicySource("random:full=0,max=6..8,min=3,warmup=1..1,horizon=16/32");
  assertEquals(src.kind, "random");
  assertEquals(policySourceToString(src), "random:full=0,max=6..8,min=3,warmup=1..1,horizon=16/32");
  assertThrows(() => parsePolicySource("random:speed=2"), RangeError, 'unknown field "speed"');
  assertThrows(() => parsePolicySource("random:full=2"), RangeError, "full");
  const fixed = parsePolicySource("linear:max=6,min=2,warmup=1,horizon=32");
  assertEquals(fixed.kind, "fixed");
  const ex = [{ prompt: [2, 5, 6, 7], target: Array(40).fill(9) }];
  const [p] = planExamples(ex, fixed, 12, Math.random);
  // the target columns get the budgets inference gives generated tokens 0..R-1
  const pl = plan(parsePolicy("linear:max=6,min=2,warmup=1,horizon=32"), {
    layers: 12,
    promptLength: 4,
    maxNewTokens: 40,
  });
  assertEquals(p.sets, pl.sets);
  assertEquals(p.sets.length, 4 + 40 - 1);
  // the plan's layer speedup is about 3x
  assert(pl.layerSpeedup > 2.5 && pl.layerSpeedup < 3.5, String(pl.layerSpeedup));
});

Deno.test("collate: left padding, positions, targets on target tokens only, masks", () => {
  const pol = parsePolicy("linear:max=3,min=1,horizon=2");
  const a = { prompt: [2, 10, 11], target: [12, 13, 2], sets: exampleSets(pol, 3, 3, 3) };
  const b = { prompt: [2, 20], target: [2], sets: exampleSets(pol, 3, 2, 1) };
  const batch = collate([a, b], 3, 1);
  assertEquals(batch.length, 5);
  assertEquals([...batch.tokens], [2, 10, 11, 12, 13, 1, 1, 1, 2, 20]);
  assertEquals([...batch.positions], [0, 1, 2, 3, 4, -1, -1, -1, 0, 1]);
  assertEquals([...batch.targets], [-1, -1, 12, 13, 2, -1, -1, -1, -1, 2]);
  assertEquals(batch.targetCount, 4);
  // a's last column has budget 1 (generated index 1, horizon 2): the top layer only;
  // padding columns run nothing
  const layer = (l: number) => [...batch.active.subarray(l * 10, l * 10 + 10)];
  assertEquals(layer(0), [1, 1, 1, 1, 0, 0, 0, 0, 1, 1]);
  assertEquals(layer(2), [1, 1, 1, 1, 1, 0, 0, 0, 1, 1]);
  assertThrows(
    () => collate([{ prompt: [2], target: [2], sets: [[7]] }], 3, 1),
    RangeError,
    "example 0, column 0: layer 7",
  );
  assertThrows(
    () => collate([{ prompt: [], target: [2], sets: [] }], 3, 1),
    RangeError,
    "empty prompt",
  );
});

Deno.test("config: defaults, merge order, and errors naming the field", () => {
  const c = resolveTrainConfig([{ model: "m", out: "o", steps: 5 }, { steps: 7, lr: 3e-4 }]);
  assertEquals([c.steps, c.lr, c.batchSize, c.policy], [7, 3e-4, 8, "random"]);
  assertThrows(
    () => resolveTrainConfig([{ model: "m", out: "o", stpes: 5 }]),
    RangeError,
    '"stpes"',
  );
  assertThrows(() => resolveTrainConfig([{ model: "m", out: "o", steps: 0 }]), RangeError, "steps");
  assertThrows(
    () => resolveTrainConfig([{ model: "m", out: "o", dtype: "F8" }]),
    RangeError,
    "dtype",
  );
  assertThrows(() => resolveTrainConfig([{ out: "o" }]), RangeError, '"model" is required');
});
