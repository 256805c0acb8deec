/**
 * The path rule (`model/paths.ts`, `docs/DESIGN.md` §10) at its causes: no write through a
 * planted link (output lock, temporaries, checkpoint folders), no model-folder file read
 * from outside the folder (its bytes never reach a message), regular files only (a FIFO or
 * device is refused at once instead of hanging or filling memory), a valid Hugging Face
 * cache with snapshot links into `blobs/` (also when the cache's parent is itself a link)
 * still loads, and malformed tokenizer configs give errors naming the file and field.
 */
import { assert, assertEquals, assertMatch, assertRejects, assertThrows } from "@std/assert";
import { atomicWrite, OutputError, OutputFolder } from "../io/output.ts";
import { readText } from "../data/datasets.ts";
import { ResultCache } from "../io/cache.ts";
import { loadWeightsSync } from "../model/checkpoint.ts";
import { CheckpointError } from "../model/errors.ts";
import { writeRandomCheckpoint } from "../model/fixture.ts";
import { loadTokenizer } from "../tokenizer/tokenizer.ts";
import { TokenizerError } from "../tokenizer/errors.ts";
import { saveCheckpoint } from "../train/checkpoint.ts";
import { ParamSet } from "../train/param_set.ts";
import { TINY_OPT_SHAPE } from "../model/fixture.ts";
import { TINY_MODEL_DIR } from "../data/bundled.ts";
import { plantFifo, plantSymlink } from "./plant_helpers.ts";
import { holdShardLock } from "../experiments/units.ts";

const SECRET = "TOP-SECRET-abc123";

function tmp(): string & Disposable {
  const dir = Deno.makeTempDirSync({ prefix: "path-rule-" });
  return Object.assign(dir, {
    [Symbol.dispose]() {
      Deno.removeSync(dir, { recursive: true });
    },
  }) as string & Disposable;
}

const mkfifo = plantFifo;

Deno.test("output lock: a planted symlink at .skipdecode.lock is refused, its target untouched", () => {
  using root = tmp();
  const victim = `${root}/victim.txt`;
  Deno.writeTextFileSync(victim, "precious\n");
  Deno.mkdirSync(`${root}/out`);
  plantSymlink(victim, `${root}/out/.skipdecode.lock`);
  const e = assertThrows(() => OutputFolder.open(`${root}/out`), OutputError);
  assertMatch(e.message, /\.skipdecode\.lock is a symbolic link; refused/);
  assertEquals(Deno.readTextFileSync(victim), "precious\n");
  // A hard link is refused as well: truncating it would truncate the victim.
  Deno.removeSync(`${root}/out/.skipdecode.lock`);
  Deno.linkSync(victim, `${root}/out/.skipdecode.lock`);
  const h = assertThrows(() => OutputFolder.open(`${root}/out`), OutputError);
  assertMatch(h.message, /hard-linked elsewhere/);
  assertEquals(Deno.readTextFileSync(victim), "precious\n");
});

Deno.test("shard lock: a planted link at units/.shard-I-of-N.lock or at units/ is refused, its target untouched", () => {
  using root = tmp();
  const victim = `${root}/victim.txt`;
  Deno.writeTextFileSync(victim, "precious\n");
  const shard = { index: 0, count: 2, from: "--shard" };
  Deno.mkdirSync(`${root}/run/units`, { recursive: true });
  plantSymlink(victim, `${root}/run/units/.shard-0-of-2.lock`);
  const e = assertThrows(() => holdShardLock(`${root}/run`, shard), OutputError);
  assertMatch(e.message, /\.shard-0-of-2\.lock is a symbolic link; refused/);
  assertEquals(Deno.readTextFileSync(victim), "precious\n", "the lock's target was truncated");
  Deno.removeSync(`${root}/run/units/.shard-0-of-2.lock`);
  Deno.linkSync(victim, `${root}/run/units/.shard-0-of-2.lock`);
  assertThrows(() => holdShardLock(`${root}/run`, shard), OutputError, "hard-linked elsewhere");
  assertEquals(Deno.readTextFileSync(victim), "precious\n");
  // procedure --shard made units/ without checking it: a linked units/ took the lock there
  Deno.mkdirSync(`${root}/elsewhere`);
  Deno.mkdirSync(`${root}/run2`);
  plantSymlink(`${root}/elsewhere`, `${root}/run2/units`);
  const l = assertThrows(() => holdShardLock(`${root}/run2`, shard), OutputError);
  assertMatch(l.message, /goes through the symbolic link/);
  assertEquals([...Deno.readDirSync(`${root}/elsewhere`)], []);
  // A real folder still works.
  Deno.mkdirSync(`${root}/run3/units`, { recursive: true });
  holdShardLock(`${root}/run3`, shard).close();
});

Deno.test("atomicWrite: a symlink where the file goes is refused, not replaced or followed", () => {
  using root = tmp();
  Deno.writeTextFileSync(`${root}/victim.txt`, "precious\n");
  plantSymlink(`${root}/victim.txt`, `${root}/report.md`);
  const e = assertThrows(() => atomicWrite(`${root}/report.md`, "new\n"), OutputError);
  assertMatch(e.message, /report\.md is a symbolic link; refused/);
  assertEquals(Deno.readTextFileSync(`${root}/victim.txt`), "precious\n");
  assert(Deno.lstatSync(`${root}/report.md`).isSymlink);
});

Deno.test("saveCheckpoint: a symlinked checkpoint-N folder is refused; nothing lands at its target", () => {
  using root = tmp();
  Deno.mkdirSync(`${root}/elsewhere`);
  Deno.mkdirSync(`${root}/out`);
  plantSymlink(`${root}/elsewhere`, `${root}/out/checkpoint-1`);
  const params = new ParamSet(TINY_OPT_SHAPE, "f32");
  const e = assertThrows(
    () => saveCheckpoint(`${root}/out/checkpoint-1`, { params }),
    CheckpointError,
  );
  assertMatch(e.message, /checkpoint-1 is a symbolic link; refused/);
  assertEquals([...Deno.readDirSync(`${root}/elsewhere`)].length, 0);
});

Deno.test("model folder: files linked outside the folder are refused without reading them", async () => {
  using root = tmp();
  Deno.writeTextFileSync(`${root}/secret.txt`, `${SECRET}\n`);
  const model = `${root}/model`;
  writeRandomCheckpoint(model, { tokenizerDir: TINY_MODEL_DIR });
  for (const name of ["config.json", "model.safetensors"]) {
    Deno.renameSync(`${model}/${name}`, `${root}/${name}.real`);
    plantSymlink(`${root}/secret.txt`, `${model}/${name}`);
    const e = assertThrows(() => loadWeightsSync(model), CheckpointError);
    assertMatch(
      e.message,
      new RegExp(`${name.replace(".", "\\.")} leads to .*secret\\.txt, outside`),
    );
    assert(!e.message.includes(SECRET), e.message);
    Deno.removeSync(`${model}/${name}`);
    Deno.renameSync(`${root}/${name}.real`, `${model}/${name}`);
  }
  for (const name of ["vocab.json", "merges.txt", "tokenizer_config.json"]) {
    if (name !== "tokenizer_config.json") {
      Deno.renameSync(`${model}/${name}`, `${root}/${name}.real`);
    } else Deno.writeTextFileSync(`${root}/${name}.real`, "{}");
    try {
      Deno.removeSync(`${model}/${name}`);
    } catch { /* absent */ }
    plantSymlink(`${root}/secret.txt`, `${model}/${name}`);
    const e = await assertRejects(() => loadTokenizer(model), TokenizerError);
    assertMatch(e.message, /leads to .*secret\.txt, outside the model folder/);
    assert(!e.message.includes(SECRET), e.message);
    Deno.removeSync(`${model}/${name}`);
    Deno.renameSync(`${root}/${name}.real`, `${model}/${name}`);
  }
  // A link inside the folder is fine.
  Deno.renameSync(`${model}/config.json`, `${model}/real-config.json`);
  plantSymlink("real-config.json", `${model}/config.json`);
  assertEquals(loadWeightsSync(model).layers.length, TINY_OPT_SHAPE.numHiddenLayers);
});

Deno.test("HF cache: snapshot links into blobs/ load, also when the cache's parent is a symlink", () => {
  using root = tmp();
  const src = `${root}/src`;
  writeRandomCheckpoint(src);
  const repo = `${root}/real-cache/hub/models--org--tiny`;
  Deno.mkdirSync(`${repo}/blobs`, { recursive: true });
  Deno.mkdirSync(`${repo}/snapshots/abc`, { recursive: true });
  for (const name of ["config.json", "model.safetensors"]) {
    Deno.copyFileSync(`${src}/${name}`, `${repo}/blobs/${name}-hash`);
    plantSymlink(`../../blobs/${name}-hash`, `${repo}/snapshots/abc/${name}`);
  }
  plantSymlink(`${root}/real-cache`, `${root}/cache-link`); // ~/.cache as a link
  const w = loadWeightsSync(`${root}/cache-link/hub/models--org--tiny/snapshots/abc`);
  assertEquals(w.layers.length, TINY_OPT_SHAPE.numHiddenLayers);
  // A blob of another repository is outside.
  const other = `${root}/real-cache/hub/models--org--other/blobs`;
  Deno.mkdirSync(other, { recursive: true });
  Deno.copyFileSync(`${src}/config.json`, `${other}/c`);
  Deno.removeSync(`${repo}/snapshots/abc/config.json`);
  plantSymlink(`${other}/c`, `${repo}/snapshots/abc/config.json`);
  assertThrows(() => loadWeightsSync(`${repo}/snapshots/abc`), CheckpointError, "outside");
});

Deno.test("regular files only: a FIFO as config.json, data file or tokenizer file is refused at once", async () => {
  using root = tmp();
  const model = `${root}/model`;
  writeRandomCheckpoint(model, { tokenizerDir: TINY_MODEL_DIR });
  Deno.removeSync(`${model}/config.json`);
  if (!mkfifo(`${model}/config.json`)) {
    console.warn("mkfifo unavailable: FIFO cases not run");
    return;
  }
  const t0 = performance.now();
  assertThrows(() => loadWeightsSync(model), CheckpointError, "FIFO");
  mkfifo(`${root}/prompts.txt`);
  await assertRejects(() => readText(`${root}/prompts.txt`, "--prompt-file"), Error, "FIFO");
  Deno.removeSync(`${model}/vocab.json`);
  mkfifo(`${model}/vocab.json`);
  await assertRejects(() => loadTokenizer(model), TokenizerError, "FIFO");
  assert(performance.now() - t0 < 5000, "no hang");
  // A link to a device as a prompt file: refused, nothing read.
  plantSymlink("/dev/zero", `${root}/zero.txt`);
  await assertRejects(
    () => readText(`${root}/zero.txt`, "--prompt-file"),
    Error,
    "character device",
  );
});

Deno.test("tokenizer_config.json: wrongly typed fields are errors naming the file and field", async () => {
  using root = tmp();
  const model = `${root}/model`;
  writeRandomCheckpoint(model, { tokenizerDir: TINY_MODEL_DIR });
  const cases: [unknown, RegExp][] = [
    [{ additional_special_tokens: "<x>" }, /"additional_special_tokens" must be a list/],
    [{ added_tokens_decoder: { "5": null } }, /"added_tokens_decoder" entry 5 must be an object/],
    [{ bos_token: 7 }, /"bos_token" must be a string/],
  ];
  for (const [json, want] of cases) {
    Deno.writeTextFileSync(`${model}/tokenizer_config.json`, JSON.stringify(json));
    const e = await assertRejects(() => loadTokenizer(model), TokenizerError);
    assertMatch(e.message, want);
    assertMatch(e.message, /tokenizer_config\.json/);
  }
});

Deno.test("result cache: a symlinked cache folder is refused with a note; nothing lands at its target", async () => {
  using root = tmp();
  Deno.mkdirSync(`${root}/elsewhere`);
  plantSymlink(`${root}/elsewhere`, `${root}/cache`);
  const notes: string[] = [];
  const cache = new ResultCache(`${root}/cache`, (n) => notes.push(n));
  await cache.put({ k: 1 }, { v: 1 });
  assertEquals([...Deno.readDirSync(`${root}/elsewhere`)].length, 0);
  assertMatch(notes[0], /goes through the symbolic link .*cache; .*continuing without caching/);
  // Through a link further up as well.
  const deeper = new ResultCache(`${root}/cache/sub`, (n) => notes.push(n));
  await deeper.put({ k: 1 }, { v: 1 });
  assertEquals([...Deno.readDirSync(`${root}/elsewhere`)].length, 0);
});

Deno.test(".bin: a stride-0 view declaring 2^52 elements over 4 bytes is refused before any allocation", async () => {
  const { writeTorchBin } = await import("../bench/torch_bin_writer.ts");
  const { openTorchBin } = await import("../model/torch_bin.ts");
  using root = tmp();
  const path = `${root}/pytorch_model.bin`;
  writeTorchBin(path, {
    storages: [{ key: "0", dtype: "F16", numel: 2, data: new Uint8Array(4) }],
    tensors: [{
      name: "decoder.layers.0.fc1.weight",
      storage: "0",
      offset: 0,
      shape: [2 ** 26, 2 ** 26],
      stride: [0, 0],
    }],
  });
  assert(Deno.statSync(path).size < 8192);
  const e = assertThrows(() => openTorchBin(path), CheckpointError);
  assertMatch(e.message, /has 4503599627370496 elements, more than its storage 0 holds \(2\)/);
});
