/**
 * Helpers shared by the `tests/model_*_test.ts` files: temp folders, raw safetensors
 * bytes, header rewriting and the path of the shared checkpoint.
 *
 * @module
 */
import { CheckpointError, type CheckpointErrorKind } from "../model/errors.ts";
import { assert, assertStringIncludes } from "@std/assert";
import { sharedPath } from "./helpers.ts";
import { loadWeights, writeRandomCheckpoint } from "../model/mod.ts";
import { mapOptTree, type TensorKinds } from "../model/tree.ts";
import type { OptWeights, Tensor } from "../model/types.ts";

/** Runs `fn` with a fresh temp folder, removed afterwards. */
export async function withTempDir<T>(fn: (dir: string) => T | Promise<T>): Promise<T> {
  const dir = Deno.makeTempDirSync({ prefix: "skipdecode-model-" });
  try {
    return await fn(dir);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
}

/** Encodes a safetensors file from a header (object or raw text) and data bytes. */
export function rawSafetensors(
  header: unknown,
  data: Uint8Array,
  lengthOverride?: bigint,
): Uint8Array {
  const text = typeof header === "string" ? header : JSON.stringify(header);
  const json = new TextEncoder().encode(text);
  const out = new Uint8Array(8 + json.byteLength + data.byteLength);
  new DataView(out.buffer).setBigUint64(0, lengthOverride ?? BigInt(json.byteLength), true);
  out.set(json, 8);
  out.set(data, 8 + json.byteLength);
  return out;
}

/** Splits a safetensors file into its parsed header and data section. */
export function splitSafetensors(bytes: Uint8Array): {
  header: Record<string, { dtype: string; shape: number[]; data_offsets: number[] }>;
  data: Uint8Array;
} {
  const n = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n)));
  return { header, data: bytes.subarray(8 + n) };
}

/** Rewrites the header of a safetensors file in place through `edit`, keeping the data. */
export function editHeader(
  path: string,
  edit: (h: Record<string, Record<string, unknown>>) => void,
  dataEdit?: (data: Uint8Array) => Uint8Array,
): void {
  const { header, data } = splitSafetensors(Deno.readFileSync(path));
  edit(header as unknown as Record<string, Record<string, unknown>>);
  Deno.writeFileSync(path, rawSafetensors(header, dataEdit ? dataEdit(data.slice()) : data));
}

/** Asserts that `fn` throws (or rejects with) a CheckpointError of `kind` whose message has all fragments. */
export async function assertCheckpointError(
  fn: () => unknown,
  kind: CheckpointErrorKind,
  ...fragments: string[]
): Promise<CheckpointError> {
  let caught: unknown;
  try {
    await fn();
  } catch (e) {
    caught = e;
  }
  assert(caught !== undefined, `expected a CheckpointError (${kind}), nothing was thrown`);
  assert(
    caught instanceof CheckpointError,
    `expected a CheckpointError, got ${String(caught)}\n${(caught as Error)?.stack ?? ""}`,
  );
  assert(
    caught.kind === kind,
    `expected kind ${kind}, got ${caught.kind}: ${caught.message}`,
  );
  for (const f of fragments) assertStringIncludes(caught.message, f);
  return caught;
}

/** The trained tiny checkpoint the repository ships (`bundled/models/tiny-opt-e2e`). */
export function sharedModelDir(): string {
  return sharedPath("models/tiny-opt-e2e");
}

/** A random checkpoint of awkward sizes (d = 40, 5 heads, f = 72, V = 101, 3 layers, tied). */
export async function awkwardWeights(dtype: "F16" | "F32" = "F16"): Promise<OptWeights> {
  const dir = Deno.makeTempDirSync({ prefix: "skipdecode-model-" });
  writeRandomCheckpoint(dir, {
    shape: {
      vocabSize: 101,
      hiddenSize: 40,
      numAttentionHeads: 5,
      ffnDim: 72,
      numHiddenLayers: 3,
      wordEmbedProjDim: 40,
    },
    dtype,
    seed: 11,
  });
  globalThis.addEventListener("unload", () => Deno.removeSync(dir, { recursive: true }));
  return await loadWeights(dir);
}

/** The same weights, counting every tensor read (`bytes()`). */
export function countingReads(w: OptWeights): { weights: OptWeights; reads: () => number } {
  let reads = 0;
  const wrapped = new Map<Tensor, Tensor>();
  const wrap = (t: Tensor): Tensor => {
    if (!wrapped.has(t)) {
      wrapped.set(t, {
        name: t.name,
        dtype: t.dtype,
        shape: t.shape,
        bytes: () => (reads++, t.bytes()),
      });
    }
    return wrapped.get(t)!;
  };
  const weights = mapOptTree<TensorKinds, TensorKinds>(w, {
    table: wrap,
    matrix: wrap,
    linear: (l) => ({ weight: wrap(l.weight), bias: l.bias && wrap(l.bias) }),
    layerNorm: (n) => ({ weight: wrap(n.weight), bias: wrap(n.bias) }),
  });
  return { weights, reads: () => reads };
}
