/**
 * One setup call for the notebooks (Deno's Jupyter kernel): where the repository's model
 * and data are, which backend to use, sizes read from the environment, and helpers that
 * show figures and Markdown as cell outputs.
 *
 * @example
 * ```ts
 * import { notebookSetup } from "./notebook.ts";
 * const nb = notebookSetup({ require: ["tiny"] });
 * console.log(nb.tinyModel, nb.dataFile, nb.dataHeldOut, nb.num("SKIPDECODE_SWEEP_ITEMS", 200));
 * ```
 * @module
 */
import { fileURLToPath } from "node:url";
import { relative } from "node:path";
import type { Figure } from "./figure.ts";
import { display } from "./display.ts";

/** What {@linkcode notebookSetup} returns. */
export interface NotebookSetup {
  /** The repository root (absolute, ending in `/`). */
  repo: string;
  /**
   * The tiny checkpoint the repository ships (`bundled/models/tiny-opt-e2e`). This path and
   * the other file paths below are relative to the working folder (a notebook's own folder
   * under Jupyter), so saved outputs never hold a path of the machine that ran them.
   */
  tinyModel: string;
  /** The dense twin the repository ships (`bundled/models/tiny-opt-e2e-dense`), when present. */
  denseModel?: string;
  /** The E2E devset the repository ships (the bundled models were trained on it). */
  devset: string;
  /** The E2E test split part the repository ships (never trained on), when present. */
  heldOut?: string;
  /** The data to measure on: `heldOut` when present, else `devset`. */
  dataFile: string;
  /** Whether `dataFile` is held out from the bundled models' training. */
  dataHeldOut: boolean;
  /** `SKIPDECODE_BACKEND` (default `"auto"`: WebGPU when an adapter exists, else the CPU). */
  backend: "auto" | "cpu" | "webgpu";
  /** An environment variable, or the default (also without permission to read it). */
  env(name: string, fallback: string): string;
  /** A numeric environment variable, or the default. */
  num(name: string, fallback: number): number;
  /** Shows a figure: Plotly JSON plus an HTML fallback loading plotly.js from its CDN. */
  show(fig: Figure): Promise<void>;
  /** Shows Markdown (with a plain-text fallback) as an output of the running cell. */
  showMarkdown(md: string): Promise<void>;
  /**
   * A value Jupyter renders as Markdown when it is a cell's last expression: it travels
   * with the cell's result, so it cannot arrive after the cell has finished.
   */
  markdown(md: string): { [key: symbol]: () => Record<string, string> };
  /** One line on the data: which file, and whether it is held out. */
  dataNote: string;
}

const isFile = (path: string) => {
  try {
    return Deno.statSync(path).isFile;
  } catch {
    return false;
  }
};

/**
 * The notebooks' setup (see the module documentation). Throws a one-line error naming a
 * required file that is missing.
 *
 * @param options `require`: what must exist (`"tiny"`, `"dense"`, `"heldOut"`)
 * @returns paths, backend, environment readers and display helpers
 * @example
 * ```ts
 * import { notebookSetup } from "./notebook.ts";
 * const { tinyModel, backend } = notebookSetup();
 * ```
 */
export function notebookSetup(
  options: { require?: readonly ("tiny" | "dense" | "heldOut")[] } = {},
): NotebookSetup {
  const repo = fileURLToPath(new URL("../", import.meta.url));
  // relative to the working folder (absolute where it cannot be read)
  const rel = (path: string) => {
    try {
      return relative(Deno.cwd(), path) || ".";
    } catch {
      return path;
    }
  };
  const tinyModel = rel(`${repo}bundled/models/tiny-opt-e2e`);
  const dense = rel(`${repo}bundled/models/tiny-opt-e2e-dense`);
  const devset = rel(`${repo}bundled/data/e2e/devset.csv`);
  const held = rel(`${repo}bundled/data/e2e/testset-part2.csv`);
  const has = {
    tiny: isFile(`${tinyModel}/config.json`),
    dense: isFile(`${dense}/config.json`),
    heldOut: isFile(held),
  };
  for (const r of options.require ?? []) {
    if (!has[r]) {
      const what = r === "tiny"
        ? `${tinyModel}/config.json (the repository ships it in bundled/)`
        : r === "dense"
        ? `${dense}/config.json (the dense checkpoint the repository ships in bundled/)`
        : `${held} (the held-out E2E part the repository ships in bundled/)`;
      throw new Error(`this notebook needs ${what}, which is missing`);
    }
  }
  const env = (name: string, fallback: string) => {
    try {
      return Deno.env.get(name) ?? fallback;
    } catch {
      return fallback;
    }
  };
  const num = (name: string, fallback: number) => {
    const v = Number(env(name, String(fallback)));
    if (!Number.isFinite(v)) throw new Error(`${name} must be a number, got "${env(name, "")}"`);
    return v;
  };
  const backend = env("SKIPDECODE_BACKEND", "auto");
  if (backend !== "auto" && backend !== "cpu" && backend !== "webgpu") {
    throw new Error(`SKIPDECODE_BACKEND must be auto, cpu or webgpu, got "${backend}"`);
  }
  const dataFile = has.heldOut ? held : devset;
  type Ns = { display(b: Record<string, string>, o: { raw: boolean }): Promise<void> };
  let jupyter: Ns | undefined;
  try {
    jupyter = (Deno as unknown as { jupyter?: Ns }).jupyter; // throws outside the kernel
  } catch {
    jupyter = undefined;
  }
  return {
    repo,
    tinyModel,
    ...(has.dense ? { denseModel: dense } : {}),
    devset,
    ...(has.heldOut ? { heldOut: held } : {}),
    dataFile,
    dataHeldOut: has.heldOut,
    backend,
    env,
    num,
    show: async (fig) => {
      await display(fig, { plotlyJs: "cdn" });
    },
    showMarkdown: async (md) => {
      if (jupyter) await jupyter.display({ "text/markdown": md, "text/plain": md }, { raw: true });
      else console.log(md);
    },
    markdown: (md) => ({
      [Symbol.for("Jupyter.display")]: () => ({ "text/markdown": md, "text/plain": md }),
    }),
    dataNote: has.heldOut
      ? `Data: ${held} — held out (no bundled model was trained on it).`
      : `Data: ${devset} — NOT held out (the bundled models were trained on the devset; ` +
        `bundled/data/e2e/testset-part2.csv is absent).`,
  };
}
