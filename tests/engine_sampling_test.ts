/**
 * Seeded sampling through the engine on tiny-opt-e2e (CPU backend), temperature 0.8,
 * topK 40, topP 0.9: the same seed reproduces the same tokens, another seed gives other
 * tokens, and a row's samples do not depend on batch composition (the generator is keyed by
 * `(seed, row index in the batch, step)`, so the same prompt at the same row index of two
 * different batches, with other companions and other padding, gives the same tokens).
 */
import { assert, assertEquals } from "@std/assert";
import { generate, loadModel } from "../decode/mod.ts";
import type { SamplingOptions } from "../backend/types.ts";
import { sharedPath } from "./helpers.ts";

const model = await loadModel(sharedPath("models/tiny-opt-e2e"), {
  backend: "cpu",
  onNote: () => {},
});
const X = "name[Cotto], eatType[coffee shop], food[Chinese], area[city centre]\n";
const Y = "name[Aromi], eatType[pub], customer rating[average]\n";
const Z = "name[The Eagle], eatType[coffee shop], food[Japanese], priceRange[less than £20], " +
  "customer rating[low], area[riverside], familyFriendly[yes], near[Burger King]\n";
const W = "name[Zizzi], near[The Sorrento]\n";
const SAMPLING: SamplingOptions = { temperature: 0.8, topK: 40, topP: 0.9, seed: 7 };
const N = 16;

const run = (prompts: string[], sampling: SamplingOptions, batchSize = 8) =>
  generate(model, prompts, { sampling, maxNewTokens: N, batchSize, policy: "full" });

Deno.test("sampling: same seed reproduces, another seed differs, greedy differs", async () => {
  const a = await run([X, Y, Z], SAMPLING);
  const again = await run([X, Y, Z], SAMPLING);
  a.results.forEach((r, k) =>
    assertEquals(again.results[k].ids, r.ids, `prompt ${k} seed 7 rerun`)
  );
  const other = await run([X, Y, Z], { ...SAMPLING, seed: 8 });
  const greedy = await run([X, Y, Z], {});
  const differSeed = a.results.filter((r, k) => r.ids.join() !== other.results[k].ids.join());
  const differGreedy = a.results.filter((r, k) => r.ids.join() !== greedy.results[k].ids.join());
  for (const [k, r] of a.results.entries()) {
    console.log(`  seed 7 [${k}]: ${JSON.stringify(r.text)}`);
    console.log(`  seed 8 [${k}]: ${JSON.stringify(other.results[k].text)}`);
    console.log(`  greedy [${k}]: ${JSON.stringify(greedy.results[k].text)}`);
  }
  assert(differSeed.length > 0, "seed 8 gave exactly the tokens of seed 7 for every prompt");
  assert(differGreedy.length > 0, "sampling gave exactly the greedy tokens for every prompt");
  console.log(
    `  seed 7 twice: identical; seed 8 differs on ${differSeed.length}/3 prompts, ` +
      `greedy differs on ${differGreedy.length}/3`,
  );
});

Deno.test("sampling: a row's samples do not depend on the rest of its batch", async () => {
  const ref = await run([X, Y, Z], SAMPLING); // X row 0, Y row 1 (padded to Z's length)
  // X at row 0 and Y at row 1 again, with other companions and other padding:
  const b1 = await run([X, Y], SAMPLING); // no Z: shorter padded length
  const b2 = await run([W, Z, X, Y], SAMPLING, 2); // second batch [X, Y]
  const b3 = await run([X, W], SAMPLING); // X row 0 beside a short prompt
  const b4 = await run([Z, Y, W], SAMPLING); // Y row 1 beside the longest prompt
  assertEquals(b1.results[0].ids, ref.results[0].ids, "X row 0: [X, Y] vs [X, Y, Z]");
  assertEquals(b1.results[1].ids, ref.results[1].ids, "Y row 1: [X, Y] vs [X, Y, Z]");
  assertEquals(b2.results[2].ids, ref.results[0].ids, "X row 0 of the second batch");
  assertEquals(b2.results[3].ids, ref.results[1].ids, "Y row 1 of the second batch");
  assertEquals(b3.results[0].ids, ref.results[0].ids, "X row 0: [X, W]");
  assertEquals(b4.results[1].ids, ref.results[1].ids, "Y row 1: [Z, Y, W]");
  // The key is the row index: the same prompt at another row samples differently.
  const moved = await run([Y, X], SAMPLING);
  const same = moved.results[1].ids.join() === ref.results[0].ids.join() &&
    moved.results[0].ids.join() === ref.results[1].ids.join();
  console.log(
    `  X (row 0) and Y (row 1) sampled identically in [X,Y,Z], [X,Y], 2nd batch of [W,Z | X,Y], ` +
      `[X,W], [Z,Y,W]; swapped rows [Y,X] ${same ? "happen to match" : "differ"} (key = row index)`,
  );
});
