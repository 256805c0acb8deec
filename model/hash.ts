/**
 * SHA-256 of files, read in 1 MiB pieces (multi-gigabyte checkpoints never sit in memory
 * whole): the one content hash of the toolkit, used by the result cache's model key
 * (`convert.ts` `sourceKey`), checkpoint and report-set manifests (`io/output.ts`) and
 * work-unit manifests (`experiments/units.ts`).
 *
 * @module
 */
import { createHash } from "node:crypto";

/**
 * The hex SHA-256 of a file's bytes.
 *
 * @param path the file
 * @returns 64 hex digits
 * @example
 * ```ts
 * import { sha256File } from "./hash.ts";
 * console.log(sha256File("deno.json").length); // 64
 * ```
 */
export function sha256File(path: string): string {
  const h = createHash("sha256");
  using f = Deno.openSync(path, { read: true });
  const buf = new Uint8Array(1 << 20);
  for (;;) {
    const n = f.readSync(buf);
    if (n === null || n === 0) break;
    h.update(buf.subarray(0, n));
  }
  return h.digest("hex");
}
