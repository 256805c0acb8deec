/**
 * The PyTorch eager reference of `deno task bench` (bench/torch_decode.py): it must decode
 * the very tokens the CPU backend decodes (same weights, prompts and layer sets), for `full`
 * and a skip plan; without the run permission it reports that it was skipped. Runs the
 * reference in a subprocess with `--allow-run=/usr/bin/python3`; skipped loudly when
 * /usr/bin/python3 is missing or has no torch.
 */
import { assertEquals, assertMatch } from "@std/assert";
import { startTorchEngine, TORCH_PYTHON } from "../bench/torch_engine.ts";
import { TINY_MODEL_DIR } from "../data/bundled.ts";

Deno.test("torch reference: skipped with a reason without --allow-run", async () => {
  const t = await startTorchEngine(TINY_MODEL_DIR);
  if ("engine" in t) {
    await t.engine.close(); // this test run may hold the permission; nothing to check
    return;
  }
  assertMatch(t.skipped, /permission|cannot be started|torch/);
});

const probe = `
import { startTorchEngine } from "./bench/torch_engine.ts";
import { loadWeights } from "./model/mod.ts";
import { createBackend } from "./backend/mod.ts";
import { linear, plan, full } from "./schedule/mod.ts";
const dir = ${JSON.stringify(TINY_MODEL_DIR)};
const t = await startTorchEngine(dir, { threads: 2 });
if (!("engine" in t)) { console.log(JSON.stringify({ skipped: t.skipped })); Deno.exit(0); }
const cpu = await createBackend(await loadWeights(dir), { backend: "cpu" });
const prompts = [[2, 100, 200, 300, 400, 17], [2, 5, 6, 7, 8, 9]];
const out = [];
for (const p of [full(), linear({ max: 12, min: 3, warmup: 1, horizon: 3 })]) {
  const pl = plan(p, { layers: 12, promptLength: 6, maxNewTokens: 7 });
  const a = await cpu.decode({ prompts, maxNewTokens: 7, sets: pl.sets, padTokenId: 1 });
  const b = await t.engine.decode({ prompts, maxNewTokens: 7, sets: pl.sets });
  out.push({ cpu: a.tokens, torch: b.tokens });
}
await t.engine.close();
console.log(JSON.stringify({ out }));
`;

Deno.test("torch reference: same greedy tokens as the CPU backend (full and a skip plan)", async () => {
  const root = new URL("..", import.meta.url).pathname;
  const r = await new Deno.Command(Deno.execPath(), {
    args: [
      "eval",
      `--allow-read=${root},${root}../shared`,
      `--allow-run=${TORCH_PYTHON}`,
      probe,
    ],
    cwd: root,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(r.stdout).trim();
  assertEquals(r.code, 0, new TextDecoder().decode(r.stderr));
  const res = JSON.parse(text.split("\n").at(-1)!);
  if (res.skipped) {
    console.warn(`WARNING: PyTorch reference test skipped: ${res.skipped}`);
    return;
  }
  for (const { cpu, torch } of res.out) assertEquals(torch, cpu);
});
