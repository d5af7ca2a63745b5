"""Hostile and broken submissions through `make autograde` (coursepack.grading.autograde).

One small course in the pack's conventions (the real checks cell, answer and test cells with hidden
tests) is graded once with two workers. Next to honest students it holds one submission for each
way a submission can go wrong: invalid JSON, an infinite loop, a loop in every test, a memory bomb,
a fork bomb, code that kills its kernel, megabytes of output, a deleted / edited test cell, changed
cell ids and metadata, a renamed file, monkeypatched comparisons (torch.allclose, numpy.testing,
builtins, the checks helpers) and code that tries to read the hidden tests, the gradebook and other
students' files or reach the network. Each must get its reason and exactly the marks it earned, and
everyone else must be graded normally.
"""
from __future__ import annotations

import fcntl
import json
import os
import shutil
import socket
import threading
import time
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook
from nbgrader.api import Gradebook

from coursepack import notebooks
from coursepack.grading import autograde, classroom

ASSIGNMENT = "p1"
CELL_TIMEOUT, NOTEBOOK_TIMEOUT = 3, 10
POINTS = {"test_double": 2, "test_square": 3, "test_total": 1}
FULL = sum(POINTS.values())


def _meta(grade_id, grade=False, solution=False, locked=False, points=None):
    meta = {"schema_version": 3, "grade": grade, "solution": solution, "locked": locked, "task": False,
            "grade_id": grade_id}
    if grade:
        meta["points"] = points
    return {"nbgrader": meta}


def tiny_source() -> nbformat.NotebookNode:
    """A notebook shaped like the practical's: imports, the checks cell, answers, tests with hidden parts."""
    answer = '{}\n    """{}"""\n    ### BEGIN SOLUTION\n    {}\n    ### END SOLUTION'
    cells = [
        new_markdown_cell("# Tiny", metadata=_meta("intro", locked=True)),
        new_code_cell("import math\n\nimport numpy as np\nimport torch"),
        new_code_cell(notebooks.snippet_cell_source("checks"),
                      metadata={**_meta("checks", locked=True), "coursepack": {"inject": "checks"}}),
        new_code_cell(answer.format("def double(x):", "Return 2x.", "return 2 * x"),
                      metadata=_meta("answer_double", solution=True)),
        new_code_cell('check_close(double(torch.tensor(1.0)), 2.0, "double(1)")\n### BEGIN HIDDEN TESTS\n'
                      'check_close(double(torch.arange(5.0)), 2 * torch.arange(5.0), "double(arange(5))")  '
                      '# SECRET_DOUBLE\n### END HIDDEN TESTS',
                      metadata=_meta("test_double", grade=True, locked=True, points=POINTS["test_double"])),
        new_code_cell(answer.format("def square(x):", "Return x squared.", "return x * x"),
                      metadata=_meta("answer_square", solution=True)),
        new_code_cell("np.testing.assert_allclose(square(3.0), 9.0)\n### BEGIN HIDDEN TESTS\n"
                      "np.testing.assert_allclose(square(np.arange(4.0)), np.arange(4.0) ** 2)  # SECRET_SQUARE\n"
                      "### END HIDDEN TESTS",
                      metadata=_meta("test_square", grade=True, locked=True, points=POINTS["test_square"])),
        new_code_cell(answer.format("def total(n):", "Return 0 + 1 + ... + (n - 1).", "return n * (n - 1) // 2"),
                      metadata=_meta("answer_total", solution=True)),
        new_code_cell('check_true(total(4) == 6, "total(4) should be 6")\n### BEGIN HIDDEN TESTS\n'
                      'check_true(total(10**6) == 10**6 * (10**6 - 1) // 2, "total(10**6) is wrong")  # SECRET_TOTAL\n'
                      "### END HIDDEN TESTS",
                      metadata=_meta("test_total", grade=True, locked=True, points=POINTS["test_total"])),
    ]
    return new_notebook(cells=cells, metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                              "language": "python"}})


WRONG_DOUBLE = "def double(x):\n    return 3 * x"


class Case:
    """A submission: how to make it, the score it must get, its status and a word its reason must contain."""

    def __init__(self, score, status, reason="", answers=None, edit=None, text=None, filename=None):
        self.score, self.status, self.reason = score, status, reason
        self.answers, self.edit, self.text, self.filename = answers or {}, edit, text, filename


def _with_answers(source, overrides):
    given = notebooks.answers(source)
    given.update(overrides)
    return given


def _drop_cell(grade_id):
    def edit(nb):
        nb.cells = [c for c in nb.cells if notebooks.nbgrader(c).get("grade_id") != grade_id]
    return edit


def _set_test_source(grade_id, text):
    def edit(nb):
        for cell in nb.cells:
            if notebooks.nbgrader(cell).get("grade_id") == grade_id:
                cell.source = text
    return edit


def _change_metadata(nb):
    for cell in nb.cells:
        meta = notebooks.nbgrader(cell)
        if meta.get("grade_id") == "test_double":
            meta["points"] = 100
            meta["grade_id"] = "test_whatever"  # the real test_double is missing now
        if meta.get("grade_id") == "test_square":
            del cell.metadata["nbgrader"]  # no longer looks like a test cell
        cell["id"] = "same-id"  # duplicate Jupyter cell ids


def _course_reader(course: Path, port: int) -> str:
    paths = [course / "gradebook.db", course / "source" / ASSIGNMENT / "tiny.ipynb",
             course / "autograded" / "honest" / ASSIGNMENT / "tiny.ipynb",
             course / "submitted" / "honest" / ASSIGNMENT / "tiny.ipynb", course / "nbgrader_config.py"]
    return (
        "def double(x):\n    return 2 * x\n\n"
        "import os, socket\n"
        f"for path in {[str(p) for p in paths]!r}:\n"
        "    try:\n        open(path).read(10)\n        print('LEAK', path)\n"
        "    except OSError as error:\n        print('blocked', type(error).__name__)\n"
        "try:\n"
        f"    socket.create_connection(('127.0.0.1', {port}), timeout=2)\n    print('LEAK network')\n"
        "except OSError as error:\n    print('blocked network', type(error).__name__)\n"
        "print('uid', os.getuid())\n")


def cases(course: Path, port: int) -> dict[str, Case]:
    loop = "def total(n):\n    while True:\n        pass"
    return {
        "honest": Case(FULL, "ok"),
        "blank": Case(0, "ok", answers=None),
        # passes the visible test, fails the hidden one (its feedback must not show the hidden line)
        "hidden_fail": Case(FULL - POINTS["test_double"], "ok", answers={
            "answer_double": "def double(x):\n    return x + 1"}),
        "invalid_json": Case(0, "failed", "valid notebook", text='{"cells": [ this is not json'),
        "renamed": Case(FULL, "ok", "renamed", filename="tiny (1)"),
        "infinite_loop": Case(FULL - POINTS["test_total"], "ok", "interrupted", answers={"answer_total": loop}),
        # four cells that each run into the 3 s cell limit: the 10 s notebook limit stops the fourth
        "every_test_loops": Case(0, "failed", "limit", answers={
            "answer_double": "def double(x):\n    while True:\n        pass",
            "answer_square": "def square(x):\n    while True:\n        pass",
            "answer_total": loop + "\n\nwhile True:\n    pass"}),
        "memory_bomb": Case(FULL, "ok", answers={"answer_square": (
            "def square(x):\n    return x * x\n\nhog = []\ntry:\n    while True:\n"
            "        hog.append(bytes(2**30))\nexcept MemoryError:\n    hog = None\n")}),
        "fork_bomb": Case(POINTS["test_double"], "failed", "fork bomb", answers={"answer_square": (
            "import os\nfor _ in range(100000):\n    try:\n        if os.fork() == 0:\n"
            "            while True:\n                pass\n    except OSError:\n        break\n"
            "def square(x):\n    return x * x")}),
        "kills_kernel": Case(POINTS["test_double"], "failed", "kernel died", answers={
            "answer_square": "import os\nos._exit(3)"}),
        "huge_output": Case(FULL, "ok", "output", answers={
            "answer_square": "def square(x):\n    return x * x\n\nfor _ in range(200):\n    print('x' * 100_000)"}),
        "deleted_test": Case(FULL - POINTS["test_double"], "ok", answers={"answer_double": WRONG_DOUBLE},
                             edit=_drop_cell("test_double")),
        "edited_test": Case(FULL - POINTS["test_double"], "ok", answers={"answer_double": WRONG_DOUBLE},
                            edit=_set_test_source("test_double", "pass")),
        "changed_metadata": Case(FULL - POINTS["test_double"] - POINTS["test_square"], "ok", "unknown id", answers={
            "answer_double": WRONG_DOUBLE, "answer_square": "def square(x):\n    return x + x"},
            edit=_change_metadata),
        "patch_allclose": Case(0, "held", "torch.allclose", answers={
            "answer_double": "import torch as t\nt.allclose = lambda *a, **k: True\n" + WRONG_DOUBLE}),
        "patch_numpy_testing": Case(0, "held", "np.testing", answers={
            "answer_square": "np.testing.assert_allclose = lambda *a, **k: None\n"
                             "def square(x):\n    return x + 1"}),
        "patch_builtins": Case(0, "held", "builtins", answers={
            "answer_total": "import builtins\nbuiltins.AssertionError = KeyError\ndef total(n):\n    return 0"}),
        "redefine_check_close": Case(0, "held", "check_close", answers={
            "answer_double": "def check_close(*args, **kwargs):\n    pass\n\n" + WRONG_DOUBLE}),
        "patch_by_exec": Case(0, "held", "exec", answers={
            "answer_double": "exec('torch.allclose = lambda *a, **k: True')\n" + WRONG_DOUBLE}),
        "reads_hidden_tests": Case(FULL, "ok", answers={"answer_double": _course_reader(course, port)}),
    }


def make_submission(course, name, case, source, release):
    if case.text is not None:
        return classroom.submit(course, ASSIGNMENT, name, "tiny", case.text)
    nb = notebooks.filled(release, {} if name == "blank" else _with_answers(source, case.answers))
    if case.edit:
        case.edit(nb)
    path = classroom.submit(course, ASSIGNMENT, name, case.filename or "tiny", nb)
    if case.filename:
        path.rename(path.with_name(f"{case.filename}.ipynb"))
    return path


@pytest.fixture(scope="session")
def listener():
    """A TCP server on 127.0.0.1 that a sandboxed kernel must not reach."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.5)
    accepted = []

    def serve():
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except OSError:
                continue

    stop = threading.Event()
    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1], accepted
    stop.set()
    thread.join()
    server.close()


_GRADED = {}  # other test modules import the fixture: each import is its own fixture, the class is graded once


@pytest.fixture(scope="session")
def hostile_class(tmp_path_factory, listener):
    """(course, cases, exit code, report, seconds, connections the listener accepted or None).

    Graded once per test run, also under pytest-xdist: the first process to take the lock grades
    the class into a folder all workers share, the others wait and read it. Tests only read it.
    """
    if "class" in _GRADED:
        return _GRADED["class"]
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent
    course, done = root / "hostile-class", root / "hostile-class.json"
    with open(root / "hostile-class.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        accepted = None
        if not done.exists():
            port, accepted = listener
            code, seconds = _grade_hostile_class(course, port)
            done.write_text(json.dumps({"port": port, "code": code, "seconds": seconds}))
        saved = json.loads(done.read_text())
    report = json.loads((course / ".grading" / f"{ASSIGNMENT}-report.json").read_text())
    _GRADED["class"] = (course, cases(course, saved["port"]), saved["code"], report, saved["seconds"], accepted)
    return _GRADED["class"]


def _grade_hostile_class(course, port):
    extra = (f"\nc.ExecutePreprocessor.timeout = {CELL_TIMEOUT}\nc.Sandbox.notebook_timeout = {NOTEBOOK_TIMEOUT}\n"
             "c.Sandbox.max_output_bytes = 2 * 2**20\nc.Sandbox.max_processes = 64\n"
             "c.Sandbox.memory_limit = 3 * 2**30\n")
    source = tiny_source()
    classroom.make_course(course, ASSIGNMENT, {"tiny": source}, extra=extra)
    release = classroom.release(course, ASSIGNMENT, "tiny")
    expected = cases(course, port)
    for name, case in expected.items():
        make_submission(course, name, case, source, release)
    # make autograde's recipe, with two workers whatever this machine has
    started = time.monotonic()
    code = _grade(course)
    return code, time.monotonic() - started


def _grade(course, *extra):
    previous = os.environ.copy()
    os.environ.update(classroom.env(course))
    try:
        return autograde.main([ASSIGNMENT, "--course", str(course), "--workers", "2", "--quiet", *extra])
    finally:
        os.environ.clear()
        os.environ.update(previous)


def _rows(report):
    return {r["student"]: r for r in report["notebooks"]}


def _gradebook_scores(course, students=None):
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}", "comp3547") as gradebook:
        found = {}
        for submission in gradebook.find_assignment(ASSIGNMENT).submissions:
            if students is not None and submission.student.id not in students:
                continue
            nb = submission.notebooks[0]
            found[submission.student.id] = (
                {g.name: g.auto_score for g in nb.grades}, nb.flagged,
                any(g.needs_manual_grade for g in nb.grades))
        return found


def test_every_submission_gets_its_marks_and_reason(hostile_class):
    course, expected, code, report, _, _ = hostile_class
    rows = _rows(report)
    wrong = []
    for name, case in expected.items():
        row = rows.get(name)
        if row is None:
            wrong.append(f"{name}: not in the report")
            continue
        reasons = " ".join(row["problems"] + row["tampering"])
        if row["score"] != case.score or row["status"] != case.status or case.reason not in reasons:
            wrong.append(f"{name}: expected {case.score} {case.status} ({case.reason!r}), got {row['score']} "
                         f"{row['status']}: {reasons[:300]}")
    assert not wrong, "\n".join(wrong)
    assert code == 1, "held and failed notebooks must make the exit code ask for attention"


def test_gradebook_agrees_with_the_report_and_holds_tampering(hostile_class):
    course, expected, _, report, _, _ = hostile_class
    scores = _gradebook_scores(course)
    assert set(scores) == set(expected)
    for name, row in _rows(report).items():
        grades, flagged, needs_review = scores[name]
        assert sum(v or 0 for v in grades.values()) == row["score"], name
        assert flagged == (row["status"] == "held") and (needs_review or row["status"] != "held"), name
    # the tampering submissions would have passed everything: the hold is what took their marks
    for name in ("patch_allclose", "redefine_check_close", "patch_by_exec"):
        assert _rows(report)[name]["would_score"] == FULL, name
    # each layer catches every patch on its own: the scan of the source ("cell ...") and the probe that
    # runs in the kernel after the tests ("after ...")
    for name in ("patch_allclose", "patch_numpy_testing", "patch_builtins", "redefine_check_close", "patch_by_exec"):
        tampering = _rows(report)[name]["tampering"]
        assert any(t.startswith("cell ") for t in tampering), (name, tampering)
        assert any(t.startswith("after ") for t in tampering), (name, tampering)


def test_sandbox_hides_the_course_and_the_network(hostile_class):
    course, _, _, _, _, accepted = hostile_class
    graded = nbformat.read(course / "autograded" / "reads_hidden_tests" / ASSIGNMENT / "tiny.ipynb", as_version=4)
    text = "".join(o.get("text", "") for c in graded.cells if c.cell_type == "code" for o in c.outputs)
    assert "LEAK" not in text
    assert text.count("blocked") == 6, text
    uid = int(text.split("uid ")[1].split()[0])
    assert uid != 0
    assert not accepted, "a kernel reached a server on the grader's loopback"  # None: graded by another process


def test_a_test_that_never_finishes_scores_zero_and_says_why(hostile_class):
    course, *_ = hostile_class
    graded = nbformat.read(course / "autograded" / "infinite_loop" / ASSIGNMENT / "tiny.ipynb", as_version=4)
    cell = next(c for c in graded.cells if notebooks.nbgrader(c).get("grade_id") == "test_total")
    errors = [o for o in cell.outputs if o.output_type == "error"]
    assert errors and any(f"longer than {CELL_TIMEOUT} s" in o.evalue for o in errors), cell.outputs


def test_the_notebook_limit_bounds_a_submission_that_times_out_cell_after_cell(hostile_class):
    _, _, _, report, _, _ = hostile_class
    row = _rows(report)["every_test_loops"]
    assert row["seconds"] < NOTEBOOK_TIMEOUT + 25, row
    assert any("limit" in p for p in row["problems"]), row


def test_regrading_is_idempotent(hostile_class, tmp_path):
    course, *_ = hostile_class
    again = tmp_path / "again"  # a copy: the graded class is shared, read-only, by every test
    shutil.copytree(course, again, ignore=shutil.ignore_patterns(".grading", ".jupyter", "feedback"))
    assert _grade(again, "--student", "[hi]*") == 1  # honest, hidden_fail, huge_output, infinite_loop, invalid_json
    assert _gradebook_scores(again) == _gradebook_scores(course)
