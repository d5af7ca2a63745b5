"""Grade many answers against one notebook's tests in one warm kernel.

A full `nbgrader autograde` per wrong answer would cost seconds of start-up each. Instead the
reference notebook is executed once, in order, in a kernel set up as nbgrader's autograde sets it
up; then each case re-runs the reference answer cells (restoring every name), runs its own code on
top and runs every test cell, recording which pass. The end-to-end nbgrader path is proved
separately in test_nbgrader_pipeline.py.
"""
from __future__ import annotations

import ast
import os
from dataclasses import dataclass, field

from jupyter_client.manager import start_new_kernel

from coursepack import notebooks


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


def answers_by_id(nb) -> dict[str, str]:
    """The answer cells (code and written) of a notebook, by grade_id."""
    return {notebooks.nbgrader(c)["grade_id"]: c.source for c in nb.cells if notebooks.nbgrader(c).get("solution")}


def fill(release_nb, answers: dict[str, str]):
    """A copy of the release notebook with the given answer cells filled in, as a student would."""
    nb = notebooks.nbformat.from_dict(release_nb)
    for cell in nb.cells:
        if notebooks.nbgrader(cell).get("grade_id") in answers:
            cell.source = answers[notebooks.nbgrader(cell)["grade_id"]]
    return nb


def names_defined(code: str) -> set[str]:
    """Top-level functions and classes a case (re)defines."""
    tree = ast.parse(code)
    return {node.name for node in tree.body if isinstance(node, ast.FunctionDef | ast.ClassDef)}


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

    def close(self):
        self.client.stop_channels()
        self.manager.shutdown_kernel(now=True)


class ReferenceNotebook:
    """One source notebook executed once; grades any case's code against its test cells."""

    def __init__(self, path, timeout: float = 300):
        self.nb = notebooks.read(path)
        self.answers = [c.source for c in self.nb.cells if notebooks.is_answer(c)]
        self.tests = {notebooks.nbgrader(c)["grade_id"]: c for c in self.nb.cells if notebooks.is_test(c)}
        self.points = {gid: notebooks.nbgrader(c)["points"] for gid, c in self.tests.items()}
        self.kernel = Kernel(path.parent)
        self.reference = {}
        for cell in self.nb.cells:
            if cell.cell_type != "code":
                continue
            error = self.kernel.run(cell.source, timeout)
            if notebooks.is_test(cell):
                self.reference[notebooks.nbgrader(cell)["grade_id"]] = error
            elif error:
                raise RuntimeError(f"{path.name}: reference cell failed: {error}\n{cell.source}")

    def grade(self, code: str, timeout: float = 60) -> dict[str, str | None]:
        """{test grade_id: None if it passes else the failure} for the reference answers + `code`."""
        for source in self.answers:
            error = self.kernel.run(source, timeout)
            assert error is None, f"restoring a reference answer failed: {error}"
        error = self.kernel.run(code, timeout)
        if error:
            # A case whose code does not even run is a broken case, not a graded answer.
            raise RuntimeError(f"case code raised {error}")
        return {gid: self.kernel.run(cell.source, timeout) for gid, cell in self.tests.items()}

    def close(self):
        self.kernel.close()

