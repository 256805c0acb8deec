/**
 * Malformed PyTorch `.bin` files: each defect is a `CheckpointError` naming the file (and
 * the entry, opcode or global); a pickle naming a global outside the allowed set is
 * refused before anything is built, and nothing it names ever runs; seeded mutations of
 * valid files find no other exception and no hang.
 */
import { assert, assertEquals, assertLess } from "@std/assert";
import { CheckpointError } from "../model/errors.ts";
import { loadWeights } from "../model/checkpoint.ts";
import { openTorchBin } from "../model/torch_bin.ts";
import { memorySource } from "../model/byte_source.ts";
import { scanPickle, unpickle } from "../model/torch_pickle.ts";
import {
  contiguousCheckpoint,
  statePickle,
  type TorchCheckpointSpec,
  writeTorchBin,
  type WriteTorchBinOptions,
} from "../bench/torch_bin_writer.ts";
import { assertCheckpointError, withTempDir } from "./model_test_helpers.ts";
import { missingShared, rng, sharedPath } from "./helpers.ts";

/** The PyTorch fixtures live only in ../shared: without it those tests are skipped loudly. */
const NO_FIXTURES = missingShared("fixtures/torch-bin");

const enc = new TextEncoder();

/** A small valid checkpoint: three f16 tensors, one storage each. */
function smallSpec(): TorchCheckpointSpec {
  const t = (name: string, shape: number[], seed: number) => {
    const n = shape.reduce((a, b) => a * b, 1);
    const data = new Uint8Array(n * 2).map((_, i) => (i * 31 + seed * 7) & 0x3b);
    return { name, dtype: "F16" as const, shape, data };
  };
  return contiguousCheckpoint([
    t("decoder.embed_tokens.weight", [10, 4], 1),
    t("decoder.layers.0.fc1.bias", [6], 2),
    t("decoder.layers.0.fc1.weight", [6, 4], 3),
  ]);
}

function write(dir: string, name: string, options: WriteTorchBinOptions = {}, spec = smallSpec()) {
  const path = `${dir}/${name}`;
  writeTorchBin(path, spec, options);
  return path;
}

/** Pickle bytes from opcodes given as a latin1 string. */
function pkl(text: string): Uint8Array {
  return Uint8Array.from(text, (c) => c.charCodeAt(0));
}

function u32le(n: number): string {
  return String.fromCharCode(n & 255, (n >> 8) & 255, (n >> 16) & 255, (n >>> 24) & 255);
}

function binunicode(s: string): string {
  return "X" + u32le(enc.encode(s).length) + s;
}

/** Edits a file's bytes in place. */
function edit(path: string, fn: (b: Uint8Array, dv: DataView) => Uint8Array | void) {
  const b = Deno.readFileSync(path);
  const out = fn(b, new DataView(b.buffer)) ?? b;
  Deno.writeFileSync(path, out);
}

/** Offset of the central directory of a non-ZIP64 archive (from its end record). */
function dirOffset(dv: DataView): number {
  return dv.getUint32(dv.byteLength - 22 + 16, true);
}

function replaceAll(b: Uint8Array, from: string, to: string): number {
  const f = enc.encode(from), t = enc.encode(to);
  let n = 0;
  for (let i = 0; i + f.length <= b.length; i++) {
    if (f.every((x, k) => b[i + k] === x)) {
      b.set(t, i);
      n++;
    }
  }
  return n;
}

Deno.test("malformed .bin: 27 defects, each a CheckpointError naming the file", async () => {
  await withTempDir(async (dir) => {
    const cases: [string, (p: string) => void, string[]][] = [
      ["empty file", (p) => Deno.writeFileSync(p, new Uint8Array(0)), ["only 0 bytes"]],
      ["truncated ZIP (end record cut)", (p) => {
        write(dir, "x.bin");
        edit(`${dir}/x.bin`, (b) => b.subarray(0, b.length - 10));
        Deno.renameSync(`${dir}/x.bin`, p);
      }, ["no ZIP end-of-central-directory record"]],
      ["truncated ZIP (half the file)", (p) => {
        write(dir, "x.bin");
        edit(`${dir}/x.bin`, (b) => b.subarray(0, b.length >> 1));
        Deno.renameSync(`${dir}/x.bin`, p);
      }, ["no ZIP end-of-central-directory record"]],
      ["bad central directory signature", (p) => {
        writeTorchBin(p, smallSpec());
        edit(p, (b, dv) => void (b[dirOffset(dv) + 1] ^= 0xff));
      }, ["central directory entry 0", "is corrupt"]],
      ["central directory offset past the end", (p) => {
        writeTorchBin(p, smallSpec());
        edit(p, (_b, dv) => dv.setUint32(dv.byteLength - 22 + 16, 0x7fff0000, true));
      }, ["runs past the end record"]],
      ["more entries than the directory holds", (p) => {
        writeTorchBin(p, smallSpec());
        edit(p, (_b, dv) => dv.setUint16(dv.byteLength - 22 + 10, 9000, true));
      }, ["9000 entries cannot fit"]],
      ["compressed entry", (p) => {
        writeTorchBin(p, smallSpec());
        edit(p, (_b, dv) => dv.setUint16(dirOffset(dv) + 10, 8, true));
      }, ["is compressed (method 8)"]],
      ["encrypted entry", (p) => {
        writeTorchBin(p, smallSpec());
        edit(p, (_b, dv) => dv.setUint16(dirOffset(dv) + 8, 1, true));
      }, ["is encrypted"]],
      ["entry size past the central directory", (p) => {
        writeTorchBin(p, smallSpec());
        edit(p, (_b, dv) => {
          dv.setUint32(dirOffset(dv) + 20, 1 << 30, true);
          dv.setUint32(dirOffset(dv) + 24, 1 << 30, true);
        });
      }, ["run past the central directory"]],
      ["local header signature broken", (p) => {
        writeTorchBin(p, smallSpec());
        edit(p, (b) => {
          // The second entry's local header: 30 bytes before its first name.
          const at = new TextDecoder("latin1").decode(b).indexOf("archive/byteorder") - 30;
          b[at + 1] = 0x51;
        });
      }, ["entry archive/byteorder: no local header at byte"]],
      ["ZIP64 fields without a locator", (p) => {
        writeTorchBin(p, smallSpec());
        edit(p, (_b, dv) => dv.setUint32(dv.byteLength - 22 + 16, 0xffffffff, true));
      }, ["ZIP64", "no ZIP64 locator"]],
      ["ZIP64 locator pointing at garbage", (p) => {
        writeTorchBin(p, smallSpec(), { zip64: true });
        edit(p, (_b, dv) => dv.setBigUint64(dv.byteLength - 22 - 20 + 8, 3n, true));
      }, ["no ZIP64 end-of-central-directory record at byte 3"]],
      ["ZIP64 record with a huge directory offset", (p) => {
        writeTorchBin(p, smallSpec(), { zip64: true });
        edit(p, (_b, dv) => {
          const rec = Number(dv.getBigUint64(dv.byteLength - 22 - 20 + 8, true));
          dv.setBigUint64(rec + 48, 1n << 60n, true);
        });
      }, ["out of range"]],
      ["ZIP64 extra field lacking the size", (p) => {
        writeTorchBin(p, smallSpec(), { zip64: true });
        edit(p, (_b, dv) => {
          const rec = Number(dv.getBigUint64(dv.byteLength - 22 - 20 + 8, true));
          const cd = Number(dv.getBigUint64(rec + 48, true));
          const nameLen = dv.getUint16(cd + 28, true);
          dv.setUint16(cd + 46 + nameLen + 2, 0, true); // ZIP64 extra of length 0
        });
      }, ["ZIP64 extra field lacks uncompressed size"]],
      ["no data.pkl", (p) => {
        writeTorchBin(p, smallSpec());
        edit(p, (b) => void replaceAll(b, "archive/data.pkl", "archive/data.pkX"));
      }, ["no <prefix>/data.pkl entry"]],
      ["storage key missing", (p) => {
        writeTorchBin(p, smallSpec());
        edit(p, (b) => void replaceAll(b, "archive/data/1", "archive/data/Z"));
      }, ["no entry archive/data/1", "decoder.layers.0.fc1.bias"]],
      ["tensor offset past the end of its storage", (p) => {
        const spec = smallSpec();
        spec.tensors[1].offset = 5;
        writeTorchBin(p, spec);
      }, ["reaches element 10 of storage 1, which has 6"]],
      ["storage shorter than its element count", (p) => {
        const spec = smallSpec();
        const pickle = statePickle({
          ...spec,
          storages: spec.storages.map((s) => ({ ...s, numel: s.numel + 1 })),
        }, false);
        writeTorchBin(p, spec, { pickle });
      }, ["has 80 bytes, but 41 F16 elements need 82"]],
      ["unknown global", (p) => {
        const pickle = pkl("\x80\x02ctorch._utils\n_rebuild_qtensor\n)R.");
        writeTorchBin(p, smallSpec(), { pickle });
      }, ["global torch._utils._rebuild_qtensor is not allowed"]],
      ["a pickle that tries os.system", (p) => {
        const pickle = pkl(`\x80\x02cos\nsystem\n${binunicode("touch /tmp/pwned")}\x85R.`);
        writeTorchBin(p, smallSpec(), { pickle });
      }, ["global os.system is not allowed", "refused before anything was unpickled"]],
      ["an unsupported storage type", (p) => {
        const pickle = pkl("\x80\x02}(X\x01\x00\x00\x00actorch\nLongStorage\nu.");
        writeTorchBin(p, smallSpec(), { pickle });
      }, ["global torch.LongStorage is not allowed"]],
      ["NEWOBJ and other opcodes outside the reader's set", (p) => {
        writeTorchBin(p, smallSpec(), { pickle: pkl("\x80\x02)\x81.") });
      }, ["opcode NEWOBJ is not allowed"]],
      ["a pickle without STOP", (p) => {
        writeTorchBin(p, smallSpec(), { pickle: pkl("\x80\x02}(") });
      }, ["ends without STOP"]],
      ["not a state dict", (p) => {
        writeTorchBin(p, smallSpec(), { pickle: pkl("\x80\x02]K\x01a.") });
      }, ["holds (1), not a state dict"]],
      ["legacy: bad magic number", (p) => {
        writeTorchBin(p, smallSpec(), { format: "legacy" });
        edit(p, (b) => void (b[5] ^= 0x10));
      }, ["neither a ZIP archive nor a legacy PyTorch file"]],
      ["legacy: storages cut short", (p) => {
        writeTorchBin(p, smallSpec(), { format: "legacy" });
        edit(p, (b) => b.subarray(0, b.length - 5));
      }, ["is truncated: storage 2 needs bytes"]],
      ["legacy: element count disagrees with the pickle", (p) => {
        writeTorchBin(p, smallSpec(), { format: "legacy" });
        edit(p, (b, dv) => {
          // The last storage's count sits 8 bytes before its 48 data bytes.
          dv.setBigInt64(b.length - 48 - 8, 25n, true);
        });
      }, ["records 25 elements, the pickle says 24"]],
    ];
    assert(cases.length >= 15);
    for (const [label, make, fragments] of cases) {
      const path = `${dir}/${label.replace(/\W+/g, "-")}.bin`;
      make(path);
      const e = await assertCheckpointError(() => openTorchBin(path), "format", path, ...fragments)
        .catch((err) => {
          throw new Error(`case "${label}": ${(err as Error).message}`);
        });
      assertEquals(e.file, path, label);
    }
    let ran = true;
    try {
      Deno.statSync("/tmp/pwned");
    } catch {
      ran = false;
    }
    assert(!ran, "the os.system pickle must not have run");
  });
});

Deno.test("malformed .bin through loadWeights: the folder's file and shard are named", {
  ignore: NO_FIXTURES,
}, async () => {
  await withTempDir(async (dir) => {
    const fixture = sharedPath("fixtures/torch-bin/pre-ln-sharded");
    for (const f of Deno.readDirSync(fixture)) {
      Deno.copyFileSync(`${fixture}/${f.name}`, `${dir}/${f.name}`);
    }
    Deno.chmodSync(`${dir}/pytorch_model-00002-of-00002.bin`, 0o644);
    Deno.removeSync(`${dir}/pytorch_model-00002-of-00002.bin`);
    await assertCheckpointError(
      () => loadWeights(dir),
      "index",
      "shard pytorch_model-00002-of-00002.bin named in",
      `${dir}/pytorch_model.bin.index.json`,
    );
    const one = sharedPath("fixtures/torch-bin/pre-ln-zip/pytorch_model.bin");
    const bytes = Deno.readFileSync(one);
    Deno.writeFileSync(`${dir}/pytorch_model-00002-of-00002.bin`, bytes.subarray(0, 5000));
    await assertCheckpointError(
      () => loadWeights(dir),
      "format",
      `${dir}/pytorch_model-00002-of-00002.bin`,
    );
  });
});

Deno.test("restricted unpickler: every disallowed global is refused in the scan, before building", () => {
  const hooks = {
    persistentLoad: () => {
      throw new Error("persistentLoad must not be reached");
    },
    reduce: () => {
      throw new Error("reduce must not be reached");
    },
  };
  const evil = [
    "os.system",
    "builtins.eval",
    "__builtin__.exec",
    "subprocess.Popen",
    "torch.load",
    "numpy.core.multiarray._reconstruct",
    "torch._utils._rebuild_device_tensor_from_numpy",
    "collections.defaultdict",
  ];
  for (const g of evil) {
    const [mod, name] = [g.slice(0, g.lastIndexOf(".")), g.slice(g.lastIndexOf(".") + 1)];
    // A valid-looking persistent id first: the scan must refuse before it is ever loaded.
    const bytes = pkl(`\x80\x02(${binunicode("storage")}tQc${mod}\n${name}\n)R.`);
    const src = memorySource(bytes, "evil.pkl");
    for (
      const run of [
        () => scanPickle(src, 0, bytes.length, "data.pkl"),
        () => unpickle(src, 0, bytes.length, "data.pkl", hooks),
      ]
    ) {
      let caught: unknown;
      try {
        run();
      } catch (e) {
        caught = e;
      }
      assert(caught instanceof CheckpointError, `${g}: ${caught}`);
      assert(caught.message.includes(`global ${g} is not allowed`), caught.message);
      assert(caught.message.includes("evil.pkl"), caught.message);
    }
  }
});

function mutate(base: Uint8Array, r: () => number, pickleEnd: number): Uint8Array {
  const b = base.slice();
  const n = 1 + Math.floor(r() * 4);
  let out = b;
  for (let k = 0; k < n; k++) {
    const zone = r();
    const pos = zone < 0.4
      ? Math.floor(r() * Math.min(pickleEnd, out.length))
      : zone < 0.7
      ? Math.max(0, out.length - 1 - Math.floor(r() * 600))
      : Math.floor(r() * out.length);
    const kind = r();
    if (kind < 0.4) out[pos] = Math.floor(r() * 256);
    else if (kind < 0.6) out[pos] ^= 1 << Math.floor(r() * 8);
    else if (kind < 0.75 && pos + 4 <= out.length) {
      new DataView(out.buffer).setUint32(
        pos,
        r() < 0.5 ? 0xffffffff : Math.floor(r() * 2 ** 32),
        true,
      );
    } else if (kind < 0.85) out = out.slice(0, pos);
    else if (kind < 0.95) {
      const ins = Uint8Array.from({ length: 1 + Math.floor(r() * 8) }, () => Math.floor(r() * 256));
      const next = new Uint8Array(out.length + ins.length);
      next.set(out.subarray(0, pos));
      next.set(ins, pos);
      next.set(out.subarray(pos), pos + ins.length);
      out = next;
    } else {
      const next = new Uint8Array(Math.max(0, out.length - 1));
      next.set(out.subarray(0, pos));
      next.set(out.subarray(pos + 1), pos);
      out = next;
    }
  }
  return out;
}

Deno.test(
  "fuzz: 4500 seeded mutations of .bin files (one written by PyTorch) give only CheckpointErrors, no hang",
  {
    ignore: NO_FIXTURES,
  },
  async () => {
    await withTempDir((dir) => {
      const bases: [string, Uint8Array, number][] = [];
      for (
        const [label, options] of [["zip", {}], ["zip64", { zip64: true }], ["legacy", {
          format: "legacy",
        }]] as const
      ) {
        const p = write(dir, `${label}.bin`, options as WriteTorchBinOptions);
        bases.push([label, Deno.readFileSync(p), label === "legacy" ? 1200 : 700]);
      }
      // And the real PyTorch file (its data.pkl is the first 5.6 kB).
      const real = Deno.readFileSync(sharedPath("fixtures/torch-bin/pre-ln-zip/pytorch_model.bin"));
      bases.push(["pytorch", real, 5600]);
      const path = `${dir}/mutant.bin`;
      let errors = 0, loaded = 0, slowest = 0;
      const kinds = new Map<string, number>();
      for (const [label, base, pickleEnd] of bases) {
        const r = rng(label.length * 1000 + 9);
        for (let i = 0; i < (label === "pytorch" ? 1500 : 1000); i++) {
          const bytes = mutate(base, r, pickleEnd);
          Deno.writeFileSync(path, bytes);
          const t0 = performance.now();
          try {
            const f = openTorchBin(path);
            for (const t of f.tensors.values()) {
              const b = t.bytes();
              assertEquals(b.byteLength, t.byteLength);
            }
            loaded++;
          } catch (e) {
            if (!(e instanceof CheckpointError)) {
              throw new Error(
                `${label} mutation ${i}: not a CheckpointError: ${e}\n${(e as Error).stack}`,
              );
            }
            assert(e.message.includes(path), `${label} mutation ${i}: ${e.message}`);
            errors++;
            kinds.set(e.kind, (kinds.get(e.kind) ?? 0) + 1);
          }
          slowest = Math.max(slowest, performance.now() - t0);
        }
      }
      console.log(
        `fuzz: ${errors} CheckpointErrors (${
          [...kinds].map(([k, n]) => `${k} ${n}`).join(", ")
        }), ` +
          `${loaded} mutants still loadable, slowest ${slowest.toFixed(1)} ms`,
      );
      assertEquals(errors + loaded, 4500);
      assert(loaded > 0, "some mutations (in tensor bytes) leave a loadable file");
      assert(errors > 2000, `only ${errors} mutations were caught`);
      assertLess(slowest, 2000);
    });
  },
);
