"""nbgrader's Execute preprocessor, hardened: sandboxed kernel, notebook time limit, output cap, tamper probe.

`SandboxedExecute` replaces `nbgrader.preprocessors.Execute` in `Autograde.autograde_preprocessors`.
What it adds, cell by cell:

- the kernel is a `SandboxKernelManager` (see sandbox.py);
- each cell's timeout is the smaller of `Execute.timeout` and what is left of the notebook's
  `Sandbox.notebook_timeout`; once that is spent, every remaining cell gets an error output saying
  so (a test cell then scores 0, with the reason in its output) instead of being run;
- a kernel that dies (memory limit, `os._exit`, a crash) or stays busy after an interrupt marks the
  cell it was running and every later cell with the reason, and the notebook is still saved and
  graded: the marks earned before stay earned;
- outputs beyond `Sandbox.max_output_bytes` per notebook are dropped as they arrive (nbclient keeps
  any amount otherwise);
- the integrity probe of tamper.py runs before the first cell and after every test cell.

Problems are appended to `resources["coursepack"]["problems"]` (sentences) and findings of the
probe to `resources["coursepack"]["tampering"]`; the grader records both.
"""
from __future__ import annotations

import ast
import json
import time

from jupyter_core.utils import run_sync
from nbclient.exceptions import CellTimeoutError, DeadKernelError
from nbformat.v4 import new_output
from nbgrader import utils
from nbgrader.preprocessors import Execute
from traitlets import Instance, Integer, default

from coursepack.grading import tamper
from coursepack.grading.sandbox import Sandbox, SandboxKernelManager


def grade_id(cell) -> str | None:
    return cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")


def coursepack_resources(resources) -> dict:
    return resources.setdefault("coursepack", {"problems": [], "tampering": []})


class SandboxedExecute(Execute):
    sandbox = Instance(Sandbox)
    iopub_timeout = Integer(15).tag(config=True)  # a flood of output may take a while to drain

    @default("shutdown_kernel")
    def _shutdown_kernel_default(self):
        return "immediate"  # the kernel is used for one notebook and then thrown away

    @default("sandbox")
    def _sandbox_default(self):
        return Sandbox(parent=self)

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("kernel_manager_class", SandboxKernelManager)
        super().__init__(*args, **kwargs)

    # -- the notebook ---------------------------------------------------------------------------
    def preprocess(self, nb, resources=None, km=None):
        self._deadline = float("inf")  # set when the first cell starts: start-up is not the student's time
        self._stopped = None  # the reason no further cell runs
        self._kept_bytes, self._dropped = 0, False
        self._report = coursepack_resources(resources)
        self._policy_modules = resources.get("coursepack_modules", [])
        self._helper_cells = resources.get("coursepack_helper_cells", {})
        try:
            nb, resources = super().preprocess(nb, resources, km=km)
        except DeadKernelError as error:  # died while starting or between cells
            self._stop(f"the kernel died ({error})")
            for cell in nb.cells:
                if cell.cell_type == "code" and not cell.outputs:
                    self._fail(cell, "NotRun", self._stopped)
        except (RuntimeError, TimeoutError) as error:  # could not start at all
            self._stop(f"the kernel could not be started: {error}")
            for cell in nb.cells:
                if cell.cell_type == "code":
                    self._fail(cell, "NotRun", self._stopped)
        return nb, resources

    def create_kernel_manager(self):
        km = super().create_kernel_manager()
        km.sandbox = self.sandbox
        return km

    def _stop(self, reason: str) -> None:
        if self._stopped is None:
            self._stopped = reason
            self._report["problems"].append(reason)

    @staticmethod
    def _fail(cell, ename: str, reason: str) -> None:
        cell.outputs.append(new_output("error", ename=ename, evalue=reason,
                                       traceback=[f"{ename}: {reason}"]))

    # -- one cell -------------------------------------------------------------------------------
    def preprocess_cell(self, cell, resources, index):
        if cell.cell_type != "code":
            return cell, resources
        if index == self._first_code_index():
            self._snapshot()
            self._deadline = time.monotonic() + self.sandbox.notebook_timeout
        if self._stopped is None and time.monotonic() >= self._deadline:
            self._stop(f"the notebook ran past its limit of {self.sandbox.notebook_timeout} s")
        if self._stopped is not None:
            cell.outputs = []
            self._fail(cell, "NotRun", f"not run: {self._stopped}")
            return cell, resources
        try:
            cell, resources = super().preprocess_cell(cell, resources, index)
        except DeadKernelError:
            why = getattr(self.km, "killed_because", "") if self.km is not None else ""
            self._stop(f"the kernel died while running this cell: {why}" if why else
                       "the kernel died while running this cell (memory limit, a crash or code that ended it)")
            self._fail(cell, "DeadKernelError", self._stopped)
            return cell, resources
        except CellTimeoutError:
            self._stop("the kernel stayed busy after being interrupted at its time limit")
            self._fail(cell, "CellTimeoutError", self._stopped)
            self._kill()
            return cell, resources
        if utils.is_grade(cell) or grade_id(cell) in self._helper_cells or index == self._last_code_index():
            self._probe(cell)
        return cell, resources

    def _get_timeout(self, cell):
        per_cell = super()._get_timeout(cell)
        if self._deadline == float("inf"):
            return per_cell
        left = max(1, int(self._deadline - time.monotonic() + 0.999))
        return left if per_cell is None else min(per_cell, left)

    async def _async_handle_timeout(self, timeout, cell=None):
        reply = await super()._async_handle_timeout(timeout, cell)
        over = time.monotonic() >= self._deadline
        reason = (f"the notebook reached its limit of {self.sandbox.notebook_timeout} s in this cell" if over
                  else f"this cell ran longer than {timeout} s and was interrupted")
        if reply is not None:
            reply["content"].update(ename="CellTimeoutError", evalue=reason,
                                    traceback=[f"CellTimeoutError: {reason}"])
        self._report["problems"].append(f"cell {grade_id(cell) if cell else ''}: {reason}".strip())
        if over:
            self._stop(f"the notebook ran past its limit of {self.sandbox.notebook_timeout} s")
        return reply

    def _kill(self) -> None:
        try:
            run_sync(self.km._async_kill_kernel)()
        except Exception:  # noqa: BLE001 - it may be gone already
            pass

    # -- outputs --------------------------------------------------------------------------------
    def output(self, outs, msg, display_id, cell_index):
        size = len(json.dumps(msg.get("content", {}), default=str))
        if self._kept_bytes + size > self.sandbox.max_output_bytes:
            if not self._dropped:
                self._dropped = True
                limit = self.sandbox.max_output_bytes
                self._report["problems"].append(f"output beyond {limit} bytes was dropped")
                outs.append(new_output("stream", name="stdout",
                                       text=f"\n[output truncated: this notebook printed more than {limit} bytes]\n"))
            return None
        self._kept_bytes += size
        return super().output(outs, msg, display_id, cell_index)

    # -- integrity probe ------------------------------------------------------------------------
    def _first_code_index(self):
        return next((i for i, c in enumerate(self.nb.cells) if c.cell_type == "code" and c.source.strip()), -1)

    def _last_code_index(self):
        return max((i for i, c in enumerate(self.nb.cells) if c.cell_type == "code" and c.source.strip()), default=-1)

    def _silent(self, code: str, expression: str | None = None, timeout: float = 120):
        """Run `code` silently (no history, no outputs stored); the value of `expression`, or the error."""
        expressions = {"value": expression} if expression else {}
        msg_id = self.kc.execute(code, silent=True, store_history=False, user_expressions=expressions)
        deadline = time.monotonic() + timeout
        while True:
            reply = run_sync(self.kc._async_get_shell_msg)(timeout=max(0.1, deadline - time.monotonic()))
            if reply["parent_header"].get("msg_id") == msg_id:
                break
        content = reply["content"]
        if content["status"] != "ok":
            return None, f"{content.get('ename')}: {content.get('evalue')}"
        if not expression:
            return None, None
        value = content["user_expressions"]["value"]
        if value.get("status") != "ok":
            return None, f"{value.get('ename')}: {value.get('evalue')}"
        return value["data"]["text/plain"], None

    def _snapshot(self):
        if self._stopped is not None:
            return
        try:
            _, error = self._silent(tamper.snapshot_code(self._policy_modules))
        except Exception as error:  # noqa: BLE001 - a kernel that cannot even take this is reported
            error = f"{type(error).__name__}: {error}"
        if error:
            self._report["tampering"].append(f"the integrity snapshot failed ({error})")

    def _probe(self, cell):
        if self._stopped is not None:
            return
        try:
            names = self._helper_cells.get(grade_id(cell))
            if names:
                _, error = self._silent(tamper.remember_code(names))
                if error:
                    raise RuntimeError(error)
            value, error = self._silent("", tamper.PROBE, timeout=60)
            if error:
                raise RuntimeError(error)
            problems = ast.literal_eval(value)
        except Exception as error:  # noqa: BLE001
            problems = [f"the integrity probe failed after cell {grade_id(cell) or ''} ({error})"]
        where = grade_id(cell) if utils.is_grade(cell) else "the end"
        for problem in problems:
            finding = f"after {where}: {problem}"
            if finding not in self._report["tampering"]:
                self._report["tampering"].append(finding)
