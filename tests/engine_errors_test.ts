/**
 * Engine input errors: a prompt that does not fit the position table with `maxNewTokens`
 * is refused with a RangeError naming the prompt index and the lengths (the exact fit
 * runs); a custom policy breaking the nesting invariant is refused with a PlanError naming
 * the first offending column and layer; bad options name the option. Also: the prompt-mode
 * override reaches the policy wrapped by `earlyexit`.
 */
import { assert, assertEquals, assertRejects, assertStringIncludes } from "@std/assert";
import { createCpuBackend } from "../backend/cpu/backend.ts";
import { generate, resolvePolicy } from "../decode/mod.ts";
import { loadWeightsSync, writeRandomCheckpoint } from "../model/mod.ts";
import { customPolicy, earlyExit, linear, PlanError, PolicyError } from "../schedule/mod.ts";
import { loadTokenizer } from "../tokenizer/mod.ts";
import { sharedPath } from "./helpers.ts";

const L = 4, MAX_POS = 32;

async function tinyModel() {
  const dir = Deno.makeTempDirSync({ prefix: "skipdecode-engerr-" });
  try {
    writeRandomCheckpoint(dir, {
      shape: {
        hiddenSize: 32,
        numAttentionHeads: 4,
        ffnDim: 48,
        vocabSize: 101,
        numHiddenLayers: L,
        maxPositionEmbeddings: MAX_POS,
      },
      seed: 8,
    });
    const backend = createCpuBackend(loadWeightsSync(dir));
    const tokenizer = await loadTokenizer(sharedPath("tokenizers/opt"));
    return { backend, tokenizer, config: backend.config };
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
}

const model = await tinyModel();
const ids = (n: number) => Array.from({ length: n }, (_, i) => (i === 0 ? 2 : 3 + (i % 90)));

Deno.test("engine: prompts that overflow the position table name the prompt and lengths", async () => {
  // 28 + 5 - 1 = 32 positions: exactly max_position_embeddings, runs.
  const ok = await generate(model, [ids(3), ids(28)], { maxNewTokens: 5, stopAtEos: false });
  assertEquals(ok.results.map((r) => r.ids.length), [5, 5]);
  console.log("  prompt of 28 ids + 5 new tokens (32 positions, table 32): ran");
  // 28 + 6 - 1 = 33 > 32
  const e1 = await assertRejects(
    () => generate(model, [ids(3), ids(28)], { maxNewTokens: 6 }),
    RangeError,
  );
  for (
    const part of ["prompt 1", "28 tokens", "maxNewTokens 6", "33", "32", "max_position_embeddings"]
  ) {
    assertStringIncludes(e1.message, part);
  }
  console.log(`  rejected: ${e1.message}`);
  // A prompt longer than the table on its own, in the third position of the list.
  const e2 = await assertRejects(
    () => generate(model, [ids(3), ids(4), ids(40)], { maxNewTokens: 1 }),
    RangeError,
  );
  assertStringIncludes(e2.message, "prompt 2 has 40 tokens");
  assertStringIncludes(e2.message, "max_position_embeddings");
  console.log(`  rejected: ${e2.message}`);
});

Deno.test("engine: text prompt longer than tiny-opt-e2e's 256 positions is refused", async () => {
  // The real model's table has 256 positions; a long text prompt must fail before running.
  const tok = model.tokenizer;
  const text = "name[The Eagle], area[riverside]\n".repeat(30);
  const n = tok.encode(text).length;
  assert(n > 256, `prompt should exceed 256 tokens, has ${n}`);
  const big = { ...model, config: { ...model.config, maxPositionEmbeddings: 256 } };
  const e = await assertRejects(
    () => generate(big, ["short\n", text], { maxNewTokens: 8 }),
    RangeError,
  );
  assertStringIncludes(e.message, `prompt 1 has ${n} tokens`);
  assertStringIncludes(e.message, "256");
  console.log(`  rejected: ${e.message}`);
});

Deno.test("engine: a custom policy breaking the nesting invariant is a PlanError at its column and layer", async () => {
  // Prompt columns run all layers (prompt mode full). Generated columns j = c - P:
  // j = 0, 1 run only the top layer, j = 2 runs layer 0 again -> column P + 2, layer 0.
  const grows = customPolicy({
    name: "grows-back",
    layerSet: ({ column, promptLength, layers }) =>
      column - promptLength === 2 ? [0, layers - 1] : [layers - 1],
  });
  const P = 6;
  const e = await assertRejects(
    () => generate(model, [ids(P), ids(3)], { policy: grows, maxNewTokens: 8 }),
    PlanError,
  );
  assertEquals(e.column, P + 2);
  assertEquals(e.layer, 0);
  assertStringIncludes(e.message, `column ${P + 2} runs layer 0`);
  console.log(`  rejected: ${e.message} (column ${e.column}, layer ${e.layer})`);
  // The same policy is fine when generation stops before the offending column.
  const short = await generate(model, [ids(P)], {
    policy: grows,
    maxNewTokens: 3,
    stopAtEos: false,
  });
  assertEquals(short.results[0].layers, [L, 1, 1]);
});

Deno.test("engine: bad options name the option", async () => {
  const cases: [Record<string, unknown>, typeof RangeError | typeof PolicyError, string][] = [
    [{ maxNewTokens: 0 }, RangeError, "maxNewTokens"],
    [{ maxNewTokens: 2.5 }, RangeError, "maxNewTokens"],
    [{ batchSize: 0 }, RangeError, "batchSize"],
    [{ policy: "linear:max=9,min=2" }, PolicyError, "max"],
    [{ policy: "linear:max=4" }, PolicyError, "min"],
    [{ policy: "nonsense" }, PolicyError, "nonsense"],
    [{ sampling: { temperature: 0.8, topP: 1.5 } }, RangeError, "sampling.topP"],
  ];
  for (const [opts, cls, part] of cases) {
    const e = await assertRejects(
      () => generate(model, [ids(3)], { maxNewTokens: 4, ...opts }),
      cls,
    );
    assertStringIncludes(e.message, part);
    console.log(`  ${JSON.stringify(opts)} rejected: ${e.message}`);
  }
  const e = await assertRejects(() => generate(model, [[]], { maxNewTokens: 4 }), RangeError);
  assertStringIncludes(e.message, "prompt 0 is empty");
  const e2 = await assertRejects(
    () => generate(model, [ids(3), [2, 500]], { maxNewTokens: 4 }),
    RangeError,
  );
  assertStringIncludes(e2.message, "prompt 1, token 1: id 500");
  console.log(`  rejected: ${e2.message}`);
});

Deno.test("engine: promptMode override applies to plain and earlyexit-wrapped policies", async () => {
  assertEquals(resolvePolicy("linear:max=4,min=2", "decay").promptMode, "decay");
  const ee = resolvePolicy("earlyexit:linear:max=4,min=2", "decay");
  assertEquals(ee.promptMode, "decay");
  assertEquals(String(ee), "earlyexit:linear:max=4,min=2,warmup=0,prompt=decay");
  const custom = customPolicy({ name: "top", layerSet: ({ layers }) => [layers - 1] });
  const e = assertRejectsSync(() => resolvePolicy(earlyExit(custom), "decay"));
  assertStringIncludes(e.message, 'custom policy "top"');
  // The override changes the plan the engine runs: prompt columns now decay too.
  const out = await generate(model, [ids(10)], {
    policy: earlyExit(linear({ max: 4, min: 2 })),
    promptMode: "decay",
    maxNewTokens: 4,
    stopAtEos: false,
  });
  assertEquals(out.plans[0].policy.promptMode, "decay");
  assert(out.plans[0].sets[8].length < L, "prompt column 8 should not run all layers under decay");
  console.log(`  earlyexit + decay plan sets: ${JSON.stringify(out.plans[0].sets)}`);
});

function assertRejectsSync(fn: () => unknown): Error {
  try {
    fn();
  } catch (e) {
    return e as Error;
  }
  throw new Error("expected an error");
}

Deno.test("engine: an out-of-vocabulary id in a later batch is refused before any batch runs", async () => {
  let decodes = 0;
  const counting = {
    ...model,
    backend: {
      ...model.backend,
      name: model.backend.name,
      config: model.backend.config,
      decode: (req: Parameters<typeof model.backend.decode>[0]) => {
        decodes++;
        return model.backend.decode(req);
      },
      forward: model.backend.forward.bind(model.backend),
      openRows: model.backend.openRows.bind(model.backend),
      dispose: () => {},
    },
  };
  const e = await assertRejects(
    () => generate(counting, [ids(4), ids(4), [2, 5, 101]], { batchSize: 1, maxNewTokens: 2 }),
    RangeError,
  );
  assertStringIncludes(e.message, "prompt 2, token 2: id 101");
  assertEquals(decodes, 0, "no batch may run before the whole input is checked");
  console.log(`  rejected up front: ${e.message}`);
});
