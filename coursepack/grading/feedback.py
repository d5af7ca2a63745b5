"""Feedback HTML that shows each test's result and message, never the hidden test code.

    python -m coursepack.grading feedback ASSIGNMENT [--student=GLOB]      (make feedback)

Stock `nbgrader generate_feedback` (0.9.6) renders the autograded notebook, whose test cells hold
the hidden tests again, and the tracebacks of failing hidden asserts quote their lines (nbgrader
issues #917, #1363). Here the autograded notebook's test cells already show only the harness's
verdict (verdicts.py: a sentence, never a traceback) and its student outputs were sanitised
(sanitize.py). This runs nbgrader's own GenerateFeedback converter with one more preprocessor in
front of its list:

`HideHiddenTests` (a ClearHiddenTests that never raises and only touches test cells) cuts the
hidden block out of every test cell's source, leaving the visible tests and a line saying hidden
tests ran, and reduces any error output of a test cell to its name and message.
"""
from __future__ import annotations

from pathlib import Path

from nbgrader import utils
from nbgrader.converters import GenerateFeedback
from nbgrader.preprocessors import ClearHiddenTests
from traitlets import List, default
from traitlets.config import Config

from coursepack.grading.course import course_directory, load_config, quiet_warnings

NOTE = "# (hidden tests ran here: their code is not shown; see the result below)"


class HideHiddenTests(ClearHiddenTests):
    enforce_metadata = False

    def preprocess_cell(self, cell, resources, cell_index):
        if cell.cell_type != "code" or not utils.is_grade(cell) or utils.is_solution(cell):
            return cell, resources
        try:
            removed = self._remove_hidden_test_region(cell)
        except RuntimeError:  # unbalanced markers: show none of it
            cell.source, removed = "", True
        if removed:
            cell.source = cell.source.rstrip("\n") + ("\n" if cell.source.strip() else "") + NOTE
        for output in cell.get("outputs", []):
            if output.output_type == "error":
                message = f"{output.ename}: {output.evalue}" if output.evalue else output.ename
                output.traceback = [message]
        return cell, resources


class SafeFeedback(GenerateFeedback):
    preprocessors = List().tag(config=True)

    @default("preprocessors")
    def _preprocessors_default(self):
        return [HideHiddenTests, *GenerateFeedback.class_traits()["preprocessors"].default()]


def generate(course: Path, assignment: str, student: str = "*", config: Config | None = None,
             force: bool = True) -> int:
    """Feedback for every autograded submission of `assignment` (matching `student`); how many files there are."""
    quiet_warnings()
    course = course.resolve()
    config = load_config(course, config)
    coursedir = course_directory(config, assignment_id=assignment, student_id=student)
    converter = SafeFeedback(coursedir=coursedir, config=config, force=force)
    converter.start()
    folder = course / coursedir.feedback_directory
    return sum(1 for _ in folder.glob(f"{student}/{assignment}/*.html")) if folder.exists() else 0
