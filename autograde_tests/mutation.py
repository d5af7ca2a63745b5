"""Grade many answers against one notebook's tests in one warm kernel.

A full `nbgrader autograde` per wrong answer would cost seconds of start-up each. Instead the
reference notebook is executed once, in order, in a kernel set up as nbgrader's autograde sets it
up; then each case re-runs the reference answer cells (restoring every name), runs its own code on
top and runs every test cell, recording which pass. The end-to-end nbgrader path is proved
separately in test_nbgrader_pipeline.py.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

from jupyter_client.manager import start_new_kernel

from coursepack import notebooks
from coursepack.grading.harness import NotebookTests, TestHarness, run_with_client


@dataclass(frozen=True)
class Wrong:
    """A plausible wrong answer: it must fail exactly the test cells in `fails`."""

    label: str
    fails: frozenset[str] | set[str]
    code: str


@dataclass(frozen=True)
class Right:
    """A correct alternative answer: it must keep full marks."""

    label: str
    code: str
    fails: frozenset[str] = field(default_factory=frozenset)


def names_defined(code: str) -> set[str]:
    """Top-level functions and classes a case (re)defines."""
    return set(notebooks.definitions(code))


class Kernel:
    """A Python kernel started in `cwd` with nbgrader's autograde environment."""

    def __init__(self, cwd):
        env = dict(os.environ, NBGRADER_EXECUTION="autograde", MPLBACKEND="Agg")
        self.manager, self.client = start_new_kernel(kernel_name="python3", cwd=str(cwd), env=env)

    def run(self, code: str, timeout: float = 120) -> str | None:
        """Execute `code`; return None on success, else the error's name and message."""
        reply = self.client.execute_interactive(code, timeout=timeout, output_hook=lambda msg: None,
                                                store_history=False, allow_stdin=False)
        content = reply["content"]
        if content["status"] == "ok":
            return None
        return f"{content.get('ename')}: {content.get('evalue')}"

    def test(self, harness: TestHarness, grade_id: str, timeout: float = 120) -> str | None:
        """Run test cell `grade_id` in the harness against this kernel: None if it passes, else why not."""
        verdict = run_with_client(harness, self.client, grade_id, timeout)
        return None if verdict.passed else f"{verdict.error}: {verdict.message}"

    def close(self):
        self.client.stop_channels()
        self.manager.shutdown_kernel(now=True)


class ReferenceNotebook:
    """One source notebook executed once; grades any case's code against its test cells."""

    def __init__(self, path, timeout: float = 300):
        self.nb = notebooks.read(path)
        # Answer and test cells in notebook order: grading replays them in that order, as nbgrader does.
        self.graded = [c for c in self.nb.cells if notebooks.is_answer(c) or notebooks.is_test(c)]
        self.answer_names = notebooks.defined_names(self.nb)
        self.tests = {notebooks.grade_id(c): c for c in self.nb.cells if notebooks.is_test(c)}
        self.points = {gid: notebooks.nbgrader(c)["points"] for gid, c in self.tests.items()}
        self.harness = TestHarness(NotebookTests.from_notebook(self.nb))
        self.kernel = Kernel(path.parent)
        self.reference = {}
        for cell in self.nb.cells:
            if cell.cell_type != "code":
                continue
            if notebooks.is_test(cell):
                grade_id = notebooks.grade_id(cell)
                self.reference[grade_id] = self.kernel.test(self.harness, grade_id, timeout)
                continue
            error = self.kernel.run(cell.source, timeout)
            if error:
                raise RuntimeError(f"{path.name}: reference cell failed: {error}\n{cell.source}")

    def grade(self, code: str, timeout: float = 60) -> dict[str, str | None]:
        """{test grade_id: None if it passes else the failure} with `code` as the student's answer.

        The answer and test cells are replayed in notebook order with `code` run again right after
        every answer cell that defines one of its names, so a case sees what it would see under
        nbgrader: nothing defined by a later cell, nothing left over by an earlier case. Test cells
        that cannot reach a replaced name (see `affected`) keep the reference result, unrun.
        """
        replaced = names_defined(code)
        forget = sorted(set(self.answer_names) | replaced)
        self._run_or_fail(f"for _name in {forget!r}:\n    globals().pop(_name, None)", timeout)
        defines = [replaced & set(notebooks.definitions(c.source)) if notebooks.is_answer(c) else set()
                   for c in self.graded]
        if not any(defines):
            self._run_or_fail(code, timeout)
        results = dict(self.reference)
        affected = self.affected(replaced)
        for cell, slot in zip(self.graded, defines, strict=True):
            grade_id = notebooks.grade_id(cell)
            if notebooks.is_test(cell):
                if grade_id in affected:
                    results[grade_id] = self.kernel.test(self.harness, grade_id, timeout)
                continue
            self._run_or_fail(cell.source, timeout)
            if slot:
                self._run_or_fail(code, timeout)
        return results

    def affected(self, replaced: set[str]) -> set[str]:
        """Test cells that mention a replaced name, directly or through the answers they call."""
        bodies = {name: cell.source for cell in self.graded if notebooks.is_answer(cell)
                  for name in notebooks.definitions(cell.source)}
        reaches = set(replaced)
        changed = True
        while changed:  # close over "answer X's body mentions a name that reaches a replaced one"
            grown = {n for n, body in bodies.items() if any(re.search(rf"\b{r}\b", body) for r in reaches)}
            changed = not grown <= reaches
            reaches |= grown
        return {gid for gid, cell in self.tests.items()
                if any(re.search(rf"\b{name}\b", cell.source) for name in reaches)}

    def _run_or_fail(self, code: str, timeout: float) -> None:
        # Reference answers and case code must run: if they don't, the case is broken, not graded.
        error = self.kernel.run(code, timeout)
        if error:
            raise RuntimeError(f"{error}\nwhile running:\n{code[:500]}")

    def close(self):
        self.kernel.close()

