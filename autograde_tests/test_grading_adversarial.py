"""Hostile, broken and honest submissions through `python -m coursepack.grading autograde` (make autograde).

The class (hostile.py) is graded once, with two workers, from an environment like an instructor's
terminal (no MPLBACKEND, OMP_NUM_THREADS or COURSEPACK_QUICK). Every submission must get exactly the
marks it earned and its reason, whatever it tried; nobody else may be affected; nothing secret may
reach its outputs; honest controls get what stock nbgrader gives them (test_grading_parallel.py
compares with stock nbgrader itself).
"""
from __future__ import annotations

import shutil
import subprocess
import sys

import nbformat
from conftest import terminal_env
from hostile import ASSIGNMENT, CELL_TIMEOUT, NOTEBOOK_TIMEOUT, SECRETS
from nbgrader.api import Gradebook

from coursepack import notebooks


def _rows(report):
    return {r["student"]: r for r in report["notebooks"]}


def _reasons(row) -> str:
    return " ".join(p["message"] for p in row["problems"])


def _gradebook_scores(course, students=None):
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}", "comp3547") as gradebook:
        found = {}
        for submission in gradebook.find_assignment(ASSIGNMENT).submissions:
            if students is not None and submission.student.id not in students:
                continue
            nb = submission.notebooks[0]
            found[submission.student.id] = ({g.name: g.auto_score for g in nb.grades if g.cell_type == "code"},
                                            nb.flagged)
        return found


def _graded(course, student):
    return nbformat.read(course / "autograded" / student / ASSIGNMENT / "tiny.ipynb", as_version=4)


def _test_cell(course, student, grade_id):
    return next(c for c in _graded(course, student).cells if notebooks.grade_id(c) == grade_id)


def _outputs_text(nb) -> str:
    return "".join(str(o.get("text", "")) + str(o.get("evalue", "")) + str(o.get("data", ""))
                   for c in nb.cells if c.cell_type == "code" for o in c.outputs)


def test_every_submission_gets_exactly_its_marks_and_reason(hostile_class):
    course, expected, code, report, _, _, _, log = hostile_class
    rows = _rows(report)
    wrong = []
    for name, case in expected.items():
        row = rows.get(name)
        if row is None:
            wrong.append(f"{name}: not in the report")
            continue
        if row["score"] != case.score or row["status"] != case.status or case.reason not in _reasons(row):
            wrong.append(f"{name}: expected {case.score} {case.status} ({case.reason!r}), got {row['score']} "
                         f"{row['status']}: {_reasons(row)[:300]}")
    assert not wrong, "\n".join(wrong) + "\n" + log[-3000:]
    assert code == 1, "failed notebooks must make the exit code ask for attention"


def test_gradebook_agrees_with_the_report(hostile_class):
    course, expected, _, report, *_ = hostile_class
    scores = _gradebook_scores(course)
    assert set(scores) == set(expected)
    for name, row in _rows(report).items():
        grades, flagged = scores[name]
        assert sum(v or 0 for v in grades.values()) == row["score"], name
        assert flagged == (row["status"] == "failed"), name


def test_nothing_from_a_submission_reaches_the_terminal_raw(hostile_class):
    *_, log = hostile_class
    assert "\x1b" not in log and "GRADER PWNED" in log  # shown, escaped


def test_grading_states_its_isolation(hostile_class):
    *_, log = hostile_class
    report = hostile_class[3]
    assert report["isolation"]["level"], report["isolation"]
    assert f"isolation: {report['isolation']['level']}" in log


def test_no_process_outlives_its_kernel(hostile_class):
    *_, survivors, _ = hostile_class
    assert survivors == [], f"processes of a graded submission still run after grading: {survivors}"


def test_sandbox_hides_the_course_and_the_network(hostile_class):
    course, _, _, _, _, accepted, _, _ = hostile_class
    text = _outputs_text(_graded(course, "reads_hidden_tests"))
    assert "LEAK" not in text
    assert text.count("blocked") == 6, text
    assert int(text.split("uid ")[1].split()[0]) != 0
    assert not accepted, "a kernel reached a server on the grader's loopback"  # None: graded by another process


def test_the_job_folder_is_bounded(hostile_class):
    course, *_ = hostile_class
    text = _outputs_text(_graded(course, "fills_its_folder"))
    assert "write stopped" in text and "wrote 400 MiB" not in text, text[:500]


def test_nothing_secret_or_active_reaches_the_autograded_notebooks(hostile_class):
    course, expected, *_ = hostile_class
    for student in expected:
        path = course / "autograded" / student / ASSIGNMENT / "tiny.ipynb"
        if not path.exists():
            continue
        nb = nbformat.read(path, as_version=4)
        outputs = _outputs_text(nb)
        assert not [s for s in SECRETS if s in outputs], student
        for cell in nb.cells:
            for output in cell.get("outputs", []):
                assert set(output.get("data", {})) <= {"text/plain", "image/png", "image/jpeg"}, (student, output)
        written = "".join(c.source for c in nb.cells if c.cell_type == "markdown")
        assert "<script" not in written and "<script" not in outputs, student


def test_a_test_that_never_finishes_scores_zero_and_says_why(hostile_class):
    course, *_ = hostile_class
    cell = _test_cell(course, "infinite_loop", "test_total")
    assert any("time limit" in o.get("evalue", "") for o in cell.outputs), cell.outputs


def test_the_notebook_limit_bounds_a_submission_that_times_out_cell_after_cell(hostile_class):
    report = hostile_class[3]
    row = _rows(report)["every_test_loops"]
    assert row["seconds"] < NOTEBOOK_TIMEOUT + 25 + 3 * CELL_TIMEOUT, row
    assert any(p["kind"] == "notebook-timeout" for p in row["problems"]), row


def test_failing_tests_say_what_was_expected(hostile_class):
    course, *_ = hostile_class
    cell = _test_cell(course, "hidden_fail", "test_double")
    (error,) = [o for o in cell.outputs if o.output_type == "error"]
    assert error.evalue.startswith("double(arange(5)): expected"), error.evalue
    assert error.traceback == [f"{error.ename}: {error.evalue}"]


def test_regrading_is_idempotent(hostile_class, tmp_path):
    course, *_ = hostile_class
    again = tmp_path / "again"  # a copy: the graded class is shared, read-only, by every test
    shutil.copytree(course, again, symlinks=True,  # (not the FIFO of escape_name: copytree cannot)
                    ignore=shutil.ignore_patterns(".grading", ".jupyter", "feedback", "escape_name"))
    result = subprocess.run([sys.executable, "-m", "coursepack.grading", "autograde", ASSIGNMENT, "--workers=2",
                             "--quiet", "--student=h[io]*"], cwd=again, env=terminal_env(again),
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]  # honest, hidden_fail
    assert _gradebook_scores(again) == _gradebook_scores(course)
