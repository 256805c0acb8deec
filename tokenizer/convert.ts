/**
 * Converts GPT-2 style tokenizer files (`vocab.json` + `merges.txt`) into the object a
 * `tokenizer.json` holds: a byte-level BPE model, ByteLevel pre-tokenizer and decoder, and a
 * `TemplateProcessing` post-processor that prepends the BOS token (OPT prepends `</s>`).
 *
 * @example
 * ```ts
 * import { byteLevelBpeJson, parseMerges, parseVocab } from "./convert.ts";
 * const vocab = parseVocab('{"a": 0, "b": 1, "ab": 2, "</s>": 3}', "vocab.json");
 * const merges = parseMerges("#version: 0.2\na b\n", "merges.txt");
 * const json = byteLevelBpeJson({ vocab, merges, bosToken: "</s>", specialTokens: ["</s>"] });
 * console.log(json.added_tokens.length); // 1
 * ```
 *
 * @module
 */

import { TokenizerError } from "./errors.ts";

/** One entry of `added_tokens` in a `tokenizer.json`. */
export interface AddedTokenJson {
  /** The token id. */
  id: number;
  /** The token text, matched literally in input text. */
  content: string;
  /** Only match as a whole word. */
  single_word: boolean;
  /** Strip whitespace on the left when matching. */
  lstrip: boolean;
  /** Strip whitespace on the right when matching. */
  rstrip: boolean;
  /** Match against normalized text. */
  normalized: boolean;
  /** A special token: skipped when decoding with `skipSpecialTokens`. */
  special: boolean;
}

/**
 * The parts of a `tokenizer.json` object this module reads or writes. Components are kept
 * as plain JSON objects; `@huggingface/tokenizers` interprets them.
 */
export interface TokenizerJson {
  /** Format version, `"1.0"` when written here. */
  version?: string;
  /** Tokens matched before pre-tokenization (the special tokens). */
  added_tokens: AddedTokenJson[];
  /** Text normalizer, `null` for GPT-2 / OPT. */
  normalizer: Record<string, unknown> | null;
  /** Pre-tokenizer (ByteLevel for GPT-2 / OPT). */
  pre_tokenizer: Record<string, unknown> | null;
  /** The model (BPE with `vocab` and `merges` for GPT-2 / OPT). */
  model: Record<string, unknown>;
  /** Post-processor (a BOS-prepending TemplateProcessing for OPT). */
  post_processor: Record<string, unknown> | null;
  /** Decoder (ByteLevel for GPT-2 / OPT). */
  decoder: Record<string, unknown> | null;
  /** Other fields (`truncation`, `padding`, ...), kept as read. */
  [key: string]: unknown;
}

/**
 * Parses the text of a `vocab.json` (an object from token to id).
 *
 * @param text The file's text.
 * @param file The file's path, named in errors.
 * @returns The vocabulary, token to id.
 * @throws {TokenizerError} On malformed JSON, a non-object, or an id that is not a
 *   non-negative integer.
 *
 * @example
 * ```ts
 * import { parseVocab } from "./convert.ts";
 * console.log(parseVocab('{"hi": 0}', "vocab.json")); // { hi: 0 }
 * ```
 */
export function parseVocab(text: string, file: string): Record<string, number> {
  const vocab = parseJson(text, file);
  if (vocab === null || typeof vocab !== "object" || Array.isArray(vocab)) {
    throw new TokenizerError(`${file}: expected a JSON object from token to id`, { path: file });
  }
  const map = vocab as Record<string, unknown>;
  for (const token in map) {
    const id = map[token];
    if (!Number.isInteger(id) || (id as number) < 0) {
      throw new TokenizerError(
        `${file}: token ${JSON.stringify(token)} has id ${JSON.stringify(id)}, ` +
          `expected a non-negative integer`,
        { path: file },
      );
    }
  }
  return vocab as Record<string, number>;
}

/**
 * Parses the text of a `merges.txt`: an optional `#version` line, then one merge per line,
 * two tokens separated by one space, highest priority first. Blank lines are skipped.
 *
 * @param text The file's text.
 * @param file The file's path, named in errors.
 * @returns The merges as `[left, right]` pairs, in priority order.
 * @throws {TokenizerError} On a line that is not two space-separated tokens.
 *
 * @example
 * ```ts
 * import { parseMerges } from "./convert.ts";
 * console.log(parseMerges("#version: 0.2\nĠ t\n", "merges.txt")); // [["Ġ", "t"]]
 * ```
 */
export function parseMerges(text: string, file: string): [string, string][] {
  const merges: [string, string][] = [];
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].endsWith("\r") ? lines[i].slice(0, -1) : lines[i];
    if (line === "" || (i === 0 && line.startsWith("#version"))) continue;
    const parts = line.split(" ");
    if (parts.length !== 2 || parts[0] === "" || parts[1] === "") {
      throw new TokenizerError(
        `${file}:${i + 1}: expected two tokens separated by one space, got ` +
          JSON.stringify(line),
        { path: file },
      );
    }
    merges.push([parts[0], parts[1]]);
  }
  return merges;
}

/** Inputs of {@linkcode byteLevelBpeJson}. */
export interface ByteLevelBpeInput {
  /** Token to id, as in `vocab.json`. */
  vocab: Record<string, number>;
  /** Merges in priority order, as in `merges.txt`. */
  merges: [string, string][];
  /** The token prepended to every single sequence (OPT: `"</s>"`); `null` for none. */
  bosToken: string | null;
  /**
   * Tokens registered as special `added_tokens` (matched literally in text, skipped when
   * decoding with `skipSpecialTokens`). Tokens missing from `vocab` are left out.
   */
  specialTokens: string[];
}

/**
 * Builds the `tokenizer.json` object of a GPT-2 style byte-level BPE tokenizer: model BPE
 * with `vocab` and `merges`, ByteLevel pre-tokenizer (`add_prefix_space: false`) and
 * decoder, no normalizer, and a `TemplateProcessing` post-processor that prepends
 * `bosToken` (`"</s>:0 $A:0"`, pair `"</s>:0 $A:0 </s>:1 $B:1"`), as `transformers` writes
 * for OPT. Serialized with `JSON.stringify`, the result is a valid `tokenizer.json`.
 *
 * @param input Vocabulary, merges and special tokens.
 * @returns The `tokenizer.json` object.
 * @throws {TokenizerError} If `bosToken` is not in `vocab`.
 *
 * @example
 * ```ts
 * import { byteLevelBpeJson } from "./convert.ts";
 * const json = byteLevelBpeJson({
 *   vocab: { "</s>": 0, h: 1, i: 2, hi: 3 },
 *   merges: [["h", "i"]],
 *   bosToken: "</s>",
 *   specialTokens: ["</s>"],
 * });
 * console.log(JSON.stringify(json).length > 0);
 * ```
 */
export function byteLevelBpeJson(input: ByteLevelBpeInput): TokenizerJson {
  const { vocab, merges, bosToken } = input;
  const seen = new Set<string>();
  const added: AddedTokenJson[] = [];
  for (const content of input.specialTokens) {
    if (seen.has(content) || !Object.hasOwn(vocab, content)) continue;
    seen.add(content);
    added.push({
      id: vocab[content],
      content,
      single_word: false,
      lstrip: false,
      rstrip: false,
      normalized: false,
      special: true,
    });
  }
  added.sort((a, b) => a.id - b.id);
  let postProcessor: Record<string, unknown> | null = null;
  if (bosToken !== null) {
    if (!Object.hasOwn(vocab, bosToken)) {
      throw new TokenizerError(`BOS token ${JSON.stringify(bosToken)} is not in the vocabulary`);
    }
    const bos = (typeId: number) => ({ SpecialToken: { id: bosToken, type_id: typeId } });
    const seq = (id: string, typeId: number) => ({ Sequence: { id, type_id: typeId } });
    postProcessor = {
      type: "TemplateProcessing",
      single: [bos(0), seq("A", 0)],
      pair: [bos(0), seq("A", 0), bos(1), seq("B", 1)],
      special_tokens: { [bosToken]: { id: bosToken, ids: [vocab[bosToken]], tokens: [bosToken] } },
    };
  }
  const byteLevel = { add_prefix_space: false, trim_offsets: true, use_regex: true };
  return {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: added,
    normalizer: null,
    pre_tokenizer: { type: "ByteLevel", ...byteLevel },
    post_processor: postProcessor,
    decoder: { type: "ByteLevel", ...byteLevel },
    model: {
      type: "BPE",
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: "",
      end_of_word_suffix: "",
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab,
      merges,
    },
  };
}

/**
 * Parses JSON, turning a syntax error into a {@linkcode TokenizerError} naming the file.
 *
 * @param text The file's text.
 * @param file The file's path, named in errors.
 * @returns The parsed value.
 * @throws {TokenizerError} On malformed JSON.
 *
 * @example
 * ```ts
 * import { parseJson } from "./convert.ts";
 * console.log(parseJson("[1]", "x.json")); // [1]
 * ```
 */
export function parseJson(text: string, file: string): unknown {
  try {
    return JSON.parse(text);
  } catch (e) {
    const why = e instanceof Error ? e.message : String(e);
    throw new TokenizerError(`malformed JSON in ${file}: ${why}`, { path: file, cause: e });
  }
}
