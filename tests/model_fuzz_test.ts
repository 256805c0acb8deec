/**
 * Seeded fuzzing of the checkpoint loader: thousands of mutations of a small valid
 * checkpoint (header bytes, length prefix, offsets, shapes, dtypes, truncation, random byte
 * flips, config fields). Every outcome must be a clean load (whose tensors then read
 * cleanly) or a CheckpointError; never another exception, a slow iteration or a large
 * allocation.
 */
import { assert, assertGreater, assertLess } from "@std/assert";
import { allTensors, loadWeightsSync } from "../model/checkpoint.ts";
import { CheckpointError } from "../model/errors.ts";
import { writeRandomCheckpoint } from "../model/fixture.ts";
import { tensorToFloat32 } from "../model/safetensors.ts";
import { rawSafetensors, splitSafetensors, withTempDir } from "./model_test_helpers.ts";
import { rng as uniform } from "./helpers.ts";

const ITERATIONS = 3000;

/** The fuzzer's draws, from the tests' one seeded generator (tests/helpers.ts). */
function rng(seed: number) {
  const u = uniform(seed);
  return {
    int: (n: number) => Math.floor(u() * n),
    pick: <T>(xs: readonly T[]): T => xs[Math.floor(u() * xs.length)],
    float: u,
  };
}

type Rng = ReturnType<typeof rng>;

function weirdNumber(r: Rng, near: number): unknown {
  return r.pick([
    near + r.int(5) - 2,
    near * 2,
    -near,
    near + 0.5,
    2 ** 53,
    2 ** 31,
    1e300,
    0,
    null,
    String(near),
    [near],
  ]);
}

const MUTATIONS = [
  "flip-header",
  "flip-any",
  "length",
  "truncate",
  "offsets",
  "shape",
  "dtype",
  "splice",
  "extend",
  "config",
  "drop-tensor",
] as const;
type Mutation = typeof MUTATIONS[number];

function mutate(
  r: Rng,
  kind: Mutation,
  file: Uint8Array,
  config: Record<string, unknown>,
): { file: Uint8Array; config: Record<string, unknown> } {
  const out = file.slice();
  const n = Number(new DataView(file.buffer).getBigUint64(0, true));
  const { header, data } = splitSafetensors(file);
  const names = Object.keys(header).filter((k) => k !== "__metadata__");
  const name = r.pick(names);
  const entry = header[name] as unknown as Record<string, unknown>;
  switch (kind) {
    case "flip-header": {
      for (let i = 1 + r.int(3); i > 0; i--) out[8 + r.int(n)] ^= 1 << r.int(8);
      return { file: out, config };
    }
    case "flip-any": {
      for (let i = 1 + r.int(4); i > 0; i--) out[r.int(out.length)] = r.int(256);
      return { file: out, config };
    }
    case "length": {
      const v = r.pick([
        BigInt(n + r.int(17) - 8),
        BigInt(r.int(2 ** 31)),
        2n ** 63n + BigInt(r.int(1000)),
        2n ** 64n - 1n,
        0n,
        BigInt(file.length - 8),
        99_999_999n,
        100_000_001n,
      ]);
      new DataView(out.buffer).setBigUint64(0, v < 0n ? 0n : v, true);
      return { file: out, config };
    }
    case "truncate":
      return { file: out.subarray(0, r.int(out.length)), config };
    case "offsets": {
      const o = entry.data_offsets as number[];
      entry.data_offsets = r.pick([
        [o[0], weirdNumber(r, o[1])],
        [weirdNumber(r, o[0]), o[1]],
        [o[1], o[0]],
        [o[0]],
        [o[0] + 2, o[1] + 2],
        "0,8",
      ]);
      return { file: rawSafetensors(header, data), config };
    }
    case "shape": {
      const s = entry.shape as number[];
      entry.shape = r.pick([
        [...s].reverse(),
        [...s, 1],
        [...s, 2],
        s.slice(1),
        s.map((d) => weirdNumber(r, d)),
        [],
        "shape",
      ]);
      return { file: rawSafetensors(header, data), config };
    }
    case "dtype":
      entry.dtype = r.pick(["F32", "BF16", "F16", "I8", "U16", "F64", "f16", "", 3, null]);
      return { file: rawSafetensors(header, data), config };
    case "splice": {
      const text = new TextDecoder().decode(file.subarray(8, 8 + n));
      const at = r.int(text.length);
      const junk = r.pick([
        "{",
        "}",
        '"',
        ",",
        ":",
        "[",
        "]",
        "\\",
        "\u00e9",
        "\x00",
        " ",
        "1e999",
      ]);
      const changed = text.slice(0, at) + junk + text.slice(at + r.int(3));
      return { file: rawSafetensors(changed, data), config };
    }
    case "extend": {
      const extra = new Uint8Array(1 + r.int(64)).map(() => r.int(256));
      const grown = new Uint8Array(out.length + extra.length);
      grown.set(out);
      grown.set(extra, out.length);
      return { file: grown, config };
    }
    case "config": {
      const c = { ...config };
      const key = r.pick(Object.keys(c));
      if (r.int(3) === 0) delete c[key];
      else c[key] = weirdNumber(r, typeof c[key] === "number" ? c[key] as number : 1);
      return { file: out, config: c };
    }
    case "drop-tensor": {
      delete header[name];
      return { file: rawSafetensors(header, data), config };
    }
  }
}

Deno.test("fuzz: mutated checkpoints load cleanly or throw CheckpointError, never anything else", async () => {
  await withTempDir((dir) => {
    writeRandomCheckpoint(dir, {
      shape: {
        vocabSize: 16,
        hiddenSize: 8,
        numAttentionHeads: 2,
        ffnDim: 12,
        numHiddenLayers: 2,
        maxPositionEmbeddings: 6,
      },
      seed: 9,
    });
    const original = Deno.readFileSync(`${dir}/model.safetensors`);
    const config = JSON.parse(Deno.readTextFileSync(`${dir}/config.json`));
    const r = rng(20261129);
    const counts = new Map<string, number>();
    const byMutation = new Map<Mutation, { ok: number; err: number }>();
    const rss0 = Deno.memoryUsage().rss;
    let slowest = 0;
    const t0 = performance.now();
    for (let i = 0; i < ITERATIONS; i++) {
      const kind = MUTATIONS[i % MUTATIONS.length];
      const m = mutate(r, kind, original, config);
      Deno.writeFileSync(`${dir}/model.safetensors`, m.file);
      Deno.writeTextFileSync(`${dir}/config.json`, JSON.stringify(m.config));
      const start = performance.now();
      let outcome: string;
      try {
        const w = loadWeightsSync(dir);
        for (const t of allTensors(w)) tensorToFloat32(t);
        outcome = "ok";
      } catch (e) {
        if (!(e instanceof CheckpointError)) {
          throw new Error(
            `iteration ${i} (${kind}) threw ${(e as Error)?.name}: ${(e as Error)?.message}`,
            { cause: e },
          );
        }
        assert(e.message.length > 20 && e.file.length > 0, `terse error: ${e.message}`);
        outcome = e.kind;
      }
      slowest = Math.max(slowest, performance.now() - start);
      counts.set(outcome, (counts.get(outcome) ?? 0) + 1);
      const b = byMutation.get(kind) ?? { ok: 0, err: 0 };
      if (outcome === "ok") b.ok++;
      else b.err++;
      byMutation.set(kind, b);
    }
    const ms = performance.now() - t0;
    const growth = (Deno.memoryUsage().rss - rss0) / 1e6;
    const ok = counts.get("ok") ?? 0;
    const errs = [...counts].filter(([k]) => k !== "ok").map(([k, v]) => `${k} ${v}`).join(", ");
    console.log(
      `fuzz: ${ITERATIONS} mutations in ${ms.toFixed(0)} ms: ${ok} loaded ok, ` +
        `${ITERATIONS - ok} CheckpointError (${errs}); slowest ${slowest.toFixed(1)} ms, ` +
        `rss growth ${growth.toFixed(0)} MB`,
    );
    console.log(
      "  per mutation (ok/error): " +
        [...byMutation].map(([k, v]) => `${k} ${v.ok}/${v.err}`).join(", "),
    );
    assertGreater(ok, 0, "some mutations (e.g. data-byte flips) must still load");
    assertGreater(counts.size, 4, "errors of several kinds");
    assertLess(slowest, 1000, "no iteration may take a second");
    assertLess(growth, 300, "no large allocation");
  });
});
