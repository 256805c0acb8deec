/**
 * The notebooks in `notebooks/` run top to bottom under the Deno Jupyter kernel
 * (`jupyter nbconvert --execute`), with no error output, and their saved outputs hold the
 * Plotly bundle (`application/vnd.plotly.v1+json`) with an HTML fallback.
 *
 * The kernel is registered in a temporary `JUPYTER_PATH` with the `deno` binary running
 * this test (`kernel.json` as `deno jupyter --install` writes it). The sweeps run small:
 * `SKIPDECODE_SWEEP_ITEMS=2`, `SKIPDECODE_SWEEP_TOKENS=12`, `SKIPDECODE_FT_STEPS=2`,
 * `SKIPDECODE_FT_ITEMS=2`, `SKIPDECODE_FT_MRS=4` (the fine-tuning notebook's held-out items
 * and the MRs it fine-tunes on), `SKIPDECODE_PROC_POLICIES=4` (the
 * procedure notebook's first four policies, `full` and three fine-tuned), a fresh result
 * cache, the CPU backend unless `SKIPDECODE_BACKEND` says otherwise. The notebooks execute two at a time
 * (each in its own kernel and temporary folder; most of a kernel's time is one core's), and
 * each is then checked in its own step. Needs Jupyter:
 * `apt-get install -y --no-install-recommends jupyter-nbconvert python3-nbclient jupyter-client jupyter-core`.
 */
import { assert, assertEquals } from "@std/assert";
import { fileURLToPath } from "node:url";
import { pool, sandbox } from "./cli_helpers.ts";
import { executeNotebook, installKernel as installDenoKernel } from "../notebooks/run.ts";

const NOTEBOOKS = fileURLToPath(new URL("../notebooks/", import.meta.url));
const PLOTLY = "application/vnd.plotly.v1+json";
/** The notebooks this test runs (others in the folder have their own tests). */
const NAMES = [
  "quickstart",
  "policy_sweep",
  "custom_policy",
  "finetune",
  "procedure",
  "speculative",
];

interface Output {
  output_type: string;
  data?: Record<string, unknown>;
  text?: string | string[];
  ename?: string;
  evalue?: string;
}
interface Cell {
  cell_type: string;
  id?: string;
  source: string | string[];
  outputs?: Output[];
}

const join = (t: string | string[] | undefined) => Array.isArray(t) ? t.join("") : t ?? "";

async function jupyterAvailable(): Promise<void> {
  try {
    const out = await new Deno.Command("jupyter", { args: ["nbconvert", "--version"] }).output();
    if (out.success) return;
  } catch { /* not installed */ }
  throw new Error(
    "jupyter nbconvert is needed to run the notebooks: apt-get install -y " +
      "--no-install-recommends jupyter-nbconvert python3-nbclient jupyter-client jupyter-core",
  );
}

/** kernel.json as `deno jupyter --install` writes it, with this deno binary, under `tmp`. */
async function installKernel(tmp: string): Promise<void> {
  await installDenoKernel(`${tmp}/jupyter`, Deno.execPath());
}

async function execute(name: string, tmp: string): Promise<Cell[]> {
  const out = `${tmp}/${name}.out.ipynb`;
  const env: Record<string, string> = {
    JUPYTER_PATH: `${tmp}/jupyter`,
    JUPYTER_DATA_DIR: `${tmp}/jupyter-data`,
    JUPYTER_RUNTIME_DIR: `${tmp}/jupyter-runtime`,
    NO_COLOR: "1",
    SKIPDECODE_CACHE_DIR: `${tmp}/cache-${name}`, // one each: the notebooks run side by side
    SKIPDECODE_SWEEP_ITEMS: "2",
    SKIPDECODE_SWEEP_TOKENS: "12",
    SKIPDECODE_FT_STEPS: "2",
    SKIPDECODE_FT_ITEMS: "2",
    SKIPDECODE_FT_MRS: "4",
    SKIPDECODE_PROC_POLICIES: "4",
    SKIPDECODE_BACKEND: Deno.env.get("SKIPDECODE_BACKEND") ?? "cpu",
    XDG_RUNTIME_DIR: tmp,
  };
  return await nbconvert(`${NOTEBOOKS}${name}.ipynb`, out, NOTEBOOKS, env);
}

/**
 * `jupyter nbconvert --execute` with `notebooks/notebook_execute.py`'s preprocessor (what
 * `deno task notebooks` runs, `notebooks/run.ts`), which puts every output into the cell
 * whose request it answers: Deno's kernel can publish an output after its cell's idle
 * status, and plain nbclient then drops it (see that file).
 */
async function nbconvert(
  input: string,
  out: string,
  cwd: string,
  env: Record<string, string>,
): Promise<Cell[]> {
  const { cells, late } = await executeNotebook(input, out, {
    jupyterPath: env.JUPYTER_PATH,
    cwd,
    env,
    cellTimeout: 600,
  });
  if (late) console.log(`  ${input.split("/").at(-1)}: ${late} outputs arrived late, kept`);
  return cells as Cell[];
}

function checkNotebook(name: string, cells: Cell[]): void {
  const outputs = cells.flatMap((c) => c.outputs ?? []);
  const errors = outputs.filter((o) => o.output_type === "error");
  assertEquals(
    errors.map((e) => `${e.ename}: ${e.evalue}`),
    [],
    `${name}: error outputs`,
  );
  const stderr = outputs.filter((o) => o.output_type === "stream" && /error/i.test(join(o.text)));
  assertEquals(stderr.map((o) => join(o.text)), [], `${name}: error text in streams`);
  const charts = outputs.filter((o) => o.data && PLOTLY in o.data);
  assert(charts.length > 0, `${name}: no ${PLOTLY} output`);
  for (const c of charts) {
    const fig = c.data![PLOTLY] as { data?: unknown[]; layout?: unknown };
    assert(Array.isArray(fig.data) && fig.data.length > 0, `${name}: an empty Plotly figure`);
    const html = String(c.data!["text/html"] ?? "");
    assert(html.includes("Plotly.newPlot"), `${name}: a chart without its HTML fallback`);
  }
  // Every code cell ran, in order.
  const code = cells.filter((c) => c.cell_type === "code");
  assert(code.length > 0);
}

Deno.test("notebooks type-check: their code cells as one module", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "skipdecode-nbcheck-" });
  try {
    const repo = new URL("../", import.meta.url);
    const files: string[] = [];
    for (const name of NAMES) {
      const nb = JSON.parse(await Deno.readTextFile(`${NOTEBOOKS}${name}.ipynb`));
      const code = (nb.cells as Cell[]).filter((c) => c.cell_type === "code")
        .map((c) => join(c.source)).join("\n;\n")
        .replaceAll('from "../', `from "${repo.href}`);
      await Deno.writeTextFile(`${tmp}/${name}.ts`, `${code}\nexport {};\n`);
      files.push(`${tmp}/${name}.ts`);
    }
    const res = await new Deno.Command(Deno.execPath(), {
      args: ["check", "--quiet", "--config", fileURLToPath(new URL("deno.json", repo)), ...files],
      env: { NO_COLOR: "1" },
      stdout: "piped",
      stderr: "piped",
    }).output();
    const err = new TextDecoder().decode(res.stderr);
    assert(res.success, `deno check of the notebooks' code failed:\n${err}`);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("notebooks execute under the Deno kernel and show Plotly charts", async (t) => {
  await jupyterAvailable();
  const tmp = await Deno.makeTempDir({ prefix: "skipdecode-nb-" });
  try {
    await installKernel(tmp);
    // Every notebook runs, two at a time; a failure is reported in its own step below.
    const runs = await pool(NAMES, 2, (name) =>
      execute(name, tmp).then(
        (cells) => ({ cells, error: null }),
        (error: unknown) => ({ cells: [] as Cell[], error }),
      ));
    for (const [i, name] of NAMES.entries()) {
      await t.step(name, () => {
        const { cells, error } = runs[i];
        if (error) throw error;
        checkNotebook(name, cells);
        const text = cells.flatMap((c) => c.outputs ?? []).map((o) =>
          join(o.text) + join(o.data?.["text/plain"] as string | undefined)
        ).join("\n");
        if (name === "policy_sweep" || name === "custom_policy") {
          assert(text.includes("| policy | layer speedup"), `${name}: no sweep table`);
          assert(/sweep: \d+ policies x 2 items/.test(text), `${name}: no final progress line`);
        }
        if (name === "policy_sweep") {
          const titles = cells.flatMap((c) => c.outputs ?? []).filter((o) => o.data?.[PLOTLY])
            .map((o) => String(o.data!["text/plain"]));
          for (const what of ["against layer speedup", "Layer budget", "NLL gap", "Oracle depth"]) {
            assert(titles.some((x) => x.includes(what)), `policy_sweep: no "${what}" chart`);
          }
        }
        if (name === "custom_policy") {
          assert(text.includes("refused: column"), "custom_policy: the nesting error is not shown");
        }
        if (name === "procedure") {
          assert(text.includes("| policy | fine-tuned |"), "procedure: no before/after table");
          assert(text.includes("Later tokens are easier") || text.includes("oracle depth"));
          const titles = cells.flatMap((c) => c.outputs ?? []).filter((o) => o.data?.[PLOTLY])
            .map((o) => String(o.data!["text/plain"]));
          assert(titles.some((x) => x.includes("fixed-token")), "procedure: no frontier chart");
        }
        if (name === "speculative") {
          assert(text.includes("| model | family | draft | K | cost |"), "speculative: no table");
          assert(text.includes("| model | budget n | SkipDecode accept"), "speculative: no answer");
          const titles = cells.flatMap((c) => c.outputs ?? []).filter((o) => o.data?.[PLOTLY])
            .map((o) => String(o.data!["text/plain"]));
          for (const what of ["Acceptance by position", "Layer speedup against draft cost"]) {
            assert(titles.some((x) => x.includes(what)), `speculative: no "${what}" chart`);
          }
        }
        if (name === "finetune") {
          assert(/step \d+\/\d+: loss \d/.test(text), "finetune: no training progress line");
          const titles = cells.flatMap((c) => c.outputs ?? []).filter((o) => o.data?.[PLOTLY])
            .map((o) => String(o.data!["text/plain"]));
          assert(
            titles.some((x) => x.includes("before and after")),
            "finetune: no before/after chart",
          );
        }
      });
    }
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("notebook outputs stay in their cell even when they arrive after its idle status", async () => {
  // 180 one-line cells: console output, an awaited display, a cell result. Plain nbclient
  // lost 2 to 6 of these per run (outputs published after the cell's idle status); the
  // routing preprocessor must keep every one in its own cell.
  await jupyterAvailable();
  const tmp = await Deno.makeTempDir({ prefix: "skipdecode-nbroute-" });
  try {
    await installKernel(tmp);
    const kinds = ["log", "display", "result"] as const;
    const source = (i: number) => {
      const k = kinds[i % 3], n = Math.floor(i / 3);
      return k === "log"
        ? `console.log("log-${n}");`
        : k === "display"
        ? `await Deno.jupyter.display({ "text/plain": "display-${n}" }, { raw: true });`
        : `({ [Symbol.for("Jupyter.display")]: () => ({ "text/plain": "result-${n}" }) })`;
    };
    const nb = {
      nbformat: 4,
      nbformat_minor: 5,
      metadata: { kernelspec: { name: "deno", display_name: "Deno", language: "typescript" } },
      cells: Array.from({ length: 180 }, (_, i) => ({
        cell_type: "code",
        id: `c${i}`,
        metadata: {},
        execution_count: null,
        outputs: [],
        source: source(i),
      })),
    };
    await Deno.writeTextFile(`${tmp}/route.ipynb`, JSON.stringify(nb));
    const cells = await nbconvert(`${tmp}/route.ipynb`, `${tmp}/route.out.ipynb`, tmp, {
      JUPYTER_PATH: `${tmp}/jupyter`,
      JUPYTER_DATA_DIR: `${tmp}/jupyter-data`,
      JUPYTER_RUNTIME_DIR: `${tmp}/jupyter-runtime`,
      NO_COLOR: "1",
      XDG_RUNTIME_DIR: tmp,
    });
    const missing = cells.map((c, i) => [i, JSON.stringify(c.outputs ?? [])] as const)
      .filter(([i, out]) => !out.includes(`${kinds[i % 3]}-${Math.floor(i / 3)}`))
      .map(([i]) => i);
    assertEquals(missing, [], "cells whose output is missing");
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("a mistyped import in a cell is an error in that cell, not undefined", async () => {
  // Deno's kernel turns imports into dynamic ones (a missing name is silently undefined);
  // notebooks/notebook_execute.py checks the names first. The run fails at that cell, and
  // the cells before it keep their outputs.
  await jupyterAvailable();
  const tmp = await Deno.makeTempDir({ prefix: "skipdecode-nbimport-" });
  try {
    await installKernel(tmp);
    const cell = (i: number, source: string) => ({
      cell_type: "code",
      id: `c${i}`,
      metadata: {},
      execution_count: null,
      outputs: [],
      source,
    });
    const nb = {
      nbformat: 4,
      nbformat_minor: 5,
      metadata: { kernelspec: { name: "deno", display_name: "Deno", language: "typescript" } },
      cells: [
        cell(0, 'import { plan, type Policy } from "../../mod.ts";\nconsole.log(typeof plan);'),
        cell(
          1,
          'import { budgetChrt, budgetChart as b } from "../../mod.ts";\nconsole.log(budgetChrt);',
        ),
      ],
    };
    // the kernel runs in the notebook's folder: one inside the repository (out/.test-*/)
    using box = sandbox("nbimport");
    await Deno.writeTextFile(`${box.dir}/imports.ipynb`, JSON.stringify(nb));
    const env = {
      JUPYTER_PATH: `${tmp}/jupyter`,
      NO_COLOR: "1",
      XDG_RUNTIME_DIR: tmp,
    };
    const err = await nbconvert(`${box.dir}/imports.ipynb`, `${tmp}/out.ipynb`, box.dir, env)
      .then(() => "", (e: Error) => e.message);
    assert(
      err.includes("does not provide an export named 'budgetChrt'"),
      `no import error: ${err}`,
    );
    assert(!err.includes("undefined\n"), err);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});
