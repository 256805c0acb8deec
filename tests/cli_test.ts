/**
 * The command line as a user runs it: each command in a subprocess with the permissions of
 * its `deno.json` task, checking the JSON contracts of `tokenize`, `generate`, `plan` and
 * `score`, `--help` of every command, and one-line errors (exit 2, no stack trace).
 */
import { assert, assertEquals, assertMatch, assertStringIncludes } from "@std/assert";
import { COMMANDS } from "../cli/main.ts";

const ROOT = new URL("../", import.meta.url);
const TINY = new URL("../bundled/models/tiny-opt-e2e", import.meta.url).pathname;
const XDG = Deno.makeTempDirSync({ prefix: "cli-xdg-" }); // quiets Mesa's Vulkan loader
Deno.chmodSync(XDG, 0o700);

async function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-read",
      "--allow-env",
      "--allow-write=./out,./reports,./.cache",
      "cli/main.ts",
      ...args,
    ],
    cwd: ROOT,
    env: { NO_COLOR: "1", HF_HUB_OFFLINE: "1", XDG_RUNTIME_DIR: XDG },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

Deno.test("cli tokenize prints OPT's ids as JSON", async () => {
  const r = await cli(["tokenize", "--model", TINY, "--text", "Hello, my dog is cute"]);
  assertEquals(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout);
  assertEquals(out.ids, [2, 31414, 6, 127, 2335, 16, 11962]);
  assertEquals(out.model.source, TINY, "the output names the model it used");
  console.log("  tokenize: Hello, my dog is cute -> [2, 31414, 6, 127, 2335, 16, 11962]");
});

Deno.test("cli generate --json: results, per-token layers, top-k, speedups", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const file = `${dir}/prompts.json`;
    const prompts = ["name[Alimentum], area[city centre]\n", "name[The Eagle], food[French]\n"];
    await Deno.writeTextFile(file, JSON.stringify(prompts));
    const r = await cli([
      "generate",
      "--model",
      TINY,
      "--backend",
      "cpu",
      "--prompt-file",
      file,
      "--policy",
      "linear:max=12,min=4,warmup=1,horizon=32",
      "--max-new-tokens",
      "12",
      "--logits-topk",
      "3",
      "--no-eos",
      "--json",
    ]);
    assertEquals(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout);
    assertEquals(out.results.length, 2);
    // Column P-1 (prompt, full depth) makes token 0; the budget then follows docs/DESIGN.md §4:
    // round(12 - 8 * j / 31) for j = 0..10 -> 12 12 11 11 11 11 10 10 10 10 9.
    assertEquals(out.results[0].layers, [12, 12, 12, 11, 11, 11, 11, 10, 10, 10, 10, 9]);
    for (const [i, res] of out.results.entries()) {
      assertEquals(res.prompt, prompts[i]);
      assertEquals(res.ids.length, 12);
      assertEquals(res.finish, "length");
      assertEquals(typeof res.text, "string");
      assertEquals(res.topk.length, 12);
      for (const [step, top] of res.topk.entries()) {
        assertEquals(top.length, 3);
        assert(top[0][1] >= top[1][1] && top[1][1] >= top[2][1], "top-k not sorted");
        assertEquals(top[0][0], res.ids[step], "greedy token is the top-1 logit");
      }
    }
    const layers = out.results.flatMap((x: { layers: number[] }) => x.layers);
    const speedup = (12 * layers.length) / layers.reduce((a: number, b: number) => a + b, 0);
    assert(Math.abs(out.layerSpeedup - speedup) < 1e-12, "layerSpeedup = sum L / sum layers");
    assert(out.flopSpeedup > 1 && out.flopSpeedup < out.layerSpeedup);
    assert(out.kvBytes > 0 && out.kvBytes < out.kvBytesFull);
    assertEquals(out.timing.generatedTokens, 24);
    console.log(`  generate: 2 prompts x 12 tokens, layer speedup ${out.layerSpeedup.toFixed(4)}`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("cli plan --json and score print their figures", async () => {
  const p = await cli([
    "plan",
    "--policy",
    "constant:n=6,warmup=1",
    "--layers",
    "12",
    "--prompt-length",
    "3",
    "--max-new-tokens",
    "4",
    "--json",
  ]);
  assertEquals(p.code, 0, p.stderr);
  const plan = JSON.parse(p.stdout);
  assertEquals(JSON.stringify(plan).includes('"constant"'), true);
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/hyp.txt`, "the cat sat on the mat\nhello there\n");
    await Deno.writeTextFile(`${dir}/ref.txt`, "the cat sat on the mat\nhello there\n");
    const s = await cli(["score", "--hyp", `${dir}/hyp.txt`, "--ref", `${dir}/ref.txt`]);
    assertEquals(s.code, 0, s.stderr);
    const score = JSON.parse(s.stdout);
    assert(Math.abs(score.bleu - 100) < 1e-9, `identical text scores BLEU 100, got ${score.bleu}`);
    assertEquals(score.rougeL, 1);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("cli: every command has --help; bad input is one line and exit 2", async () => {
  for (const c of COMMANDS) {
    const r = await cli([c.name, "--help"]);
    assertEquals(r.code, 0, `${c.name} --help: ${r.stderr}`);
    assertStringIncludes(r.stdout, `skipdecode ${c.name}`);
  }
  const cases: [string[], RegExp][] = [
    [
      ["generate", "--model", "/nonexistent/model", "--prompt", "x"],
      /nonexistent|not found|offline/i,
    ],
    [[
      "generate",
      "--model",
      TINY,
      "--backend",
      "cpu",
      "--prompt",
      "x",
      "--policy",
      "linear:max=99",
    ], /max|min/],
    [["generate", "--model", TINY, "--prompt", "x", "--max-new-tokens", "0"], /max-new-tokens/],
    [["plan", "--policy", "linear:max=12,min=4,bogus=1"], /bogus/],
    [["frobnicate"], /unknown command/],
    [["generate", "--no-such-flag"], /no-such-flag/],
  ];
  for (const [args, pattern] of cases) {
    const r = await cli(args);
    assertEquals(r.code, 2, `${args.join(" ")}: exit ${r.code}, ${r.stderr}`);
    assertMatch(r.stderr, /^error: [^\n]+\n/, `${args.join(" ")}: no leading error line`);
    assertMatch(r.stderr, pattern);
    assert(!/\n\s+at /.test(r.stderr), `${args.join(" ")}: stack trace printed:\n${r.stderr}`);
    console.log(`  ${args.slice(0, 2).join(" ")}: ${r.stderr.split("\n")[0].slice(0, 110)}`);
  }
});
