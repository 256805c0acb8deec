/**
 * Two sweeps started at the same moment into one `--out`: the folder's lock lets exactly
 * one of them run; the other refuses at once with one line and exit 2, and the folder
 * holds the winner's report and nothing of the loser's (20 trials, the same folder, so
 * each trial also starts over a previous report).
 */
import { assert, assertEquals, assertMatch } from "@std/assert";
import { TINY_MODEL_DIR } from "../cli/paths.ts";
import { collect, sandbox, spawnCli } from "./cli_helpers.ts";

const TRIALS = 20;

/** A sweep of `items` items and `n` new tokens, `full` only, on the CPU. */
function sweepArgs(out: string, items: number, n: number): string[] {
  return [
    "sweep",
    "--model",
    TINY_MODEL_DIR,
    "--backend",
    "cpu",
    "--policy",
    "full",
    "--no-cache",
    "--items",
    String(items),
    "--max-new-tokens",
    String(n),
    "--out",
    out,
  ];
}

Deno.test(`cli: two sweeps into one --out, ${TRIALS} trials: one refuses, no mix`, async () => {
  using box = sandbox("parallel");
  const out = `${box.rel}/report`;
  const settings = [{ items: 6, n: 12 }, { items: 5, n: 14 }]; // a second or more under lock
  const wins = [0, 0];
  for (let t = 0; t < TRIALS; t++) {
    const runs = settings.map((s) => spawnCli(sweepArgs(out, s.items, s.n)));
    const [a, b] = await Promise.all(runs.map(collect));
    const results = [a, b];
    const ok = results.map((r) => r.code === 0);
    assert(
      ok[0] !== ok[1],
      `trial ${t}: exactly one run must complete, got exits ${a.code} and ${b.code}\n` +
        `${a.stderr}\n${b.stderr}`,
    );
    const w = ok[0] ? 0 : 1;
    const loser = results[1 - w];
    wins[w]++;
    assertEquals(loser.code, 2, loser.stderr);
    // The holder's "pid N since T" note may not be written yet when the loser looks.
    assertMatch(
      loser.stderr,
      /^error: --out \S+ is in use by another run( \(pid \d+ since [^)]+\))?; wait for it/,
    );
    assertEquals(loser.stderr.trim().split("\n").length, 1, loser.stderr);
    // Every file is the winner's.
    const { items, n } = settings[w];
    const dir = `${box.dir}/report`;
    const json = JSON.parse(Deno.readTextFileSync(`${dir}/sweep.json`));
    assertEquals([json.items, json.maxNewTokens], [items, n], `trial ${t}: sweep.json`);
    const gens = Deno.readTextFileSync(`${dir}/generations.jsonl`).trim().split("\n")
      .map((l) => JSON.parse(l));
    assertEquals(gens.length, items, `trial ${t}: generations.jsonl`);
    assert(gens.every((g) => g.ids.length <= n), `trial ${t}: outputs longer than ${n}`);
    const md = Deno.readTextFileSync(`${dir}/report.md`);
    assert(md.includes(`- ${items} items, at most ${n} new tokens`), `trial ${t}: report.md`);
    assert(md.includes(`Run ${json.startedAt}`), `trial ${t}: report.md of another run`);
    for (const name of ["budgets.html", "frontier.html"]) {
      const html = Deno.readTextFileSync(`${dir}/${name}`);
      assert(html.trimEnd().endsWith("</html>"), `trial ${t}: ${name} incomplete`);
      assert(html.includes(`(${items} items)`) || name !== "frontier.html", `trial ${t}: ${name}`);
    }
    const visible = [...Deno.readDirSync(dir)].map((e) => e.name).filter((x) => !x.startsWith("."))
      .sort();
    assertEquals(visible, [
      "budgets.html",
      "frontier.html",
      "generations.jsonl",
      "plotly.min.js", // one copy shared by the charts
      "report.md",
      "sweep.json",
    ]);
  }
  console.log(`  ${TRIALS} trials: the first settings won ${wins[0]}, the second ${wins[1]}`);
});
