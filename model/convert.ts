/**
 * Converting a checkpoint (PyTorch `.bin`, or safetensors under any naming) into a standard
 * Hugging Face folder: `model.safetensors` with `OPTForCausalLM`'s names
 * (`model.decoder.*`, `lm_head.weight` only when the head is not tied), metadata
 * `format: pt`, the source's `config.json` and whatever tokenizer files it has. Tensors
 * are copied one at a time (never the whole model in memory); every file is written under
 * a temporary name and renamed, so an interrupted conversion leaves no half-written file.
 * {@linkcode convertedCopy} keeps such a copy in a cache folder, keyed by the source files'
 * identity (path, size, modification time), for a fast second load.
 *
 * @example
 * ```ts
 * import { convertCheckpoint } from "./convert.ts";
 * const out = Deno.makeTempDirSync();
 * const r = convertCheckpoint("../shared/fixtures/torch-bin/pre-ln-zip", out);
 * console.log(r.tensors, r.files); // 52 ["model.safetensors", "config.json"]
 * ```
 *
 * @module
 */
import { sha256File } from "./hash.ts";
import { modelFile, PathRuleError } from "./paths.ts";
import { allTensors, type LoadedWeights, loadWeightsSync } from "./checkpoint.ts";
import { CheckpointError } from "./errors.ts";
import { writeSafetensors } from "./safetensors.ts";

/**
 * Tokenizer and generation files that travel with a checkpoint when present: fetched from
 * the hub and copied by {@linkcode convertCheckpoint}.
 *
 * @example
 * ```ts
 * import { OPTIONAL_MODEL_FILES } from "./convert.ts";
 * console.log(OPTIONAL_MODEL_FILES.includes("vocab.json")); // true
 * ```
 */
export const OPTIONAL_MODEL_FILES: readonly string[] = Object.freeze([
  "tokenizer.json",
  "vocab.json",
  "merges.txt",
  "tokenizer_config.json",
  "special_tokens_map.json",
  "generation_config.json",
]);

/** What {@linkcode convertCheckpoint} wrote. */
export interface ConvertResult {
  /** The folder written. */
  out: string;
  /** Tensors in `model.safetensors`. */
  tensors: number;
  /** Bytes of `model.safetensors`. */
  bytes: number;
  /** Files written, `model.safetensors` first. */
  files: string[];
  /** Warnings of loading the source (e.g. a head-only embedding). */
  warnings: string[];
}

/**
 * The name `OPTForCausalLM.save_pretrained` gives a normalised tensor name.
 *
 * @example
 * ```ts
 * import { standardName } from "./convert.ts";
 * console.log(standardName("decoder.layers.0.fc1.weight")); // "model.decoder.layers.0.fc1.weight"
 * ```
 */
export function standardName(normalised: string): string {
  return normalised === "lm_head.weight" ? normalised : `model.${normalised}`;
}

function copyAtomic(from: string, to: string): void {
  const tmp = `${to}.incomplete`;
  try {
    Deno.copyFileSync(from, tmp);
    Deno.renameSync(tmp, to);
  } catch (e) {
    try {
      Deno.removeSync(tmp);
    } catch { /* never created */ }
    throw new CheckpointError(`cannot copy ${from} to ${to}: ${(e as Error).message}`, {
      file: to,
      kind: "io",
      cause: e,
    });
  }
}

/**
 * Writes already loaded weights as a standard Hugging Face folder (see the module doc).
 *
 * @throws {CheckpointError} `io` when the folder cannot be written.
 *
 * @example
 * ```ts
 * import { loadWeightsSync } from "./checkpoint.ts";
 * import { writeStandardFolder } from "./convert.ts";
 * const w = loadWeightsSync("../shared/fixtures/torch-bin/pre-ln-legacy");
 * writeStandardFolder(w, Deno.makeTempDirSync());
 * ```
 */
export function writeStandardFolder(weights: LoadedWeights, out: string): ConvertResult {
  try {
    Deno.mkdirSync(out, { recursive: true });
  } catch (e) {
    throw new CheckpointError(`cannot create ${out}: ${(e as Error).message}`, {
      file: out,
      kind: "io",
      cause: e,
    });
  }
  // Side files first, the weights last: a folder with model.safetensors is complete.
  const files: string[] = [];
  for (const name of ["config.json", ...OPTIONAL_MODEL_FILES]) {
    let from: string | undefined;
    try {
      from = modelFile(weights.dir, name); // inside the folder (or its cache blobs) only
    } catch (e) {
      if (e instanceof PathRuleError) {
        throw new CheckpointError(e.message, { file: e.path, kind: "io", cause: e });
      }
      throw e;
    }
    if (from === undefined) continue;
    copyAtomic(from, `${out}/${name}`);
    files.push(name);
  }
  const tensors = allTensors(weights);
  const bytes = writeSafetensors(
    `${out}/model.safetensors`,
    tensors.map((t) => ({
      name: standardName(t.name),
      dtype: t.dtype,
      shape: t.shape,
      data: () => t.bytes(),
    })),
    { format: "pt" },
  );
  files.unshift("model.safetensors");
  return { out, tensors: tensors.length, bytes, files, warnings: weights.warnings };
}

/**
 * Converts a checkpoint folder (`.bin` or safetensors, single or sharded, any naming) into
 * a standard Hugging Face folder `out` that transformers and this toolkit load.
 *
 * @throws {CheckpointError} naming the source file at fault, or `out` when unwritable;
 *   `out` may not be the source folder.
 *
 * @example
 * ```ts
 * import { convertCheckpoint } from "./convert.ts";
 * convertCheckpoint("../shared/fixtures/torch-bin/pre-ln-sharded", Deno.makeTempDirSync());
 * ```
 */
export function convertCheckpoint(src: string, out: string): ConvertResult {
  const real = (p: string) => {
    try {
      return Deno.realPathSync(p);
    } catch {
      return p;
    }
  };
  if (real(src) === real(out)) {
    throw new CheckpointError(`cannot convert ${src} into itself: choose another output folder`, {
      file: out,
      kind: "io",
    });
  }
  return writeStandardFolder(loadWeightsSync(src), out);
}

/**
 * The identity of every file a checkpoint was loaded from, for cache keys: `config.json`,
 * the shard index when sharded, every weight file actually read (safetensors or `.bin`,
 * single or shards) and the tokenizer files (they decide the text), each by its real path
 * (symbolic links resolved, so re-pointing a link changes the key), size, modification time and
 * the SHA-256 of its bytes (`hash.ts`): a file rewritten with the same size and an old mtime
 * still changes the key. (The status-change time would not do: Deno reports it in whole
 * seconds.) Hashing reads the files once, about 1 s per GB. Missing files count as missing,
 * they never break the key.
 *
 * @param weights the loaded weights (`dir`, `files`)
 * @returns one line per file
 * @example
 * ```ts
 * import { loadWeightsSync } from "./checkpoint.ts";
 * import { weightFilesIdentity } from "./convert.ts";
 * console.log(weightFilesIdentity(loadWeightsSync("bundled/models/tiny-opt-e2e")).length);
 * ```
 */
export function weightFilesIdentity(weights: Pick<LoadedWeights, "dir" | "files">): string[] {
  const files = [`${weights.dir}/config.json`, ...weights.files];
  const extra = [
    "model.safetensors.index.json",
    "pytorch_model.bin.index.json",
    "tokenizer.json",
    "vocab.json",
    "merges.txt",
    "tokenizer_config.json",
    "special_tokens_map.json",
  ];
  for (const index of extra) {
    try {
      if (Deno.statSync(`${weights.dir}/${index}`).isFile) files.push(`${weights.dir}/${index}`);
    } catch { /* not sharded that way */ }
  }
  return files.map((f) => {
    try {
      const st = Deno.statSync(f);
      return [
        Deno.realPathSync(f),
        st.size,
        st.mtime?.getTime() ?? 0,
        sha256File(f), // Deno's ctime has whole seconds: only the bytes tell a quick rewrite
      ].join("\0");
    } catch {
      return `${f}\0missing`;
    }
  });
}

/**
 * A short key of the source files' identity ({@linkcode weightFilesIdentity}): any change
 * to a weight file, `config.json` or the index, or to where a link points, changes it.
 *
 * @example
 * ```ts
 * import { loadWeightsSync } from "./checkpoint.ts";
 * import { sourceKey } from "./convert.ts";
 * console.log(await sourceKey(loadWeightsSync("../shared/fixtures/torch-bin/pre-ln-zip")));
 * ```
 */
export async function sourceKey(weights: Pick<LoadedWeights, "dir" | "files">): Promise<string> {
  const parts = weightFilesIdentity(weights);
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(parts.join("\n")));
  return [...new Uint8Array(digest)].slice(0, 12).map((b) => b.toString(16).padStart(2, "0"))
    .join("");
}

/**
 * A converted safetensors copy of `.bin` weights in `cacheDir/<key>/` (see
 * {@linkcode sourceKey}), made on the first call and reused afterwards. Safetensors
 * weights are returned as they are.
 *
 * @returns The folder to load and whether it was converted by this call.
 * @throws {CheckpointError} when the copy cannot be written.
 *
 * @example
 * ```ts
 * import { loadWeightsSync } from "./checkpoint.ts";
 * import { convertedCopy } from "./convert.ts";
 * const w = loadWeightsSync("../shared/fixtures/torch-bin/pre-ln-zip");
 * const { dir } = await convertedCopy(w, Deno.makeTempDirSync());
 * console.log(loadWeightsSync(dir).format); // "safetensors"
 * ```
 */
export async function convertedCopy(
  weights: LoadedWeights,
  cacheDir: string,
): Promise<{ dir: string; converted: boolean }> {
  if (weights.format !== "bin") return { dir: weights.dir, converted: false };
  const dir = `${cacheDir}/${await sourceKey(weights)}`;
  try {
    if (Deno.statSync(`${dir}/model.safetensors`).isFile) return { dir, converted: false };
  } catch { /* not cached yet */ }
  writeStandardFolder(weights, dir);
  return { dir, converted: true };
}
