/**
 * The hub path for repositories that hold only PyTorch `.bin` weights, as the facebook/opt-*
 * repositories do, against a local server (127.0.0.1) that mimics huggingface.co: the
 * fallback order of transformers, single and sharded `.bin`, progress, and a weight
 * download cut short that resumes with a `Range` request (or restarts when the server
 * ignores ranges).
 */
import { assert, assertEquals, assertStringIncludes } from "@std/assert";
import { createCpuBackend } from "../backend/cpu/backend.ts";
import { loadWeights } from "../model/checkpoint.ts";
import { type DownloadProgress, resolveModel } from "../model/hub.ts";
import { fullPlan } from "./webgpu_helpers.ts";
import { missingShared, sharedPath } from "./helpers.ts";
import { assertCheckpointError, withTempDir } from "./model_test_helpers.ts";

const COMMIT = "89abcdef0123456789abcdef0123456789abcdef";

/** The PyTorch fixtures live only in ../shared: without it these tests are skipped loudly. */
const NO_FIXTURES = missingShared("fixtures/torch-bin");

interface BinHub {
  endpoint: string;
  requests: string[];
  close(): Promise<void>;
}

/**
 * Serves folders as repositories. `cutAfter[file]`: the first GET of that file sends only
 * so many bytes, then breaks the connection. `ranges`: honour `Range: bytes=N-`.
 */
function binHub(
  repos: Record<string, string>,
  opts: { cutAfter?: Record<string, number>; ranges?: boolean } = {},
): BinHub {
  const requests: string[] = [];
  const cut = new Map(Object.entries(opts.cutAfter ?? {}));
  const server = Deno.serve({ port: 0, hostname: "127.0.0.1", onListen() {} }, (req) => {
    const url = new URL(req.url);
    const range = req.headers.get("range");
    requests.push(`${req.method} ${url.pathname}${range ? ` ${range}` : ""}`);
    const m = url.pathname.match(/^\/([^/]+\/[^/]+)\/resolve\/([^/]+)\/(.+)$/);
    const root = m ? repos[m[1]] : undefined;
    if (!m || root === undefined) return new Response("no repo", { status: 404 });
    const file = m[3];
    const headers: Record<string, string> = { "x-repo-commit": COMMIT };
    let bytes: Uint8Array<ArrayBuffer>;
    try {
      bytes = Deno.readFileSync(`${root}/${file}`);
    } catch {
      return new Response("Entry not found", { status: 404, headers });
    }
    let start = 0;
    let status = 200;
    const r = range?.match(/^bytes=(\d+)-$/);
    if (r && opts.ranges) {
      start = Number(r[1]);
      if (start >= bytes.length) return new Response(null, { status: 416, headers });
      status = 206;
      headers["content-range"] = `bytes ${start}-${bytes.length - 1}/${bytes.length}`;
    }
    const body = bytes.subarray(start);
    headers["content-length"] = String(body.byteLength);
    const limit = cut.get(file);
    if (limit !== undefined && req.method === "GET") {
      cut.delete(file);
      const stream = new ReadableStream<Uint8Array>({
        start(c) {
          c.enqueue(body.slice(0, limit));
          // Let the bytes reach the client, then end the body short of its content-length.
          setTimeout(() => c.close(), 200);
        },
      });
      return new Response(stream, { status, headers });
    }
    return new Response(body, { status, headers });
  });
  return {
    endpoint: `http://127.0.0.1:${server.addr.port}`,
    requests,
    close: () => server.shutdown(),
  };
}

async function lastLogits(dir: string): Promise<Float32Array> {
  const w = await loadWeights(dir);
  const cpu = createCpuBackend(w);
  try {
    const ids = [2, 17, 404, 9];
    const sets = fullPlan(w.config.numHiddenLayers, ids.length);
    return (await cpu.forward({ rows: [ids], sets, padTokenId: 1 })).logits;
  } finally {
    cpu.dispose();
  }
}

Deno.test("hub .bin: single and sharded .bin-only repositories download, load, cache", {
  ignore: NO_FIXTURES,
}, async () => {
  await withTempDir(async (tmp) => {
    const single = sharedPath("fixtures/torch-bin/pre-ln-zip");
    const sharded = sharedPath("fixtures/torch-bin/pre-ln-sharded");
    const hub = binHub({ "facebook/opt-single": single, "facebook/opt-sharded": sharded });
    const progress: DownloadProgress[] = [];
    const opts = {
      endpoint: hub.endpoint,
      cacheDir: `${tmp}/cache`,
      offline: false,
      progress: (p: DownloadProgress) => progress.push(p),
    };
    try {
      const a = await resolveModel("facebook/opt-single", opts);
      assertEquals(a.source, "download");
      assertEquals(a.downloaded, ["config.json", "pytorch_model.bin"]);
      // transformers' order: safetensors, its index, then the .bin.
      const weightsAsked = hub.requests.filter((r) => /model/.test(r) && !/config/.test(r))
        .map((r) => r.split("/").pop());
      assertEquals(weightsAsked, [
        "model.safetensors",
        "model.safetensors.index.json",
        "pytorch_model.bin",
      ]);
      assertEquals(
        Deno.readFileSync(`${a.dir}/pytorch_model.bin`),
        Deno.readFileSync(`${single}/pytorch_model.bin`),
      );
      assertEquals(await lastLogits(a.dir), await lastLogits(single));
      const done = progress.filter((p) => p.file === "pytorch_model.bin" && p.done);
      assertEquals(done.length, 1);
      assertEquals(done[0].received, Deno.statSync(`${single}/pytorch_model.bin`).size);

      const b = await resolveModel("facebook/opt-sharded", opts);
      assertEquals(b.downloaded, [
        "config.json",
        "pytorch_model.bin.index.json",
        "pytorch_model-00001-of-00002.bin",
        "pytorch_model-00002-of-00002.bin",
      ]);
      const w = await loadWeights(b.dir);
      assert(w.sharded && w.format === "bin");
      assertEquals(await lastLogits(b.dir), await lastLogits(sharded));

      // Both are cached now: no request, also offline.
      const n = hub.requests.length;
      const again = await resolveModel("facebook/opt-sharded", { ...opts, offline: true });
      assertEquals([again.source, again.dir], ["cache", b.dir]);
      assertEquals(hub.requests.length, n);
    } finally {
      await hub.close();
    }
  });
});

Deno.test("hub .bin: a weight download cut short resumes with Range, or restarts cleanly", {
  ignore: NO_FIXTURES,
}, async () => {
  await withTempDir(async (tmp) => {
    const single = sharedPath("fixtures/torch-bin/pre-ln-zip");
    const size = Deno.statSync(`${single}/pytorch_model.bin`).size;
    for (const ranges of [true, false]) {
      const hub = binHub({ "o/m": single }, { cutAfter: { "pytorch_model.bin": 100_000 }, ranges });
      const opts = {
        endpoint: hub.endpoint,
        cacheDir: `${tmp}/cache-${ranges}`,
        offline: false,
        progress: false,
      };
      try {
        const e = await assertCheckpointError(
          () => resolveModel("o/m", opts),
          "network",
          "cannot download pytorch_model.bin of o/m",
          "the next attempt resumes",
        );
        assertStringIncludes(e.message, "100000 bytes kept");
        const snap = `${tmp}/cache-${ranges}/models--o--m/snapshots/${COMMIT}`;
        assertEquals(Deno.statSync(`${snap}/pytorch_model.bin.incomplete`).size, 100_000);
        const r = await resolveModel("o/m", opts);
        const last = hub.requests.filter((x) => x.includes("pytorch_model.bin")).at(-1)!;
        assertStringIncludes(last, "bytes=100000-");
        assertEquals(Deno.statSync(`${r.dir}/pytorch_model.bin`).size, size);
        assertEquals(
          Deno.readFileSync(`${r.dir}/pytorch_model.bin`),
          Deno.readFileSync(`${single}/pytorch_model.bin`),
          ranges ? "resumed" : "restarted",
        );
        assertEquals(
          [...Deno.readDirSync(r.dir)].filter((f) => f.name.endsWith(".incomplete")),
          [],
        );
        assertEquals(await lastLogits(r.dir), await lastLogits(single));
      } finally {
        await hub.close();
      }
    }
  });
});
