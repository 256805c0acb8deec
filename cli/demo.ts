/**
 * `skipdecode demo` (the README's main command): compares a default set of exit policies on
 * a default model and writes a report folder: `report.md` (the table, the charts, sample
 * outputs), the charts as self-contained HTML (and PNG when headless Chromium is
 * installed), `sweep.json` and `generations.jsonl`.
 *
 * The model: `--model` when given; else `facebook/opt-125m` from the Hugging Face cache, or
 * from the hub when it answers within a few seconds (never with `--offline` or
 * `HF_HUB_OFFLINE=1`); else the tiny checkpoint the repository ships,
 * `bundled/models/tiny-opt-e2e` (so a bare clone without network works); else a message
 * saying how to get a model.
 *
 * What it measures depends on the model (`heldout_text.ts`): an E2E-trained checkpoint (the
 * tiny one) is scored on E2E with BLEU and ROUGE-L; a pretrained model such as
 * facebook/opt-125m on held-out text with teacher-forced NLL and agreement with the full
 * model, and the report says which.
 *
 * @example
 * ```sh
 * deno task demo                 # report in reports/demo/
 * deno task demo --offline --items 16
 * ```
 * @module
 */
import { checkLength, type Command, pngOption, UsageError } from "./command.ts";
import {
  BACKEND,
  BATCH_SIZE,
  CACHE,
  MAX_NEW_TOKENS,
  MODEL,
  modelLabel,
  OFFLINE,
  OUT,
  withDefault,
} from "./options.ts";
import type { BackendName } from "../backend/mod.ts";
import { checkOutputPath, OutputFolder } from "../io/output.ts";
import { loadModel } from "../decode/mod.ts";
import { offlineFromEnv, resolveModel } from "../model/hub.ts";
import { runSweep } from "../experiments/sweep.ts";
import { writeSweepReport } from "../experiments/report.ts";
import { reproduceCommand } from "../experiments/manifest.ts";
import { dataHeldOut, defaultPolicies, loadSweepItems, sweepDataFile } from "./sweep.ts";
import { E2E_HELD_OUT, heldOutTextItems, measuresFor } from "./heldout_text.ts";
import { exists, TINY_MODEL_DIR } from "../data/bundled.ts";

/** The hub model the demo prefers. */
export const DEMO_HUB_MODEL = "facebook/opt-125m";

/** How the demo chose its model. */
export interface DemoModelChoice {
  /** Folder or hub id to load. */
  model: string;
  /** Whether it is the project's tiny research checkpoint. */
  tiny: boolean;
  /** One line on how it was chosen. */
  note: string;
}

/** Options of {@linkcode chooseDemoModel}. */
export interface ChooseModelOptions {
  /** `--model`, when given. */
  model?: string;
  /** Never use the network (also when `HF_HUB_OFFLINE` is set). */
  offline?: boolean;
  /** Connect timeout for the hub, ms (default 4000). */
  connectTimeoutMs?: number;
  /** The tiny checkpoint's folder (default `bundled/models/tiny-opt-e2e`). */
  tinyDir?: string;
  /** The hub id tried first (default {@linkcode DEMO_HUB_MODEL}). */
  hubModel?: string;
  /** Hub cache folder (default from the environment). */
  cacheDir?: string;
}

/**
 * Picks the demo's model (see the module documentation).
 *
 * @param options `--model`, offline mode, timeouts, folders
 * @returns the model to load and why
 * @throws UsageError saying how to get a model when none is available
 * @example
 * ```ts
 * import { chooseDemoModel } from "./demo.ts";
 * const choice = await chooseDemoModel({ offline: true });
 * console.log(choice.note);
 * ```
 */
export async function chooseDemoModel(options: ChooseModelOptions = {}): Promise<DemoModelChoice> {
  const tinyDir = options.tinyDir ?? TINY_MODEL_DIR;
  if (options.model) {
    return {
      model: options.model,
      tiny: options.model.replace(/\/+$/, "") === tinyDir.replace(/\/+$/, ""),
      note: `model ${options.model} (--model)`,
    };
  }
  const hub = options.hubModel ?? DEMO_HUB_MODEL;
  const offline = options.offline || offlineFromEnv();
  const why: string[] = [];
  try {
    const r = await resolveModel(hub, { offline: true, cacheDir: options.cacheDir });
    return { model: r.dir, tiny: false, note: `${hub} from the Hugging Face cache (${r.dir})` };
  } catch (e) {
    why.push(`${hub} is not in the Hugging Face cache`);
    if (!(e instanceof Error)) throw e;
  }
  if (!offline) {
    try {
      const r = await resolveModel(hub, {
        connectTimeoutMs: options.connectTimeoutMs ?? 4000,
        cacheDir: options.cacheDir,
      });
      return { model: r.dir, tiny: false, note: `${hub} downloaded from the hub (${r.dir})` };
    } catch (e) {
      why.push(`the hub did not serve it (${(e as Error).message.split("\n")[0]})`);
    }
  } else {
    why.push("offline mode is on");
  }
  if (exists(`${tinyDir}/config.json`)) {
    return {
      model: tinyDir,
      tiny: true,
      note: `the tiny checkpoint the repository ships, ${tinyDir} (${why.join("; ")})`,
    };
  }
  throw new UsageError(
    `no model for the demo: ${why.join("; ")}, and the tiny checkpoint ${tinyDir} is ` +
      `missing. Pass --model DIR (a Hugging Face OPT folder with config.json and ` +
      `safetensors or PyTorch .bin weights) or --model ORG/NAME, or run once with network access so ` +
      `${hub} is downloaded into the Hugging Face cache (e.g. \`huggingface-cli download ` +
      `${hub}\`).`,
  );
}

/** The report's paragraph for a pretrained model measured on held-out text. */
function textIntro(file: string, n: number): string {
  const heldOut = file === E2E_HELD_OUT
    ? "the E2E test split part no bundled model was trained on"
    : "the E2E devset the repository ships (not held out: the bundled models were trained on it)";
  return "**This model is pretrained, not fine-tuned on E2E**, so BLEU on E2E would say " +
    "little about it. The demo measures it on held-out text instead: " +
    `${n} sentences (the first reference of each meaning representation) from ${heldOut}, ` +
    `\`${file.split("/").slice(-3).join("/")}\`, each split after its first third of words. ` +
    "Every policy continues the prefix (**agreement**: share of generated tokens equal to " +
    "`full`'s), and the rest of the sentence is scored teacher-forced under the policy's " +
    "plan (**NLL**, nats per token, lower is better; its gap to `full` is the cost of " +
    "skipping). These two columns are the quality figures here; BLEU and ROUGE-L compare " +
    "a free continuation with the sentence's actual rest and are shown only for " +
    "completeness. The frontier chart plots agreement.";
}

/** The `demo` command. */
export const demoCommand: Command = {
  name: "demo",
  summary: "compare default policies on a default model and write a report folder",
  options: {
    ...withDefault(MODEL, undefined, {
      description: `checkpoint folder or hub id (default: ${DEMO_HUB_MODEL}, else the tiny model)`,
    }),
    ...OFFLINE,
    ...withDefault(OUT, "reports/demo"),
    items: {
      kind: "int",
      min: 1,
      value: "N",
      description: "E2E MRs to use (default for the tiny model 48 on WebGPU, 24 on the CPU; " +
        "4 for larger models)",
    },
    ...withDefault(MAX_NEW_TOKENS, undefined, {
      description: "tokens per prompt (default 48 for the tiny model, 24 for larger ones)",
    }),
    "oracle-items": {
      kind: "int",
      min: 0,
      value: "N",
      description: "items for the oracle-depth chart (default: half the items for the tiny " +
        "model, else 0)",
    },
    ...withDefault(BATCH_SIZE, 8, { description: "rows per batch" }),
    ...BACKEND,
    png: {
      kind: "flag",
      description: "PNG pictures of the charts with Chromium (default: when this task may " +
        "run chromium and it is installed; --no-png: none)",
    },
    cache: CACHE.cache,
  },
  async run(v) {
    const t0 = performance.now();
    const startedAt = new Date().toISOString();
    const backend = v.backend as BackendName;
    // Every option was checked by runCommand; the output folder before the model is chosen.
    const itemsOpt = v.items as number | undefined;
    const maxNewOpt = v["max-new-tokens"] as number | undefined;
    const oracleOpt = v["oracle-items"] as number | undefined;
    const batchSize = v["batch-size"] as number;
    const png = pngOption(v.png);
    const out = v.out as string;
    checkOutputPath(out, "--out");
    const choice = await chooseDemoModel({
      model: v.model as string | undefined,
      offline: Boolean(v.offline),
    });
    console.error(`demo: using ${choice.note}`);
    const model = await loadModel(choice.model, {
      backend,
      offline: v.offline ? true : undefined,
    });
    let folder: OutputFolder | undefined;
    try {
      // Defaults sized to finish in a few minutes on two CPU cores: the software WebGPU
      // adapter is about 2.5x faster than the CPU backend on the tiny model.
      const small = model.config.hiddenSize * model.config.numHiddenLayers <= 256 * 12;
      const gpu = model.backend.name !== "cpu";
      const nItems = itemsOpt ?? (small ? (gpu ? 48 : 24) : 4);
      const maxNewTokens = maxNewOpt ?? (small ? 48 : 24);
      const oracleItems = oracleOpt ?? (small ? (gpu ? 24 : 12) : 0);
      const L = model.config.numHiddenLayers;
      if (L < 3) throw new UsageError(`the demo needs a model with >= 3 layers, this one has ${L}`);
      // What to measure depends on the model (see heldout_text.ts): E2E for the project's
      // E2E-trained checkpoints, held-out text for a pretrained model such as opt-125m.
      const measures = measuresFor(choice.model, choice.tiny);
      const text = measures === "text" ? await heldOutTextItems(nItems) : undefined;
      const items = text ? text.items : await loadSweepItems(undefined, nItems);
      checkLength(model, maxNewTokens, items.map((it) => model.tokenizer.encode(it.prompt).length));
      const policies = defaultPolicies(L, Math.min(24, maxNewTokens));
      folder = OutputFolder.open(out, { option: "--out", owner: "demo" });
      const result = await runSweep(model, items, policies, {
        maxNewTokens,
        batchSize,
        cacheDir: v.cache === false ? false : undefined,
        oracle: oracleItems > 0 ? { items: oracleItems, warmup: 1 } : false,
      });
      const intro = [
        `Model: ${choice.note}.`,
        choice.tiny
          ? "**This is `tiny-opt-e2e`, a small OPT-architecture research fixture trained for " +
            "this project on the E2E devset with random SkipDecode plans active; it is not " +
            "Meta's OPT**, and its figures say nothing about OPT's quality."
          : measures === "e2e"
          ? "Prompts are E2E meaning representations, and the model's name says it was " +
            "trained on E2E: BLEU and ROUGE-L against the references are the quality figures."
          : text
          ? textIntro(text.file, items.length)
          : "",
        "",
        "The policies: `full` (all layers), linear decays at about 2x and 3x layer speedup " +
        "with one warm-up layer, a power-law decay, the 2x decay with prompt decay, and the " +
        "early-exit baseline (bottom layers) with the 2x budgets.",
      ].join("\n");
      // Every choice the demo made spelled out, so the command reruns this very report.
      const chosen = {
        ...v,
        model: choice.model,
        items: String(nItems),
        "max-new-tokens": String(maxNewTokens),
        "oracle-items": String(oracleItems),
        "batch-size": String(result.batchSize),
        backend: model.backend.name === "cpu" ? "cpu" : "webgpu",
      };
      const reproduce = reproduceCommand("deno task demo", demoCommand.options, chosen);
      const dataFile = text ? text.file : sweepDataFile();
      const files = await writeSweepReport(result, folder, {
        title: "SkipDecode demo",
        intro,
        png,
        reproduce,
        manifest: {
          command: "demo",
          commandLine: reproduce,
          config: { ...chosen, policies },
          model: { source: choice.model, dir: model.dir, files: model.weights.files },
          data: { source: dataFile, files: [dataFile], items: items.length },
          backend: model.backend,
          seed: 0,
          startedAt,
        },
        data: dataHeldOut(text ? text.file : sweepDataFile()),
        ...(measures === "text" ? { metric: "agreement" as const } : {}),
      }, items);
      const secs = (performance.now() - t0) / 1000;
      console.error(
        `demo: model ${modelLabel(model)} on ${result.backend}: wrote ${out}/${files.report} with ${
          Object.keys(files.html).length
        } charts ` +
          `(${Object.keys(files.png).length} PNGs) in ${secs.toFixed(0)} s`,
      );
      return 0;
    } finally {
      folder?.close();
      model.dispose();
    }
  },
};
