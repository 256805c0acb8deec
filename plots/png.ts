/**
 * Pictures of HTML charts through headless Chromium, when it is installed
 * (`apt-get install -y chromium`). Needs `--allow-run=chromium` and write access to the
 * PNG's folder (Chromium's throw-away profile goes there).
 *
 * @example
 * ```ts
 * import { renderPng } from "./png.ts";
 * const ok = await renderPng("reports/frontier.html", "reports/frontier.png");
 * if (!ok) console.log("chromium not installed: no PNG");
 * ```
 * @module
 */
import { basename, dirname, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import type { Figure } from "./figure.ts";
import { toHtml } from "./html.ts";

/** Options of {@linkcode renderPng}. */
export interface PngOptions {
  /** Window width in CSS pixels (default 900). */
  width?: number;
  /** Window height in CSS pixels (default 600). */
  height?: number;
  /** Chromium executable (default `"chromium"`, looked up on PATH). */
  chromium?: string;
  /** Milliseconds before Chromium is killed (default 60000). */
  timeoutMs?: number;
}

/**
 * Renders an HTML file (e.g. from `toHtml`) to a PNG with headless Chromium.
 *
 * Headless Chromium lays the page out in a viewport shorter than the screenshot, so a
 * page that fills the window (`toHtml`'s default) comes out short: give `toHtml` a
 * `size` equal to the window size, or use {@linkcode renderFigurePng}.
 *
 * @param htmlPath the HTML file
 * @param pngPath where to write the PNG (its folder must exist)
 * @param opts window size, executable, timeout
 * @returns `true` when the PNG was written, `false` when Chromium is not installed
 * @throws Error when `--allow-run` lacks Chromium, or Chromium runs but writes no PNG
 *   (the message carries the end of its output)
 * @example
 * ```ts
 * import { renderPng } from "./png.ts";
 * await renderPng("reports/budget.html", "reports/budget.png", { width: 1000, height: 600 });
 * ```
 */
export async function renderPng(
  htmlPath: string,
  pngPath: string,
  opts: PngOptions = {},
): Promise<boolean> {
  const exe = opts.chromium ?? "chromium";
  const width = opts.width ?? 900;
  const height = opts.height ?? 600;
  const html = resolve(htmlPath);
  const png = resolve(pngPath);
  try {
    await Deno.stat(html);
  } catch {
    throw new Error(`renderPng: HTML file ${html} not found`);
  }
  const profile = `${dirname(png)}/.chromium-profile-${crypto.randomUUID()}`;
  const args = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--hide-scrollbars",
    "--virtual-time-budget=5000",
    `--user-data-dir=${profile}`,
    `--screenshot=${png}`,
    `--window-size=${width},${height}`,
    pathToFileURL(html).href,
  ];
  let out: Deno.CommandOutput;
  try {
    await Deno.remove(png).catch(() => {});
    out = await new Deno.Command(exe, {
      args,
      stdout: "piped",
      stderr: "piped",
      signal: AbortSignal.timeout(opts.timeoutMs ?? 60_000),
    }).output();
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    if (e instanceof Deno.errors.NotCapable || e instanceof Deno.errors.PermissionDenied) {
      throw new Error(`renderPng: running ${exe} is not allowed: add --allow-run=${exe}`);
    }
    throw e;
  } finally {
    await Deno.remove(profile, { recursive: true }).catch(() => {});
  }
  const written = await Deno.stat(png).then((s) => s.size > 0).catch(() => false);
  if (!out.success || !written) {
    const tail = new TextDecoder().decode(out.stderr).trim().split("\n").slice(-5).join("\n");
    throw new Error(
      `renderPng: ${exe} exited with code ${out.code} and ${
        written ? "" : "no "
      }PNG at ${png}:\n${tail}`,
    );
  }
  return true;
}

/**
 * Renders a figure straight to a PNG: writes a fixed-size page (plotly.js inlined) beside
 * the PNG, screenshots it with headless Chromium, and removes the page.
 *
 * @param fig the figure
 * @param pngPath where to write the PNG (its folder must exist)
 * @param opts window size (also the chart size), executable, timeout, page title
 * @returns `true` when the PNG was written, `false` when Chromium is not installed
 * @example
 * ```ts
 * import { renderFigurePng } from "./png.ts";
 * import { lossCurveChart } from "./charts.ts";
 * const fig = lossCurveChart([0, 1, 2], [{ name: "train", values: [4, 3, 2.5] }]);
 * await renderFigurePng(fig, "reports/loss.png", { width: 900, height: 500 });
 * ```
 */
export async function renderFigurePng(
  fig: Figure,
  pngPath: string,
  opts: PngOptions & { title?: string } = {},
): Promise<boolean> {
  const width = opts.width ?? 900;
  const height = opts.height ?? 600;
  const png = resolve(pngPath);
  const html = `${dirname(png)}/.${basename(png)}-${crypto.randomUUID()}.html`;
  await Deno.writeTextFile(html, toHtml(fig, { title: opts.title, size: { width, height } }));
  try {
    return await renderPng(html, png, { ...opts, width, height });
  } finally {
    await Deno.remove(html).catch(() => {});
  }
}
