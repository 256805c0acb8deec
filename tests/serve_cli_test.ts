/**
 * `deno task serve` as a user runs it (a subprocess with the task's permissions, offline, the
 * tiny checkpoint on the CPU): it answers on the port it prints, and SIGTERM stops admitting
 * (a new request gets 503 or a refused connection), ends the in-flight streamed row within the
 * shutdown bound (its stream still ends with `data: [DONE]`) and exits 0. Policy files loaded
 * with `--policy-file` (repeatable) are nameable by a request's `policy`.
 */
import { assert, assertEquals, assertMatch } from "@std/assert";
import { cli, sandbox, spawnCli, TINY } from "./cli_helpers.ts";

Deno.test("serve command: answers, then SIGTERM ends the in-flight row within the bound and exits 0", async () => {
  const grace = 1;
  const child = spawnCli(
    ["serve", "--model", TINY, "--backend", "cpu", "--port", "0", "--batch-size", "2"]
      .concat(["--shutdown-timeout", String(grace), "--offline"]),
    { task: "serve" },
  );
  const lines = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let out = "";
  let url = "";
  const t0 = performance.now();
  while (!url) {
    const { value, done } = await lines.read();
    assert(!done, `serve exited before listening: ${out}`);
    out += value;
    url = out.match(/listening on (http:\/\/127\.0\.0\.1:\d+)/)?.[1] ?? "";
    assert(performance.now() - t0 < 60_000, "serve did not listen within 60 s");
  }
  const stdoutRest = (async () => {
    while (true) {
      const { value, done } = await lines.read();
      if (done) return;
      out += value;
    }
  })();
  const health = await fetch(`${url}/health`);
  assertEquals((await health.json()).status, "ok");
  // A long streamed row (ignore_eos, 200 tokens: beyond the bound at CPU speed).
  const res = await fetch(`${url}/v1/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({
      model: "tiny-opt-e2e",
      prompt: "name[Alimentum]\n",
      max_tokens: 200,
      ignore_eos: true,
      stream: true,
    }),
  });
  assertEquals(res.status, 200, res.status === 200 ? "" : await res.text());
  const body = res.body!.pipeThrough(new TextDecoderStream()).getReader();
  let stream = (await body.read()).value ?? "";
  const killed = performance.now();
  child.kill("SIGTERM");
  // While shutting down, a new request is refused (503), or the listener is already closed.
  try {
    const late = await fetch(`${url}/v1/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "tiny-opt-e2e", prompt: "x", max_tokens: 2 }),
    });
    assertEquals(late.status, 503);
    assert(late.headers.get("retry-after"));
    await late.body?.cancel();
  } catch (e) {
    assert(e instanceof TypeError, `unexpected ${e}`); // connection refused
  }
  while (true) {
    const { value, done } = await body.read();
    if (done) break;
    stream += value;
  }
  const status = await child.status;
  await stdoutRest;
  const seconds = (performance.now() - killed) / 1000;
  const stderr = await new Response(child.stderr).text();
  assertEquals(status.code, 0, `exit ${status.code} ${status.signal}: ${stderr}`);
  assert(seconds < grace + 10, `exited ${seconds.toFixed(1)} s after SIGTERM (bound ${grace} s)`);
  assertMatch(stream, /"finish_reason":"length"/);
  assertMatch(stream, /data: \[DONE\]\n\n$/);
  const chunks = stream.split("\n\n").filter((c) => c.startsWith("data: {")).length;
  assert(chunks < 200, `the row ran to its limit (${chunks} chunks) instead of being cut`);
  assertMatch(out, /stopped/);
  console.log(
    `  exit 0 ${seconds.toFixed(2)} s after SIGTERM; the row was cut after ${chunks} chunks`,
  );
});

Deno.test("serve command: bad options are one line naming the option, exit 2", async () => {
  const cases: [string[], RegExp][] = [
    [["--port", "70000"], /--port/],
    [["--mode", "eager"], /--mode/],
    [["--batch-size", "0"], /--batch-size/],
    [["--shutdown-timeout", "-1"], /--shutdown-timeout/],
    [["--policy", "linear:max=99,min=4", "--backend", "cpu"], /--policy/],
    [["--policy", "bogus"], /--policy/],
    [["--api-key", ""], /--api-key/],
    [["--max-queue", "0"], /--max-queue/], // it refused every request with 429
  ];
  for (const [args, pattern] of cases) {
    const r = await cli(["serve", "--model", TINY, "--offline", ...args], { task: "serve" });
    assertEquals(r.code, 2, `${args.join(" ")}: exit ${r.code}: ${r.stderr}`);
    assertMatch(r.stderr, pattern);
    assertEquals(r.stderr.trim().split("\n").length, 1, `not one line: ${r.stderr}`);
  }
});

Deno.test("serve command: --policy-file policies are nameable per request; duplicate names refused", async () => {
  using box = sandbox("serve-policy-file");
  const mod = "../../schedule/mod.ts";
  Deno.writeTextFileSync(
    `${box.dir}/two.ts`,
    `import { customPolicy, skipDecodeSet } from "${mod}";
export const a = customPolicy({ name: "keep_all", layerSet: ({ layers }) => Array.from({ length: layers }, (_, i) => i) });
export const b = customPolicy({ name: "top_five", layerSet: ({ column, promptLength, layers }) =>
  skipDecodeSet(layers, column < promptLength ? layers : 5, 1) });
`,
  );
  Deno.writeTextFileSync(
    `${box.dir}/again.ts`,
    `export { b } from "./two.ts";\n`,
  );
  const dup = await cli([
    "serve",
    "--model",
    TINY,
    "--offline",
    "--policy-file",
    `${box.rel}/two.ts`,
    "--policy-file",
    `${box.rel}/again.ts`,
  ]);
  assertEquals(dup.code, 2, dup.stderr);
  assertMatch(dup.stderr, /^error: --policy-file: policy "top_five" is exported by both [^\n]*\n$/);
  // the launcher's scope (deno task skipdecode serve): it may read the files it was given
  const child = spawnCli([
    "serve",
    "--model",
    TINY,
    "--backend",
    "cpu",
    "--port",
    "0",
    "--offline",
    "--policy-file",
    `${box.rel}/two.ts`,
  ]);
  const lines = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let out = "";
  try {
    while (!/listening on/.test(out)) {
      const { value, done } = await lines.read();
      assert(!done, `serve exited before listening: ${out}`);
      out += value;
    }
    // two policies and no --policy: the default stays full, both are named
    assertMatch(out, /policy full; requests may name keep_all \([^)]*two\.ts\), top_five/);
    const url = out.match(/listening on (http:\/\/127\.0\.0\.1:\d+)/)![1];
    const ask = async (policy: string) => {
      const res = await fetch(`${url}/v1/completions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({
          model: "tiny-opt-e2e",
          prompt: "name[Zizzi]\n",
          max_tokens: 4,
          policy,
        }),
      });
      return { status: res.status, body: await res.json() };
    };
    assertEquals((await ask("top_five")).status, 200);
    const other = await ask(`${box.rel}/again.ts`);
    assertEquals([other.status, other.body.error.param], [400, "policy"]);
    assertMatch(other.body.error.message, /was not loaded at server start/);
  } finally {
    child.kill("SIGTERM");
    await child.status;
    await lines.cancel().catch(() => {});
    await child.stderr.cancel().catch(() => {});
  }
});
