/**
 * The repository's text stays true to the tree: every source or document file name
 * (`*.ts`, `*.wgsl`, `*.md`, `*.py`, `*.sh`, `*.ipynb`) cited in a TypeScript comment (the
 * WGSL comments in its strings too), a document, a WGSL, Python or shell file or a notebook
 * exists, and no tracked text holds a path of the machine that wrote it (the workspace, the
 * home folders of root or a user, a temporary folder with a run's random suffix, any temporary
 * folder in a notebook's saved outputs).
 *
 * How a cited name resolves: relative to the citing file's folder, or to the repository root;
 * a bare name (no `/`) may be any file of the repository; a name with `*` is a pattern that
 * must match at least one file; `../shared/...` names the optional test material beside the
 * repository and is not checked. {@linkcode NOT_IN_TREE} lists the names that are not the
 * repository's files on purpose (files the project writes, other projects' sources).
 */
import { assert, assertEquals } from "@std/assert";

const ROOT = decodeURIComponent(new URL("../", import.meta.url).pathname).replace(/\/$/, "");
/** Names of files the project writes (into an output folder, under any path). */
const OUTPUTS: Record<string, string> = {
  "report.md": "written by sweep, procedure and demo into their --out folder",
  "decode.md": "written by deno task bench into its --out folder",
  "serve.md": "written by deno task bench --serve into its --out folder",
  "speculative.md": "written by sweep --speculative and deno task bench --speculative",
  "train.md": "written by deno task bench --train into its --out folder",
  "roofline.md": "written by bench/device_bench.sh into $OUT",
  "scale.md": "written by deno task bench --scale into its --out folder",
  "kv_dtype.md": "written by deno task bench --kv-dtype into its --out folder",
};
/** Folders that are not part of the tree (ignored outputs, caches, dependencies). */
const SKIP_DIRS = new Set([".git", "node_modules", "out", "reports", ".cache", ".device"]);
/** Text files scanned (by extension; files without one, such as `.ci/run`, too). */
const TEXT = /\.(ts|wgsl|md|py|sh|ipynb|json|yml|yaml|toml|txt)$|(^|\/)[^./]+$/;

/**
 * Cited names that are not files of this repository on purpose, with why. A stale reference
 * must be fixed, not added here.
 */
const NOT_IN_TREE: Record<string, string> = {
  "sacrebleu/metrics/bleu.py": "sacrebleu's source, which eval/bleu.ts follows",
  "sacrebleu/tokenizers/tokenizer_13a.py": "sacrebleu's source",
  "tokenizer_re.py": "sacrebleu's source",
  "test/test_bleu.py": "sacrebleu's tests, which tests/eval_bleu_test.ts follows",
  "test_bleu.py": "sacrebleu's tests",
  "rouge/rouge_scorer.py": "Google's rouge-score source, which eval/rouge.ts follows",
  "rouge/tokenize.py": "rouge-score's source",
  "rouge/rouge_scorer_test.py": "rouge-score's tests",
  "plotly.py": "the Python Plotly library",
  "my_policy.ts": "a user's policy file in the --policy-file examples",
  "mine.ts": "a user's policy file in the --policy-file examples",
  "FILE.ts": "the value name of --policy-file in help texts",
  "my_study.ts": "a user's script importing mod.ts in the README",
};

interface TextFile {
  /** Path relative to the repository root. */
  rel: string;
  text: string;
}

function walk(dir = "", out: TextFile[] = []): TextFile[] {
  for (const e of Deno.readDirSync(dir ? `${ROOT}/${dir}` : ROOT)) {
    const rel = dir ? `${dir}/${e.name}` : e.name;
    if (e.isDirectory) {
      if (!SKIP_DIRS.has(e.name)) walk(rel, out);
    } else if (e.isFile && TEXT.test(rel) && !rel.endsWith(".lock")) {
      const bytes = Deno.readFileSync(`${ROOT}/${rel}`);
      if (bytes.length > 4_000_000 || bytes.includes(0)) continue; // data, not text
      out.push({ rel, text: new TextDecoder().decode(bytes) });
    }
  }
  return out;
}

const FILES = walk();
const SELF = "tests/repo_hygiene_test.ts";
const PATHS = new Set(FILES.map((f) => f.rel));
const ALL = new Set<string>();
const BASENAMES = new Set<string>();
(function every(dir: string) {
  for (const e of Deno.readDirSync(dir ? `${ROOT}/${dir}` : ROOT)) {
    const rel = dir ? `${dir}/${e.name}` : e.name;
    if (e.isDirectory && !SKIP_DIRS.has(e.name)) every(rel);
    else if (!e.isDirectory) {
      ALL.add(rel);
      BASENAMES.add(e.name);
    }
  }
})("");

/** `a/b/../c` to `a/c`; `null` when it climbs above the root. */
function normalize(path: string): string | null {
  const parts: string[] = [];
  for (const p of path.split("/")) {
    if (p === "" || p === ".") continue;
    if (p === "..") {
      if (!parts.length) return null;
      parts.pop();
    } else parts.push(p);
  }
  return parts.join("/");
}

/** Whether a name cited in `from` (a repository-relative file) resolves, see the module doc. */
function resolves(name: string, from: string): boolean {
  if (name in NOT_IN_TREE || name.startsWith("../shared/")) return true;
  if (name.split("/").at(-1)! in OUTPUTS) return true;
  if (name.includes("*")) {
    const re = new RegExp(
      `(^|/)${name.replace(/[.+?^${}()|[\]\\]/g, "\\$&").replace(/\*/g, "[^/]*")}$`,
    );
    return [...ALL].some((p) => re.test(p));
  }
  const dir = from.includes("/") ? from.slice(0, from.lastIndexOf("/")) : "";
  const here = normalize(dir ? `${dir}/${name}` : name);
  const fromRoot = normalize(name);
  if ((here !== null && ALL.has(here)) || (fromRoot !== null && ALL.has(fromRoot))) return true;
  return !name.includes("/") && BASENAMES.has(name);
}

/**
 * The comments of a TypeScript module (WGSL comments inside its strings included), everything
 * else blanked with line breaks kept: the names in its code are test data or output names.
 */
function commentsOnly(text: string): string {
  const out = text.replace(/[^\n]/g, " ").split("");
  for (const m of text.matchAll(/\/\*[\s\S]*?\*\/|(?<![:\\])\/\/[^\n]*/g)) {
    for (let i = 0; i < m[0].length; i++) out[m.index! + i] = m[0][i];
  }
  return out.join("");
}

/**
 * File names cited in a text: `path/name.ext` with a source or document extension (not a
 * suffix such as `"_test.ts"`, which starts with `_`).
 */
const CITED =
  /(?<![\w./@:\\-])((?:\.\.?\/)*[A-Za-z0-9*][\w*./-]*\.(?:ts|wgsl|md|py|ipynb|sh))(?![\w-])/g;

Deno.test("every source or document file name cited in the tree exists", () => {
  assert(PATHS.has(SELF), "the walk missed this file");
  assert(FILES.length > 100, `only ${FILES.length} text files found`);
  const stale: string[] = [];
  let cited = 0;
  for (const { rel, text } of FILES) {
    if (rel === SELF) continue; // its names are the self-check's test data
    const scanned = rel.endsWith(".ts") ? commentsOnly(text) : text;
    scanned.split("\n").forEach((line, i) => {
      for (const m of line.matchAll(CITED)) {
        const name = m[1].replace(/\.$/, "");
        if (/^https?:|^npm:|^node:/.test(line.slice(Math.max(0, m.index! - 8), m.index))) continue;
        cited++;
        if (!resolves(name, rel)) stale.push(`${rel}:${i + 1}: ${name}`);
      }
    });
  }
  assert(cited > 500, `only ${cited} cited names found: the pattern is broken`);
  assertEquals(stale, [], "file names that no longer exist (fix the reference)");
});

Deno.test("the reference check catches a stale name and accepts the forms in use", () => {
  assert(!resolves("attention_wgsl.ts", "kernels/attention/mod.ts"), "a gone file");
  assert(!resolves("kernels/attention/forward.wgsl", "README.md"), "a gone path");
  assert(!resolves("tests/nothing_*_test.ts", "README.md"), "a pattern matching nothing");
  assert(resolves("wgsl.ts", "kernels/attention/mod.ts"), "beside the citing file");
  assert(resolves("../batch.ts", "backend/cpu/backend.ts"), "relative");
  assert(resolves("kernels/attention/wgsl.ts", "README.md"), "from the root");
  assert(resolves("tests/kernels_*_test.ts", "tests/webgpu_helpers.ts"), "a pattern");
  const found = [..."see `kernels/select/wgsl.ts` and ../x/y.md, npm:a.ts".matchAll(CITED)]
    .map((m) => m[1]);
  assertEquals(found, ["kernels/select/wgsl.ts", "../x/y.md"]);
  const code = 'f("a.ts"); // b.ts\nconst w = `\n  // c.wgsl\n`; /* d.md */ g("https://e.md");';
  const names = [...commentsOnly(code).matchAll(CITED)].map((m) => m[1]);
  assertEquals(names, ["b.ts", "c.wgsl", "d.md"], "comments only, WGSL ones included");
  assertEquals(commentsOnly(code).split("\n").length, code.split("\n").length, "lines kept");
});

// Built from pieces so that this file does not match itself.
const MACHINE_PATHS = [
  new RegExp(`(?<![\\w.~-])/(${["wo" + "rk", "ro" + "ot", "ho" + "me"].join("|")})/[\\w.-]`),
  // A temporary folder named by a run: a random hexadecimal suffix of 8 or more digits.
  new RegExp(`/${"tm" + "p"}/[\\w.=-]*?[-_.]?[0-9a-f]{8,}\\b`),
];

/** Machine paths in a text: each `line: match`. */
function machinePaths(text: string, notebook: boolean): string[] {
  const out: string[] = [];
  text.split("\n").forEach((line, i) => {
    const patterns = notebook ? [...MACHINE_PATHS, new RegExp(`/${"tm" + "p"}/`)] : MACHINE_PATHS;
    for (const re of patterns) {
      const m = line.match(re);
      if (m) {
        out.push(`${i + 1}: ${m[0]}`);
        break;
      }
    }
  });
  return out;
}

Deno.test("no tracked text holds a path of the machine that wrote it", () => {
  const found: string[] = [];
  for (const { rel, text } of FILES) {
    for (const hit of machinePaths(text, rel.endsWith(".ipynb"))) found.push(`${rel}:${hit}`);
  }
  assertEquals(found, [], "absolute paths of one machine (write them relative to the repo)");
});

Deno.test("the machine-path check catches what it must and lets examples be", () => {
  const slash = "/";
  const bad = [
    `Data: ${slash}work${slash}shared/data/e2e/testset-part2.csv`,
    `saved ${slash}tmp${slash}procedure-nb-79242d17bc7e9dce/01`,
    `${slash}root${slash}.cache/huggingface`,
    `${slash}home${slash}me/.cache`,
  ];
  for (const line of bad) assertEquals(machinePaths(line, false).length, 1, line);
  assertEquals(machinePaths(`in ${slash}tmp${slash}x`, true).length, 1, "any tmp in a notebook");
  const fine = [`--out ${slash}tmp${slash}skipdecode-not-allowed`, "~/.cache/x", "../shared/a"];
  for (const line of fine) assertEquals(machinePaths(line, false), [], line);
});
