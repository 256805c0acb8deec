/**
 * `skipdecode score`: corpus BLEU (sacreBLEU defaults, 0-100) and ROUGE-L F (0-1) of a
 * hypothesis file against one or more reference files, one segment per line.
 *
 * @module
 */
import { type Command, requireString, UsageError } from "./command.ts";
import { scoreFiles } from "../eval/mod.ts";

/** The `score` command. */
export const scoreCommand: Command = {
  name: "score",
  summary: "BLEU and ROUGE-L of a hypothesis file against reference files",
  options: {
    hyp: { kind: "path", value: "FILE", description: "hypotheses, one per line" },
    ref: {
      kind: "path",
      multiple: true,
      value: "FILE",
      description: "references aligned by line",
    },
  },
  async run(v) {
    const hyp = requireString(v, "hyp");
    const refs = (v.ref as string[] | undefined) ?? [];
    if (refs.length === 0) throw new UsageError("give at least one --ref FILE");
    const s = await scoreFiles(hyp, refs);
    console.log(JSON.stringify({ bleu: s.bleu.score, rougeL: s.rougeL.fmeasure }));
    return 0;
  },
};
