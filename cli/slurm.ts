/**
 * Slurm job arrays for `sweep --slurm`: the `sbatch` script of an array with one task per
 * shard (`--array=0-(N-1)%K`, resources as `#SBATCH` lines, one log pair per task), each
 * task running the same command with the task's own permissions (it reads its shard from
 * `SLURM_ARRAY_TASK_ID`/`SLURM_ARRAY_TASK_COUNT`), and `--submit`: `sbatch`, wait with
 * `squeue` (Slurm's accounting may be off), then merge.
 *
 * The script runs `deno` by the absolute path of the binary that wrote it, on the same
 * (shared) filesystem, with the repository, model and data named by absolute paths; GPU
 * nodes get `VK_ICD_FILENAMES` when it was set where the script was written (what Deno's
 * WebGPU needs to find the Vulkan driver), and every task a private `XDG_RUNTIME_DIR`.
 *
 * @example
 * ```ts
 * import { sbatchScript } from "./slurm.ts";
 * const script = sbatchScript({
 *   jobName: "sweep", dir: "/abs/out/run", shards: 4, maxParallel: 2, resources: ["--cpus-per-task=2"],
 *   command: ["/usr/bin/deno", "run", "cli/main.ts", "sweep"], workdir: "/abs/repo",
 * });
 * script.includes("#SBATCH --array=0-3%2"); // true
 * ```
 * @module
 */
import { join } from "node:path";
import { type OptionSpec, UsageError } from "./command.ts";

/** What {@linkcode sbatchScript} writes. */
export interface SbatchSpec {
  /** `--job-name`. */
  jobName: string;
  /** The run folder (absolute): logs go to `DIR/logs/`. */
  dir: string;
  /** Array tasks (one per shard). */
  shards: number;
  /** At most this many tasks at once (`%K`). */
  maxParallel: number;
  /** More `#SBATCH` options, e.g. `--cpus-per-task=4`, `--gres=gpu:1`. */
  resources: string[];
  /** The task's command line (absolute paths), run in `workdir`. */
  command: string[];
  /** The folder the task runs in. */
  workdir: string;
  /** Variables to export (e.g. `VK_ICD_FILENAMES`). */
  env?: Record<string, string>;
}

/**
 * Quotes a word for a POSIX shell.
 *
 * @param s the word
 * @returns it, quoted when needed
 * @example
 * ```ts
 * import { shellQuote } from "./slurm.ts";
 * shellQuote("a b"); // "'a b'"
 * ```
 */
export function shellQuote(s: string): string {
  return /^[A-Za-z0-9_./:=,@%+-]+$/.test(s) ? s : `'${s.replaceAll("'", `'\\''`)}'`;
}

/**
 * The `sbatch` script of a sweep's job array (see the module documentation).
 *
 * @param s the array's settings
 * @returns the script's text
 * @example
 * ```ts
 * import { sbatchScript } from "./slurm.ts";
 * sbatchScript({ jobName: "s", dir: "/o", shards: 2, maxParallel: 2, resources: [],
 *   command: ["/bin/echo"], workdir: "/" }).split("\n")[0]; // "#!/bin/bash"
 * ```
 */
export function sbatchScript(s: SbatchSpec): string {
  const lines = [
    "#!/bin/bash",
    `# skipdecode: one array task per shard; each reads SLURM_ARRAY_TASK_ID/SLURM_ARRAY_TASK_COUNT,`,
    `# runs its work units (complete ones are skipped) and writes them atomically into`,
    `# ${s.dir}/units/. Resubmit this script to rerun what is missing; then:`,
    `#   deno task skipdecode merge ${s.dir}`,
    `#SBATCH --job-name=${s.jobName}`,
    `#SBATCH --array=0-${s.shards - 1}%${s.maxParallel}`,
    `#SBATCH --output=${join(s.dir, "logs", "%A_%a.out")}`,
    `#SBATCH --error=${join(s.dir, "logs", "%A_%a.err")}`,
    `#SBATCH --chdir=${s.workdir}`,
    ...s.resources.map((r) => `#SBATCH ${r}`),
    "set -euo pipefail",
    `cd ${shellQuote(s.workdir)}`,
    // Mesa's Vulkan loader wants a private runtime folder; one per task.
    'export XDG_RUNTIME_DIR="${TMPDIR:-/tmp}/skipdecode-xdg-${SLURM_JOB_ID:-0}-${SLURM_ARRAY_TASK_ID:-0}"',
    'mkdir -p "$XDG_RUNTIME_DIR" && chmod 700 "$XDG_RUNTIME_DIR"',
    "trap 'rm -rf \"$XDG_RUNTIME_DIR\"' EXIT",
    ...Object.entries(s.env ?? {}).map(([k, v]) => `export ${k}=${shellQuote(v)}`),
    'echo "skipdecode: task ${SLURM_ARRAY_TASK_ID} of ${SLURM_ARRAY_TASK_COUNT} on $(hostname)" >&2',
    s.command.map(shellQuote).join(" \\\n  "),
    "",
  ];
  return lines.join("\n");
}

/**
 * Options of the `--slurm` family, shared by `sweep` and `procedure`.
 */
export const SLURM_OPTIONS: Record<string, OptionSpec> = {
  slurm: {
    kind: "flag",
    description: "write DIR/<command>.sbatch: a Slurm job array, one task per shard",
  },
  submit: {
    kind: "flag",
    description: "with --slurm: submit it (sbatch), wait for it (squeue), then merge",
  },
  shards: {
    kind: "int",
    min: 1,
    max: 100000,
    value: "N",
    description: "array tasks for --slurm, or the shard count with JOB_COMPLETION_INDEX",
  },
  "max-parallel": {
    kind: "int",
    min: 1,
    max: 100000,
    value: "K",
    description: "with --slurm: at most K tasks at once (--array=0-(N-1)%K; default N)",
  },
  "cpus-per-task": { kind: "text", value: "C", description: "with --slurm: CPUs per task" },
  mem: { kind: "text", value: "SIZE", description: "with --slurm: memory per task (e.g. 8G)" },
  time: { kind: "text", value: "T", description: "with --slurm: time limit (e.g. 2:00:00)" },
  partition: { kind: "text", value: "NAME", description: "with --slurm: partition" },
  gres: { kind: "text", value: "SPEC", description: "with --slurm: e.g. gpu:1" },
  "sbatch-arg": {
    kind: "text",
    multiple: true,
    value: "OPT",
    description: "with --slurm: one more #SBATCH option, e.g. --account=abc",
  },
};

/** Names of the Slurm options (left out of the task's own command line). */
export const SLURM_OPTION_NAMES: string[] = Object.keys(SLURM_OPTIONS);

/**
 * The `#SBATCH` resource lines from the `--slurm` options, checked.
 *
 * @param v parsed option values
 * @returns e.g. `["--cpus-per-task=2", "--mem=4G"]`
 * @throws UsageError naming the option
 * @example
 * ```ts
 * import { slurmResources } from "./slurm.ts";
 * slurmResources({ "cpus-per-task": "2", mem: "4G" }); // ["--cpus-per-task=2", "--mem=4G"]
 * ```
 */
export function slurmResources(v: Record<string, unknown>): string[] {
  const out: string[] = [];
  const plain = /^[A-Za-z0-9_:.,=+-]+$/;
  for (const k of ["cpus-per-task", "mem", "time", "partition", "gres"]) {
    const x = v[k];
    if (x === undefined) continue;
    if (typeof x !== "string" || !plain.test(x)) {
      throw new UsageError(`--${k} must be a plain Slurm value, got ${JSON.stringify(x)}`);
    }
    out.push(`--${k}=${x}`);
  }
  for (const x of (v["sbatch-arg"] as string[] | undefined) ?? []) {
    if (!/^--[a-z][a-z-]*(=[A-Za-z0-9_:.,=+/%-]+)?$/.test(x)) {
      throw new UsageError(`--sbatch-arg must look like --name=value, got ${JSON.stringify(x)}`);
    }
    out.push(x);
  }
  return out;
}

async function run(cmd: string, args: string[]): Promise<string> {
  let out: Deno.CommandOutput;
  try {
    out = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).output();
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw new UsageError(`${cmd} is not installed here (Slurm's client commands are needed)`);
    }
    throw e;
  }
  const dec = new TextDecoder();
  if (!out.success) {
    throw new UsageError(
      `${cmd} ${args.join(" ")} failed: ${dec.decode(out.stderr).trim().split("\n")[0]}`,
    );
  }
  return dec.decode(out.stdout).trim();
}

/**
 * Submits a script with `sbatch --parsable` and waits until `squeue` no longer lists the
 * job (accounting, hence `sacct`, may be off on small clusters).
 *
 * @param script the script's path
 * @param o poll interval (ms, default 2000), notes
 * @returns the job id
 * @example
 * ```ts
 * import { submitAndWait } from "./slurm.ts";
 * // const id = await submitAndWait("out/run/sweep.sbatch");
 * ```
 */
export async function submitAndWait(
  script: string,
  o: { pollMs?: number; onNote?: (n: string) => void } = {},
): Promise<string> {
  const note = o.onNote ?? ((n: string) => console.error(n));
  const id = (await run("sbatch", ["--parsable", script])).split(";")[0];
  if (!/^\d+$/.test(id)) throw new UsageError(`sbatch answered "${id}", not a job id`);
  note(`slurm: submitted job ${id}; waiting (squeue -j ${id})`);
  let last = "";
  for (;;) {
    const q = await run("squeue", ["-j", id, "-h", "-o", "%i %T"]).catch((e) => {
      // squeue forgets a finished job after MinJobAge and then errors: the job is done.
      if (/Invalid job id/i.test(String((e as Error).message))) return "";
      throw e;
    });
    if (q === "") break;
    const states = q.split("\n").map((l) => l.split(" ")[1]).sort().join(",");
    if (states !== last) note(`slurm: job ${id}: ${states}`);
    last = states;
    await new Promise((r) => setTimeout(r, o.pollMs ?? 2000));
  }
  note(`slurm: job ${id} left the queue`);
  return id;
}
