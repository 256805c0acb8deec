/**
 * The suite's tiers (`tests/tiers.ts`): the rule puts the files whose tier is known in it,
 * follows helpers, ignores comments, and honours a `// @tier` line.
 */
// @tier unit (the test data below names the e2e and GPU signals in strings)
import { assertEquals } from "@std/assert";
import { classifyTest, classifyTests, processOf, stripComments, testSignals } from "./tiers.ts";

const TESTS = decodeURIComponent(new URL("./", import.meta.url).pathname).replace(/\/$/, "");

Deno.test("tiers: the suite's known files land in their tier", () => {
  const tiers = classifyTests(TESTS);
  const tier = (name: string) => tiers.get(`${TESTS}/${name}`);
  for (const e2e of ["cli_interrupt_test.ts", "cli_bad_input_test.ts", "notebooks_test.ts"]) {
    assertEquals(tier(e2e), "e2e", e2e);
  }
  for (const gpu of ["kernels_matmul_test.ts", "webgpu_e2e_test.ts", "kernels_adamw_test.ts"]) {
    assertEquals(tier(gpu), "gpu", gpu);
  }
  for (const unit of ["schedule_plan_test.ts", "cpu_reference_test.ts", "tiers_test.ts"]) {
    assertEquals(tier(unit), "unit", unit);
  }
  assertEquals(tier("helpers.ts"), undefined, "helpers are not test files");
});

Deno.test("tiers: helpers are followed, comments ignored, a @tier line wins", () => {
  const files: Record<string, string> = {
    "t/a_test.ts": 'import { x } from "./h1.ts";\nx();',
    "t/h1.ts": 'export { y as x } from "./h2.ts";',
    "t/h2.ts": 'export const y = () => new Deno.Command("x");',
    "t/b_test.ts": 'import { g } from "./g.ts";\n// spawnCli() is only named here\ng();',
    "t/g.ts": "export const g = () => navigator.gpu;",
    "t/c_test.ts": "/* Deno.Command, testGpu */ const a = 1;",
    "t/d_test.ts": "// @tier e2e\nconst a = 1;",
    "t/e_test.ts": 'import "./missing.ts"; import "../up/x.ts";',
  };
  const read = (p: string) => {
    if (!(p in files)) throw new Deno.errors.NotFound(p);
    return files[p];
  };
  assertEquals(classifyTest("t/a_test.ts", read), "e2e", "through two helpers");
  assertEquals(classifyTest("t/b_test.ts", read), "gpu", "a GPU helper; a comment is not code");
  assertEquals(classifyTest("t/c_test.ts", read), "unit", "a block comment is not code");
  assertEquals(classifyTest("t/d_test.ts", read), "e2e", "the @tier line");
  assertEquals(classifyTest("t/e_test.ts", read), "unit", "missing and outside helpers");
  assertEquals(stripComments('a("http://x"); // b()'), 'a("http://x"); ');
});

Deno.test("tiers: the process of a file: Mesa's (an in-process device) or OpenBLAS's", () => {
  const files: Record<string, string> = {
    "t/a_test.ts": 'import { g } from "./g.ts";\nnew Deno.Command("x"); g();',
    "t/g.ts": "export const g = () => navigator.gpu;",
    "t/b_test.ts": 'new Deno.Command("x");',
    "t/c_test.ts": '// @tier unit\nconst s = "navigator.gpu";',
    "t/d_test.ts": "// @tier e2e\nawait navigator.gpu.requestAdapter();",
  };
  const read = (p: string) => files[p];
  assertEquals(testSignals("t/a_test.ts", read), { spawns: true, gpu: true });
  assertEquals(processOf("t/a_test.ts", read), "gpu", "spawns, and opens a device itself");
  assertEquals(processOf("t/b_test.ts", read), "cpu", "spawns only");
  assertEquals(processOf("t/c_test.ts", read), "cpu", "@tier unit: the signals are data");
  assertEquals(processOf("t/d_test.ts", read), "gpu", "@tier e2e does not hide a device");
  const cpu = ["train_loop_test.ts", "train_blas_test.ts", "cli_interrupt_test.ts"];
  for (const f of cpu) assertEquals(processOf(`${TESTS}/${f}`), "cpu", f);
  const gpu = ["kernels_matmul_test.ts", "train_gpu_test.ts", "sweep_shard_test.ts"];
  for (const f of gpu) assertEquals(processOf(`${TESTS}/${f}`), "gpu", f);
});
