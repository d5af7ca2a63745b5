"""Parallel grading gives stock nbgrader's scores, in one gradebook, on one machine or as a SLURM array.

Uses the graded hostile class (conftest.py; graded with two workers). The honest controls among its
students are graded again, in fresh copies of the course, by stock `nbgrader autograde` and by the
SLURM array scripts run locally in sequence; every per-cell score must agree.
"""
import subprocess
import sys

from hostile import ASSIGNMENT, scores, subset

from coursepack import notebooks
from coursepack.grading import classroom
from coursepack.nbgrader_cli import nbgrader

ROOT = notebooks.ROOT
# Honest controls stock nbgrader grades as meant. Not infinite_loop: when the interrupted kernel is
# slow to report idle (a loaded machine), stock nbgrader 0.9.6 gives up on the whole student
# ("Timeout waiting for IOPub output").
COOPERATIVE = ["honest", "blank", "hidden_fail", "unusual_but_honest", "deleted_test"]
STOCK_CELL_TIMEOUT = 300


def test_scores_match_stock_nbgrader(hostile_class, tmp_path):
    course, *_ = hostile_class
    copy = subset(course, COOPERATIVE, tmp_path / "stock")
    # Longer limits than the course's for stock nbgrader, which changes no score of these students (none
    # of them loops): its kernel imports torch within the first cell's time (our grader imports it before
    # the clock starts), and a cold CUDA build on a busy machine takes tens of seconds; and with nbgrader's
    # 4 s IOPub timeout it gives up on a whole student when a kernel is slow to report idle.
    nbgrader("autograde", ASSIGNMENT, f"--ExecutePreprocessor.timeout={STOCK_CELL_TIMEOUT}",
             "--ExecutePreprocessor.iopub_timeout=30", course=copy, env=classroom.env(copy))
    stock, ours = scores(copy, COOPERATIVE), scores(course, COOPERATIVE)
    assert stock == ours
    assert len({sum(v.values()) for v in ours.values()}) == 3, "the comparison needs different scores"


def test_every_worker_took_students(hostile_class):
    course, expected, _, report, *_ = hostile_class
    logs = sorted((course / ".grading" / "run" / "local").glob("worker-*.log"))
    assert len(logs) == report["workers"] == 2
    for log in logs:
        assert log.read_text().count("Autograding ") >= 2, f"{log.name} graded almost nothing"


def test_slurm_array_tasks_then_merge(hostile_class, tmp_path):
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


def test_make_autograde_and_feedback_use_the_grading_package():
    text = (ROOT / "Makefile").read_text()
    recipe = text.split("\nautograde:")[1].split("\n\n")[0]
    assert "-m coursepack.grading autograde" in recipe
    assert "-m coursepack.grading feedback" in text.split("\nfeedback:")[1].split("\n\n")[0]
    for script in ("grade_array.sbatch", "grade_array_merge.sbatch"):
        assert "-m coursepack.grading " in (ROOT / "slurm" / script).read_text()
