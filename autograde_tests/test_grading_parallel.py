"""Parallel grading gives stock nbgrader's scores, in one gradebook, on one machine or as a SLURM array.

Uses the graded hostile class of test_grading_adversarial.py (graded with two workers). A few of its
students are graded again, in fresh copies of the course, by stock `nbgrader autograde` and by the
SLURM array scripts run locally in sequence; every per-cell score must agree.
"""
import os
import shutil
import subprocess
import sys
from pathlib import Path

from nbgrader.api import Gradebook
from test_grading_adversarial import ASSIGNMENT, hostile_class, listener  # noqa: F401 - session fixtures

from coursepack import notebooks
from coursepack.grading import classroom, tamper
from coursepack.nbgrader_cli import nbgrader

ROOT = notebooks.ROOT
# Students stock nbgrader grades as meant (no sandbox needed to agree). Not infinite_loop: when the
# interrupted kernel is slow to report idle (a loaded machine), stock nbgrader 0.9.6 gives up on the
# whole student ("Timeout waiting for IOPub output").
COOPERATIVE = ["honest", "blank", "deleted_test"]


def scores(course: Path, students) -> dict:
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}", "comp3547") as gradebook:
        return {s: {g.name: g.auto_score for g in gradebook.find_submission_notebook("tiny", ASSIGNMENT, s).grades}
                for s in students}


def subset(course: Path, students, folder: Path) -> Path:
    """A copy of the graded course with only `students`' submissions, and none of their grades."""
    for name in ("source", "release"):
        shutil.copytree(course / name, folder / name)
    shutil.copy(course / "nbgrader_config.py", folder)
    shutil.copy(course / "gradebook.db", folder)
    for student in students:
        shutil.copytree(course / "submitted" / student, folder / "submitted" / student)
    with Gradebook(f"sqlite:///{folder / 'gradebook.db'}", "comp3547") as gradebook:
        for submission in list(gradebook.find_assignment(ASSIGNMENT).submissions):
            gradebook.remove_submission(ASSIGNMENT, submission.student.id)
    return folder


def test_scores_match_stock_nbgrader(hostile_class, tmp_path):  # noqa: F811
    course, *_ = hostile_class
    copy = subset(course, COOPERATIVE, tmp_path / "stock")
    # A longer IOPub timeout than nbgrader's 4 s: on a loaded machine stock nbgrader otherwise gives up
    # on a whole student when a kernel is slow to report idle. It changes no score.
    nbgrader("autograde", ASSIGNMENT, "--ExecutePreprocessor.iopub_timeout=30", course=copy, env=classroom.env(copy))
    stock, ours = scores(copy, COOPERATIVE), scores(course, COOPERATIVE)
    assert stock == ours
    assert len({sum(v.values()) for v in ours.values()}) == 3, "the comparison needs different scores"


def test_every_worker_took_students(hostile_class):  # noqa: F811
    course, expected, _, report, _, _ = hostile_class
    logs = sorted((course / ".grading" / "run" / "local").glob("worker-*.log"))
    assert len(logs) == report["workers"] == 2
    for log in logs:
        assert log.read_text().count("Autograding ") >= 2, f"{log.name} graded almost nothing"


def test_slurm_array_tasks_then_merge(hostile_class, tmp_path):  # noqa: F811
    course, *_ = hostile_class
    students = ["honest", "hidden_fail"]
    copy = subset(course, students, tmp_path / "slurm")
    env = dict(classroom.env(copy), PYTHON=sys.executable, SLURM_ARRAY_TASK_COUNT="2", SLURM_CPUS_PER_TASK="1")
    for task in ("0", "1"):
        result = subprocess.run(["bash", str(ROOT / "slurm" / "grade_array.sbatch"), ASSIGNMENT], cwd=copy,
                                env={**env, "SLURM_ARRAY_TASK_ID": task}, capture_output=True, text=True)
        assert result.returncode == 0, result.stderr[-2000:]
        assert (copy / ".grading" / "shards" / f"task-{task}.db").exists()
    before = scores(copy, [])
    assert before == {}
    merge = subprocess.run(["bash", str(ROOT / "slurm" / "grade_array_merge.sbatch"), ASSIGNMENT], cwd=copy,
                           env=env, capture_output=True, text=True)
    assert merge.returncode == 0, merge.stdout[-2000:] + merge.stderr[-2000:]
    assert scores(copy, students) == scores(course, students)
    assert "2 ok" in merge.stdout


def test_the_practicals_own_answers_raise_no_tampering_finding():
    """A student who writes the instructor's solutions (whatever notebooks exist now) must not be held."""
    found = []
    for path in notebooks.source_notebooks():
        source = notebooks.read(path)
        policy = tamper.Policy(source)
        student = notebooks.nbformat.from_dict(source)
        for cell in student.cells:
            if notebooks.is_answer(cell):  # typed by the student: no solution markers, so not trusted
                cell.source = "\n".join(line for line in cell.source.splitlines() if "### " not in line)
        found += [f"{path.name}: {finding}" for finding in policy.scan(student)]
    assert not found, "\n".join(found)


def test_make_autograde_and_feedback_use_the_grading_package():
    text = (ROOT / "Makefile").read_text()
    recipe = text.split("\nautograde:")[1].split("\n\n")[0]
    assert "coursepack.grading.autograde" in recipe
    assert "coursepack.grading.feedback" in text.split("\nfeedback:")[1].split("\n\n")[0]
    assert os.access(ROOT / "slurm" / "grade_array.sbatch", os.R_OK)
