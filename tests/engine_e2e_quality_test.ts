/**
 * End-to-end quality on the bundled trained checkpoint (CPU backend): greedy `generate` on
 * the first 10 distinct MRs of `bundled/data/e2e/devset.csv` with the prompt `"<mr>\n"`
 * (the format tiny-opt-e2e was trained with) names the restaurant (`name[...]`) in at least
 * 8 of 10 outputs. Those 10 MRs all name "Alimentum", so a second check takes the first MR
 * of each of the first 10 distinct names and runs it under a SkipDecode linear plan (the
 * model was trained skip-aware), with the same floor.
 */
import { assert, assertEquals } from "@std/assert";
import { generate, loadModel } from "../decode/mod.ts";
import { applyTemplate, E2E_TEMPLATE, loadE2eCsv } from "../data/datasets.ts";
import { sharedPath } from "./helpers.ts";

const model = await loadModel(sharedPath("models/tiny-opt-e2e"), {
  backend: "cpu",
  onNote: () => {},
});
const all = await loadE2eCsv(sharedPath("data/e2e/devset.csv"));
const nameOf = (mr: string) => /name\[([^\]]+)\]/.exec(mr)?.[1];

/** The first 10 distinct MRs of the file (the brief's check; all name Alimentum). */
const FIRST10 = all.slice(0, 10);
/** The first MR of each of the first 10 distinct restaurant names (MRs without one skipped). */
const NAMES10 = all.filter((it, k) => {
  const n = nameOf(it.mr);
  return n !== undefined && all.findIndex((o) => nameOf(o.mr) === n) === k;
}).slice(0, 10);

async function check(items: typeof all, policy: string, what: string): Promise<void> {
  assertEquals(items.length, 10);
  assertEquals(new Set(items.map((it) => it.mr)).size, 10);
  const prompts = items.map((it) => applyTemplate(E2E_TEMPLATE, it));
  assertEquals(prompts[0], items[0].mr + "\n");
  const out = await generate(model, prompts, { policy, maxNewTokens: 64 });
  let hits = 0;
  out.results.forEach((r, k) => {
    const name = nameOf(items[k].mr);
    assert(name, `MR ${k} has no name[...]: ${items[k].mr}`);
    const hit = r.text.includes(name);
    if (hit) hits++;
    console.log(
      `  ${hit ? "ok  " : "MISS"} ${items[k].mr}\n       -> ${
        JSON.stringify(r.text)
      } (${r.finish})`,
    );
  });
  console.log(
    `  ${what}, ${policy}: name found in ${hits}/10; layer speedup ${
      out.layerSpeedup.toFixed(3)
    }, ` +
      `${out.timing.generatedTokens} tokens, ${out.timing.tokensPerSecond.toFixed(0)} tok/s`,
  );
  assert(hits >= 8, `name found in only ${hits} of 10 outputs`);
}

Deno.test("E2E quality (CPU, greedy, full): first 10 distinct MRs name the restaurant in >= 8", async () => {
  await check(FIRST10, "full", "first 10 distinct MRs");
});

Deno.test("E2E quality (CPU, greedy, skip plan): 10 distinct restaurant names, >= 8 named", async () => {
  assertEquals(new Set(NAMES10.map((it) => nameOf(it.mr))).size, 10);
  await check(NAMES10, "linear:max=12,min=4,warmup=1,horizon=32", "10 distinct names");
});
