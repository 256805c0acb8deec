// Tests of eval/bleu.ts. Every expected figure says where it comes from: a published
// sacreBLEU test case (mjpost/sacrebleu test/test_bleu.py, Apache-2.0), or hand arithmetic
// with sacreBLEU's formula (BLEU = BP * exp(mean_n log p_n), p_n in percent; exp smoothing
// gives a zero-match order p_n = 100 / (2^k * total_n), k = zero-match orders so far;
// BP = exp(1 - r / c) when c < r). The hand figures were also confirmed with sacreBLEU 2.6.0.
import { assertAlmostEquals, assertEquals, assertThrows } from "@std/assert";
import { computeBleu, corpusBleu, sentenceBleu, tokenize13a } from "../eval/bleu.ts";

// sacreBLEU's README example: refs are given there as streams (one list per reference);
// corpusBleu takes, per segment, its references, so this is the transpose.
const README_HYPS = [
  "The dog bit the man.",
  "It wasn't surprising.",
  "The man had just bitten him.",
];
const README_STREAMS = [
  ["The dog bit the man.", "It was not unexpected.", "The man bit him first."],
  ["The dog had bit the man.", "No one was surprised.", "The man had bitten the dog."],
];
const README_REFS = README_HYPS.map((_, i) => README_STREAMS.map((s) => s[i]));

Deno.test("corpusBleu: sacreBLEU README example scores 48.530827", () => {
  // test_corpus_bleu_cases: (_hyps, _refs, {}, 48.530827), printed to 6 decimals.
  const r = corpusBleu(README_HYPS, README_REFS);
  assertAlmostEquals(r.score, 48.530827, 1e-6);
  // Its statistics, by hand: 13a gives hypothesis lengths 6 ("The dog bit the man ."),
  // 4 ("It wasn't surprising .") and 7 = 17 tokens; the closest references have 6
  // (of 6, 7), 5 (of 5, 5) and 7 (of 6, 7) tokens = 18.
  assertEquals(r.sysLen, 17);
  assertEquals(r.refLen, 18);
  assertAlmostEquals(r.bp, Math.exp(1 - 18 / 17), 1e-12);
  assertEquals(r.totals, [17, 14, 11, 8]);
  assertEquals(r.counts, [14, 7, 5, 3]);
  // Recompute the score from those statistics by hand.
  const p = [14 / 17, 7 / 14, 5 / 11, 3 / 8].map((x) => 100 * x);
  const hand = Math.exp(1 - 18 / 17) * Math.exp(p.reduce((s, x) => s + Math.log(x), 0) / 4);
  assertAlmostEquals(r.score, hand, 1e-9);
  p.forEach((x, i) => assertAlmostEquals(r.precisions[i], x, 1e-9));
});

Deno.test("corpusBleu: empty hypotheses score 0 and are not dropped", () => {
  // test_corpus_bleu_cases: (("", "", ""), _refs, {}, 0.0). Nothing matches, so 0; the
  // reference lengths still count (6 + 5 + 6 = 17, each the shortest: closest to 0).
  const r = corpusBleu(["", "", ""], README_REFS);
  assertEquals(r.score, 0);
  assertEquals(r.sysLen, 0);
  assertEquals(r.refLen, 17);
  assertEquals(r.bp, 0); // sys_len == 0 < ref_len -> bp 0
  assertEquals(r.totals, [0, 0, 0, 0]);
});

Deno.test("computeBleu: sacreBLEU test_case_scoring", () => {
  // test_case_scoring: counts [9,7,5,3], totals [10,8,6,4], sys 11, ref 11 -> 0.8375922397
  // (score / 100). By hand: (0.9 * 0.875 * 0.8333 * 0.75)^(1/4) = 0.4921875^(1/4).
  const r = computeBleu([9, 7, 5, 3], [10, 8, 6, 4], 11, 11);
  assertAlmostEquals(r.score / 100, 0.8375922397, 1e-9);
  assertAlmostEquals(r.score / 100, Math.pow(0.9 * 0.875 * (5 / 6) * 0.75, 0.25), 1e-12);
  assertEquals(r.bp, 1);
});

Deno.test("corpusBleu: published statistics and exp smoothing of a zero 4-gram order", () => {
  // test_case_statistics: "am I am a character sequence" vs "I am a symbol string
  // sequence a a" -> counts [4,2,1,0], totals [6,5,4,3].
  const r = corpusBleu(["am I am a character sequence"], [["I am a symbol string sequence a a"]]);
  assertEquals(r.counts, [4, 2, 1, 0]);
  assertEquals(r.totals, [6, 5, 4, 3]);
  // By hand: p = 400/6, 200/5, 100/4 and, with no 4-gram match, 100 / (2 * 3) (first zero
  // order: k = 1). BP = exp(1 - 8/6). Score = BP * (66.67 * 40 * 25 * 16.67)^(1/4) = 23.2635.
  assertAlmostEquals(r.precisions[3], 100 / 6, 1e-12);
  const geo = Math.pow((400 / 6) * 40 * 25 * (100 / 6), 0.25);
  assertAlmostEquals(r.score, Math.exp(1 - 8 / 6) * geo, 1e-9);
  assertAlmostEquals(r.score, 23.263472697663296, 1e-9); // sacreBLEU 2.6.0
});

Deno.test("corpusBleu: no n-gram match at all scores 0", () => {
  // compute_bleu returns 0 when no order has a match (before any smoothing).
  const r = corpusBleu(["x y z w"], [["a b c d"]]);
  assertEquals(r.score, 0);
  assertEquals(r.counts, [0, 0, 0, 0]);
  assertEquals(r.totals, [4, 3, 2, 1]);
  assertEquals(r.precisions, [0, 0, 0, 0]);
});

Deno.test("corpusBleu: a hypothesis shorter than 4 tokens scores 0 (no effective order)", () => {
  // "a b c" has no 4-gram: total_4 = 0 ends the loop with p_4 = 0, whose floored log
  // (-9999999999) zeroes the score even though every n-gram matches.
  const r = corpusBleu(["a b c"], [["a b c d e f"]]);
  assertEquals(r.counts, [3, 2, 1, 0]);
  assertEquals(r.totals, [3, 2, 1, 0]);
  assertEquals(r.score, 0);
  assertAlmostEquals(r.bp, Math.exp(1 - 6 / 3), 1e-15);
  // sentenceBleu uses effective order (as sacrebleu.sentence_bleu): orders 1..3 only,
  // all 100%, so the score is the brevity penalty exp(1 - 6/3) = 36.788.
  assertAlmostEquals(sentenceBleu("a b c", ["a b c d e f"]).score, 100 * Math.exp(-1), 1e-9);
});

Deno.test("sentenceBleu: exp smoothing with effective order", () => {
  // test_case_effective_order uses "a little test" vs "a test" (with floor smoothing
  // there). With exp smoothing, by hand: counts [2,0,0], totals [3,2,1]; p1 = 200/3,
  // p2 = 100/(2*2) = 25, p3 = 100/(4*1) = 25; BP = 1 (3 > 2); score = (66.67*25*25)^(1/3).
  const r = sentenceBleu("a little test", ["a test"]);
  assertAlmostEquals(r.score, Math.cbrt((200 / 3) * 25 * 25), 1e-9);
  assertAlmostEquals(r.score, 34.66806371753173, 1e-9); // sacreBLEU 2.6.0
  // test_case_effective_order: "test" vs "a test" -> 0.3678794411714425 (BP only).
  assertAlmostEquals(sentenceBleu("test", ["a test"]).score / 100, 0.3678794411714425, 1e-12);
  assertAlmostEquals(sentenceBleu("a test", ["a test"]).score, 100, 1e-9); // 100.00000000000004 in sacreBLEU too
});

Deno.test("corpusBleu: closest reference length, ties to the shorter", () => {
  // Hyp of 5 tokens; refs of 6 and 4 tokens are both 1 away: the shorter (4) is used, so
  // BP = 1 and every n-gram of the hyp appears in the first ref: score 100.
  const two = corpusBleu(["a b c d e"], [["a b c d e f", "a b c d"]]);
  assertEquals(two.refLen, 4);
  assertAlmostEquals(two.score, 100, 1e-9);
  // With the 6-token reference alone: BP = exp(1 - 6/5) = 0.81873.
  const one = corpusBleu(["a b c d e"], [["a b c d e f"]]);
  assertEquals(one.refLen, 6);
  assertAlmostEquals(one.score, 100 * Math.exp(1 - 6 / 5), 1e-9);
});

Deno.test("corpusBleu: clipping takes each n-gram's maximum count over references", () => {
  // "the the cat" vs ["the cat", "the the dog"]: "the" may match twice (ref 2), "cat"
  // once -> 3/3; bigrams "the the" (ref 2) and "the cat" (ref 1) -> 2/2; the trigram
  // matches nowhere -> exp-smoothed 100/(2*1) = 50. Effective order 3:
  // (100 * 100 * 50)^(1/3) = 79.370; closest ref length 3 -> BP 1.
  const r = sentenceBleu("the the cat", ["the cat", "the the dog"]);
  assertEquals(r.counts.slice(0, 3), [3, 2, 0]);
  assertAlmostEquals(r.score, Math.cbrt(100 * 100 * 50), 1e-9);
  // With only the first reference "the" is clipped to 1: unigrams 2/3.
  assertEquals(sentenceBleu("the the cat", ["the cat"]).counts[0], 2);
});

Deno.test("corpusBleu: case-sensitive by default, lowercase option", () => {
  // "the" vs "The" differ: of the 7 tokens "the cat sat on the mat ." one unigram, one
  // bigram, one trigram and one 4-gram fail: (6/7 * 5/6 * 4/5 * 3/4)^(1/4) = (3/7)^(1/4).
  const hyp = "the cat sat on the mat.";
  const ref = "The cat sat on the mat.";
  assertAlmostEquals(corpusBleu([hyp], [[ref]]).score, 100 * Math.pow(3 / 7, 0.25), 1e-9);
  assertAlmostEquals(corpusBleu([hyp], [[ref]], { lowercase: true }).score, 100, 1e-9);
});

Deno.test("corpusBleu: sums statistics over segments (corpus, not mean of sentences)", () => {
  const a = corpusBleu(["a b c d e"], [["a b c d e"]]);
  const b = corpusBleu(["x y z w v"], [["a b c d e"]]);
  const both = corpusBleu(["a b c d e", "x y z w v"], [["a b c d e"], ["a b c d e"]]);
  assertEquals(both.counts, a.counts.map((c, i) => c + b.counts[i]));
  assertEquals(both.totals, a.totals.map((c, i) => c + b.totals[i]));
  // p_n = c_n / 2c_n = 50% for every order -> 50.
  assertAlmostEquals(both.score, 50, 1e-9);
});

Deno.test("corpusBleu: zero-length corpus and bad shapes", () => {
  const r = corpusBleu([], []);
  assertEquals(r.score, 0);
  assertEquals(r.sysLen, 0);
  assertThrows(() => corpusBleu(["a"], []), RangeError, "1 hypotheses but 0 reference sets");
  assertThrows(() => corpusBleu(["a"], [[]]), RangeError, "segment 0 has no references");
});

Deno.test("tokenize13a: mteval-v13a punctuation rules", () => {
  // Each expected string follows the regexes by hand and was confirmed with sacreBLEU's
  // Tokenizer13a (2.6.0).
  const cases: [string, string][] = [
    ["Hello, world.", "Hello , world ."], // rule 1 does not cover , and .; rules 2-3 do
    ["1,000.50 dollars", "1,000.50 dollars"], // , and . between digits stay
    ["version 2.", "version 2 ."], // . after a digit but before a space splits (rule 3)
    ["x,y", "x , y"],
    ["3-4 a-b", "3 - 4 a-b"], // dash splits only after a digit
    ["e-mail 10-20km", "e-mail 10 - 20km"],
    ["wasn't", "wasn't"], // ' (0x27) is outside every range of rule 1
    ["50% of $5 (approx.)", "50 % of $ 5 ( approx . )"],
    ["a/b_c", "a / b _ c"],
    ["&quot;hi&quot; &amp; &lt;b&gt;", '" hi " & < b >'], // entities, then rule 1
    ["&amp;lt;", "<"], // &amp; is unescaped before &lt;, as in sacreBLEU
    ["<skipped>foo-\nbar\nbaz", "foobar baz"], // <skipped> dropped, -\n joined, \n -> space
    ["  lots   of\tspace  ", "lots of space"],
    ["a_b\\c^d`e{f|g}h~i", "a _ b \\ c ^ d ` e { f | g } h ~ i"],
  ];
  for (const [input, expected] of cases) assertEquals(tokenize13a(input), expected, input);
});

Deno.test("corpusBleu: trailing whitespace is stripped (Python rstrip) before 13a", () => {
  // U+3000 and a tab are Python whitespace: the hypothesis equals the reference.
  assertAlmostEquals(corpusBleu(["a b c d e\t\u3000"], [["a b c d e"]]).score, 100, 1e-9);
});
