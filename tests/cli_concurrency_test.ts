/**
 * Sweeps started at the same moment into one `--out`: the folder's lock lets exactly one of
 * them run; every other refuses at once with one line and exit 2, and the folder holds the
 * winner's report and nothing of a loser's (the same folder throughout, so each race also
 * starts over a previous report).
 *
 * Three sweeps race each time, 10 races: 20 refusals, as many as the 20 two-way trials this
 * replaced, and a stronger exclusion per race (one of three), for half the winners' runs (a
 * winner's run is most of a race's time: about 7 s of CPU against 0.5 s for a refusal).
 */
import { parseCsv } from "../data/datasets.ts";
import { assert, assertEquals, assertMatch } from "@std/assert";
import { TINY_MODEL_DIR } from "../data/bundled.ts";
import { collect, sandbox, spawnCli } from "./cli_helpers.ts";

const TRIALS = 10;
/** Sweeps per race. */
const RACERS = 3;

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

Deno.test(`cli: ${RACERS} sweeps into one --out, ${TRIALS} races: all but one refuse, no mix`, async () => {
  using box = sandbox("parallel");
  const out = `${box.rel}/report`;
  // A second or more under lock; the item counts tell the winner's report from the others'.
  const settings = [{ items: 6, n: 12 }, { items: 5, n: 14 }, { items: 4, n: 16 }];
  assertEquals(settings.length, RACERS);
  const wins = settings.map(() => 0);
  for (let t = 0; t < TRIALS; t++) {
    const runs = settings.map((s) => spawnCli(sweepArgs(out, s.items, s.n)));
    const results = await Promise.all(runs.map(collect));
    const ok = results.map((r) => r.code === 0);
    assertEquals(
      ok.filter((x) => x).length,
      1,
      `trial ${t}: exactly one run must complete, got exits ` +
        `${results.map((r) => r.code).join(", ")}\n${results.map((r) => r.stderr).join("\n")}`,
    );
    const w = ok.indexOf(true);
    wins[w]++;
    for (const loser of results.filter((_, i) => i !== w)) {
      assertEquals(loser.code, 2, loser.stderr);
      // The holder's "pid N since T" note may not be written yet when the loser looks.
      assertMatch(
        loser.stderr,
        /^error: --out \S+ is in use by another run( \(pid \d+ since [^)]+\))?; wait for it/,
      );
      assertEquals(loser.stderr.trim().split("\n").length, 1, loser.stderr);
      assertEquals(loser.stdout, "", "a refusal prints nothing else");
    }
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
    // No staging folder or temporary file of any run is left behind.
    const hidden = [...Deno.readDirSync(dir)].map((e) => e.name).filter((x) => x.startsWith("."));
    assertEquals(
      hidden.filter((x) => /\.tmp-|^\.staging-|\.incomplete$/.test(x)),
      [],
      `trial ${t}`,
    );
    assertEquals(visible, [
      "budgets.html",
      "frontier.html",
      "generations.jsonl",
      "items.csv",
      "manifest.json",
      "plotly.min.js", // one copy shared by the charts
      "report.md",
      "sweep.json",
    ]);
    // the manifest and the per-item table are the winner's too; the lock is gone
    const manifest = JSON.parse(Deno.readTextFileSync(`${dir}/manifest.json`));
    assertEquals(manifest.config.items, items, `trial ${t}: manifest.json`);
    const csv = parseCsv(Deno.readTextFileSync(`${dir}/items.csv`), "items.csv");
    assertEquals(csv.length - 1, items * json.rows.length, `trial ${t}: items.csv`);
    assert(
      ![...Deno.readDirSync(dir)].some((e) => e.name === ".skipdecode.lock"),
      `trial ${t}: lock file left`,
    );
  }
  console.log(`  ${TRIALS} races of ${RACERS}: wins by settings ${JSON.stringify(wins)}`);
});
