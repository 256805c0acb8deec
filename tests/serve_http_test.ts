/**
 * The completions server (serve/http.ts) in this process on 127.0.0.1 with the tiny checkpoint
 * on the CPU backend, driven by the real `openai` npm client: streamed and plain texts equal
 * `generate`'s; 16 concurrent clients x 4 requests with mixed policies each equal their solo
 * decode; 20 bad requests each a 400 naming the field; 401 without the key; 429 with
 * Retry-After on a full queue; a client that disconnects mid-stream frees its row (seen in
 * /metrics). SIGTERM on the `serve` command is in serve_cli_test.ts.
 */
import { assert, assertEquals, assertMatch } from "@std/assert";
import OpenAI from "openai";
import { fileURLToPath } from "node:url";
import { generate, loadModel } from "../decode/mod.ts";
import { type RunningServer, Scheduler, startServer } from "../serve/mod.ts";
import { BUNDLED } from "./helpers.ts";

const model = await loadModel(fileURLToPath(new URL("models/tiny-opt-e2e", BUNDLED)), {
  backend: "cpu",
  onNote: () => {},
});
const NAME = "tiny-opt-e2e";
const PROMPTS = [
  "name[Alimentum], area[city centre]\n",
  "name[The Eagle], food[French]\n",
  "name[Zizzi]\n",
  "name[Aromi], eatType[pub], customer rating[average]\n",
];
const POLICIES = ["full", "linear:max=12,min=4,warmup=1", "constant:n=7,warmup=1"];

function serve(
  options: { capacity?: number; maxQueue?: number; apiKey?: string; mode?: "per-row" } = {},
): RunningServer {
  const scheduler = new Scheduler(model, {
    capacity: options.capacity ?? 8,
    maxQueue: options.maxQueue ?? 128,
  });
  return startServer({
    scheduler,
    tokenizer: model.tokenizer,
    config: model.config,
    modelName: NAME,
    apiKey: options.apiKey,
    port: 0,
  });
}

const client = (s: RunningServer, apiKey = "none") =>
  new OpenAI({ apiKey, baseURL: `${s.url}/v1`, maxRetries: 0 });

const soloCache = new Map<string, string>();
async function soloText(prompt: string, policy: string, n: number): Promise<string> {
  const key = JSON.stringify([prompt, policy, n]);
  if (!soloCache.has(key)) {
    const out = await generate(model, [prompt], { policy, maxNewTokens: n, batchSize: 1 });
    soloCache.set(key, out.results[0].text);
  }
  return soloCache.get(key)!;
}

async function metric(s: RunningServer, name: string): Promise<number> {
  const text = await (await fetch(`${s.url}/metrics`)).text();
  const line = text.split("\n").find((l) => l.startsWith(`skipdecode_${name} `));
  assert(line, `no ${name} in /metrics`);
  return Number(line.split(" ")[1]);
}

Deno.test("serve: the openai client, plain and streamed, gets generate's texts", async () => {
  const s = serve();
  try {
    const oa = client(s);
    const models = await oa.models.list();
    assertEquals(models.data.map((m) => m.id), [NAME]);
    for (const [i, prompt] of PROMPTS.slice(0, 2).entries()) {
      const policy = POLICIES[i];
      const want = await soloText(prompt, policy, 12);
      const body = { model: NAME, prompt, max_tokens: 12, temperature: 0, policy };
      const plain = await oa.completions.create(body as OpenAI.CompletionCreateParamsNonStreaming);
      assertEquals(plain.choices[0].text, want, `plain ${policy}`);
      assertEquals(
        plain.choices[0].finish_reason,
        want.length ? plain.choices[0].finish_reason : "stop",
      );
      assert(plain.usage && plain.usage.prompt_tokens === model.tokenizer.encode(prompt).length);
      const stream = await oa.completions.create(
        { ...body, stream: true } as OpenAI.CompletionCreateParamsStreaming,
      );
      let text = "";
      let finish: string | null = null;
      let chunks = 0;
      for await (const chunk of stream) {
        text += chunk.choices[0]?.text ?? "";
        finish = chunk.choices[0]?.finish_reason ?? finish;
        chunks++;
      }
      assertEquals(text, want, `streamed ${policy}`);
      assertEquals(finish, plain.choices[0].finish_reason);
      assert(chunks > 2, `only ${chunks} chunks`);
      console.log(`  ${policy}: ${JSON.stringify(text)} (${chunks} chunks, ${finish})`);
    }
    // The raw stream ends with data: [DONE].
    const raw = await fetch(`${s.url}/v1/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: NAME, prompt: PROMPTS[2], max_tokens: 3, stream: true }),
    });
    assertEquals(raw.headers.get("content-type"), "text/event-stream");
    assertMatch(await raw.text(), /data: \{.*\n\n(data: .*\n\n)*data: \[DONE\]\n\n$/s);
    // A list of prompts gives one choice each, in order.
    const two = await oa.completions.create({
      model: NAME,
      prompt: [PROMPTS[2], PROMPTS[3]],
      max_tokens: 5,
    });
    assertEquals(two.choices.map((c) => c.index), [0, 1]);
    assertEquals(two.choices[1].text, await soloText(PROMPTS[3], "full", 5));
  } finally {
    await s.shutdown();
  }
});

Deno.test("serve: 16 concurrent clients x 4 requests, mixed policies: each equals its solo decode", async () => {
  const s = serve({ capacity: 8 });
  try {
    const jobs: { prompt: string; policy: string; n: number; stream: boolean }[][] = [];
    for (let c = 0; c < 16; c++) {
      jobs.push([0, 1, 2, 3].map((k) => ({
        prompt: PROMPTS[(c + k) % PROMPTS.length],
        policy: POLICIES[(c * 3 + k) % POLICIES.length],
        n: 3 + ((c + 2 * k) % 5),
        stream: (c + k) % 2 === 0,
      })));
    }
    const got = await Promise.all(jobs.map(async (list) => {
      const oa = client(s);
      const texts: string[] = [];
      for (const j of list) {
        const body = { model: NAME, prompt: j.prompt, max_tokens: j.n, policy: j.policy };
        if (j.stream) {
          const st = await oa.completions.create(
            { ...body, stream: true } as OpenAI.CompletionCreateParamsStreaming,
          );
          let t = "";
          for await (const ch of st) t += ch.choices[0]?.text ?? "";
          texts.push(t);
        } else {
          const r = await oa.completions.create(body as OpenAI.CompletionCreateParamsNonStreaming);
          texts.push(r.choices[0].text);
        }
      }
      return texts;
    }));
    let checked = 0;
    for (const [c, list] of jobs.entries()) {
      for (const [k, j] of list.entries()) {
        assertEquals(
          got[c][k],
          await soloText(j.prompt, j.policy, j.n),
          `client ${c} request ${k}`,
        );
        checked++;
      }
    }
    assertEquals(checked, 64);
    assertEquals(await metric(s, "requests_total"), 64);
    assertEquals(await metric(s, "running_rows"), 0);
    assertEquals(await metric(s, "queue_depth"), 0);
    const mean = await metric(s, "mean_active_layers_per_token");
    assert(mean > 5 && mean < 12, `mean active layers ${mean}`);
    console.log(`  64 responses equal their solo decodes; mean active layers ${mean.toFixed(2)}`);
  } finally {
    await s.shutdown();
  }
});

Deno.test("serve: 20 bad requests, each a 400 naming the field", async () => {
  const s = serve();
  try {
    const ok = { model: NAME, prompt: "x", max_tokens: 2 };
    const cases: [string, unknown][] = [
      ["body", "not json{"],
      ["body", [1, 2]],
      ["model", { ...ok, model: undefined }],
      ["model", { ...ok, model: "gpt-4" }],
      ["prompt", { ...ok, prompt: undefined }],
      ["prompt", { ...ok, prompt: 5 }],
      ["prompt", { ...ok, prompt: [] }],
      ["prompt", { ...ok, prompt: ["a", 3] }],
      ["prompt", { ...ok, prompt: [2, 99999999] }],
      ["max_tokens", { ...ok, max_tokens: 0 }],
      ["max_tokens", { ...ok, max_tokens: 2.5 }],
      ["max_tokens", { ...ok, max_tokens: "8" }],
      ["max_tokens", { ...ok, max_tokens: 100000 }],
      ["temperature", { ...ok, temperature: -1 }],
      ["top_p", { ...ok, top_p: 0 }],
      ["stop", { ...ok, stop: ["a", "b", "c", "d", "e"] }],
      ["stop", { ...ok, stop: [""] }],
      ["stream", { ...ok, stream: "yes" }],
      ["policy", { ...ok, policy: "bogus:x=1" }],
      ["policy", { ...ok, policy: "linear:max=40,min=4" }],
      ["n", { ...ok, n: 2 }],
      ["logprobs", { ...ok, logprobs: 3 }],
      ["frobnicate", { ...ok, frobnicate: true }],
      ["seed", { ...ok, seed: -1 }],
    ];
    assert(cases.length >= 20);
    for (const [param, body] of cases) {
      const res = await fetch(`${s.url}/v1/completions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: typeof body === "string" ? body : JSON.stringify(body),
      });
      const j = await res.json();
      assertEquals(res.status, 400, `${param}: ${JSON.stringify(j)}`);
      assertEquals(j.error.param, param, `${JSON.stringify(body)} -> ${JSON.stringify(j)}`);
      assertEquals(j.error.type, "invalid_request_error");
      assert(j.error.message.includes(param), `message does not name ${param}: ${j.error.message}`);
    }
    assertEquals(await metric(s, "requests_total"), 0, "a bad request reached the queue");
    const r = await fetch(`${s.url}/v1/nothing`);
    assertEquals(r.status, 404);
    await r.body?.cancel();
  } finally {
    await s.shutdown();
  }
});

Deno.test("serve: --api-key: 401 without or with a wrong key, 200 with it; /health stays open", async () => {
  const s = serve({ apiKey: "sesame" });
  try {
    for (const auth of [undefined, "Bearer nope", "sesame"]) {
      const res = await fetch(`${s.url}/v1/models`, {
        headers: auth ? { authorization: auth } : {},
      });
      assertEquals(res.status, 401, `Authorization ${auth}`);
      assertEquals((await res.json()).error.type, "authentication_error");
    }
    const bad = client(s, "nope");
    let status = 0;
    try {
      await bad.completions.create({ model: NAME, prompt: "x", max_tokens: 1 });
    } catch (e) {
      status = (e as { status: number }).status;
    }
    assertEquals(status, 401);
    const good = await client(s, "sesame").completions.create({
      model: NAME,
      prompt: PROMPTS[2],
      max_tokens: 2,
    });
    assertEquals(good.choices[0].text, await soloText(PROMPTS[2], "full", 2));
    const h = await fetch(`${s.url}/health`);
    assertEquals(h.status, 200);
    await h.body?.cancel();
  } finally {
    await s.shutdown();
  }
});

Deno.test("serve: a full queue answers 429 with Retry-After", async () => {
  const s = serve({ capacity: 1, maxQueue: 2 });
  try {
    const res = await fetch(`${s.url}/v1/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        model: NAME,
        prompt: [PROMPTS[0], PROMPTS[1], PROMPTS[2]],
        max_tokens: 2,
      }),
    });
    // More prompts than the queue ever holds: a 400 naming prompt (a 429 with Retry-After
    // had the client retry a request that can never be admitted).
    assertEquals(res.status, 400);
    const big = await res.json();
    assertEquals(big.error.param, "prompt");
    assertMatch(big.error.message, /3 prompts.*--max-queue 2/);
    // Concurrent single requests: one runs, two wait, the rest are refused.
    const bodies = [0, 1, 2, 3, 4].map((i) => ({
      model: NAME,
      prompt: PROMPTS[i % 4],
      max_tokens: 24,
      ignore_eos: true,
    }));
    const answers = await Promise.all(bodies.map(async (b) => {
      const r = await fetch(`${s.url}/v1/completions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(b),
      });
      if (r.status === 429) {
        assert(Number(r.headers.get("retry-after")) >= 1, "Retry-After missing");
        assertEquals((await r.json()).error.type, "rate_limit_error");
      } else await r.body?.cancel();
      return r.status;
    }));
    assertEquals(answers.filter((x) => x === 200).length, 3, `statuses ${answers}`);
    assertEquals(answers.filter((x) => x === 429).length, 2, `statuses ${answers}`);
    assertEquals(await metric(s, "requests_rejected_total"), 2);
  } finally {
    await s.shutdown();
  }
});

Deno.test("serve: a client that disconnects (mid-stream or waiting for JSON) frees its row", async () => {
  const s = serve({ capacity: 2 });
  try {
    const ac = new AbortController();
    const res = await fetch(`${s.url}/v1/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        model: NAME,
        prompt: PROMPTS[0],
        max_tokens: 200,
        ignore_eos: true,
        stream: true,
      }),
      signal: ac.signal,
    });
    const reader = res.body!.getReader();
    await reader.read(); // the first chunk: the row is running
    assertEquals(await metric(s, "running_rows"), 1);
    ac.abort();
    await reader.cancel().catch(() => {});
    const t0 = performance.now();
    while (await metric(s, "running_rows") !== 0) {
      assert(performance.now() - t0 < 10_000, "the row still runs 10 s after the disconnect");
      await new Promise((r) => setTimeout(r, 20));
    }
    const tokens = await metric(s, "tokens_total");
    assert(tokens < 200, `the disconnected row ran all ${tokens} tokens`);
    const text = await (await fetch(`${s.url}/metrics`)).text();
    assertMatch(text, /skipdecode_requests_finished_total\{reason="cancelled"\} 1\n/);
    // A client of a plain (non-streamed) request that hangs up while waiting frees it too.
    const plain = new AbortController();
    const waiting = fetch(`${s.url}/v1/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: NAME, prompt: PROMPTS[1], max_tokens: 200, ignore_eos: true }),
      signal: plain.signal,
    }).then((r) => r.text()).catch(() => "aborted");
    const t1 = performance.now();
    while (await metric(s, "running_rows") !== 1) {
      assert(performance.now() - t1 < 10_000, "the plain request never ran");
      await new Promise((r) => setTimeout(r, 10));
    }
    plain.abort();
    assertEquals(await waiting, "aborted");
    while (await metric(s, "running_rows") !== 0) {
      assert(performance.now() - t1 < 20_000, "the plain request's row still runs");
      await new Promise((r) => setTimeout(r, 20));
    }
    const tokens2 = await metric(s, "tokens_total") - tokens;
    assert(tokens2 < 200, `the abandoned plain request ran all ${tokens2} tokens`);
    assertMatch(
      await (await fetch(`${s.url}/metrics`)).text(),
      /skipdecode_requests_finished_total\{reason="cancelled"\} 2\n/,
    );
    console.log(`  streamed: freed after ${tokens} of 200 tokens; plain: after ${tokens2}`);
  } finally {
    await s.shutdown();
  }
});

Deno.test("serve: a step that fails mid-decode is an error to its clients, not a 'length' completion", async () => {
  // The backend's third row-batch call throws (a lost GPU device, say): the rows it was running
  // were cut; before, plain and streamed clients got their partial text with finish "length".
  let calls = 0;
  const failing = {
    ...model,
    backend: {
      openRows(o: Parameters<typeof model.backend.openRows>[0]) {
        const rows = model.backend.openRows(o);
        return new Proxy(rows, {
          get(target, key) {
            if (key === "run") {
              return (...a: Parameters<typeof rows.run>) => {
                if (++calls === 3) throw new Error("device lost (test)");
                return target.run(...a);
              };
            }
            const v = Reflect.get(target, key);
            return typeof v === "function" ? v.bind(target) : v;
          },
        });
      },
    },
  };
  const s = startServer({
    scheduler: new Scheduler(failing, { capacity: 4 }),
    tokenizer: model.tokenizer,
    config: model.config,
    modelName: NAME,
    port: 0,
  });
  try {
    const post = (stream: boolean) =>
      fetch(`${s.url}/v1/completions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ model: NAME, prompt: PROMPTS[0], max_tokens: 20, stream }),
      });
    const [plain, streamed] = await Promise.all([post(false), post(true)]);
    const j = await plain.json();
    assertEquals(j.choices, undefined, `a cut completion was sent: ${JSON.stringify(j)}`);
    assertEquals(j.error.type, "server_error");
    assertMatch(j.error.message, /device lost \(test\)/);
    const events = (await streamed.text()).split("\n\n").filter((c) => c.startsWith("data: {"))
      .map((c) => JSON.parse(c.slice(6)));
    const last = events.at(-1);
    assert(
      !events.some((e) => e.choices?.[0]?.finish_reason),
      `a streamed choice ended as if complete: ${JSON.stringify(last)}`,
    );
    assertEquals(last.error?.type, "server_error", JSON.stringify(last));
    // The openai client raises on the streamed error.
    const c = new OpenAI({ apiKey: "none", baseURL: `${s.url}/v1`, maxRetries: 0 });
    const err = await c.completions.create({ model: NAME, prompt: "x", max_tokens: 2 }).then(
      () => undefined,
      (e) => e as Error,
    );
    assert(err, "a request after the failure succeeded");
  } finally {
    await s.shutdown();
  }
});
