/**
 * `skipdecode convert`: writes a standard Hugging Face folder (`model.safetensors` with
 * `OPTForCausalLM`'s names, `config.json`, tokenizer files) from a checkpoint folder or hub
 * id, e.g. a facebook/opt-* repository that holds only PyTorch `.bin` weights.
 *
 * @example
 * ```sh
 * deno task skipdecode convert --model facebook/opt-125m --out out/opt-125m
 * ```
 * @module
 */
import { type Command, requireString, UsageError } from "./command.ts";
import { resolveModel } from "../model/hub.ts";
import { writeStandardFolder } from "../model/convert.ts";
import { describeModel, loadWeightsSync } from "../model/checkpoint.ts";
import { OutputFolder } from "../io/output.ts";
import { MODEL, OFFLINE, OUT, withDefault } from "./options.ts";

/** The `convert` command. */
export const convertCommand: Command = {
  name: "convert",
  summary:
    "write a checkpoint (.bin or safetensors) as a standard HF folder with model.safetensors",
  options: {
    ...withDefault(MODEL, undefined, { description: "checkpoint folder or hub id to convert" }),
    ...withDefault(OUT, undefined, { description: "folder to write (e.g. out/opt-125m)" }),
    ...OFFLINE,
    overwrite: {
      kind: "flag",
      description: "replace a non-empty --out: its other files are removed",
    },
  },
  async run(v) {
    const model = requireString(v, "model");
    const outDir = requireString(v, "out");
    const t0 = performance.now();
    const resolved = await resolveModel(model, { offline: v.offline ? true : undefined });
    const out = OutputFolder.open(outDir, { option: "--out", owner: "convert" });
    try {
      if (Deno.realPathSync(resolved.dir) === Deno.realPathSync(outDir)) {
        throw new UsageError(`--out ${outDir} is the model folder itself; choose another folder`);
      }
      const before = out.entries();
      if (before.length > 0 && !v.overwrite) {
        throw new UsageError(
          `--out ${outDir} is not empty (${before.slice(0, 4).join(", ")}` +
            `${before.length > 4 ? ", ..." : ""}); pass --overwrite to replace its contents, ` +
            `or choose another --out`,
        );
      }
      // Written into a staging folder and committed as one set: an old tokenizer.json or
      // optimizer state never survives beside the new weights.
      const stage = out.staging();
      const r = writeStandardFolder(loadWeightsSync(resolved.dir), stage);
      const written = out.writeSet({}, stage);
      for (const name of out.entries()) {
        if (!written.includes(name)) Deno.removeSync(`${outDir}/${name}`, { recursive: true });
      }
      for (const w of r.warnings) console.error(`note: ${w}`);
      const check = loadWeightsSync(outDir);
      const rev = resolved.repoId ? resolved.commit ?? resolved.revision : undefined;
      console.log(
        `read ${rev ? `${model}@${rev}` : model}; ` +
          `wrote ${outDir}: ${r.files.join(", ")} (${r.tensors} tensors, ` +
          `${(r.bytes / 1e6).toFixed(1)} MB) in ${((performance.now() - t0) / 1000).toFixed(1)} s`,
      );
      console.log(describeModel(check).summary);
      return 0;
    } finally {
      out.close();
    }
  },
};
