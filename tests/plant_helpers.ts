/**
 * Planting what an adversary would leave in a folder (symbolic links, FIFOs) from tests that
 * run with path-scoped permissions: Deno asks for unscoped read and write to create a link,
 * so a short child `deno eval` with full permissions does it (test setup only, never the
 * code under test).
 *
 * @module
 */

function evalAll(code: string): void {
  const r = new Deno.Command(Deno.execPath(), { args: ["eval", "-A", code] }).outputSync();
  if (!r.success) throw new Error(`test setup failed: ${new TextDecoder().decode(r.stderr)}`);
}

/**
 * Creates a symbolic link at `path` pointing at `target`.
 *
 * @example
 * ```ts
 * plantSymlink("/etc/passwd", "out/x/config.json");
 * ```
 */
export function plantSymlink(target: string, path: string): void {
  evalAll(`Deno.symlinkSync(${JSON.stringify(target)}, ${JSON.stringify(path)})`);
}

/**
 * Creates a FIFO (named pipe) at `path` with `mkfifo`; returns false where there is none.
 *
 * @example
 * ```ts
 * if (!plantFifo("out/x/prompts.txt")) console.warn("no mkfifo");
 * ```
 */
export function plantFifo(path: string): boolean {
  try {
    evalAll(
      `const r = new Deno.Command("mkfifo", { args: [${JSON.stringify(path)}] }).outputSync(); ` +
        `if (!r.success) Deno.exit(1);`,
    );
    return true;
  } catch {
    return false;
  }
}
