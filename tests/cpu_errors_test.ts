/**
 * Bad input to the CPU backend gets a clear `RangeError` naming what is at fault (the
 * column and layer of a plan, the prompt and token, the field), never a silent wrong
 * result: plans with too few columns, empty sets, layers outside the model, sequences
 * longer than the position table (and the boundary that still fits), out-of-vocabulary
 * ids, empty rows, bad `maxNewTokens` and sampling options.
 */
import { assertEquals, assertRejects } from "@std/assert";
import { type CpuBackend, createCpuBackend } from "../backend/cpu/backend.ts";
import type { DecodeRequest } from "../backend/types.ts";
import { loadWeightsSync, writeRandomCheckpoint } from "../model/mod.ts";
import { fullPlanSets } from "../schedule/mod.ts";

const L = 4, MAX_POS = 24, V = 61;

function makeBackend(): CpuBackend {
  const dir = Deno.makeTempDirSync({ prefix: "skipdecode-cpuerr-" });
  try {
    writeRandomCheckpoint(dir, {
      shape: {
        hiddenSize: 24,
        numAttentionHeads: 2,
        ffnDim: 40,
        vocabSize: V,
        numHiddenLayers: L,
        maxPositionEmbeddings: MAX_POS,
      },
      seed: 2,
    });
    return createCpuBackend(loadWeightsSync(dir));
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
}

const backend = makeBackend();
const base: DecodeRequest = {
  prompts: [[2, 10, 11], [2, 12]],
  maxNewTokens: 3,
  sets: fullPlanSets(L, 5), // P + N - 1 = 3 + 3 - 1 = 5 columns
  padTokenId: 1,
};

/** Asserts `decode(req)` rejects with a RangeError whose message includes every part. */
async function rejectsWith(req: Partial<DecodeRequest>, ...parts: string[]): Promise<void> {
  const err = await assertRejects(() => backend.decode({ ...base, ...req }), RangeError);
  for (const p of parts) {
    if (!err.message.includes(p)) {
      throw new Error(`error message ${JSON.stringify(err.message)} lacks ${JSON.stringify(p)}`);
    }
  }
  console.log(`  rejected: ${err.message}`);
}

Deno.test("CPU backend: the base request runs (the error cases below differ in one field)", async () => {
  const out = await backend.decode(base);
  assertEquals(out.tokens.map((t) => t.length), [3, 3]);
  assertEquals(out.promptLength, 3);
});

Deno.test("CPU backend: plan errors name the column (and layer)", async () => {
  await rejectsWith({ sets: fullPlanSets(L, 4) }, "plan covers 4 columns", "5 are needed");
  await rejectsWith({ sets: [[0, 1, 2, 3], [0, 1, 2, 3], [], [3], [3]] }, "plan column 2");
  await rejectsWith(
    { sets: [[0, 1, 2, 3], [0, 1, 2, 3], [0, 1, 2, 3], [1, 4], [1]] },
    "plan column 3",
    "layer 4",
    "0..3",
  );
  await rejectsWith({ sets: [[0, 1, 2, 3], [-1, 0], [0], [0], [0]] }, "plan column 1", "layer -1");
  await rejectsWith({ sets: [[0, 1, 2, 3], [0, 1.5], [0], [0], [0]] }, "plan column 1", "1.5");
  // forward needs one set per padded column too.
  const err = await assertRejects(
    () => backend.forward({ rows: [[2, 3, 4, 5]], sets: fullPlanSets(L, 3), padTokenId: 1 }),
    RangeError,
  );
  assertEquals(err.message, "plan covers 3 columns but 4 are needed");
  console.log(`  forward rejected: ${err.message}`);
});

Deno.test("CPU backend: position table overflow is refused, the exact fit runs", async () => {
  // A 20-token prompt with 5 new tokens needs 24 positions: exactly the table (0..23).
  const fits = Array.from({ length: 20 }, (_, i) => (i === 0 ? 2 : 3 + i));
  const out = await backend.decode({
    ...base,
    prompts: [fits],
    maxNewTokens: 5,
    sets: fullPlanSets(L, 24),
  });
  assertEquals(out.tokens[0].length, 5);
  console.log(`  20-token prompt + 5 new tokens = 24 positions = max_position_embeddings: ran`);
  await rejectsWith(
    { prompts: [fits], maxNewTokens: 6, sets: fullPlanSets(L, 25) },
    "25 columns",
    "max_position_embeddings = 24",
  );
  const long = [...fits, 50, 51, 52, 53, 54, 55];
  const err = await assertRejects(
    () => backend.forward({ rows: [long], sets: fullPlanSets(L, 26), padTokenId: 1 }),
    RangeError,
  );
  assertEquals(err.message.includes("max_position_embeddings = 24"), true, err.message);
});

Deno.test("CPU backend: input errors name the prompt, token or field", async () => {
  await rejectsWith({ prompts: [[2, 10, 11], [2, V]] }, "prompt 1, token 1", `id ${V}`, "vocab");
  await rejectsWith({ prompts: [[2, -3, 11]] }, "prompt 0, token 1", "id -3");
  await rejectsWith({ prompts: [[2, 10, 1.5]] }, "prompt 0, token 2", "1.5");
  await rejectsWith({ prompts: [[2, 10, 11], []] }, "prompt 1 is empty");
  await rejectsWith({ prompts: [] }, "no rows");
  await rejectsWith({ maxNewTokens: 0 }, "maxNewTokens");
  await rejectsWith({ maxNewTokens: 1.5 }, "maxNewTokens");
  await rejectsWith({ sampling: { temperature: -1 } }, "sampling.temperature");
  await rejectsWith({ sampling: { temperature: 1, topK: 2.5 } }, "sampling.topK");
  await rejectsWith({ sampling: { temperature: 1, topP: 0 } }, "sampling.topP");
  const err = await assertRejects(
    () => backend.forward({ rows: [[2, 3], [2, 99]], sets: fullPlanSets(L, 2), padTokenId: 1 }),
    RangeError,
  );
  assertEquals(err.message.startsWith("row 1, token 1: id 99"), true, err.message);
});
