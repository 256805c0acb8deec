/**
 * Load time and peak memory of PyTorch `.bin` checkpoints next to safetensors, on a
 * generated OPT-shaped f16 checkpoint of about 1 GB (d 2048, 8 layers, ffn 8192, vocab
 * 50272: 510 M parameters). Three copies of the same weights: `pytorch_model.bin` in the
 * ZIP format, the same in the legacy format, and the `model.safetensors` that
 * `skipdecode convert` makes from the ZIP one. Each load runs in a fresh process, which
 * opens the checkpoint (headers and pickle only) and then reads every tensor and keeps its
 * bytes, as a backend that holds f16 weights does; it reports the open and read times,
 * the peak resident set (GNU time's `%M` of the process, so `/usr/bin/time` is needed), and
 * the JavaScript heap and external (array buffer) memory.
 *
 * @example
 * ```sh
 * deno run --allow-read --allow-write=/tmp/torchbench --allow-run=/usr/bin/time bench/torch_bin_bench.ts /tmp/torchbench
 * ```
 * @module
 */
import { loadWeights } from "../model/checkpoint.ts";
import { allTensors } from "../model/checkpoint.ts";
import { convertCheckpoint } from "../model/convert.ts";
import { optTensorSpecs } from "../model/checkpoint.ts";
import { optConfigToJson, parseOptConfig } from "../model/config.ts";
import { contiguousCheckpoint, writeTorchBin } from "./torch_bin_writer.ts";
import { mulberry32Bits } from "../model/random.ts";

/** The generated model's config.json. */
const CONFIG = {
  model_type: "opt",
  architectures: ["OPTForCausalLM"],
  vocab_size: 50272,
  hidden_size: 2048,
  num_attention_heads: 32,
  ffn_dim: 8192,
  num_hidden_layers: 8,
  max_position_embeddings: 2048,
  word_embed_proj_dim: 2048,
  do_layer_norm_before: true,
  enable_bias: true,
  layer_norm_elementwise_affine: true,
  activation_function: "relu",
  bos_token_id: 2,
  eos_token_id: 2,
  pad_token_id: 1,
  torch_dtype: "float16",
};

/** Deterministic small f16 values (|x| < 0.06), fast to make. */
function f16Noise(n: number, seed: number): Uint8Array {
  const u16 = new Uint16Array(n);
  let state = seed >>> 0;
  for (let i = 0; i < n; i++) {
    const [next, s] = mulberry32Bits(state);
    state = next;
    // sign, exponent 2^-12 .. 2^-5, random mantissa
    u16[i] = ((s >>> 31) << 15) | ((3 + ((s >>> 20) & 7)) << 10) | (s & 0x3ff);
  }
  return new Uint8Array(u16.buffer);
}

function generate(root: string): void {
  const zip = `${root}/bin-zip`, legacy = `${root}/bin-legacy`, st = `${root}/safetensors`;
  const config = parseOptConfig(CONFIG, "bench config");
  const tensors = optTensorSpecs(config).map((s, i) => ({
    name: s.name,
    dtype: "F16" as const,
    shape: s.shape,
    data: () => f16Noise(s.shape.reduce((a, b) => a * b, 1), i + 1),
  }));
  const spec = contiguousCheckpoint(tensors);
  for (const [dir, format] of [[zip, "zip"], [legacy, "legacy"]] as const) {
    try {
      Deno.statSync(`${dir}/pytorch_model.bin`);
      continue;
    } catch { /* make it */ }
    Deno.mkdirSync(dir, { recursive: true });
    Deno.writeTextFileSync(`${dir}/config.json`, JSON.stringify(optConfigToJson(config), null, 2));
    const t0 = performance.now();
    writeTorchBin(`${dir}/pytorch_model.bin.tmp`, spec, { format });
    Deno.renameSync(`${dir}/pytorch_model.bin.tmp`, `${dir}/pytorch_model.bin`);
    console.error(
      `wrote ${dir}/pytorch_model.bin in ${((performance.now() - t0) / 1000).toFixed(1)} s`,
    );
  }
  try {
    Deno.statSync(`${st}/model.safetensors`);
  } catch {
    const t0 = performance.now();
    convertCheckpoint(zip, st);
    console.error(`converted to ${st} in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  }
}

/** One load in this process; prints one JSON line. */
async function loadOnce(dir: string): Promise<void> {
  const rss0 = Deno.memoryUsage().rss;
  const t0 = performance.now();
  const w = await loadWeights(dir);
  const t1 = performance.now();
  const kept: Uint8Array[] = [];
  let bytes = 0, heapPeak = 0, externalPeak = 0, rssPeak = Deno.memoryUsage().rss;
  for (const t of allTensors(w)) {
    const b = t.bytes();
    kept.push(b);
    bytes += b.byteLength;
    const m = Deno.memoryUsage();
    heapPeak = Math.max(heapPeak, m.heapUsed);
    externalPeak = Math.max(externalPeak, m.external);
    rssPeak = Math.max(rssPeak, m.rss);
  }
  const t2 = performance.now();
  console.log(JSON.stringify({
    format: w.format,
    openMs: t1 - t0,
    readMs: t2 - t1,
    weightBytes: bytes,
    tensors: kept.length,
    rssBeforeLoad: rss0,
    rssSampledPeak: rssPeak,
    heapUsedPeak: heapPeak,
    externalPeak,
  }));
}

async function main(args: string[]): Promise<void> {
  if (args[0] === "--load") return await loadOnce(args[1]);
  const root = args[0] ?? "/tmp/torchbench";
  const repeats = Number(args[1] ?? 3);
  generate(root);
  const variants = [["bin (ZIP)", "bin-zip"], ["bin (legacy)", "bin-legacy"], [
    "converted safetensors",
    "safetensors",
  ]];
  const rows = new Map<string, Record<string, number>[]>();
  for (let r = 0; r < repeats; r++) {
    for (const [label, sub] of variants) {
      // GNU time reports the child's true peak resident set (%M, in KiB).
      const out = await new Deno.Command("/usr/bin/time", {
        args: [
          "-f",
          "maxrss_kib=%M",
          Deno.execPath(),
          "run",
          "--allow-read",
          import.meta.filename!,
          "--load",
          `${root}/${sub}`,
        ],
        stdout: "piped",
        stderr: "piped",
      }).output();
      const err = new TextDecoder().decode(out.stderr);
      if (out.code !== 0) throw new Error(`load of ${sub} failed: ${err}`);
      const row = JSON.parse(new TextDecoder().decode(out.stdout));
      row.peakRss = Number(err.match(/maxrss_kib=(\d+)/)?.[1] ?? NaN) * 1024;
      rows.set(label, [...(rows.get(label) ?? []), row]);
    }
  }
  const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const mb = (n: number) => (n / 1e6).toFixed(0);
  const lines = [
    `| weights | open (ms) | read all tensors (ms) | weights kept (MB) | peak RSS (MB) | RSS before open (MB) | JS heap peak (MB) | external peak (MB) |`,
    "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
  ];
  for (const [label, rs] of rows) {
    const f = (k: string) => med(rs.map((x) => x[k]));
    lines.push(
      `| ${label} | ${f("openMs").toFixed(1)} | ${f("readMs").toFixed(0)} | ${
        mb(f("weightBytes"))
      } | ` +
        `${mb(f("peakRss"))} | ${mb(f("rssBeforeLoad"))} | ${mb(f("heapUsedPeak"))} | ` +
        `${mb(f("externalPeak"))} |`,
    );
  }
  console.log(`median of ${repeats} fresh processes each; files in ${root}`);
  console.log(lines.join("\n"));
}

if (import.meta.main) await main(Deno.args);
