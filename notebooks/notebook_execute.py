"""nbconvert's ExecutePreprocessor, but every output lands in the cell that produced it, and
a mistyped import name is an error in its cell.

Used by `deno task notebooks` (notebooks/run.ts) and tests/notebooks_test.ts
(PYTHONPATH=notebooks, `jupyter nbconvert --to notebook
--NotebookExporter.preprocessors='["notebook_execute.RoutingExecutePreprocessor"]'`).

Mistyped imports: Deno's kernel turns a cell's `import { a } from "m"` into a dynamic import,
so a name that `m` does not export is silently `undefined` (measured with Deno 2.9.6: the
cell printed `undefined`, no error). While a cell runs, this preprocessor sends the kernel a
guard before the cell's code that imports each module a named import names and throws
`SyntaxError: The requested module 'm' does not provide an export named 'a'` (the
message of a static ES import) when one is missing. The saved notebook keeps the cell's
own source; type-only imports (`import type`, `type X`) are not checked (no value exists).

Late outputs: Deno's Jupyter kernel publishes a cell's outputs (console output, `Deno.jupyter.display`,
the cell's result) and the cell's `status: idle` from different threads onto one IOPub
socket, so an output can reach the client after the idle of its cell (measured with
nbclient 0.7.2 and Deno 2.9.6: in a notebook of 180 one-line cells, 2 to 6 outputs per run
arrived late, with the right parent message id). nbclient stops reading a cell at its idle
and discards any later message whose parent is not the cell it is running now, so those
outputs vanished from the executed notebook: the notebook test then failed with
"no sweep table" about once in two clean runs. A front end such as JupyterLab routes
outputs by parent id and shows them in the right cell; this preprocessor does the same:
a message for an earlier cell is added to that cell, and after the last cell the IOPub
channel is drained until it has been quiet for a moment.
"""

import json
import re
from queue import Empty

from jupyter_client.utils import ensure_async
from nbclient.exceptions import CellExecutionComplete
from nbclient.util import run_sync
from nbconvert.preprocessors import ExecutePreprocessor
from traitlets import Bool, Float


_IMPORT = re.compile(
    r"^\s*import\s+(?!type\b)(?:[A-Za-z_$][\w$]*\s*,\s*)?\{([^}]*)\}\s*from\s*(['\"])([^'\"]+)\2",
    re.MULTILINE,
)


def import_guard(source):
    """TypeScript that throws when a named import of `source` names no export of its module."""
    checks = []
    for names, _, module in _IMPORT.findall(source):
        wanted = []
        for part in names.split(","):
            part = part.strip()
            if not part or part.startswith("type "):
                continue
            wanted.append(part.split(" as ")[0].strip())
        if wanted:
            checks.append((module, wanted))
    if not checks:
        return ""
    lines = []
    for module, wanted in checks:
        lines.append(
            "{ const m = await import(%s); for (const n of %s) if (!(n in m)) "
            "throw new SyntaxError(`The requested module '%s' does not provide an export "
            "named '${n}'`); }" % (json.dumps(module), json.dumps(wanted), module.replace("`", ""))
        )
    return "\n".join(lines) + "\n"


class RoutingExecutePreprocessor(ExecutePreprocessor):
    """Executes every code cell; outputs are routed to their cell by parent message id."""

    enabled = Bool(True).tag(config=True)
    drain_quiet = Float(
        3.0, help="Seconds of IOPub silence that end the wait for late outputs after the last cell"
    ).tag(config=True)

    def reset_execution_trackers(self):
        super().reset_execution_trackers()
        self._cells_by_msg = {}
        self.late_outputs = 0

    def _route(self, msg):
        """Adds a message to the cell whose request it answers (when it is a known one)."""
        target = self._cells_by_msg.get(msg["parent_header"].get("msg_id"))
        if target is None:
            return
        cell, index = target
        if msg["msg_type"] not in ("status", "execute_input"):
            self.late_outputs += 1
        try:
            self.process_message(msg, cell, index)
        except CellExecutionComplete:
            pass

    async def _async_poll_output_msg(self, parent_msg_id, cell, cell_index):
        self._cells_by_msg[parent_msg_id] = (cell, cell_index)
        while True:
            msg = await ensure_async(self.kc.iopub_channel.get_msg(timeout=None))
            if msg["parent_header"].get("msg_id") == parent_msg_id:
                try:
                    self.process_message(msg, cell, cell_index)
                except CellExecutionComplete:
                    return
            else:
                self._route(msg)

    async def _async_drain(self):
        while True:
            try:
                msg = await ensure_async(self.kc.iopub_channel.get_msg(timeout=self.drain_quiet))
            except Empty:
                return
            self._route(msg)

    drain = run_sync(_async_drain)

    def preprocess_cell(self, cell, resources, index):
        guard = import_guard(cell.source) if cell.cell_type == "code" else ""
        if guard:
            # the kernel runs the guard first; the saved cell keeps its own source
            source = cell.source
            cell.source = guard + source
            try:
                cell, resources = super().preprocess_cell(cell, resources, index)
            finally:
                cell.source = source
        else:
            cell, resources = super().preprocess_cell(cell, resources, index)
        if index == len(self.nb.cells) - 1:
            self.drain()
            if self.late_outputs:
                self.log.info("%d outputs arrived after their cell's idle status", self.late_outputs)
        return cell, resources
