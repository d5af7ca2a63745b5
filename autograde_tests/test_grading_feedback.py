"""Feedback shows each test's result and message, never the hidden test code nor a submission's HTML.

Uses the graded hostile class (conftest.py). Stock `nbgrader generate_feedback` is run first for one
student to show what is at stake: its HTML quotes the hidden tests.
"""
import html
import re

from hostile import ASSIGNMENT, SECRETS

from coursepack import notebooks
from coursepack.grading import classroom, feedback
from coursepack.nbgrader_cli import nbgrader

HIDDEN_LINES = (*SECRETS, "np.arange(4.0) ** 2", "10**6 * (10**6 - 1)")


def _page(course, student, raw=False):
    text = (course / "feedback" / student / ASSIGNMENT / "tiny.html").read_text()
    return text if raw else html.unescape(re.sub(r"<[^>]+>", "", text))  # code is highlighted token by token


def test_feedback_hides_hidden_tests_but_keeps_results(hostile_class):
    course, expected, *_ = hostile_class
    nbgrader("generate_feedback", ASSIGNMENT, "--student", "hidden_fail", "--force", course=course,
             env=classroom.env(course))
    assert "SECRET_DOUBLE" in _page(course, "hidden_fail"), "stock nbgrader no longer leaks hidden tests"

    count = feedback.generate(course, ASSIGNMENT)
    graded = {p.parent.parent.name for p in (course / "feedback").glob(f"*/{ASSIGNMENT}/tiny.html")}
    assert count == len(graded)
    assert graded == {s for s in expected if (course / "autograded" / s / ASSIGNMENT / "tiny.ipynb").exists()}
    for student in graded:
        leaked = [line for line in HIDDEN_LINES if line in _page(course, student)]
        assert not leaked, f"{student}: feedback shows hidden test code {leaked}"
        raw = _page(course, student, raw=True)  # (the student's source may show them, escaped)
        assert "<script>alert(" not in raw and "<img src=x onerror" not in raw, student
    page = _page(course, "hidden_fail")
    # the failing hidden check's own message, the visible test and the score stay
    assert "double(arange(5)): expected" in page
    assert 'check_close(double(torch.tensor(1.0)), 2.0, "double(1)")' in page
    assert feedback.NOTE in page
    assert "AssertionError" in page


def test_hide_hidden_tests_leaves_student_cells_alone():
    nb = notebooks.nbformat.v4.new_notebook(cells=[
        notebooks.nbformat.v4.new_code_cell("# ### BEGIN HIDDEN TESTS in a student's comment\nx = 1"),
        notebooks.nbformat.v4.new_code_cell(
            "assert f(1) == 2\n### BEGIN HIDDEN TESTS\nassert f(2) == 4\n", metadata={"nbgrader": {
                "grade": True, "solution": False, "locked": True, "grade_id": "t", "points": 1,
                "schema_version": 3, "task": False}}, outputs=[notebooks.nbformat.v4.new_output(
                    "error", ename="AssertionError", evalue="", traceback=["line: assert f(2) == 4"])])])
    out, _ = feedback.HideHiddenTests().preprocess(nb, {})
    assert out.cells[0].source.startswith("# ### BEGIN HIDDEN TESTS")
    assert "f(2)" not in out.cells[1].source  # unbalanced markers: none of the test is shown
    assert out.cells[1].outputs[0].traceback == ["AssertionError"]
