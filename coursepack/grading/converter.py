"""nbgrader's Autograde converter with the course's steps in its preprocessor lists.

    sanitize:  ClearOutput, RestoreMetadata (editors.py), DeduplicateIds, OverwriteKernelspec, OverwriteCellsSafely,
               CheckCellMetadata
               (RestoreMetadata before DeduplicateIds, which keeps a repeated grade id on its *last* cell:
               restoring picks the cell whose content matches the release)
    autograde: SandboxedExecute (for Execute), IgnorePattern, ClearMetadataPreprocessor, LimitOutput,
               SanitizeSubmission, SaveVerdicts (for SaveAutoGrades), AssignLatePenalties, CheckCellMetadata

Everything else (restoring test cells from the gradebook, comments, late penalties, writing the
autograded notebook) is nbgrader's own code.
"""
from __future__ import annotations

import os

from nbgrader.api import MissingEntry
from nbgrader.converters import Autograde
from nbgrader.preprocessors import DeduplicateIds, Execute, OverwriteCells, SaveAutoGrades
from traitlets import List, default

from coursepack.grading.editors import RestoreMetadata
from coursepack.grading.execute import SandboxedExecute, coursepack_resources
from coursepack.grading.problems import Kind, Problem
from coursepack.grading.sanitize import SanitizeSubmission
from coursepack.grading.verdicts import SaveVerdicts


def source_notebook_path(coursedir, assignment: str, notebook: str) -> str:
    """The instructor's notebook in source/: where the harness takes a notebook's tests from."""
    return os.path.join(coursedir.format_path(coursedir.source_directory, ".", assignment), f"{notebook}.ipynb")


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
                coursepack_resources(resources)["problems"].append(Problem(
                    Kind.CELL_METADATA, f"nbgrader metadata with unknown id {grade_id!r} removed", str(cell_index + 1)))
                return cell, resources
        return super().preprocess_cell(cell, resources, cell_index)


def _replace(steps, old, new):
    return [new if step is old else step for step in steps]


class SafeAutograde(Autograde):
    """Autograde with the sandboxed executor, the harness's verdicts and sanitised outputs."""

    autograde_preprocessors = List().tag(config=True)
    sanitize_preprocessors = List().tag(config=True)

    @default("sanitize_preprocessors")
    def _sanitize_preprocessors_default(self):
        steps = _replace(Autograde.class_traits()["sanitize_preprocessors"].default(), OverwriteCells,
                         OverwriteCellsSafely)
        steps.insert(steps.index(DeduplicateIds), RestoreMetadata)
        return steps

    @default("autograde_preprocessors")
    def _autograde_preprocessors_default(self):
        steps = _replace(Autograde.class_traits()["autograde_preprocessors"].default(), Execute, SandboxedExecute)
        steps = _replace(steps, SaveAutoGrades, SaveVerdicts)
        steps.insert(steps.index(SaveVerdicts), SanitizeSubmission)
        return steps

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.reports: dict[tuple[str, str], dict] = {}
        self._sanitize_notes: dict[tuple[str, str], list[Problem]] = {}

    def init_single_notebook_resources(self, notebook_filename):
        resources = super().init_single_notebook_resources(notebook_filename)
        info = resources["nbgrader"]
        resources["coursepack_source"] = source_notebook_path(self.coursedir, info["assignment"], info["notebook"])
        resources["coursepack_release"] = os.path.join(self.coursedir.format_path(
            self.coursedir.release_directory, ".", info["assignment"]), f"{info['notebook']}.ipynb")
        return resources

    def write_single_notebook(self, output, resources):
        info = resources["nbgrader"]
        key = info["student"], info["notebook"]
        report = coursepack_resources(resources)
        if self._sanitizing:  # the first of nbgrader's two passes: keep its notes for the second
            self._sanitize_notes[key] = list(report["problems"])
        else:
            report["problems"][:0] = self._sanitize_notes.pop(key, [])
            self.reports[key] = report
        super().write_single_notebook(output, resources)
