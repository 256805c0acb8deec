/**
 * Training checkpoints in the Hugging Face layout, so `model/` (`loadWeights`) and
 * `transformers.OPTForCausalLM.from_pretrained` both read them:
 *
 * - `config.json` (`optConfigToJson`, `torch_dtype` of the stored dtype) and
 *   `generation_config.json`;
 * - `model.safetensors` with `OPTForCausalLM`'s names (`model.decoder.layers.0.self_attn.q_proj.weight`,
 *   ...; `lm_head.weight` only when untied), F32 or F16;
 * - the tokenizer files of the source model, copied;
 * - for resuming: `optimizer.safetensors` (AdamW moments `exp_avg.<name>`,
 *   `exp_avg_sq.<name>`, F32, and the f32 master weights `master.<name>` when the model is
 *   stored in F16, so a resume continues from the exact weights) and `trainer_state.json`.
 *
 * @module
 */
import { loadWeightsSync } from "../model/checkpoint.ts";
import { optConfigToJson } from "../model/config.ts";
import { CheckpointError } from "../model/errors.ts";
import {
  float32ToBytes,
  openSafetensors,
  type SafetensorsWriteEntry,
  tensorToFloat32,
  writeSafetensors,
} from "../model/safetensors.ts";
import type { OptConfig } from "../model/types.ts";
import type { AdamState } from "./optim.ts";
import { ParamSet, paramsFromWeights } from "./params.ts";

/** Tokenizer and generation files copied from the source model when present. */
export const TOKENIZER_FILES: readonly string[] = Object.freeze([
  "tokenizer.json",
  "vocab.json",
  "merges.txt",
  "tokenizer_config.json",
  "special_tokens_map.json",
]);

/** Name of the optimizer-state file. */
export const OPTIMIZER_FILE = "optimizer.safetensors";
/** Name of the trainer-state file. */
export const TRAINER_STATE_FILE = "trainer_state.json";

/** What {@linkcode saveCheckpoint} writes. */
export interface SaveCheckpointOptions {
  /** The master weights. */
  params: ParamSet;
  /** Stored dtype of `model.safetensors` (default `"F32"`). */
  dtype?: "F32" | "F16";
  /** Folder to copy the tokenizer files from (the source model). */
  tokenizerDir?: string;
  /** AdamW state, for resuming. */
  adam?: AdamState;
  /** Any JSON the trainer needs to resume (written to `trainer_state.json`). */
  trainerState?: unknown;
}

/** The stored name of a normalised tensor name, as `OPTForCausalLM.save_pretrained` writes it. */
function storedName(name: string): string {
  return name.startsWith("decoder.") ? `model.${name}` : name;
}

function f32(a: ArrayLike<number>): Float32Array {
  return a instanceof Float32Array ? a : Float32Array.from(a);
}

/**
 * Writes a checkpoint folder (created if needed). Files are written to temporary names
 * first, so an interrupted save never leaves a half-written file under a final name.
 *
 * @throws {CheckpointError} when a file cannot be written.
 *
 * @example
 * ```ts
 * import { saveCheckpoint } from "./checkpoint.ts";
 * import { ParamSet } from "./params.ts";
 * import { TINY_OPT_SHAPE } from "../model/fixture.ts";
 * const dir = Deno.makeTempDirSync();
 * saveCheckpoint(dir, { params: new ParamSet(TINY_OPT_SHAPE, "f32") });
 * console.log(Deno.statSync(`${dir}/model.safetensors`).isFile); // true
 * ```
 */
export function saveCheckpoint(dir: string, options: SaveCheckpointOptions): void {
  const { params } = options;
  const dtype = options.dtype ?? "F32";
  Deno.mkdirSync(dir, { recursive: true });
  const config: OptConfig = {
    ...params.config,
    torchDtype: dtype === "F16" ? "float16" : "float32",
  };
  const entries: SafetensorsWriteEntry[] = params.specs.map((s, i) => ({
    name: storedName(s.name),
    dtype,
    shape: s.shape,
    data: () => float32ToBytes(f32(params.arrays[i]), dtype),
  }));
  writeSafetensors(`${dir}/model.safetensors`, entries, { format: "pt" });
  writeJson(`${dir}/config.json`, optConfigToJson(config));
  writeJson(`${dir}/generation_config.json`, {
    bos_token_id: config.bosTokenId,
    eos_token_id: config.eosTokenId,
    pad_token_id: config.padTokenId,
  });
  if (options.tokenizerDir) {
    for (const name of TOKENIZER_FILES) {
      const from = `${options.tokenizerDir}/${name}`, to = `${dir}/${name}`;
      if (from === to || !exists(from)) continue;
      // copy the bytes, not the mode: sources may be read-only, and a later save must
      // be able to replace the copy
      const tmp = `${to}.incomplete`;
      Deno.writeFileSync(tmp, Deno.readFileSync(from), { mode: 0o644 });
      Deno.renameSync(tmp, to);
    }
  }
  if (options.adam) {
    const { m, v, step } = options.adam;
    const opt: SafetensorsWriteEntry[] = [];
    params.specs.forEach((s, i) => {
      opt.push({
        name: `exp_avg.${s.name}`,
        dtype: "F32",
        shape: s.shape,
        data: () => float32ToBytes(f32(m.arrays[i]), "F32"),
      });
      opt.push({
        name: `exp_avg_sq.${s.name}`,
        dtype: "F32",
        shape: s.shape,
        data: () => float32ToBytes(f32(v.arrays[i]), "F32"),
      });
      if (dtype !== "F32") {
        opt.push({
          name: `master.${s.name}`,
          dtype: "F32",
          shape: s.shape,
          data: () => float32ToBytes(f32(params.arrays[i]), "F32"),
        });
      }
    });
    writeSafetensors(`${dir}/${OPTIMIZER_FILE}`, opt, {
      format: "skipdecode-adamw",
      step: String(step),
    });
  }
  if (options.trainerState !== undefined) {
    writeJson(`${dir}/${TRAINER_STATE_FILE}`, options.trainerState);
  }
}

function writeJson(path: string, value: unknown): void {
  const tmp = `${path}.incomplete`;
  Deno.writeTextFileSync(tmp, JSON.stringify(value, null, 2) + "\n");
  Deno.renameSync(tmp, path);
}

/** A checkpoint read back for training. */
export interface TrainingCheckpoint {
  /** f32 master weights (from `master.*` when the model file is F16). */
  params: ParamSet;
  /** AdamW state, when `optimizer.safetensors` exists. */
  adam?: AdamState;
  /** The parsed `trainer_state.json`, when it exists. */
  trainerState?: unknown;
}

/**
 * Reads a checkpoint folder for training: weights through `model/`'s loader, plus the
 * optimizer and trainer state when present (a plain Hugging Face model folder is a valid
 * starting point with neither).
 *
 * @throws {CheckpointError} naming the file and tensor at fault.
 *
 * @example
 * ```ts
 * const ck = loadTrainingCheckpoint("bundled/models/tiny-opt-e2e");
 * console.log(ck.adam === undefined); // true: a plain model folder
 * ```
 */
export function loadTrainingCheckpoint(dir: string): TrainingCheckpoint {
  const params = paramsFromWeights(loadWeightsSync(dir));
  const out: TrainingCheckpoint = { params };
  const optPath = `${dir}/${OPTIMIZER_FILE}`;
  if (exists(optPath)) {
    const file = openSafetensors(optPath);
    const stepText = file.metadata?.step;
    const step = Number(stepText);
    if (!Number.isInteger(step) || step < 0) {
      throw new CheckpointError(`${optPath}: metadata "step" is missing or not an integer`, {
        file: optPath,
        kind: "format",
        field: "step",
      });
    }
    const read = (name: string, shape: number[]): Float32Array => {
      const t = file.tensors.get(name);
      if (!t) {
        throw new CheckpointError(`${optPath} has no tensor ${name}`, {
          file: optPath,
          kind: "missing-tensor",
          tensor: name,
        });
      }
      if (t.shape.join(",") !== shape.join(",")) {
        throw new CheckpointError(
          `${optPath}: tensor ${name} has shape [${t.shape}], expected [${shape}]`,
          { file: optPath, kind: "shape", tensor: name },
        );
      }
      return tensorToFloat32(t);
    };
    const m = new ParamSet(
      params.config,
      "f32",
      params.specs.map((s) => read(`exp_avg.${s.name}`, s.shape)),
    );
    const v = new ParamSet(
      params.config,
      "f32",
      params.specs.map((s) => read(`exp_avg_sq.${s.name}`, s.shape)),
    );
    params.specs.forEach((s, i) => {
      if (file.tensors.has(`master.${s.name}`)) {
        params.arrays[i] = read(`master.${s.name}`, s.shape);
      }
    });
    out.adam = { m, v, step };
  }
  const statePath = `${dir}/${TRAINER_STATE_FILE}`;
  if (exists(statePath)) {
    try {
      out.trainerState = JSON.parse(Deno.readTextFileSync(statePath));
    } catch (e) {
      throw new CheckpointError(`${statePath} is not valid JSON: ${(e as Error).message}`, {
        file: statePath,
        kind: "format",
        cause: e,
      });
    }
  }
  return out;
}

function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}
