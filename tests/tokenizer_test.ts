import { assert, assertEquals, assertGreater } from "@std/assert";
import { Tokenizer } from "@huggingface/tokenizers";
import { loadTokenizer, type OptTokenizer } from "../tokenizer/mod.ts";
import { sharedPath } from "./helpers.ts";

// OPT's tokenizer files, the tiny checkpoint and the devset ship in bundled/.
const OPT = sharedPath("tokenizers/opt");
const TINY = sharedPath("models/tiny-opt-e2e");
const DEVSET = sharedPath("data/e2e/devset.csv");
const opt = await loadTokenizer(OPT);
const tiny = await loadTokenizer(TINY);

const UNICODE = [
  "café naïve façade Ångström Øresund élève",
  "中文分词测试，日本語のテキスト、한국어 문장",
  "مرحبا بالعالم، هذا نص عربي",
  "Emoji: 🙂 🎉🎉 👍🏽 🇫🇷 👨‍👩‍👧‍👦 🏳️‍🌈 🧑🏿‍💻",
  "mixed: naïve 中 🙂 ع x",
];
const WHITESPACE = [
  "two  spaces   three    four",
  "\ttab\t\tdouble tab",
  "line\nbreak\n\n\nthree newlines\r\nCRLF",
  "   leading spaces",
  "trailing spaces   ",
  " \n\t mixed \t\n ",
  " ",
  "\n",
];
const E2E = [
  "name[Alimentum], area[city centre]\n",
  "name[The Eagle], eatType[coffee shop], food[Japanese], priceRange[less than £20]\n",
  "There is a place in the city centre , Alimentum , that is not family-friendly .",
];

Deno.test("tokenizer: known OPT encodings", () => {
  for (const tok of [opt, tiny]) {
    assertEquals(tok.encode("Hello, my dog is cute"), [2, 31414, 6, 127, 2335, 16, 11962]);
    assertEquals(tok.encode("I like you."), [2, 100, 101, 47, 4]);
    assertEquals(tok.encode("I like you.", { addBos: false }), [100, 101, 47, 4]);
    assertEquals(tok.encode(""), [2]);
    assertEquals(tok.encode("", { addBos: false }), []);
  }
});

Deno.test("tokenizer: special ids and vocabulary size", () => {
  assertEquals(opt.bosTokenId, 2);
  assertEquals(opt.eosTokenId, 2);
  assertEquals(opt.padTokenId, 1);
  assertEquals(opt.vocabSize, 50265);
  assertEquals(tiny.vocabSize, 50265);
  assertEquals(opt.tokenToId("<s>"), 0);
  assertEquals(opt.tokenToId("<unk>"), 3);
  assertEquals(opt.idToToken(2335), "Ġdog");
  assertEquals(opt.idToToken(50264), "<mask>");
  // Special-token text in the input maps to its id.
  assertEquals(opt.encode("a</s>", { addBos: false }), [opt.tokenToId("a"), 2]);
});

Deno.test("tokenizer: decode skips special tokens and handles edge ids", () => {
  assertEquals(opt.decode([]), "");
  assertEquals(opt.decode([2]), "");
  assertEquals(opt.decode([2, 100, 101, 47, 4, 2, 1, 1]), "I like you.");
  assertEquals(opt.decode([2, 100, 2], { skipSpecialTokens: false }), "</s>I</s>");
  assertEquals(opt.decode(new Int32Array([2, 31414, 6])), "Hello,");
  // The model's padded rows (50265..50271) have no token: they decode to nothing.
  assertEquals(opt.decode([100, 50270, 101]), "I like");
  // Clean-up is off by default (lossless); on request it removes spaces before punctuation.
  const ids = opt.encode("centre , Alimentum .");
  assertEquals(opt.decode(ids), "centre , Alimentum .");
  assertEquals(opt.decode(ids, { cleanUpTokenizationSpaces: true }), "centre, Alimentum.");
});

function assertRoundTrip(tok: OptTokenizer, text: string) {
  const ids = tok.encode(text);
  assertEquals(ids[0], 2, `BOS missing for ${JSON.stringify(text)}`);
  assertEquals(tok.decode(ids), text, `round trip of ${JSON.stringify(text)} (ids ${ids})`);
  assertEquals(tok.decode(ids.slice(1)), text);
}

Deno.test("tokenizer: round trips of Unicode, emoji, whitespace and E2E prompts", () => {
  for (const text of [...UNICODE, ...WHITESPACE, ...E2E]) {
    assertRoundTrip(opt, text);
    assertRoundTrip(tiny, text);
    assertEquals(tiny.encode(text), opt.encode(text));
  }
  // Byte-level BPE never needs <unk>: none of these produce id 3.
  for (const text of UNICODE) assert(!opt.encode(text).includes(3), text);
});

Deno.test("tokenizer: round trip of the E2E devset text", async () => {
  const text = (await Deno.readTextFile(DEVSET)).slice(0, 30_000);
  const ids = tiny.encode(text);
  assertGreater(ids.length, 5_000);
  assertEquals(tiny.decode(ids), text);
});

/** Streams ids one at a time; returns the pieces (flush last). */
function stream(tok: OptTokenizer, ids: number[]): string[] {
  const s = tok.createStreamDecoder();
  const pieces = ids.map((id) => s.push(id));
  pieces.push(s.flush());
  return pieces;
}

Deno.test("tokenizer: stream decoding equals full decode without split characters", () => {
  let heldBack = 0;
  for (const text of [...UNICODE, ...E2E, ...WHITESPACE]) {
    const ids = opt.encode(text);
    const pieces = stream(opt, ids);
    assertEquals(pieces.join(""), opt.decode(ids), JSON.stringify(text));
    for (const p of pieces) assert(!p.includes("\uFFFD"), `U+FFFD streamed for ${text}`);
    heldBack += pieces.slice(1, -1).filter((p) => p === "").length;
  }
  // Token-by-token decoding really splits characters in these texts, so the hold-back
  // path was exercised.
  const naive = opt.encode(UNICODE[3], { addBos: false }).map((id) => opt.decode([id]));
  assert(naive.some((p) => p.includes("\uFFFD")), "precondition: emoji split across tokens");
  assertGreater(heldBack, 0);
});

Deno.test("tokenizer: stream decoder with special tokens, flush of a split char, reuse", () => {
  const ids = [...tiny.encode("name[Alimentum]\n"), 2];
  assertEquals(stream(tiny, ids).join(""), "name[Alimentum]\n");
  const s = tiny.createStreamDecoder({ skipSpecialTokens: false });
  assertEquals(ids.map((id) => s.push(id)).join("") + s.flush(), "</s>name[Alimentum]\n</s>");
  // Ending inside a character: flush returns what the full decode gives.
  const emoji = opt.encode("🙂", { addBos: false });
  assertGreater(emoji.length, 1);
  const partial = emoji.slice(0, -1);
  const d = opt.createStreamDecoder();
  assertEquals(partial.map((id) => d.push(id)).join(""), "");
  assertEquals(d.flush(), opt.decode(partial));
  // After flush the decoder starts a new stream.
  assertEquals(
    opt.encode("ok", { addBos: false }).map((id) => d.push(id)).join("") + d.flush(),
    "ok",
  );
});

Deno.test("tokenizer: a serialized tokenizer.json gives identical ids", async () => {
  const dir = await Deno.makeTempDir({ prefix: "tokenizer_test_" });
  try {
    const text = JSON.stringify(opt.toTokenizerJson());
    await Deno.writeTextFile(`${dir}/tokenizer.json`, text);
    await Deno.writeTextFile(
      `${dir}/tokenizer_config.json`,
      await Deno.readTextFile(`${OPT}/tokenizer_config.json`),
    );
    // A malformed vocab.json next to it: "auto" must prefer tokenizer.json.
    await Deno.writeTextFile(`${dir}/vocab.json`, "{oops");
    const fromJson = await loadTokenizer(dir);
    const devset = (await Deno.readTextFile(DEVSET)).slice(0, 20_000);
    for (const t of [...UNICODE, ...WHITESPACE, ...E2E, devset, "Hello, my dog is cute"]) {
      assertEquals(fromJson.encode(t), opt.encode(t), JSON.stringify(t.slice(0, 40)));
      assertEquals(fromJson.decode(opt.encode(t)), t);
    }
    assertEquals(fromJson.vocabSize, opt.vocabSize);
    assertEquals([fromJson.bosTokenId, fromJson.eosTokenId, fromJson.padTokenId], [2, 2, 1]);
    // The serialized post-processor itself prepends </s>, as in transformers.
    const raw = new Tokenizer(JSON.parse(text), {});
    assertEquals(raw.encode("I like you.").ids, [2, 100, 101, 47, 4]);
    assertEquals(raw.encode("I like you.", { add_special_tokens: false }).ids, [100, 101, 47, 4]);
    // A tokenizer.json in the minimal form (null components omitted) also loads.
    const minimal = JSON.parse(text);
    delete minimal.normalizer;
    delete minimal.post_processor;
    await Deno.writeTextFile(`${dir}/tokenizer.json`, JSON.stringify(minimal));
    assertEquals((await loadTokenizer(dir)).encode("I like you."), [2, 100, 101, 47, 4]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("tokenizer: file: URL directories and source selection", async () => {
  const url = new URL(`file://${OPT}/`);
  const tok = await loadTokenizer(url, { source: "vocab+merges" });
  assertEquals(tok.encode("I like you."), [2, 100, 101, 47, 4]);
  assertEquals(tok.encode(UNICODE[3]), opt.encode(UNICODE[3]));
  const slash = await loadTokenizer(`${OPT}//`, { source: "auto" });
  assertEquals(slash.encode("Hello, my dog is cute"), [2, 31414, 6, 127, 2335, 16, 11962]);
});
