/**
 * OPT's tokenizer (GPT-2 byte-level BPE with OPT's ids, `</s>` prepended as BOS), loaded
 * from a Hugging Face checkpoint directory and run by `@huggingface/tokenizers`.
 *
 * @example
 * ```ts
 * import { loadTokenizer } from "./tokenizer.ts";
 * const tok = await loadTokenizer("bundled/models/tiny-opt-e2e");
 * const ids = tok.encode("Hello, my dog is cute"); // [2, 31414, 6, 127, 2335, 16, 11962]
 * console.log(tok.decode(ids)); // "Hello, my dog is cute"
 * ```
 *
 * @module
 */

import { Tokenizer } from "@huggingface/tokenizers";
import { byteLevelBpeJson, parseJson, parseMerges, parseVocab } from "./convert.ts";
import type { TokenizerJson } from "./convert.ts";
import { TokenizerError } from "./errors.ts";
import { StreamDecoder } from "./stream.ts";
import { modelFile, readInputFile } from "../model/paths.ts";

/**
 * The fields of `tokenizer_config.json` / `special_tokens_map.json` this module reads.
 * Token fields are strings or `{ content }` objects (older `AddedToken` serialization).
 */
export interface TokenizerConfigJson {
  /** Token prepended as BOS (OPT: `"</s>"`). */
  bos_token?: string | { content: string } | null;
  /** End-of-sequence token (OPT: `"</s>"`). */
  eos_token?: string | { content: string } | null;
  /** Padding token (OPT: `"<pad>"`). */
  pad_token?: string | { content: string } | null;
  /** Unknown token. */
  unk_token?: string | { content: string } | null;
  /** Whether `encode` prepends BOS by default (OPT: true). */
  add_bos_token?: boolean;
  /** Whether the ByteLevel pre-tokenizer adds a leading space (OPT: false). */
  add_prefix_space?: boolean;
  /** Whether decoding removes spaces before punctuation (default here: false, lossless). */
  clean_up_tokenization_spaces?: boolean;
  /** More special tokens. */
  additional_special_tokens?: (string | { content: string })[];
  /** `transformers` >= 4.34: id to added token. */
  added_tokens_decoder?: Record<string, { content: string; special?: boolean }>;
  /** Other fields, ignored. */
  [key: string]: unknown;
}

/** Options of {@linkcode loadTokenizer}. */
export interface LoadTokenizerOptions {
  /**
   * Which files to read: `"auto"` (default) reads `tokenizer.json` when present, else
   * `vocab.json` + `merges.txt`; the other values require those files.
   */
  source?: "auto" | "tokenizer.json" | "vocab+merges";
}

/** Options of {@linkcode OptTokenizer.encode}. */
export interface EncodeOptions {
  /** Prepend the BOS id. Default: `add_bos_token` of the config, else true. */
  addBos?: boolean;
}

/** Options of {@linkcode OptTokenizer.decode}. */
export interface DecodeOptions {
  /** Drop special tokens (`<s>`, `<pad>`, `</s>`, `<unk>`). Default true. */
  skipSpecialTokens?: boolean;
  /**
   * Remove spaces before punctuation (`" ."` -> `"."`), which loses information.
   * Default: `clean_up_tokenization_spaces` of the config, else false.
   */
  cleanUpTokenizationSpaces?: boolean;
}

/** An incremental decoder made by {@linkcode OptTokenizer.createStreamDecoder}. */
export interface TokenStreamDecoder {
  /** Adds one id; returns the newly completed text (`""` while a character is split). */
  push(id: number): string;
  /** Returns the text still held back and resets the decoder. */
  flush(): string;
}

/** Special tokens registered when converting `vocab.json` + `merges.txt`, if in the vocab. */
const OPT_SPECIAL_TOKENS = ["<s>", "<pad>", "</s>", "<unk>"];

/**
 * A loaded OPT tokenizer. Build one with {@linkcode loadTokenizer}, or from a
 * `tokenizer.json` object with the constructor.
 *
 * @example
 * ```ts
 * import { loadTokenizer } from "./tokenizer.ts";
 * const tok = await loadTokenizer("bundled/models/tiny-opt-e2e");
 * console.log(tok.encode("I like you.")); // [2, 100, 101, 47, 4]
 * console.log(tok.bosTokenId, tok.eosTokenId, tok.padTokenId, tok.vocabSize); // 2 2 1 50265
 * ```
 */
export class OptTokenizer {
  /** Id prepended by `encode` (OPT: 2, `</s>`). */
  readonly bosTokenId: number;
  /** End-of-sequence id (OPT: 2, `</s>`). */
  readonly eosTokenId: number;
  /** Padding id (OPT: 1, `<pad>`). */
  readonly padTokenId: number;
  /** One more than the highest token id (OPT: 50265; the model pads its rows to 50272). */
  readonly vocabSize: number;
  readonly #tok: Tokenizer;
  readonly #json: TokenizerJson;
  readonly #addBos: boolean;
  readonly #cleanUp: boolean;

  /**
   * Builds a tokenizer from a `tokenizer.json` object and the tokenizer config.
   *
   * @param json The `tokenizer.json` object (e.g. from {@linkcode byteLevelBpeJson}).
   * @param config `tokenizer_config.json` merged with `special_tokens_map.json`.
   * @param source File or directory named in errors.
   * @throws {TokenizerError} If the library rejects `json` or a special token is missing.
   */
  constructor(json: TokenizerJson, config: TokenizerConfigJson = {}, source = "tokenizer.json") {
    try {
      this.#tok = new Tokenizer(json, config);
    } catch (e) {
      const why = e instanceof Error ? e.message : String(e);
      throw new TokenizerError(`unsupported tokenizer in ${source}: ${why}`, {
        path: source,
        cause: e,
      });
    }
    this.#json = json;
    this.#addBos = config.add_bos_token ?? true;
    this.#cleanUp = config.clean_up_tokenization_spaces ?? false;
    const idOf = (field: "bos_token" | "eos_token" | "pad_token", fallback: string) => {
      const token = tokenContent(config[field]) ?? fallback;
      const id = this.#tok.token_to_id(token);
      if (id === undefined) {
        throw new TokenizerError(
          `${field} ${JSON.stringify(token)} is not in the vocabulary of ${source}`,
          { path: source },
        );
      }
      return id;
    };
    this.bosTokenId = idOf("bos_token", "</s>");
    this.eosTokenId = idOf("eos_token", "</s>");
    this.padTokenId = idOf("pad_token", "<pad>");
    let max = -1;
    for (const id of this.#tok.get_vocab(true).values()) if (id > max) max = id;
    this.vocabSize = max + 1;
  }

  /**
   * Encodes text to token ids, BOS first unless `addBos` is false. Special-token text
   * (`"</s>"`, `"<pad>"`, ...) in the input maps to its id.
   *
   * @param text Any string (may be empty).
   * @param options `addBos` (default: the config's `add_bos_token`, else true).
   * @returns Token ids.
   *
   * @example
   * ```ts
   * import { loadTokenizer } from "./tokenizer.ts";
   * const tok = await loadTokenizer("bundled/models/tiny-opt-e2e");
   * console.log(tok.encode("I like you.", { addBos: false })); // [100, 101, 47, 4]
   * ```
   */
  encode(text: string, options: EncodeOptions = {}): number[] {
    if (typeof text !== "string") {
      throw new TokenizerError(`encode: expected a string, got ${typeof text}`);
    }
    const ids = text === "" ? [] : this.#tok.encode(text, { add_special_tokens: false }).ids;
    return options.addBos ?? this.#addBos ? [this.bosTokenId, ...ids] : ids;
  }

  /**
   * Decodes token ids to text. Ids with no token (e.g. the model's padding rows
   * `vocabSize..50271`) decode to nothing; `[]` decodes to `""`.
   *
   * @param ids Token ids (an array or typed array).
   * @param options `skipSpecialTokens` (default true), `cleanUpTokenizationSpaces`.
   * @returns The text.
   * @throws {TokenizerError} On an id that is not a non-negative integer.
   *
   * @example
   * ```ts
   * import { loadTokenizer } from "./tokenizer.ts";
   * const tok = await loadTokenizer("bundled/models/tiny-opt-e2e");
   * console.log(tok.decode([2, 100, 101, 47, 4])); // "I like you."
   * console.log(tok.decode([2, 100], { skipSpecialTokens: false })); // "</s>I"
   * ```
   */
  decode(ids: ArrayLike<number>, options: DecodeOptions = {}): string {
    const known: number[] = [];
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i];
      if (!Number.isInteger(id) || id < 0) {
        throw new TokenizerError(`decode: ids[${i}] = ${id} is not a non-negative integer`);
      }
      if (id < this.vocabSize && this.#tok.id_to_token(id) !== undefined) known.push(id);
    }
    if (known.length === 0) return "";
    return this.#tok.decode(known, {
      skip_special_tokens: options.skipSpecialTokens ?? true,
      clean_up_tokenization_spaces: options.cleanUpTokenizationSpaces ?? this.#cleanUp,
    });
  }

  /**
   * Makes an incremental decoder for generated ids: `push(id)` returns only the newly
   * completed text and holds back bytes of a character split across tokens; `flush()`
   * returns the rest. All pieces joined equal `decode(allIds, options)` (without clean-up).
   *
   * @param options Decode options used for every piece.
   * @returns A fresh stream decoder.
   *
   * @example
   * ```ts
   * import { loadTokenizer } from "./tokenizer.ts";
   * const tok = await loadTokenizer("bundled/models/tiny-opt-e2e");
   * const stream = tok.createStreamDecoder();
   * let text = "";
   * for (const id of tok.encode("café 🙂")) text += stream.push(id);
   * text += stream.flush();
   * console.log(text); // "café 🙂"
   * ```
   */
  createStreamDecoder(options: DecodeOptions = {}): TokenStreamDecoder {
    return new StreamDecoder((ids) => this.decode(ids, options));
  }

  /**
   * The token's id, or `undefined` if it is not in the vocabulary.
   *
   * @example
   * ```ts
   * import { loadTokenizer } from "./tokenizer.ts";
   * const tok = await loadTokenizer("bundled/models/tiny-opt-e2e");
   * console.log(tok.tokenToId("</s>")); // 2
   * ```
   */
  tokenToId(token: string): number | undefined {
    return this.#tok.token_to_id(token);
  }

  /**
   * The token (in byte-level form, e.g. `"Ġdog"`) of an id, or `undefined`.
   *
   * @example
   * ```ts
   * import { loadTokenizer } from "./tokenizer.ts";
   * const tok = await loadTokenizer("bundled/models/tiny-opt-e2e");
   * console.log(tok.idToToken(2335)); // "Ġdog"
   * ```
   */
  idToToken(id: number): string | undefined {
    return this.#tok.id_to_token(id) ?? undefined;
  }

  /**
   * The `tokenizer.json` object this tokenizer runs (shared, do not mutate);
   * `JSON.stringify` it to save a `tokenizer.json`.
   *
   * @example
   * ```ts
   * import { loadTokenizer } from "./tokenizer.ts";
   * const tok = await loadTokenizer("bundled/models/tiny-opt-e2e");
   * const text = JSON.stringify(tok.toTokenizerJson());
   * console.log(text.length > 1e6);
   * ```
   */
  toTokenizerJson(): TokenizerJson {
    return this.#json;
  }
}

/**
 * Loads OPT's tokenizer from a checkpoint directory holding `tokenizer.json`, or
 * `vocab.json` + `merges.txt` (converted in memory to a byte-level BPE `tokenizer.json`),
 * plus optional `tokenizer_config.json` and `special_tokens_map.json` naming the special
 * tokens (defaults: BOS and EOS `</s>`, pad `<pad>`).
 *
 * @param dir The directory (path or `file:` URL).
 * @param options Which files to read.
 * @returns The tokenizer.
 * @throws {TokenizerError} Naming the directory and the files it looked for when they are
 *   missing, or the file at fault when one is unreadable or malformed.
 *
 * @example
 * ```ts
 * import { loadTokenizer } from "./tokenizer.ts";
 * const tok = await loadTokenizer("bundled/models/tiny-opt-e2e");
 * console.log(tok.encode("name[Alimentum]\n").length);
 * ```
 */
export async function loadTokenizer(
  dir: string | URL,
  options: LoadTokenizerOptions = {},
): Promise<OptTokenizer> {
  const root = dirPath(dir);
  const source = options.source ?? "auto";
  try {
    const info = await Deno.stat(root);
    if (!info.isDirectory) {
      throw new TokenizerError(`tokenizer path is not a directory: ${root}`, { path: root });
    }
  } catch (e) {
    if (e instanceof TokenizerError) throw e;
    if (e instanceof Deno.errors.NotFound) {
      throw new TokenizerError(`tokenizer directory not found: ${root}`, { path: root });
    }
    throw readError(root, e);
  }
  const file = (name: string) => `${root}/${name}`;
  const config = await readConfig(file);
  const need = "need tokenizer.json, or vocab.json + merges.txt";

  if (source !== "vocab+merges") {
    const text = await readOptional(file("tokenizer.json"));
    if (text !== null) return fromTokenizerJson(text, file("tokenizer.json"), config);
    if (source === "tokenizer.json") {
      throw new TokenizerError(`no tokenizer.json in ${root}`, { path: file("tokenizer.json") });
    }
  }
  const [vocabText, mergesText] = await Promise.all([
    readOptional(file("vocab.json")),
    readOptional(file("merges.txt")),
  ]);
  if (vocabText === null || mergesText === null) {
    const found = vocabText !== null ? "vocab.json" : mergesText !== null ? "merges.txt" : null;
    const missing = found === "vocab.json" ? "merges.txt" : "vocab.json";
    const what = found === null ? "" : ` (found ${found} but not ${missing})`;
    const need2 = source === "vocab+merges" ? "need vocab.json + merges.txt" : need;
    throw new TokenizerError(`no tokenizer in ${root}: ${need2}${what}`, { path: root });
  }
  const vocab = parseVocab(vocabText, file("vocab.json"));
  const merges = parseMerges(mergesText, file("merges.txt"));
  const specials = [
    ...OPT_SPECIAL_TOKENS,
    ...(["bos_token", "eos_token", "unk_token", "pad_token"] as const)
      .map((k) => tokenContent(config[k])),
    ...(config.additional_special_tokens ?? []).map(tokenContent),
    ...Object.values(config.added_tokens_decoder ?? {})
      .filter((t) => t.special !== false).map((t) => t.content),
  ].filter((t): t is string => typeof t === "string");
  const bos = tokenContent(config.bos_token) ?? "</s>";
  if (!Object.hasOwn(vocab, bos)) {
    throw new TokenizerError(`bos_token ${JSON.stringify(bos)} is not in ${file("vocab.json")}`, {
      path: file("vocab.json"),
    });
  }
  const json = byteLevelBpeJson({ vocab, merges, bosToken: bos, specialTokens: specials });
  if (config.add_prefix_space === true) {
    json.pre_tokenizer = { ...json.pre_tokenizer, add_prefix_space: true };
  }
  return new OptTokenizer(json, config, root);
}

/** Parses and completes a `tokenizer.json` text, then builds the tokenizer. */
function fromTokenizerJson(text: string, path: string, config: TokenizerConfigJson) {
  const raw = parseJson(text, path);
  if (raw === null || typeof raw !== "object" || Array.isArray(raw)) {
    throw new TokenizerError(`${path}: expected a JSON object`, { path });
  }
  const obj = raw as Record<string, unknown>;
  const model = obj.model;
  if (model === null || typeof model !== "object" || Array.isArray(model)) {
    throw new TokenizerError(`${path}: missing "model" object`, { path });
  }
  if (obj.added_tokens !== undefined && !Array.isArray(obj.added_tokens)) {
    throw new TokenizerError(`${path}: "added_tokens" must be an array`, { path });
  }
  const json: TokenizerJson = {
    ...obj,
    added_tokens: (obj.added_tokens ?? []) as TokenizerJson["added_tokens"],
    normalizer: (obj.normalizer ?? null) as TokenizerJson["normalizer"],
    pre_tokenizer: (obj.pre_tokenizer ?? null) as TokenizerJson["pre_tokenizer"],
    post_processor: (obj.post_processor ?? null) as TokenizerJson["post_processor"],
    decoder: (obj.decoder ?? null) as TokenizerJson["decoder"],
    model: model as Record<string, unknown>,
  };
  return new OptTokenizer(json, config, path);
}

/** Checks the fields of a tokenizer config that are used, naming the file and field. */
function checkConfigFields(c: Record<string, unknown>, path: string): void {
  const isToken = (v: unknown) =>
    typeof v === "string" ||
    (v !== null && typeof v === "object" &&
      typeof (v as { content?: unknown }).content === "string");
  for (const k of ["bos_token", "eos_token", "unk_token", "pad_token"]) {
    if (c[k] != null && !isToken(c[k])) {
      throw new TokenizerError(
        `${path}: "${k}" must be a string or {"content": string}, got ${JSON.stringify(c[k])}`,
        { path },
      );
    }
  }
  const extra = c.additional_special_tokens;
  if (extra != null && (!Array.isArray(extra) || !extra.every(isToken))) {
    throw new TokenizerError(
      `${path}: "additional_special_tokens" must be a list of strings or {"content": string} ` +
        `objects, got ${JSON.stringify(extra).slice(0, 80)}`,
      { path },
    );
  }
  const dec = c.added_tokens_decoder;
  if (dec != null) {
    if (typeof dec !== "object" || Array.isArray(dec)) {
      throw new TokenizerError(`${path}: "added_tokens_decoder" must be an object`, { path });
    }
    for (const [id, t] of Object.entries(dec)) {
      if (
        t === null || typeof t !== "object" ||
        typeof (t as { content?: unknown }).content !== "string"
      ) {
        throw new TokenizerError(
          `${path}: "added_tokens_decoder" entry ${id} must be an object with a "content" ` +
            `string, got ${JSON.stringify(t)}`,
          { path },
        );
      }
    }
  }
}

/** Reads `tokenizer_config.json` with `special_tokens_map.json` filling missing fields. */
async function readConfig(file: (name: string) => string): Promise<TokenizerConfigJson> {
  const read = async (name: string): Promise<TokenizerConfigJson> => {
    const text = await readOptional(file(name));
    if (text === null) return {};
    const value = parseJson(text, file(name));
    if (value === null || typeof value !== "object" || Array.isArray(value)) {
      throw new TokenizerError(`${file(name)}: expected a JSON object`, { path: file(name) });
    }
    checkConfigFields(value as Record<string, unknown>, file(name));
    return value as TokenizerConfigJson;
  };
  const [config, map] = await Promise.all([
    read("tokenizer_config.json"),
    read("special_tokens_map.json"),
  ]);
  const merged: TokenizerConfigJson = { ...config };
  for (const [k, v] of Object.entries(map)) if (merged[k] == null) merged[k] = v;
  return merged;
}

/** The largest tokenizer file read (OPT's tokenizer.json is about 2 MB). */
export const MAX_TOKENIZER_FILE_BYTES = 64 << 20;

/**
 * A tokenizer file's text, or `null` if it does not exist. The file must resolve inside
 * the tokenizer's folder (or its Hugging Face cache repository's blobs) and be a regular
 * file of at most {@linkcode MAX_TOKENIZER_FILE_BYTES}: `model/paths.ts`.
 */
async function readOptional(path: string): Promise<string | null> {
  await Promise.resolve();
  const cut = path.lastIndexOf("/");
  try {
    const checked = modelFile(path.slice(0, cut), path.slice(cut + 1));
    if (checked === undefined) return null;
    const bytes = readInputFile(checked, {
      what: "tokenizer file",
      maxBytes: MAX_TOKENIZER_FILE_BYTES,
    });
    return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return null;
    if (e instanceof TypeError && /encoded data was not valid/.test(e.message)) {
      throw new TokenizerError(`${path} is not valid UTF-8 text`, { path, cause: e });
    }
    throw readError(path, e);
  }
}

function readError(path: string, e: unknown): TokenizerError {
  const why = e instanceof Error ? e.message : String(e);
  if (e instanceof Error && e.name === "PathRuleError") {
    return new TokenizerError(why, { path, cause: e });
  }
  const denied = e instanceof Deno.errors.NotCapable || e instanceof Deno.errors.PermissionDenied;
  return new TokenizerError(
    denied
      ? `${path} exists but this process may not read it (${
        why.replace(/,? run again with.*$/i, "")
      })`
      : `cannot read ${path}: ${why}`,
    { path, cause: e },
  );
}

/** The text of a token field (`"</s>"` or `{ content: "</s>" }`), or `undefined`. */
function tokenContent(value: unknown): string | undefined {
  if (typeof value === "string") return value;
  if (value !== null && typeof value === "object" && "content" in value) {
    const content = (value as { content: unknown }).content;
    if (typeof content === "string") return content;
  }
  return undefined;
}

/** A directory path without trailing slashes, from a path or `file:` URL. */
function dirPath(dir: string | URL): string {
  let path: string;
  if (dir instanceof URL) {
    if (dir.protocol !== "file:") {
      throw new TokenizerError(`tokenizer directory must be a file: URL, got ${dir.href}`);
    }
    path = decodeURIComponent(dir.pathname);
  } else {
    path = dir;
  }
  const trimmed = path.replace(/\/+$/, "");
  return trimmed === "" ? "/" : trimmed;
}
