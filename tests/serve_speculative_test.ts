/**
 * Speculative requests in the continuous-batching scheduler (`CompletionRequest.speculative`,
 * serve/scheduler.ts) on the CPU backend's RowBatch with the tiny checkpoint: mixed with plain
 * requests of other policies in per-row and static admission, every speculative request's
 * tokens equal the full model's solo decode (whatever its draft policy and K), every plain
 * one its own solo decode; drafts are made and some accepted; greedy-only, aligned admission
 * and bad K are refused in one line. Over HTTP, the extension field `speculative` of
 * `POST /v1/completions` gives the full model's text and the drafting figures, and a bad value
 * is a 400 naming `speculative`.
 */
import { assert, assertEquals, assertThrows } from "@std/assert";
import { fileURLToPath } from "node:url";
import { generate, loadModel } from "../decode/mod.ts";
import {
  type AdmissionMode,
  type CompletionRequest,
  Scheduler,
  startServer,
} from "../serve/mod.ts";
import { BUNDLED } from "./helpers.ts";

const model = await loadModel(fileURLToPath(new URL("models/tiny-opt-e2e", BUNDLED)), {
  backend: "cpu",
  onNote: () => {},
});
const PROMPTS = [
  "name[Alimentum], area[city centre]\n",
  "name[The Eagle], food[French]\n",
  "name[Zizzi]\n",
  "name[Cotto], eatType[coffee shop], food[Chinese], area[city centre]\n",
  "name[Aromi], eatType[pub], customer rating[average]\n",
  "name[Wildwood], eatType[pub], food[Indian]\n",
];
// [draft policy, K] of each request; undefined K: a plain request under that policy
const KINDS: [string, number | undefined][] = [
  ["linear:max=12,min=4,warmup=1", 3],
  ["earlyexit:constant:n=6", 1],
  ["constant:n=8,warmup=1", 8],
  ["linear:max=12,min=4,warmup=1", undefined],
  ["full", 2],
  ["powerlaw:max=12,min=3,warmup=1,alpha=1,tau=2", 5],
];

async function solo(prompt: string, policy: string, n: number): Promise<number[]> {
  return (await generate(model, [prompt], { policy, maxNewTokens: n, batchSize: 1 }))
    .results[0].ids;
}

for (const mode of ["per-row", "static"] as AdmissionMode[]) {
  Deno.test(`serve speculative: ${mode} admission, speculative rows equal full's solo decode`, async () => {
    const scheduler = new Scheduler(model, { capacity: 3, mode });
    const n = [14, 9, 20, 12, 7, 16];
    const handles = PROMPTS.map((prompt, i) => {
      const [policy, speculative] = KINDS[i];
      const req: CompletionRequest = { prompt, maxTokens: n[i], policy, speculative };
      return scheduler.submit(req);
    });
    const done = await Promise.all(handles.map((h) => h.done));
    let drafted = 0, accepted = 0;
    for (const [i, c] of done.entries()) {
      const [policy, k] = KINDS[i];
      const want = await solo(PROMPTS[i], k === undefined ? policy : "full", n[i]);
      assertEquals(c.ids, want, `request ${i} (${policy}, K ${k})`);
      if (k !== undefined) {
        assertEquals(c.speculative!.k, k);
        assert(c.layers.every((l) => l === 12), "speculative tokens are full-depth tokens");
        drafted += c.speculative!.drafted;
        accepted += c.speculative!.accepted;
      } else assertEquals(c.speculative, undefined);
    }
    console.log(`${mode}: ${accepted}/${drafted} drafts accepted`);
    assert(accepted > 0 && drafted > accepted, "some drafts accepted, some rejected");
    await scheduler.close();
  });
}

Deno.test("serve speculative: bad speculative requests are refused in one line", async () => {
  const perRow = new Scheduler(model, { capacity: 2 });
  const base = { prompt: "name[Zizzi]\n", maxTokens: 4 };
  for (const k of [0, 1.5, 256]) {
    const e = assertThrows(() => perRow.submit({ ...base, speculative: k }), RangeError);
    assert(e.message.includes("draft length K must be an integer from 1 to 255"), e.message);
  }
  assertThrows(
    () => perRow.submit({ ...base, speculative: 2, sampling: { temperature: 0.5 } }),
    RangeError,
    "speculative: greedy only",
  );
  const aligned = new Scheduler(model, { capacity: 2, mode: "aligned" });
  assertThrows(
    () => aligned.submit({ ...base, speculative: 2 }),
    RangeError,
    "not with aligned admission",
  );
  await perRow.close();
  await aligned.close();
});

Deno.test("serve speculative: POST /v1/completions with speculative equals full; bad values are 400", async () => {
  const post = (url: string, body: unknown) =>
    fetch(`${url}/v1/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "tiny", ...body as object }),
    });
  const s = startServer({
    scheduler: new Scheduler(model, { capacity: 4 }),
    tokenizer: model.tokenizer,
    config: model.config,
    modelName: "tiny",
    port: 0,
  });
  const aligned = startServer({
    scheduler: new Scheduler(model, { capacity: 2, mode: "aligned" }),
    tokenizer: model.tokenizer,
    config: model.config,
    modelName: "tiny",
    port: 0,
  });
  try {
    const prompt = [PROMPTS[0], PROMPTS[3]];
    const res = await post(s.url, {
      prompt,
      max_tokens: 12,
      policy: "constant:n=8,warmup=1",
      speculative: 4,
    });
    assertEquals(res.status, 200);
    const j = await res.json();
    const full = await generate(model, prompt, { maxNewTokens: 12, batchSize: 1 });
    assertEquals(
      j.choices.map((c: { text: string }) => c.text),
      full.results.map((r) => r.text),
    );
    assertEquals(j.skipdecode.speculative.length, 2);
    for (const sp of j.skipdecode.speculative) {
      assertEquals(sp.k, 4);
      assert(sp.drafted > 0 && sp.accepted <= sp.drafted);
    }
    const cases: [string, unknown, string][] = [
      [s.url, { prompt: "a", max_tokens: 4, speculative: 0 }, "a draft length K"],
      [s.url, { prompt: "a", max_tokens: 4, speculative: 2.5 }, "a draft length K"],
      [s.url, { prompt: "a", max_tokens: 4, speculative: "2" }, "a draft length K"],
      [s.url, { prompt: "a", max_tokens: 4, speculative: 2, temperature: 0.7 }, "greedy only"],
      [aligned.url, { prompt: "a", max_tokens: 4, speculative: 2 }, "aligned admission"],
    ];
    for (const [url, body, text] of cases) {
      const r = await post(url, body);
      const e = await r.json();
      assertEquals(r.status, 400, JSON.stringify(e));
      assertEquals(e.error.param, "speculative", JSON.stringify(e));
      assert(e.error.message.includes(text), e.error.message);
    }
  } finally {
    await s.shutdown();
    await aligned.shutdown();
  }
});
