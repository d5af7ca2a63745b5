"""Feedback HTML that shows each test's result and message, never the hidden test code.

    python -m coursepack.grading.feedback ASSIGNMENT [--course DIR] [--student GLOB]

Stock `nbgrader generate_feedback` (0.9.6) renders the autograded notebook, whose test cells hold
the hidden tests again, and the tracebacks of failing hidden asserts quote their lines (nbgrader
issues #917, #1363). This runs nbgrader's own GenerateFeedback converter with one more
preprocessor in front of its list:

`HideHiddenTests` (a ClearHiddenTests that never raises and only touches test cells) cuts the
hidden block out of every test cell's source, leaving the visible tests and a line saying hidden
tests ran, and rewrites each error output of a test cell to its exception name and message only
(the message of a check says what was expected and what came back; the traceback would quote the
hidden line). Outputs of the student's own cells are left as they are.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from nbgrader import utils
from nbgrader.converters import GenerateFeedback
from nbgrader.preprocessors import ClearHiddenTests
from traitlets import List, default

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


def generate(course: Path, assignment: str, student: str = "*", force: bool = True) -> None:
    from coursepack.grading.autograde import course_directory, load_config, quiet_warnings

    quiet_warnings()
    config = load_config(course)
    coursedir = course_directory(config, assignment_id=assignment, student_id=student)
    converter = SafeFeedback(coursedir=coursedir, config=config, force=force)
    converter.start()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("assignment")
    parser.add_argument("--course", type=Path, default=Path.cwd())
    parser.add_argument("--student", default="*")
    args = parser.parse_args(argv)
    import logging

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    try:
        generate(args.course.resolve(), args.assignment, args.student)
    except Exception as error:  # noqa: BLE001 - nbgrader has logged the details
        print(f"feedback failed: {error}", file=sys.stderr)
        return 1
    folder = args.course / "feedback"
    count = sum(1 for _ in folder.glob(f"{args.student}/{args.assignment}/*.html")) if folder.exists() else 0
    print(f"{count} feedback files under {os.path.relpath(folder)}/ (hidden test code removed)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
