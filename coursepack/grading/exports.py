"""Export grades beyond nbgrader's grades.csv: the learning platform's import file and one row per test cell.

    python -m coursepack.grading grades [--blackboard=ROSTER] [--assignment=A]...      (make grades)

`make grades` keeps `nbgrader export` (grades.csv: one row per student and assignment) and adds:

- grades-items.csv, for item analysis: one row per student, notebook and graded cell, with the
  cell's grade id, score and maximum (`score` is nbgrader's: the manual score where a grader gave
  one, else the autograder's). Only submissions in the gradebook have rows.
- grades-blackboard.csv, with a roster (roster.py: id,username): Blackboard Learn's Grade Centre
  upload format. Blackboard identifies a student by user name and a column by the column id that
  its own download appends to the header (`Practical 1 [Total Pts: 100 Score] |123456`); a column
  without an id is created as a new column on upload (Blackboard Learn help, "Uploading External
  Grade Center Items": "Columns that do not have Column ID numbers in an uploaded file will create
  new columns"), and in a comma-separated file every value is quoted. So the file has the columns
  "Last Name","First Name","Username", then one per assignment named as Blackboard's download names
  it: `<assignment> [Total Pts: <max> Score]`, followed by ` |<id>` where
  `BlackboardExport.column_ids` knows the Grade Centre column. The score is nbgrader's
  (grades.csv's `score`): raw score less any late penalty, never below zero; a student without a
  submission gets 0, as in grades.csv.

Every gradebook student missing from the roster is reported (a `Kind.UNKNOWN_STUDENT` record) and
left out of the Blackboard file, which has no user name to give them; everyone on the roster whom the
gradebook does not know (often a typo in the roster's id) is written with blank scores and reported
too: a blank cell leaves the Grade Centre's score as it is, where a 0 would overwrite a real one.
A text cell that a spreadsheet would read as a formula (starting with =, +, -, @, a tab or a carriage
return) is written with a leading ' in both files (OWASP, "CSV Injection"). The command exits 1 when anything was
reported, so a missing roster entry is never silently dropped.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

from traitlets import Dict, List, Unicode
from traitlets.config import Config, Configurable

from coursepack import notebooks
from coursepack.grading import roster as rosters
from coursepack.grading.course import course_directory, load_config, quiet_warnings
from coursepack.grading.problems import Kind, Problem

ITEM_COLUMNS = ["student", "assignment", "notebook", "grade_id", "cell_type", "score", "max_score",
                "auto_score", "manual_score"]


class BlackboardExport(Configurable):
    """Blackboard Learn's Grade Centre upload file (configurable as `c.BlackboardExport.<name>`)."""

    column_ids = Dict(key_trait=Unicode(), value_trait=Unicode(), default_value={},
                      help="assignment -> Grade Centre column id (the number after `|` in the header of Blackboard's "
                           "own download); an assignment without one becomes a new column on upload").tag(config=True)
    column_names = Dict(key_trait=Unicode(), value_trait=Unicode(), default_value={},
                        help="assignment -> the Grade Centre column's name (default: the assignment's name)"
                        ).tag(config=True)


class GradeExports(Configurable):
    """Where `grades` writes (configurable as `c.GradeExports.<name>`; relative to the course)."""

    assignments = List(Unicode(), default_value=[], help="assignments to export (default: all in the gradebook)"
                       ).tag(config=True)
    items_file = Unicode("grades-items.csv", help="one row per student, notebook and graded cell").tag(config=True)
    blackboard_file = Unicode("grades-blackboard.csv", help="Blackboard Grade Centre upload file").tag(config=True)


@dataclass
class ExportResult:
    files: list[Path] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return 1 if self.problems else 0


FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def cell(value):
    """A CSV cell that no spreadsheet runs as a formula: text starting with = + - @ tab or CR gets a leading '."""
    return f"'{value}" if isinstance(value, str) and value.startswith(FORMULA_START) else value


def _score(submission) -> float:
    """nbgrader export's score: the raw score less the late penalty, never below zero."""
    return max(0.0, (submission.score or 0.0) - (submission.late_submission_penalty or 0.0))


def item_rows(gradebook, assignments: list[str], release: Path | None = None) -> list[dict]:
    """One row per graded cell of every submission, in the order of the release notebooks' cells."""
    rows = []
    for assignment in assignments:
        for submission in sorted(gradebook.assignment_submissions(assignment), key=lambda s: s.student.id):
            for nb in sorted(submission.notebooks, key=lambda n: n.name):
                for grade in nb.grades:
                    rows.append({"student": submission.student.id, "assignment": assignment, "notebook": nb.name,
                                 "grade_id": grade.name, "cell_type": grade.cell_type, "score": grade.score,
                                 "max_score": grade.max_score, "auto_score": grade.auto_score,
                                 "manual_score": grade.manual_score})
    order = _cell_order(release, assignments) if release else {}
    rows.sort(key=lambda r: (r["student"], r["assignment"], r["notebook"],
                             order.get((r["assignment"], r["notebook"], r["grade_id"]), len(order)), r["grade_id"]))
    return rows


def _cell_order(release: Path, assignments: list[str]) -> dict[tuple[str, str, str], int]:
    """(assignment, notebook, grade id) -> the cell's place in its release notebook (the gradebook keeps no order)."""
    order = {}
    for assignment in assignments:
        for path in sorted((release / assignment).glob("*.ipynb")):
            for index, cell in enumerate(notebooks.read(path).cells):
                if (gid := notebooks.grade_id(cell)) is not None:
                    order[assignment, path.stem, gid] = index
    return order


def blackboard_rows(gradebook, assignments: list[str], people: dict[str, rosters.Person],
                    settings: BlackboardExport) -> tuple[list[str], list[list[str]], list[Problem]]:
    header = ["Last Name", "First Name", "Username"]
    maxima = {}
    for assignment in assignments:
        record = gradebook.find_assignment(assignment)
        maxima[assignment] = record.max_score
        name = settings.column_names.get(assignment, assignment)
        column = f"{name} [Total Pts: {record.max_score:g} Score]"
        if assignment in settings.column_ids:
            column += f" |{settings.column_ids[assignment]}"
        header.append(column)
    problems, rows = [], []
    known = {s.id: s for s in gradebook.students}
    for student_id in sorted(known.keys() - people.keys()):
        problems.append(Problem(Kind.UNKNOWN_STUDENT, f"{student_id} is in the gradebook but not on the roster: "
                                                      "left out of the Blackboard file (no user name)"))
    for student_id, person in sorted(people.items(), key=lambda item: item[1].username):
        student = known.get(student_id)
        if student is None:
            problems.append(Problem(Kind.UNKNOWN_STUDENT, f"{student_id} ({person.username}) is on the roster but "
                                                          "not in the gradebook: its scores are left blank"))
        row = [person.last_name or (student.last_name or "" if student else ""),
               person.first_name or (student.first_name or "" if student else ""), person.username]
        for assignment in assignments:
            if student is None:  # blank: the upload leaves the Grade Centre's score alone
                row.append("")
                continue
            try:
                score = _score(gradebook.find_submission(assignment, student_id))
            except Exception:  # noqa: BLE001 - nbgrader's MissingEntry: no submission, 0 as in grades.csv
                score = 0.0
            row.append(f"{score:g}")
        rows.append([cell(value) for value in row])
    return header, rows, problems


def export(course: Path, *, roster: Path | None = None, config: Config | None = None) -> ExportResult:
    """Write the item-analysis CSV and, with `roster`, the Blackboard Grade Centre file; what was written and wrong."""
    from nbgrader.api import Gradebook

    quiet_warnings()
    course = course.resolve()
    config = load_config(course, config)
    settings = GradeExports(config=config)
    coursedir = course_directory(config)
    result = ExportResult()
    with Gradebook(coursedir.db_url, coursedir.course_id) as gradebook:
        assignments = list(settings.assignments) or sorted(a.name for a in gradebook.assignments)
        items = course / settings.items_file
        with open(items, "w", newline="") as handle:
            writer = csv.DictWriter(handle, ITEM_COLUMNS)
            writer.writeheader()
            writer.writerows({k: ("" if v is None else cell(v)) for k, v in row.items()}
                             for row in item_rows(gradebook, assignments, course / coursedir.release_directory))
        result.files.append(items)
        if roster is not None:
            people = rosters.read(roster)
            header, rows, result.problems = blackboard_rows(gradebook, assignments, people,
                                                            BlackboardExport(config=config))
            target = course / settings.blackboard_file
            with open(target, "w", newline="", encoding="utf-8") as handle:
                writer = csv.writer(handle, quoting=csv.QUOTE_ALL)
                writer.writerow([cell(value) for value in header])
                writer.writerows(rows)
            result.files.append(target)
    return result
