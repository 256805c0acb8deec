/**
 * `schedule/active.ts`, the one owner of "which columns / rows run layer l": the column
 * helpers agree with a brute-force reading of random nested and non-nested plans, the packed
 * training masks match a direct loop, the per-row token selection keeps its fixed order, and
 * the per-slot nesting tracker refuses, commits, truncates, releases and counts rewrites.
 */
import { assert, assertEquals, assertThrows } from "@std/assert";
import {
  columnsRunning,
  layerCapacity,
  layerExtent,
  layerPrefix,
  NestingTracker,
  packActive,
  parsePolicy,
  plan,
  tokensRunning,
} from "../schedule/mod.ts";
import { intIn, rng } from "./helpers.ts";

/** Random sets over `L` layers and `C` columns; nested when asked (each drops layers now and then). */
function randomSets(r: () => number, L: number, C: number, nested: boolean): number[][] {
  const sets: number[][] = [];
  let cur = [...Array(L).keys()];
  for (let c = 0; c < C; c++) {
    if (nested) {
      if (cur.length > 1 && r() < 0.4) {
        cur = cur.filter((_, k) => k !== intIn(r, 0, cur.length - 1));
      }
      sets.push([...cur]);
    } else {
      const s = [...Array(L).keys()].filter(() => r() < 0.5);
      sets.push(s.length ? s : [intIn(r, 0, L - 1)]);
    }
  }
  return sets;
}

Deno.test("active: column helpers agree with brute force on random plans", () => {
  const r = rng(3);
  for (let trial = 0; trial < 200; trial++) {
    const L = intIn(r, 1, 9), C = intIn(r, 1, 17), nested = trial % 2 === 0;
    const sets = randomSets(r, L, C, nested);
    const c0 = intIn(r, 0, C - 1), c1 = intIn(r, c0, C);
    for (let l = 0; l < L; l++) {
      const runs = sets.map((s) => s.includes(l));
      assertEquals(
        columnsRunning(sets, l, c0, c1),
        [...Array(c1 - c0).keys()].map((i) => c0 + i).filter((c) => runs[c]),
      );
      const prefix = runs.indexOf(false) === -1 ? C : runs.indexOf(false);
      assertEquals(layerPrefix(sets, l), prefix);
      assertEquals(layerExtent(sets, l), runs.lastIndexOf(true) + 1);
      assertEquals(layerCapacity(sets, L)[l], runs.filter(Boolean).length);
      if (nested) assertEquals(layerCapacity(sets, L)[l], prefix, "nested: a prefix");
    }
  }
  const p = plan(parsePolicy("linear:max=12,min=4,warmup=1"), {
    layers: 12,
    promptLength: 5,
    maxNewTokens: 20,
  });
  assertEquals(p.prefix, layerCapacity(p.sets, 12));
});

Deno.test("active: packActive matches a direct loop (indices, row starts and ends, longest row)", () => {
  const r = rng(4);
  for (let trial = 0; trial < 100; trial++) {
    const rows = intIn(r, 1, 5), length = intIn(r, 1, 11);
    const mask = Uint8Array.from({ length: rows * length }, () => (r() < 0.6 ? 1 : 0));
    const p = packActive(mask, rows, length);
    let j = 0, tmax = 0;
    for (let b = 0; b < rows; b++) {
      const mine = [...Array(length).keys()].filter((c) => mask[b * length + c]);
      tmax = Math.max(tmax, mine.length);
      mine.forEach((c) => {
        assertEquals(p.idx[j], b * length + c);
        assertEquals(p.start[j], j - mine.indexOf(c));
        assertEquals(p.rowEnd[j], j - mine.indexOf(c) + mine.length - 1);
        j++;
      });
    }
    assertEquals(p.idx.length, j);
    assertEquals(p.tmax, tmax);
  }
});

Deno.test("active: tokensRunning lists (entry, token) pairs entry by entry, tokens in order", () => {
  const work = [
    { sets: [[0, 1, 2], [1, 2], [2]] },
    { sets: [[2]] },
    { sets: [[0, 2], [0, 2]] },
  ];
  assertEquals(tokensRunning(work, 0), [
    { entry: 0, token: 0 },
    { entry: 2, token: 0 },
    { entry: 2, token: 1 },
  ]);
  assertEquals(tokensRunning(work, 1), [{ entry: 0, token: 0 }, { entry: 0, token: 1 }]);
  assertEquals(tokensRunning(work, 2).length, 6);
});

Deno.test("active: the nesting tracker refuses before any change, commits, truncates, releases, counts", () => {
  const t = new NestingTracker(3, 4, 10);
  const all = [0, 1, 2, 3];
  t.check([{ slot: 1, sets: [all, all, [0, 3]] }]);
  t.commit([{ slot: 1, sets: [all, all, [0, 3]] }]);
  assertEquals([t.length(1), t.kvLength(1, 0), t.kvLength(1, 1), t.kvLength(1, 3)], [3, 3, 2, 3]);
  // position 3 may not run layer 2 (position 2 skipped it), and nothing changes
  const e = assertThrows(() => t.check([{ slot: 1, sets: [[0, 2, 3]] }]), RangeError);
  assert(e.message.startsWith("slot 1, position 3: runs layer 2"), e.message);
  assertEquals(t.length(1), 3);
  // a slot in range and an integer
  assertThrows(
    () => t.check([{ slot: 3, sets: [all] }]),
    RangeError,
    "slot 3 is not an integer in 0..2",
  );
  assertThrows(() => t.length(-1), RangeError);
  // KV writes: rewrites are counted from the written entries, independent of the prefixes
  for (let p = 0; p < 3; p++) for (const l of [0, 3]) t.noteWrite(1, l, p);
  t.noteWrite(1, 0, 1);
  assertEquals(t.counters().kvWrites, 7);
  assertEquals(t.counters().kvRewrites, 1, "position 1 of layer 0 written twice");
  assertEquals(t.counters().layerSteps, 10);
  // truncate keeps a prefix at every layer and forgets the written entries past it
  t.truncate(1, 1);
  assertEquals([t.length(1), t.kvLength(1, 0), t.kvLength(1, 1)], [1, 1, 1]);
  t.noteWrite(1, 0, 1);
  assertEquals(t.counters().kvRewrites, 1, "rerun after truncate is no rewrite");
  t.check([{ slot: 1, sets: [[1, 2, 3]] }]); // position 1 may run layers 1..3 again
  assertThrows(() => t.truncate(1, 2), RangeError, "length must be an integer in 0..1");
  t.release(1);
  assertEquals([t.length(1), t.kvLength(1, 3)], [0, 0]);
  t.check([{ slot: 1, sets: [[2]] }]); // a new sequence: position 0 may run any set
});
