"""nbgrader's Execute for grading: a sandboxed kernel, time limits, an output cap, and tests run outside it.

`SandboxedExecute` replaces `nbgrader.preprocessors.Execute` in the Autograde converter. The
student's notebook runs cell by cell in a sandboxed kernel (sandbox.py), as nbgrader would run it,
except for the test cells:

1. the kernel runs the cell as the student saw it (its visible tests, never the hidden ones), so
   that it holds the same state afterwards as in the student's own Jupyter;
2. the kernel then serves one bridge session while the harness process (harness.py, one per
   notebook, never running student code) runs the whole test cell from the source notebook;
3. the cell's outputs become the harness's verdict (`verdicts.py`), and the verdict, not anything
   the kernel printed, is what SaveVerdicts writes to the gradebook.

Limits, cell by cell: each cell's timeout is the smaller of `Execute.timeout` and what is left of
`Sandbox.notebook_timeout`; once that is spent every later cell is "not run". A kernel that dies or
stays busy after an interrupt marks the cell it was running and every later cell, and the notebook
is still saved and graded: marks earned before stay earned. Every message the kernel sends counts
against `Sandbox.max_output_bytes` (display updates and widget messages included); beyond it they
are dropped as they arrive.

Problems go to `resources["coursepack"]["problems"]` as `problems.Problem` records.
"""
from __future__ import annotations

import copy
import json
import os
import time

from jupyter_core.utils import run_sync
from nbclient.exceptions import CellTimeoutError, DeadKernelError
from nbformat.v4 import new_code_cell, new_output
from nbgrader import utils
from nbgrader.preprocessors import ClearHiddenTests, Execute
from traitlets import Instance, Integer, default

from coursepack.grading.harness import CellVerdict, HarnessProcess, HarnessSettings, serve_command, warm_up_command
from coursepack.grading.problems import Kind, Problem
from coursepack.grading.sandbox import Sandbox, SandboxKernelManager
from coursepack.grading.verdicts import verdict_outputs
from coursepack.notebooks import grade_id


def is_test_cell(cell) -> bool:
    return cell.cell_type == "code" and utils.is_grade(cell) and not utils.is_solution(cell)


def coursepack_resources(resources) -> dict:
    """The grader's own part of nbconvert's resources: problems and verdicts of this notebook."""
    return resources.setdefault("coursepack", {"problems": [], "verdicts": {}})


def visible_part(cell) -> str:
    """The test cell's source as the student saw it: nbgrader's own rule for removing hidden tests."""
    shown = copy.deepcopy(cell)
    try:
        ClearHiddenTests()._remove_hidden_test_region(shown)
    except RuntimeError:  # unbalanced markers: show nothing rather than the hidden part
        return ""
    return shown.source


class SandboxedExecute(Execute):
    sandbox = Instance(Sandbox)
    harness_settings = Instance(HarnessSettings)
    iopub_timeout = Integer(15, help="seconds to wait for a kernel's outputs after its reply "
                                     "(a flood of output may take a while to drain)").tag(config=True)
    startup_timeout = Integer(300, help="seconds for a kernel to import the course's modules (Sandbox.preload) "
                                        "before the notebook's clock starts: start-up is not the student's time "
                                        "(a cold CUDA build of torch on a busy machine takes tens of seconds)"
                              ).tag(config=True)

    @default("shutdown_kernel")
    def _shutdown_kernel_default(self):
        return "immediate"  # the kernel is used for one notebook and thrown away

    @default("store_widget_state")
    def _store_widget_state_default(self):
        return False  # a submission's widget state is not kept (nor its size)

    @default("sandbox")
    def _sandbox_default(self):
        return Sandbox(parent=self)

    @default("harness_settings")
    def _harness_settings_default(self):
        return HarnessSettings(parent=self)

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("kernel_manager_class", SandboxKernelManager)
        super().__init__(*args, **kwargs)

    # -- the notebook ---------------------------------------------------------------------------------
    def preprocess(self, nb, resources=None, km=None):
        self._deadline = float("inf")  # set when the first cell starts: start-up is not the student's time
        self._stopped: Problem | None = None  # why no further cell runs
        self._kept_bytes, self._dropped = 0, False
        self._serve_timeout: float | None = None
        self._timed_out = False
        self._report = coursepack_resources(resources)
        self._source_path = resources["coursepack_source"]
        settings = self.harness_settings  # started now: it builds its prelude while the kernel starts
        self._harness = HarnessProcess(self._source_path, settings)
        try:
            nb, resources = super().preprocess(nb, resources, km=km)
        except DeadKernelError as error:  # died while starting or between cells
            self._stop(Problem(Kind.KERNEL_DIED, f"the kernel died ({error})"))
            self._mark_unrun(nb)
        except (RuntimeError, TimeoutError) as error:  # could not start at all
            self._stop(Problem(Kind.KERNEL_START, f"the kernel could not be started: {error}"))
            self._mark_unrun(nb)
        finally:
            if self._harness is not None:
                self._harness.stop()
        return nb, resources

    def create_kernel_manager(self):
        km = super().create_kernel_manager()
        km.sandbox = self.sandbox
        return km

    def _stop(self, problem: Problem) -> None:
        if self._stopped is None:
            self._stopped = problem
            self._report["problems"].append(problem)

    def _mark_unrun(self, nb) -> None:
        for cell in nb.cells:
            if cell.cell_type != "code":
                continue
            if is_test_cell(cell) and grade_id(cell) not in self._report["verdicts"]:
                self._record(cell, CellVerdict(grade_id(cell), False, f"not run: {self._stopped.message}", "NotRun"))
            elif not cell.outputs:
                cell.outputs.append(_error("NotRun", self._stopped.message))

    # -- one cell -----------------------------------------------------------------------------------
    def preprocess_cell(self, cell, resources, index):
        if cell.cell_type != "code":
            return cell, resources
        if self._deadline == float("inf") and cell.source.strip():
            self._warm_up(index)
            self._deadline = time.monotonic() + self.sandbox.notebook_timeout
        if self._stopped is None and time.monotonic() >= self._deadline:
            self._stop(Problem(Kind.NOTEBOOK_TIMEOUT,
                               f"the notebook ran past its limit of {self.sandbox.notebook_timeout} s"))
        if is_test_cell(cell):
            return self._grade_test_cell(cell, resources, index)
        if self._stopped is not None:
            cell.outputs = [_error("NotRun", f"not run: {self._stopped.message}")]
            return cell, resources
        self._run_in_kernel(cell, resources, index)
        return cell, resources

    def _warm_up(self, index: int) -> None:
        """Before the clock starts: the kernel imports the course's modules, the harness gets ready."""
        self._serve_timeout = float(self.startup_timeout)
        try:
            self._run_in_kernel(new_code_cell(warm_up_command(self.sandbox.preload)), {}, index, store_history=False)
        finally:
            self._serve_timeout = None
            if self._harness is not None and not self._harness.wait_ready(self.startup_timeout):
                self.log.info("test harness sealed: %s", self._harness.sealed)

    def _run_in_kernel(self, cell, resources, index, store_history: bool = True) -> None:
        """Execute one cell in the kernel; a dead or stuck kernel stops the notebook."""
        self._timed_out = False
        try:
            run_sync(self.async_execute_cell)(cell, index, store_history=store_history)
        except DeadKernelError:
            why = getattr(self.km, "killed_because", "") if self.km is not None else ""
            self._stop(Problem(Kind.KERNEL_DIED, f"the kernel died while running this cell: {why}" if why else
                               "the kernel died while running this cell (memory limit, a crash or code that "
                               "ended it)", grade_id(cell)))
            cell.outputs.append(_error("DeadKernelError", self._stopped.message))
        except CellTimeoutError:
            self._stop(Problem(Kind.KERNEL_STUCK, "the kernel stayed busy after being interrupted at its time "
                               "limit", grade_id(cell)))
            cell.outputs.append(_error("CellTimeoutError", self._stopped.message))
            self._kill()

    # -- a test cell --------------------------------------------------------------------------------
    def _grade_test_cell(self, cell, resources, index):
        gid = grade_id(cell)
        if self._stopped is None:
            shown = new_code_cell(visible_part(cell), metadata=copy.deepcopy(cell.metadata))
            self._run_in_kernel(shown, resources, index)
        if self._stopped is not None:
            verdict = CellVerdict(gid, False, f"not run: {self._stopped.message}", "NotRun")
        elif self._timed_out:  # its visible tests alone ran out of time: so would the whole cell
            verdict = CellVerdict(gid, False, "this test cell ran longer than its time limit", "TimeoutError")
        else:
            verdict = self._ask_harness(gid, index)
        self.nb.cells[index] = cell  # nbclient put each cell it ran (the visible part, the serve cell) here
        self._record(cell, verdict)
        return cell, resources

    def _record(self, cell, verdict: CellVerdict) -> None:
        cell.outputs = verdict_outputs(verdict)
        self._report["verdicts"][verdict.grade_id] = verdict

    def _ask_harness(self, gid: str, index: int) -> CellVerdict:
        """Run test `gid` in the harness while the kernel serves it one bridge session."""
        settings = self.harness_settings
        if self._harness is None:
            self._harness = HarnessProcess(self._source_path, settings)
        if self._harness.wait_ready(self.startup_timeout):
            return self._harness_failure(gid, f"the test harness could not start: {self._harness.broken}")
        seconds = max(1.0, min(self.timeout or 1e9, self._deadline - time.monotonic()))
        folder = getattr(self.km, "bridge_dir", "") or self.km.jobdir
        path = os.path.join(folder, f"bridge-{index}.sock")
        if not self._harness.start_cell(gid, path, seconds):
            return self._harness_failure(gid, "the test harness did not answer")
        serve = new_code_cell(serve_command(path))
        self._serve_timeout = seconds + settings.grace
        try:
            self._run_in_kernel(serve, {}, index, store_history=False)
        finally:
            self._serve_timeout = None
        verdict = self._harness.verdict(gid, timeout=settings.grace)
        if verdict is None:
            return self._harness_failure(gid, "the test harness gave no verdict in time")
        return verdict

    def _harness_failure(self, gid: str, why: str) -> CellVerdict:
        """The grader's own fault: the cell scores 0 for now and the notebook is marked for a second look."""
        self._report["problems"].append(Problem(Kind.HARNESS, why, gid))
        if self._harness is not None:
            self._harness.stop()
            self._harness = None  # a fresh one for the next cell
        return CellVerdict(gid, False, f"the grader could not run this test ({why}); your instructor will "
                                       "look at it", "GraderError")

    # -- time limits --------------------------------------------------------------------------------
    def _get_timeout(self, cell):
        if self._serve_timeout is not None:
            return max(1, int(self._serve_timeout + 0.999))
        per_cell = super()._get_timeout(cell)
        if self._deadline == float("inf"):
            return per_cell
        left = max(1, int(self._deadline - time.monotonic() + 0.999))
        return left if per_cell is None else min(per_cell, left)

    async def _async_handle_timeout(self, timeout, cell=None):
        reply = await super()._async_handle_timeout(timeout, cell)
        self._timed_out = True
        over = time.monotonic() >= self._deadline
        reason = (f"the notebook reached its limit of {self.sandbox.notebook_timeout} s in this cell" if over
                  else f"this cell ran longer than {timeout} s and was interrupted")
        if reply is not None:
            reply["content"].update(ename="CellTimeoutError", evalue=reason, traceback=[f"CellTimeoutError: {reason}"])
        self._report["problems"].append(Problem(Kind.CELL_TIMEOUT, reason, grade_id(cell) if cell else None))
        if over:
            self._stop(Problem(Kind.NOTEBOOK_TIMEOUT,
                               f"the notebook ran past its limit of {self.sandbox.notebook_timeout} s"))
        return reply

    def _kill(self) -> None:
        try:
            run_sync(self.km._async_kill_kernel)()
        except Exception:  # noqa: BLE001 - it may be gone already
            pass

    # -- outputs: every message counts --------------------------------------------------------------
    def process_message(self, msg, cell, cell_index):
        if msg["msg_type"] != "status":
            size = len(json.dumps(msg.get("content", {}), default=str)) + sum(map(len, msg.get("buffers") or []))
            if self._kept_bytes + size > self.sandbox.max_output_bytes:
                if not self._dropped:
                    self._dropped = True
                    limit = self.sandbox.max_output_bytes
                    self._report["problems"].append(Problem(
                        Kind.OUTPUT_TRUNCATED, f"output beyond {limit} bytes was dropped", grade_id(cell)))
                    cell.outputs.append(new_output(
                        "stream", name="stdout", text=f"\n[output truncated: this notebook printed more than "
                                                      f"{limit} bytes]\n"))
                return None
            self._kept_bytes += size
        return super().process_message(msg, cell, cell_index)


def _error(ename: str, reason: str):
    return new_output("error", ename=ename, evalue=reason, traceback=[f"{ename}: {reason}"])
