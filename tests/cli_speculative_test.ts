/**
 * `generate --speculative K` through the command line as a task user runs it (subprocesses
 * with the task's permissions, offline, the tiny model, the CPU backend): the output equals
 * `--policy full`'s; bad values end with exit code 2 and one `error:` line naming the option;
 * a `full` draft policy is a note, not an error.
 */
import { assert, assertEquals, assertMatch } from "@std/assert";
import { cli, pool, TINY } from "./cli_helpers.ts";

const BASE = [
  "generate",
  "--model",
  TINY,
  "--backend",
  "cpu",
  "--prompt",
  "name[Alimentum], area[city centre]\\n",
  "--prompt",
  "name[Zizzi], food[Italian]\\n",
  "--max-new-tokens",
  "16",
];

Deno.test("cli: generate --speculative K equals --policy full's output, with the drafting figures in JSON", async () => {
  const [full, spec] = await pool(
    [
      [...BASE, "--json"],
      [...BASE, "--json", "--policy", "linear:max=12,min=4,warmup=1", "--speculative", "3"],
    ],
    2,
    (args) => cli(args),
  );
  assertEquals(full.code, 0, full.stderr);
  assertEquals(spec.code, 0, spec.stderr);
  const a = JSON.parse(full.stdout), b = JSON.parse(spec.stdout);
  assertEquals(
    b.results.map((r: { ids: number[] }) => r.ids),
    a.results.map((r: { ids: number[] }) => r.ids),
  );
  assertEquals(b.speculative.k, 3);
  for (const r of b.results) {
    for (
      const key of [
        "drafted",
        "accepted",
        "acceptanceRate",
        "meanAcceptedLength",
        "layerPassesPerToken",
        "flopRatio",
      ]
    ) {
      assert(typeof r.speculative[key] === "number", `results[].speculative.${key}`);
    }
    assert(r.speculative.flopRatio >= 1);
  }
  assert(b.speculative.wallMs > 0);
});

Deno.test("cli: bad --speculative values are one-line errors naming the option; a full draft is a note", async () => {
  const cases: [string[], RegExp][] = [
    [["--speculative", "0"], /--speculative must be a whole number from 1 to/],
    [["--speculative", "2.5"], /--speculative must be a whole number from 1 to .*"2\.5"/],
    [["--speculative", "abc"], /--speculative must be a whole number/],
    [["--speculative", "256"], /--speculative 256 is too large: .* K is at most 255/],
    [["--speculative", "2", "--temperature", "0.7"], /--speculative is greedy only/],
  ];
  const results = await pool(cases, 2, ([extra]) => cli([...BASE, ...extra]));
  results.forEach((r, i) => {
    assertEquals(r.code, 2, `${cases[i][0].join(" ")}: ${r.stderr}`);
    const lines = r.stderr.trim().split("\n");
    assertEquals(lines.length, 1, r.stderr);
    assertMatch(lines[0], /^error: /);
    assertMatch(lines[0], cases[i][1]);
  });
  const note = await cli([...BASE, "--speculative", "2", "--policy", "full"]);
  assertEquals(note.code, 0, note.stderr);
  assertMatch(note.stderr, /note: the draft policy is full/);
});
