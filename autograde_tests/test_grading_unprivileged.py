"""`make autograde` run by an ordinary account (an NCC instructor has no root), at each level it can reach.

Part of the hostile class (hostile.py) is graded by `python -m coursepack.grading autograde` running
as a throwaway account, with bubblewrap (user namespaces) and without it. The grader must state
the level it reached, and grade exactly as the full sandbox does: honest controls, forged marks and
a process that outlives its kernel alike.
"""
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from accounts import account_env, make_account, needs_account, remove_account, run_as
from conftest import marked
from hostile import ASSIGNMENT, cases, make_submission, tiny_source
from sandboxing import needs_bwrap

from coursepack.grading import classroom

STUDENTS = ["honest", "blank", "hidden_fail", "unusual_but_honest", "alias_patch", "forged_equality", "survivor",
            "symlinked_folder"]

pytestmark = [pytest.mark.root, needs_account]


@pytest.fixture(scope="module")
def account_course():
    """(account, course): a small class in a folder the account owns."""
    name = make_account()
    folder = Path(tempfile.mkdtemp(prefix="coursepack-account-"))
    os.chmod(folder, 0o755)
    course = folder / "course"
    source = tiny_source()
    classroom.make_course(course, ASSIGNMENT, {"tiny": source}, extra="\nc.Sandbox.notebook_timeout = 60\n")
    release = classroom.release(course, ASSIGNMENT, "tiny")
    expected = cases(course, port=9)
    for student in STUDENTS:
        make_submission(course, student, expected[student], source, release)
    subprocess.run(["chown", "-R", "--no-dereference", f"{name}:{name}", str(folder)], check=True)
    try:
        yield name, course
    finally:
        remove_account(name)
        shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.parametrize("flags, level", [
    pytest.param([], "user-namespaces", id="bubblewrap", marks=needs_bwrap),
    pytest.param(["--no-bwrap"], "limits-only", id="limits-only"),
])
def test_an_ordinary_account_grades_exactly_as_the_full_sandbox(account_course, flags, level):
    name, course = account_course
    shutil.rmtree(course / ".grading", ignore_errors=True)
    env = account_env(JUPYTER_CONFIG_DIR=str(course / ".jupyter" / "config"),
                      JUPYTER_DATA_DIR=str(course / ".jupyter" / "data"),
                      JUPYTER_RUNTIME_DIR=str(course / ".jupyter" / "runtime"))
    graded = run_as(name, ["-m", "coursepack.grading", "autograde", ASSIGNMENT, "--workers=2", "--quiet", *flags],
                    cwd=course, env=env, timeout=600)
    assert graded.returncode == 1, graded.stdout[-3000:] + graded.stderr[-3000:]  # the linked folder fails
    report = json.loads((course / ".grading" / f"{ASSIGNMENT}-report.json").read_text())
    assert report["isolation"]["level"] == level, report["isolation"]
    assert f"isolation: {level}" in graded.stderr
    expected = cases(course, port=9)
    got = {row["student"]: (row["score"], row["status"]) for row in report["notebooks"]}
    assert got == {s: (expected[s].score, expected[s].status) for s in STUDENTS}, graded.stdout[-3000:]
    survivors = [pid for pid in os.listdir("/proc") if pid.isdigit() and marked(pid, b"SURVIVOR_MARK")]
    assert not survivors, "a process of a graded submission outlived its kernel"
