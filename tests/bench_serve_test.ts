/**
 * The serving benchmark (bench/serve_bench.ts) at a tiny size on the CPU backend: three modes on
 * the same arrivals, every request done and its tokens equal across modes, layer-steps equal
 * across modes (same plans), sane figures, the table's ratio columns.
 */
import { assert, assertEquals, assertMatch } from "@std/assert";
import { runServeBench, serveBenchMarkdown } from "../bench/serve_bench.ts";

Deno.test("serve bench: three modes on the same arrivals, same tokens, same layer-steps", async () => {
  const r = await runServeBench({
    backend: "cpu",
    requests: 5,
    rate: 50,
    capacity: 2,
    maxTokens: 6,
    repeats: 1,
    timeLimit: 60,
  });
  assertEquals(r.rows.map((x) => x.mode), ["static", "aligned", "per-row"]);
  assert(r.sameTokens, "a request's tokens differ between modes");
  for (const row of r.rows) {
    assertEquals(row.completed, 5, `${row.mode} finished ${row.completed}/5`);
    assert(row.tokensPerSecond > 0 && row.latencyP99 >= row.latencyP50);
    assert(row.ttftP50 <= row.latencyP50);
    assert(row.utilisation > 0 && row.utilisation <= 1);
  }
  const steps = new Set(r.rows.map((x) => x.layerSteps));
  assertEquals(steps.size, 1, `layer-steps differ between modes: ${[...steps]}`);
  const md = serveBenchMarkdown(r);
  assertMatch(md, /\| per-row \| 5\/5 \|.*x \|.*x \|/);
  assertMatch(md, /Same tokens for every request in every mode and repeat: yes/);
});
