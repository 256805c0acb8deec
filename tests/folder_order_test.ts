/**
 * The folders' floors (docs/ARCHITECTURE.md, "Floors"): every import of every TypeScript file
 * in the tree is read (comments and JSDoc examples left out, dynamic `import("...")` and
 * `deno.json` import-map names included) and must point to the same folder or a folder on a
 * lower floor. Two folders on one floor are independent: neither imports the other. Test code
 * (`tests/`, any `*_test.ts`), the root `mod.ts` and `notebooks/` sit above every floor and
 * may import anything; no folder imports the root `mod.ts`. A new top-level folder must be put
 * on a floor before its files pass.
 *
 * The checker is tested too, in memory: a planted import that runs back up, a peer import, an
 * unknown folder and an import of the root `mod.ts` each fail with a one-line message naming
 * the file, the line and the floors; imports inside comments and strings of examples do not.
 *
 * @module
 */
import { assert, assertEquals } from "@std/assert";

/** The repository root: the nearest folder above this file that holds `deno.json`. */
function findRoot(): string {
  let dir = decodeURIComponent(new URL(".", import.meta.url).pathname).replace(/\/$/, "");
  for (;;) {
    try {
      Deno.statSync(`${dir}/deno.json`);
      return dir;
    } catch {
      const up = dir.slice(0, dir.lastIndexOf("/"));
      if (!up || up === dir) throw new Error("folder_order_test: no deno.json above this file");
      dir = up;
    }
  }
}

const ROOT = findRoot();
/** Top-level folders that hold no library code (never walked). */
const NOT_CODE = new Set([
  ".git",
  ".cache",
  ".device",
  "node_modules",
  "out",
  "reports",
  "bundled",
  "docs",
  "notebooks",
  "tests",
]);

/**
 * Reads the floors from the fenced block after the "Floors" heading of docs/ARCHITECTURE.md:
 * `std < model < ... < cli`, low to high, with `|` between folders sharing a floor.
 */
export function parseFloors(doc: string): string[][] {
  const m = /^## Floors\b[\s\S]*?```[a-z]*\n([\s\S]*?)```/m.exec(doc);
  if (!m) throw new Error('docs/ARCHITECTURE.md: no "## Floors" section with a fenced block');
  const line = m[1].split("\n").find((l) => l.includes(" < "));
  if (!line) throw new Error("docs/ARCHITECTURE.md: the Floors block has no `a < b < ...` line");
  return line.trim().split(/\s*<\s*/).map((f) => f.split(/\s*\|\s*/).map((x) => x.trim()));
}

/**
 * The code of a TypeScript source with comments replaced by spaces and the text of template
 * literals blanked (newlines kept, so line numbers stay), quoted strings kept.
 */
export function stripComments(src: string): string {
  let out = "";
  let i = 0;
  const braces: number[] = []; // brace depth at each `${` still open
  let depth = 0;
  const blank = (s: string) => s.replace(/[^\n]/g, " ");
  const template = () => { // from just after a backtick or `}` of `${}` to its end or `${`
    while (i < src.length) {
      const c = src[i];
      if (c === "\\") {
        out += "  ";
        i += 2;
      } else if (c === "`") {
        out += "`";
        i++;
        return;
      } else if (c === "$" && src[i + 1] === "{") {
        out += "${";
        i += 2;
        braces.push(depth);
        depth++;
        return;
      } else {
        out += c === "\n" ? "\n" : " ";
        i++;
      }
    }
  };
  while (i < src.length) {
    const c = src[i];
    const two = src.slice(i, i + 2);
    if (two === "//") {
      const end = src.indexOf("\n", i);
      const stop = end < 0 ? src.length : end;
      out += blank(src.slice(i, stop));
      i = stop;
    } else if (two === "/*") {
      const end = src.indexOf("*/", i + 2);
      const stop = end < 0 ? src.length : end + 2;
      out += blank(src.slice(i, stop));
      i = stop;
    } else if (c === '"' || c === "'") {
      let j = i + 1;
      while (j < src.length && src[j] !== c && src[j] !== "\n") j += src[j] === "\\" ? 2 : 1;
      out += src.slice(i, j + 1);
      i = j + 1;
    } else if (c === "`") {
      out += "`";
      i++;
      template();
    } else if (c === "{") {
      depth++;
      out += c;
      i++;
    } else if (c === "}") {
      depth--;
      out += c;
      i++;
      if (braces.length && braces[braces.length - 1] === depth) {
        braces.pop();
        template();
      }
    } else {
      out += c;
      i++;
    }
  }
  return out;
}

/** One import of a file: the specifier as written and its line (1-based). */
export interface ImportSite {
  specifier: string;
  line: number;
}

const STATIC_IMPORT =
  /(?:^|[;\s])(?:import|export)\s+(?:type\s+)?(?:[\w$*{}\s,]+?\s+from\s*)?["']([^"'\n]+)["']/g;
const DYNAMIC_IMPORT = /\bimport\(\s*["']([^"'\n]+)["']\s*[,)]/g;

/** Every static, re-export and literal dynamic import of a source, comments left out. */
export function importSites(src: string): ImportSite[] {
  const code = stripComments(src);
  const sites: ImportSite[] = [];
  for (const re of [STATIC_IMPORT, DYNAMIC_IMPORT]) {
    for (const m of code.matchAll(re)) {
      const at = m.index! + m[0].lastIndexOf(m[1]);
      sites.push({ specifier: m[1], line: code.slice(0, at).split("\n").length });
    }
  }
  return sites.sort((a, b) => a.line - b.line);
}

/** A path with `.` and `..` steps resolved; `undefined` when it climbs out of the repository. */
function normalize(path: string): string | undefined {
  const parts: string[] = [];
  for (const p of path.split("/")) {
    if (p === "" || p === ".") continue;
    if (p === "..") {
      if (!parts.length) return undefined;
      parts.pop();
    } else parts.push(p);
  }
  return parts.join("/");
}

/** The repository path an import names, or `undefined` for packages and paths outside. */
export function resolveImport(
  from: string,
  specifier: string,
  importMap: Record<string, string>,
): string | undefined {
  let spec = specifier;
  let base = from.includes("/") ? from.slice(0, from.lastIndexOf("/")) : "";
  if (!spec.startsWith(".")) {
    const key = Object.keys(importMap).find((k) =>
      k === spec || (k.endsWith("/") && spec.startsWith(k))
    );
    if (key === undefined || !importMap[key].startsWith(".")) return undefined;
    spec = importMap[key] + spec.slice(key.length);
    base = "";
  }
  return normalize(`${base}/${spec}`);
}

/** Whether a file is test code (above every floor). */
function isTest(path: string): boolean {
  return path.startsWith("tests/") || /_test\.ts$/.test(path);
}

/**
 * The violations of the floors in a set of sources (`path -> text`, paths from the repository
 * root): one line each, naming the file, the line, the import and the floors.
 */
export function floorViolations(
  files: ReadonlyMap<string, string>,
  floors: readonly (readonly string[])[],
  importMap: Record<string, string>,
): string[] {
  const floorOf = new Map<string, number>();
  floors.forEach((peers, i) => peers.forEach((f) => floorOf.set(f, i)));
  const name = (folder: string) => `${folder}/ (floor ${floorOf.get(folder)! + 1})`;
  const out: string[] = [];
  for (const [path, src] of files) {
    if (!path.includes("/") || isTest(path)) continue; // root files, tests: above every floor
    const folder = path.slice(0, path.indexOf("/"));
    if (!floorOf.has(folder)) {
      out.push(
        `${path}: folder ${folder}/ is on no floor: add it to the Floors line of docs/ARCHITECTURE.md`,
      );
      continue;
    }
    for (const { specifier, line } of importSites(src)) {
      const target = resolveImport(path, specifier, importMap);
      if (target === undefined) continue;
      const at = `${path}:${line}: imports "${specifier}"`;
      if (!target.includes("/")) {
        if (target === "deno.json") continue; // configuration read as data (the version)
        out.push(`${at}: the root ${target} sits above every floor; import the folder's mod.ts`);
        continue;
      }
      const to = target.slice(0, target.indexOf("/"));
      if (to === folder) continue;
      if (!floorOf.has(to)) {
        out.push(`${at}: ${to}/ is on no floor (tests and notebooks are above every floor)`);
      } else if (floorOf.get(to)! > floorOf.get(folder)!) {
        out.push(`${at}: runs back up from ${name(folder)} to ${name(to)}`);
      } else if (floorOf.get(to) === floorOf.get(folder)) {
        out.push(
          `${at}: ${folder}/ and ${to}/ share floor ${
            floorOf.get(to)! + 1
          }, so neither imports the other`,
        );
      }
    }
  }
  return out;
}

/** Every `.ts` file of the tree outside the non-code folders, by repository path. */
function readTree(): Map<string, string> {
  const files = new Map<string, string>();
  const walk = (rel: string) => {
    for (const e of Deno.readDirSync(rel ? `${ROOT}/${rel}` : ROOT)) {
      const path = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory && !(rel === "" && NOT_CODE.has(e.name))) walk(path);
      else if (e.isFile && e.name.endsWith(".ts")) {
        files.set(path, Deno.readTextFileSync(`${ROOT}/${path}`));
      }
    }
  };
  walk("");
  return files;
}

const IMPORT_MAP: Record<string, string> =
  JSON.parse(Deno.readTextFileSync(`${ROOT}/deno.json`)).imports ?? {};
const FLOORS = parseFloors(Deno.readTextFileSync(`${ROOT}/docs/ARCHITECTURE.md`));

Deno.test("folder order: no import in the tree runs back up a floor (docs/ARCHITECTURE.md)", () => {
  const files = readTree();
  const violations = floorViolations(files, FLOORS, IMPORT_MAP);
  // What was read, for the record: the floors and each folder's arrows down.
  const arrows = new Map<string, Map<string, number>>();
  let imports = 0;
  for (const [path, src] of files) {
    if (!path.includes("/") || isTest(path)) continue;
    const from = path.slice(0, path.indexOf("/"));
    for (const { specifier } of importSites(src)) {
      const t = resolveImport(path, specifier, IMPORT_MAP);
      if (t === undefined) continue;
      imports++;
      const to = t.includes("/") ? t.slice(0, t.indexOf("/")) : t;
      if (to === from) continue;
      const m = arrows.get(from) ?? new Map<string, number>();
      m.set(to, (m.get(to) ?? 0) + 1);
      arrows.set(from, m);
    }
  }
  console.log(`floors: ${FLOORS.map((f) => f.join(" | ")).join(" < ")}`);
  console.log(`${files.size} files, ${imports} imports inside the repository`);
  for (const peers of FLOORS) {
    for (const f of peers) {
      const m = arrows.get(f);
      const list = m ? [...m].map(([to, n]) => `${to} ${n}`).join(", ") : "nothing outside it";
      console.log(`  ${f}/ -> ${list}`);
    }
  }
  assertEquals(violations, [], `${violations.length} imports break the floors`);
  // Every floor folder exists, and the README's layout table names it.
  const readme = Deno.readTextFileSync(`${ROOT}/README.md`);
  for (const f of FLOORS.flat()) {
    assert(Deno.statSync(`${ROOT}/${f}`).isDirectory, `docs/ARCHITECTURE.md: no folder ${f}/`);
    assert(readme.includes(`| \`${f}/\``), `README.md: the layout table does not name ${f}/`);
  }
});

Deno.test("folder order: the checker fails on planted violations, in memory", () => {
  const floors = [["std"], ["model"], ["kernels"], ["train", "decode"], ["experiments"]];
  const ok = new Map([
    ["model/a.ts", "export const a = 1;\n"],
    ["kernels/k.ts", 'import { a } from "../model/a.ts";\nimport { x } from "@std/assert";\n'],
    [
      "train/t.ts",
      [
        "/**",
        " * @example",
        " * ```ts",
        ' * import { s } from "../experiments/sweep.ts";',
        " * ```",
        " */",
        'import type { K } from "../kernels/k.ts";',
        'const s = "import { d } from \'../decode/d.ts\'".length; // import "../experiments/sweep.ts"',
        'const t = `import("../experiments/sweep.ts")`;',
      ].join("\n"),
    ],
    [
      "experiments/sweep.ts",
      'export * from "../train/t.ts";\nconst v = await import("../deno.json");\n',
    ],
    ["tests/x_test.ts", 'import "../mod.ts";\nimport "../experiments/sweep.ts";\n'],
    ["mod.ts", 'export * from "./experiments/sweep.ts";\n'],
  ]);
  const map = { "@std/assert": "./std/assert.ts" };
  assertEquals(floorViolations(ok, floors, map), [], "comments, strings and tests are no arrows");
  const planted = (path: string, src: string) =>
    floorViolations(new Map([...ok, [path, src]]), floors, map);
  assertEquals(planted("model/up.ts", '\n\nimport { s } from "../experiments/sweep.ts";\n'), [
    'model/up.ts:3: imports "../experiments/sweep.ts": runs back up from model/ (floor 2) to ' +
    "experiments/ (floor 5)",
  ]);
  assertEquals(planted("kernels/dyn.ts", 'const m = await import(\n  "../train/t.ts"\n);'), [
    'kernels/dyn.ts:2: imports "../train/t.ts": runs back up from kernels/ (floor 3) to ' +
    "train/ (floor 4)",
  ]);
  assertEquals(planted("train/peer.ts", 'export { d } from "../decode/d.ts";'), [
    'train/peer.ts:1: imports "../decode/d.ts": train/ and decode/ share floor 4, so ' +
    "neither imports the other",
  ]);
  assertEquals(planted("decode/root.ts", 'import * as all from "../mod.ts";'), [
    'decode/root.ts:1: imports "../mod.ts": the root mod.ts sits above every floor; import ' +
    "the folder's mod.ts",
  ]);
  assertEquals(planted("serve/s.ts", 'import { a } from "../model/a.ts";'), [
    "serve/s.ts: folder serve/ is on no floor: add it to the Floors line of docs/ARCHITECTURE.md",
  ]);
  assertEquals(planted("model/t.ts", 'import { h } from "../tests/helpers.ts";'), [
    'model/t.ts:1: imports "../tests/helpers.ts": tests/ is on no floor (tests and notebooks ' +
    "are above every floor)",
  ]);
  // An import-map name resolves to the file it maps to, and is held to the same floors.
  assertEquals(planted("std/s.ts", 'import { x } from "@std/assert";'), []);
  assertEquals(
    floorViolations(new Map([...ok, ["std/assert.ts", 'import "../kernels/k.ts";']]), floors, {
      "@std/": "./std/",
    }),
    ['std/assert.ts:1: imports "../kernels/k.ts": runs back up from std/ (floor 1) to kernels/ (floor 3)'],
  );
  // The floors line parses low to high, peers with `|`.
  assertEquals(
    parseFloors("# x\n## Floors\n\n```\nstd < model | plots < cli\n```\n"),
    [["std"], ["model", "plots"], ["cli"]],
  );
});
