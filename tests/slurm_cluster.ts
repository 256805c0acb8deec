/**
 * A one-node Slurm cluster for the tests, started by the test itself (Debian's `slurm-wlm`
 * and `munge`, as root, without systemd; see `../shared/ENVIRONMENT.md`): a temporary
 * folder `$TMPDIR/skipdecode-slurm-*` with a munge key, a `slurm.conf` (this host, its CPUs,
 * ports picked at random so that two clusters on one machine do not meet, state, spool, pid
 * and log files inside the folder), then `munged`, `slurmctld` and `slurmd` in the
 * foreground as children of the test, which stops them (`scontrol shutdown`, then a signal)
 * when it ends. Their pid files stay in the folder for `.ci/run`'s exit trap, which stops
 * whatever a killed test left running.
 *
 * Where the packages are missing or the daemons cannot start (not root, no munge), the
 * cluster is `null` with a loud warning; under `CI` that is an error instead.
 *
 * @module
 */

/** A running cluster. */
export interface SlurmCluster {
  /** Its folder. */
  dir: string;
  /** The environment its clients need (`SLURM_CONF`). */
  env: Record<string, string>;
  /** Runs a Slurm client command; throws with its stderr when it fails. */
  run(cmd: string, args: string[]): Promise<string>;
  /** Stops the daemons and removes the folder. */
  stop(): Promise<void>;
}

const envOr = (k: string, d: string) => {
  try {
    return Deno.env.get(k) || d;
  } catch {
    return d;
  }
};

function unavailable(why: string): null {
  const msg = `Slurm cluster unavailable: ${why}`;
  if (envOr("CI", "")) throw new Error(`${msg}; CI is set, so the Slurm tests fail`);
  console.warn(`\n!!! SKIPPING the Slurm tests: ${msg} !!!\n`);
  return null;
}

async function output(cmd: string, args: string[], env: Record<string, string>) {
  const out = await new Deno.Command(cmd, { args, env, stdout: "piped", stderr: "piped" })
    .output();
  const dec = new TextDecoder();
  return { ok: out.success, stdout: dec.decode(out.stdout).trim(), stderr: dec.decode(out.stderr) };
}

/**
 * Starts the cluster (see the module documentation).
 *
 * @returns the cluster, or `null` where Slurm cannot run (skipped loudly; an error under CI)
 */
export async function startSlurm(): Promise<SlurmCluster | null> {
  try {
    await output("sbatch", ["--version"], {});
  } catch {
    return unavailable("sbatch is not installed (apt-get install slurm-wlm munge)");
  }
  const dir = Deno.makeTempDirSync({
    dir: envOr("TMPDIR", "/tmp"),
    prefix: "skipdecode-slurm-",
  });
  Deno.chmodSync(dir, 0o755); // munged's socket must be reachable
  const children: Deno.ChildProcess[] = [];
  const conf = `${dir}/slurm.conf`;
  const env = { SLURM_CONF: conf };
  const run = async (cmd: string, args: string[]) => {
    const r = await output(cmd, args, env);
    if (!r.ok) throw new Error(`${cmd} ${args.join(" ")} failed: ${r.stderr.trim()}`);
    return r.stdout;
  };
  const stop = async () => {
    await output("scontrol", ["shutdown"], env).catch(() => undefined);
    for (const c of children.reverse()) {
      await Promise.race([c.status, new Promise((r) => setTimeout(r, 5000))]);
      try {
        c.kill("SIGTERM");
      } catch { /* ended */ }
      await c.status;
    }
    try {
      Deno.removeSync(dir, { recursive: true });
    } catch { /* left in TMPDIR */ }
  };
  const spawn = (cmd: string, args: string[]) => {
    const c = new Deno.Command(cmd, { args, env, stdout: "null", stderr: "null" }).spawn();
    children.push(c);
    return c;
  };
  try {
    const key = await output("mungekey", ["-c", "-k", `${dir}/munge.key`], {});
    if (!key.ok) throw new Error(`mungekey: ${key.stderr.trim()}`);
    Deno.chmodSync(`${dir}/munge.key`, 0o600);
    spawn("munged", [
      "-F",
      "--force",
      `--socket=${dir}/munge.sock`,
      `--key-file=${dir}/munge.key`,
      `--log-file=${dir}/munged.log`,
      `--pid-file=${dir}/munged.pid`,
      `--seed-file=${dir}/munged.seed`,
    ]);
    const host = Deno.hostname().split(".")[0];
    const port = 20000 + Math.floor(Math.random() * 20000);
    Deno.mkdirSync(`${dir}/state`);
    Deno.mkdirSync(`${dir}/spool`);
    Deno.writeTextFileSync(
      conf,
      [
        "ClusterName=skipdecode",
        `SlurmctldHost=${host}`,
        `SlurmctldPort=${port}`,
        `SlurmdPort=${port + 1}`,
        "AuthType=auth/munge",
        "CredType=cred/munge",
        `AuthInfo=socket=${dir}/munge.sock`,
        "ProctrackType=proctrack/linuxproc",
        "TaskPlugin=task/none",
        "SelectType=select/cons_tres",
        "SelectTypeParameters=CR_Core",
        "SlurmUser=root",
        "SlurmdUser=root",
        "ReturnToService=2",
        "MpiDefault=none",
        "JobAcctGatherType=jobacct_gather/none",
        "AccountingStorageType=accounting_storage/none",
        "MinJobAge=600",
        `StateSaveLocation=${dir}/state`,
        `SlurmdSpoolDir=${dir}/spool`,
        `SlurmctldPidFile=${dir}/slurmctld.pid`,
        `SlurmdPidFile=${dir}/slurmd.pid`,
        `SlurmctldLogFile=${dir}/slurmctld.log`,
        `SlurmdLogFile=${dir}/slurmd.log`,
        `NodeName=${host} CPUs=${navigator.hardwareConcurrency} State=UNKNOWN`,
        `PartitionName=test Nodes=${host} Default=YES MaxTime=INFINITE State=UP`,
        "",
      ].join("\n"),
    );
    for (let i = 0; i < 50 && !exists(`${dir}/munge.sock`); i++) await sleep(100);
    if (!exists(`${dir}/munge.sock`)) throw new Error("munged did not start (not root?)");
    spawn("slurmctld", ["-D", "-f", conf]);
    spawn("slurmd", ["-D", "-f", conf]);
    let state = "";
    for (let i = 0; i < 60 && state !== "idle"; i++) {
      await sleep(500);
      state = (await output("sinfo", ["-h", "-o", "%T"], env)).stdout;
    }
    if (state !== "idle") throw new Error(`the node is "${state || "not up"}" after 30 s`);
  } catch (e) {
    await stop();
    return unavailable((e as Error).message);
  }
  return { dir, env, run, stop };
}

function exists(p: string): boolean {
  try {
    Deno.statSync(p);
    return true;
  } catch {
    return false;
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/**
 * Waits until `squeue` no longer lists a job.
 *
 * @param cluster the cluster
 * @param id the job id
 * @param limitMs give up after this long
 */
export async function waitForJob(cluster: SlurmCluster, id: string, limitMs = 540_000) {
  const t0 = Date.now();
  while (Date.now() - t0 < limitMs) {
    if ((await cluster.run("squeue", ["-j", id, "-h", "-o", "%i"])) === "") return;
    await sleep(1000);
  }
  throw new Error(`job ${id} still queued after ${limitMs / 1000} s`);
}
