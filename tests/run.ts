/**
 * The test command (`deno task test`): runs `deno test` over `tests/` with the permissions
 * the tests need and passes its output and exit code through. A run that ends by a signal
 * fails, and says which signal after which summary: an earlier version treated a SIGABRT
 * after a summary with `0 failed` as a pass (glibc "double free or corruption" while WebGPU
 * devices were torn down at exit, seen once in CI). Test modules now destroy their devices
 * when they end (`tests/webgpu_helpers.ts`), with no GPU work left in flight, instead of
 * leaving them to process exit; an abort at exit is a failure to investigate, not a pass.
 *
 * @module
 */
// Least privilege: what the tests read, write, look up and run, and no more.
const ROOT = decodeURIComponent(new URL("../", import.meta.url).pathname).replace(/\/$/, "");
const envOr = (k: string, d: string) => {
  try {
    return Deno.env.get(k) || d;
  } catch {
    return d;
  }
};
const TMP = envOr("TMPDIR", "/tmp").replace(/\/$/, "");
const HF = `${envOr("HOME", "/root")}/.cache/huggingface`;
const PERMISSIONS = [
  `--allow-read=${ROOT},${ROOT}/../shared,${TMP},${HF}`,
  `--allow-write=${TMP},${ROOT}/out,${ROOT}/reports,${ROOT}/.cache`,
  "--allow-env=CI,HOME,USERPROFILE,XDG_CACHE_HOME,XDG_RUNTIME_DIR,HF_HUB_CACHE,HF_HOME," +
  "HF_HUB_OFFLINE,HF_ENDPOINT,SKIPDECODE_*",
  "--allow-net=127.0.0.1",
  `--allow-run=${Deno.execPath()},jupyter,chromium`,
];
const args = ["test", ...PERMISSIONS, ...(Deno.args.length ? Deno.args : ["tests/"])];
const child = new Deno.Command(Deno.execPath(), { args, stdout: "piped", stderr: "inherit" })
  .spawn();
const decoder = new TextDecoder();
let tail = "";
for await (const chunk of child.stdout) {
  await Deno.stdout.write(chunk);
  tail = (tail + decoder.decode(chunk, { stream: true })).slice(-8000);
}
const status = await child.status;
if (status.success) Deno.exit(0);
if (status.signal) {
  // deno-lint-ignore no-control-regex
  const plain = tail.replace(/\x1b\[[0-9;]*m/g, "");
  const summary = plain.match(/^(ok|FAILED) \| [^\n]*/m)?.[0] ?? "no summary line";
  console.error(`\ntests/run.ts: deno test was killed by ${status.signal} (${summary}).`);
}
Deno.exit(status.code || 1);
