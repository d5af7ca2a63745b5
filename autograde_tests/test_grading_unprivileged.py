"""Every isolation level the grader can fall back to grades exactly as the full sandbox does.

Part of the hostile class (hostile.py: the honest controls, and the mixed ones: forged marks, a
process that outlives its kernel, a linked folder) is graded by `python -m coursepack.grading
autograde` at each level below the full sandbox: as root without bubblewrap (`root`), and as a
throwaway ordinary account (an NCC instructor has no root) with bubblewrap (`user-namespaces`),
without it (`limits-only`) and without user namespaces either (`limits-only`, no namespaces). The
grader must state the level it reached, and give every student the marks `hostile.cases` gives
them, which the whole class gets under the full sandbox (test_grading_adversarial.py, as root with
bubblewrap).
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from accounts import account_env, make_account, needs_account, remove_account, run_as
from conftest import marked, terminal_env
from hostile import ASSIGNMENT, cases, make_submission, tiny_source
from sandboxing import needs_bwrap

from coursepack.grading import classroom

STUDENTS = ["honest", "blank", "hidden_fail", "unusual_but_honest", "alias_patch", "forged_equality", "survivor",
            "symlinked_folder"]

pytestmark = [pytest.mark.root, needs_account]
NO_NAMESPACES = ["--no-bwrap", "--Sandbox.user_namespaces=False"]


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


@pytest.mark.parametrize("who, flags, level, namespaces", [
    pytest.param("root", ["--no-bwrap"], "root", True, id="root"),
    pytest.param("account", [], "user-namespaces", True, id="user-namespaces", marks=needs_bwrap),
    pytest.param("account", ["--no-bwrap"], "limits-only", True, id="limits-only"),
    pytest.param("account", NO_NAMESPACES, "limits-only", False, id="limits-only-no-namespaces"),
])
def test_every_level_grades_exactly_as_the_full_sandbox(account_course, who, flags, level, namespaces):
    name, course = account_course
    shutil.rmtree(course / ".grading", ignore_errors=True)
    env = account_env(JUPYTER_CONFIG_DIR=str(course / ".jupyter" / "config"),
                      JUPYTER_DATA_DIR=str(course / ".jupyter" / "data"),
                      JUPYTER_RUNTIME_DIR=str(course / ".jupyter" / "runtime"))
    args = ["-m", "coursepack.grading", "autograde", ASSIGNMENT, "--workers=2", "--quiet", *flags]
    subprocess.run(["chown", "-R", "--no-dereference", f"{name}:{name}", str(course)], check=True)  # (root graded it)
    if who == "root":
        graded = subprocess.run([sys.executable, *args], cwd=course, env=terminal_env(course), capture_output=True,
                                text=True, timeout=600)
    else:
        graded = run_as(name, args, cwd=course, env=env, timeout=600)
    assert graded.returncode == 1, graded.stdout[-3000:] + graded.stderr[-3000:]  # the linked folder fails
    report = json.loads((course / ".grading" / f"{ASSIGNMENT}-report.json").read_text())
    assert report["isolation"]["level"] == level, report["isolation"]
    assert report["isolation"]["namespaces"] == namespaces, report["isolation"]
    assert f"isolation: {level}" in graded.stderr
    expected = cases(course, port=9)
    got = {row["student"]: (row["score"], row["status"]) for row in report["notebooks"]}
    assert got == {s: (expected[s].score, expected[s].status) for s in STUDENTS}, graded.stdout[-3000:]
    survivors = [pid for pid in os.listdir("/proc") if pid.isdigit() and marked(pid, b"SURVIVOR_MARK")]
    assert not survivors, "a process of a graded submission outlived its kernel"
