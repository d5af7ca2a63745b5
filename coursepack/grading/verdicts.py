"""Test-cell verdicts into the notebook and the gradebook.

nbgrader's SaveAutoGrades scores a test cell by reading its outputs (`utils.determine_grade`: an
error gives 0, and the first `execute_result` decides alone). Outputs come from the student's
kernel, so here they decide nothing: `SaveVerdicts` is SaveAutoGrades with the score of every test
cell taken from the harness's verdict (full points when it passed, 0 otherwise, 0 when there is no
verdict). Written answers and comments are nbgrader's own code, unchanged. The test cell's outputs
are replaced by the verdict's sentence, which is what Formgrader and the feedback show.
"""
from __future__ import annotations

from nbformat.v4 import new_output
from nbgrader import utils
from nbgrader.preprocessors import SaveAutoGrades

from coursepack import notebooks
from coursepack.grading.harness import CellVerdict

PASSED = "All of this cell's tests passed.\n"


def verdict_outputs(verdict: CellVerdict) -> list:
    """What the autograded notebook shows under a test cell: the verdict, never a traceback."""
    if verdict.passed:
        return [new_output("stream", name="stdout", text=PASSED)]
    ename = verdict.error or "AssertionError"
    return [new_output("error", ename=ename, evalue=verdict.message, traceback=[f"{ename}: {verdict.message}"])]


class SaveVerdicts(SaveAutoGrades):
    """SaveAutoGrades with test cells scored by the harness's verdicts (resources["coursepack"]["verdicts"])."""

    def _add_score(self, cell, resources) -> None:
        if cell.cell_type != "code" or utils.is_solution(cell):
            return super()._add_score(cell, resources)  # written answers: nbgrader's own rules
        grade_id = notebooks.grade_id(cell)
        grade = self.gradebook.find_grade(grade_id, self.notebook_id, self.assignment_id, self.student_id)
        verdict = resources.get("coursepack", {}).get("verdicts", {}).get(grade_id)
        passed = verdict is not None and verdict.passed
        grade.auto_score = float(cell.metadata["nbgrader"]["points"]) if passed else 0.0
        # A manual score a grader already gave stays, and needs a look again.
        grade.needs_manual_grade = grade.manual_score is not None
        self.gradebook.db.commit()
