/**
 * `skipdecode tokenize`: print the ids of a text as `{"ids": [...]}`.
 *
 * @module
 */
import { type Command, requireString } from "./command.ts";
import { resolveModel } from "../model/hub.ts";
import { loadTokenizer } from "../tokenizer/mod.ts";
import { TINY_MODEL_DIR } from "../data/bundled.ts";
import { MODEL, modelInfo, OFFLINE, withDefault } from "./options.ts";

/** The `tokenize` command. */
export const tokenizeCommand: Command = {
  name: "tokenize",
  summary: "print the token ids of a text",
  options: {
    ...withDefault(MODEL, TINY_MODEL_DIR, {
      description: "folder with tokenizer files, or hub id",
    }),
    text: { kind: "text", value: "TEXT", description: "the text (\\n is a newline)" },
    bos: { kind: "flag", description: "prepend BOS (--no-bos: do not)", default: true },
    ...OFFLINE,
  },
  async run(v) {
    const text = requireString(v, "text").replaceAll("\\n", "\n");
    const source = v.model as string;
    const resolved = await resolveModel(source, { offline: v.offline ? true : undefined });
    const tok = await loadTokenizer(resolved.dir);
    const revision = resolved.repoId ? resolved.commit ?? resolved.revision : undefined;
    console.log(JSON.stringify({
      ids: tok.encode(text, { addBos: v.bos !== false }),
      model: modelInfo({ source, dir: resolved.dir, revision }),
    }));
    return 0;
  },
};
