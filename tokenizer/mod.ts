/**
 * OPT's tokenizer: GPT-2 byte-level BPE with OPT's ids, `</s>` (id 2) prepended as BOS and
 * used as EOS, `<pad>` id 1. {@linkcode loadTokenizer} reads a checkpoint directory's
 * `tokenizer.json`, or `vocab.json` + `merges.txt` (converted in memory), plus
 * `tokenizer_config.json` / `special_tokens_map.json`. Encoding and decoding run in
 * `@huggingface/tokenizers`; {@linkcode OptTokenizer.createStreamDecoder} streams generated
 * text without splitting multi-byte characters.
 *
 * @example
 * ```ts
 * import { loadTokenizer } from "./mod.ts";
 * const tok = await loadTokenizer("bundled/models/tiny-opt-e2e");
 * const ids = tok.encode("I like you."); // [2, 100, 101, 47, 4]
 * const stream = tok.createStreamDecoder();
 * let text = "";
 * for (const id of ids) text += stream.push(id);
 * text += stream.flush();
 * console.log(text === tok.decode(ids)); // true
 * ```
 *
 * @module
 */

export { loadTokenizer, OptTokenizer } from "./tokenizer.ts";
export type {
  DecodeOptions,
  EncodeOptions,
  LoadTokenizerOptions,
  TokenizerConfigJson,
  TokenStreamDecoder,
} from "./tokenizer.ts";
export { TokenizerError } from "./errors.ts";
export type { TokenizerErrorDetails } from "./errors.ts";
export { byteLevelBpeJson, parseJson, parseMerges, parseVocab } from "./convert.ts";
export type { AddedTokenJson, ByteLevelBpeInput, TokenizerJson } from "./convert.ts";
export { StreamDecoder } from "./stream.ts";
