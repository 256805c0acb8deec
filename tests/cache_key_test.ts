/**
 * The result cache's model key (`sourceKey` in `model/convert.ts`, used by sweeps, the demo
 * and the procedure) changes whenever the weights actually loaded change: a replaced
 * `pytorch_model.bin`, a re-pointed `model.safetensors` link, a same-size file copied
 * over with its old modification time. The old key listed only regular `*.safetensors`
 * files by name, size and mtime, so each of these reused stale results.
 */
import { assert, assertEquals, assertNotEquals } from "@std/assert";
import { loadWeightsSync } from "../model/checkpoint.ts";
import { sourceKey } from "../model/convert.ts";
import { writeRandomCheckpoint } from "../model/fixture.ts";
import { missingShared, sharedPath } from "./helpers.ts";
import { plantSymlink } from "./plant_helpers.ts";

Deno.test("cache key: a re-pointed link, a same-size same-mtime copy, and a replaced .bin change it", async () => {
  const root = Deno.makeTempDirSync({ prefix: "cache-key-" });
  try {
    writeRandomCheckpoint(`${root}/a`, { seed: 1 });
    writeRandomCheckpoint(`${root}/b`, { seed: 2 });
    const dir = `${root}/m`;
    Deno.mkdirSync(dir);
    Deno.copyFileSync(`${root}/a/config.json`, `${dir}/config.json`);
    Deno.mkdirSync(`${dir}/blobs`);
    Deno.copyFileSync(`${root}/a/model.safetensors`, `${dir}/blobs/one`);
    Deno.copyFileSync(`${root}/b/model.safetensors`, `${dir}/blobs/two`);
    plantSymlink("blobs/one", `${dir}/model.safetensors`);
    const k1 = await sourceKey(loadWeightsSync(dir));
    assertEquals(await sourceKey(loadWeightsSync(dir)), k1, "stable while nothing changes");
    Deno.removeSync(`${dir}/model.safetensors`);
    plantSymlink("blobs/two", `${dir}/model.safetensors`);
    const k2 = await sourceKey(loadWeightsSync(dir));
    assertNotEquals(k2, k1, "re-pointed link");
    // Same size, same mtime, other bytes (cp -p over it).
    const st = Deno.statSync(`${dir}/blobs/two`);
    Deno.writeFileSync(`${dir}/blobs/two`, Deno.readFileSync(`${dir}/blobs/one`));
    Deno.utimeSync(`${dir}/blobs/two`, st.atime!, st.mtime!);
    assertEquals(Deno.statSync(`${dir}/blobs/two`).mtime?.getTime(), st.mtime?.getTime());
    assertNotEquals(await sourceKey(loadWeightsSync(dir)), k2, "same size and mtime, new bytes");
    if (missingShared("fixtures/torch-bin/pre-ln-zip")) return;
    const bin = `${root}/bin`;
    Deno.mkdirSync(bin);
    for (const e of Deno.readDirSync(sharedPath("fixtures/torch-bin/pre-ln-zip"))) {
      Deno.copyFileSync(sharedPath(`fixtures/torch-bin/pre-ln-zip/${e.name}`), `${bin}/${e.name}`);
    }
    const w = loadWeightsSync(bin);
    assertEquals(w.format, "bin");
    const b1 = await sourceKey(w);
    const bytes = Deno.readFileSync(`${bin}/pytorch_model.bin`);
    Deno.removeSync(`${bin}/pytorch_model.bin`);
    Deno.writeFileSync(`${bin}/pytorch_model.bin`, bytes);
    assert(b1 !== await sourceKey(loadWeightsSync(bin)), "replaced pytorch_model.bin");
  } finally {
    Deno.removeSync(root, { recursive: true });
  }
});
