/**
 * `skipdecode readout`: the per-layer readout (logit lens) of a greedy generation, as
 * JSON (`--json`), a table of the top-1 token per layer and column, and with `--out` a
 * logit-lens chart; with `--calm` the CALM-style confidence-threshold baseline, evaluated
 * offline from the readout on E2E items (teacher forced on the full model's outputs; an
 * upper bound, see `eval/readout.ts`).
 *
 * @example
 * ```sh
 * deno task skipdecode readout --prompt 'name[Alimentum], area[city centre]\n' \
 *   --max-new-tokens 16 --top-k 3 --json
 * deno task skipdecode readout --calm 0.5,0.7,0.9 --items 20
 * ```
 * @module
 */
import { checkLength, type Command, parseDecimal, pngOption, UsageError } from "./command.ts";
import {
  BACKEND,
  BATCH_SIZE,
  implicitHorizon,
  JSON_OUTPUT,
  MAX_NEW_TOKENS,
  MODEL,
  modelInfo,
  modelLabel,
  OFFLINE,
  POLICY,
  POLICY_FILE,
  policyOption,
  PROMPT_MODE,
  withDefault,
} from "./options.ts";
import { loadModel } from "../decode/mod.ts";
import type { BackendName } from "../backend/mod.ts";
import { DATA_OPTIONS, loadSweepItems } from "./sweep.ts";
import { checkOutputPath, OutputFolder } from "../io/output.ts";
import {
  buildManifest,
  manifestJson,
  reproduceCommand,
  RUN_MANIFEST_FILE,
} from "../experiments/manifest.ts";
import {
  type CalmResult,
  calmTable,
  evaluateCalm,
  type ReadoutGeneration,
  readoutGeneration,
} from "../eval/readout.ts";
import { logitLensChart } from "../plots/lens.ts";
import { PLOTLY_FILE, plotlyBundle, toHtml } from "../plots/html.ts";
import { renderFigurePng } from "../plots/png.ts";
import { E2E_DEVSET, exists } from "../data/bundled.ts";
import { E2E_HELD_OUT } from "./heldout_text.ts";

/**
 * Parses a `--calm` list: comma-separated thresholds in (0, 1].
 *
 * @example
 * ```ts
 * import { calmThresholds } from "./readout.ts";
 * calmThresholds("0.5,0.9"); // [0.5, 0.9]
 * ```
 */
export function calmThresholds(text: string): number[] {
  const parts = text.split(",").map((s) => s.trim());
  if (parts.length === 0 || parts.some((p) => p === "")) {
    throw new UsageError(
      `--calm must be comma-separated thresholds such as 0.5,0.9, got "${text}"`,
    );
  }
  return parts.map((p) => parseDecimal(p, "--calm threshold", { above: 0, max: 1 }));
}

/** The `readout` command. */
export const readoutCommand: Command = {
  name: "readout",
  summary: "per-layer readout (logit lens) of a greedy generation; CALM baseline",
  options: {
    ...MODEL,
    prompt: { kind: "text", value: "TEXT", description: "the prompt (\\n is a newline)" },
    ...withDefault(MAX_NEW_TOKENS, 32, { description: "tokens to generate (greedy)" }),
    "top-k": {
      kind: "int",
      min: 1,
      max: 1000,
      value: "K",
      description: "most likely tokens kept per layer and column",
      default: 5,
    },
    ...withDefault(POLICY, undefined, {
      description: "exit policy whose plan the generation and the readout use (default full)",
    }),
    ...POLICY_FILE,
    ...PROMPT_MODE,
    ...BACKEND,
    out: {
      kind: "path",
      writes: true,
      value: "DIR",
      description: "write the logit-lens chart (lens.html, lens.png) and readout.json here",
    },
    color: {
      kind: "enum",
      choices: ["prob", "entropy"],
      description: "what colours the chart: top-1 probability or entropy",
      default: "prob",
    },
    png: {
      type: "boolean",
      description: "a PNG of the chart with Chromium (default: when this task may run it)",
    },
    calm: {
      type: "string",
      value: "LIST",
      description: "CALM-style thresholds, e.g. 0.5,0.7,0.9: a table on E2E items (teacher " +
        "forced on the full model's outputs; an upper bound)",
    },
    "calm-min-layer": {
      kind: "int",
      min: 1,
      max: 100_000,
      value: "M",
      description: "first layer (1-based) CALM may exit at",
      default: 1,
    },
    data: {
      ...DATA_OPTIONS.data,
      description: "items for --calm: a .csv, .tsv, .jsonl or .parquet file or an " +
        "hf:OWNER/NAME[:CONFIG]:SPLIT dataset with mr,ref columns (see sweep --help; default: " +
        "the bundled held-out testset-part2.csv)",
    },
    items: {
      kind: "int",
      min: 1,
      value: "N",
      description: "items of --data for --calm",
      default: 20,
    },
    ...withDefault(BATCH_SIZE, 8, { description: "rows per batch for --calm" }),
    ...OFFLINE,
    ...JSON_OUTPUT,
  },
  async run(v) {
    const startedAt = new Date().toISOString();
    // Every option was checked by runCommand; files are checked before the model is read.
    const maxNewTokens = v["max-new-tokens"] as number;
    const topK = v["top-k"] as number;
    const policy = await policyOption(v);
    const color = v.color as string;
    const prompt = typeof v.prompt === "string" ? v.prompt.replaceAll("\\n", "\n") : undefined;
    if (prompt === "") throw new UsageError("--prompt must not be empty");
    const thresholds = typeof v.calm === "string" ? calmThresholds(v.calm) : undefined;
    if (prompt === undefined && !thresholds) {
      throw new UsageError("give --prompt TEXT (the readout), --calm LIST (the baseline), or both");
    }
    const minLayer = v["calm-min-layer"] as number;
    const count = v.items as number;
    const batchSize = v["batch-size"] as number;
    const out = v.out as string | undefined;
    if (out !== undefined) {
      if (prompt === undefined) {
        throw new UsageError("--out draws the readout of --prompt: give one");
      }
      checkOutputPath(out, "--out");
    }
    const png = out !== undefined ? pngOption(v.png) : false;
    let dataFile: string | undefined;
    if (thresholds) {
      dataFile = (v.data as string | undefined) ??
        (exists(E2E_HELD_OUT) ? E2E_HELD_OUT : E2E_DEVSET);
      if (!dataFile.startsWith("hf:") && !exists(dataFile)) {
        throw new UsageError(`--data ${dataFile} not found`);
      }
    } else if (v.data !== undefined) {
      throw new UsageError("--data is read by --calm: give --calm LIST too");
    }
    // Any format --data of sweep takes (CSV, TSV, JSONL, Parquet, hf:), E2E columns by default.
    const items = dataFile
      ? await loadSweepItems(dataFile, count, undefined, { offline: v.offline ? true : undefined })
      : [];
    const model = await loadModel(v.model as string, {
      backend: v.backend as BackendName,
      offline: v.offline ? true : undefined,
    });
    let folder: OutputFolder | undefined;
    try {
      const L = model.config.numHiddenLayers;
      if (thresholds && minLayer > L) {
        throw new UsageError(`--calm-min-layer ${minLayer} is beyond the model's ${L} layers`);
      }
      if (prompt !== undefined) {
        checkLength(model, maxNewTokens, [model.tokenizer.encode(prompt).length]);
      }
      if (items.length) {
        checkLength(
          model,
          maxNewTokens,
          items.map((it) => model.tokenizer.encode(it.prompt).length),
        );
      }
      if (out !== undefined) folder = OutputFolder.open(out, { option: "--out", owner: "readout" });
      const report: Record<string, unknown> = { model: modelInfo(model) };
      let gen: ReadoutGeneration | undefined;
      if (prompt !== undefined) {
        gen = await readoutGeneration(model, prompt, { policy, maxNewTokens, topK });
        report.ids = gen.ids;
        report.columns = gen.columns;
        report.promptLength = gen.promptLength;
        report.activeLayers = gen.activeLayers;
        report.policy = gen.policy;
        report.backend = gen.backend;
        report.horizon = implicitHorizon(policy, maxNewTokens);
      }
      let calm: CalmResult | undefined;
      if (thresholds) {
        calm = await evaluateCalm(model, items, {
          thresholds,
          minLayer,
          maxNewTokens,
          batchSize,
        });
        report.calm = {
          data: dataFile,
          heldOut: dataFile === E2E_HELD_OUT,
          items: items.length,
          rows: calm.rows, // each with `layers[item][position]`
          positions: calm.positions,
          note: calm.note,
        };
      }
      const tokenText = (id: number) => model.tokenizer.decode([id], { skipSpecialTokens: false });
      if (gen && folder) {
        const fig = logitLensChart({
          columns: gen.ids.map(tokenText),
          top1: transpose(gen.columns.map((col) => col.map((e) => tokenText(e.top[0][0])))),
          top1Prob: transpose(gen.columns.map((col) => col.map((e) => e.top[0][1]))),
          entropy: transpose(gen.columns.map((col) => col.map((e) => e.entropy))),
          promptLength: gen.promptLength,
          active: Array.from(
            { length: L },
            (_, l) => gen.layerSets.map((set) => set.includes(l)),
          ),
        }, { color: color as "prob" | "entropy" });
        const stage = folder.staging();
        const title = `Logit lens (${gen.policy}, ${model.source})`;
        const commandLine = reproduceCommand(
          "deno task skipdecode readout",
          readoutCommand.options,
          {
            ...v,
            backend: model.backend.name === "cpu" ? "cpu" : "webgpu",
          },
        );
        const files: Record<string, string> = {
          "lens.html": toHtml(fig, { title, plotlyJs: "file" }),
          [PLOTLY_FILE]: plotlyBundle(),
          "readout.json": JSON.stringify(report) + "\n",
          [RUN_MANIFEST_FILE]: manifestJson(buildManifest({
            command: "readout",
            commandLine,
            config: { ...v },
            model: { source: v.model as string, dir: model.dir, files: model.weights.files },
            ...(dataFile
              ? { data: { source: dataFile, files: [dataFile], items: items.length } }
              : {}),
            backend: model.backend,
            startedAt,
          })),
        };
        if (png !== false) {
          const ok = await renderFigurePng(fig, `${stage}/lens.png`, {
            title,
            width: Math.max(900, 40 * gen.ids.length + 200),
            height: Math.max(500, 32 * L + 250),
          }).catch((e) => {
            console.error(`note: no PNG: ${(e as Error).message.split("\n")[0]}`);
            return false;
          });
          if (!ok) console.error("note: chromium did not render lens.png");
        }
        const written = folder.writeSet(files, stage);
        if (!v.json) console.error(`wrote ${out}/: ${written.join(", ")}`);
      }
      if (v.json) {
        console.log(JSON.stringify(report));
        return 0;
      }
      if (gen) console.log(lensTable(gen, tokenText, modelLabel(model)));
      if (calm) {
        console.log(
          `\nCALM baseline of ${modelLabel(model)} on ${model.backend.name}, ${items.length} ` +
            `items of ${dataFile}` +
            `${
              dataFile === E2E_HELD_OUT ? " (held out)" : " (not held out for the bundled models)"
            }:\n`,
        );
        console.log(calmTable(calm));
      }
      return 0;
    } finally {
      folder?.close();
      model.dispose();
    }
  },
};

function transpose<T>(m: T[][]): T[][] {
  return m[0].map((_, j) => m.map((row) => row[j]));
}

/** A readable table: one line per column, the top-1 token after each layer. */
function lensTable(
  gen: ReadoutGeneration,
  text: (id: number) => string,
  model: string,
): string {
  const cell = (s: string, w: number) => {
    const t = JSON.stringify(s).slice(1, -1);
    return (t.length > w ? t.slice(0, w - 1) + "~" : t).padEnd(w);
  };
  const L = gen.columns[0].length;
  const w = 9;
  const head = `${"col".padStart(4)} ${cell("token", w)} | ` +
    Array.from({ length: L }, (_, l) => cell(`L${l + 1}`, w)).join(" ") + " | p(L)   H(L)";
  const lines = [
    `model ${model}; policy ${gen.policy} on ${gen.backend}; top-1 token after each decoder layer ` +
    `(columns from ${gen.promptLength} hold generated tokens)`,
    head,
    "-".repeat(head.length),
  ];
  gen.columns.forEach((col, c) => {
    const last = col[L - 1];
    lines.push(
      `${String(c).padStart(4)} ${cell(text(gen.ids[c]), w)} | ` +
        col.map((e) => cell(text(e.top[0][0]), w)).join(" ") +
        ` | ${last.top[0][1].toFixed(3)}  ${last.entropy.toFixed(2)}`,
    );
  });
  return lines.join("\n");
}
