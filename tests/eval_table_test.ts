/**
 * Own data: CSV, TSV, JSONL and Parquet tables (Parquet written here with
 * `hyparquet-writer`), column mapping, several references per input, templates, format
 * mismatch messages, truncation to the position table, and `hf:` dataset splits
 * downloaded from a local server that mimics the hub (listing, resume, offline).
 */
import { assert, assertEquals, assertRejects, assertStringIncludes } from "@std/assert";
import { parquetWriteBuffer } from "hyparquet-writer";
import { DataError } from "../data/datasets.ts";
import { loadTable, tableItems, truncateItems } from "../data/table.ts";
import { parseDatasetId, resolveDataset } from "../model/hub.ts";
import { CheckpointError } from "../model/errors.ts";
import { withTempDir } from "./model_test_helpers.ts";

/** The same small summarization set in every format: two refs for the first article. */
const ROWS = [
  { id: 1, article: 'A long, "quoted" article\nwith a line break.', highlights: "one" },
  { id: 2, article: "Second article.", highlights: "two" },
  { id: 1, article: 'A long, "quoted" article\nwith a line break.', highlights: "uno" },
];
const WANT = [
  { input: ROWS[0].article, refs: ["one", "uno"], prompt: `summarize: ${ROWS[0].article}\n` },
  { input: "Second article.", refs: ["two"], prompt: "summarize: Second article.\n" },
];

function quote(s: string | number, sep: string): string {
  const t = String(s);
  return t.includes(sep) || t.includes('"') || t.includes("\n")
    ? `"${t.replaceAll('"', '""')}"`
    : t;
}

function writeAll(dir: string): Record<string, string> {
  const delimited = (sep: string) =>
    ["id", "article", "highlights"].join(sep) + "\n" +
    ROWS.map((r) => [r.id, r.article, r.highlights].map((v) => quote(v, sep)).join(sep)).join(
      "\n",
    ) + "\n";
  const files = {
    csv: `${dir}/d.csv`,
    tsv: `${dir}/d.tsv`,
    jsonl: `${dir}/d.jsonl`,
    parquet: `${dir}/d.parquet`,
  };
  Deno.writeTextFileSync(files.csv, delimited(","));
  Deno.writeTextFileSync(files.tsv, delimited("\t"));
  Deno.writeTextFileSync(files.jsonl, ROWS.map((r) => JSON.stringify(r)).join("\n") + "\n");
  Deno.writeFileSync(files.parquet, parquetBytes(ROWS));
  return files;
}

function parquetBytes(rows: { id: number; article: string; highlights: string }[]): Uint8Array {
  return new Uint8Array(parquetWriteBuffer({
    columnData: [
      { name: "id", data: rows.map((r) => r.id), type: "INT32" },
      { name: "article", data: rows.map((r) => r.article), type: "STRING" },
      { name: "highlights", data: rows.map((r) => r.highlights), type: "STRING" },
    ],
  }));
}

Deno.test("own data: CSV, TSV, JSONL and Parquet give the same items; columns, template", async () => {
  await withTempDir(async (dir) => {
    const files = writeAll(dir);
    for (const [format, path] of Object.entries(files)) {
      const table = await loadTable(path);
      assertEquals(table.format, format);
      assertEquals(table.columns, ["id", "article", "highlights"], format);
      const items = tableItems(table, { template: "summarize: {input}\n" });
      assertEquals(items.map(({ input, refs, prompt }) => ({ input, refs, prompt })), WANT, format);
      // Explicit columns and another column's placeholder.
      const byId = tableItems(table, {
        inputColumn: "article",
        refColumn: "highlights",
        template: "[{id}] {input}",
      });
      assertEquals(byId[1].prompt, "[2] Second article.", format);
      // A bad column names itself and lists those present.
      const e = (() => {
        try {
          tableItems(table, { inputColumn: "text_body" });
        } catch (e) {
          return e as Error;
        }
      })();
      assert(e instanceof DataError, format);
      assertStringIncludes(e.message, '"text_body" is not a column');
      assertStringIncludes(e.message, '"id", "article", "highlights"');
      // An unknown placeholder names itself.
      try {
        tableItems(table, { template: "summarize: {body}\n" });
        throw new Error("no error");
      } catch (e) {
        assertStringIncludes((e as Error).message, "{body}");
        assertStringIncludes((e as Error).message, "columns: id, article, highlights");
      }
    }
  });
});

Deno.test("own data: list references, defaults, format mismatches get a helpful message", async () => {
  await withTempDir(async (dir) => {
    Deno.writeTextFileSync(
      `${dir}/l.jsonl`,
      '{"prompt": "P:", "refs": ["a", "b"]}\n{"prompt": "Q:", "refs": ["c"]}\n',
    );
    const items = tableItems(await loadTable(`${dir}/l.jsonl`));
    assertEquals(items.map((i) => [i.prompt, i.refs]), [["P:", ["a", "b"]], ["Q:", ["c"]]]);
    // The E2E layout keeps working through the same path ({mr} is the input column).
    Deno.writeTextFileSync(`${dir}/e.csv`, "mr,ref\nname[X],X.\nname[X],Y.\n");
    const e2e = tableItems(await loadTable(`${dir}/e.csv`), { template: "Data: {mr}\n" });
    assertEquals(e2e.map((i) => [i.prompt, i.refs]), [["Data: name[X]\n", ["X.", "Y."]]]);
    // Mismatches: a TSV named .csv, a CSV named .tsv, CSV named .jsonl, Parquet named .csv.
    const cases: [string, string | Uint8Array, RegExp][] = [
      ["t.csv", "mr\tref\na\tb\n", /looks like tab-separated: name it \.tsv/],
      ["c.tsv", "mr,ref\na,b\n", /looks like comma-separated: name it \.csv/],
      ["c.jsonl", "mr,ref\na,b\n", /c\.jsonl:1: not JSON.*comma-separated: name it \.csv/],
      ["p.csv", parquetBytes(ROWS.slice(0, 1)), /Parquet file: name it \.parquet/],
      ["j.parquet", '{"a": 1}\n', /not a Parquet file.*JSON lines: name it \.jsonl/],
      ["x.xlsx", "a", /unknown data format "\.xlsx".*\.csv, \.tsv, \.jsonl and \.parquet/],
      ["short.csv", "mr,ref\na\n", /line 2: 1 fields, the header has 2/],
      ["empty.csv", "mr,ref\n,b\n", /line 2: empty or non-text "mr"/],
    ];
    for (const [name, body, pattern] of cases) {
      const path = `${dir}/${name}`;
      if (typeof body === "string") Deno.writeTextFileSync(path, body);
      else Deno.writeFileSync(path, body);
      const err = await (async () => tableItems(await loadTable(path)))().then(
        () => undefined,
        (e) => e as Error,
      );
      assert(err instanceof DataError, `${name}: ${err}`);
      assert(pattern.test(err.message), `${name}: ${err.message}`);
      assertStringIncludes(err.message, name);
    }
  });
});

Deno.test("own data: a template column missing, null or not text in a row is an error naming the row and column", async () => {
  await withTempDir(async (dir) => {
    // An empty CSV cell is a text (""): the placeholder is filled with it.
    Deno.writeTextFileSync(`${dir}/ok.csv`, "input,ref,title\na,x,\n");
    const ok = tableItems(await loadTable(`${dir}/ok.csv`), { template: "[{title}] {input}" });
    assertEquals(ok.map((i) => i.prompt), ["[] a"]);
    const cases: [string, string | Uint8Array, RegExp][] = [
      [
        "missing.jsonl",
        '{"input": "a", "ref": "x", "title": "T"}\n{"input": "b", "ref": "y"}\n',
        /missing\.jsonl: line 2: .*\{title\}.*"title"/,
      ],
      [
        "list.jsonl",
        '{"input": "a", "ref": "x", "title": ["T"]}\n',
        /list\.jsonl: line 1: .*"title"/,
      ],
      [
        "null.parquet",
        new Uint8Array(parquetWriteBuffer({
          columnData: [
            { name: "input", data: ["a", "b"], type: "STRING" },
            { name: "ref", data: ["x", "y"], type: "STRING" },
            { name: "title", data: ["T", null], type: "STRING" },
          ],
        })),
        /null\.parquet: row 2: .*"title"/,
      ],
    ];
    for (const [name, body, pattern] of cases) {
      const path = `${dir}/${name}`;
      if (typeof body === "string") Deno.writeTextFileSync(path, body);
      else Deno.writeFileSync(path, body);
      const table = await loadTable(path);
      const err = (() => {
        try {
          tableItems(table, { template: "[{title}] {input}" });
        } catch (e) {
          return e as Error;
        }
      })();
      assert(err instanceof DataError, `${name}: no error (a prompt got "" for the cell)`);
      assert(pattern.test(err.message), `${name}: ${err.message}`);
    }
  });
});

Deno.test("own data: truncation keeps the start (right) or end (left), or names the item", () => {
  // A character tokenizer with a BOS of 0, like the model's (BOS on every encode).
  const tok = {
    encode: (s: string) => [0, ...[...s].map((c) => c.charCodeAt(0))],
    decode: (ids: number[]) => String.fromCharCode(...ids.filter((i) => i !== 0)),
  };
  const table = {
    source: "t.csv",
    format: "csv" as const,
    columns: ["article", "highlights"],
    rows: [{ article: "abcdefghij", highlights: "x" }, { article: "ab", highlights: "y" }],
    where: ["line 2", "line 3"],
  };
  const items = tableItems(table, { template: "S:{input}\n" });
  const right = truncateItems(items, tok, 8, "right");
  assertEquals(right.truncated, 1);
  assertEquals(right.items.map((i) => i.prompt), ["S:abcd\n", "S:ab\n"]);
  assertEquals(tok.encode(right.items[0].prompt).length, 8);
  assertEquals(truncateItems(items, tok, 8, "left").items[0].prompt, "S:ghij\n");
  try {
    truncateItems(items, tok, 8, "none");
    throw new Error("no error");
  } catch (e) {
    assert(e instanceof DataError);
    assertStringIncludes(e.message, "item 1");
    assertStringIncludes(e.message, "--truncate left");
  }
});

const SHA = "89abcdef0123456789abcdef0123456789abcdef";

/**
 * A local hub for datasets: the Parquet revision, the tree listing and resolve (with
 * `Range`), serving `files` (path to bytes); `cut` bytes of the first answer of a file are
 * all it sends (then it drops the connection), to test resume.
 */
function datasetHub(files: Record<string, Uint8Array>, cut?: number) {
  const requests: string[] = [];
  let cutDone = false;
  const server = Deno.serve({ port: 0, hostname: "127.0.0.1", onListen() {} }, (req) => {
    const url = new URL(req.url);
    const range = req.headers.get("range");
    requests.push(`${url.pathname}${range ? ` ${range}` : ""}`);
    const base = "/api/datasets/acme/cnn_mini";
    if (url.pathname === `${base}/revision/refs%2Fconvert%2Fparquet`) {
      return Response.json({ id: "acme/cnn_mini", sha: SHA });
    }
    const tree = url.pathname.match(new RegExp(`^${base}/tree/${SHA}/(.+)$`));
    if (tree) {
      const list = Object.keys(files).filter((p) => p.startsWith(`${tree[1]}/`));
      if (list.length === 0) return new Response("not found", { status: 404 });
      return Response.json(list.map((path) => ({ type: "file", path, size: files[path].length })));
    }
    const m = url.pathname.match(/^\/datasets\/acme\/cnn_mini\/resolve\/([^/]+)\/(.+)$/);
    if (!m || m[1] !== SHA || !files[m[2]]) return new Response("no", { status: 404 });
    const bytes = files[m[2]];
    const from = range ? Number(/bytes=(\d+)-/.exec(range)![1]) : 0;
    const body = bytes.subarray(from);
    const headers: Record<string, string> = {
      "x-repo-commit": SHA,
      "content-length": String(body.length),
    };
    if (from > 0) headers["content-range"] = `bytes ${from}-${bytes.length - 1}/${bytes.length}`;
    if (cut !== undefined && !cutDone) {
      cutDone = true;
      // Send the first `cut` bytes, then fail the stream: the client keeps them.
      const stream = new ReadableStream<Uint8Array>({
        start(c) {
          c.enqueue(body.slice(0, cut));
          setTimeout(() => c.error(new Error("connection dropped")), 300);
        },
      });
      return new Response(stream, { status: from > 0 ? 206 : 200, headers });
    }
    return new Response(body.slice(), { status: from > 0 ? 206 : 200, headers });
  });
  return {
    endpoint: `http://127.0.0.1:${server.addr.port}`,
    requests,
    close: () => server.shutdown(),
  };
}

Deno.test("hf: datasets: ids, download into the HF cache, resume, cache hit, offline", async () => {
  assertEquals(parseDatasetId("hf:acme/cnn_mini:test"), {
    repoId: "acme/cnn_mini",
    config: "default",
    split: "test",
  });
  assertEquals(parseDatasetId("hf:acme/cnn_mini:3.0.0:test")?.config, "3.0.0");
  assertEquals(parseDatasetId("data.csv"), undefined);
  for (const bad of ["hf:cnn_mini:test", "hf:acme/cnn_mini", "hf:a/b:c:d:e", "hf:a/b:../x:t"]) {
    let err: unknown;
    try {
      parseDatasetId(bad);
    } catch (e) {
      err = e;
    }
    assert(err instanceof CheckpointError, bad);
    assertStringIncludes((err as Error).message, "hf:OWNER/NAME[:CONFIG]:SPLIT");
  }
  await withTempDir(async (cache) => {
    const part1 = parquetBytes(ROWS.slice(0, 2));
    const part2 = parquetBytes(ROWS.slice(2));
    const files = {
      "default/test/0000.parquet": part1,
      "default/test/0001.parquet": part2,
      "default/train/0000.parquet": part2,
    };
    const hub = datasetHub(files, 100);
    const opts = { endpoint: hub.endpoint, cacheDir: cache, progress: false as const };
    try {
      // The first try is cut after 100 bytes: an error saying the bytes are kept.
      const first = await resolveDataset("hf:acme/cnn_mini:test", opts).catch((e) => e as Error);
      assert(first instanceof CheckpointError, String(first));
      assertStringIncludes(first.message, "100 bytes kept");
      const snap = `${cache}/datasets--acme--cnn_mini/snapshots/${SHA}`;
      assertEquals(Deno.statSync(`${snap}/default/test/0000.parquet.incomplete`).size, 100);
      // The second resumes from byte 100.
      const got = await resolveDataset("hf:acme/cnn_mini:test", opts);
      assertEquals(got.source, "download");
      assert(
        hub.requests.includes(
          `/datasets/acme/cnn_mini/resolve/${SHA}/default/test/0000.parquet bytes=100-`,
        ),
        hub.requests.join("\n"),
      );
      assertEquals(got.files, [
        `${snap}/default/test/0000.parquet`,
        `${snap}/default/test/0001.parquet`,
      ]);
      assertEquals(Deno.readFileSync(got.files[0]), part1);
      assertEquals(
        Deno.readTextFileSync(`${cache}/datasets--acme--cnn_mini/refs/refs/convert/parquet`),
        SHA,
      );
      // A cache hit touches no network; offline mode reads the cache.
      const before = hub.requests.length;
      assertEquals((await resolveDataset("hf:acme/cnn_mini:test", opts)).source, "cache");
      assertEquals(
        (await resolveDataset("hf:acme/cnn_mini:test", { ...opts, offline: true })).source,
        "cache",
      );
      assertEquals(hub.requests.length, before);
      // Read as one table through --data's loader: rows of both files, in order.
      const items = tableItems(
        await loadTable("hf:acme/cnn_mini:test", opts),
        { template: "summarize: {input}\n" },
      );
      assertEquals(items.map(({ input, refs, prompt }) => ({ input, refs, prompt })), WANT);
      // Offline without the split cached: an error naming the dataset; nothing requested.
      const off = await loadTable("hf:acme/cnn_mini:validation", { ...opts, offline: true })
        .catch((e) => e as Error);
      assert(off instanceof DataError);
      assertStringIncludes(off.message, "hf:acme/cnn_mini:validation");
      assertStringIncludes(off.message, "offline");
      assertEquals(hub.requests.length, before);
      // An unknown split: a 404 naming the listing.
      await assertRejects(
        () => resolveDataset("hf:acme/cnn_mini:validation", opts),
        CheckpointError,
        "no such dataset, config or split",
      );
    } finally {
      await hub.close();
    }
  });
});
