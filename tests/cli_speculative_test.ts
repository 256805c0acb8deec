/**
 * `generate --speculative K` through the command line as a task user runs it (subprocesses
 * with the task's permissions, offline, the tiny model, the CPU backend): the output equals
 * `--policy full`'s; bad values end with exit code 2 and one `error:` line naming the option;
 * a `full` draft policy is a note, not an error.
 */
import { assert, assertEquals, assertMatch } from "@std/assert";
import { cli, pool, sandbox, TINY } from "./cli_helpers.ts";

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

Deno.test("cli: generate --speculative auto picks K by a probe, says so in a note and in JSON, equals full", async () => {
  const [full, auto] = await pool(
    [
      [...BASE, "--json"],
      [...BASE, "--json", "--policy", "constant:n=8,warmup=1", "--speculative", "auto"],
    ],
    2,
    (args) => cli(args),
  );
  assertEquals(full.code, 0, full.stderr);
  assertEquals(auto.code, 0, auto.stderr);
  const a = JSON.parse(full.stdout), b = JSON.parse(auto.stdout);
  assertEquals(
    b.results.map((r: { ids: number[] }) => r.ids),
    a.results.map((r: { ids: number[] }) => r.ids),
  );
  // the skip-trained model accepts nearly every draft of this 8-layer skip: a long K pays
  assert(b.speculative.k > 1 && b.speculative.k <= 8, `K ${b.speculative.k}`);
  assertEquals(b.speculative.auto.k, b.speculative.k);
  assertEquals(b.speculative.auto.passesPerToken.length, 8);
  assertMatch(auto.stderr, new RegExp(`note: speculative auto: K=${b.speculative.k} \\(probe`));
});

Deno.test("cli: bad --speculative values are one-line errors naming the option; a full draft is a note", async () => {
  const cases: [string[], RegExp][] = [
    [["--speculative", "0"], /--speculative must be a whole number from 1 to/],
    [["--speculative", "2.5"], /--speculative must be a whole number from 1 to .*"2\.5"/],
    [
      ["--speculative", "abc"],
      /--speculative must be a whole number from 1 to \d+ or auto, got "abc"/,
    ],
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

Deno.test("cli: sweep --speculative adds the non-full policies as drafts (speculative.json/.md, JSON)", async () => {
  using box = sandbox("sweep-spec");
  const args = [
    "sweep",
    "--model",
    TINY,
    "--backend",
    "cpu",
    "--no-cache",
    "--nll",
    "none",
    "--items",
    "3",
    "--max-new-tokens",
    "8",
    "--batch-size",
    "2",
    "--policy",
    "constant:n=8,warmup=1",
    "--policy",
    "earlyexit:constant:n=8",
    "--no-png",
    "--json",
    "--out",
    `${box.rel}/report`,
  ];
  const [ok, bad, sharded] = await pool(
    [
      [...args, "--speculative", "2,4"],
      [...args, "--speculative", "2,0"],
      [...args, "--speculative", "2", "--shard", "1/2"],
    ],
    2,
    (a) => cli(a),
  );
  assertEquals(ok.code, 0, ok.stderr);
  const out = JSON.parse(ok.stdout);
  assertEquals(
    out.speculative.map((r: { draft: string; k: number }) => `${r.draft} K=${r.k}`),
    [
      "constant:n=8,warmup=1 K=2",
      "constant:n=8,warmup=1 K=4",
      "earlyexit:constant:n=8,warmup=0 K=2",
      "earlyexit:constant:n=8,warmup=0 K=4",
    ],
  );
  for (const r of out.speculative) {
    assertEquals(r.draftCost, 8 / 12);
    assert(r.acceptanceRate >= 0 && r.acceptanceRate <= 1 && r.flopRatio >= 1);
    const [lo, hi] = r.ci.acceptanceRate;
    assert(lo <= r.acceptanceRate + 1e-12 && r.acceptanceRate <= hi + 1e-12);
  }
  const md = Deno.readTextFileSync(`${box.dir}/report/speculative.md`);
  assertMatch(md, /\| constant:n=8,warmup=1 \| 4 \| 0\.67 \|/);
  assertEquals(JSON.parse(Deno.readTextFileSync(`${box.dir}/report/speculative.json`)).length, 4);
  for (
    const [r, re] of [[bad, /--speculative must be draft lengths K from 1 to 64/], [
      sharded,
      /--speculative is not sharded/,
    ]] as const
  ) {
    assertEquals(r.code, 2, r.stderr);
    assertEquals(r.stderr.trim().split("\n").length, 1, r.stderr);
    assertMatch(r.stderr, re);
  }
});
