// Tests of eval/rouge.ts. Expected figures come from Google's rouge-score tests
// (google-research/google-research rouge/rouge_scorer_test.py, Apache-2.0; its "ground
// truth" pairs were scored by the official ROUGE-1.5.5 perl script) or from hand
// arithmetic: P = LCS / |hyp|, R = LCS / |ref|, F = 2PR / (P + R).
import { assertAlmostEquals, assertEquals, assertThrows } from "@std/assert";
import { corpusRougeL, lcsLength, rougeL, rougeLMulti, rougeTokenize } from "../eval/rouge.ts";

Deno.test("rougeL: rouge-score's consecutive and non-consecutive cases", () => {
  // testRougeLConsecutive: score("testing one two", "testing one") -> P 1, R 2/3, F 4/5.
  const a = rougeL("testing one", "testing one two");
  assertAlmostEquals(a.precision, 1, 1e-12);
  assertAlmostEquals(a.recall, 2 / 3, 1e-12);
  assertAlmostEquals(a.fmeasure, 4 / 5, 1e-12);
  // testRougeLNonConsecutive: "testing two" -> same figures (LCS skips "one").
  const b = rougeL("testing two", "testing one two");
  assertAlmostEquals(b.recall, 2 / 3, 1e-12);
  assertAlmostEquals(b.fmeasure, 4 / 5, 1e-12);
});

Deno.test("rougeL: agrees with ROUGE-1.5.5 on rouge-score's test data", () => {
  // rouge/testdata/target.txt and prediction.txt, lines 1 and 2; testRougeLAgainstRouge155
  // expects (R, P, F) = (0.40741, 0.68750, 0.51163) and (0.40476, 0.65385, 0.50000).
  const targets = [
    "ZfbCUIUuePaiLVUlCaUXxkpu XPeWing tUHfPMuZ',-Xd Y BrUgVJing M-HV.-DgdDaY.rFDJCRing Ht-LM " +
    "EKBDXkME,yz'RBr q'wtion wIojNbN wL,b .a-'XdQggyFl jB-RPP'iyOIcUxer tKM L\n",
    "KsJdPByEtAor fE-Qg Dpdbring cw-WeFyu vC MoBL Xdn g wkvcEiGvKtion BDFhrpMtion psing sbKao " +
    "Q m qiing LMmer HqqLFXe,XPY,J XsurkMer ,ed nB'wH'bWVHjWFEing " +
    "tQ.saefZwJtKrTlixYpMMsJing UCAPwNHeYVjDing c T BUySKtion gMPfJpwGw p'NvxAoping eu " +
    "pBwMBKV'I DNxqelhu,PHPxDEq,mtion SN\n",
  ];
  const predictions = [
    "rFDJCRtion Ht-LM EKtDXkME,yz'RBr q'wer wrojNbN wL,b .a-'XdQggyFl jB-RPP'iyOIcUxi\n",
    "n cw-WeFyu vC MoBL Xdn g wkvcEiGvKtion BDFhrpMer pstion sbKao Q m qier LMmed " +
    "HqqLFXe,XPY,J XsurkMeo ,ed nB'wH'bWVHjWFEer tQ.saefZwJtKrTlixYpMMNJtion UCAPwNHeYVjD\n",
  ];
  const expected = [[0.40741, 0.68750, 0.51163], [0.40476, 0.65385, 0.50000]];
  for (let i = 0; i < 2; i++) {
    const s = rougeL(predictions[i], targets[i]);
    assertAlmostEquals(s.recall, expected[i][0], 5e-6);
    assertAlmostEquals(s.precision, expected[i][1], 5e-6);
    assertAlmostEquals(s.fmeasure, expected[i][2], 5e-6);
  }
});

Deno.test("rougeL: empty or token-less sides score 0", () => {
  // testRougeEmpty: score("testing one two", "") -> 0, 0, 0.
  assertEquals(rougeL("", "testing one two"), { precision: 0, recall: 0, fmeasure: 0 });
  assertEquals(rougeL("testing", ""), { precision: 0, recall: 0, fmeasure: 0 });
  // A hypothesis of only punctuation has no tokens (cf. testRougeLsum's "/").
  assertEquals(rougeL("/ -- !", "w1 w2").fmeasure, 0);
  // No common token: LCS 0, P = R = 0, F = 0 (not NaN).
  assertEquals(rougeL("a b", "c d"), { precision: 0, recall: 0, fmeasure: 0 });
});

Deno.test("rougeTokenize: lower-case, non-alphanumerics to spaces, no stemming", () => {
  assertEquals(rougeTokenize("The Eagle's café, 3-star!"), [
    "the",
    "eagle",
    "s",
    "caf",
    "3",
    "star",
  ]);
  assertEquals(rougeTokenize("  Running\tRUNS\nran "), ["running", "runs", "ran"]);
  assertEquals(rougeTokenize("...!?"), []);
  assertEquals(rougeTokenize(""), []);
  // Case and punctuation do not matter to the score: "The EAGLE." equals "the eagle".
  assertEquals(rougeL("The EAGLE.", "the eagle").fmeasure, 1);
});

Deno.test("lcsLength: rouge-score's testLcsTable", () => {
  // ref [1..5] and candidate [2, 5, 3, 4] share [2, 3, 4]; [8, 9] shares nothing.
  assertEquals(lcsLength(["1", "2", "3", "4", "5"], ["2", "5", "3", "4"]), 3);
  assertEquals(lcsLength(["1", "2", "3", "4", "5"], ["8", "9"]), 0);
  assertEquals(lcsLength([], ["a"]), 0);
  // Symmetric in its arguments.
  assertEquals(lcsLength(["2", "5", "3", "4"], ["1", "2", "3", "4", "5"]), 3);
});

Deno.test("rougeL: precision and recall by hand with repeated tokens", () => {
  // hyp "a b a c" (4 tokens), ref "a a b c c c" (6 tokens): LCS "a b c" or "a a c" = 3.
  // P = 3/4, R = 3/6 = 1/2, F = 2 * 0.75 * 0.5 / 1.25 = 0.6.
  const s = rougeL("a b a c", "a a b c c c");
  assertAlmostEquals(s.precision, 0.75, 1e-12);
  assertAlmostEquals(s.recall, 0.5, 1e-12);
  assertAlmostEquals(s.fmeasure, 0.6, 1e-12);
});

Deno.test("rougeLMulti: best reference by F-measure, first one on ties", () => {
  // hyp "the cat sat": vs "the cat" P 2/3 R 1 F 0.8; vs "a cat sat on the mat" LCS
  // "cat sat" = 2, P 2/3, R 2/6, F 2 * (2/3) * (1/3) / 1 = 4/9. The second ref wins.
  const s = rougeLMulti("the cat sat", ["a cat sat on the mat", "the cat"]);
  assertAlmostEquals(s.fmeasure, 0.8, 1e-12);
  assertAlmostEquals(s.recall, 1, 1e-12);
  // Ties: "a b" vs "a c" and "b c" both F 0.5 (P 1/2, R 1/2); the first is kept
  // (np.argmax), visible here only through equal figures.
  assertAlmostEquals(rougeLMulti("a b", ["a c", "b c"]).fmeasure, 0.5, 1e-12);
  // The max is by F, not by recall: ref "x a b" gives P 1 R 2/3 F 0.8, ref
  // "a b c d e f" gives R 1/3 P 1 F 0.5, ref "a" gives P 1/2 R 1 F 2/3.
  const t = rougeLMulti("a b", ["a", "a b c d e f", "x a b"]);
  assertAlmostEquals(t.fmeasure, 0.8, 1e-12);
  assertAlmostEquals(t.recall, 2 / 3, 1e-12);
  assertThrows(() => rougeLMulti("a", []), RangeError, "no references");
});

Deno.test("corpusRougeL: mean of per-segment best scores", () => {
  // Segment 0: exact match F 1. Segment 1: F 0.8 (first case above). Segment 2: empty
  // hypothesis, F 0. Mean F = 1.8 / 3 = 0.6; mean P = (1 + 1 + 0) / 3; mean R = (1 + 2/3) / 3.
  const r = corpusRougeL(
    ["a b c", "testing one", ""],
    [["x", "A, b; c!"], ["testing one two"], ["anything"]],
  );
  assertEquals(r.segments.length, 3);
  assertAlmostEquals(r.segments[0].fmeasure, 1, 1e-12);
  assertAlmostEquals(r.fmeasure, 0.6, 1e-12);
  assertAlmostEquals(r.precision, 2 / 3, 1e-12);
  assertAlmostEquals(r.recall, (1 + 2 / 3) / 3, 1e-12);
  assertEquals(corpusRougeL([], []).fmeasure, 0);
  assertThrows(() => corpusRougeL(["a"], [[]]), RangeError, "segment 0");
  assertThrows(() => corpusRougeL(["a", "b"], [["a"]]), RangeError, "2 hypotheses");
});
