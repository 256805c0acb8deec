/**
 * The adversarial harness of issue 20 (second reliability round): cases beyond
 * `tests/cli_bad_input_test.ts`'s table, each run against the command line (with a task's
 * exact permissions, offline) or the library, and classified:
 *
 * - `CLEAN-ERROR`: refused with exit 2 and one `error:` line matching what must be named;
 * - `CORRECT`: a valid setup that works and gives the checked result;
 * - `BREACH`: a file outside what the task may touch was read into output or written;
 * - `SILENT-WRONG`: exit 0 (or a result) where an error or another result was due;
 * - `UNCLEAR`: refused, but the message does not name what is at fault (or a valid setup
 *   refused);
 * - `HANG`: no answer within the case's time limit;
 * - `CRASH`: exit 1, an uncaught error or a stack trace;
 * - `LOST`: files the user had, or an earlier run wrote, are gone or mixed.
 *
 * Run it from the repository root (it plants links and FIFOs, so it needs `-A` itself;
 * the commands under test run with the tasks' permissions):
 *
 * ```sh
 * XDG_RUNTIME_DIR=/tmp/xdg npx -y deno@2.9.6 run -A tests/adversarial/harness.ts [FILTER]
 * ```
 *
 * It prints one line per case and the counts per class, and exits 1 when any case is in a
 * bad class. 45 s on a quiet 2-core machine, 4 minutes at load average 14.
 *
 * @module
 */
import { cli, type CliResult, ROOT, sandbox } from "../cli_helpers.ts";
import { writeRandomCheckpoint } from "../../model/fixture.ts";
import { openSafetensors } from "../../model/safetensors.ts";
import { OutputFolder } from "../../io/output.ts";
import { saveCheckpoint } from "../../train/checkpoint.ts";
import { ParamSet } from "../../train/param_set.ts";
import { fixtureConfig } from "../../model/fixture.ts";

type Verdict =
  | "CLEAN-ERROR"
  | "CORRECT"
  | "BREACH"
  | "SILENT-WRONG"
  | "UNCLEAR"
  | "HANG"
  | "CRASH"
  | "LOST";
const BAD: Verdict[] = ["BREACH", "SILENT-WRONG", "UNCLEAR", "HANG", "CRASH", "LOST"];

interface Box {
  dir: string;
  rel: string;
}
interface Case {
  name: string;
  run: (box: Box) => Promise<[Verdict, string]>;
}

const TINY = `${ROOT}/bundled/models/tiny-opt-e2e`;
const SECRET = "HARNESS-SECRET-7f3a";
const SHAPE = {
  vocabSize: 50272,
  hiddenSize: 16,
  numAttentionHeads: 2,
  ffnDim: 24,
  numHiddenLayers: 2,
  maxPositionEmbeddings: 64,
};

// ------------------------------------------------------------------ helpers

function sh(cmd: string[]): void {
  const r = new Deno.Command(cmd[0], { args: cmd.slice(1) }).outputSync();
  if (!r.success) throw new Error(`${cmd.join(" ")}: ${new TextDecoder().decode(r.stderr)}`);
}

/** A small random model with OPT's tokenizer, in `dir`. */
function model(dir: string, dtype: "F32" | "F16" = "F32"): string {
  writeRandomCheckpoint(dir, { shape: SHAPE, dtype, seed: 5, tokenizerDir: TINY });
  return dir;
}

function poke(dir: string, stored: string, i: number, value: number): void {
  const t = openSafetensors(`${dir}/model.safetensors`).tensors.get(stored)!;
  const f = Deno.openSync(`${dir}/model.safetensors`, { write: true });
  f.seekSync(t.offset + (t.dtype === "F32" ? 4 : 2) * i, Deno.SeekMode.Start);
  const bytes = t.dtype === "F32"
    ? new Uint8Array(new Float32Array([value]).buffer)
    : new Uint8Array(new Uint16Array([Number.isNaN(value) ? 0x7e00 : 0x7c00]).buffer);
  f.writeSync(bytes);
  f.close();
}

function tree(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string, p: string) => {
    for (const e of Deno.readDirSync(d)) {
      const path = `${d}/${e.name}`;
      if (e.isDirectory) walk(path, `${p}${e.name}/`);
      else if (e.isFile && e.name !== ".skipdecode.lock") {
        out[`${p}${e.name}`] = String(Deno.statSync(path).size) + ":" +
          String(Deno.readFileSync(path).reduce((a, b) => (a * 31 + b) >>> 0, 7));
      }
    }
  };
  try {
    walk(dir, "");
  } catch { /* missing */ }
  return out;
}

function same(a: Record<string, string>, b: Record<string, string>): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

async function run(
  args: string[],
  options: { env?: Record<string, string>; task?: string; ms?: number } = {},
): Promise<CliResult | "HANG"> {
  const ac = new AbortController();
  const timer = setTimeout(() => ac.abort(), options.ms ?? 90_000);
  try {
    return await cli(args, { env: options.env, task: options.task, signal: ac.signal });
  } catch (e) {
    if (ac.signal.aborted) return "HANG";
    throw e;
  } finally {
    clearTimeout(timer);
  }
}

/** Classifies a run that must be refused with a message matching `want`. */
function refused(r: CliResult | "HANG", want: RegExp): [Verdict, string] {
  if (r === "HANG") return ["HANG", "no answer"];
  const err = r.stderr.trim();
  if (r.code === 0) return ["SILENT-WRONG", `exit 0: ${r.stdout.slice(0, 120)}`];
  if (r.code !== 2 || /^\s+at |Uncaught|panicked/m.test(err)) {
    return ["CRASH", `exit ${r.code}: ${err.split("\n").slice(-3).join(" | ").slice(0, 200)}`];
  }
  const line = err.split("\n").filter((l) => l.startsWith("error:")).pop() ?? err;
  if (err.includes(SECRET)) return ["BREACH", `secret bytes in the message: ${line}`];
  if (!want.test(line)) return ["UNCLEAR", line.slice(0, 220)];
  return ["CLEAN-ERROR", line.slice(0, 160)];
}

/** Classifies a run that must succeed, with `check` on its result (a problem or ""). */
function succeeded(r: CliResult | "HANG", check: (r: CliResult) => string): [Verdict, string] {
  if (r === "HANG") return ["HANG", "no answer"];
  if (r.code !== 0) {
    const line = r.stderr.trim().split("\n").pop() ?? "";
    return [r.code === 2 ? "UNCLEAR" : "CRASH", `valid setup refused: ${line.slice(0, 200)}`];
  }
  const problem = check(r);
  return problem ? ["SILENT-WRONG", problem] : ["CORRECT", "ok"];
}

/** Refused, and the given folders unchanged (else BREACH / LOST). */
async function refusedKeeping(
  box: Box,
  args: string[],
  want: RegExp,
  keep: { breach?: string[]; lost?: string[] },
  options: { env?: Record<string, string>; task?: string } = {},
): Promise<[Verdict, string]> {
  const b = (keep.breach ?? []).map((d) => [d, tree(d)] as const);
  const l = (keep.lost ?? []).map((d) => [d, tree(d)] as const);
  const r = await run(args.map((a) => a.replaceAll("{box}", box.rel)), options);
  for (const [d, t] of b) if (!same(tree(d), t)) return ["BREACH", `${d} was written`];
  for (const [d, t] of l) if (!same(tree(d), t)) return ["LOST", `${d} changed`];
  return refused(r, want);
}

async function libThrows(fn: () => unknown, want: RegExp): Promise<[Verdict, string]> {
  try {
    await fn();
    return ["SILENT-WRONG", "no error"];
  } catch (e) {
    const m = (e as Error).message ?? String(e);
    if (m.includes(SECRET)) return ["BREACH", m];
    if (
      !/Error$/.test((e as Error).name ?? "") || (e as Error).name === "TypeError" && !want.test(m)
    ) {
      return ["CRASH", `${(e as Error).name}: ${m.slice(0, 160)}`];
    }
    return want.test(m) ? ["CLEAN-ERROR", m.slice(0, 160)] : ["UNCLEAR", m.slice(0, 200)];
  }
}

const GEN = (m: string) => [
  "generate",
  "--model",
  m,
  "--backend",
  "cpu",
  "--prompt",
  "name[A]\\n",
  "--max-new-tokens",
  "2",
];
const SMALL_CSV = 'mr,ref\n"name[A], food[B]",A serves B.\n"name[C], food[D]",C serves D.\n' +
  '"name[E], food[F]",E serves F.\n';
const TRAIN = (m: string, out: string) => [
  "--model",
  m,
  "--data",
  "{box}/small.csv",
  "--steps",
  "1",
  "--batch-size",
  "1",
  "--held-out",
  "1",
  "--eval-examples",
  "1",
  "--policy",
  "full",
  "--out",
  out,
  "--quiet",
];

// ------------------------------------------------------------------ cases

const CASES: Case[] = [];
const add = (name: string, run: Case["run"]) => CASES.push({ name, run });

// 1. writes through planted links
add("train --out: .skipdecode.lock linked to a victim file", async (box) => {
  Deno.mkdirSync(`${box.dir}/victim`);
  Deno.writeTextFileSync(`${box.dir}/victim/v.txt`, "precious\n");
  Deno.mkdirSync(`${box.dir}/t`);
  Deno.symlinkSync(`${box.dir}/victim/v.txt`, `${box.dir}/t/.skipdecode.lock`);
  Deno.writeTextFileSync(`${box.dir}/small.csv`, SMALL_CSV);
  return await refusedKeeping(
    box,
    TRAIN(TINY, "{box}/t"),
    /\.skipdecode\.lock is a symbolic link/,
    {
      breach: [`${box.dir}/victim`],
    },
    { task: "train" },
  );
});
add("convert --out: .skipdecode.lock linked to a README copy", async (box) => {
  Deno.mkdirSync(`${box.dir}/victim`);
  Deno.copyFileSync(`${ROOT}/README.md`, `${box.dir}/victim/README.md`);
  Deno.mkdirSync(`${box.dir}/c`);
  Deno.symlinkSync(`${box.dir}/victim/README.md`, `${box.dir}/c/.skipdecode.lock`);
  return await refusedKeeping(
    box,
    ["convert", "--model", model(`${box.dir}/m`), "--out", "{box}/c"],
    /\.skipdecode\.lock is a symbolic link/,
    { breach: [`${box.dir}/victim`] },
  );
});
add("sweep --out: .skipdecode.lock hard-linked to a victim", async (box) => {
  Deno.mkdirSync(`${box.dir}/victim`);
  Deno.writeTextFileSync(`${box.dir}/victim/v.txt`, "precious\n");
  Deno.mkdirSync(`${box.dir}/s`);
  Deno.linkSync(`${box.dir}/victim/v.txt`, `${box.dir}/s/.skipdecode.lock`);
  return await refusedKeeping(
    box,
    [
      "sweep",
      "--model",
      TINY,
      "--backend",
      "cpu",
      "--items",
      "1",
      "--max-new-tokens",
      "2",
      "--out",
      "{box}/s",
    ],
    /hard-linked elsewhere/,
    { breach: [`${box.dir}/victim`] },
  );
});
add("train --overwrite: checkpoint-1 linked to a folder outside", async (box) => {
  Deno.mkdirSync(`${box.dir}/victim`);
  Deno.mkdirSync(`${box.dir}/t`);
  Deno.writeTextFileSync(`${box.dir}/t/old.txt`, "x");
  Deno.symlinkSync(`${box.dir}/victim`, `${box.dir}/t/checkpoint-1`);
  Deno.writeTextFileSync(`${box.dir}/small.csv`, SMALL_CSV);
  const args = [...TRAIN(TINY, "{box}/t"), "--steps", "2", "--save-every", "1", "--overwrite"];
  return await refusedKeeping(box, args, /checkpoint-1 is a symbolic link; refused/, {
    breach: [`${box.dir}/victim`],
  }, { task: "train" });
});
add("sweep --out: report.md planted as a link to a victim", async (box) => {
  Deno.mkdirSync(`${box.dir}/victim`);
  Deno.writeTextFileSync(`${box.dir}/victim/v.txt`, "precious\n");
  Deno.mkdirSync(`${box.dir}/s`);
  Deno.symlinkSync(`${box.dir}/victim/v.txt`, `${box.dir}/s/report.md`);
  return await refusedKeeping(
    box,
    [
      "sweep",
      "--model",
      TINY,
      "--backend",
      "cpu",
      "--no-cache",
      "--items",
      "1",
      "--max-new-tokens",
      "2",
      "--policy",
      "full",
      "--nll",
      "none",
      "--out",
      "{box}/s",
    ],
    /report\.md is a symbolic link; refused/,
    { breach: [`${box.dir}/victim`] },
  );
});
for (const via of ["--cache-dir", "SKIPDECODE_CACHE_DIR"]) {
  add(`sweep: ${via} is a link to a folder outside`, async (box) => {
    Deno.mkdirSync(`${box.dir}/victim`);
    Deno.symlinkSync(`${box.dir}/victim`, `${box.dir}/cache`);
    const args = [
      "sweep",
      "--model",
      TINY,
      "--backend",
      "cpu",
      "--items",
      "1",
      "--max-new-tokens",
      "2",
      "--policy",
      "full",
      "--nll",
      "none",
      "--out",
      `${box.rel}/s`,
    ];
    const r = await run(
      via === "--cache-dir" ? [...args, "--cache-dir", `${box.rel}/cache`] : args,
      via === "--cache-dir" ? {} : { env: { SKIPDECODE_CACHE_DIR: `${box.rel}/cache` } },
    );
    if ([...Deno.readDirSync(`${box.dir}/victim`)].length > 0) {
      return ["BREACH", "cache written through the link"];
    }
    return succeeded(r, (x) => /symbolic link/.test(x.stderr) ? "" : "no note about the link");
  });
}

// 2. model-folder files leading outside the folder
for (
  const name of [
    "config.json",
    "vocab.json",
    "merges.txt",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "model.safetensors",
  ]
) {
  add(`generate: ${name} is a link to a secret file outside`, async (box) => {
    Deno.writeTextFileSync(`${box.dir}/secret.txt`, `{"${SECRET}": 1}\n`);
    const m = model(`${box.dir}/m`);
    try {
      Deno.removeSync(`${m}/${name}`);
    } catch { /* absent */ }
    Deno.symlinkSync(`${box.dir}/secret.txt`, `${m}/${name}`);
    return refused(
      await run(GEN(m)),
      new RegExp(`${name.replace(".", "\\.")} leads to .*secret\\.txt, outside`),
    );
  });
}
add("generate: a shard named in the index is a link outside", async (box) => {
  const m = `${box.dir}/m`;
  writeRandomCheckpoint(m, { shape: SHAPE, dtype: "F32", sharded: 2, tokenizerDir: TINY });
  const shard = [...Deno.readDirSync(m)].map((e) => e.name).find((n) => /^model-00001/.test(n))!;
  Deno.renameSync(`${m}/${shard}`, `${box.dir}/${shard}`);
  Deno.symlinkSync(`${box.dir}/${shard}`, `${m}/${shard}`);
  return refused(await run(GEN(m)), /model-00001.* leads to .*, outside the model folder/);
});
add("generate: config.json is a dangling link", async (box) => {
  const m = model(`${box.dir}/m`);
  Deno.removeSync(`${m}/config.json`);
  Deno.symlinkSync(`${box.dir}/nowhere.json`, `${m}/config.json`);
  return refused(await run(GEN(m)), /config\.json is a symbolic link to nothing/);
});
add("generate: a link inside the folder (config.json -> real.json) loads", async (box) => {
  const m = model(`${box.dir}/m`);
  Deno.renameSync(`${m}/config.json`, `${m}/real.json`);
  Deno.symlinkSync("real.json", `${m}/config.json`);
  return succeeded(
    await run([...GEN(m), "--json"]),
    (r) => JSON.parse(r.stdout).results ? "" : "no results",
  );
});

// HF caches
function hfCache(box: Box, at: string): string {
  const src = model(`${box.dir}/src`);
  const repo = `${at}/models--org--tiny`;
  Deno.mkdirSync(`${repo}/blobs`, { recursive: true });
  Deno.mkdirSync(`${repo}/snapshots/${"a".repeat(40)}`, { recursive: true });
  Deno.mkdirSync(`${repo}/refs`, { recursive: true });
  Deno.writeTextFileSync(`${repo}/refs/main`, "a".repeat(40));
  for (const e of Deno.readDirSync(src)) {
    Deno.copyFileSync(`${src}/${e.name}`, `${repo}/blobs/${e.name}-blob`);
    Deno.symlinkSync(`../../blobs/${e.name}-blob`, `${repo}/snapshots/${"a".repeat(40)}/${e.name}`);
  }
  return repo;
}
add("generate: a hand-made HF cache with snapshot links into blobs/ (hub id)", async (box) => {
  hfCache(box, `${box.dir}/hub`);
  const r = await run([
    "generate",
    "--model",
    "org/tiny",
    "--backend",
    "cpu",
    "--prompt",
    "x",
    "--max-new-tokens",
    "1",
    "--json",
  ], { env: { HF_HUB_CACHE: `${box.rel}/hub` } });
  return succeeded(r, (x) => JSON.parse(x.stdout).results?.length === 1 ? "" : "no result");
});
add(
  "generate: the same HF cache reached through a symlinked parent (~/.cache a link)",
  async (box) => {
    hfCache(box, `${box.dir}/real/hub`);
    Deno.symlinkSync(`${box.dir}/real`, `${box.dir}/cachelink`);
    const r = await run([
      "generate",
      "--model",
      "org/tiny",
      "--backend",
      "cpu",
      "--prompt",
      "x",
      "--max-new-tokens",
      "1",
      "--json",
    ], { env: { HF_HUB_CACHE: `${box.rel}/cachelink/hub` } });
    return succeeded(r, (x) => JSON.parse(x.stdout).results?.length === 1 ? "" : "no result");
  },
);
add("generate: a snapshot link into another repository's blobs", async (box) => {
  const repo = hfCache(box, `${box.dir}/hub`);
  Deno.mkdirSync(`${box.dir}/hub/models--org--other/blobs`, { recursive: true });
  Deno.writeTextFileSync(`${box.dir}/hub/models--org--other/blobs/c`, `{"${SECRET}":1}`);
  const snap = `${repo}/snapshots/${"a".repeat(40)}`;
  Deno.removeSync(`${snap}/config.json`);
  Deno.symlinkSync(`${box.dir}/hub/models--org--other/blobs/c`, `${snap}/config.json`);
  return refused(await run(GEN(snap)), /config\.json leads to .*models--org--other.*outside/);
});
add("generate: HF_HUB_CACHE outside the task's read scope", async () => {
  const r = await run(["generate", "--model", "org/tiny", "--prompt", "x"], {
    env: { HF_HUB_CACHE: "/var/skipdecode-nowhere" },
  });
  return refused(r, /may not be read by this process|not allowed to do that/);
});

// 3. FIFOs, devices, sizes
function fifo(path: string): void {
  sh(["mkfifo", path]);
}
add("generate --prompt-file: a FIFO", async (box) => {
  fifo(`${box.dir}/p.txt`);
  return refused(
    await run([...GEN(TINY).slice(0, 5), "--prompt-file", `${box.rel}/p.txt`], { ms: 30_000 }),
    /p\.txt is a FIFO/,
  );
});
add("score --hyp: a FIFO", async (box) => {
  fifo(`${box.dir}/h.txt`);
  Deno.writeTextFileSync(`${box.dir}/r.txt`, "a\n");
  return refused(
    await run(["score", "--hyp", `${box.rel}/h.txt`, "--ref", `${box.rel}/r.txt`], { ms: 30_000 }),
    /h\.txt is a FIFO/,
  );
});
add("score --ref: a FIFO", async (box) => {
  fifo(`${box.dir}/r.txt`);
  Deno.writeTextFileSync(`${box.dir}/h.txt`, "a\n");
  return refused(
    await run(["score", "--hyp", `${box.rel}/h.txt`, "--ref", `${box.rel}/r.txt`], { ms: 30_000 }),
    /r\.txt is a FIFO/,
  );
});
add("generate: config.json is a FIFO", async (box) => {
  const m = model(`${box.dir}/m`);
  Deno.removeSync(`${m}/config.json`);
  fifo(`${m}/config.json`);
  return refused(await run(GEN(m), { ms: 30_000 }), /config\.json is a FIFO/);
});
add("generate: vocab.json is a FIFO", async (box) => {
  const m = model(`${box.dir}/m`);
  Deno.removeSync(`${m}/vocab.json`);
  fifo(`${m}/vocab.json`);
  return refused(await run(GEN(m), { ms: 30_000 }), /vocab\.json is a FIFO/);
});
add("sweep --data: a FIFO", async (box) => {
  fifo(`${box.dir}/d.csv`);
  return refused(
    await run([
      "sweep",
      "--model",
      TINY,
      "--backend",
      "cpu",
      "--data",
      `${box.rel}/d.csv`,
      "--out",
      `${box.rel}/s`,
    ], { ms: 30_000 }),
    /d\.csv is a FIFO/,
  );
});
add("train --data: a FIFO", async (box) => {
  fifo(`${box.dir}/small.csv`);
  return refused(
    await run(TRAIN(TINY, `${box.rel}/t`).map((a) => a.replace("{box}", box.rel)), {
      task: "train",
      ms: 30_000,
    }),
    /small\.csv is a FIFO/,
  );
});
add("train --config: a FIFO", async (box) => {
  fifo(`${box.dir}/c.json`);
  return refused(
    await run(["--config", `${box.rel}/c.json`, "--out", `${box.rel}/t`], {
      task: "train",
      ms: 30_000,
    }),
    /c\.json is a FIFO/,
  );
});
add("generate --prompt-file: a link to /dev/zero", async (box) => {
  Deno.symlinkSync("/dev/zero", `${box.dir}/z.txt`);
  return refused(
    await run([...GEN(TINY).slice(0, 5), "--prompt-file", `${box.rel}/z.txt`], { ms: 30_000 }),
    /z\.txt is a character device/,
  );
});
add("score --hyp: a folder", async (box) => {
  Deno.mkdirSync(`${box.dir}/h`);
  Deno.writeTextFileSync(`${box.dir}/r.txt`, "a\n");
  return refused(
    await run(["score", "--hyp", `${box.rel}/h`, "--ref", `${box.rel}/r.txt`]),
    /h is a folder|it is a folder/,
  );
});

// 4. malformed tokenizer configs and mismatched tokenizers
for (
  const [what, json, want] of [
    [
      "additional_special_tokens a string",
      { additional_special_tokens: "<x>" },
      /tokenizer_config\.json: "additional_special_tokens" must be a list/,
    ],
    [
      "a null added_tokens_decoder entry",
      { added_tokens_decoder: { "5": null } },
      /tokenizer_config\.json: "added_tokens_decoder" entry 5/,
    ],
    [
      "bos_token a number",
      { bos_token: 7 },
      /tokenizer_config\.json: "bos_token" must be a string/,
    ],
    [
      "added_tokens_decoder an array",
      { added_tokens_decoder: [1] },
      /tokenizer_config\.json: "added_tokens_decoder" must be an object/,
    ],
    [
      "pad_token an object without content",
      { pad_token: { x: 1 } },
      /tokenizer_config\.json: "pad_token" must be a string/,
    ],
  ] as const
) {
  add(`generate: tokenizer_config.json with ${what}`, async (box) => {
    const m = model(`${box.dir}/m`);
    Deno.writeTextFileSync(`${m}/tokenizer_config.json`, JSON.stringify(json));
    return refused(await run(GEN(m)), want);
  });
}
add("generate: a 3-token vocabulary for a 50272-row model", async (box) => {
  const m = model(`${box.dir}/m`);
  for (const n of ["tokenizer_config.json", "special_tokens_map.json"]) {
    Deno.removeSync(`${m}/${n}`);
  }
  Deno.writeTextFileSync(`${m}/vocab.json`, JSON.stringify({ "<s>": 0, "<pad>": 1, "</s>": 2 }));
  Deno.writeTextFileSync(`${m}/merges.txt`, "#version: 0.2\n");
  return refused(await run(GEN(m)), /has only 3 ids, fewer than the 256 byte symbols/);
});
for (const field of ["pad_token_id", "eos_token_id", "bos_token_id"]) {
  add(`generate: config.json ${field} 60000 past the vocabulary`, async (box) => {
    const m = model(`${box.dir}/m`);
    const cfg = JSON.parse(Deno.readTextFileSync(`${m}/config.json`));
    Deno.writeTextFileSync(`${m}/config.json`, JSON.stringify({ ...cfg, [field]: 60000 }));
    return refused(
      await run(GEN(m)),
      new RegExp(`config\\.json.*${field}.*60000.*below vocab_size`),
    );
  });
}

// 5. non-finite weights
for (
  const [where, stored, value, dtype, backend] of [
    ["layers.1.fc1.weight NaN", "model.decoder.layers.1.fc1.weight", NaN, "F32", "cpu"],
    ["layers.1.fc1.weight NaN", "model.decoder.layers.1.fc1.weight", NaN, "F32", "webgpu"],
    ["final_layer_norm +Inf", "model.decoder.final_layer_norm.weight", Infinity, "F32", "cpu"],
    ["final_layer_norm +Inf", "model.decoder.final_layer_norm.weight", Infinity, "F32", "webgpu"],
    ["embed_tokens NaN (f16)", "model.decoder.embed_tokens.weight", NaN, "F16", "cpu"],
    [
      "self_attn.q_proj.bias -Inf (f16)",
      "model.decoder.layers.0.self_attn.q_proj.bias",
      -Infinity,
      "F16",
      "cpu",
    ],
  ] as const
) {
  add(`generate --backend ${backend}: ${where}`, async (box) => {
    const m = model(`${box.dir}/m`, dtype);
    poke(m, stored, 3, value);
    const args = GEN(m);
    args[4] = backend;
    return refused(
      await run(args),
      new RegExp(`tensor ${stored.replaceAll(".", "\\.")} in .* holds`),
    );
  });
}
add("train: a NaN weight is named, not blamed on the learning rate", async (box) => {
  const m = model(`${box.dir}/m`);
  poke(m, "model.decoder.layers.0.fc2.weight", 1, NaN);
  Deno.writeTextFileSync(`${box.dir}/small.csv`, SMALL_CSV);
  const r = await run(TRAIN(m, "{box}/t").map((a) => a.replace("{box}", box.rel)), {
    task: "train",
  });
  return refused(r, /tensor model\.decoder\.layers\.0\.fc2\.weight .* holds NaN/);
});
add("sweep: a NaN weight is an error, not BLEU 0 and NLL NaN", async (box) => {
  const m = model(`${box.dir}/m`);
  poke(m, "model.decoder.layers.0.fc2.weight", 1, NaN);
  const r = await run([
    "sweep",
    "--model",
    m,
    "--backend",
    "cpu",
    "--no-cache",
    "--items",
    "1",
    "--max-new-tokens",
    "2",
    "--out",
    `${box.rel}/s`,
  ]);
  return refused(r, /tensor model\.decoder\.layers\.0\.fc2\.weight .* holds NaN/);
});

add("generate: a 4 KB pytorch_model.bin of stride-0 views declaring 2^52 elements", async (box) => {
  const { writeTorchBin } = await import("../../bench/torch_bin_writer.ts");
  const m = model(`${box.dir}/m`);
  Deno.removeSync(`${m}/model.safetensors`);
  writeTorchBin(`${m}/pytorch_model.bin`, {
    storages: [{ key: "0", dtype: "F16", numel: 2, data: new Uint8Array(4) }],
    tensors: [{
      name: "decoder.embed_tokens.weight",
      storage: "0",
      offset: 0,
      shape: [2 ** 26, 2 ** 26],
      stride: [0, 0],
    }],
  });
  return refused(await run(GEN(m), { ms: 60_000 }), /more than its storage 0 holds/);
});

// 6. the cache key
add(
  "sweep: re-pointing a symlinked model.safetensors is not served from the cache",
  async (box) => {
    const a = model(`${box.dir}/a`);
    writeRandomCheckpoint(`${box.dir}/b`, {
      shape: SHAPE,
      dtype: "F32",
      seed: 9,
      tokenizerDir: TINY,
    });
    Deno.mkdirSync(`${a}/w`);
    Deno.renameSync(`${a}/model.safetensors`, `${a}/w/a.safetensors`);
    Deno.copyFileSync(`${box.dir}/b/model.safetensors`, `${a}/w/b.safetensors`);
    Deno.symlinkSync("w/a.safetensors", `${a}/model.safetensors`);
    const args = [
      "sweep",
      "--model",
      a,
      "--backend",
      "cpu",
      "--items",
      "1",
      "--max-new-tokens",
      "2",
      "--policy",
      "full",
      "--nll",
      "none",
      "--out",
      `${box.rel}/s`,
      "--json",
    ];
    const env = { SKIPDECODE_CACHE_DIR: `${box.rel}/cache` };
    const first = await run(args, { env });
    if (first === "HANG" || first.code !== 0) return succeeded(first, () => "");
    Deno.removeSync(`${a}/model.safetensors`);
    Deno.symlinkSync("w/b.safetensors", `${a}/model.safetensors`);
    const second = await run(args, { env });
    return succeeded(
      second,
      (r) =>
        JSON.parse(r.stdout).rows.some((x: { cached: boolean }) => x.cached)
          ? "stale cached row reused"
          : "",
    );
  },
);

// 7. lost reports
add("readout --out into a finished sweep's folder", async (box) => {
  const s = OutputFolder.open(`${box.rel}/s`, { owner: "sweep" });
  s.writeSet({
    "report.md": "# r\n",
    "sweep.json": "{}\n",
    "generations.jsonl": "{}\n",
    "frontier.html": "<html/>\n",
  });
  s.close();
  return await refusedKeeping(
    box,
    [
      "readout",
      "--model",
      TINY,
      "--backend",
      "cpu",
      "--prompt",
      "x",
      "--max-new-tokens",
      "1",
      "--out",
      "{box}/s",
    ],
    /holds the files of a sweep run/,
    { lost: [`${box.dir}/s`] },
  );
});
add("convert into a non-empty folder without --overwrite", async (box) => {
  Deno.mkdirSync(`${box.dir}/c`);
  Deno.writeTextFileSync(`${box.dir}/c/tokenizer.json`, "{}");
  return await refusedKeeping(
    box,
    ["convert", "--model", model(`${box.dir}/m`), "--out", "{box}/c"],
    /--out .*c is not empty \(tokenizer\.json\); pass --overwrite/,
    { lost: [`${box.dir}/c`] },
  );
});
add(
  "convert --overwrite: an old tokenizer.json and optimizer state do not survive",
  async (box) => {
    Deno.mkdirSync(`${box.dir}/c`);
    Deno.writeTextFileSync(`${box.dir}/c/tokenizer.json`, '{"old":1}');
    Deno.writeTextFileSync(`${box.dir}/c/optimizer.safetensors`, "old");
    const r = await run([
      "convert",
      "--model",
      model(`${box.dir}/m`),
      "--out",
      `${box.rel}/c`,
      "--overwrite",
    ]);
    return succeeded(r, () => {
      const names = [...Deno.readDirSync(`${box.dir}/c`)].map((e) => e.name);
      return names.includes("tokenizer.json") || names.includes("optimizer.safetensors")
        ? `kept ${names}`
        : "";
    });
  },
);

// 8. checkpoints: mixed sets and resume
const KSHAPE = fixtureConfig({
  vocabSize: 50272,
  hiddenSize: 16,
  numAttentionHeads: 2,
  ffnDim: 24,
  numHiddenLayers: 2,
}, "F32");
function ksave(dir: string, k: number): void {
  const f = () => {
    const p = new ParamSet(KSHAPE, "f32");
    for (const a of p.arrays) a.fill(k / 100);
    return p;
  };
  saveCheckpoint(dir, {
    params: f(),
    adam: { m: f(), v: f(), step: k },
    trainerState: { step: k },
  });
}
add("resume: model.safetensors of step 4 beside the optimizer and state of step 2", async (box) => {
  const { loadTrainingCheckpoint } = await import("../../train/checkpoint.ts");
  ksave(`${box.dir}/a`, 2);
  ksave(`${box.dir}/b`, 4);
  Deno.copyFileSync(`${box.dir}/b/model.safetensors`, `${box.dir}/a/model.safetensors`);
  return await libThrows(
    () => loadTrainingCheckpoint(`${box.dir}/a`),
    /does not hold one complete save: model\.safetensors/,
  );
});
add("resume: trainer_state.json edited after the save", async (box) => {
  const { loadTrainingCheckpoint } = await import("../../train/checkpoint.ts");
  ksave(`${box.dir}/a`, 2);
  Deno.writeTextFileSync(`${box.dir}/a/trainer_state.json`, JSON.stringify({ step: 1 }));
  return await libThrows(
    () => loadTrainingCheckpoint(`${box.dir}/a`),
    /trainer_state\.json \(changed since the save\)/,
  );
});
add("resume: optimizer.safetensors deleted after the save", async (box) => {
  const { loadTrainingCheckpoint } = await import("../../train/checkpoint.ts");
  ksave(`${box.dir}/a`, 2);
  Deno.removeSync(`${box.dir}/a/optimizer.safetensors`);
  return await libThrows(
    () => loadTrainingCheckpoint(`${box.dir}/a`),
    /optimizer\.safetensors \(missing\)/,
  );
});
add("an interrupt during a held save: exit 130 after the save", async () => {
  const url = new URL("../../io/output.ts", import.meta.url).href;
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "eval",
      `import { withInterruptsHeld } from ${
        JSON.stringify(url)
      }; console.log("s"); withInterruptsHeld(() => { const t = Date.now(); while (Date.now() - t < 1200) {} console.log("saved"); }); await new Promise((r) => setTimeout(r, 2500)); console.log("on");`,
    ],
    stdout: "piped",
    stderr: "null",
  }).spawn();
  const reader = child.stdout.getReader();
  let text = new TextDecoder().decode((await reader.read()).value); // "s": inside the script
  await new Promise((r) => setTimeout(r, 300));
  child.kill("SIGTERM");
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    text += new TextDecoder().decode(value);
  }
  const out = await child.status;
  if (out.code === 130 && text.includes("saved") && !text.includes("on")) {
    return ["CORRECT", "exit 130 after the save"];
  }
  return ["SILENT-WRONG", `exit ${out.code}: ${text.replaceAll("\n", " ")}`];
});

// 9. library misuse
const lib = async () => {
  const { generate, loadModel } = await import("../../decode/mod.ts");
  return { generate, model: await loadModel(TINY, { backend: "cpu", onNote: () => {} }) };
};
for (
  const [what, prompts, options, want] of [
    ["logitsTopK NaN", ["a"], { logitsTopK: NaN }, /logitsTopK must be a whole number/],
    [
      "logitsTopK 1e9",
      ["a"],
      { logitsTopK: 1e9 },
      /logitsTopK must be a whole number from 1 to 50272/,
    ],
    ["seed NaN", ["a"], { sampling: { temperature: 1, seed: NaN } }, /sampling\.seed/],
    ["seed 1.5", ["a"], { sampling: { temperature: 1, seed: 1.5 } }, /sampling\.seed/],
    [
      "seed 2^32",
      ["a"],
      { sampling: { temperature: 1, seed: 2 ** 32 } },
      /sampling\.seed .* 4294967295/,
    ],
    ["seed -1", ["a"], { sampling: { temperature: 1, seed: -1 } }, /sampling\.seed/],
    [
      "generate([42])",
      [42],
      {},
      /prompt 0 is 42: each prompt must be a string or an array of token ids/,
    ],
    ["prompts not an array", "abc", {}, /prompts must be an array/],
    ["maxNewTokens 2.5", ["a"], { maxNewTokens: 2.5 }, /maxNewTokens must be a whole number/],
    ["batchSize 0", ["a"], { batchSize: 0 }, /batchSize must be/],
    ["chunkSize NaN", ["a"], { chunkSize: NaN }, /chunkSize must be a whole number/],
  ] as const
) {
  add(`library generate: ${what}`, async () => {
    const { generate, model } = await lib();
    try {
      return await libThrows(
        () =>
          generate(model, prompts as unknown as string[], {
            maxNewTokens: 1,
            ...(options as Record<string, unknown>),
          }),
        want,
      );
    } finally {
      model.dispose();
    }
  });
}
for (
  const [spec, want] of [
    ["random:max=13..13", /max=13\.\.13 must lie within 1\.\.12/],
    ["random:warmup=0..20", /warmup=0\.\.20 must be a range/],
    ["random:min=0", /min=0 must be from 1 to/],
  ] as const
) {
  add(`train --policy ${spec} on a 12-layer model`, async (box) => {
    Deno.writeTextFileSync(`${box.dir}/small.csv`, SMALL_CSV);
    const args = TRAIN(TINY, `${box.rel}/t`).map((a) => a.replace("{box}", box.rel));
    args[args.indexOf("full")] = spec;
    return refused(await run(args, { task: "train" }), want);
  });
}
add("score: CR-only files are three segments, not one", async (box) => {
  Deno.writeTextFileSync(
    `${box.dir}/h.txt`,
    "the cat sat on the mat today\rdogs run in the park at noon\rbirds sing in the tall trees\r",
  );
  Deno.writeTextFileSync(
    `${box.dir}/r.txt`,
    "the cat sat on the mat today\rdogs run in the park at noon\rbirds sing in the tall trees\r",
  );
  const bad = await run(["score", "--hyp", `${box.rel}/h.txt`, "--ref", `${box.rel}/r.txt`]);
  Deno.writeTextFileSync(
    `${box.dir}/r2.txt`,
    "the cat sat on the mat today\rdogs run in the park at noon\r",
  );
  const mismatch = await run(["score", "--hyp", `${box.rel}/h.txt`, "--ref", `${box.rel}/r2.txt`]);
  if (mismatch !== "HANG" && mismatch.code === 0) {
    return ["SILENT-WRONG", "3 vs 2 segments accepted"];
  }
  return succeeded(
    bad,
    (r) => Math.abs(JSON.parse(r.stdout).bleu - 100) < 1e-6 ? "" : `bleu ${r.stdout}`,
  );
});
add("sweep --data: a CSV header mr,ref,mr", async (box) => {
  Deno.writeTextFileSync(`${box.dir}/d.csv`, 'mr,ref,mr\n"name[A]",A.,"name[B]"\n');
  return refused(
    await run([
      "sweep",
      "--model",
      TINY,
      "--backend",
      "cpu",
      "--data",
      `${box.rel}/d.csv`,
      "--out",
      `${box.rel}/s`,
    ]),
    /header has column "mr" twice/,
  );
});

// 10. unclear errors
add("generate: a model folder outside the task's read scope", async () => {
  return refused(
    await run(["generate", "--model", "/var/lib/skipdecode-x", "--prompt", "x"]),
    /not allowed to do that|may not read it/,
  );
});
add("train --out outside the write scope suggests only out/", async () => {
  const r = await run(["--model", TINY, "--data", "x.csv", "--out", "reports/x"], {
    task: "train",
  });
  if (r !== "HANG" && /reports\//.test(r.stderr.replace(/--out reports\/x/, ""))) {
    return ["UNCLEAR", "suggests reports/, which train may not write"];
  }
  return refused(r, /outside the folders this task may write \(here: out\/ in the repository\)/);
});
add("plan: 3000 nested earlyexit: policies", async () => {
  const spec = "earlyexit:".repeat(3000) + "full";
  return refused(await run(["plan", "--policy", spec, "--layers", "4"]), /--policy|nest|deep/i);
});
add("generate: a 10 MB prompt line is refused quickly", async (box) => {
  Deno.writeTextFileSync(`${box.dir}/p.txt`, "word ".repeat(2_000_000) + "\n");
  const t0 = performance.now();
  const r = await run([...GEN(TINY).slice(0, 5), "--prompt-file", `${box.rel}/p.txt`], {
    ms: 30_000,
  });
  const v = refused(r, /prompt|position|tokens/);
  if (v[0] === "CLEAN-ERROR" && performance.now() - t0 > 20_000) {
    return ["UNCLEAR", "took over 20 s"];
  }
  return v;
});

// ------------------------------------------------------------------ runner

if (import.meta.main) {
  const filter = Deno.args[0];
  const counts: Record<string, number> = {};
  let bad = 0, i = 0;
  const t0 = performance.now();
  for (const c of CASES) {
    i++;
    if (filter && !c.name.includes(filter)) continue;
    using box = sandbox("adv");
    let v: [Verdict, string];
    try {
      v = await c.run(box);
    } catch (e) {
      v = ["CRASH", `harness: ${(e as Error).message.slice(0, 200)}`];
    }
    counts[v[0]] = (counts[v[0]] ?? 0) + 1;
    if (BAD.includes(v[0])) bad++;
    console.log(`${String(i).padStart(3)} ${v[0].padEnd(12)} ${c.name} -- ${v[1]}`);
  }
  const total = Object.values(counts).reduce((a, b) => a + b, 0);
  console.log(
    `\n${total} cases in ${((performance.now() - t0) / 1000).toFixed(0)} s: ` +
      ["CLEAN-ERROR", "CORRECT", ...BAD].map((k) => `${k} ${counts[k] ?? 0}`).join(", "),
  );
  Deno.exit(bad > 0 ? 1 : 0);
}
