/**
 * Stop strings on streamed text: {@linkcode StopText} accumulates a row's decoded text piece by
 * piece, cuts it at the first occurrence of any stop string (the stop string itself is not
 * part of the output, as in OpenAI's API) and says how much of it is safe to stream now: text
 * that could still turn out to be the beginning of a stop string is held back until the next
 * piece decides it.
 *
 * @example
 * ```ts
 * import { StopText } from "./stop.ts";
 * const s = new StopText(["\n\n"]);
 * s.push("Hello\n"); // no stop yet
 * console.log(JSON.stringify(s.take())); // "Hello" ("\n" may start the stop string)
 * console.log(s.push("\nmore")); // true: stopped
 * console.log(JSON.stringify(s.text)); // "Hello\n" is cut to "Hello"
 * ```
 * @module
 */

/** Accumulates text, finds stop strings and hands out the part that is safe to stream. */
export class StopText {
  readonly #stops: readonly string[];
  readonly #longest: number;
  #text = "";
  #sent = 0;
  #stopped = false;

  /**
   * Makes an empty accumulator.
   *
   * @param stops Stop strings (non-empty); none: nothing is ever held back.
   */
  constructor(stops: readonly string[] = []) {
    if (stops.some((s) => s.length === 0)) throw new RangeError("a stop string is empty");
    this.#stops = stops;
    this.#longest = Math.max(0, ...stops.map((s) => s.length));
  }

  /** The text so far (cut before the stop string once one was found). */
  get text(): string {
    return this.#text;
  }

  /** Whether a stop string was found. */
  get stopped(): boolean {
    return this.#stopped;
  }

  /**
   * Appends a decoded piece; returns true when the text now contains a stop string (the text
   * is cut before its first occurrence and later pieces are ignored).
   */
  push(piece: string): boolean {
    if (this.#stopped || piece === "") return this.#stopped;
    // A new occurrence can start at most longest-1 characters before the piece.
    const from = Math.max(0, this.#text.length - this.#longest + 1);
    this.#text += piece;
    let cut = -1;
    for (const s of this.#stops) {
      const i = this.#text.indexOf(s, from);
      if (i >= 0 && (cut < 0 || i < cut)) cut = i;
    }
    if (cut >= 0) {
      this.#text = this.#text.slice(0, cut);
      this.#stopped = true;
    }
    return this.#stopped;
  }

  /**
   * The text not handed out yet that can no longer become part of a stop string: everything
   * when `final` (the row ended) or a stop string was found, else all but the longest suffix
   * that is a proper prefix of some stop string.
   */
  take(final = false): string {
    let end = this.#text.length;
    if (!final && !this.#stopped) end -= this.#heldBack();
    if (end <= this.#sent) return "";
    const out = this.#text.slice(this.#sent, end);
    this.#sent = end;
    return out;
  }

  #heldBack(): number {
    const t = this.#text;
    for (let k = Math.min(this.#longest - 1, t.length); k > 0; k--) {
      const tail = t.slice(t.length - k);
      if (this.#stops.some((s) => s.startsWith(tail))) return k;
    }
    return 0;
  }
}
