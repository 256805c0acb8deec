// Tests of data/datasets.ts (CSV, E2E grouping, prompts, templates) and eval/score.ts.
import { assertAlmostEquals, assertEquals, assertRejects, assertThrows } from "@std/assert";
import {
  applyTemplate,
  DataError,
  E2E_DEVSET_URL,
  E2E_TEMPLATE,
  loadE2eCsv,
  loadPrompts,
  parseCsv,
  parseE2eCsv,
  splitLines,
} from "../data/datasets.ts";
import { scoreCorpus, scoreFiles } from "../eval/score.ts";
import { corpusBleu } from "../eval/bleu.ts";
import { sharedPath } from "./helpers.ts";

// The devset the repository ships (bundled/data/e2e/devset.csv, CC BY-SA 4.0).
const DEVSET = new URL("../bundled/data/e2e/devset.csv", import.meta.url);

function requireShared(url: URL): void {
  if (decodeURIComponent(url.pathname) !== sharedPath("data/e2e/devset.csv")) {
    throw new Error(`unexpected devset ${url.pathname}`);
  }
}

Deno.test("parseCsv: RFC 4180 quoting, CRLF, blank lines, BOM", () => {
  const text = '\ufeffmr,ref\r\n"a, b","say ""hi"""\r\n\r\nplain,"two\nlines"\nlast,x';
  const recs = parseCsv(text, "t.csv");
  assertEquals(recs.map((r) => r.fields), [
    ["mr", "ref"],
    ["a, b", 'say "hi"'],
    ["plain", "two\nlines"],
    ["last", "x"],
  ]);
  // Lines: header 1, record 2, blank 3, record 4 (spans 4-5), record 6.
  assertEquals(recs.map((r) => r.line), [1, 2, 4, 6]);
  assertEquals(parseCsv('a,,""\n', "t.csv")[0].fields, ["a", "", ""]);
});

Deno.test("parseCsv: malformed quoting names the file and line", () => {
  assertThrows(() => parseCsv('mr,ref\nx,"open\n', "bad.csv"), DataError, "bad.csv: line 2");
  assertThrows(() => parseCsv('mr,ref\nx,"open\n', "bad.csv"), DataError, "never closed");
  assertThrows(() => parseCsv('mr,ref\nx,y\nx,a"b\n', "bad.csv"), DataError, "bad.csv: line 3");
  assertThrows(() => parseCsv('mr,ref\n"x"y,z\n', "bad.csv"), DataError, "after a closing quote");
});

Deno.test("parseE2eCsv: groups by mr in first-appearance order", () => {
  const text = 'mr,ref\n"b[1], c[2]",one\na[x],two\n"b[1], c[2]",three\n';
  assertEquals(parseE2eCsv(text, "t.csv"), [
    { mr: "b[1], c[2]", refs: ["one", "three"] },
    { mr: "a[x]", refs: ["two"] },
  ]);
  // Column order and extra columns do not matter.
  assertEquals(parseE2eCsv("id,ref,mr\n1,r1,m\n2,r2,m\n", "t.csv"), [
    { mr: "m", refs: ["r1", "r2"] },
  ]);
});

Deno.test("parseE2eCsv: bad header and malformed rows are named", () => {
  assertThrows(
    () => parseE2eCsv("mr,text\na,b\n", "data/x.csv"),
    DataError,
    'data/x.csv: header lacks column "ref" (found: mr, text)',
  );
  assertThrows(() => parseE2eCsv("", "e.csv"), DataError, "e.csv: empty file");
  assertThrows(
    () => parseE2eCsv("mr,ref\na,b\na,b,c\n", "x.csv"),
    DataError,
    "x.csv: line 3: 3 fields, the header has 2",
  );
  assertThrows(() => parseE2eCsv("mr,ref\na,\n", "x.csv"), DataError, 'line 2: empty "ref"');
});

Deno.test("loadE2eCsv: the bundled devset (4299 rows) groups consistently", async () => {
  requireShared(DEVSET);
  assertEquals(E2E_DEVSET_URL.href, DEVSET.href);
  const items = await loadE2eCsv(DEVSET);
  const rows = items.reduce((s, it) => s + it.refs.length, 0);
  assertEquals(rows, 4299); // docs/DESIGN.md §9: 4299 mr,ref pairs
  assertEquals(new Set(items.map((it) => it.mr)).size, items.length); // distinct MRs
  // Counted independently with Python's csv module: 1484 distinct MRs, 1 to 33 refs each.
  assertEquals(items.length, 1484);
  assertEquals(Math.max(...items.map((it) => it.refs.length)), 33);
  assertEquals(items[0].mr, "name[Alimentum], area[city centre], familyFriendly[no]");
  assertEquals(
    items[0].refs[0],
    "There is a place in the city centre , Alimentum , that is not family-friendly .",
  );
  // Every reference scored against its own item gives BLEU 100 (sanity of the grouping).
  const few = items.slice(0, 20);
  const r = corpusBleu(few.map((it) => it.refs[0]), few.map((it) => it.refs));
  assertAlmostEquals(r.score, 100, 1e-9);
});

Deno.test("devset leave-one-out: BLEU and ROUGE-L equal sacreBLEU's and rouge-score's", async () => {
  requireShared(DEVSET);
  // Each MR with at least two references: its first reference is the hypothesis, the
  // others are the references (852 segments, 1 to 32 references each). Expected
  // figures from sacreBLEU 2.6.0 (BLEU().corpus_score, defaults) and from rouge-score's
  // default tokenizer + _score_lcs + score_multi, run in Python on the same data.
  const multi = (await loadE2eCsv(DEVSET)).filter((it) => it.refs.length > 1);
  const s = scoreCorpus(multi.map((it) => it.refs[0]), multi.map((it) => it.refs.slice(1)));
  assertAlmostEquals(s.bleu.score, 51.8712404811065, 1e-9);
  assertEquals(s.bleu.bp, 1);
  assertAlmostEquals(s.rougeL.fmeasure, 0.6123128501781074, 1e-12);
});

Deno.test("loadE2eCsv: a missing file is named", async () => {
  await assertRejects(() => loadE2eCsv("/nonexistent/dev.csv"), DataError, "/nonexistent/dev.csv");
});

Deno.test("applyTemplate: the E2E template and placeholders", () => {
  assertEquals(E2E_TEMPLATE, "{mr}\n");
  assertEquals(applyTemplate(E2E_TEMPLATE, { mr: "name[X]", refs: ["r"] }), "name[X]\n");
  assertEquals(applyTemplate("Data: {mr} {{mr}}\nText:", { mr: "m" }), "Data: m {mr}\nText:");
  assertThrows(() => applyTemplate("{mrr}", { mr: "m" }), DataError, "{mrr}");
  assertThrows(() => applyTemplate("{refs}", { mr: "m", refs: ["a"] }), DataError, "fields: mr");
});

Deno.test("loadPrompts: lines or a JSON array", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/p.txt`, "Hello\r\n\nOnce upon a time\n");
    assertEquals(await loadPrompts(`${dir}/p.txt`), ["Hello", "Once upon a time"]);
    await Deno.writeTextFile(`${dir}/p.json`, '["a\\nb", "c"]');
    assertEquals(await loadPrompts(`${dir}/p.json`), ["a\nb", "c"]);
    await Deno.writeTextFile(`${dir}/bad.json`, '["a", 3]');
    await assertRejects(() => loadPrompts(`${dir}/bad.json`), DataError, "entry 1 is number");
    await Deno.writeTextFile(`${dir}/obj.json`, '{"a": 1}');
    await assertRejects(() => loadPrompts(`${dir}/obj.json`), DataError, "JSON array");
    await Deno.writeTextFile(`${dir}/broken.json`, "[");
    await assertRejects(() => loadPrompts(`${dir}/broken.json`), DataError, "not valid JSON");
    await Deno.writeTextFile(`${dir}/empty.txt`, "\n\n");
    await assertRejects(() => loadPrompts(`${dir}/empty.txt`), DataError, "no prompts");
    await assertRejects(() => loadPrompts(`${dir}/none.txt`), DataError, "none.txt: not found");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("splitLines: LF, CRLF, final newline", () => {
  assertEquals(splitLines("a\r\nb\n"), ["a", "b"]);
  assertEquals(splitLines("a\n\nb"), ["a", "", "b"]);
  assertEquals(splitLines(""), []);
  assertEquals(splitLines("\n"), [""]);
});

Deno.test("scoreFiles: line-aligned reference files", async () => {
  const dir = await Deno.makeTempDir();
  try {
    // sacreBLEU's README example as files: one reference file per reference stream.
    await Deno.writeTextFile(
      `${dir}/hyp.txt`,
      "The dog bit the man.\nIt wasn't surprising.\nThe man had just bitten him.\n",
    );
    await Deno.writeTextFile(
      `${dir}/ref1.txt`,
      "The dog bit the man.\nIt was not unexpected.\nThe man bit him first.\n",
    );
    await Deno.writeTextFile(
      `${dir}/ref2.txt`,
      "The dog had bit the man.\nNo one was surprised.\nThe man had bitten the dog.\n",
    );
    const s = await scoreFiles(`${dir}/hyp.txt`, [`${dir}/ref1.txt`, `${dir}/ref2.txt`]);
    assertAlmostEquals(s.bleu.score, 48.530827, 1e-6); // sacreBLEU README / test_bleu.py
    // ROUGE-L by hand: seg 1 exact (F 1); seg 2 "it wasn t surprising" vs "it was not
    // unexpected" LCS 1 ("it") -> P = R = F = 1/4, vs "no one was surprised" LCS 0
    // ("wasn" != "was", "surprising" != "surprised"): F 1/4; seg 3 "the man had just
    // bitten him" vs "the man bit him first" LCS 3 -> F 6/11, vs "the man had bitten the
    // dog" LCS 4 -> P 4/6 R 4/6 F 2/3: F 2/3. Mean (1 + 1/4 + 2/3) / 3.
    assertAlmostEquals(s.rougeL.fmeasure, (1 + 1 / 4 + 2 / 3) / 3, 1e-12);
    assertEquals(s.rougeL.segments.length, 3);

    await Deno.writeTextFile(`${dir}/short.txt`, "one line\n");
    await assertRejects(
      () => scoreFiles(`${dir}/hyp.txt`, [`${dir}/short.txt`]),
      DataError,
      `reference file ${dir}/short.txt has 1 lines but hypothesis file ${dir}/hyp.txt has 3`,
    );
    await assertRejects(() => scoreFiles(`${dir}/hyp.txt`, []), DataError, "no reference files");
    await assertRejects(
      () => scoreFiles(`${dir}/missing.txt`, [`${dir}/ref1.txt`]),
      DataError,
      "hypothesis file",
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("scoreCorpus: both metrics on the same segments", () => {
  const s = scoreCorpus(["the cat sat on the mat"], [["the cat sat on the mat", "x"]]);
  assertAlmostEquals(s.bleu.score, 100, 1e-9);
  assertEquals(s.rougeL.fmeasure, 1);
});
