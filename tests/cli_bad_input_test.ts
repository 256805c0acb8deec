/**
 * A table of bad input and misuse through the command line, run as a task user runs it
 * (`cli/main.ts` in subprocesses with the permissions of the `deno.json` task, offline, the
 * tiny model, the CPU backend). Every case must end with exit code 2 and exactly one line
 * on stderr, `error: ...`, naming what is at fault, with no stack trace, and must write
 * nothing and lose nothing: the sandbox holding every fixture and every `--out` of the
 * table is byte-for-byte the same after each case, and so is a folder outside it that a
 * symbolic link points to.
 *
 * Most cases run in this process, through `main` of `cli/main.ts` (the function the command
 * line's entry point calls, with the same arguments, exit code and stderr): one process for
 * the table instead of one each. A case runs in a true subprocess with its task's permissions
 * where those permissions decide the message (a path outside the repository, the demo task),
 * and so does the first case of each command, which checks the real exit code and stderr of
 * every command once.
 */
import { assert, assertEquals, assertMatch, assertThrows } from "@std/assert";
import { TINY_MODEL_DIR } from "../data/bundled.ts";
import { main } from "../cli/main.ts";
import { cli, type CliResult, pool, ROOT, sandbox, snapshot } from "./cli_helpers.ts";

const TINY = TINY_MODEL_DIR.replace(/\/$/, "");

/** One case: arguments (`{box}` is the sandbox, relative), task, expected message. */
interface Case {
  args: string[];
  pattern: RegExp;
  task?: "skipdecode" | "train" | "demo";
  /** Run in a subprocess with the task's permissions (the answer depends on them). */
  process?: true;
}

function writeFixtures(dir: string): void {
  const w = (name: string, data: string | Uint8Array) =>
    typeof data === "string"
      ? Deno.writeTextFileSync(`${dir}/${name}`, data)
      : Deno.writeFileSync(`${dir}/${name}`, data);
  const enc = new TextEncoder();
  const bytes = (...parts: (string | number[])[]) =>
    new Uint8Array(parts.flatMap((p) => typeof p === "string" ? [...enc.encode(p)] : p));
  w("bad_utf8.txt", bytes("name[A]\nname[B] ", [0xff, 0xfe], "\n"));
  w("bad_utf8.csv", bytes('mr,ref\n"name[A]",ok\n"name[B]",b', [0xc3, 0x28], "\n"));
  w("bad_utf8_train.txt", bytes("some text\n\nmore ", [0x80], "\n"));
  w("bom_hyp.txt", bytes([0xef, 0xbb, 0xbf], "the cat\n"));
  w("header.csv", "mr,ref\n");
  w("long.csv", `mr,ref\n"${"word ".repeat(400)}",b\nshort,a\n`);
  w("tabs.csv", "mr\tref\na\tb\n");
  w("empty1.txt", "");
  w("empty2.txt", "");
  w("two.txt", "a b\nc d\n");
  w("one.txt", "a b\n");
  w("blank.txt", "\n\n\n");
  w("obj.json", '{"a": 1}');
  w("afile", "not a folder\n");
  w("small.csv", 'mr,ref\n"name[A], food[B]",A serves B.\n"name[C], food[D]",C serves D.\n');
  w("big_batch.json", JSON.stringify({ batchSize: 1e9 }));
  Deno.mkdirSync(`${dir}/nonempty`);
  w("nonempty/keep.txt", "my earlier model\n");
  // A config saying 6 layers over the tiny model's 12-layer weights.
  Deno.mkdirSync(`${dir}/model6`);
  for (const e of Deno.readDirSync(TINY)) {
    if (e.isFile) Deno.copyFileSync(`${TINY}/${e.name}`, `${dir}/model6/${e.name}`);
  }
  const cfg = JSON.parse(Deno.readTextFileSync(`${TINY}/config.json`));
  cfg.num_hidden_layers = 6;
  w("model6/config.json", JSON.stringify(cfg));
}

/** A saved 2-step run to resume from, and broken copies of it. */
async function writeResumeFixtures(dir: string, rel: string): Promise<void> {
  const r = await cli([
    "--model",
    TINY,
    "--data",
    `${rel}/small.csv`,
    "--steps",
    "2",
    "--batch-size",
    "1",
    "--held-out",
    "1",
    "--eval-examples",
    "1",
    "--policy",
    "full",
    "--out",
    `${rel}/ck`,
    "--quiet",
  ], { task: "train" });
  assertEquals(r.code, 0, r.stderr);
  const copy = (name: string, edit: (state: Record<string, unknown>) => void, drop?: string) => {
    Deno.mkdirSync(`${dir}/${name}`);
    for (const e of Deno.readDirSync(`${dir}/ck`)) {
      if (e.isFile && e.name !== drop && !e.name.startsWith(".")) {
        Deno.copyFileSync(`${dir}/ck/${e.name}`, `${dir}/${name}/${e.name}`);
      }
    }
    const path = `${dir}/${name}/trainer_state.json`;
    const state = JSON.parse(Deno.readTextFileSync(path));
    edit(state);
    Deno.writeTextFileSync(path, JSON.stringify(state));
  };
  copy("ck_neg", (s) => s.step = -7);
  copy("ck_99", (s) => s.step = 99);
  copy("ck_mismatch", (s) => s.step = 1); // the optimizer is at step 2
  copy("ck_noopt", () => {}, "optimizer.safetensors");
  copy("ck_corrupt", () => {});
  Deno.writeTextFileSync(`${dir}/ck_corrupt/trainer_state.json`, '{"format": "skipdecode-tr');
  copy("ck_nostate", () => {});
  Deno.removeSync(`${dir}/ck_nostate/trainer_state.json`);
}

/**
 * A symbolic link, made by a child process: the tests' path-scoped permissions do not
 * allow `Deno.symlink` (Deno asks for unscoped read and write).
 */
async function symlink(target: string, path: string): Promise<void> {
  const r = await new Deno.Command(Deno.execPath(), {
    args: ["eval", `Deno.symlinkSync(${JSON.stringify(target)}, ${JSON.stringify(path)})`],
  }).output();
  assert(r.success, new TextDecoder().decode(r.stderr));
}

const SW = ["sweep", "--model", TINY, "--backend", "cpu", "--no-cache", "--items", "1"];
const GEN = ["generate", "--model", TINY, "--backend", "cpu", "--prompt", "name[A]\\n"];
const TR = ["--model", TINY, "--data", "{box}/small.csv", "--steps", "2", "--policy", "full"];
const TROUT = [...TR, "--out", "{box}/train-out"];

const CASES: Case[] = [
  // plan: numbers
  { args: ["plan", "--max-new-tokens", "1e9"], pattern: /--max-new-tokens .*"1e9"/ },
  { args: ["plan", "--max-new-tokens", "-1"], pattern: /--max-new-tokens .*from 1 .*"-1"/ },
  { args: ["plan", "--layers", "0x4"], pattern: /--layers .*"0x4"/ },
  { args: ["plan", "--layers", "4.0"], pattern: /--layers .*"4\.0"/ },
  { args: ["plan", "--layers", " 4"], pattern: /--layers .*" 4"/ },
  { args: ["plan", "--layers=", "--json"], pattern: /--layers .*""/ },
  { args: ["plan", "--layers", "99999999999999999999"], pattern: /--layers .*to 1024/ },
  { args: ["plan", "--prompt-length", "100000"], pattern: /--prompt-length .*100000/ },
  {
    args: ["plan", "--prompt-length", "16000", "--max-new-tokens", "16000"],
    pattern: /--prompt-length \+ --max-new-tokens .*16384/,
  },
  { args: ["plan", "--hidden", "1e3"], pattern: /--hidden .*"1e3"/ },
  { args: ["plan", "--policy", "linear:max=abc"], pattern: /key "max" needs a number, got "abc"/ },
  {
    args: ["plan", "--policy", "linear:max=12,min=abc"],
    pattern: /key "min" needs a number, got "abc"/,
  },
  { args: ["plan", "--policy", "linear:max=12,min=4,bogus=1"], pattern: /bogus/ },
  { args: ["plan", "--prompt-mode", "sideways"], pattern: /--prompt-mode .*sideways/ },
  // generate
  { args: [...GEN, "--max-new-tokens", "1e9"], pattern: /--max-new-tokens .*"1e9"/ },
  {
    args: [...GEN, "--max-new-tokens", "300"],
    pattern: /--max-new-tokens 300 is too large.*max_position_embeddings/,
  },
  { args: [...GEN, "--max-new-tokens", ""], pattern: /--max-new-tokens .*""/ },
  { args: [...GEN, "--batch-size", "0"], pattern: /--batch-size .*"0"/ },
  { args: [...GEN, "--batch-size", "1e9"], pattern: /--batch-size .*"1e9"/ },
  { args: [...GEN, "--temperature", "-1"], pattern: /--temperature .*"-1"/ },
  { args: [...GEN, "--temperature", "NaN"], pattern: /--temperature .*"NaN"/ },
  { args: [...GEN, "--top-p", "0"], pattern: /--top-p .*> 0/ },
  { args: [...GEN, "--top-p", "1.5"], pattern: /--top-p .*"1\.5"/ },
  { args: [...GEN, "--top-k", "-3"], pattern: /--top-k .*"-3"/ },
  { args: [...GEN, "--seed", "0x10"], pattern: /--seed .*"0x10"/ },
  { args: [...GEN, "--logits-topk", "0"], pattern: /--logits-topk/ },
  { args: [...GEN, "--chunk-size", "abc"], pattern: /--chunk-size .*"abc"/ },
  { args: [...GEN, "--backend", "tpu"], pattern: /--backend .*tpu/ },
  {
    args: [...GEN, "--prompt-file", "{box}/bad_utf8.txt"],
    pattern: /bad_utf8\.txt: line 2: not valid UTF-8/,
  },
  { args: [...GEN, "--prompt-file", "{box}/missing.txt"], pattern: /missing\.txt: not found/ },
  { args: [...GEN, "--prompt-file", "{box}/nonempty"], pattern: /nonempty: it is a folder/ },
  { args: [...GEN, "--prompt-file", "{box}/blank.txt"], pattern: /blank\.txt: no prompts/ },
  { args: [...GEN, "--prompt-file", "{box}/obj.json"], pattern: /obj\.json: expected a JSON/ },
  {
    args: ["generate", "--model", "{box}/model6", "--backend", "cpu", "--prompt", "x"],
    pattern: /model6\/config\.json: field "num_hidden_layers" is 6 .*decoder\.layers\.11/,
  },
  { args: ["generate", "--model", "{box}/nowhere", "--prompt", "x"], pattern: /nowhere/ },
  { args: ["generate", "--no-such-flag"], pattern: /--no-such-flag/ },
  // The launcher grants read to what the user names (cli/launch.ts), wherever it is: a
  // missing model or file outside the repository is "not found", not a permission error.
  {
    args: ["generate", "--model", "/opt/skipdecode-elsewhere", "--prompt", "x"],
    pattern: /\/opt\/skipdecode-elsewhere/,
  },
  {
    args: ["score", "--hyp", "/etc/hostname", "--ref", "/opt/skipdecode-elsewhere.txt"],
    pattern: /\/opt\/skipdecode-elsewhere\.txt: not found/,
  },
  // sweep
  { args: [...SW, "--max-new-tokens", "1e9", "--out", "{box}/o"], pattern: /"1e9"/ },
  {
    args: [...SW, "--max-new-tokens", "1000", "--out", "{box}/o"],
    pattern: /--max-new-tokens 1000 is too large/,
  },
  {
    args: [...SW, "--template", "", "--out", "{box}/o"],
    pattern: /--template must contain \{mr\}/,
  },
  { args: [...SW, "--template", "hello", "--out", "{box}/o"], pattern: /--template .*"hello"/ },
  { args: [...SW, "--template", "{name}", "--out", "{box}/o"], pattern: /--template .*\{name\}/ },
  { args: [...SW, "--template", "{{mr}}", "--out", "{box}/o"], pattern: /--template/ },
  {
    args: [...SW, "--data", "{box}/header.csv", "--out", "{box}/o"],
    pattern: /header\.csv: a header but no rows/,
  },
  { args: [...SW, "--data", "{box}/nothere.csv", "--out", "{box}/o"], pattern: /nothere\.csv/ },
  {
    args: [...SW, "--data", "{box}/long.csv", "--out", "{box}/o"],
    pattern: /item 1 \(input "word word.*-token prompt.*--truncate left/,
  },
  {
    args: [...SW, "--data", "{box}/tabs.csv", "--out", "{box}/o"],
    pattern: /tabs\.csv: .*looks like tab-separated: name it \.tsv/,
  },
  {
    args: [...SW, "--input-column", "text", "--out", "{box}/o"],
    pattern: /--input-column "text" is not a column \(columns: "mr", "ref"\)/,
  },
  {
    args: [...SW, "--data", "{box}/bad_utf8.csv", "--out", "{box}/o"],
    pattern: /bad_utf8\.csv: line 3: not valid UTF-8/,
  },
  { args: [...SW, "--items", "0", "--out", "{box}/o"], pattern: /--items .*"0"/ },
  { args: [...SW, "--items", "0x4", "--out", "{box}/o"], pattern: /--items .*"0x4"/ },
  { args: [...SW, "--batch-size", "-1", "--out", "{box}/o"], pattern: /--batch-size .*"-1"/ },
  { args: [...SW, "--oracle", "-1", "--out", "{box}/o"], pattern: /--oracle .*"-1"/ },
  { args: [...SW, "--nll", "some", "--out", "{box}/o"], pattern: /--nll .*some/ },
  { args: [...SW, "--metric", "speed", "--out", "{box}/o"], pattern: /--metric .*speed/ },
  { args: [...SW, "--speedup", "x", "--out", "{box}/o"], pattern: /--speedup .*"x"/ },
  { args: [...SW, "--out", "{box}/link/sweep"], pattern: /goes through the symbolic link/ },
  { args: [...SW, "--out", "{box}/afile"], pattern: /afile.* is not a folder/ },
  { args: [...SW, "--out", "{box}/afile/sub"], pattern: /afile exists and is not a folder/ },
  // the task's permissions decide: this test process may run chromium, the skipdecode task not
  {
    args: [...SW, "--png", "--out", "{box}/o"],
    pattern: /--png needs permission to run chromium/,
    process: true,
  },
  { args: [...SW, "--policy", "linear:max=abc", "--out", "{box}/o"], pattern: /"abc"/ },
  { args: [...SW, "--policy", "full", "--policy", "full", "--out", "{box}/o"], pattern: /twice/ },
  {
    args: ["sweep", "--model", "{box}/model6", "--backend", "cpu", "--out", "{box}/o"],
    pattern: /"num_hidden_layers" is 6/,
  },
  // score
  {
    args: ["score", "--hyp", "{box}/empty1.txt", "--ref", "{box}/empty2.txt"],
    pattern: /empty1\.txt is empty/,
  },
  {
    args: ["score", "--hyp", "{box}/bad_utf8.txt", "--ref", "{box}/two.txt"],
    pattern: /bad_utf8\.txt: line 2: not valid UTF-8/,
  },
  {
    args: ["score", "--hyp", "{box}/two.txt", "--ref", "{box}/bad_utf8.csv"],
    pattern: /reference file .*bad_utf8\.csv: line 3/,
  },
  { args: ["score", "--hyp", "{box}/two.txt", "--ref", "{box}/gone.txt"], pattern: /gone\.txt/ },
  {
    args: ["score", "--hyp", "{box}/two.txt", "--ref", "{box}/one.txt"],
    pattern: /one\.txt has 1 lines .* has 2/,
  },
  { args: ["score", "--hyp", "{box}/two.txt"], pattern: /--ref/ },
  { args: ["score", "--hyp", "{box}/nonempty", "--ref", "{box}/two.txt"], pattern: /folder/ },
  // tokenize, unknown command
  { args: ["tokenize", "--model", TINY], pattern: /--text is required/ },
  { args: ["tokenize", "--model", "{box}/nowhere", "--text", "x"], pattern: /nowhere/ },
  { args: ["tokenize", "--text", "x", "--bos=1"], pattern: /--bos/ },
  { args: ["frobnicate"], pattern: /unknown command "frobnicate" \(commands: / },
  // train: numbers, output folder, data, resume
  { task: "train", args: [...TROUT, "--batch-size", "1e9"], pattern: /--batch-size .*"1e9"/ },
  { task: "train", args: [...TROUT, "--batch-size", "1000"], pattern: /batchSize 1000 .*larger/ },
  { task: "train", args: [...TROUT, "--lr", "abc"], pattern: /--lr .*"abc"/ },
  { task: "train", args: [...TROUT, "--lr", "0"], pattern: /--lr must be a number > 0/ },
  { task: "train", args: [...TROUT, "--lr", "1e6"], pattern: /--lr .*<= 10.*"1e6"/ },
  { task: "train", args: [...TROUT, "--steps", "0"], pattern: /--steps .*"0"/ },
  { task: "train", args: [...TROUT, "--steps", "-5"], pattern: /--steps .*"-5"/ },
  { task: "train", args: [...TROUT, "--clip-norm", "-1"], pattern: /--clip-norm .*"-1"/ },
  { task: "train", args: [...TROUT, "--max-length", "1"], pattern: /--max-length .*"1"/ },
  { task: "train", args: [...TROUT, "--dtype", "F8"], pattern: /dtype must be "F32" or "F16"/ },
  {
    task: "train",
    args: [...TROUT, "--config", "{box}/big_batch.json"],
    pattern: /batchSize must be a whole number from 1 to 1024, got 1000000000/,
  },
  {
    task: "train",
    args: [...TR, "--out", "{box}/nonempty"],
    pattern: /--out .*nonempty is not empty \(keep\.txt\); pass --overwrite/,
  },
  {
    task: "train",
    args: [...TR, "--out", "/tmp/skipdecode-not-allowed"],
    pattern: /outside the folders this task may write/,
  },
  { task: "train", args: [...TR, "--out", "{box}/link/t"], pattern: /symbolic link/ },
  {
    task: "train",
    args: [...TROUT, "--data", "{box}/bad_utf8_train.txt"],
    pattern: /bad_utf8_train\.txt: line 3: not valid UTF-8/,
  },
  {
    task: "train",
    args: [...TROUT, "--data", "{box}/header.csv"],
    pattern: /header\.csv: a header but no rows/,
  },
  {
    task: "train",
    args: ["--resume", "{box}/no-such-run", "--out", "{box}/r"],
    pattern: /no-such-run\/trainer_state\.json to resume: no such file/,
  },
  {
    task: "train",
    args: ["--resume", "{box}/ck_corrupt", "--out", "{box}/r"],
    pattern: /ck_corrupt\/trainer_state\.json/,
  },
  {
    task: "train",
    args: ["--resume", "{box}/ck_nostate", "--out", "{box}/r"],
    pattern: /ck_nostate\/trainer_state\.json to resume: no such file/,
  },
  {
    task: "train",
    args: ["--resume", "{box}/ck_neg", "--out", "{box}/r"],
    pattern: /ck_neg\/trainer_state\.json: field "step" must be a whole number >= 0, got -7/,
  },
  {
    task: "train",
    args: ["--resume", "{box}/ck_99", "--steps", "4", "--out", "{box}/r"],
    pattern: /ck_99\/trainer_state\.json is at step 99, not below --steps 4/,
  },
  {
    task: "train",
    args: ["--resume", "{box}/ck_mismatch", "--steps", "5", "--out", "{box}/r"],
    pattern: /is at step 1 but optimizer\.safetensors beside it at step 2/,
  },
  {
    task: "train",
    args: ["--resume", "{box}/ck_noopt", "--steps", "5", "--out", "{box}/r"],
    pattern: /ck_noopt has no optimizer\.safetensors/,
  },
  // demo
  { task: "demo", args: ["--items", "0", "--offline"], pattern: /--items .*"0"/ },
  { task: "demo", args: ["--max-new-tokens", "1e9", "--offline"], pattern: /"1e9"/ },
  {
    task: "demo",
    args: ["--out", "/tmp/skipdecode-not-allowed", "--offline"],
    pattern: /outside the folders this task may write/,
  },
];

/**
 * Whether a case runs in a subprocess: the demo task (its own permissions), a path outside
 * the repository (the task's permissions decide what it may read or write), or the first case
 * of its command (`seen` holds the commands met so far).
 */
function needsProcess(c: Case, args: string[], seen: Set<string>): boolean {
  const command = c.task === "train" || c.task === "demo" ? c.task : args[0];
  const first = !seen.has(command);
  seen.add(command);
  return first || c.task === "demo" || c.process === true ||
    args.some((a) => a.startsWith("/") && !a.startsWith(`${ROOT}/`));
}

/** Runs the command line's `main` in this process, capturing its console output. */
async function inProcess(args: string[], task: Case["task"]): Promise<CliResult> {
  const entry = task === "train" || task === "demo" ? [task] : [];
  const stdout: string[] = [], stderr: string[] = [];
  const line = (xs: unknown[]) =>
    xs.map((x) => typeof x === "string" ? x : Deno.inspect(x)).join(" ") + "\n";
  const saved = { ...console };
  console.log = console.info = console.debug = (...xs: unknown[]) => stdout.push(line(xs));
  console.error = console.warn = (...xs: unknown[]) => stderr.push(line(xs));
  try {
    const code = await main([...entry, ...args]);
    return { code, stdout: stdout.join(""), stderr: stderr.join("") };
  } finally {
    Object.assign(console, saved);
  }
}

Deno.test(`cli: ${CASES.length} bad-input cases: exit 2, one line, nothing written or lost`, async () => {
  assert(CASES.length >= 60, `only ${CASES.length} cases`);
  using box = sandbox("bad-input");
  using outside = sandbox("outside"); // a folder the symbolic link points to
  Deno.writeTextFileSync(`${outside.dir}/precious.txt`, "do not touch\n");
  writeFixtures(box.dir);
  await symlink(outside.dir, `${box.dir}/link`);
  await writeResumeFixtures(box.dir, box.rel);
  const before = snapshot(box.dir);
  const beforeOutside = snapshot(outside.dir);
  const failures: string[] = [];
  const seen = new Set<string>();
  const cases = CASES.map((c) => {
    const args = c.args.map((a) => a.replaceAll("{box}", box.rel));
    return { c, args, process: needsProcess(c, args, seen) };
  });
  const spawned = cases.filter((x) => x.process);
  assert(spawned.length >= 10 && spawned.length < cases.length / 4, `${spawned.length} spawned`);
  // The subprocesses run while this process works through the rest, one case at a time.
  const children = pool(
    spawned,
    2,
    async (x) => ({ ...x, r: await cli(x.args, { task: x.c.task }) }),
  );
  const results = [];
  for (const x of cases.filter((x) => !x.process)) {
    results.push({ ...x, r: await inProcess(x.args, x.c.task) });
  }
  results.push(...await children);
  console.log(
    `  ${results.length - spawned.length} cases in this process, ${spawned.length} spawned`,
  );
  for (const { c, args, r, process } of results) {
    const what = `${c.task ?? "skipdecode"} ${args.join(" ")}${process ? "" : " (in process)"}`;
    // Deno's own note for `--allow-run=chromium` (the demo task) where chromium is absent.
    r.stderr = r.stderr.replace(/^Info Failed to resolve 'chromium' for allow-run[^\n]*\n/, "");
    if (r.code !== 2) failures.push(`${what}: exit ${r.code}\n${r.stderr}`);
    else if (!/^error: [^\n]+\n$/.test(r.stderr)) {
      failures.push(`${what}: stderr is not one error line:\n${r.stderr}`);
    } else if (!c.pattern.test(r.stderr)) {
      failures.push(`${what}: ${r.stderr.trim()} does not match ${c.pattern}`);
    } else console.log(`  ${r.stderr.trim().slice(0, 150)}`);
  }
  assertEquals(failures, []);
  // Nothing written or lost, in the sandbox or through the link.
  assertEquals(snapshot(box.dir), before);
  assertEquals(snapshot(outside.dir), beforeOutside);
  assertThrows(() => Deno.statSync("/tmp/skipdecode-not-allowed"), Deno.errors.NotFound);
});

Deno.test("cli: prompt and score files lose their byte-order mark", async () => {
  using box = sandbox("bom");
  const bom = new Uint8Array([0xef, 0xbb, 0xbf]);
  const text = new TextEncoder().encode("the cat sat on the mat\n");
  Deno.writeFileSync(`${box.dir}/hyp.txt`, new Uint8Array([...bom, ...text]));
  Deno.writeFileSync(`${box.dir}/ref.txt`, text);
  const s = await cli(["score", "--hyp", `${box.rel}/hyp.txt`, "--ref", `${box.rel}/ref.txt`]);
  assertEquals(s.code, 0, s.stderr);
  const bleu = JSON.parse(s.stdout).bleu;
  assert(Math.abs(bleu - 100) < 1e-9, `a BOM is not text: identical lines score 100, got ${bleu}`);
  Deno.writeFileSync(
    `${box.dir}/p.txt`,
    new Uint8Array([...bom, ...new TextEncoder().encode("name[Alimentum]\n")]),
  );
  const g = await cli([
    "generate",
    "--model",
    TINY,
    "--backend",
    "cpu",
    "--prompt",
    "name[Alimentum]",
    "--prompt-file",
    `${box.rel}/p.txt`,
    "--max-new-tokens",
    "4",
    "--json",
  ]);
  assertEquals(g.code, 0, g.stderr);
  const [plain, fromFile] = JSON.parse(g.stdout).results;
  assertEquals(fromFile.prompt, "name[Alimentum]", "the BOM is not part of the prompt");
  assertEquals(fromFile.ids, plain.ids);
  assert(plain.ids.length > 0);
});

Deno.test("cli: tokenize --no-bos drops BOS", async () => {
  const on = await cli(["tokenize", "--model", TINY, "--text", "Hello"]);
  const off = await cli(["tokenize", "--model", TINY, "--text", "Hello", "--no-bos"]);
  assertEquals(on.code, 0, on.stderr);
  assertEquals(off.code, 0, off.stderr);
  assertEquals(JSON.parse(on.stdout).ids, [2, 31414]);
  assertEquals(JSON.parse(off.stdout).ids, [31414]);
});

Deno.test("cli: training that diverges stops with one line, saves nothing", async () => {
  using box = sandbox("diverge");
  Deno.writeTextFileSync(
    `${box.dir}/small.csv`,
    'mr,ref\n"name[A], food[B]",A serves B.\n"name[C], food[D]",C serves D.\n' +
      '"name[E], food[F]",E serves F.\n',
  );
  const r = await cli([
    "--model",
    TINY,
    "--data",
    `${box.rel}/small.csv`,
    "--steps",
    "8",
    "--batch-size",
    "2",
    "--held-out",
    "1",
    "--eval-examples",
    "1",
    "--policy",
    "full",
    "--lr",
    "10",
    "--clip-norm",
    "0",
    "--warmup-steps",
    "0",
    "--out",
    `${box.rel}/run`,
    "--quiet",
  ], { task: "train" });
  assertEquals(r.code, 2, r.stderr);
  assertMatch(r.stderr, /^error: training diverged at step \d: .* Lower --lr \(now 10\)/);
  assertEquals(r.stderr.trim().split("\n").length, 1);
  assertEquals(snapshot(`${box.dir}/run`), {}, "no model saved, no folder left");
});
