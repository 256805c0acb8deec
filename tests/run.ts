/**
 * The test command (`deno task test`): runs `deno test` over `tests/` (in two processes, see
 * below) with the permissions the tests need and passes their output and exit codes through.
 * A run that ends by a signal fails, and says which process, which signal and after which
 * summary, with one exception, said loudly where it happens: a process killed by a signal
 * *after* its summary line reported every test passed (`ok | N passed | 0 failed`) runs its
 * files once more, and the second run's result is the process's result (a second death
 * fails). Why: glibc aborts at the exit of a `deno test` process that has used Mesa's
 * lavapipe ("double free or corruption", "corrupted size vs. prev_size in fastbins") were seen
 * twice in CI and five times in single test files on the loaded 2-core machine, always after
 * every test had passed, and not reproduced on demand (24 runs of a submit-then-destroy
 * script, 10 runs of a test file that had aborted, 8 runs under gdb, 12 runs of the OpenBLAS
 * files, all clean; docs/DESIGN.md §11). Test modules destroy their devices when they end
 * (`tests/webgpu_helpers.ts`) and the BLAS operands are bounds-checked (`train/blas.ts`); a
 * death before or without a clean summary, or twice, fails as before.
 *
 * The examples in the JSDoc are checked in the full run (no arguments; beside the test files,
 * reported at the end) or with `--docs` alone: every example of the repository type-checks
 * (`deno check --doc-only .`, in the full run `deno check --doc .`, which checks the code too;
 * examples that need a GPU, the network, a checkpoint or a file on disk are only type-checked),
 * and the examples of the pure modules in {@linkcode RUN_DOCS} run (`deno test --doc`).
 * `deno task test FILES` runs just those test files.
 *
 * Tiers (`tests/tiers.ts` decides each file's from its code, so new files need no list):
 * `unit` (in-process, CPU only), `gpu` (asks for a WebGPU device), `e2e` (starts processes:
 * the command line, notebooks). `--tier=unit,gpu` runs those tiers' files (no JSDoc steps);
 * `--quick` is `--tier=unit` (`deno task test:quick`, the edit loop).
 *
 * Processes: the files run in two `deno test --parallel` processes started together (one
 * isolate per file, as without `--parallel`), split by `processOf` (`tests/tiers.ts`): the files
 * that open a WebGPU device in their own process (Mesa's driver) without `--allow-ffi`, and the
 * rest (unit and end-to-end files; OpenBLAS may load), each with `DENO_JOBS` workers (the number
 * of cores by default), the end-to-end files first: they are the longest, and most of their
 * time is spent waiting for a child process. Mesa and OpenBLAS never share a heap, and a run that
 * ends by a signal names the process that died. The type check `deno test` does is done once,
 * beside the tests (the test processes run with `--no-check`): `deno check` of the chosen files,
 * or in the full run `deno check --doc .`, the code and every JSDoc example in one program.
 *
 * Counting the assertions a run executes: `SKIPDECODE_ASSERT_COUNT=/tmp/asserts.txt deno task
 * test` makes every test isolate append `N<TAB>module` to that file when it ends
 * (`std/assert.ts` counts its calls); `awk '{s += $1} END {print s}' /tmp/asserts.txt` sums
 * them. Assertions made inside the command-line subprocesses are not in the count.
 *
 * @module
 */
import { classifyTests, processOf, type Tier, TIERS } from "./tiers.ts";

// Least privilege: what the tests read, write, look up and run, and no more.
const ROOT = decodeURIComponent(new URL("../", import.meta.url).pathname).replace(/\/$/, "");
const envOr = (k: string, d: string) => {
  try {
    return Deno.env.get(k) || d;
  } catch {
    return d;
  }
};
const TMP = envOr("TMPDIR", "/tmp").replace(/\/$/, "");
const HF = `${envOr("HOME", "/root")}/.cache/huggingface`;
// The one-node Slurm cluster of tests/slurm_test.ts: its daemons and client commands, by name.
const SLURM = [
  "mungekey",
  "munged",
  "slurmctld",
  "slurmd",
  "sinfo",
  "sbatch",
  "squeue",
  "scancel",
  "scontrol",
];
const PERMISSIONS = [
  `--allow-read=${ROOT},${ROOT}/../shared,${TMP},${HF}`,
  `--allow-write=${TMP},${ROOT}/out,${ROOT}/reports,${ROOT}/.cache`,
  "--allow-env=CI,HOME,USERPROFILE,XDG_CACHE_HOME,XDG_RUNTIME_DIR,HF_HUB_CACHE,HF_HOME," +
  "HF_HUB_OFFLINE,HF_ENDPOINT,SKIPDECODE_*",
  "--allow-net=127.0.0.1",
  // The CPU trainer's linear maps on OpenBLAS (train/blas.ts), as the deno.json tasks allow.
  "--allow-ffi=/usr/lib/x86_64-linux-gnu/libopenblas.so.0",
  `--allow-run=${Deno.execPath()},jupyter,chromium,${SLURM.join(",")}`,
  // The Slurm test names its one-node cluster after this host (slurm.conf's NodeName).
  "--allow-sys=hostname",
];
/**
 * Modules whose JSDoc examples run as tests (pure: no GPU, network, checkpoint or output file).
 * Every other example is type-checked only.
 */
const RUN_DOCS = [
  "schedule/",
  "model/dtype.ts",
  "model/tensor.ts",
  "model/random.ts",
  "eval/bleu.ts",
  "eval/rouge.ts",
  "std/",
];
/**
 * The longest test files (measured), started first so that the two workers end together; only
 * an order: every other file runs too, after these, in name order within its tier.
 */
const LONGEST = [
  "notebooks_test.ts",
  "cli_interrupt_test.ts",
  "webgpu_gl_test.ts",
  "cli_concurrency_test.ts",
  "webgpu_opt125m_test.ts",
];
const flags = Deno.args.filter((a) => a.startsWith("--"));
const files = Deno.args.filter((a) => !a.startsWith("--"));
const docsOnly = flags.length === 1 && flags[0] === "--docs" && files.length === 0;
let tiers: Tier[] | null = null;
for (const f of flags) {
  if (f === "--quick") tiers = ["unit"];
  else if (f.startsWith("--tier=")) {
    tiers = f.slice(7).split(",").map((t) => t.trim()) as Tier[];
    const bad = tiers.find((t) => !TIERS.includes(t));
    if (bad) {
      console.error(`tests/run.ts: --tier: unknown tier "${bad}" (tiers: ${TIERS.join(", ")})`);
      Deno.exit(2);
    }
  } else if (f !== "--docs") {
    console.error(
      `tests/run.ts: unknown option ${f} (options: --quick, --tier=${TIERS.join(",")}, --docs)`,
    );
    Deno.exit(2);
  }
}
if (tiers && files.length) {
  console.error("tests/run.ts: give test files or a tier, not both");
  Deno.exit(2);
}
const full = Deno.args.length === 0;
// In the full run the first step also type-checks the code, test files included (one program
// instead of a `deno check` of the tests and another of the examples: 15 s of CPU against 24,
// cold, measured 2026-12-08); the test processes skip their own check.
const DOC_STEPS: [string, string[]][] = [
  full
    ? ["the code and every JSDoc example type-check", ["check", "--doc", "."]]
    : ["every JSDoc example type-checks", ["check", "--doc-only", "."]],
  ["the pure modules' examples run", ["test", "--doc", `--allow-read=${ROOT}`, ...RUN_DOCS]],
];
if (docsOnly) {
  for (const [what, cmd] of DOC_STEPS) {
    console.log(`tests/run.ts: ${what}: deno ${cmd.join(" ")}`);
    const { code } = await new Deno.Command(Deno.execPath(), { args: cmd, cwd: ROOT }).spawn()
      .status;
    if (code !== 0) {
      console.error(`tests/run.ts: ${what} failed (deno ${cmd.join(" ")})`);
      Deno.exit(code || 1);
    }
  }
  Deno.exit(0);
}
/**
 * The JSDoc steps of the full run, beside the test files (each is mostly one core's work, as
 * is the type check `deno test` starts with): their output is kept and shown at the end, in
 * full when a step fails. Resolves to the failing step's exit code, or 0.
 */
async function docSteps(): Promise<number> {
  for (const [what, cmd] of DOC_STEPS) {
    const out = await new Deno.Command(Deno.execPath(), { args: cmd, cwd: ROOT }).output();
    const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
    if (out.code !== 0) {
      console.error(`${text}\ntests/run.ts: ${what} failed (deno ${cmd.join(" ")})`);
      return out.code || 1;
    }
    // deno-lint-ignore no-control-regex
    const summary = text.replace(/\x1b\[[0-9;]*m/g, "").match(/^ok \| [^\n]*/m)?.[0] ?? "ok";
    console.log(`tests/run.ts: ${what}: ${summary} (deno ${cmd.join(" ")})`);
  }
  return 0;
}
const docs = full ? docSteps() : Promise.resolve(0);
let targets = files;
if (!files.length) {
  // Every test file, the end-to-end tier first (longest first keeps both workers busy).
  const all = [...classifyTests(`${ROOT}/tests`)];
  const order = [...TIERS].reverse().filter((t) => !tiers || tiers.includes(t));
  const rank = (f: string) => {
    const i = LONGEST.indexOf(f.slice(f.lastIndexOf("/") + 1));
    return i < 0 ? LONGEST.length : i;
  };
  targets = order.flatMap((t) =>
    all.filter(([, x]) => x === t).map(([f]) => f).sort((a, b) => rank(a) - rank(b))
  );
  const counts = order.map((t) => `${all.filter(([, x]) => x === t).length} ${t}`);
  console.log(`tests/run.ts: ${targets.length} test files (${counts.join(", ")}), in parallel`);
}

/**
 * One `deno test` process of the run. The files that open a WebGPU device in their own process
 * (Mesa's driver) run in one, without `--allow-ffi`; the rest in the other, where OpenBLAS may
 * load (the CPU trainer, `train/blas.ts`): the two native libraries never share a heap, so an
 * abort at exit (glibc heap corruption was seen twice in CI after every test had passed) names
 * the process and the library it holds. Both start at once; `jobs` is its `DENO_JOBS`.
 */
interface TestProcessRun {
  /** The name in messages. */
  name: string;
  /** Its test files, in start order. */
  files: string[];
  /** Its permission flags. */
  permissions: string[];
  /** Parallel workers (`DENO_JOBS`). */
  jobs: number;
}
const cores = Number(envOr("DENO_JOBS", "")) || navigator.hardwareConcurrency || 2;
const runs: TestProcessRun[] = [
  {
    name: "the CPU process (unit and end-to-end files; OpenBLAS may load)",
    files: targets.filter((f) => processOf(f) === "cpu"),
    permissions: PERMISSIONS,
    jobs: cores,
  },
  {
    name: "the GPU process (files that open a WebGPU device: Mesa)",
    files: targets.filter((f) => processOf(f) === "gpu"),
    permissions: PERMISSIONS.filter((p) => !p.startsWith("--allow-ffi")),
    // As many workers as the other process: when one process ends first, the other still
    // keeps every core busy.
    jobs: cores,
  },
].filter((r) => r.files.length > 0);

// The type check `deno test` would do in each process, done once for all files beside the
// tests (one core's work while the first files run); the test processes skip it. The full run
// checks them in its first JSDoc step (`deno check --doc .`).
const check = full ? null : new Deno.Command(Deno.execPath(), {
  args: ["check", ...targets],
  stdout: "piped",
  stderr: "piped",
}).output();

/** Passes a child's stdout through whole lines at a time (two children share the terminal). */
async function relay(child: Deno.ChildProcess, keep: (text: string) => void): Promise<void> {
  const decoder = new TextDecoder();
  let pending = "";
  for await (const chunk of child.stdout) {
    pending += decoder.decode(chunk, { stream: true });
    const cut = pending.lastIndexOf("\n") + 1;
    if (cut > 0) {
      const lines = pending.slice(0, cut);
      pending = pending.slice(cut);
      await Deno.stdout.write(new TextEncoder().encode(lines));
      keep(lines);
    }
  }
  if (pending) {
    await Deno.stdout.write(new TextEncoder().encode(pending + "\n"));
    keep(pending);
  }
}

/** Runs one test process; resolves to its exit status and the summary line it printed. */
async function runProcess(run: TestProcessRun) {
  const args = ["test", "--parallel", "--no-check", ...run.permissions, ...run.files];
  const child = new Deno.Command(Deno.execPath(), {
    args,
    stdout: "piped",
    stderr: "inherit",
    env: { DENO_JOBS: String(run.jobs) },
  }).spawn();
  let tail = "";
  await relay(child, (text) => tail = (tail + text).slice(-8000));
  const status = await child.status;
  // deno-lint-ignore no-control-regex
  const plain = tail.replace(/\x1b\[[0-9;]*m/g, "");
  const summary = plain.match(/^(ok|FAILED) \| [^\n]*/m)?.[0] ?? "no summary line";
  return { run, status, summary };
}

const CLEAN = /^ok \| \d+ passed[^|]*\| 0 failed/;
const results = await Promise.all(runs.map(async (run) => {
  const first = await runProcess(run);
  if (!first.status.signal || !CLEAN.test(first.summary)) return { ...first, died: "" };
  // Every test of this process passed, then the process died at exit (see the header).
  const died = `${first.status.signal} at exit after "${first.summary}"`;
  console.error(
    `\n!!! tests/run.ts: ${run.name} was killed by ${died}; running its ` +
      `${run.files.length} files once more (a second death fails) !!!\n`,
  );
  return { ...(await runProcess(run)), died };
}));
const checked = await check;
const docsCode = await docs;
let code = 0;
if (checked && !checked.success) {
  const text = new TextDecoder().decode(checked.stdout) + new TextDecoder().decode(checked.stderr);
  console.error(`${text}\ntests/run.ts: the type check failed (deno check ${targets.join(" ")})`);
  code = checked.code || 1;
}
console.log("");
for (const { run, status, summary, died } of results) {
  const rerun = died ? ` (second run: the first was killed by ${died})` : "";
  const what = `${run.name}, ${run.files.length} files${rerun}`;
  if (status.signal) {
    console.error(`tests/run.ts: ${what}: deno test was killed by ${status.signal} (${summary}).`);
  } else console.log(`tests/run.ts: ${what}: ${summary}`);
  if (!status.success) code ||= status.code || 1;
}
Deno.exit(code || docsCode);
