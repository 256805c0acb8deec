/**
 * A progress display for long runs (sweeps, the demo): one `\r`-updated line on a terminal's
 * stderr, plain lines when stderr is not a terminal (CI logs), and one updating output in a
 * Deno Jupyter notebook (`Deno.jupyter.display` with a `display_id`, then `update: true`).
 *
 * @example
 * ```ts
 * import { createProgress } from "./progress.ts";
 * const progress = createProgress();
 * for (let i = 1; i <= 10; i++) progress.update({ label: "work", done: i, total: 10 });
 * await progress.finish("done");
 * ```
 * @module
 */

/** Where a run stands. */
export interface ProgressState {
  /** What is running, e.g. `"generate linear:max=12,min=4 (2/7)"`. */
  label: string;
  /** Units done in this step. */
  done: number;
  /** Units in this step. */
  total: number;
  /** Share of the whole run done, 0 to 1, when known (for the time left). */
  overall?: number;
}

/** A progress display made by {@linkcode createProgress}. */
export interface ProgressDisplay {
  /** Shows a new state (throttled; the last state of a step is always shown). */
  update(state: ProgressState): void;
  /** Shows a final line and waits for pending notebook updates. */
  finish(message?: string): Promise<void>;
}

/**
 * `"auto"`: Jupyter inside the Deno kernel, else a terminal line when stderr is a
 * terminal, else plain lines. `"none"` shows nothing.
 */
export type ProgressMode = "auto" | "terminal" | "lines" | "jupyter" | "none";

/** Options of {@linkcode createProgress}. */
export interface ProgressOptions {
  /** Smallest interval between two shown states, ms (default 250; lines: 15000). */
  minIntervalMs?: number;
  /** Where text goes (default: stderr); used by the terminal and line modes. */
  write?: (text: string) => void;
  /** Clock (default `performance.now`), for tests. */
  now?: () => number;
}

type JupyterNs = {
  display(
    obj: unknown,
    opts: { raw: boolean; display_id?: string; update?: boolean },
  ): Promise<void>;
};

/** `Deno.jupyter` inside the kernel; elsewhere its getter throws or it is absent. */
function jupyterNs(): JupyterNs | undefined {
  try {
    const j = (Deno as unknown as { jupyter?: JupyterNs }).jupyter;
    return j && typeof j.display === "function" ? j : undefined;
  } catch {
    return undefined;
  }
}

function stderrIsTerminal(): boolean {
  try {
    return Deno.stderr.isTerminal();
  } catch {
    return false;
  }
}

/**
 * `m:ss` (or `h:mm:ss`) of a duration.
 *
 * @param ms milliseconds
 * @returns the clock form
 * @example
 * ```ts
 * import { formatDuration } from "./progress.ts";
 * formatDuration(75_000); // "1:15"
 * ```
 */
export function formatDuration(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const ss = String(s % 60).padStart(2, "0");
  return h > 0 ? `${h}:${String(m).padStart(2, "0")}:${ss}` : `${m}:${ss}`;
}

/**
 * One line describing a state: a 20-cell bar, `done/total`, the label, the time spent and,
 * when `overall` is known and above 2%, the time left.
 *
 * @param state the state
 * @param elapsedMs time since the run began
 * @returns the line (no line break)
 * @example
 * ```ts
 * import { progressText } from "./progress.ts";
 * progressText({ label: "generate full", done: 5, total: 10, overall: 0.25 }, 30_000);
 * // "[##########----------] 5/10 generate full | 0:30 elapsed, ~1:30 left"
 * ```
 */
export function progressText(state: ProgressState, elapsedMs: number): string {
  const frac = state.total > 0 ? Math.min(1, Math.max(0, state.done / state.total)) : 1;
  const cells = Math.round(frac * 20);
  const bar = `[${"#".repeat(cells)}${"-".repeat(20 - cells)}]`;
  let time = `${formatDuration(elapsedMs)} elapsed`;
  if (state.overall !== undefined && state.overall > 0.02 && state.overall < 1) {
    time += `, ~${formatDuration(elapsedMs * (1 - state.overall) / state.overall)} left`;
  }
  return `${bar} ${state.done}/${state.total} ${state.label} | ${time}`;
}

function escapeHtml(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

function progressHtml(state: ProgressState, elapsedMs: number): string {
  const pct = state.total > 0 ? Math.round(100 * Math.min(1, state.done / state.total)) : 100;
  const text = escapeHtml(progressText(state, elapsedMs).replace(/^\[[#-]+\] /, ""));
  return `<div style="font-family:monospace;font-size:12px">` +
    `<progress value="${pct}" max="100" style="width:240px;vertical-align:middle"></progress> ` +
    `${text}</div>`;
}

/**
 * Makes a progress display (see {@linkcode ProgressMode}).
 *
 * @param mode where to show progress (default `"auto"`)
 * @param options throttle interval, output function, clock
 * @returns the display
 * @example
 * ```ts
 * import { createProgress } from "./progress.ts";
 * const p = createProgress("lines", { write: (t) => console.log(t.trim()) });
 * p.update({ label: "nll full", done: 8, total: 8 });
 * await p.finish();
 * ```
 */
export function createProgress(
  mode: ProgressMode = "auto",
  options: ProgressOptions = {},
): ProgressDisplay {
  const now = options.now ?? (() => performance.now());
  const start = now();
  const enc = new TextEncoder();
  const write = options.write ?? ((text: string) => {
    try {
      Deno.stderr.writeSync(enc.encode(text));
    } catch { /* stderr closed */ }
  });
  const jupyter = jupyterNs();
  const resolved = mode === "auto"
    ? (jupyter ? "jupyter" : stderrIsTerminal() ? "terminal" : "lines")
    : mode;
  if (resolved === "jupyter" && !jupyter) {
    throw new Error('progress mode "jupyter" needs the Deno Jupyter kernel (Deno.jupyter)');
  }
  const interval = options.minIntervalMs ?? (resolved === "lines" ? 15_000 : 250);
  let last = -Infinity;
  let lastLabel = "";
  let lastState: ProgressState | undefined;
  let pending: Promise<void> = Promise.resolve();
  const displayId = `skipdecode-progress-${crypto.randomUUID()}`;
  let shown = false;

  const show = (state: ProgressState) => {
    const elapsed = now() - start;
    if (resolved === "terminal") {
      write(`\r${progressText(state, elapsed)}\x1b[K`);
    } else if (resolved === "lines") {
      write(`${progressText(state, elapsed)}\n`);
    } else if (resolved === "jupyter") {
      const bundle = {
        "text/plain": progressText(state, elapsed),
        "text/html": progressHtml(state, elapsed),
      };
      const update = shown;
      shown = true;
      pending = pending.then(() =>
        jupyter!.display(bundle, { raw: true, display_id: displayId, update })
      ).catch(() => {});
    }
  };

  return {
    update(state) {
      if (resolved === "none") return;
      const same = lastState !== undefined && lastState.label === state.label &&
        lastState.done === state.done && lastState.total === state.total;
      lastState = state;
      if (same) return;
      const t = now();
      const stepEnd = state.done >= state.total;
      const newStep = state.label !== lastLabel;
      if (t - last < interval && !stepEnd && !(resolved === "lines" && newStep)) return;
      last = t;
      lastLabel = state.label;
      show(state);
    },
    async finish(message) {
      if (resolved === "none") return;
      const elapsed = formatDuration(now() - start);
      const text = `${message ?? "done"} (${elapsed})`;
      if (resolved === "terminal") write(`\r${text}\x1b[K\n`);
      else if (resolved === "lines") write(`${text}\n`);
      else if (resolved === "jupyter") {
        const update = shown;
        shown = true;
        const state = lastState ?? { label: "", done: 1, total: 1 };
        pending = pending.then(() =>
          jupyter!.display({
            "text/plain": text,
            "text/html": `<div style="font-family:monospace;font-size:12px">${
              escapeHtml(text)
            } &middot; last step: ${escapeHtml(state.label)}</div>`,
          }, { raw: true, display_id: displayId, update })
        ).catch(() => {});
      }
      await pending;
    },
  };
}
