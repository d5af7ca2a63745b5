"""nbgrader's Autograde converter with the course's safeguards plugged into its preprocessor lists.

    sanitize:  ClearOutput, DeduplicateIds, OverwriteKernelspec, OverwriteCells, CheckCellMetadata  (nbgrader's)
    autograde: ScanForTampering, SandboxedExecute (for Execute), IgnorePattern, ClearMetadataPreprocessor,
               LimitOutput, HoldForReview, SaveAutoGrades, AssignLatePenalties, CheckCellMetadata

Everything else (restoring test cells, saving grades, late penalties) is nbgrader's own code.
"""
from __future__ import annotations

import ast
import os

import nbformat
from nbformat.v4 import new_output
from nbgrader import utils
from nbgrader.api import MissingEntry
from nbgrader.converters import Autograde
from nbgrader.preprocessors import Execute, NbGraderPreprocessor, OverwriteCells, SaveAutoGrades
from traitlets import List, default

from coursepack.grading import tamper
from coursepack.grading.execute import SandboxedExecute, coursepack_resources


def source_notebook_path(coursedir, assignment: str, notebook: str) -> str:
    return os.path.join(coursedir.format_path(coursedir.source_directory, ".", assignment), f"{notebook}.ipynb")


class ScanForTampering(NbGraderPreprocessor):
    """Static half of tamper.py: scan the student's code against the source notebook's policy."""

    _policies: dict = {}

    def preprocess(self, nb, resources):
        path = resources["coursepack_source"]
        mtime = os.path.getmtime(path)
        if self._policies.get(path, (None,))[0] != mtime:
            self._policies[path] = (mtime, tamper.Policy(nbformat.read(path, as_version=4)))
        policy = self._policies[path][1]
        report = coursepack_resources(resources)
        report["tampering"] += policy.scan(nb)
        resources["coursepack_modules"] = sorted({"math", *(m for m in policy.modules.values())})
        helper_cells = {}
        for cell in nb.cells:
            if cell.cell_type == "code" and utils.is_locked(cell) and not utils.is_grade(cell):
                try:
                    names = [n for n, _ in tamper.module_level_bindings(ast.parse(cell.source))]
                except SyntaxError:
                    continue
                helper_cells[cell.metadata.nbgrader.grade_id] = [n for n in names if n in policy.helpers]
        resources["coursepack_helper_cells"] = {k: v for k, v in helper_cells.items() if v}
        return nb, resources


class OverwriteCellsSafely(OverwriteCells):
    """OverwriteCells that forgets nbgrader metadata it cannot match instead of crashing.

    nbgrader 0.9.6 deletes only the grade_id of a cell whose id is not in the gradebook and then
    fails (KeyError) in add_missing_cells: a student who renamed a test cell's id lost the grading of
    the whole notebook. Here such a cell becomes an ordinary cell and the real one is put back.
    """

    def preprocess_cell(self, cell, resources, cell_index):
        meta = cell.metadata.get("nbgrader")
        if meta is not None:
            grade_id = meta.get("grade_id")
            try:
                if grade_id is None:
                    raise MissingEntry()
                self.gradebook.find_source_cell(grade_id, self.notebook_id, self.assignment_id)
            except MissingEntry:
                del cell.metadata["nbgrader"]
                coursepack_resources(resources)["problems"].append(
                    f"cell {cell_index + 1}: nbgrader metadata with unknown id {grade_id!r} removed")
                return cell, resources
        return super().preprocess_cell(cell, resources, cell_index)


class HoldForReview(NbGraderPreprocessor):
    """A notebook with tampering findings scores 0 on every test cell, each saying why; the would-be score is kept."""

    def preprocess(self, nb, resources):
        report = coursepack_resources(resources)
        if not report["tampering"]:
            return nb, resources
        reason = "held for review: " + "; ".join(report["tampering"][:3])
        would = 0.0
        for cell in nb.cells:
            if utils.is_grade(cell) and cell.cell_type == "code":
                score, _ = utils.determine_grade(cell, self.log)
                would += score or 0
                cell.outputs.append(new_output("error", ename="HeldForReview", evalue=reason,
                                               traceback=[f"HeldForReview: {reason}"]))
        report["held"] = True
        report["would_score"] = would
        return nb, resources


def _replace(preprocessors, old, new):
    return [new if p is old else p for p in preprocessors]


class SafeAutograde(Autograde):
    """Autograde with the sandboxed executor, the tamper scan and hold-for-review in its preprocessor list."""

    autograde_preprocessors = List().tag(config=True)
    sanitize_preprocessors = List().tag(config=True)

    @default("sanitize_preprocessors")
    def _sanitize_preprocessors_default(self):
        return _replace(Autograde.class_traits()["sanitize_preprocessors"].default(), OverwriteCells,
                        OverwriteCellsSafely)

    @default("autograde_preprocessors")
    def _autograde_preprocessors_default(self):
        steps = _replace(Autograde.class_traits()["autograde_preprocessors"].default(), Execute, SandboxedExecute)
        steps.insert(0, ScanForTampering)
        steps.insert(steps.index(SaveAutoGrades), HoldForReview)
        return steps

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.reports, self._sanitize_notes = {}, {}

    def init_single_notebook_resources(self, notebook_filename):
        resources = super().init_single_notebook_resources(notebook_filename)
        info = resources["nbgrader"]
        resources["coursepack_source"] = source_notebook_path(self.coursedir, info["assignment"], info["notebook"])
        return resources

    def write_single_notebook(self, output, resources):
        info = resources["nbgrader"]
        key = info["student"], info["notebook"]
        report = coursepack_resources(resources)
        if self._sanitizing:
            self._sanitize_notes[key] = list(report["problems"])
        else:
            report["problems"][:0] = self._sanitize_notes.pop(key, [])
            self.reports[key] = report
        super().write_single_notebook(output, resources)
