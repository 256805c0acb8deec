/**
 * A stand-in {@linkcode RowBatch} for the scheduler's tests while a backend's `openRows` is
 * missing: every `run` recomputes each slot's whole sequence with the backend's uncached
 * `forward` under the slot's own per-position layer sets (docs/DESIGN.md §7: a cached decode
 * equals that recompute), so its tokens are the solo decode's. It checks the per-slot nesting
 * the contract requires and counts layer steps; KV figures stay 0.
 *
 * @module
 */
import type { Backend, RowBatch, RowBatchStats, RowResult, RowWork } from "../backend/types.ts";
import { selectToken } from "../backend/sampling.ts";

/** Wraps `backend` so that `openRows` gives a recomputing row batch. */
export function withRecomputeRows<B extends Backend>(backend: B): B {
  return new Proxy(backend, {
    get(target, key, recv) {
      if (key === "openRows") {
        return (o: { capacity: number; maxLength: number }) => recomputeRows(target, o.capacity);
      }
      const v = Reflect.get(target, key, recv);
      return typeof v === "function" ? v.bind(target) : v;
    },
  });
}

function recomputeRows(backend: Backend, capacity: number): RowBatch {
  const L = backend.config.numHiddenLayers;
  const slots: { tokens: number[]; sets: number[][]; done: number[] }[] = [];
  const fresh = () => ({ tokens: [], sets: [], done: new Array(L).fill(0) });
  for (let s = 0; s < capacity; s++) slots.push(fresh());
  let layerSteps = 0;
  return {
    capacity,
    async run(entries: readonly RowWork[]): Promise<RowResult[]> {
      for (const w of entries) {
        const s = slots[w.slot];
        w.tokens.forEach((_, i) => {
          const p = s.tokens.length + i;
          for (const l of w.sets[i]) {
            if (s.done[l] !== p) {
              throw new RangeError(`slot ${w.slot}: position ${p} runs layer ${l} (nesting)`);
            }
            s.done[l] = p + 1;
          }
        });
      }
      const out: RowResult[] = [];
      for (const w of entries) {
        const s = slots[w.slot];
        s.tokens.push(...w.tokens);
        s.sets.push(...w.sets.map((x) => [...x]));
        layerSteps += w.sets.reduce((a, x) => a + x.length, 0);
        const f = await backend.forward({ rows: [s.tokens], sets: s.sets, padTokenId: 1 });
        const V = backend.config.vocabSize;
        const T = f.length;
        const logits = f.logits.subarray((T - 1) * V, T * V);
        out.push({ tokens: [selectToken(logits, w.sampling ?? {}, 0, w.step ?? 0)] });
      }
      return out;
    },
    length: (slot) => slots[slot].tokens.length,
    truncate() {
      throw new Error("not needed by the scheduler");
    },
    release(slot) {
      slots[slot] = fresh();
    },
    stats: (): RowBatchStats => ({
      kvWrites: 0,
      kvRewrites: 0,
      kvBytes: 0,
      peakKvBytes: 0,
      layerSteps,
    }),
    dispose() {},
  };
}
