/**
 * The PyTorch eager reference of the decode benchmark: a `/usr/bin/python3` process running
 * `bench/torch_decode.py` (OPT in PyTorch eager mode, f32, KV cache, greedy), fed one JSON
 * request per line. It loads the same safetensors file as the project's backends and runs
 * the same prompts and per-column layer sets, so `deno task bench` can time both
 * interleaved in one run.
 *
 * The process gets a cleared environment (no `OPENBLAS_CORETYPE` / `OPENBLAS_L2_SIZE`,
 * which would pin OpenBLAS to slow generic kernels here) and `torch.set_num_threads`
 * threads. It needs `--allow-run=/usr/bin/python3`; without that permission, without
 * python3, or without `torch` importable, {@linkcode startTorchEngine} returns the reason
 * it was skipped instead of an engine.
 *
 * @example
 * ```ts
 * const t = await startTorchEngine("bundled/models/tiny-opt-e2e", { threads: 2 });
 * if ("engine" in t) {
 *   const out = await t.engine.decode({ prompts: [[2, 100]], maxNewTokens: 4, sets: [] });
 *   console.log(out.tokens);
 *   await t.engine.close();
 * } else console.log(t.skipped);
 * ```
 *
 * @module
 */

/** The interpreter used: Debian's, the one `python3-torch` installs into. */
export const TORCH_PYTHON = "/usr/bin/python3";

/** One decode as the reference runs it. */
export interface TorchDecodeRequest {
  /** Token ids per row (equal lengths). */
  prompts: readonly (readonly number[])[];
  /** Tokens generated per row. */
  maxNewTokens: number;
  /** Active layers per column (at least `P + N - 1` columns). */
  sets: readonly (readonly number[])[];
}

/** What the reference returns (the same timing fields as the project's backends). */
export interface TorchDecodeOutput {
  /** Generated ids per row. */
  tokens: number[][];
  /** Milliseconds inside PyTorch: prefill and decode. */
  timing: { prefillMs: number; decodeMs: number; readbacks: number };
}

/** A running reference process. */
export interface TorchEngine {
  /** `"torch"`. */
  readonly name: "torch";
  /**
   * PyTorch version, threads, BLAS library and a 512x768x768 GEMM's speed, e.g.
   * `PyTorch 1.13.0 eager f32 (2 threads, BLAS openblas-pthread/libblas.so.3, GEMM 60 GFLOP/s)`.
   */
  readonly description: string;
  /**
   * Set when the figures would mislead: PyTorch runs on the reference BLAS (Debian's
   * `libblas3` without `libopenblas0`), an order of magnitude slower than a user's PyTorch.
   */
  readonly warning?: string;
  /** Runs one decode. */
  decode(req: TorchDecodeRequest): Promise<TorchDecodeOutput>;
  /** Ends the process. */
  close(): Promise<void>;
}

/** Options of {@linkcode startTorchEngine}. */
export interface TorchEngineOptions {
  /** `torch.set_num_threads` (default 2, the machine's cores in the project's benchmark). */
  threads?: number;
  /** `"cpu"` (default) or `"cuda"` (PyTorch CUDA eager, on a GPU machine). */
  device?: "cpu" | "cuda";
}

/**
 * Starts the reference on a checkpoint folder (with `config.json` and `model.safetensors`).
 * Resolves to `{ engine }`, or to `{ skipped }` naming why it cannot run here.
 *
 * @example
 * ```ts
 * const t = await startTorchEngine(".cache/bench/opt-125m-random");
 * console.log("skipped" in t ? t.skipped : t.engine.description);
 * ```
 */
export async function startTorchEngine(
  modelDir: string,
  options: TorchEngineOptions = {},
): Promise<{ engine: TorchEngine } | { skipped: string }> {
  const perm = await Deno.permissions.query({ name: "run", command: TORCH_PYTHON });
  if (perm.state !== "granted") {
    return { skipped: `no permission to run ${TORCH_PYTHON} (--allow-run=${TORCH_PYTHON})` };
  }
  const script = new URL("./torch_decode.py", import.meta.url).pathname;
  let child: Deno.ChildProcess;
  try {
    child = new Deno.Command(TORCH_PYTHON, {
      args: ["-u", script],
      // A clean environment: OpenBLAS's fast kernels need OPENBLAS_CORETYPE and
      // OPENBLAS_L2_SIZE unset (they are set on this machine for other tools).
      clearEnv: true,
      env: { PATH: "/usr/bin:/bin", LANG: "C.UTF-8" },
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
  } catch (e) {
    return { skipped: `${TORCH_PYTHON} cannot be started: ${(e as Error).message}` };
  }
  const writer = child.stdin.getWriter();
  const lines = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  const stderr = new Response(child.stderr).text();
  let buffered = "";
  const readLine = async (): Promise<string | undefined> => {
    while (true) {
      const nl = buffered.indexOf("\n");
      if (nl >= 0) {
        const line = buffered.slice(0, nl);
        buffered = buffered.slice(nl + 1);
        return line;
      }
      const { value, done } = await lines.read();
      if (done) return undefined;
      buffered += value;
    }
  };
  let queue: Promise<unknown> = Promise.resolve();
  // deno-lint-ignore no-explicit-any
  const call = (req: unknown): Promise<any> => {
    const run = queue.then(async () => {
      await writer.write(new TextEncoder().encode(JSON.stringify(req) + "\n"));
      const line = await readLine();
      if (line === undefined) {
        const err = (await stderr).trim().split("\n").slice(-3).join(" | ");
        throw new Error(`the PyTorch reference exited: ${err || "no message"}`);
      }
      const reply = JSON.parse(line);
      if (!reply.ok) throw new Error(`PyTorch reference: ${reply.error}`);
      return reply;
    });
    queue = run.catch(() => {});
    return run;
  };
  const close = async () => {
    try {
      await writer.write(new TextEncoder().encode('{"cmd":"quit"}\n'));
      await writer.close();
    } catch { /* already gone */ }
    await lines.cancel().catch(() => {});
    await child.status;
    await stderr.catch(() => "");
  };
  let loaded: {
    torch: string;
    threads: number;
    device: string;
    blas?: string[];
    referenceBlas?: boolean;
    gemmGflops?: number;
  };
  try {
    loaded = await call({
      cmd: "load",
      dir: await Deno.realPath(modelDir).catch(() => modelDir),
      threads: options.threads ?? 2,
      device: options.device ?? "cpu",
    });
  } catch (e) {
    await close();
    const msg = (e as Error).message;
    const why = /No module named 'torch'/.test(msg) ? "torch is not importable" : msg;
    return { skipped: `${TORCH_PYTHON}: ${why}` };
  }
  const blas = (loaded.blas ?? []).map((p) => p.split("/").slice(-2).join("/")).join(", ");
  const engine: TorchEngine = {
    name: "torch",
    description: `PyTorch ${loaded.torch} eager f32 (${
      loaded.device === "cpu"
        ? `${loaded.threads} threads, BLAS ${blas || "unknown"}, GEMM ${
          (loaded.gemmGflops ?? 0).toFixed(0)
        } GFLOP/s`
        : loaded.device
    })`,
    warning: loaded.referenceBlas
      ? `PyTorch runs on the reference BLAS (${blas}): its figures are about 10x below a ` +
        "usual PyTorch and every ratio against it is inflated; install libopenblas0-pthread " +
        "(apt-get install libopenblas0-pthread) and rerun"
      : undefined,
    async decode(req) {
      const r = await call({
        cmd: "decode",
        prompts: req.prompts,
        sets: req.sets.slice(0, req.prompts[0].length + req.maxNewTokens - 1),
        maxNewTokens: req.maxNewTokens,
      });
      return {
        tokens: r.tokens,
        timing: { prefillMs: r.prefillMs, decodeMs: r.ms - r.prefillMs, readbacks: 0 },
      };
    },
    close,
  };
  return { engine };
}
