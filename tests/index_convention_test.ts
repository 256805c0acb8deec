/**
 * One index convention (docs/DESIGN.md §3): per-token figures are indexed by the generated
 * token `i` (token `i` comes from column `P - 1 + i`), budget formulas by `j = c - P = i - 1`.
 * The documented examples produce what their text says:
 *
 * - DESIGN's worked example (`linear:...` with `P` and `N` gives `generatedLayers = [...]`),
 *   read from DESIGN.md itself;
 * - the JSDoc examples of `mod.ts`, `schedule/mod.ts` and `schedule/registry.ts` that write a
 *   step policy: each is run, and every `console.log(x); // text` line must print `text`;
 * - the `step8` policy of `notebooks/custom_policy.ipynb` keeps exactly the 8 tokens its
 *   text promises at full depth;
 * - every per-position chart labels its x axis "generated token i".
 */
import { assert, assertEquals } from "@std/assert";
import { fileURLToPath } from "node:url";
import {
  budgetChart,
  customPolicy,
  nllGapChart,
  oracleDepthChart,
  parsePolicy,
  plan,
  skipDecodeSet,
} from "../mod.ts";

const ROOT = new URL("../", import.meta.url);
const read = (rel: string) => Deno.readTextFileSync(new URL(rel, ROOT));

/** The ```ts blocks of a file's JSDoc comments, ` * ` prefixes removed. */
function jsdocExamples(rel: string): string[] {
  const text = read(rel);
  const out: string[] = [];
  for (const m of text.matchAll(/^ \* ```ts\n([\s\S]*?)^ \* ```/gm)) {
    out.push(m[1].split("\n").map((l) => l.replace(/^ \*( |$)/, "")).join("\n"));
  }
  return out;
}

/**
 * Runs an example with its relative imports resolved from `rel`'s folder; each line
 * `console.log(EXPR); // TEXT` becomes a check that EXPR prints TEXT (as `String(x)`, or
 * `JSON.stringify(x)` for non-strings). Returns `[printed, expected]` pairs.
 */
async function runExample(rel: string, code: string): Promise<[string, string][]> {
  const base = new URL(rel, ROOT);
  const lines = code.replace(/from "(\.{1,2}\/[^"]+)"/g, (_, p) => `from "${new URL(p, base)}"`)
    .split("\n").map((line) => {
      const m = line.match(/^(\s*)console\.log\((.*)\);\s*\/\/\s*(.+)$/);
      return m ? `${m[1]}__check(${m[2]}, ${JSON.stringify(m[3].trim())});` : line;
    });
  // imports stay at the top level; the rest runs with console.log silenced
  const imports = lines.filter((l) => l.startsWith("import ")).join("\n");
  const body = lines.filter((l) => !l.startsWith("import ")).join("\n");
  const tmp = Deno.makeTempDirSync({ prefix: "skipdecode-doc-" });
  try {
    const file = `${tmp}/example.ts`;
    Deno.writeTextFileSync(
      file,
      `${imports}\nexport const __results: [string, string][] = [];\n` +
        `function __check(v: unknown, want: string) {\n` +
        `  __results.push([typeof v === "string" ? v : JSON.stringify(v), want]);\n}\n` +
        `const __log = console.log;\nconsole.log = () => {};\ntry {\n${body}\n} finally {\n` +
        `  console.log = __log;\n}\n`,
    );
    const mod = await import(new URL(`file://${file}`).href);
    return mod.__results;
  } finally {
    Deno.removeSync(tmp, { recursive: true });
  }
}

Deno.test("DESIGN.md's worked example of the index convention holds", () => {
  const text = read("docs/DESIGN.md").replace(/\s+/g, " ");
  const m = text.match(
    /`(linear:[^`]+)` with `P = (\d+)` and (\d+) new tokens gives `generatedLayers = \[([^\]]+)\]`/,
  );
  assert(m, "DESIGN.md lost its worked example");
  const p = plan(parsePolicy(m[1]), {
    layers: 12,
    promptLength: Number(m[2]),
    maxNewTokens: Number(m[3]),
  });
  assertEquals(p.generatedLayers, m[4].split(",").map(Number));
  // and the text's claim about custom policies: `column - promptLength + 1 < K` keeps K tokens
  assert(text.includes("`column - promptLength + 1 < K` (that is `i < K`)"));
  for (const K of [1, 3, 8]) {
    const keep = (rule: (c: number, P: number) => boolean) =>
      plan(
        customPolicy({
          name: `k${K}`,
          layerSet: ({ column, promptLength, layers }) =>
            skipDecodeSet(layers, rule(column, promptLength) ? layers : 4, 1),
        }),
        { layers: 12, promptLength: 5, maxNewTokens: 12 },
      ).generatedLayers.filter((n) => n === 12).length;
    assertEquals(keep((c, P) => c - P + 1 < K), K, `i < ${K}`);
    assertEquals(keep((c, P) => c - P < K), K + 1, `j < ${K} keeps one more`);
  }
});

Deno.test("JSDoc step-policy examples print what their comments say", async () => {
  let checked = 0;
  for (const rel of ["mod.ts", "schedule/mod.ts", "schedule/registry.ts"]) {
    const steps = jsdocExamples(rel).filter((c) => /step/i.test(c) && c.includes("// "));
    assert(steps.length > 0, `${rel}: no step-policy example found`);
    for (const code of steps) {
      for (const [got, want] of await runExample(rel, code)) {
        // a comment may quote a string result ("...")
        const unq = want.startsWith('"') && want.endsWith('"') ? want.slice(1, -1) : want;
        assert(got === want || got === unq, `${rel}: printed ${got}, its comment says ${want}`);
        checked++;
      }
    }
  }
  assert(checked >= 3, `only ${checked} commented outputs checked`);
});

Deno.test("the custom_policy notebook's step8 keeps the 8 tokens its text promises", () => {
  const nb = JSON.parse(read("notebooks/custom_policy.ipynb")) as {
    cells: { cell_type: string; source: string | string[] }[];
  };
  const src = (c: { source: string | string[] }) =>
    Array.isArray(c.source) ? c.source.join("") : c.source;
  const md = nb.cells.filter((c) => c.cell_type === "markdown").map(src).join("\n");
  assert(/`step8`: full depth for the first 8 generated tokens/.test(md), "the promise moved");
  const code = nb.cells.filter((c) => c.cell_type === "code").map(src).join("\n");
  const def = code.match(/const step8 = (customPolicy\(\{[\s\S]*?\n\}\));/);
  assert(def, "no step8 definition in the notebook");
  const step8 = new Function("customPolicy", "skipDecodeSet", `return ${def[1]};`)(
    customPolicy,
    skipDecodeSet,
  );
  for (const P of [1, 6, 9]) {
    const g = plan(step8, { layers: 12, promptLength: P, maxNewTokens: 12 }).generatedLayers;
    assertEquals(g.slice(0, 8), Array(8).fill(12), `P = ${P}`);
    assert(g[8] < 12, `P = ${P}: token 8 still at full depth: ${g}`);
  }
});

Deno.test("per-position charts label their x axis with the generated token i", () => {
  const title = (f: { layout: Record<string, unknown> }) =>
    ((f.layout.xaxis as { title?: { text?: string } }).title?.text) ?? "";
  const figs = [
    budgetChart([{ name: "a", budgets: [12, 6] }], { layers: 12 }),
    nllGapChart([{ name: "a", gap: [0.1, 0.2] }]),
    oracleDepthChart([[3, 4], [2]], { layers: 12 }),
  ];
  for (const f of figs) assertEquals(title(f), "generated token i");
  assert(fileURLToPath(ROOT).length > 0);
});
