/**
 * Helpers of the per-row (continuous batching) tests, backend-generic so the CPU and WebGPU
 * tests share them: random awkward-sized checkpoints, a mix of policies (full, linear,
 * power-law, early exit, prompt decay, a custom one), a request's solo decode (the oracle:
 * `backend.decode` of that prompt alone with `plan(policy, {P, N})`), and
 * {@linkcode driveRows}, which runs many requests through one `RowBatch` in a seeded
 * adversarial order (prefills in the same call as other rows' decode steps, prompts split
 * into chunks, rows idle in some calls, slots released and reused at random).
 *
 * @module
 */
import type { Backend, RowBatch, RowWork } from "../backend/types.ts";
import { createCpuBackend } from "../backend/cpu/backend.ts";
import { loadWeightsSync, writeRandomCheckpoint } from "../model/mod.ts";
import type { OptConfig } from "../model/types.ts";
import { customPolicy, parsePolicy, plan, type Policy, skipDecodeSet } from "../schedule/mod.ts";
import { rng } from "./helpers.ts";

/**
 * A CPU backend on a random checkpoint of the given shape (f16, written to a temporary
 * folder and loaded).
 */
export function randomCpuBackend(shape: Partial<OptConfig>, seed: number): Backend {
  const dir = Deno.makeTempDirSync({ prefix: "skipdecode-rows-" });
  try {
    writeRandomCheckpoint(dir, { shape, seed });
    return createCpuBackend(loadWeightsSync(dir));
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
}

/** Random prompts (BOS first) of the given lengths with ids in `3 .. V-1`. */
export function randomPrompts(lengths: number[], vocab: number, seed: number): number[][] {
  const r = rng(seed);
  return lengths.map((n) => [
    2,
    ...Array.from({ length: n - 1 }, () => 3 + Math.floor(r() * (vocab - 3))),
  ]);
}

/**
 * Policies of every kind for a model of `L >= 4` layers: full, linear, power-law (both with
 * warm-up), early exit, linear with prompt decay, and a custom step schedule.
 */
export function mixedPolicies(L: number): Policy[] {
  const min = 2;
  return [
    parsePolicy("full"),
    parsePolicy(`linear:max=${L},min=${min},warmup=1`),
    parsePolicy(`powerlaw:max=${L},min=${min},warmup=1,alpha=1,tau=2`),
    parsePolicy(`earlyexit:linear:max=${L},min=1,warmup=0`),
    parsePolicy(`linear:max=${L},min=${min},warmup=1,prompt=decay`),
    customPolicy({
      name: "step3",
      layerSet: ({ column, promptLength, layers }) =>
        skipDecodeSet(layers, column - promptLength < 3 ? layers : Math.max(2, layers - 2), 1),
    }),
  ];
}

/** One request of {@linkcode driveRows}. */
export interface RowRequest {
  /** Prompt ids, BOS first. */
  prompt: number[];
  /** Its policy (the row's own plan). */
  policy: Policy;
  /** Tokens to generate (no EOS stop). */
  maxNewTokens: number;
}

/** A request's tokens and per-token logits. */
export interface RowOutput {
  /** Generated ids. */
  tokens: number[];
  /** Full logits of each generated token's step. */
  logits: Float32Array[];
}

/** The per-column sets of a request's own plan (`P + N - 1` columns). */
export function requestSets(req: RowRequest, layers: number): number[][] {
  return plan(req.policy, {
    layers,
    promptLength: req.prompt.length,
    maxNewTokens: req.maxNewTokens,
  }).sets;
}

/** The oracle: the request decoded alone with its policy's plan (greedy). */
export async function soloDecode(backend: Backend, req: RowRequest): Promise<RowOutput> {
  const out = await backend.decode({
    prompts: [req.prompt],
    maxNewTokens: req.maxNewTokens,
    sets: requestSets(req, backend.config.numHiddenLayers),
    padTokenId: 1,
    recordLogits: true,
  });
  return { tokens: out.tokens[0], logits: out.logits![0] };
}

/** What {@linkcode driveRows} returns. */
export interface DriveResult {
  /** Per request, in input order. */
  outputs: RowOutput[];
  /** (token, active layer) pairs run, counted from the work submitted. */
  pairs: number;
  /** `run` calls made. */
  calls: number;
  /** Calls that held a prefill (or prompt chunk) together with another row's decode step. */
  mixedCalls: number;
  /** Slots that served more than one request. */
  reusedSlots: number;
}

/**
 * Runs every request through one `RowBatch` of `capacity` slots in a seeded adversarial
 * order; see the module documentation. Greedy; records the logits of every generated token.
 */
export async function driveRows(
  rows: RowBatch,
  layers: number,
  requests: RowRequest[],
  seed: number,
): Promise<DriveResult> {
  const r = rng(seed);
  const capacity = rows.capacity;
  interface Live {
    req: number;
    sets: number[][];
    fed: number; // prompt tokens already run
    out: RowOutput;
  }
  const live = new Map<number, Live>(); // slot -> row
  const outputs: RowOutput[] = requests.map(() => ({ tokens: [], logits: [] }));
  const served = new Array<number>(capacity).fill(0);
  let next = 0, pairs = 0, calls = 0, mixedCalls = 0;
  while (next < requests.length || live.size > 0) {
    // Admit into random free slots, sometimes several at once, sometimes none.
    const free = [...Array(capacity).keys()].filter((s) => !live.has(s));
    while (next < requests.length && free.length > 0 && (live.size === 0 || r() < 0.6)) {
      const slot = free.splice(Math.floor(r() * free.length), 1)[0];
      const q = requests[next];
      if (rows.length(slot) !== 0) throw new Error(`slot ${slot} not empty at admission`);
      live.set(slot, { req: next, sets: requestSets(q, layers), fed: 0, out: outputs[next] });
      served[slot]++;
      next++;
    }
    // One call: each live row takes part with probability 0.75 (at least one does).
    const entries: RowWork[] = [];
    const who: number[] = [];
    let prefills = 0, steps = 0;
    for (const [slot, row] of live) {
      if (r() > 0.75 && entries.length > 0) continue;
      const q = requests[row.req];
      const P = q.prompt.length;
      if (row.fed < P) {
        // The prompt, whole or in a random chunk.
        const take = r() < 0.5 ? P - row.fed : 1 + Math.floor(r() * (P - row.fed));
        entries.push({
          slot,
          tokens: q.prompt.slice(row.fed, row.fed + take),
          sets: row.sets.slice(row.fed, row.fed + take),
          recordLogits: true,
          step: 0,
        });
        row.fed += take;
        prefills++;
      } else {
        const g = row.out.tokens.length; // >= 1: feed generated token g-1 at column P+g-1
        entries.push({
          slot,
          tokens: [row.out.tokens[g - 1]],
          sets: [row.sets[P + g - 1]],
          recordLogits: true,
          step: g,
        });
        steps++;
      }
      who.push(slot);
    }
    if (entries.length === 0) continue;
    // Adversarial order of the entries within the call.
    const order = entries.map((_, i) => i).sort(() => r() - 0.5);
    const shuffled = order.map((i) => entries[i]);
    const results = await rows.run(shuffled);
    calls++;
    if (prefills > 0 && steps > 0) mixedCalls++;
    for (const e of shuffled) for (const s of e.sets) pairs += s.length;
    order.forEach((i, k) => {
      const slot = who[i];
      const row = live.get(slot)!;
      const q = requests[row.req];
      if (row.fed < q.prompt.length) return; // a prompt chunk: its choice is not a token yet
      row.out.tokens.push(results[k].tokens[0]);
      row.out.logits.push(results[k].logits![0]);
      if (row.out.tokens.length === q.maxNewTokens) {
        rows.release(slot);
        live.delete(slot);
      }
    });
  }
  return {
    outputs,
    pairs,
    calls,
    mixedCalls,
    reusedSlots: served.filter((n) => n > 1).length,
  };
}
