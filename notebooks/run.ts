/**
 * `deno task notebooks`: executes the notebooks headless under the Deno Jupyter kernel and
 * saves them with every output, through `notebooks/notebook_execute.py`'s preprocessor
 * (outputs that Deno's kernel publishes after their cell's idle status are kept in their
 * cell; a mistyped import name is an error in its cell, not `undefined`).
 *
 * The kernel is registered for the run only, in `.cache/notebooks-kernel/` (as
 * `deno jupyter --install` writes it, with the Deno binary given by `--deno`): nothing is
 * installed in the user's Jupyter folders. Each notebook runs in its own folder (relative
 * paths as in JupyterLab); a failing cell fails the run, naming the notebook and the cell.
 *
 * ```sh
 * deno task notebooks                        # every notebook, saved in place with outputs
 * deno task notebooks quickstart procedure   # some of them
 * deno task notebooks --runs 5 --no-save     # five runs each: the outputs per cell must agree
 * ```
 *
 * Sizes come from the notebooks' environment variables (`SKIPDECODE_SWEEP_ITEMS`, ...; see
 * each notebook's first cell), the backend from `SKIPDECODE_BACKEND`. Needs Jupyter:
 * `apt-get install -y --no-install-recommends jupyter-nbconvert python3-nbclient jupyter-client jupyter-core`.
 *
 * @example
 * ```ts
 * import { outputCounts } from "./run.ts";
 * outputCounts([{ cell_type: "code", source: "1", outputs: [{ output_type: "execute_result" }] }]);
 * // [1]
 * ```
 * @module
 */
import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";

const HERE = fileURLToPath(new URL("./", import.meta.url));
const ROOT = fileURLToPath(new URL("../", import.meta.url));

/** One output of a saved notebook cell. */
export interface NotebookOutput {
  /** `stream`, `display_data`, `execute_result` or `error`. */
  output_type: string;
  /** MIME bundle of a display or result. */
  data?: Record<string, unknown>;
  /** Stream text. */
  text?: string | string[];
  /** Error name. */
  ename?: string;
  /** Error message. */
  evalue?: string;
}

/** One cell of a saved notebook. */
export interface NotebookCell {
  /** `code` or `markdown`. */
  cell_type: string;
  /** Cell id (nbformat 4.5). */
  id?: string;
  /** Source text. */
  source: string | string[];
  /** Outputs (code cells). */
  outputs?: NotebookOutput[];
}

/**
 * Outputs per code cell, in cell order: what `--runs N` compares between runs.
 *
 * @param cells a notebook's cells
 * @returns one count per code cell
 * @example
 * ```ts
 * import { outputCounts } from "./run.ts";
 * outputCounts([{ cell_type: "markdown", source: "# x" }, { cell_type: "code", source: "", outputs: [] }]);
 * // [0]
 * ```
 */
export function outputCounts(cells: readonly NotebookCell[]): number[] {
  return cells.filter((c) => c.cell_type === "code").map((c) => c.outputs?.length ?? 0);
}

/**
 * Writes `kernel.json` for Deno's kernel (as `deno jupyter --install` does) under
 * `dir/kernels/deno`, running the given Deno binary.
 *
 * @param dir a `JUPYTER_PATH` folder
 * @param deno the Deno binary
 * @example
 * ```ts
 * import { installKernel } from "./run.ts";
 * // await installKernel(".cache/notebooks-kernel", Deno.execPath());
 * ```
 */
export async function installKernel(dir: string, deno: string): Promise<void> {
  await Deno.mkdir(`${dir}/kernels/deno`, { recursive: true });
  await Deno.writeTextFile(
    `${dir}/kernels/deno/kernel.json`,
    JSON.stringify({
      argv: [deno, "jupyter", "--kernel", "--conn", "{connection_file}"],
      display_name: "Deno",
      language: "typescript",
    }),
  );
}

/** Options of {@linkcode executeNotebook}. */
export interface ExecuteOptions {
  /** The `JUPYTER_PATH` holding the Deno kernel ({@linkcode installKernel}). */
  jupyterPath: string;
  /** Folder the kernel runs in (default: the notebook's own). */
  cwd?: string;
  /** Extra environment of the kernel. */
  env?: Record<string, string>;
  /** Seconds one cell may take (default 1800). */
  cellTimeout?: number;
}

/**
 * Executes a notebook with `jupyter nbconvert --execute` and `notebook_execute.py`'s
 * preprocessor, writing the executed notebook to `out`.
 *
 * @param input the notebook
 * @param out where the executed notebook goes (may be `input`)
 * @param o the kernel's `JUPYTER_PATH`, folder, environment and time limit
 * @returns the executed cells and how many outputs arrived after their cell's idle status
 * @throws Error naming the notebook and the last lines of nbconvert's message when a cell fails
 * @example
 * ```ts
 * import { executeNotebook } from "./run.ts";
 * // const { cells } = await executeNotebook("notebooks/quickstart.ipynb", "/tmp/q.ipynb", { jupyterPath });
 * ```
 */
export async function executeNotebook(
  input: string,
  out: string,
  o: ExecuteOptions,
): Promise<{ cells: NotebookCell[]; late: number }> {
  const dir = o.cwd ?? input.slice(0, input.lastIndexOf("/") + 1) ?? ".";
  const res = await new Deno.Command("jupyter", {
    args: [
      "nbconvert",
      "--to",
      "notebook",
      "--NotebookExporter.preprocessors",
      "notebook_execute.RoutingExecutePreprocessor",
      "--RoutingExecutePreprocessor.kernel_name=deno",
      `--RoutingExecutePreprocessor.timeout=${o.cellTimeout ?? 1800}`,
      "--RoutingExecutePreprocessor.startup_timeout=300",
      "--output",
      out,
      input,
    ],
    cwd: dir || ".",
    env: {
      JUPYTER_PATH: o.jupyterPath,
      JUPYTER_DATA_DIR: `${o.jupyterPath}/data`,
      JUPYTER_RUNTIME_DIR: `${o.jupyterPath}/runtime`,
      NO_COLOR: "1",
      PYTHONPATH: HERE,
      ...o.env,
    },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stderr = new TextDecoder().decode(res.stderr).trim();
  if (!res.success) {
    const err = stderr.split("\n").slice(-25).join("\n");
    throw new Error(`executing ${input} failed (exit ${res.code}):\n${err}`);
  }
  const late = Number(stderr.match(/(\d+) outputs arrived after their cell's idle status/)?.[1]);
  const cells = JSON.parse(await Deno.readTextFile(out)).cells as NotebookCell[];
  return { cells, late: Number.isFinite(late) ? late : 0 };
}

/** The error outputs of executed cells, as `cell N: Name: message` lines. */
function errors(cells: readonly NotebookCell[]): string[] {
  return cells.filter((c) => c.cell_type === "code").flatMap((c, i) =>
    (c.outputs ?? []).filter((x) => x.output_type === "error")
      .map((x) => `code cell ${i + 1}: ${x.ename}: ${x.evalue}`)
  );
}

async function main(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      runs: { type: "string", default: "1" },
      save: { type: "boolean", default: true },
      deno: { type: "string" },
      help: { type: "boolean" },
    },
    allowNegative: true,
  });
  if (values.help) {
    console.log(
      "deno task notebooks [NAME ...] [--runs N] [--no-save]\n" +
        "  executes notebooks/NAME.ipynb (default: every notebook) under the Deno kernel;\n" +
        "  saves each in place with its outputs (--no-save: only checks); --runs N executes\n" +
        "  each N times and fails unless every run has the same outputs per cell",
    );
    return 0;
  }
  const runs = Number(values.runs);
  if (!Number.isInteger(runs) || runs < 1 || runs > 100) {
    console.error(`error: --runs must be a whole number 1..100, got ${values.runs}`);
    return 2;
  }
  const all = [...Deno.readDirSync(HERE)].filter((e) => e.isFile && e.name.endsWith(".ipynb"))
    .map((e) => e.name.slice(0, -".ipynb".length)).sort();
  for (const n of positionals) {
    if (!all.includes(n)) {
      console.error(`error: no notebook notebooks/${n}.ipynb (have: ${all.join(", ")})`);
      return 2;
    }
  }
  const names = positionals.length > 0 ? positionals : all;
  const deno = values.deno ?? Deno.execPath();
  const work = `${ROOT}.cache/notebooks-kernel`;
  await installKernel(work, deno);
  let failed = 0;
  for (const name of names) {
    const input = `${HERE}${name}.ipynb`;
    const counts: number[][] = [];
    for (let r = 1; r <= runs; r++) {
      const last = r === runs;
      const out = last && values.save ? input : `${work}/${name}.run${r}.ipynb`;
      const t0 = performance.now();
      try {
        const { cells, late } = await executeNotebook(input, out, { jupyterPath: work });
        const errs = errors(cells);
        counts.push(outputCounts(cells));
        const n = counts.at(-1)!;
        console.error(
          `${name} run ${r}/${runs}: ${n.length} code cells, ${n.reduce((a, b) => a + b, 0)} ` +
            `outputs (per cell: ${n.join(" ")}), ${late} arrived late and kept, ` +
            `${((performance.now() - t0) / 1000).toFixed(0)} s`,
        );
        if (errs.length > 0) throw new Error(errs.join("\n"));
      } catch (e) {
        console.error(`error: notebooks/${name}.ipynb: ${(e as Error).message}`);
        failed++;
        break;
      }
    }
    const differ = counts.findIndex((c) => c.join() !== counts[0].join());
    if (differ > 0) {
      console.error(
        `error: notebooks/${name}.ipynb: run ${differ + 1} has outputs per cell ` +
          `${counts[differ].join(" ")}, run 1 had ${counts[0].join(" ")}`,
      );
      failed++;
    }
  }
  console.error(
    failed ? `${failed} of ${names.length} notebooks failed` : `${names.length} notebooks ran`,
  );
  return failed ? 1 : 0;
}

if (import.meta.main) Deno.exit(await main(Deno.args));
