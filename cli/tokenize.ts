/**
 * `skipdecode tokenize`: print the ids of a text as `{"ids": [...]}`.
 *
 * @module
 */
import { type Command, requireString } from "./command.ts";
import { resolveModel } from "../model/hub.ts";
import { loadTokenizer } from "../tokenizer/mod.ts";
import { TINY_MODEL_DIR } from "../data/bundled.ts";

/** The `tokenize` command. */
export const tokenizeCommand: Command = {
  name: "tokenize",
  summary: "print the token ids of a text",
  options: {
    model: {
      type: "string",
      value: "DIR|ORG/NAME",
      description: "folder with tokenizer files, or hub id",
      default: TINY_MODEL_DIR,
    },
    text: { type: "string", value: "TEXT", description: "the text (\\n is a newline)" },
    bos: { type: "boolean", description: "prepend BOS (--no-bos: do not)", default: true },
    offline: { type: "boolean", description: "never use the network" },
  },
  async run(v) {
    const text = requireString(v, "text").replaceAll("\\n", "\n");
    const { dir } = await resolveModel(v.model as string, {
      offline: v.offline ? true : undefined,
    });
    const tok = await loadTokenizer(dir);
    console.log(JSON.stringify({ ids: tok.encode(text, { addBos: v.bos !== false }) }));
    return 0;
  },
};
