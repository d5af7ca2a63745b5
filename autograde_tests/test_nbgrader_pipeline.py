"""The whole pipeline on the real practical, end to end, in a temporary copy of the course.

nbgrader generate_assignment -> submissions -> make autograde (api.grade_class: sandboxed kernels,
tests in the harness) -> make feedback -> nbgrader export, then the gradebook and the files are
checked: the instructor's answers get full marks, the blank release gets zero, a submission mixing
known-wrong answers and correct alternatives loses exactly the wrong answers' points, feedback HTML
exists for everyone and shows no line of a hidden test, and the grades CSV has one row per student.
"""
import csv
import html
import re
import shutil

import pytest
from conftest import case_modules
from mutation import Right, Wrong, names_defined
from nbgrader.api import Gradebook

from coursepack import notebooks, release
from coursepack.grading import feedback
from coursepack.grading.api import grade_class
from coursepack.nbgrader_cli import jupyter_env, nbgrader

ASSIGNMENT = "practical1"
SOURCE = notebooks.SOURCE / ASSIGNMENT


def one_case(cases, kind):
    """The first case of `kind` that replaces exactly one answer name (a whole answer cell)."""
    return next(c for c in cases if isinstance(c, kind) and len(names_defined(c.code)) == 1)


def mixed_answers(stem, source_nb, wrong):
    """Reference answers with one answer cell replaced by a Wrong (or Right) case; the test cells it fails."""
    case = one_case(case_modules()[stem].CASES, Wrong if wrong else Right)
    (name,) = names_defined(case.code)
    answers = notebooks.answers(source_nb)
    cell_id = next(gid for gid, src in answers.items() if name in notebooks.definitions(src))
    # Keep the rest of that answer cell's definitions: put the case after the reference code.
    answers[cell_id] = answers[cell_id] + "\n\n" + case.code
    return answers, set(case.fails)


@pytest.fixture(scope="module")
def graded_course(tmp_path_factory):
    course = tmp_path_factory.mktemp("course")
    shutil.copytree(notebooks.SOURCE, course / "source")
    shutil.copy(notebooks.ROOT / "nbgrader_config.py", course)
    env = jupyter_env(course / ".jupyter", COURSEPACK_OFFLINE="1", MPLBACKEND="Agg")
    env.pop("COURSEPACK_DB", None)
    nbgrader("generate_assignment", ASSIGNMENT, "--force", course=course, env=env)

    expected_failures = {}  # (student, notebook stem) -> set of test cells that must fail
    for index, source_path in enumerate(sorted(SOURCE.glob("*.ipynb"))):
        stem, source_nb = source_path.stem, notebooks.read(source_path)
        release_nb = notebooks.read(course / "release" / ASSIGNMENT / source_path.name)
        # nbgrader scores an unchanged written answer 0 too, so the blank release earns nothing at all.
        all_graded = {notebooks.grade_id(c) for c in source_nb.cells if notebooks.nbgrader(c).get("grade")}
        mixed, fails = mixed_answers(stem, source_nb, wrong=index % 2 == 0)
        submissions = {"reference": (notebooks.answers(source_nb), set()),
                       "blank": ({}, all_graded),
                       "mixed": (mixed, fails)}
        for student, (answers, failing) in submissions.items():
            folder = course / "submitted" / student / ASSIGNMENT
            folder.mkdir(parents=True, exist_ok=True)
            notebooks.write(notebooks.filled(release_nb, answers), folder / source_path.name)
            expected_failures[student, stem] = failing

    result = grade_class(course, ASSIGNMENT, workers=2, quiet=True)
    assert result.exit_code == 0, result.summary()
    feedback.generate(course, ASSIGNMENT)
    nbgrader("export", "--to", str(course / "grades.csv"), course=course, env=env)
    return course, expected_failures


def test_autograde_scores_match_expectations(graded_course):
    course, expected_failures = graded_course
    wrong = []
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gradebook:
        for (student, stem), failing in sorted(expected_failures.items()):
            submission = gradebook.find_submission_notebook(stem, ASSIGNMENT, student)
            auto = {g.name: g for g in submission.grades if g.auto_score is not None}
            expected = {name: 0.0 if name in failing else g.max_score for name, g in auto.items()}
            actual = {name: g.auto_score for name, g in auto.items()}
            if actual != expected:
                wrong.append(f"{student}/{stem}: expected {expected}, got {actual}")
    assert not wrong, "\n".join(wrong)


def test_reference_and_blank_totals(graded_course):
    course, _ = graded_course
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gradebook:
        for stem in {s for _, s in graded_course[1]}:
            reference = gradebook.find_submission_notebook(stem, ASSIGNMENT, "reference")
            blank = gradebook.find_submission_notebook(stem, ASSIGNMENT, "blank")
            assert reference.code_score == reference.max_code_score > 0, f"{stem}: reference lost marks"
            assert blank.code_score == 0, f"{stem}: the blank release earned {blank.code_score} points"


def test_feedback_for_every_submission_without_hidden_tests(graded_course):
    course, expected_failures = graded_course
    for student, stem in expected_failures:
        page = course / "feedback" / student / ASSIGNMENT / f"{stem}.html"
        assert page.exists() and page.stat().st_size > 0, f"no feedback at {page}"
        text = html.unescape(re.sub(r"<[^>]+>", "", page.read_text()))  # code is highlighted token by token
        leaked = hidden_lines(stem) & {line.strip() for line in text.splitlines()}
        assert not leaked, f"{student}/{stem}: feedback shows hidden test lines {sorted(leaked)[:3]}"


def hidden_lines(stem: str) -> set[str]:
    """Distinctive lines of a notebook's hidden tests (not also in its visible text)."""
    nb = notebooks.read(SOURCE / f"{stem}.ipynb")
    hidden = {line.strip() for cell in nb.cells for block in notebooks.HIDDEN_TESTS.findall(cell.source)
              for line in block.splitlines()}
    public = {line.strip() for cell in nb.cells for line in notebooks.HIDDEN_TESTS.sub("", cell.source).splitlines()}
    return {line for line in hidden - public if len(line) >= release.MIN_LEAK_LENGTH}


def test_grades_csv_has_a_row_per_student(graded_course):
    course, expected_failures = graded_course
    with open(course / "grades.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert {r["student_id"] for r in rows} == {s for s, _ in expected_failures}
    assert all(r["assignment"] == ASSIGNMENT for r in rows)
    scores = {r["student_id"]: float(r["score"]) for r in rows}
    assert scores["reference"] > scores["mixed"] > scores["blank"] == 0

