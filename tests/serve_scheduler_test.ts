/**
 * The continuous-batching scheduler (serve/scheduler.ts) on the CPU backend's RowBatch with
 * the tiny checkpoint: every request's tokens equal its solo decode (`generate`, batch size 1)
 * under mixed policies, random admission orders and all three admission modes; the modes admit
 * as documented (static only into an empty batch, aligned only at the batch's position); stop
 * strings, EOS, token limits, aborts and the queue limit; KV never rewritten. StopText alone
 * (pure) at the end.
 */
import { assert, assertEquals, assertThrows } from "@std/assert";
import { fileURLToPath } from "node:url";
import { generate, loadModel } from "../decode/mod.ts";
import type { Backend, RowBatch, RowWork } from "../backend/types.ts";
import {
  type AdmissionMode,
  type Completion,
  type CompletionEvent,
  QueueFullError,
  Scheduler,
  SchedulerClosedError,
  StopText,
} from "../serve/mod.ts";
import { dimsFromConfig, parsePolicy, plan } from "../schedule/mod.ts";
import { BUNDLED, intIn, rng } from "./helpers.ts";

const model = await loadModel(fileURLToPath(new URL("models/tiny-opt-e2e", BUNDLED)), {
  backend: "cpu",
  onNote: () => {},
});
const PROMPTS = [
  "name[Alimentum], area[city centre]\n",
  "name[The Eagle], food[French]\n",
  "name[Zizzi]\n",
  "name[Cotto], eatType[coffee shop], food[Chinese], area[city centre], near[The Portland Arms]\n",
  "name[Aromi], eatType[pub], customer rating[average]\n",
];
const POLICIES = [
  "full",
  "linear:max=12,min=4,warmup=1",
  "constant:n=6,warmup=2",
  "linear:max=10,min=3,warmup=1,horizon=5,prompt=decay",
  "earlyexit:linear:max=12,min=5",
];

/** The solo decode of one request, memoised. */
const soloCache = new Map<string, { ids: number[]; text: string }>();
async function solo(prompt: string, policy: string, n: number) {
  const key = JSON.stringify([prompt, policy, n]);
  if (!soloCache.has(key)) {
    const r = (await generate(model, [prompt], { policy, maxNewTokens: n, batchSize: 1 }))
      .results[0];
    soloCache.set(key, { ids: r.ids, text: r.text });
  }
  return soloCache.get(key)!;
}

/** The model with its RowBatch's run calls recorded: per entry, slot, first position, length. */
function recorded() {
  const calls: { slot: number; pos: number; n: number }[][] = [];
  const backend = new Proxy(model.backend, {
    get(t, k) {
      if (k === "openRows") {
        return (o: Parameters<Backend["openRows"]>[0]): RowBatch => {
          const rows = t.openRows(o);
          return new Proxy(rows, {
            get(r, key) {
              if (key === "run") {
                return (entries: readonly RowWork[]) => {
                  calls.push(
                    entries.map((e) => ({
                      slot: e.slot,
                      pos: r.length(e.slot),
                      n: e.tokens.length,
                    })),
                  );
                  return r.run(entries);
                };
              }
              const v = Reflect.get(r, key);
              return typeof v === "function" ? v.bind(r) : v;
            },
          });
        };
      }
      const v = Reflect.get(t, k);
      return typeof v === "function" ? v.bind(t) : v;
    },
  });
  return { m: { ...model, backend }, calls };
}

async function collect(events: AsyncIterable<CompletionEvent>) {
  let text = "";
  const ids: number[] = [];
  let finish = "";
  for await (const e of events) {
    text += e.text;
    if (e.type === "token") ids.push(e.id);
    else finish = e.finish;
  }
  return { text, ids, finish };
}

const equalsSolo = async (
  c: Completion,
  prompt: string,
  policy: string,
  n: number,
  what: string,
) => {
  const s = await solo(prompt, policy, n);
  assertEquals(c.ids, s.ids, `${what}: ids differ from the solo decode (${policy}, ${n} tokens)`);
  assertEquals(c.text, s.text, `${what}: text`);
};

for (const mode of ["per-row", "aligned", "static"] as AdmissionMode[]) {
  Deno.test(`scheduler ${mode}: random admission order, mixed policies, every request equals its solo decode`, async () => {
    const r = rng(mode.length * 7919);
    const { m, calls } = recorded();
    const s = new Scheduler(m, { capacity: 3, mode });
    const jobs: { prompt: string; policy: string; n: number; done: Promise<Completion> }[] = [];
    const submit = () => {
      const prompt = PROMPTS[intIn(r, 0, PROMPTS.length - 1)];
      const policy = POLICIES[intIn(r, 0, POLICIES.length - 1)];
      const n = intIn(r, 1, 11);
      jobs.push({ prompt, policy, n, done: s.submit({ prompt, maxTokens: n, policy }).done });
    };
    // Bursts at random moments: some before the first step, some while rows run.
    for (let k = 0; k < 3; k++) submit();
    for (let wave = 0; wave < 4; wave++) {
      await new Promise((res) => setTimeout(res, intIn(r, 0, 60)));
      for (let k = intIn(r, 1, 3); k > 0; k--) submit();
    }
    const done = await Promise.all(jobs.map((j) => j.done));
    for (const [i, j] of jobs.entries()) {
      await equalsSolo(done[i], j.prompt, j.policy, j.n, `${mode} request ${i}`);
    }
    const met = s.metrics();
    assertEquals(met.rows.kvRewrites, 0, "KV rewritten");
    // Each request ran exactly its solo plan's sets at positions 0 .. P + g - 2 (its last token
    // is never fed back): the row batch's layer-steps are their sum.
    let expected = 0;
    for (const [i, j] of jobs.entries()) {
      const P = model.tokenizer.encode(j.prompt).length;
      const sets = plan(parsePolicy(j.policy), {
        ...dimsFromConfig(model.config),
        promptLength: P,
        maxNewTokens: j.n,
      }).sets;
      for (let p = 0; p <= P + done[i].ids.length - 2; p++) expected += sets[p].length;
    }
    assertEquals(met.rows.layerSteps, expected, "layer-steps differ from the requests' plans");
    assertEquals(met.rows.kvWrites, expected, "KV writes differ from the requests' plans");
    assertEquals(met.requests, jobs.length);
    assertEquals(met.tokens, done.reduce((a, c) => a + c.ids.length, 0));
    assertEquals(met.runningRows, 0);
    assertEquals(met.queueDepth, 0);
    // The mode's admission rule, from the recorded run calls.
    let midRun = 0;
    for (const call of calls) {
      const prefills = call.filter((e) => e.pos === 0);
      const decodes = call.filter((e) => e.pos > 0);
      if (prefills.length && decodes.length) midRun++;
      if (mode === "static") {
        assertEquals(
          decodes.length === 0 || prefills.length === 0,
          true,
          "static admitted mid-batch",
        );
      }
      if (mode === "aligned") {
        const columns = new Set(call.map((e) => e.pos + e.n - 1));
        assertEquals(columns.size, 1, `aligned step ran columns ${[...columns]}`);
      }
    }
    if (mode === "per-row") assert(midRun > 0, "per-row never admitted a row beside running ones");
    console.log(
      `  ${mode}: ${jobs.length} requests, ${calls.length} steps, ${midRun} with mid-run admissions`,
    );
    await s.close();
  });
}

Deno.test("scheduler: a sampled request draws as its solo decode does, beside other rows", async () => {
  const sampling = { temperature: 0.9, topK: 40, topP: 0.95, seed: 11 };
  const s = new Scheduler(model, { capacity: 3 });
  const others = [0, 1].map((i) => s.submit({ prompt: PROMPTS[i], maxTokens: 9 }));
  const h = s.submit({ prompt: PROMPTS[3], maxTokens: 12, sampling });
  const c = await h.done;
  await Promise.all(others.map((o) => o.done));
  const want = await generate(model, [PROMPTS[3]], { maxNewTokens: 12, batchSize: 1, sampling });
  assertEquals(c.ids, want.results[0].ids);
  const greedy = await solo(PROMPTS[3], "full", 12);
  assert(c.ids.join() !== greedy.ids.join(), "sampling gave the greedy tokens");
  await s.close();
});

Deno.test("scheduler: a stop string ends the row at once (text cut before it, across tokens)", async () => {
  const s = new Scheduler(model, { capacity: 2 });
  const full = await solo(PROMPTS[0], "full", 16);
  const at = full.text.indexOf(" city");
  assert(at > 0, `the solo text has no " city": ${full.text}`);
  // "the ci" spans two tokens (" the", " city").
  const h = s.submit({ prompt: PROMPTS[0], maxTokens: 16, stop: ["the ci", "zzz"] });
  const streamed = await collect(h.events);
  const c = await h.done;
  assertEquals(c.finish, "stop");
  assertEquals(c.text, full.text.slice(0, full.text.indexOf("the ci")));
  assertEquals(streamed.text, c.text, "the streamed deltas add up to the text");
  assert(c.ids.length < full.ids.length, "the row ran past its stop string");
  assertEquals(c.ids, full.ids.slice(0, c.ids.length));
  assertEquals(s.metrics().runningRows, 0);
  await s.close();
});

Deno.test("scheduler: EOS and the token limit end rows; stopAtEos false runs to the limit", async () => {
  const s = new Scheduler(model, { capacity: 2 });
  const eos = model.config.eosTokenId;
  const a = s.submit({ prompt: PROMPTS[2], maxTokens: 40 });
  const b = s.submit({ prompt: PROMPTS[2], maxTokens: 40, stopAtEos: false });
  const c = s.submit({ prompt: PROMPTS[2], maxTokens: 3 });
  const [ra, rb, rc] = await Promise.all([a.done, b.done, c.done]);
  assertEquals(ra.finish, "eos");
  assertEquals(ra.ids.at(-1), eos);
  assertEquals(rb.finish, "length");
  assertEquals(rb.ids.length, 40);
  assertEquals(rb.ids.slice(0, ra.ids.length), ra.ids);
  assertEquals(rc.finish, "length");
  assertEquals(rc.ids, ra.ids.slice(0, 3));
  await s.close();
});

Deno.test("scheduler: an abort frees a running row before the next step and drops a queued one", async () => {
  const s = new Scheduler(model, { capacity: 1 });
  const ac = new AbortController();
  const queued = new AbortController();
  const a = s.submit({ prompt: PROMPTS[0], maxTokens: 30, stopAtEos: false, signal: ac.signal });
  const b = s.submit({ prompt: PROMPTS[1], maxTokens: 30, signal: queued.signal });
  const c = s.submit({ prompt: PROMPTS[2], maxTokens: 4 });
  let seen = 0;
  for await (const e of a.events) {
    if (e.type === "token" && ++seen === 3) {
      ac.abort();
      queued.abort();
    }
  }
  const [ra, rb, rc] = await Promise.all([a.done, b.done, c.done]);
  assertEquals(ra.finish, "cancelled");
  assert(ra.ids.length <= 4, `the aborted row ran ${ra.ids.length} tokens`);
  assertEquals(rb.finish, "cancelled");
  assertEquals(rb.ids.length, 0);
  await equalsSolo(rc, PROMPTS[2], "full", 4, "the request after the aborted ones");
  const m = s.metrics();
  assertEquals(m.finished.cancelled, 2);
  assertEquals(m.runningRows, 0);
  await s.close();
});

Deno.test("scheduler: a full queue refuses with QueueFullError; close cancels and refuses", async () => {
  const s = new Scheduler(model, { capacity: 1, maxQueue: 1 });
  const a = s.submit({ prompt: PROMPTS[0], maxTokens: 30, stopAtEos: false });
  const b = s.submit({ prompt: PROMPTS[1], maxTokens: 2 });
  const e = assertThrows(() => s.submit({ prompt: PROMPTS[2], maxTokens: 2 }), QueueFullError);
  assert(e.retryAfterSeconds >= 1);
  assertEquals(s.metrics().rejected, 1);
  await s.close(0);
  const [ra, rb] = await Promise.all([a.done, b.done]);
  assertEquals(ra.finish, "cancelled");
  assertEquals(rb.finish, "cancelled");
  assertThrows(() => s.submit({ prompt: PROMPTS[2], maxTokens: 2 }), SchedulerClosedError);
});

Deno.test("scheduler: bad requests name the field", () => {
  const s = new Scheduler(model, { capacity: 1 });
  assertThrows(() => s.submit({ prompt: "x", maxTokens: 0 }), RangeError, "maxTokens");
  assertThrows(() => s.submit({ prompt: [], maxTokens: 2 }), RangeError, "prompt");
  assertThrows(() => s.submit({ prompt: "x", maxTokens: 5000 }), RangeError, "maxTokens");
  assertThrows(
    () => s.submit({ prompt: "x", maxTokens: 2, policy: "linear:max=40" }),
    Error,
    "max",
  );
  assertThrows(() => new Scheduler(model, { mode: "bogus" as AdmissionMode }), RangeError, "mode");
  // Every request waits in the queue until a step admits it: maxQueue 0 refused every request
  // ("the queue is full") while every row was free.
  assertThrows(() => new Scheduler(model, { maxQueue: 0 }), RangeError, "maxQueue");
});

Deno.test("StopText: holds back a possible stop-string start, cuts at the first stop", () => {
  const t = new StopText(["END", "\n\n"]);
  t.push("abc E");
  assertEquals(t.take(), "abc "); // "E" may start "END"
  t.push("N");
  assertEquals(t.take(), "");
  t.push("x");
  assertEquals(t.take(), "ENx"); // not a stop after all
  assertEquals(t.push("yy\n"), false);
  assertEquals(t.take(), "yy");
  assertEquals(t.push("\nrest"), true);
  assertEquals(t.text, "abc ENxyy");
  assertEquals(t.take(), "");
  const u = new StopText(["é!"]);
  u.push("caf");
  u.push("é");
  assertEquals(u.take(), "caf");
  u.push("!");
  assertEquals(u.text, "caf");
  const none = new StopText();
  none.push("a\n");
  assertEquals(none.take(), "a\n");
  assertThrows(() => new StopText([""]), RangeError, "empty");
});
