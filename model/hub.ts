/**
 * Finding a model by folder or Hugging Face hub id. A folder is used as is; an id
 * `ORG/NAME` is looked up in the Hugging Face cache (`$HF_HUB_CACHE`, `$HF_HOME/hub` or
 * `~/.cache/huggingface/hub`, layout `models--ORG--NAME/{refs,snapshots}`) and, when not
 * there and not offline, downloaded from `{endpoint}/{ORG}/{NAME}/resolve/{REV}/{FILE}` into
 * that same layout (plain files in `snapshots/<commit>/`, which `huggingface_hub` reads too).
 * Weights are looked for in the order transformers uses: `model.safetensors`, its index and
 * shards, then PyTorch's `pytorch_model.bin`, then `pytorch_model.bin.index.json` and its
 * shards. Downloads show progress, and an interrupted one resumes from its `.incomplete`
 * file when the server honours a `Range` request (else it restarts from zero).
 *
 * @example
 * ```ts
 * import { resolveModel } from "./hub.ts";
 * const { dir, source } = await resolveModel("facebook/opt-125m", { connectTimeoutMs: 5000 });
 * console.log(dir, source); // ".../snapshots/<commit>" "download" (then "cache")
 * ```
 *
 * @module
 */
import {
  type LoadedWeights,
  loadWeights,
  SAFE_WEIGHTS_INDEX_NAME,
  SAFE_WEIGHTS_NAME,
  WEIGHTS_INDEX_NAME,
  WEIGHTS_NAME,
} from "./checkpoint.ts";
import { OPTIONAL_MODEL_FILES } from "./convert.ts";
import { CheckpointError } from "./errors.ts";
import { PathRuleError, refuseLink } from "./paths.ts";
export { OPTIONAL_MODEL_FILES };

/** Options of {@linkcode resolveModel}. */
export interface ResolveModelOptions {
  /** Branch, tag or commit (default `"main"`). */
  revision?: string;
  /** Hub endpoint (default `$HF_ENDPOINT` or `https://huggingface.co`). */
  endpoint?: string;
  /** Hub cache folder (default from the environment, see {@linkcode hubCacheDir}). */
  cacheDir?: string;
  /** Never touch the network (default: `$HF_HUB_OFFLINE` is `1`/`true`/`yes`/`on`). */
  offline?: boolean;
  /** Give up when a server has not answered a request within this time (default 10000). */
  connectTimeoutMs?: number;
  /** Give up when a download receives nothing for this long (default 60000). */
  readTimeoutMs?: number;
  /**
   * Progress of downloads: `true` (default) draws on stderr (throttled), `false` is silent,
   * a function receives every update instead.
   */
  progress?: boolean | ((p: DownloadProgress) => void);
}

/** One progress update of a file download. */
export interface DownloadProgress {
  /** File name in the repository. */
  file: string;
  /** Bytes received so far. */
  received: number;
  /** Expected bytes, when the server said. */
  total?: number;
  /** True on the last update of a file. */
  done: boolean;
}

/** Where {@linkcode resolveModel} found the model. */
export interface ResolvedModel {
  /** The folder to load from (a local folder or a cache snapshot). */
  dir: string;
  /** `local`: a folder given; `cache`: found cached; `download`: fetched now (at least partly). */
  source: "local" | "cache" | "download";
  /** The hub id, when one was resolved. */
  repoId?: string;
  /** The revision asked for. */
  revision?: string;
  /** The commit of the snapshot, when known. */
  commit?: string;
  /** Files fetched by this call. */
  downloaded: string[];
}

function env(name: string): string | undefined {
  try {
    return Deno.env.get(name) || undefined;
  } catch {
    return undefined; // no --allow-env: behave as if unset
  }
}

/**
 * The Hugging Face hub cache folder: `$HF_HUB_CACHE`, else `$HF_HOME/hub`, else
 * `$XDG_CACHE_HOME/huggingface/hub`, else `~/.cache/huggingface/hub` (as `huggingface_hub`).
 *
 * @example
 * ```ts
 * import { hubCacheDir } from "./hub.ts";
 * console.log(hubCacheDir()); // e.g. "$HOME/.cache/huggingface/hub"
 * ```
 */
export function hubCacheDir(): string {
  const hub = env("HF_HUB_CACHE");
  if (hub) return hub;
  const home = env("HF_HOME");
  if (home) return `${home}/hub`;
  const xdg = env("XDG_CACHE_HOME");
  if (xdg) return `${xdg}/huggingface/hub`;
  return `${env("HOME") ?? env("USERPROFILE") ?? "."}/.cache/huggingface/hub`;
}

/**
 * Whether offline mode is on in the environment (`HF_HUB_OFFLINE` = 1, true, yes or on).
 *
 * @example
 * ```ts
 * import { offlineFromEnv } from "./hub.ts";
 * console.log(offlineFromEnv());
 * ```
 */
export function offlineFromEnv(): boolean {
  return ["1", "true", "yes", "on"].includes((env("HF_HUB_OFFLINE") ?? "").toLowerCase());
}

const REPO_PART = /^[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9_])?$/;

/**
 * Checks a hub id (`ORG/NAME` or a legacy `NAME`) and returns its cache folder name
 * (`models--ORG--NAME`), or `undefined` when the string is not a valid id.
 *
 * @example
 * ```ts
 * import { repoFolderName } from "./hub.ts";
 * console.log(repoFolderName("facebook/opt-125m")); // "models--facebook--opt-125m"
 * ```
 */
export function repoFolderName(repoId: string): string | undefined {
  const parts = repoId.split("/");
  if (
    parts.length > 2 ||
    parts.some((p) => !REPO_PART.test(p) || p.includes("--") || p.includes(".."))
  ) {
    return undefined;
  }
  return `models--${parts.join("--")}`;
}

function isCommitHash(rev: string): boolean {
  return /^[0-9a-f]{40}$/.test(rev);
}

function validRevision(rev: string): boolean {
  return rev.length > 0 && /^[A-Za-z0-9._\/-]+$/.test(rev) && !rev.startsWith("/") &&
    !rev.split("/").some((s) => s === "" || s === "." || s === "..");
}

function statOrUndefined(path: string): Deno.FileInfo | undefined {
  try {
    return Deno.statSync(path);
  } catch {
    return undefined;
  }
}

function isFile(path: string): boolean {
  return statOrUndefined(path)?.isFile ?? false;
}

/** Shard names of an index file, or `undefined` if unreadable or invalid. */
function shardsOf(indexPath: string): string[] | undefined {
  try {
    const wm = JSON.parse(Deno.readTextFileSync(indexPath))?.weight_map;
    if (typeof wm !== "object" || wm === null) return undefined;
    const names = [...new Set(Object.values(wm as Record<string, unknown>))];
    if (names.length === 0) return undefined;
    if (!names.every((n) => typeof n === "string" && /^[A-Za-z0-9._-]+$/.test(n) && n !== "..")) {
      return undefined;
    }
    return names as string[];
  } catch {
    return undefined;
  }
}

/** What a snapshot folder lacks to be loadable (empty: complete). */
function missingFiles(snap: string): string[] {
  const missing: string[] = [];
  if (!isFile(`${snap}/config.json`)) missing.push("config.json");
  for (
    const [single, indexName] of [[SAFE_WEIGHTS_NAME, SAFE_WEIGHTS_INDEX_NAME], [
      WEIGHTS_NAME,
      WEIGHTS_INDEX_NAME,
    ]]
  ) {
    if (isFile(`${snap}/${single}`)) return missing;
    const index = `${snap}/${indexName}`;
    if (!isFile(index)) continue;
    const shards = shardsOf(index);
    if (!shards) missing.push(`a valid ${indexName}`);
    else missing.push(...shards.filter((s) => !isFile(`${snap}/${s}`)));
    return missing;
  }
  missing.push(
    `${SAFE_WEIGHTS_NAME} (or ${SAFE_WEIGHTS_INDEX_NAME}, ${WEIGHTS_NAME}, ${WEIGHTS_INDEX_NAME})`,
  );
  return missing;
}

/**
 * Resolves a model folder or hub id to a local folder holding `config.json` and weights
 * (safetensors, else PyTorch `.bin`, single or sharded; tokenizer files are fetched too
 * when the repository has them).
 *
 * @param idOrDir An existing folder, or a hub id such as `facebook/opt-125m`.
 * @param options Revision, endpoint, cache folder, offline mode, timeouts, progress.
 * @returns The folder and where it came from.
 * @throws {CheckpointError} `not-found` (no such folder, repository, revision or weights),
 *   `offline` (not cached and offline; names the folder looked in), `network` (timeout,
 *   refused connection, HTTP error, short download).
 *
 * @example
 * ```ts
 * import { resolveModel } from "./hub.ts";
 * import { loadWeights } from "./checkpoint.ts";
 * const { dir } = await resolveModel("bundled/models/tiny-opt-e2e");
 * const weights = await loadWeights(dir);
 * ```
 */
export async function resolveModel(
  idOrDir: string,
  options: ResolveModelOptions = {},
): Promise<ResolvedModel> {
  let st: Deno.FileInfo | undefined;
  try {
    st = Deno.statSync(idOrDir);
  } catch (e) {
    // Not allowed to look is not "does not exist": say so (the command line names the path).
    if (e instanceof Deno.errors.NotCapable) throw e;
  }
  if (st?.isDirectory) return { dir: idOrDir, source: "local", downloaded: [] };
  if (st) {
    throw new CheckpointError(`${idOrDir} is a file; expected a model folder or a hub id`, {
      file: idOrDir,
      kind: "not-found",
    });
  }
  const folder = repoFolderName(idOrDir);
  const looksLikePath = /^(\.{1,2}\/|\/|~)/.test(idOrDir) || idOrDir.split("/").length > 2;
  if (folder === undefined || looksLikePath) {
    throw new CheckpointError(
      `model folder ${idOrDir} does not exist` +
        (looksLikePath ? "" : ` (and it is not a hub id like facebook/opt-125m)`),
      { file: idOrDir, kind: "not-found" },
    );
  }
  const revision = options.revision ?? "main";
  if (!validRevision(revision)) {
    throw new CheckpointError(`invalid revision ${JSON.stringify(revision)} for ${idOrDir}`, {
      file: idOrDir,
      kind: "not-found",
      field: "revision",
    });
  }
  const cache = options.cacheDir ?? hubCacheDir();
  const repoDir = `${cache}/${folder}`;
  const refPath = `${repoDir}/refs/${revision}`;
  let commit: string | undefined;
  if (isCommitHash(revision)) commit = revision;
  else {
    try {
      const ref = Deno.readTextFileSync(refPath).trim();
      if (isCommitHash(ref) || validRevision(ref)) commit = ref;
    } catch (e) {
      if (e instanceof Deno.errors.NotCapable || e instanceof Deno.errors.PermissionDenied) {
        throw new CheckpointError(
          `the Hugging Face cache ${cache} may not be read by this process ` +
            `(${(e as Error).message.replace(/,? run again with.*$/i, "")}); grant read ` +
            `access to it, or set HF_HUB_CACHE to a cache inside the task's read scope`,
          { file: refPath, kind: "io", cause: e },
        );
      }
      /* not cached */
    }
  }
  const cachedSnap = commit !== undefined ? `${repoDir}/snapshots/${commit}` : undefined;
  const cachedMissing = cachedSnap ? missingFiles(cachedSnap) : ["everything"];
  if (cachedSnap && cachedMissing.length === 0) {
    return { dir: cachedSnap, source: "cache", repoId: idOrDir, revision, commit, downloaded: [] };
  }
  if (options.offline ?? offlineFromEnv()) {
    const where = cachedSnap
      ? `${cachedSnap} lacks ${cachedMissing.join(", ")}`
      : `no ${refPath} (revision ${revision} was never downloaded)`;
    throw new CheckpointError(
      `model ${idOrDir} (revision ${revision}) is not in the Hugging Face cache and offline ` +
        `mode is on (HF_HUB_OFFLINE or the offline option), so nothing was downloaded; ` +
        `looked in ${repoDir}: ${where}`,
      { file: repoDir, kind: "offline" },
    );
  }
  return await download(idOrDir, revision, repoDir, options);
}

interface Fetched {
  res: Response;
  commit?: string;
  url: string;
  controller: AbortController;
}

/** Settings of one download session. */
interface Session {
  repoId: string;
  endpoint: string;
  connectTimeoutMs: number;
  readTimeoutMs: number;
  progress: (p: DownloadProgress) => void;
  finish: () => void;
}

function netError(s: Session, file: string, url: string, what: string, cause?: unknown): never {
  throw new CheckpointError(
    `cannot download ${file} of ${s.repoId} from ${url}: ${what}`,
    { file: url, kind: "network", cause },
  );
}

/** GET (or HEAD) with a connect timeout, following redirects by hand to see X-Repo-Commit. */
async function request(
  s: Session,
  file: string,
  rev: string,
  method: "GET" | "HEAD" = "GET",
  extraHeaders: Record<string, string> = {},
): Promise<Fetched> {
  let url = `${s.endpoint}/${s.repoId}/resolve/${encodeURIComponent(rev)}/${file}`;
  const first = url;
  let commit: string | undefined;
  for (let hop = 0; hop < 10; hop++) {
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), s.connectTimeoutMs);
    let res: Response;
    try {
      res = await fetch(url, {
        method,
        redirect: "manual",
        signal: controller.signal,
        headers: {
          "accept-encoding": "identity",
          "user-agent": "skipdecode/0.1",
          ...extraHeaders,
        },
      });
    } catch (e) {
      netError(
        s,
        file,
        url,
        controller.signal.aborted
          ? `no answer within ${s.connectTimeoutMs} ms (connectTimeoutMs)`
          : `${(e as Error).message}`,
        e,
      );
    } finally {
      clearTimeout(timer);
    }
    commit ??= res.headers.get("x-repo-commit") ?? undefined;
    if (res.status >= 300 && res.status < 400 && res.headers.has("location")) {
      await res.body?.cancel();
      url = new URL(res.headers.get("location")!, url).href;
      continue;
    }
    return { res, commit, url, controller };
  }
  netError(s, file, first, "more than 10 redirects");
}

/** Files whose partial download is kept for a resume (the large ones). */
const RESUMABLE = /\.(bin|safetensors|parquet)$/;

/**
 * Streams a 200 (or 206, resuming at `resumeFrom`) response into `dest` via
 * `dest.incomplete`; returns bytes received. On failure the `.incomplete` file is kept
 * of a weight file is kept when it holds bytes, so the next attempt can resume.
 */
async function saveBody(
  s: Session,
  file: string,
  got: Fetched,
  dest: string,
  resumeFrom = 0,
): Promise<number> {
  const { res, url, controller } = got;
  const length = res.headers.get("content-length");
  const encoded = (res.headers.get("content-encoding") ?? "identity") !== "identity";
  const partial = res.status === 206 && resumeFrom > 0;
  const start = partial ? resumeFrom : 0;
  const total = length !== null && !encoded ? Number(length) + start : undefined;
  const tmp = `${dest}.incomplete`;
  refuseCacheLink(tmp); // opening a planted link would truncate or append to its target
  const out = await Deno.open(
    tmp,
    partial ? { write: true, append: true } : { write: true, create: true, truncate: true },
  );
  let received = start;
  let stalled = false;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const arm = () => {
    clearTimeout(timer);
    timer = setTimeout(() => {
      stalled = true;
      controller.abort();
    }, s.readTimeoutMs);
  };
  try {
    if (!res.body) throw new Error("empty response body");
    const reader = res.body.getReader();
    arm();
    while (true) {
      const { done, value } = await reader.read();
      if (done) break;
      arm();
      let off = 0;
      while (off < value.byteLength) off += await out.write(value.subarray(off));
      received += value.byteLength;
      s.progress({ file, received, total, done: false });
    }
    clearTimeout(timer);
    if (total !== undefined && Number.isFinite(total) && received !== total) {
      throw new Error(`the download was cut short: got ${received} of ${total} bytes`);
    }
  } catch (e) {
    clearTimeout(timer);
    out.close();
    // Weights keep what arrived for a later resume; small files start again.
    const keep = received > 0 && RESUMABLE.test(file);
    if (!keep) await Deno.remove(tmp).catch(() => {});
    netError(
      s,
      file,
      url,
      (stalled
        ? `nothing received for ${s.readTimeoutMs} ms (readTimeoutMs) after ${received} bytes`
        : (e as Error).message) +
        (keep ? `; ${received} bytes kept in ${tmp}, the next attempt resumes` : ""),
      e,
    );
  }
  out.close();
  await Deno.rename(tmp, dest);
  s.progress({ file, received, total, done: true });
  return received;
}

function stderrProgress(): { update: (p: DownloadProgress) => void; finish: () => void } {
  const tty = (() => {
    try {
      return Deno.stderr.isTerminal();
    } catch {
      return false;
    }
  })();
  const enc = new TextEncoder();
  const write = (text: string) => {
    try {
      Deno.stderr.writeSync(enc.encode(text));
    } catch { /* stderr closed */ }
  };
  const mb = (n: number) =>
    n >= 1e9
      ? `${(n / 1e9).toFixed(2)} GB`
      : n >= 1e6
      ? `${(n / 1e6).toFixed(1)} MB`
      : `${(n / 1e3).toFixed(1)} kB`;
  let last = 0;
  let started = 0;
  let current: string | undefined;
  return {
    update(p) {
      const now = performance.now();
      if (p.file !== current) {
        current = p.file;
        started = now;
        last = 0;
      }
      const every = tty ? 200 : 10_000;
      if (!p.done && now - last < every) return;
      last = now;
      const pct = p.total ? ` (${Math.floor((100 * p.received) / p.total)}%)` : "";
      const rate = now > started ? `, ${mb((p.received / (now - started)) * 1000)}/s` : "";
      const line = `downloading ${p.file}: ${mb(p.received)}` +
        (p.total !== undefined ? ` / ${mb(p.total)}` : "") + pct + rate;
      if (tty) write(`\r\x1b[K${line}${p.done ? "\n" : ""}`);
      else write(`${line}${p.done ? " done" : ""}\n`);
      if (p.done) current = undefined;
    },
    finish() {
      if (tty && current !== undefined) write("\n");
    },
  };
}

/**
 * Fetches `file` of the session's repository at `rev` into `snap` unless it is there;
 * resumes from its `.incomplete` file when the server honours a range. Returns false on
 * 404 when not `required`.
 */
/** A file this toolkit writes in the cache must not be a planted link (it would be followed). */
function refuseCacheLink(path: string): void {
  try {
    refuseLink(path, "cache file");
  } catch (e) {
    if (!(e instanceof PathRuleError)) throw e;
    throw new CheckpointError(`${e.message}: remove it`, { file: path, kind: "format" });
  }
}

async function fetchInto(
  s: Session,
  snap: string,
  rev: string,
  file: string,
  required: boolean,
  downloaded: string[],
): Promise<boolean> {
  if (isFile(`${snap}/${file}`)) return true;
  const have = statOrUndefined(`${snap}/${file}.incomplete`)?.size ?? 0;
  const got = await request(s, file, rev, "GET", have > 0 ? { range: `bytes=${have}-` } : {});
  const resumed = got.res.status === 206 &&
    (got.res.headers.get("content-range") ?? "").startsWith(`bytes ${have}-`);
  const again = async () => {
    await got.res.body?.cancel();
    await Deno.remove(`${snap}/${file}.incomplete`).catch(() => {});
    return await fetchInto(s, snap, rev, file, required, downloaded);
  };
  // A range we did not ask for, or a stale partial file (416): start again from zero.
  if (got.res.status === 206 && !resumed) return await again();
  if (got.res.status === 416 && have > 0) return await again();
  if (got.res.status === 404 && !required) {
    await got.res.body?.cancel();
    return false;
  }
  if (got.res.status !== 200 && !resumed) {
    await got.res.body?.cancel();
    throw new CheckpointError(
      `cannot download ${file} of ${s.repoId} from ${got.url}: HTTP ${got.res.status}` +
        (got.res.status === 404 ? " (the file is missing from the repository)" : ""),
      { file: got.url, kind: got.res.status === 404 ? "not-found" : "network" },
    );
  }
  Deno.mkdirSync(`${snap}/${file}`.replace(/\/[^/]*$/, ""), { recursive: true });
  await saveBody(s, file, got, `${snap}/${file}`, resumed ? have : 0);
  downloaded.push(file);
  return true;
}

async function download(
  repoId: string,
  revision: string,
  repoDir: string,
  options: ResolveModelOptions,
): Promise<ResolvedModel> {
  const endpoint = (options.endpoint ?? env("HF_ENDPOINT") ?? "https://huggingface.co")
    .replace(/\/+$/, "");
  const drawn = options.progress === false
    ? undefined
    : typeof options.progress === "function"
    ? { update: options.progress, finish: () => {} }
    : stderrProgress();
  const s: Session = {
    repoId,
    endpoint,
    connectTimeoutMs: options.connectTimeoutMs ?? 10_000,
    readTimeoutMs: options.readTimeoutMs ?? 60_000,
    progress: drawn?.update ?? (() => {}),
    finish: drawn?.finish ?? (() => {}),
  };
  const downloaded: string[] = [];
  try {
    // config.json first: it tells whether the repository exists and which commit it is at.
    const cfg = await request(s, "config.json", revision);
    if (cfg.res.status !== 200) {
      await cfg.res.body?.cancel();
      const st = cfg.res.status;
      const why = st === 404
        ? `repository ${repoId} or its revision ${revision} does not exist at ${endpoint}, ` +
          `or it has no config.json (HTTP 404)`
        : st === 401 || st === 403
        ? `access denied (HTTP ${st}): ${repoId} may not exist, or be private or gated`
        : `HTTP ${st} ${cfg.res.statusText}`;
      throw new CheckpointError(
        `cannot download config.json of ${repoId} from ${cfg.url}: ${why}`,
        {
          file: cfg.url,
          kind: st === 404 || st === 401 || st === 403 ? "not-found" : "network",
        },
      );
    }
    const commit = cfg.commit ?? (isCommitHash(revision) ? revision : undefined);
    const snapName = commit ?? revision.replaceAll("/", "--");
    const snap = `${repoDir}/snapshots/${snapName}`;
    Deno.mkdirSync(snap, { recursive: true });
    const rev = commit ?? revision;
    if (isFile(`${snap}/config.json`)) await cfg.res.body?.cancel();
    else {
      await saveBody(s, "config.json", cfg, `${snap}/config.json`);
      downloaded.push("config.json");
    }

    const fetchFile = (file: string, required: boolean) =>
      fetchInto(s, snap, rev, file, required, downloaded);

    for (const file of OPTIONAL_MODEL_FILES) await fetchFile(file, false);
    // The order transformers uses: safetensors (single, sharded), then PyTorch .bin.
    let found = false;
    for (
      const [single, indexName] of [[SAFE_WEIGHTS_NAME, SAFE_WEIGHTS_INDEX_NAME], [
        WEIGHTS_NAME,
        WEIGHTS_INDEX_NAME,
      ]]
    ) {
      if (await fetchFile(single, false)) {
        found = true;
        break;
      }
      if (!(await fetchFile(indexName, false))) continue;
      const index = `${snap}/${indexName}`;
      const shards = shardsOf(index);
      if (!shards) {
        throw new CheckpointError(
          `${index} has no valid "weight_map" of plain shard file names`,
          { file: index, kind: "index", field: "weight_map" },
        );
      }
      for (const shard of shards) await fetchFile(shard, true);
      found = true;
      break;
    }
    if (!found) {
      throw new CheckpointError(
        `${repoId} (revision ${revision}) has none of ${SAFE_WEIGHTS_NAME}, ` +
          `${SAFE_WEIGHTS_INDEX_NAME}, ${WEIGHTS_NAME}, ${WEIGHTS_INDEX_NAME} at ${endpoint}`,
        { file: `${endpoint}/${repoId}`, kind: "not-found" },
      );
    }
    if (!isCommitHash(revision)) {
      // refs/<revision> names the snapshot: the commit, or the revision itself if unknown.
      const ref = `${repoDir}/refs/${revision}`;
      Deno.mkdirSync(ref.slice(0, ref.lastIndexOf("/")), { recursive: true });
      refuseCacheLink(ref);
      Deno.writeTextFileSync(ref, snapName);
    }
    return { dir: snap, source: "download", repoId, revision, commit, downloaded };
  } finally {
    s.finish();
  }
}

/**
 * Resolves a folder or hub id (see {@linkcode resolveModel}) and loads its weights (without a
 * tokenizer or backend: `loadModel` of `decode/` builds a whole model on top of this).
 *
 * @example
 * ```ts
 * import { loadCheckpoint } from "./hub.ts";
 * const { weights, resolved } = await loadCheckpoint("bundled/models/tiny-opt-e2e");
 * console.log(resolved.source, weights.layers.length); // "local" 12
 * ```
 */
export async function loadCheckpoint(
  idOrDir: string,
  options: ResolveModelOptions = {},
): Promise<{ resolved: ResolvedModel; weights: LoadedWeights }> {
  const resolved = await resolveModel(idOrDir, options);
  return { resolved, weights: await loadWeights(resolved.dir) };
}

/** A Hugging Face dataset split named `hf:OWNER/NAME[:CONFIG]:SPLIT`. */
export interface DatasetId {
  /** `OWNER/NAME`. */
  repoId: string;
  /** The configuration (subset); `default` when not named. */
  config: string;
  /** The split, e.g. `test`. */
  split: string;
}

/** The revision of a dataset holding the hub's Parquet conversion of every split. */
export const PARQUET_REVISION = "refs/convert/parquet";

/**
 * Parses a dataset id `hf:OWNER/NAME[:CONFIG]:SPLIT` (e.g. `hf:abisee/cnn_dailymail:3.0.0:test`).
 *
 * @param spec the id
 * @returns its parts, or `undefined` when `spec` does not start with `hf:`
 * @throws CheckpointError naming the id when it starts with `hf:` but is malformed
 * @example
 * ```ts
 * import { parseDatasetId } from "./hub.ts";
 * parseDatasetId("hf:abisee/cnn_dailymail:3.0.0:test");
 * // { repoId: "abisee/cnn_dailymail", config: "3.0.0", split: "test" }
 * ```
 */
export function parseDatasetId(spec: string): DatasetId | undefined {
  if (!spec.startsWith("hf:")) return undefined;
  const parts = spec.slice(3).split(":");
  const [repoId, config, split] = parts.length === 2
    ? [parts[0], "default", parts[1]]
    : parts.length === 3
    ? parts
    : [];
  const name = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;
  if (
    repoId === undefined || repoFolderName(repoId) === undefined ||
    repoId.split("/").length !== 2 || !name.test(config) || !name.test(split)
  ) {
    throw new CheckpointError(
      `dataset id ${JSON.stringify(spec)} is not of the form hf:OWNER/NAME[:CONFIG]:SPLIT ` +
        `(e.g. hf:abisee/cnn_dailymail:3.0.0:test)`,
      { file: spec, kind: "not-found" },
    );
  }
  return { repoId, config, split };
}

/** Where {@linkcode resolveDataset} found a dataset split. */
export interface ResolvedDataset extends DatasetId {
  /** The split's Parquet files in the HF cache, in order. */
  files: string[];
  /** `cache`: all found cached; `download`: fetched now (at least partly). */
  source: "cache" | "download";
  /** The commit of the Parquet conversion. */
  commit: string;
  /** Files fetched by this call. */
  downloaded: string[];
}

/** The listing a download stores beside the split's files, so offline use knows them all. */
const LISTING = ".skipdecode-files.json";

/** GET a hub API URL as JSON, with the session's timeouts and a message naming the URL. */
async function getJson(s: Session, url: string, what: string): Promise<unknown> {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), s.connectTimeoutMs);
  let res: Response;
  try {
    res = await fetch(url, {
      signal: controller.signal,
      headers: { "user-agent": "skipdecode/0.1" },
    });
    if (res.status !== 200) {
      await res.body?.cancel();
      const st = res.status;
      throw new CheckpointError(
        `cannot list ${what} at ${url}: ` +
          (st === 404
            ? `HTTP 404: no such dataset, config or split, or the hub has no Parquet ` +
              `conversion of it`
            : st === 401 || st === 403
            ? `access denied (HTTP ${st}): the dataset may be private or gated`
            : `HTTP ${st} ${res.statusText}`),
        { file: url, kind: st === 404 || st === 401 || st === 403 ? "not-found" : "network" },
      );
    }
    return await res.json();
  } catch (e) {
    if (e instanceof CheckpointError) throw e;
    netError(
      s,
      what,
      url,
      controller.signal.aborted
        ? `no answer within ${s.connectTimeoutMs} ms (connectTimeoutMs)`
        : (e as Error).message,
      e,
    );
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Finds a dataset split's Parquet files (the hub's conversion at revision
 * {@linkcode PARQUET_REVISION}, files `CONFIG/SPLIT/NNNN.parquet`) in the Hugging Face cache
 * (`datasets--OWNER--NAME/{refs,snapshots}`, as `huggingface_hub` lays it out) or downloads
 * them: the commit from `{endpoint}/api/datasets/OWNER/NAME/revision/refs%2Fconvert%2Fparquet`,
 * the files from `.../tree/refs%2Fconvert%2Fparquet/CONFIG/SPLIT`, each from
 * `{endpoint}/datasets/OWNER/NAME/resolve/COMMIT/FILE`, resuming an interrupted file from its
 * `.incomplete` part. Offline mode (`HF_HUB_OFFLINE` or the option) uses the cache only.
 *
 * @param spec `hf:OWNER/NAME[:CONFIG]:SPLIT`
 * @param options endpoint, cache folder, offline mode, timeouts, progress (as for models)
 * @returns the local Parquet files
 * @throws CheckpointError naming the dataset: malformed id, not cached in offline mode,
 *   no such dataset/config/split, a network failure
 * @example
 * ```ts
 * import { resolveDataset } from "./hub.ts";
 * const { files } = await resolveDataset("hf:abisee/cnn_dailymail:3.0.0:test");
 * ```
 */
export async function resolveDataset(
  spec: string,
  options: ResolveModelOptions = {},
): Promise<ResolvedDataset> {
  const id = parseDatasetId(spec);
  if (!id) {
    throw new CheckpointError(`${spec} is not an hf: dataset id`, {
      file: spec,
      kind: "not-found",
    });
  }
  const { repoId, config, split } = id;
  const cache = options.cacheDir ?? hubCacheDir();
  const repoDir = `${cache}/datasets--${repoId.replace("/", "--")}`;
  const refPath = `${repoDir}/refs/${PARQUET_REVISION}`;
  const sub = `${config}/${split}`;
  const cached = (commit: string): string[] | undefined => {
    try {
      const names = JSON.parse(
        Deno.readTextFileSync(`${repoDir}/snapshots/${commit}/${sub}/${LISTING}`),
      ) as string[];
      const snap = `${repoDir}/snapshots/${commit}`;
      return names.every((f) => isFile(`${snap}/${f}`))
        ? names.map((f) => `${snap}/${f}`)
        : undefined;
    } catch {
      return undefined;
    }
  };
  let commit: string | undefined;
  try {
    commit = Deno.readTextFileSync(refPath).trim();
  } catch (e) {
    if (e instanceof Deno.errors.NotCapable || e instanceof Deno.errors.PermissionDenied) {
      throw new CheckpointError(
        `the Hugging Face cache ${cache} may not be read by this process; grant read access ` +
          `to it, or set HF_HUB_CACHE to a cache inside the task's read scope`,
        { file: refPath, kind: "io", cause: e },
      );
    }
  }
  const hit = commit !== undefined && isCommitHash(commit) ? cached(commit) : undefined;
  if (hit) return { ...id, files: hit, source: "cache", commit: commit!, downloaded: [] };
  if (options.offline ?? offlineFromEnv()) {
    throw new CheckpointError(
      `dataset ${spec} is not in the Hugging Face cache and offline mode is on ` +
        `(HF_HUB_OFFLINE or --offline), so nothing was downloaded; looked in ${repoDir} ` +
        `for ${sub} at revision ${PARQUET_REVISION}`,
      { file: repoDir, kind: "offline" },
    );
  }
  const endpoint = (options.endpoint ?? env("HF_ENDPOINT") ?? "https://huggingface.co")
    .replace(/\/+$/, "");
  const drawn = options.progress === false
    ? undefined
    : typeof options.progress === "function"
    ? { update: options.progress, finish: () => {} }
    : stderrProgress();
  const s: Session = {
    repoId: `datasets/${repoId}`,
    endpoint,
    connectTimeoutMs: options.connectTimeoutMs ?? 10_000,
    readTimeoutMs: options.readTimeoutMs ?? 60_000,
    progress: drawn?.update ?? (() => {}),
    finish: drawn?.finish ?? (() => {}),
  };
  const rev = encodeURIComponent(PARQUET_REVISION);
  const api = `${endpoint}/api/datasets/${repoId}`;
  try {
    const info = await getJson(s, `${api}/revision/${rev}`, `the Parquet revision of ${repoId}`);
    const sha = (info as { sha?: unknown })?.sha;
    if (typeof sha !== "string" || !isCommitHash(sha)) {
      throw new CheckpointError(
        `${api}/revision/${rev}: the answer has no commit "sha"`,
        { file: `${api}/revision/${rev}`, kind: "network" },
      );
    }
    const tree = await getJson(s, `${api}/tree/${sha}/${sub}`, `${sub} of ${repoId}`);
    const names = (Array.isArray(tree) ? tree : [])
      .filter((e) => e?.type === "file" && typeof e.path === "string" && /\.parquet$/.test(e.path))
      .map((e) => e.path as string)
      .filter((p) => p.startsWith(`${sub}/`) && !p.split("/").includes(".."))
      .sort();
    if (names.length === 0) {
      throw new CheckpointError(
        `dataset ${repoId} has no Parquet files for config ${config}, split ${split} at ` +
          `${endpoint} (revision ${PARQUET_REVISION}); check the names`,
        { file: `${api}/tree/${sha}/${sub}`, kind: "not-found" },
      );
    }
    const snap = `${repoDir}/snapshots/${sha}`;
    const downloaded: string[] = [];
    for (const f of names) await fetchInto(s, snap, sha, f, true, downloaded);
    refuseCacheLink(`${snap}/${sub}/${LISTING}`);
    Deno.writeTextFileSync(`${snap}/${sub}/${LISTING}`, JSON.stringify(names));
    Deno.mkdirSync(refPath.slice(0, refPath.lastIndexOf("/")), { recursive: true });
    refuseCacheLink(refPath);
    Deno.writeTextFileSync(refPath, sha);
    return {
      ...id,
      files: names.map((f) => `${snap}/${f}`),
      source: "download",
      commit: sha,
      downloaded,
    };
  } finally {
    s.finish();
  }
}
