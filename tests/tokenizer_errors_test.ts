import { assertEquals, assertRejects, assertStringIncludes, assertThrows } from "@std/assert";
import { loadTokenizer, parseMerges, parseVocab, TokenizerError } from "../tokenizer/mod.ts";
import { sharedPath } from "./helpers.ts";

// OPT's tokenizer files (shipped in bundled/models/tiny-opt-e2e).
const OPT = sharedPath("tokenizers/opt");

/** Runs `body` with a fresh temp dir holding `files` (name -> text), then removes it. */
async function withDir(files: Record<string, string>, body: (dir: string) => Promise<void>) {
  const dir = await Deno.makeTempDir({ prefix: "tokenizer_errors_" });
  try {
    for (const [name, text] of Object.entries(files)) {
      await Deno.writeTextFile(`${dir}/${name}`, text);
    }
    await body(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function rejectsWith(dir: string, ...parts: string[]): Promise<TokenizerError> {
  const e = await assertRejects(() => loadTokenizer(dir), TokenizerError);
  for (const p of parts) assertStringIncludes(e.message, p);
  return e as TokenizerError;
}

const VOCAB = await Deno.readTextFile(`${OPT}/vocab.json`);
const MERGES = await Deno.readTextFile(`${OPT}/merges.txt`);

Deno.test("tokenizer errors: missing directory and missing files name what was looked for", async () => {
  // a missing folder the tests may read (deno test runs with --allow-read scoped to the
  // repository and the temporary folder: a path outside them is a permission error instead)
  const parent = await Deno.makeTempDir({ prefix: "tokenizer-missing-" });
  const missing = `${parent}/no/such/dir`;
  try {
    const e = await rejectsWith(missing, missing, "not found");
    assertEquals(e.path, missing);
  } finally {
    await Deno.remove(parent, { recursive: true });
  }
  await withDir({}, async (dir) => {
    await rejectsWith(dir, `no tokenizer in ${dir}`, "tokenizer.json", "vocab.json + merges.txt");
  });
  await withDir({ "vocab.json": VOCAB }, async (dir) => {
    await rejectsWith(dir, dir, "found vocab.json but not merges.txt");
  });
  await withDir({ "merges.txt": MERGES }, async (dir) => {
    await rejectsWith(dir, dir, "found merges.txt but not vocab.json");
  });
  await withDir({ "vocab.json": VOCAB, "merges.txt": MERGES }, async (dir) => {
    const e = await assertRejects(
      () => loadTokenizer(dir, { source: "tokenizer.json" }),
      TokenizerError,
    );
    assertStringIncludes(e.message, `${dir}`);
    assertStringIncludes(e.message, "tokenizer.json");
  });
});

Deno.test("tokenizer errors: malformed JSON names the file", async () => {
  await withDir({ "vocab.json": '{"a": 0,', "merges.txt": MERGES }, async (dir) => {
    const e = await rejectsWith(dir, "malformed JSON", `${dir}/vocab.json`);
    assertEquals(e.path, `${dir}/vocab.json`);
  });
  await withDir({ "tokenizer.json": "{not json" }, async (dir) => {
    await rejectsWith(dir, "malformed JSON", `${dir}/tokenizer.json`);
  });
  await withDir(
    { "vocab.json": VOCAB, "merges.txt": MERGES, "tokenizer_config.json": "{,}" },
    async (dir) => {
      await rejectsWith(dir, "malformed JSON", `${dir}/tokenizer_config.json`);
    },
  );
  await withDir(
    { "vocab.json": VOCAB, "merges.txt": MERGES, "special_tokens_map.json": "[1," },
    async (dir) => {
      await rejectsWith(dir, "malformed JSON", `${dir}/special_tokens_map.json`);
    },
  );
});

Deno.test("tokenizer errors: well-formed JSON with wrong content names the file", async () => {
  await withDir({ "tokenizer.json": '{"added_tokens": []}' }, async (dir) => {
    await rejectsWith(dir, `${dir}/tokenizer.json`, "model");
  });
  await withDir({ "vocab.json": '{"a": -1}', "merges.txt": "" }, async (dir) => {
    await rejectsWith(dir, `${dir}/vocab.json`, '"a"');
  });
  await withDir({ "vocab.json": "[1, 2]", "merges.txt": "" }, async (dir) => {
    await rejectsWith(dir, `${dir}/vocab.json`, "object");
  });
  await withDir({ "vocab.json": VOCAB, "merges.txt": "#version: 0.2\nĠ t\nbad\n" }, async (
    dir,
  ) => {
    await rejectsWith(dir, `${dir}/merges.txt:3`, '"bad"');
  });
  await withDir({ "vocab.json": '{"a": 0}', "merges.txt": "" }, async (dir) => {
    await rejectsWith(dir, "bos_token", '"</s>"', `${dir}/vocab.json`);
  });
  await withDir(
    {
      "vocab.json": VOCAB,
      "merges.txt": MERGES,
      "tokenizer_config.json": '{"pad_token": "<nope>"}',
    },
    async (dir) => {
      await rejectsWith(dir, "pad_token", '"<nope>"', dir);
    },
  );
});

Deno.test("tokenizer errors: parsers and decode reject bad input clearly", async () => {
  assertThrows(() => parseVocab('{"x": 1.5}', "v.json"), TokenizerError, "v.json");
  assertThrows(() => parseMerges("a b c\n", "m.txt"), TokenizerError, "m.txt:1");
  assertEquals(parseMerges("#version: 0.2\r\na b\r\n\r\n", "m.txt"), [["a", "b"]]);
  const tok = await loadTokenizer(OPT);
  assertThrows(() => tok.decode([100, -1]), TokenizerError, "ids[1] = -1");
  assertThrows(() => tok.decode([1.5]), TokenizerError, "ids[0] = 1.5");
});
