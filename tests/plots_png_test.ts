// Tests of plots/png.ts. Absence of Chromium must give `false`, never an error; when
// Chromium is installed (`apt-get install -y chromium`) a chart is rendered and its pixels
// are decoded to check that the plot was drawn at the requested size.
import { assert, assertEquals, assertRejects } from "@std/assert";
import { budgetChart } from "../plots/charts.ts";
import { renderFigurePng, renderPng } from "../plots/png.ts";
import { toHtml } from "../plots/html.ts";

async function hasChromium(): Promise<boolean> {
  try {
    const out = await new Deno.Command("chromium", {
      args: ["--version"],
      stdout: "null",
      stderr: "null",
    })
      .output();
    return out.success;
  } catch {
    return false;
  }
}

/** Decodes an 8-bit RGB or RGBA, non-interlaced PNG: {width, height, rgb per pixel}. */
async function decodePng(
  bytes: Uint8Array,
): Promise<{ width: number; height: number; pixel: (x: number, y: number) => number[] }> {
  const sig = [137, 80, 78, 71, 13, 10, 26, 10];
  assertEquals([...bytes.slice(0, 8)], sig, "not a PNG");
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let off = 8;
  let width = 0, height = 0, colorType = 0;
  const idat: Uint8Array[] = [];
  while (off < bytes.length) {
    const len = view.getUint32(off);
    const type = new TextDecoder().decode(bytes.slice(off + 4, off + 8));
    const body = bytes.slice(off + 8, off + 8 + len);
    if (type === "IHDR") {
      width = view.getUint32(off + 8);
      height = view.getUint32(off + 12);
      assertEquals(body[8], 8, "bit depth");
      colorType = body[9];
      assertEquals(body[12], 0, "interlace");
    } else if (type === "IDAT") idat.push(body);
    off += 12 + len;
  }
  const bpp = colorType === 6 ? 4 : colorType === 2 ? 3 : 0;
  assert(bpp > 0, `unsupported PNG colour type ${colorType}`);
  const z = new Blob(idat as BlobPart[]).stream().pipeThrough(new DecompressionStream("deflate"));
  const raw = new Uint8Array(await new Response(z).arrayBuffer());
  const stride = width * bpp;
  const img = new Uint8Array(height * stride);
  for (let y = 0; y < height; y++) {
    const f = raw[y * (stride + 1)];
    for (let i = 0; i < stride; i++) {
      const x = raw[y * (stride + 1) + 1 + i];
      const a = i >= bpp ? img[y * stride + i - bpp] : 0;
      const b = y > 0 ? img[(y - 1) * stride + i] : 0;
      const c = i >= bpp && y > 0 ? img[(y - 1) * stride + i - bpp] : 0;
      let v: number;
      if (f === 0) v = x;
      else if (f === 1) v = x + a;
      else if (f === 2) v = x + b;
      else if (f === 3) v = x + ((a + b) >> 1);
      else {
        const p = a + b - c;
        const pa = Math.abs(p - a), pb = Math.abs(p - b), pc = Math.abs(p - c);
        v = x + (pa <= pb && pa <= pc ? a : pb <= pc ? b : c);
      }
      img[y * stride + i] = v & 255;
    }
  }
  return {
    width,
    height,
    pixel: (x, y) => [...img.slice(y * stride + x * bpp, y * stride + x * bpp + 3)],
  };
}

Deno.test("renderPng: false when Chromium is absent, error for a missing page", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/p.html`, "<html></html>");
    const ok = await renderPng(`${dir}/p.html`, `${dir}/p.png`, {
      chromium: "no-such-chromium-binary-here",
    });
    assertEquals(ok, false);
    await assertRejects(() => renderPng(`${dir}/missing.html`, `${dir}/p.png`), Error, "not found");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test({
  name: "renderFigurePng: a chart drawn at the requested size (needs chromium)",
  ignore: !(await hasChromium()),
  async fn() {
    const dir = await Deno.makeTempDir();
    try {
      // One thick red line at budget 6 of 12: it must appear mid-height in the picture.
      const fig = budgetChart([{ name: "c6", budgets: Array(20).fill(6) }], { layers: 12 });
      (fig.data[0].line as Record<string, unknown>).color = "#ff0000";
      (fig.data[0].line as Record<string, unknown>).width = 4;
      const ok = await renderFigurePng(fig, `${dir}/c6.png`, { width: 640, height: 400 });
      assertEquals(ok, true);
      const png = await decodePng(await Deno.readFile(`${dir}/c6.png`));
      assertEquals([png.width, png.height], [640, 400]);
      // Count pure-red pixels per row; the line is a horizontal band.
      const redRows: number[] = [];
      for (let y = 0; y < png.height; y++) {
        let n = 0;
        for (let x = 0; x < png.width; x++) {
          const [r, g, b] = png.pixel(x, y);
          if (r > 220 && g < 40 && b < 40) n++;
        }
        if (n > png.width / 3) redRows.push(y);
      }
      assert(redRows.length >= 2, `no red line found (rows ${redRows})`);
      const mid = redRows[Math.floor(redRows.length / 2)];
      assert(mid > 0.3 * png.height && mid < 0.8 * png.height, `line at row ${mid}`);
      // Nothing but the page (and the temporary page/profile are cleaned up).
      const left = [...Deno.readDirSync(dir)].map((e) => e.name);
      assertEquals(left, ["c6.png"]);
      // And a page from toHtml renders too.
      await Deno.writeTextFile(`${dir}/p.html`, toHtml(fig, { size: { width: 500, height: 300 } }));
      assertEquals(
        await renderPng(`${dir}/p.html`, `${dir}/p.png`, { width: 500, height: 300 }),
        true,
      );
      assertEquals((await decodePng(await Deno.readFile(`${dir}/p.png`))).width, 500);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
