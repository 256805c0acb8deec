/**
 * A request's `policy` may name the policies of files the server loaded at start
 * (`serve --policy-file`, serve/policies.ts): by policy name, by a descriptor's
 * `name:key=value` form, or by the file itself when it holds one policy; the text equals a
 * solo `generate` with that policy. A file the server did not load, a file with several
 * policies named as a file, or an unknown name is a 400 naming `policy` (a request never loads
 * code). The server here runs in this process (tiny checkpoint, CPU backend).
 */
import { assert, assertEquals, assertMatch, assertThrows } from "@std/assert";
import { fileURLToPath } from "node:url";
import { generate, loadModel } from "../decode/mod.ts";
import { loadPolicyFile, type Policy } from "../schedule/mod.ts";
import {
  assertDistinctNames,
  type RunningServer,
  Scheduler,
  type ServedPolicyFile,
  startServer,
} from "../serve/mod.ts";
import { BUNDLED } from "./helpers.ts";

const model = await loadModel(fileURLToPath(new URL("models/tiny-opt-e2e", BUNDLED)), {
  backend: "cpu",
  onNote: () => {},
});
const NAME = "tiny-opt-e2e";
const PROMPT = "name[The Eagle], food[French]\n";
const SCHEDULE = new URL("../schedule/mod.ts", import.meta.url).href;

/** Three policy files in a temporary folder: one function, two policies, one descriptor. */
async function policyFiles(dir: string): Promise<Record<string, string>> {
  const texts: Record<string, string> = {
    "late_six.ts": `import { skipDecodeSet } from "${SCHEDULE}";
export default ({ column, promptLength, layers }: { column: number; promptLength: number; layers: number }) =>
  skipDecodeSet(layers, column - promptLength < 3 ? layers : 6, 1);
`,
    "two.ts": `import { customPolicy, skipDecodeSet } from "${SCHEDULE}";
export const a = customPolicy({ name: "keep_all", layerSet: ({ layers }) => Array.from({ length: layers }, (_, i) => i) });
export const b = customPolicy({ name: "top_five", layerSet: ({ column, promptLength, layers }) =>
  skipDecodeSet(layers, column < promptLength ? layers : 5, 1) });
`,
    "desc.ts": `import { defineSchedule } from "${SCHEDULE}";
export const HALFWAY = defineSchedule({
  form: "schedule", name: "servehalfway", summary: "L, then n after k tokens",
  params: [{ key: "n", type: "int", min: 1, default: 6, doc: "budget" },
           { key: "k", type: "int", min: 0, default: 2, doc: "j below k runs all layers" }],
  promptMode: true, example: "servehalfway:n=6,k=2",
  budget: (p, j, _H, L) => (j < p.k ? L : p.n),
  label: (p) => \`halfway \${p.n} k\${p.k}\`,
});
`,
  };
  const paths: Record<string, string> = {};
  for (const [name, text] of Object.entries(texts)) {
    paths[name] = `${dir}/${name}`;
    await Deno.writeTextFile(paths[name], text);
  }
  return paths;
}

function serve(files: ServedPolicyFile[]): RunningServer {
  return startServer({
    scheduler: new Scheduler(model, { capacity: 4, maxQueue: 16 }),
    tokenizer: model.tokenizer,
    config: model.config,
    modelName: NAME,
    port: 0,
    policyFiles: files,
  });
}

async function complete(
  s: RunningServer,
  policy: string,
): Promise<{ status: number; text?: string; error?: { param: string; message: string } }> {
  const res = await fetch(`${s.url}/v1/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ model: NAME, prompt: PROMPT, max_tokens: 10, policy }),
  });
  const j = await res.json();
  return { status: res.status, text: j.choices?.[0]?.text, error: j.error };
}

async function solo(policy: Policy | string): Promise<string> {
  const out = await generate(model, [PROMPT], { policy, maxNewTokens: 10, batchSize: 1 });
  return out.results[0].text;
}

Deno.test("serve: a request names a policy of a file loaded at start; other files are a 400 naming policy", async () => {
  const dir = await Deno.makeTempDir({ prefix: "skipdecode-serve-policy-" });
  const s0 = serve([]);
  let s: RunningServer | undefined;
  try {
    const paths = await policyFiles(dir);
    const files: ServedPolicyFile[] = [];
    for (const name of ["late_six.ts", "two.ts", "desc.ts"]) {
      files.push({ file: paths[name], policies: await loadPolicyFile(paths[name]) });
    }
    const [lateSix] = files[0].policies;
    const topFive = files[1].policies[1];
    s = serve(files);
    // by name, by the file (one policy), by a descriptor's key=value form: solo generate's text
    const cases: [string, Policy | string][] = [
      ["top_five", topFive],
      ["late_six", lateSix],
      [paths["late_six.ts"], lateSix],
      ["servehalfway:n=4,k=1", "servehalfway:n=4,k=1"],
      ["linear:max=12,min=4,warmup=1", "linear:max=12,min=4,warmup=1"],
    ];
    const texts = new Set<string>();
    for (const [asked, policy] of cases) {
      const r = await complete(s, asked);
      assertEquals(r.status, 200, `${asked}: ${JSON.stringify(r.error)}`);
      assertEquals(r.text, await solo(policy), asked);
      texts.add(r.text!);
    }
    assert(texts.size > 1, "every policy gave the same text: the policies were not applied");
    // refused, naming the field: a file not loaded, a file of several policies, an unknown name
    const bad: [RunningServer, string, RegExp][] = [
      [s, `${dir}/elsewhere.ts`, /was not loaded at server start .*--policy-file/],
      [s, paths["two.ts"], /holds 2 policies \(keep_all, top_five\): name one/],
      [s, "no_such_policy", /unknown policy "no_such_policy".*late_six, keep_all, top_five/],
      [s0, paths["late_six.ts"], /was not loaded at server start/],
      [s0, "top_five", /unknown policy "top_five"/],
    ];
    for (const [server, asked, pattern] of bad) {
      const r = await complete(server, asked);
      assertEquals(r.status, 400, `${asked}: ${JSON.stringify(r)}`);
      assertEquals(r.error?.param, "policy");
      assert(r.error!.message.startsWith("policy: "), r.error!.message);
      assertMatch(r.error!.message, pattern);
    }
    // two files exporting one name cannot both be served
    assertThrows(
      () => assertDistinctNames([files[1], { file: "copy.ts", policies: [topFive] }]),
      Error,
      `policy "top_five" is exported by both ${paths["two.ts"]} and copy.ts`,
    );
  } finally {
    await s0.shutdown();
    await s?.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});
