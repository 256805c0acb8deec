/**
 * Incremental detokenization: {@linkcode StreamDecoder} turns token ids arriving one at a
 * time into text pieces whose concatenation equals the decode of all ids, without ever
 * emitting half of a multi-byte UTF-8 character.
 *
 * @example
 * ```ts
 * import { StreamDecoder } from "./stream.ts";
 * const pieces = ["he", "llo"];
 * const s = new StreamDecoder((ids) => ids.map((i) => pieces[i]).join(""));
 * console.log(s.push(0) + s.push(1) + s.flush()); // "hello"
 * ```
 *
 * @module
 */

const REPLACEMENT = "\uFFFD";

/**
 * Streams text out of token ids. Each {@linkcode StreamDecoder.push} decodes a short window
 * of recent ids (from the last emitted boundary) and returns only the newly completed text;
 * while the window's text ends in U+FFFD (an incomplete UTF-8 sequence split across tokens)
 * it returns `""` and holds the bytes back. {@linkcode StreamDecoder.flush} returns what is
 * held back (even if incomplete) and resets the decoder for a new stream.
 *
 * The concatenation of every `push` result and the final `flush` equals `decode(allIds)`
 * for a decoder whose output for a sequence is the concatenation of its outputs for any
 * split at a character boundary (true of byte-level BPE without clean-up).
 *
 * @example
 * ```ts
 * import { StreamDecoder } from "./stream.ts";
 * // A toy byte decoder: each id is one byte; [0xc3, 0xa9] is "é".
 * const s = new StreamDecoder((ids) => new TextDecoder().decode(new Uint8Array(ids)));
 * console.log(JSON.stringify(s.push(0xc3))); // "" (held back)
 * console.log(s.push(0xa9)); // "é"
 * ```
 */
export class StreamDecoder {
  readonly #decode: (ids: number[]) => string;
  /** Ids from the start of the current window (older ids are dropped). */
  #ids: number[] = [];
  /** Length of the window prefix whose text has already been emitted. */
  #read = 0;

  /**
   * Makes a decoder for one stream.
   *
   * @param decode Decodes a list of ids to text; must accept `[]` (returning `""`).
   */
  constructor(decode: (ids: number[]) => string) {
    this.#decode = decode;
  }

  /**
   * Adds one token id and returns the text it completes (possibly `""`).
   *
   * @param id The next token id.
   * @returns Newly completed text, never ending in a partial character.
   */
  push(id: number): string {
    this.#ids.push(id);
    const before = this.#decode(this.#ids.slice(0, this.#read));
    const after = this.#decode(this.#ids);
    if (after.length <= before.length || after.endsWith(REPLACEMENT)) return "";
    // The emitted text ends on a character boundary: start the next window at the old
    // read point, so the decoder always sees the token before the new ones.
    const prefix = this.#read;
    this.#ids.splice(0, prefix);
    this.#read = this.#ids.length;
    return after.slice(before.length);
  }

  /**
   * Returns the text still held back (which may end in U+FFFD if the ids ended inside a
   * character) and resets the decoder.
   *
   * @returns The remaining text.
   */
  flush(): string {
    const before = this.#decode(this.#ids.slice(0, this.#read));
    const after = this.#decode(this.#ids);
    this.#ids = [];
    this.#read = 0;
    return after.length > before.length ? after.slice(before.length) : "";
  }
}
