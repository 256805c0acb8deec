import { assert, assertEquals, assertThrows } from "@std/assert";
import {
  bf16BitsToFloat32,
  bytesToFloat32,
  f16BitsToFloat32,
  float32ToBf16Bits,
  float32ToBytes,
  float32ToF16Bits,
  memoryTensor,
  openSafetensors,
  parseSafetensorsHeader,
  tensorToFloat32,
  writeSafetensors,
} from "../model/safetensors.ts";
import {
  assertCheckpointError,
  rawSafetensors,
  splitSafetensors,
  withTempDir,
} from "./model_test_helpers.ts";
import { mulberry32Bits } from "../model/random.ts";

Deno.test("f16: every finite half round-trips exactly through f32", () => {
  let checked = 0;
  for (let h = 0; h < 65536; h++) {
    const x = f16BitsToFloat32(h);
    if (Number.isNaN(x)) {
      assert(Number.isNaN(f16BitsToFloat32(float32ToF16Bits(x))));
      continue;
    }
    assertEquals(float32ToF16Bits(x), h, `half 0x${h.toString(16)} -> ${x}`);
    checked++;
  }
  assertEquals(checked, 65536 - 2 * 1023); // all but the NaN payloads
});

Deno.test("f16: rounding matches the platform Float16Array (ties to even, subnormals, overflow)", () => {
  const F16 = (globalThis as unknown as { Float16Array?: Float32ArrayConstructor }).Float16Array;
  const values: number[] = [65504, 65519.99, 65520, 1e6, -1e6, 2 ** -24, 2 ** -25, 3 * 2 ** -26];
  let state = 7;
  for (let i = 0; i < 200_000; i++) {
    const [next, s] = mulberry32Bits(state);
    state = next;
    const mag = 2 ** ((s % 44) - 28); // 2^-28 .. 2^15: subnormal to overflow
    values.push((s & 1 ? -1 : 1) * mag * (1 + ((s >>> 8) % 4096) / 4096));
  }
  const bulk = new Uint16Array(float32ToBytes(new Float32Array(values), "F16").buffer);
  if (F16) {
    const ref = new Uint16Array(new F16(values).buffer);
    for (let i = 0; i < values.length; i++) {
      assertEquals(float32ToF16Bits(values[i]), ref[i], `scalar ${values[i]}`);
      assertEquals(bulk[i], ref[i], `bulk ${values[i]}`);
    }
  } else {
    for (let i = 0; i < values.length; i++) assertEquals(bulk[i], float32ToF16Bits(values[i]));
  }
  assertEquals(float32ToF16Bits(65520), 0x7c00); // rounds to infinity
  assertEquals(float32ToF16Bits(2 ** -25), 0); // tie to even: zero
  assertEquals(float32ToF16Bits(3 * 2 ** -26), 1); // above the tie: smallest subnormal
});

Deno.test("bf16: conversions are exact and round to nearest even", () => {
  for (let h = 0; h < 65536; h += 7) {
    const x = bf16BitsToFloat32(h);
    if (!Number.isNaN(x)) assertEquals(float32ToBf16Bits(x), h);
  }
  assertEquals(float32ToBf16Bits(1 + 2 ** -8), 0x3f80); // tie -> even (down)
  assertEquals(float32ToBf16Bits(1 + 3 * 2 ** -8), 0x3f82); // tie -> even (up)
  assertEquals(float32ToBf16Bits(1 + 2 ** -8 + 2 ** -20), 0x3f81);
  assert(Number.isNaN(bf16BitsToFloat32(float32ToBf16Bits(NaN))));
  const vals = new Float32Array([0.1, -3.5, 1e30, 7e-39]);
  const bulk = new Uint16Array(float32ToBytes(vals, "BF16").buffer);
  vals.forEach((v, i) => assertEquals(bulk[i], float32ToBf16Bits(v)));
});

Deno.test("write then read: every dtype, header padded to 8, lazy ranged reads", async () => {
  await withTempDir((dir) => {
    const path = `${dir}/t.safetensors`;
    const a = new Float32Array([1.5, -2.25, 3e-3, 65504, -0, 7]);
    const entries = [
      { name: "a", dtype: "F32" as const, shape: [2, 3], data: float32ToBytes(a, "F32") },
      { name: "b", dtype: "F16" as const, shape: [6], data: float32ToBytes(a, "F16") },
      { name: "c", dtype: "BF16" as const, shape: [3, 2], data: () => float32ToBytes(a, "BF16") },
      { name: "empty", dtype: "F32" as const, shape: [0, 4], data: new Uint8Array(0) },
    ];
    const size = writeSafetensors(path, entries, { format: "pt" });
    const bytes = Deno.readFileSync(path);
    assertEquals(bytes.byteLength, size);
    const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
    assertEquals((8 + n) % 8, 0, "data section starts 8-aligned");
    assertEquals(bytes[8], "{".charCodeAt(0));
    const { header } = splitSafetensors(bytes);
    assertEquals(header.a.data_offsets, [0, 24]);
    assertEquals(header.b.data_offsets, [24, 36]);
    assertEquals(header.c.data_offsets, [36, 48]);
    assertEquals(header.empty.data_offsets, [48, 48]);

    const f = openSafetensors(path);
    assertEquals(f.metadata, { format: "pt" });
    assertEquals([...f.tensors.keys()], ["a", "b", "c", "empty"]);
    assertEquals(tensorToFloat32(f.get("a")!), a);
    assertEquals(f.get("b")!.shape, [6]);
    assertEquals(tensorToFloat32(f.get("b")!)[3], 65504);
    assertEquals(tensorToFloat32(f.get("c")!)[0], 1.5);
    assertEquals(f.get("empty")!.bytes().byteLength, 0);
    assertEquals(f.get("c")!.offset, 8 + n + 36);
    // A ranged read touches only its range: damage another tensor's bytes, reread.
    bytes[8 + n + 0] ^= 0xff;
    Deno.writeFileSync(path, bytes);
    assertEquals(tensorToFloat32(f.get("b")!), bytesToFloat32(float32ToBytes(a, "F16"), "F16"));
    // Shrinking the file after opening gives a clean error on read.
    Deno.truncateSync(path, 8 + n + 30);
    assertCheckpointError(() => f.get("c")!.bytes(), "format", "truncated", path);
  });
});

Deno.test("writer rejects data that disagrees with the shape, leaves no file", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/bad.safetensors`;
    await assertCheckpointError(
      () =>
        writeSafetensors(path, [{ name: "w", dtype: "F16", shape: [3], data: new Uint8Array(4) }]),
      "format",
      "tensor w has 4 bytes",
      "needs 6",
    );
    await assertCheckpointError(
      () =>
        writeSafetensors(path, [
          { name: "w", dtype: "F32", shape: [1], data: () => new Uint8Array(8) },
        ]),
      "format",
      "tensor w has 8 bytes",
    );
    assertThrows(() => Deno.statSync(path));
    assertThrows(() => Deno.statSync(`${path}.incomplete`));
  });
});

Deno.test("memoryTensor copies its data and checks length", () => {
  const data = new Uint8Array([0, 0x3c]);
  const t = memoryTensor("x", "F16", [1], data);
  data[1] = 0;
  assertEquals(tensorToFloat32(t), new Float32Array([1]));
  assertThrows(() => memoryTensor("x", "F32", [2], new Uint8Array(4)), RangeError);
});

// ------------------------------------------------------------------ malformed files

const GOOD = { w: { dtype: "F16", shape: [2, 2], data_offsets: [0, 8] } };

async function malformed(
  bytes: Uint8Array,
  kind: "format" | "dtype",
  ...fragments: string[]
): Promise<void> {
  await withTempDir(async (dir) => {
    const path = `${dir}/model.safetensors`;
    Deno.writeFileSync(path, bytes);
    await assertCheckpointError(() => openSafetensors(path), kind, path, ...fragments);
  });
}

Deno.test("malformed: file shorter than 8 bytes", async () => {
  await malformed(new Uint8Array(5), "format", "5 bytes", "shorter than the 8-byte");
});

Deno.test("malformed: header length past the end of the file", async () => {
  await malformed(
    rawSafetensors(GOOD, new Uint8Array(8), 5000n),
    "format",
    "header length 5000",
    "past the end",
  );
});

Deno.test("malformed: absurd header length is refused without allocating it", async () => {
  await malformed(
    rawSafetensors(GOOD, new Uint8Array(8), 2n ** 62n),
    "format",
    "larger than the 100000000-byte limit",
  );
  await malformed(rawSafetensors(GOOD, new Uint8Array(8), 2n ** 64n - 1n), "format", "limit");
});

Deno.test("malformed: header is not JSON / not an object / not UTF-8", async () => {
  await malformed(
    rawSafetensors('{"w": {"dtype": "F16",', new Uint8Array(8)),
    "format",
    "header is not JSON",
  );
  await malformed(rawSafetensors("GGUF....", new Uint8Array(8)), "format", "must start with");
  await malformed(rawSafetensors("[1, 2]  ", new Uint8Array(8)), "format", "not JSON");
  const bad = rawSafetensors("{}      ", new Uint8Array(0));
  bad[9] = 0xff;
  await malformed(bad, "format", "not valid UTF-8");
});

Deno.test("malformed: data_offsets out of range", async () => {
  const h = {
    a: { dtype: "F16", shape: [2], data_offsets: [0, 4] },
    b: { dtype: "F16", shape: [2], data_offsets: [1000, 1004] },
  };
  await malformed(
    rawSafetensors(h, new Uint8Array(8)),
    "format",
    'tensor "b"',
    "[1000, 1004] are out of range",
  );
});

Deno.test("malformed: overlapping data_offsets", async () => {
  const h = {
    a: { dtype: "F16", shape: [4], data_offsets: [0, 8] },
    b: { dtype: "F16", shape: [2], data_offsets: [4, 8] },
  };
  await malformed(
    rawSafetensors(h, new Uint8Array(8)),
    "format",
    '"a" [0, 8]',
    '"b" [4, 8] overlap',
  );
});

Deno.test("malformed: gap between tensors, trailing bytes", async () => {
  const gap = {
    a: { dtype: "F16", shape: [2], data_offsets: [0, 4] },
    b: { dtype: "F16", shape: [2], data_offsets: [6, 10] },
  };
  await malformed(
    rawSafetensors(gap, new Uint8Array(10)),
    "format",
    "gap of 2 unused bytes",
    '"b"',
  );
  await malformed(rawSafetensors(GOOD, new Uint8Array(12)), "format", "4 trailing bytes");
});

Deno.test("malformed: unknown and unsupported dtypes name the tensor", async () => {
  const h = (dtype: string) => ({ w: { dtype, shape: [8], data_offsets: [0, 8] } });
  await malformed(
    rawSafetensors(h("Q7"), new Uint8Array(8)),
    "dtype",
    'unknown dtype "Q7" of tensor "w"',
  );
  await malformed(
    rawSafetensors(h("I8"), new Uint8Array(8)),
    "dtype",
    'unsupported dtype "I8" of tensor "w"',
  );
  await malformed(
    rawSafetensors({ w: { dtype: "F64", shape: [1], data_offsets: [0, 8] } }, new Uint8Array(8)),
    "dtype",
    'unsupported dtype "F64"',
  );
});

Deno.test("malformed: data length disagrees with shape", async () => {
  const h = { w: { dtype: "F32", shape: [3], data_offsets: [0, 8] } };
  await malformed(
    rawSafetensors(h, new Uint8Array(8)),
    "format",
    'tensor "w"',
    "data length mismatch",
    "needs 12",
  );
});

Deno.test("malformed: negative, fractional or huge shapes", async () => {
  const h = (shape: unknown) => ({ w: { dtype: "F16", shape, data_offsets: [0, 8] } });
  await malformed(rawSafetensors(h([-4]), new Uint8Array(8)), "format", "non-negative integers");
  await malformed(
    rawSafetensors(h([1.5, 2]), new Uint8Array(8)),
    "format",
    "non-negative integers",
  );
  await malformed(
    rawSafetensors(h([2 ** 40, 2 ** 40]), new Uint8Array(8)),
    "format",
    "data length mismatch",
  );
  await malformed(rawSafetensors(h("4"), new Uint8Array(8)), "format", "shape must be an array");
});

Deno.test("malformed: truncated data section", async () => {
  const good = rawSafetensors({
    a: { dtype: "F32", shape: [4], data_offsets: [0, 16] },
    b: { dtype: "F32", shape: [4], data_offsets: [16, 32] },
  }, new Uint8Array(32));
  await malformed(
    good.subarray(0, good.byteLength - 5),
    "format",
    "file is truncated",
    "27 follow",
    '"b"',
  );
});

Deno.test("malformed: bad data_offsets and __metadata__", async () => {
  const h = (o: unknown) => ({ w: { dtype: "F16", shape: [4], data_offsets: o } });
  await malformed(rawSafetensors(h([8, 0]), new Uint8Array(8)), "format", "0 <= begin <= end");
  await malformed(rawSafetensors(h([0]), new Uint8Array(8)), "format", "data_offsets must be");
  await malformed(
    rawSafetensors({ __metadata__: { n: 3 }, ...GOOD }, new Uint8Array(8)),
    "format",
    "__metadata__.n must be a string",
  );
});

Deno.test("parseSafetensorsHeader checks headers in memory", async () => {
  const enc = (x: unknown) => new TextEncoder().encode(JSON.stringify(x));
  assertEquals(parseSafetensorsHeader(enc(GOOD), 8, "mem").entries[0].shape, [2, 2]);
  await assertCheckpointError(
    () => parseSafetensorsHeader(enc(GOOD), 4, "mem"),
    "format",
    "mem",
    "truncated",
  );
});
