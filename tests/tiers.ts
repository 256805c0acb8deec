/**
 * The tiers of the test suite, decided from each test file's code so that a new file lands in
 * the right tier without a list to edit:
 *
 * - `e2e`: the file, or a `tests/` helper it imports (transitively), starts processes
 *   (`Deno.Command`, `spawnCli`: the command line, notebooks, probes);
 * - `gpu`: otherwise, the file or such a helper asks for a WebGPU adapter or device
 *   (`navigator.gpu`, `requestAdapter`, `testGpu`, `requestGpu`, `createWebGpuBackend`);
 * - `unit`: everything else (in-process, CPU only): `deno task test:quick`.
 *
 * A file may state its tier in a line comment `// @tier e2e` (or `gpu`, `unit`), which wins
 * over the rule (for a heavy in-process test that should stay out of the quick tier, say).
 * Comments are not read as code, so naming a helper in prose does not move a file.
 *
 * `tests/run.ts` runs the files in two `deno test` processes ({@linkcode processOf}): those
 * that open a WebGPU device in their own process (Mesa) and the rest (OpenBLAS allowed).
 *
 * @example
 * ```ts
 * import { classifyTests } from "./tiers.ts";
 * const tiers = classifyTests("tests"); // Map { "tests/cli_test.ts" => "e2e", ... }
 * ```
 * @module
 */

/** A tier of the suite. */
export type Tier = "unit" | "gpu" | "e2e";
/** Every tier, cheapest first. */
export const TIERS: readonly Tier[] = ["unit", "gpu", "e2e"];

const E2E = /\bDeno\.Command\b|\bspawnCli\b/;
const GPU =
  /\bnavigator\.gpu\b|\brequestAdapter\b|\btestGpu\b|\brequestGpu\b|\bcreateWebGpuBackend\b/;
const MARK = /^\s*\/\/\s*@tier\s+(unit|gpu|e2e)\b/m;
const LOCAL_IMPORT = /\bfrom\s+["'](\.\/[\w./-]+\.ts)["']/g;

/**
 * A module's code without its comments (strings kept; good enough for the signals above).
 *
 * @example
 * ```ts
 * stripComments("a(); // b()\n/* c() *\/ d();"); // "a(); \n d();"
 * ```
 */
export function stripComments(source: string): string {
  return source.replace(/\/\*[\s\S]*?\*\//g, "").replace(/(^|[^:"'`\\])\/\/[^\n]*/g, "$1");
}

/** What a test file's code (with the helpers beside it that it imports) does in its process. */
export interface TestSignals {
  /** It starts processes (`Deno.Command`, `spawnCli`). */
  readonly spawns: boolean;
  /** It asks for a WebGPU adapter or device in its own process (Mesa's driver loads there). */
  readonly gpu: boolean;
  /** The tier a `// @tier` line states, if any. */
  readonly mark?: Tier;
}

/**
 * What one test file (a `*_test.ts` path) does, reading it and the helpers of its folder it
 * imports (transitively); `read` is injectable for tests. The `@tier` line does not change the
 * signals: a file marked `e2e` that opens a device still loads Mesa in its process.
 *
 * @example
 * ```ts
 * testSignals("tests/sweep_shard_test.ts"); // { spawns: true, gpu: true }
 * ```
 */
export function testSignals(
  path: string,
  read: (path: string) => string = Deno.readTextFileSync,
): TestSignals {
  const own = read(path);
  const mark = own.match(MARK)?.[1] as Tier | undefined;
  const dir = path.includes("/") ? path.slice(0, path.lastIndexOf("/")) : ".";
  const seen = new Set<string>();
  let spawns = false, gpu = false;
  const visit = (p: string, text: string) => {
    if (seen.has(p)) return;
    seen.add(p);
    const code = stripComments(text);
    spawns ||= E2E.test(code);
    gpu ||= GPU.test(code);
    for (const m of code.matchAll(LOCAL_IMPORT)) {
      const next = `${dir}/${m[1].slice(2)}`;
      if (m[1].slice(2).includes("/")) continue; // only the helpers beside the tests
      let helper: string;
      try {
        helper = read(next);
      } catch {
        continue; // deno test reports the missing module itself
      }
      visit(next, helper);
    }
  };
  visit(path, own);
  return mark ? { spawns, gpu, mark } : { spawns, gpu };
}

/**
 * The tier of one test file (a `*_test.ts` path), reading it and the helpers of its folder it
 * imports; `read` is injectable for tests.
 *
 * @example
 * ```ts
 * classifyTest("tests/cli_test.ts"); // "e2e"
 * ```
 */
export function classifyTest(
  path: string,
  read: (path: string) => string = Deno.readTextFileSync,
): Tier {
  const { spawns, gpu, mark } = testSignals(path, read);
  return mark ?? (spawns ? "e2e" : gpu ? "gpu" : "unit");
}

/**
 * The `deno test` process a file runs in under `tests/run.ts`: `"gpu"` for every file that
 * opens a WebGPU device in its own process (Mesa's Vulkan driver), `"cpu"` for the rest (the
 * process that may load OpenBLAS, `--allow-ffi`). The two native libraries never share a heap,
 * so a corruption at exit names its process. A file marked `// @tier unit` states that it runs
 * on the CPU only (its signals are test data, as in `tests/tiers_test.ts`): `"cpu"`.
 *
 * @example
 * ```ts
 * processOf("tests/train_loop_test.ts"); // "cpu"
 * processOf("tests/kernels_matmul_test.ts"); // "gpu"
 * ```
 */
export function processOf(
  path: string,
  read: (path: string) => string = Deno.readTextFileSync,
): TestProcess {
  const { gpu, mark } = testSignals(path, read);
  return gpu && mark !== "unit" ? "gpu" : "cpu";
}

/** The two `deno test` processes of a run: with OpenBLAS allowed (`cpu`) and with Mesa (`gpu`). */
export type TestProcess = "cpu" | "gpu";

/**
 * Every `*_test.ts` file of a folder with its tier, sorted by name.
 *
 * @example
 * ```ts
 * const unit = [...classifyTests("tests")].filter(([, t]) => t === "unit").map(([f]) => f);
 * ```
 */
export function classifyTests(dir: string): Map<string, Tier> {
  const names = [...Deno.readDirSync(dir)].filter((e) => e.isFile && e.name.endsWith("_test.ts"))
    .map((e) => e.name).sort();
  return new Map(names.map((n) => [`${dir}/${n}`, classifyTest(`${dir}/${n}`)]));
}
