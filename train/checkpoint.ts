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
import { checkFiniteTensor, checkFiniteWeights } from "../model/finite.ts";
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
import {
  commitFileSet,
  completePendingCommit,
  OutputError,
  readFileSet,
  sha256File,
} from "../io/output.ts";
import { ensureRealDir, PathRuleError } from "../model/paths.ts";
import { ParamSet, paramsFromWeights } from "./param_set.ts";

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
 * import { ParamSet } from "./param_set.ts";
 * import { TINY_OPT_SHAPE } from "../model/fixture.ts";
 * const dir = Deno.makeTempDirSync();
 * saveCheckpoint(dir, { params: new ParamSet(TINY_OPT_SHAPE, "f32") });
 * console.log(Deno.statSync(`${dir}/model.safetensors`).isFile); // true
 * ```
 */
export function saveCheckpoint(dir: string, options: SaveCheckpointOptions): void {
  // Every file is written into a fresh hidden staging folder inside `dir`, then the set is
  // committed as a whole with SHA-256 hashes (io/output.ts `commitFileSet`): kill -9 at
  // any point leaves the previous complete checkpoint or the new one, and a resume checks
  // the hashes. `dir` and its parents below the nearest existing folder must be real
  // folders: a planted link is refused, never written through.
  try {
    ensureRealDir(dir, existingAncestor(dir), "checkpoint folder");
  } catch (e) {
    if (e instanceof PathRuleError) {
      throw new CheckpointError(e.message, { file: e.path, kind: "io", cause: e });
    }
    throw e;
  }
  const stage = `${dir}/.staging-${crypto.randomUUID()}`;
  Deno.mkdirSync(stage);
  try {
    writeCheckpointFiles(stage, options);
    commitFileSet(dir, stage, { owner: "train", hash: true });
  } catch (e) {
    if (e instanceof OutputError) {
      throw new CheckpointError(e.message, { file: dir, kind: "io", cause: e });
    }
    throw e;
  } finally {
    try {
      Deno.removeSync(stage, { recursive: true });
    } catch { /* committed */ }
  }
}

/** The nearest existing folder at or above `dir` (where creation starts). */
function existingAncestor(dir: string): string {
  let at = dir.replace(/\/+$/, "") || "/";
  for (;;) {
    try {
      Deno.lstatSync(at);
      return at;
    } catch {
      const up = at.includes("/") ? at.slice(0, at.lastIndexOf("/")) || "/" : ".";
      if (up === at) return at;
      at = up;
    }
  }
}

/** Writes the files of a checkpoint into `dir` (a fresh staging folder). */
function writeCheckpointFiles(dir: string, options: SaveCheckpointOptions): void {
  const { params } = options;
  const dtype = options.dtype ?? "F32";
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
      if (!exists(from)) continue;
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
  verifyCheckpointSet(dir);
  const weights = loadWeightsSync(dir);
  checkFiniteWeights(weights); // a NaN weight is named here, not blamed on the learning rate
  const params = paramsFromWeights(weights);
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
      checkFiniteTensor(t);
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

/**
 * Checks a training checkpoint's files against the hashes its save recorded: a save that
 * kill -9 cut short is completed first (the set it was committing), and a folder whose
 * `model.safetensors`, `optimizer.safetensors` or `trainer_state.json` differ from the
 * recorded set (mixed from two saves, edited, truncated) is refused, naming the files.
 * A folder without a recorded set (a plain model folder) is not checked here.
 *
 * @throws {CheckpointError} naming the files that do not match.
 * @example
 * ```ts
 * import { verifyCheckpointSet } from "./checkpoint.ts";
 * verifyCheckpointSet("bundled/models/tiny-opt-e2e"); // no recorded set: nothing to check
 * ```
 */
export function verifyCheckpointSet(dir: string): void {
  try {
    completePendingCommit(dir);
  } catch (e) {
    throw new CheckpointError(
      `${dir} holds an interrupted save that cannot be completed (${(e as Error).message}); ` +
        `refused: resume from an earlier checkpoint`,
      { file: dir, kind: "io", cause: e },
    );
  }
  const set = readFileSet(dir);
  if (!set || set.owner !== "train") {
    if (exists(`${dir}/${OPTIMIZER_FILE}`) && set) {
      throw new CheckpointError(
        `${dir} has ${OPTIMIZER_FILE} but its file list was written by ${set.owner}, not a ` +
          `training save; refused`,
        { file: dir, kind: "format" },
      );
    }
    return;
  }
  const bad: string[] = [];
  for (const name of ["model.safetensors", OPTIMIZER_FILE, TRAINER_STATE_FILE]) {
    const want = set.sha256[name];
    const path = `${dir}/${name}`;
    if (want === undefined) {
      if (exists(path)) bad.push(`${name} (not in the saved set)`);
      continue;
    }
    let got: string;
    try {
      got = sha256File(path);
    } catch {
      bad.push(`${name} (missing)`);
      continue;
    }
    if (got !== want) bad.push(`${name} (changed since the save)`);
  }
  if (bad.length > 0) {
    throw new CheckpointError(
      `${dir} does not hold one complete save: ${bad.join(", ")} ` +
        `do not match the hashes recorded in .skipdecode-files.json; refused to resume from ` +
        `a mixed or edited checkpoint`,
      { file: `${dir}/${bad[0].split(" ")[0]}`, kind: "format" },
    );
  }
}

function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}
