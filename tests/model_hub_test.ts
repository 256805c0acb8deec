/**
 * The hub resolver against a local HTTP server that mimics huggingface.co's
 * `/{org}/{name}/resolve/{rev}/{file}` (X-Repo-Commit header, 302 redirects for large
 * files, 404 for absent files), with the cache in a temp folder.
 */
import { assert, assertEquals, assertLess, assertStringIncludes } from "@std/assert";
import { loadWeights } from "../model/checkpoint.ts";
import { writeRandomCheckpoint } from "../model/fixture.ts";
import { type DownloadProgress, hubCacheDir, resolveModel } from "../model/hub.ts";
import { assertCheckpointError, sharedModelDir, withTempDir } from "./model_test_helpers.ts";
import { sharedPath } from "./helpers.ts";
import { plantSymlink } from "./plant_helpers.ts";

const COMMIT = "0123456789abcdef0123456789abcdef01234567";

interface FakeHub {
  endpoint: string;
  requests: string[];
  close(): Promise<void>;
}

/** Serves `repos[id]` folders as hub repositories. */
function fakeHub(repos: Record<string, string>, opts: { commitHeader?: boolean } = {}): FakeHub {
  const requests: string[] = [];
  const server = Deno.serve({ port: 0, hostname: "127.0.0.1", onListen() {} }, (req) => {
    const url = new URL(req.url);
    requests.push(`${req.method} ${url.pathname}`);
    const cdn = url.pathname.match(/^\/cdn\/([^/]+\/[^/]+)\/(.+)$/);
    const m = url.pathname.match(/^\/([^/]+\/[^/]+)\/resolve\/([^/]+)\/(.+)$/);
    const [repo, file] = cdn ? [cdn[1], cdn[2]] : m ? [m[1], m[3]] : [undefined, undefined];
    const root = repo === undefined ? undefined : repos[repo];
    if (root === undefined || file === undefined) return new Response("no repo", { status: 404 });
    const headers: Record<string, string> = {};
    if (!cdn && opts.commitHeader !== false) headers["x-repo-commit"] = COMMIT;
    let bytes: Uint8Array<ArrayBuffer>;
    try {
      bytes = Deno.readFileSync(`${root}/${file}`);
    } catch {
      return new Response("Entry not found", { status: 404, headers });
    }
    if (!cdn && /\.(safetensors|bin)$/.test(file)) {
      // Large files live elsewhere, as on the hub: a relative redirect.
      return new Response(null, {
        status: 302,
        headers: { ...headers, location: `/cdn/${repo}/${file}` },
      });
    }
    return new Response(bytes, {
      headers: { ...headers, "content-length": String(bytes.byteLength) },
    });
  });
  return {
    endpoint: `http://127.0.0.1:${server.addr.port}`,
    requests,
    close: () => server.shutdown(),
  };
}

/** Runs `fn` with HF_HUB_CACHE (and optionally HF_HUB_OFFLINE) set, restoring them. */
async function withEnv(vars: Record<string, string | undefined>, fn: () => Promise<void>) {
  const saved = Object.fromEntries(Object.keys(vars).map((k) => [k, Deno.env.get(k)]));
  const set = (k: string, v: string | undefined) =>
    v === undefined ? Deno.env.delete(k) : Deno.env.set(k, v);
  try {
    for (const [k, v] of Object.entries(vars)) set(k, v);
    await fn();
  } finally {
    for (const [k, v] of Object.entries(saved)) set(k, v);
  }
}

function tokenizerDir(): string {
  return sharedPath("tokenizers/opt");
}

Deno.test("hub: download into the HF cache layout, then cache hits, offline from cache", async () => {
  await withTempDir(async (tmp) => {
    const single = `${tmp}/repo-single`;
    const sharded = `${tmp}/repo-sharded`;
    writeRandomCheckpoint(single, { seed: 4, tokenizerDir: tokenizerDir() });
    writeRandomCheckpoint(sharded, { seed: 5, sharded: 3, prefix: "decoder" });
    const hub = fakeHub({ "test-org/tiny-opt": single, "test-org/tiny-opt-sharded": sharded });
    const cache = `${tmp}/cache`;
    try {
      await withEnv({ HF_HUB_CACHE: cache, HF_HUB_OFFLINE: undefined }, async () => {
        assertEquals(hubCacheDir(), cache);
        const updates: DownloadProgress[] = [];
        const first = await resolveModel("test-org/tiny-opt", {
          endpoint: hub.endpoint,
          progress: (p) => updates.push({ ...p }),
        });
        const snap = `${cache}/models--test-org--tiny-opt/snapshots/${COMMIT}`;
        assertEquals(first.dir, snap);
        assertEquals(first.source, "download");
        assertEquals(first.commit, COMMIT);
        assertEquals(
          Deno.readTextFileSync(`${cache}/models--test-org--tiny-opt/refs/main`),
          COMMIT,
        );
        for (const f of ["config.json", "model.safetensors", "vocab.json", "merges.txt"]) {
          assertEquals(Deno.readFileSync(`${snap}/${f}`), Deno.readFileSync(`${single}/${f}`), f);
        }
        assert(first.downloaded.includes("generation_config.json"));
        assert(!first.downloaded.includes("tokenizer.json"), "absent optional file: 404 is fine");
        const done = updates.find((u) => u.file === "model.safetensors" && u.done)!;
        assertEquals(done.total, Deno.statSync(`${single}/model.safetensors`).size);
        assertEquals(done.received, done.total);
        const w = await loadWeights(first.dir);
        assertEquals(w.layers.length, 2);
        const afterFirst = hub.requests.length;
        assert(hub.requests.includes("GET /cdn/test-org/tiny-opt/model.safetensors"));

        // Served from cache: no request at all.
        const second = await resolveModel("test-org/tiny-opt", { endpoint: hub.endpoint });
        assertEquals([second.source, second.dir], ["cache", snap]);
        const byCommit = await resolveModel("test-org/tiny-opt", {
          endpoint: hub.endpoint,
          revision: COMMIT,
        });
        assertEquals([byCommit.source, byCommit.dir], ["cache", snap]);
        const offline = await resolveModel("test-org/tiny-opt", {
          endpoint: hub.endpoint,
          offline: true,
        });
        assertEquals(offline.source, "cache");
        assertEquals(hub.requests.length, afterFirst);

        // Offline (by env) and not cached: a clear error, still no request.
        await withEnv({ HF_HUB_OFFLINE: "1" }, async () => {
          await assertCheckpointError(
            () => resolveModel("test-org/tiny-opt-sharded", { endpoint: hub.endpoint }),
            "offline",
            "test-org/tiny-opt-sharded (revision main) is not in the Hugging Face cache",
            "offline",
            `${cache}/models--test-org--tiny-opt-sharded`,
          );
          assertEquals((await resolveModel("test-org/tiny-opt")).source, "cache");
        });
        assertEquals(hub.requests.length, afterFirst);

        // Sharded repository: the index, then every shard (each through a redirect).
        const sh = await resolveModel("test-org/tiny-opt-sharded", {
          endpoint: hub.endpoint,
          progress: false,
        });
        assertEquals(sh.source, "download");
        for (let k = 1; k <= 3; k++) {
          const name = `model-0000${k}-of-00003.safetensors`;
          assertEquals(
            Deno.readFileSync(`${sh.dir}/${name}`),
            Deno.readFileSync(`${sharded}/${name}`),
          );
        }
        const ws = await loadWeights(sh.dir);
        assert(ws.sharded);
        assertEquals(ws.layers[1].fc1.weight.bytes().byteLength, 64 * 32 * 2);
        // Nothing half-written is left behind.
        const leftovers = [...Deno.readDirSync(sh.dir)].filter((e) =>
          e.name.endsWith(".incomplete")
        );
        assertEquals(leftovers, []);
      });
    } finally {
      await hub.close();
    }
  });
});

Deno.test("hub: missing repository, .bin-only, no weights, missing shard", async () => {
  await withTempDir(async (tmp) => {
    const bin = `${tmp}/bin`;
    const none = `${tmp}/none`;
    const broken = `${tmp}/broken`;
    writeRandomCheckpoint(bin, {});
    Deno.renameSync(`${bin}/model.safetensors`, `${bin}/pytorch_model.bin`);
    writeRandomCheckpoint(none, {});
    Deno.removeSync(`${none}/model.safetensors`);
    writeRandomCheckpoint(broken, { sharded: 2 });
    Deno.removeSync(`${broken}/model-00002-of-00002.safetensors`);
    const hub = fakeHub({ "o/bin": bin, "o/none": none, "o/broken": broken });
    const opts = {
      endpoint: hub.endpoint,
      cacheDir: `${tmp}/cache`,
      progress: false,
      offline: false,
    };
    try {
      await assertCheckpointError(
        () => resolveModel("o/absent", opts),
        "not-found",
        "repository o/absent or its revision main does not exist",
        "HTTP 404",
      );
      // A .bin-only repository is fetched (its bytes here are not PyTorch's: loading names it).
      const got = await resolveModel("o/bin", opts);
      assert(got.downloaded.includes("pytorch_model.bin"));
      await assertCheckpointError(
        () => loadWeights(got.dir),
        "format",
        `${got.dir}/pytorch_model.bin`,
      );
      await assertCheckpointError(
        () => resolveModel("o/none", opts),
        "not-found",
        "has none of model.safetensors, model.safetensors.index.json, pytorch_model.bin, " +
          "pytorch_model.bin.index.json",
      );
      await assertCheckpointError(
        () => resolveModel("o/broken", opts),
        "not-found",
        "cannot download model-00002-of-00002.safetensors of o/broken",
        "missing from the repository",
      );
    } finally {
      await hub.close();
    }
  });
});

Deno.test("hub: refused connection and connect timeout fail fast with a network error", async () => {
  await withTempDir(async (tmp) => {
    // A port that was just free: nothing listens there.
    const probe = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const closedPort = (probe.addr as Deno.NetAddr).port;
    probe.close();
    await assertCheckpointError(
      () =>
        resolveModel("o/m", {
          endpoint: `http://127.0.0.1:${closedPort}`,
          cacheDir: `${tmp}/cache`,
          offline: false,
        }),
      "network",
      "cannot download config.json of o/m",
    );

    // A server that accepts and never answers.
    const silent = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const conns: Deno.Conn[] = [];
    const accepting = (async () => {
      try {
        for await (const c of silent) conns.push(c);
      } catch { /* closed */ }
    })();
    try {
      const t0 = performance.now();
      await assertCheckpointError(
        () =>
          resolveModel("o/m", {
            endpoint: `http://127.0.0.1:${(silent.addr as Deno.NetAddr).port}`,
            cacheDir: `${tmp}/cache`,
            connectTimeoutMs: 300,
            offline: false,
          }),
        "network",
        "no answer within 300 ms",
      );
      assertLess(performance.now() - t0, 3000);
    } finally {
      silent.close();
      for (const c of conns) c.close();
      await accepting;
    }
  });
});

Deno.test("hub: a download cut short is an error and leaves no file", async () => {
  await withTempDir(async (tmp) => {
    const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const serving = (async () => {
      try {
        for await (const conn of listener) {
          await conn.read(new Uint8Array(4096));
          const head =
            `HTTP/1.1 200 OK\r\ncontent-length: 1000\r\nx-repo-commit: ${COMMIT}\r\n\r\n`;
          await conn.write(new TextEncoder().encode(head + '{"vocab_size"'));
          conn.close();
        }
      } catch { /* closed */ }
    })();
    try {
      await assertCheckpointError(
        () =>
          resolveModel("o/m", {
            endpoint: `http://127.0.0.1:${(listener.addr as Deno.NetAddr).port}`,
            cacheDir: `${tmp}/cache`,
            offline: false,
            progress: false,
          }),
        "network",
        "cannot download config.json of o/m",
      );
      const snap = `${tmp}/cache/models--o--m/snapshots/${COMMIT}`;
      assertEquals([...Deno.readDirSync(snap)].map((e) => e.name), []);
    } finally {
      listener.close();
      await serving;
    }
  });
});

Deno.test("hub: without X-Repo-Commit the snapshot is named by the revision and still cached", async () => {
  await withTempDir(async (tmp) => {
    writeRandomCheckpoint(`${tmp}/repo`, { seed: 1 });
    const hub = fakeHub({ "o/m": `${tmp}/repo` }, { commitHeader: false });
    const opts = {
      endpoint: hub.endpoint,
      cacheDir: `${tmp}/cache`,
      offline: false,
      progress: false,
    };
    try {
      const a = await resolveModel("o/m", opts);
      assertEquals(a.dir, `${tmp}/cache/models--o--m/snapshots/main`);
      const n = hub.requests.length;
      const b = await resolveModel("o/m", opts);
      assertEquals([b.source, b.dir], ["cache", a.dir]);
      assertEquals(hub.requests.length, n);
    } finally {
      await hub.close();
    }
  });
});

Deno.test("hub: local folders pass through; bad ids and paths are named", async () => {
  const dir = sharedModelDir();
  const local = await resolveModel(dir);
  assertEquals([local.source, local.dir], ["local", dir]);
  await assertCheckpointError(
    () => resolveModel("./no/such/model"),
    "not-found",
    "./no/such/model does not exist",
  );
  await assertCheckpointError(() => resolveModel("a/b/c"), "not-found", "a/b/c does not exist");
  await assertCheckpointError(
    () => resolveModel("bad id!", { offline: true }),
    "not-found",
    "not a hub id like facebook/opt-125m",
  );
  const e = await assertCheckpointError(
    () => resolveModel("o/m", { revision: "../x", offline: true }),
    "not-found",
    "invalid revision",
  );
  assertStringIncludes(e.message, "o/m");
});

Deno.test("hub: a stalled download times out (readTimeoutMs) and leaves no file", async () => {
  await withTempDir(async (tmp) => {
    const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const held: Deno.Conn[] = [];
    const serving = (async () => {
      try {
        for await (const conn of listener) {
          await conn.read(new Uint8Array(4096));
          const head =
            `HTTP/1.1 200 OK\r\ncontent-length: 1000\r\nx-repo-commit: ${COMMIT}\r\n\r\n`;
          await conn.write(new TextEncoder().encode(head + '{"vocab_size"'));
          held.push(conn); // and never send the rest
        }
      } catch { /* closed */ }
    })();
    try {
      const t0 = performance.now();
      await assertCheckpointError(
        () =>
          resolveModel("o/m", {
            endpoint: `http://127.0.0.1:${(listener.addr as Deno.NetAddr).port}`,
            cacheDir: `${tmp}/cache`,
            offline: false,
            progress: false,
            readTimeoutMs: 300,
          }),
        "network",
        "nothing received for 300 ms (readTimeoutMs) after 13 bytes",
      );
      assertLess(performance.now() - t0, 3000);
      const snap = `${tmp}/cache/models--o--m/snapshots/${COMMIT}`;
      assertEquals([...Deno.readDirSync(snap)].map((e) => e.name), []);
    } finally {
      listener.close();
      for (const c of held) c.close();
      await serving;
    }
  });
});

Deno.test("hub: a link planted in the cache (refs/main, a partial download) is refused, its target untouched", async () => {
  await withTempDir(async (tmp) => {
    const repo = `${tmp}/repo`;
    writeRandomCheckpoint(repo, { seed: 4, tokenizerDir: tokenizerDir() });
    const hub = fakeHub({ "test-org/tiny-opt": repo });
    const victim = `${tmp}/victim.txt`;
    Deno.writeTextFileSync(victim, "precious\n");
    const get = (cacheDir: string) =>
      resolveModel("test-org/tiny-opt", {
        endpoint: hub.endpoint,
        cacheDir,
        offline: false,
        progress: false,
      });
    try {
      // A partial download of config.json that is a link: it was truncated (or appended to).
      const a = `${tmp}/a`;
      const snap = `${a}/models--test-org--tiny-opt/snapshots/${COMMIT}`;
      Deno.mkdirSync(snap, { recursive: true });
      plantSymlink(victim, `${snap}/config.json.incomplete`);
      await assertCheckpointError(() => get(a), "format", "config.json.incomplete");
      assertEquals(Deno.readTextFileSync(victim), "precious\n");
      // refs/main that is a link: it was overwritten with the commit.
      const b = `${tmp}/b`;
      Deno.mkdirSync(`${b}/models--test-org--tiny-opt/refs`, { recursive: true });
      plantSymlink(victim, `${b}/models--test-org--tiny-opt/refs/main`);
      await assertCheckpointError(() => get(b), "format", "refs/main");
      assertEquals(Deno.readTextFileSync(victim), "precious\n");
    } finally {
      await hub.close();
    }
  });
});
