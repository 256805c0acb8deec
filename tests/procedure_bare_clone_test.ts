/**
 * The paper's procedure from a bare clone: the repository's files copied into a temporary
 * folder with no `../shared` beside it (nothing outside the copy is readable to the run:
 * `deno.json`'s `skipdecode` task permissions, resolved in the copy), then
 *
 * 1. the README's procedure command (the first `deno task skipdecode procedure` line of
 *    README.md, run as written with small sizes added: two items, two fine-tuning steps,
 *    one SkipDecode policy) writes a report that says **Held out**, titles its chart
 *    "Held-out BLEU", calls the start "base model" (never "dense model" for a model it
 *    cannot vouch for), and whose Reproduce block names every setting (`--resamples` too);
 * 2. `--holdout 3` on a small training file that would overlap itself as `--test` tests on
 *    three MRs split off it: held out (overlap 0), fine-tuned on the others only (the
 *    trainer's note counts them).
 */
import { assert, assertEquals, assertStringIncludes } from "@std/assert";
import { taskPermissions } from "./cli_helpers.ts";
import { loadE2eCsv } from "../data/datasets.ts";

const ROOT = decodeURIComponent(new URL("../", import.meta.url).pathname).replace(/\/$/, "");
/** What a clone does not have (ignored outputs, caches, dependencies, git's own files). */
const SKIP = new Set([".git", "node_modules", "out", "reports", ".cache", ".device"]);

function copyTree(from: string, to: string): void {
  Deno.mkdirSync(to, { recursive: true });
  for (const e of Deno.readDirSync(from)) {
    if (SKIP.has(e.name)) continue;
    if (e.isDirectory) copyTree(`${from}/${e.name}`, `${to}/${e.name}`);
    else if (e.isFile) Deno.copyFileSync(`${from}/${e.name}`, `${to}/${e.name}`);
  }
}

/** The README's procedure command as arguments after `deno task skipdecode`. */
function readmeCommand(): string[] {
  const readme = Deno.readTextFileSync(`${ROOT}/README.md`);
  const line = readme.split("\n").find((l) => l.startsWith("deno task skipdecode procedure"));
  assert(line, "README.md has no `deno task skipdecode procedure` line");
  return line.replace(/#.*$/, "").trim().split(/\s+/).slice(3);
}

async function run(clone: string, args: string[]) {
  const out = await new Deno.Command(Deno.execPath(), {
    // exactly `deno task skipdecode`: the clone's own launcher with the task's flags
    args: ["run", ...taskPermissions("skipdecode"), "cli/launch.ts", ...args],
    cwd: clone,
    env: { NO_COLOR: "1", HF_HUB_OFFLINE: "1", XDG_RUNTIME_DIR: `${clone}/..` },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

const SMALL = [
  "--policy",
  "linear:max=8,min=2,warmup=1,horizon=6",
  "--steps",
  "2",
  "--items",
  "2",
  "--train-batch-size",
  "2",
  "--max-new-tokens",
  "6",
  "--batch-size",
  "2",
  "--oracle",
  "2",
  "--after-oracle",
  "0",
  "--resamples",
  "50",
  "--backend",
  "cpu",
  "--no-cache",
  "--no-png",
  "--json",
];

Deno.test("procedure from a bare clone: the README command writes a held-out report", async () => {
  const tmp = Deno.makeTempDirSync({ prefix: "skipdecode-bare-" });
  Deno.chmodSync(tmp, 0o700);
  try {
    const clone = `${tmp}/skipdecode`; // no ${tmp}/shared beside it
    copyTree(ROOT, clone);
    const args = readmeCommand();
    assertEquals(args[0], "procedure");
    // sizes after the README's own options (the later value wins)
    const r = await run(clone, [...args, ...SMALL]);
    assertEquals(r.code, 0, r.stderr);
    const j = JSON.parse(r.stdout);
    assertEquals(j.heldOut, true, r.stderr);
    assertEquals(j.overlap, 0);
    assertStringIncludes(j.model, "bundled/models/tiny-opt-e2e-dense");
    assertStringIncludes(j.test, "bundled/data/e2e/testset-part2.csv");
    const out = args[args.indexOf("--out") + 1];
    const report = Deno.readTextFileSync(`${clone}/${out}/report.md`);
    assertStringIncludes(report, "**Held out**");
    assert(!/NOT HELD OUT|dense model/i.test(report), report);
    const reproduce = report.slice(report.indexOf("## Reproduce"), report.indexOf("## Results"));
    for (
      const opt of [
        "--model",
        "--train",
        "--test",
        "--policy",
        "--steps 2",
        "--items 2",
        "--max-new-tokens 6",
        "--batch-size 2",
        "--train-batch-size 2",
        "--oracle 2",
        "--after-oracle 0",
        "--resamples 50",
        "--backend cpu",
        "--models-dir",
        `--out ${out}`,
      ]
    ) assertStringIncludes(reproduce, opt);
    const chart = Deno.readTextFileSync(`${clone}/${out}/frontier.html`);
    assertStringIncludes(chart, "Held-out BLEU");
    assert(!chart.includes("dense model"), "the chart calls the start a dense model");
    // the charts share one plotly.js in the folder instead of inlining 4.8 MB each
    assertStringIncludes(chart, '<script src="plotly.min.js"');
    assert(chart.length < 200_000, `frontier.html is ${chart.length} chars`);
    assert(Deno.statSync(`${clone}/${out}/plotly.min.js`).size > 4_000_000);

    // --holdout on a file that overlaps itself: the test MRs are split off and not trained on
    const rows = Deno.readTextFileSync(`${clone}/bundled/data/e2e/devset.csv`).split("\n");
    Deno.writeTextFileSync(`${clone}/out/small.csv`, rows.slice(0, 40).join("\n") + "\n");
    const mrs = (await loadE2eCsv(`${clone}/out/small.csv`)).length;
    const h = await run(clone, [
      "procedure",
      "--train",
      "out/small.csv",
      "--holdout",
      "3",
      ...SMALL,
      "--items",
      "3",
      "--out",
      "reports/holdout",
    ]);
    assertEquals(h.code, 0, h.stderr);
    const hj = JSON.parse(h.stdout);
    assertEquals([hj.heldOut, hj.overlap, hj.items, hj.holdout], [true, 0, 3, 3]);
    assert(!h.stderr.includes("WARNING"), h.stderr);
    assertStringIncludes(h.stderr, `from ${mrs - 3} MRs`); // the trainer's split: 3 fewer
    const hr = Deno.readTextFileSync(`${clone}/reports/holdout/report.md`);
    assertStringIncludes(hr, "3 test MRs were split off the training file");
    assertStringIncludes(hr, "--holdout 3");
    // --holdout and --test together are refused
    const both = await run(clone, ["procedure", "--holdout", "3", "--test", "out/small.csv"]);
    assertEquals(both.code, 2);
    assertStringIncludes(both.stderr, "--holdout N and --test FILE");
  } finally {
    Deno.removeSync(tmp, { recursive: true });
  }
});
