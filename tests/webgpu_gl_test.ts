/**
 * The kernels on wgpu's OpenGL (EGL) adapter, the one a Mesa machine without
 * `mesa-vulkan-drivers` offers: a subprocess with every Vulkan driver hidden
 * (`VK_ICD_FILENAMES=/nonexistent`) runs `tests/webgpu_gl_probe.ts`, which validates the
 * adapter and decodes a small random OPT on it. Every kernel family must pass there (the
 * texture matmul read zeros from one-layer array textures before, see
 * `kernels/matmul/texture.ts`), the decode must equal the CPU's, and the run must not flood
 * stderr (wgpu logged a warning per dispatch). Without EGL/GL libraries (`libegl1
 * libegl-mesa0 libgl1-mesa-dri`) there is no such adapter: the test then says so loudly and
 * checks nothing, except under CI (`CI` set, `.ci/run` installs them), where it fails.
 */
import { assert, assertEquals, assertLess } from "@std/assert";
import { fileURLToPath } from "node:url";
import type { AdapterValidation } from "../kernels/validate.ts";

const PROBE = fileURLToPath(new URL("./webgpu_gl_probe.ts", import.meta.url));

Deno.test("the GL adapter computes what the CPU does, without a flood on stderr", async () => {
  const tmp = Deno.makeTempDirSync({ prefix: "webgpu-gl-xdg-" });
  try {
    Deno.chmodSync(tmp, 0o700);
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "--quiet", "--allow-read", "--allow-write", "--allow-env", PROBE],
      env: { VK_ICD_FILENAMES: "/nonexistent", XDG_RUNTIME_DIR: tmp, NO_COLOR: "1" },
      stdout: "piped",
      stderr: "piped",
    }).output();
    const stderr = new TextDecoder().decode(out.stderr);
    const stdout = new TextDecoder().decode(out.stdout).trim();
    assert(out.success, `the GL probe failed (exit ${out.code}):\n${stderr.slice(-3000)}`);
    const result = JSON.parse(stdout.split("\n").at(-1)!) as {
      adapter: string | null;
      validation: AdapterValidation;
      tokens: { gpu: number[][]; cpu: number[][] };
    };
    if (!result.adapter) {
      const msg = "no GL adapter (apt-get install libegl1 libegl-mesa0 libgl1-mesa-dri)";
      if (Deno.env.get("CI")) throw new Error(`${msg}; CI is set, so the GL test fails`);
      console.warn(`\n!!! SKIPPING THE GL ADAPTER TEST: ${msg} !!!\n`);
      return;
    }
    const lines = stderr.split("\n").filter((l) => l.trim()).length;
    console.log(
      `GL adapter "${result.adapter}": validation ${result.validation.ms.toFixed(0)} ms, ` +
        `${result.validation.checks.filter((c) => c.ok).length}/` +
        `${result.validation.checks.length} checks pass; ${lines} stderr lines`,
    );
    assertEquals(
      result.validation.checks.filter((c) => !c.ok).map((c) => c.name),
      [],
      "checks failing on the GL adapter",
    );
    assertEquals(result.tokens.gpu, result.tokens.cpu, "GL decode differs from the CPU");
    assertLess(lines, 20, `stderr of the GL run:\n${stderr.slice(0, 3000)}`);
  } finally {
    Deno.removeSync(tmp, { recursive: true });
  }
});
