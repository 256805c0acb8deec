/**
 * The OPT parameter tree of `model/tree.ts` against an independent listing (the loop
 * `optTensorSpecs` was before the tree existed, kept here as the oracle) on every config
 * variant OPT has: pre-/post-LN, projected embeddings (opt-350m), biases on/off,
 * parameter-free LayerNorms, tied/untied head; and the walks every consumer uses
 * (build, map, entries) against a loaded checkpoint and the training views.
 */
import { assert, assertEquals, assertThrows } from "@std/assert";
import { fixtureConfig } from "../model/fixture.ts";
import { loadWeightsSync } from "../model/checkpoint.ts";
import {
  buildOptTree,
  hasFinalLayerNorm,
  LAYER_PARAMS,
  mapOptTree,
  MODEL_PARAMS,
  optTensorSpecs,
  type ParamKinds,
  paramSites,
  type TensorKinds,
  treeEntries,
} from "../model/tree.ts";
import { OPT_SHAPES } from "../model/config.ts";
import type { OptConfig } from "../model/types.ts";
import { modelView, paramsFromWeights, weightsFromParams } from "../train/param_set.ts";
import { tensorToFloat32 } from "../model/safetensors.ts";

/** Each group by its Hugging Face name. */
interface Names extends ParamKinds {
  table: string;
  matrix: string;
  linear: string;
  layerNorm: string;
}

/** The tensor list as written by hand before the tree (commit c42d37f), the oracle. */
function handListed(c: OptConfig, withLmHead: boolean): [string, number[], string][] {
  const d = c.hiddenSize, f = c.ffnDim, e = c.wordEmbedProjDim;
  const out: [string, number[], string][] = [];
  const add = (n: string, s: number[], w: string) => out.push([n, s, w]);
  add("decoder.embed_tokens.weight", [c.vocabSize, e], "[vocab_size, word_embed_proj_dim]");
  add(
    "decoder.embed_positions.weight",
    [c.maxPositionEmbeddings + 2, d],
    "[max_position_embeddings + 2, hidden_size]",
  );
  if (e !== d) {
    add("decoder.project_out.weight", [e, d], "[word_embed_proj_dim, hidden_size]");
    add("decoder.project_in.weight", [d, e], "[hidden_size, word_embed_proj_dim]");
  }
  if (hasFinalLayerNorm(c) && c.layerNormElementwiseAffine) {
    add("decoder.final_layer_norm.weight", [d], "[hidden_size]");
    add("decoder.final_layer_norm.bias", [d], "[hidden_size]");
  }
  for (let i = 0; i < c.numHiddenLayers; i++) {
    const p = `decoder.layers.${i}`;
    for (const proj of ["k_proj", "v_proj", "q_proj", "out_proj"]) {
      add(`${p}.self_attn.${proj}.weight`, [d, d], "[hidden_size, hidden_size]");
      if (c.enableBias) add(`${p}.self_attn.${proj}.bias`, [d], "[hidden_size]");
    }
    if (c.layerNormElementwiseAffine) {
      add(`${p}.self_attn_layer_norm.weight`, [d], "[hidden_size]");
      add(`${p}.self_attn_layer_norm.bias`, [d], "[hidden_size]");
    }
    add(`${p}.fc1.weight`, [f, d], "[ffn_dim, hidden_size]");
    if (c.enableBias) add(`${p}.fc1.bias`, [f], "[ffn_dim]");
    add(`${p}.fc2.weight`, [d, f], "[hidden_size, ffn_dim]");
    if (c.enableBias) add(`${p}.fc2.bias`, [d], "[hidden_size]");
    if (c.layerNormElementwiseAffine) {
      add(`${p}.final_layer_norm.weight`, [d], "[hidden_size]");
      add(`${p}.final_layer_norm.bias`, [d], "[hidden_size]");
    }
  }
  if (withLmHead) add("lm_head.weight", [c.vocabSize, e], "[vocab_size, word_embed_proj_dim]");
  return out;
}

const VARIANTS: [string, OptConfig][] = [
  ["tiny pre-LN", fixtureConfig()],
  [
    "350m-style post-LN, projected",
    fixtureConfig({
      hiddenSize: 48,
      wordEmbedProjDim: 24,
      doLayerNormBefore: false,
    }),
  ],
  ["no biases", fixtureConfig({ enableBias: false })],
  ["parameter-free LayerNorms", fixtureConfig({ layerNormElementwiseAffine: false })],
  ["final LayerNorm removed", fixtureConfig({ removeFinalLayerNorm: true })],
  ["untied head", fixtureConfig({ tieWordEmbeddings: false })],
  ["opt-125m", OPT_SHAPES["opt-125m"]],
  ["opt-350m", OPT_SHAPES["opt-350m"]],
];

Deno.test("optTensorSpecs equals the hand-written listing on every config variant", () => {
  for (const [label, c] of VARIANTS) {
    for (const head of [false, true]) {
      const got = optTensorSpecs(c, head).map((s) => [s.name, s.shape, s.why]);
      assertEquals(got, handListed(c, head), `${label}, lm_head listed: ${head}`);
    }
  }
  assertEquals(optTensorSpecs(OPT_SHAPES["opt-350m"]).length, 388);
});

Deno.test("kind and part of every spec say what decays and what is a LayerNorm", () => {
  for (const s of optTensorSpecs(fixtureConfig({ wordEmbedProjDim: 16 }), true)) {
    assertEquals(s.part === "bias", s.name.endsWith(".bias"), s.name);
    assertEquals(s.kind === "layerNorm", s.name.includes("layer_norm"), s.name);
  }
});

Deno.test("the tree's sites: one per group, declared names, lm_head last and tied when it is", () => {
  const c = fixtureConfig({ hiddenSize: 48, wordEmbedProjDim: 24, doLayerNormBefore: false });
  const sites = paramSites(c);
  const perLayer = Object.keys(LAYER_PARAMS).length;
  // post-LN: no final LayerNorm; projected: project_in and project_out
  assertEquals(sites.length, 2 + 2 + c.numHiddenLayers * perLayer + 1);
  assertEquals(sites.at(-1)!.key, "lmHead");
  assert(sites.at(-1)!.tied && sites.at(-1)!.source === "decoder.embed_tokens");
  assert(!sites.some((s) => s.key === "finalLayerNorm" && s.layer === undefined));
  assertEquals(new Set(sites.map((s) => s.name)).size, sites.length);
  for (const s of sites) {
    const decl = s.layer === undefined
      ? MODEL_PARAMS[s.key as keyof typeof MODEL_PARAMS]
      : LAYER_PARAMS[s.key as keyof typeof LAYER_PARAMS];
    assertEquals(s.decl, decl);
    assert(s.decl.why.length > 10, `${s.name} says why it exists`);
  }
  const untied = paramSites({ ...c, tieWordEmbeddings: false }).at(-1)!;
  assert(!untied.tied && untied.source === "lm_head");
});

Deno.test("build, map and entries walk the same tree; a loaded checkpoint has its fields", () => {
  const w = loadWeightsSync("bundled/models/tiny-opt-e2e");
  const names = buildOptTree<Names>(w.config, {
    table: (s) => s.name,
    matrix: (s) => s.source,
    linear: (s) => s.name,
    layerNorm: (s) => s.name,
  });
  assertEquals(names.layers[3].qProj, "decoder.layers.3.self_attn.q_proj");
  assertEquals(names.lmHead, "decoder.embed_tokens"); // tied
  assertEquals(names.projectIn, undefined);
  const mapped = mapOptTree<TensorKinds, Names>(w, {
    table: (t) => t.name.replace(/\.weight$/, ""),
    matrix: (t) => t.name.replace(/\.weight$/, ""),
    linear: (l) => l.weight.name.replace(/\.weight$/, ""),
    layerNorm: (n) => n.weight.name.replace(/\.weight$/, ""),
  });
  assertEquals(mapped, names);
  for (const layer of w.layers) {
    assertEquals(Object.keys(layer).sort(), Object.keys(LAYER_PARAMS).sort());
  }
  const entries = treeEntries<TensorKinds>(w);
  assertEquals(entries.length, 2 + 1 + 12 * 8 + 1);
  assert(entries.at(-1)!.value === w.embedTokens, "the tied head is the embedding object");
});

Deno.test("training views: weights -> params -> weights is exact and views share a tied head", () => {
  const w = loadWeightsSync("bundled/models/tiny-opt-e2e");
  const p = paramsFromWeights(w);
  const back = weightsFromParams(p);
  assert(back.lmHead === back.embedTokens);
  for (
    const [a, b] of [
      [w.layers[5].fc2.bias!, back.layers[5].fc2.bias!],
      [w.layers[0].selfAttnLayerNorm.weight, back.layers[0].selfAttnLayerNorm.weight],
      [w.embedPositions, back.embedPositions],
    ]
  ) assertEquals(tensorToFloat32(b), tensorToFloat32(a), a.name);
  const view = modelView(p);
  assert(view.lmHead.w === view.embedTokens);
  assertEquals([view.layers[2].fc1.out, view.layers[2].fc1.in], [512, 128]);
  assertThrows(() => p.get("decoder.layers.99.fc1.weight"), RangeError, "no trainable tensor");
});
