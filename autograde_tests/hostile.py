"""A tiny course in the practical's conventions and a class of hostile, broken and honest submissions.

The notebook has the real checks cell, three answers with visible and hidden tests, a plot and a
written answer. Each `Case` is one submission: how to make it, the score it must get, its status and
a word its reasons must contain. The classes of attack are those of docs/grading-threat-model.md:
forged verdicts (display hook, interactivity, patched comparisons by every route, objects that
claim equality, a hijacked bridge), damage to other students (a process that outlives its kernel),
links out of the submission, limits (time, memory, processes, output of every kind, disk) and
leaks (history, HTML). Honest controls next to them must get exactly what stock nbgrader gives.
"""
from __future__ import annotations

import os
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from coursepack import notebooks
from coursepack.grading import classroom

ASSIGNMENT = "p1"
# An honest cell here takes well under a second (the grader imports torch & co. before the clock starts);
# the limits leave it ten times that on a busy machine. The looping cases loop forever: any limit stops them.
# 3 cells x 10 s < 35 s < 4 cells x 10 s: the notebook limit, not a cell's, stops every_test_loops.
CELL_TIMEOUT, NOTEBOOK_TIMEOUT = 10, 35
POINTS = {"test_double": 2, "test_square": 3, "test_total": 1}
FULL = sum(POINTS.values())
SECRETS = ("SECRET_DOUBLE", "SECRET_SQUARE", "SECRET_TOTAL")
WRONG_DOUBLE = "def double(x):\n    return 3 * x"
LOOP = "def total(n):\n    while True:\n        pass"
CONFIG = (f"\nc.ExecutePreprocessor.timeout = {CELL_TIMEOUT}\nc.Sandbox.notebook_timeout = {NOTEBOOK_TIMEOUT}\n"
          "c.Sandbox.max_output_bytes = 2 * 2**20\nc.Sandbox.max_processes = 64\n"
          "c.Sandbox.memory_limit = 3 * 2**30\nc.HarnessSettings.max_message_bytes = 64 * 2**20\n")


def _meta(grade_id, grade=False, solution=False, locked=False, points=None):
    meta = {"schema_version": 3, "grade": grade, "solution": solution, "locked": locked, "task": False,
            "grade_id": grade_id}
    if grade:
        meta["points"] = points
    return {"nbgrader": meta}


def tiny_source() -> nbformat.NotebookNode:
    """A notebook shaped like the practical's: imports, checks, a plot, answers, tests, a written answer."""
    answer = '{}\n    """{}"""\n    ### BEGIN SOLUTION\n    {}\n    ### END SOLUTION'
    cells = [
        new_markdown_cell("# Tiny", metadata=_meta("intro", locked=True)),
        new_code_cell("import math\n\nimport matplotlib.pyplot as plt\nimport numpy as np\nimport torch"),
        new_code_cell(notebooks.snippet_cell_source("checks"),
                      metadata={**_meta("checks", locked=True), "coursepack": {"inject": "checks"}}),
        # an instructor's plot: matplotlib rebinds pyplot functions the first time it draws
        new_code_cell("fig, ax = plt.subplots()\nax.plot([0, 1], [1, 0])\nplt.show()"),
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
        new_markdown_cell("Explain `total` in one sentence.\n\n### BEGIN SOLUTION\nGauss's sum.\n### END SOLUTION",
                          metadata=_meta("written", grade=True, solution=True, points=1)),
    ]
    return new_notebook(cells=cells, metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                              "language": "python"}})


class Case:
    """A submission: how to make it, the score it must get, its status and a word its reasons must contain."""

    def __init__(self, score, status, reason="", answers=None, edit=None, text=None, filename=None, files=None,
                 link=None):
        self.score, self.status, self.reason = score, status, reason
        self.answers, self.edit, self.text, self.filename = answers or {}, edit, text, filename
        self.files = files or {}  # files handed in next to the notebook: {name: text, a link target, or None: a FIFO}
        self.link = link  # the whole submission folder is a link to this path


def _drop_cell(grade_id):
    def edit(nb):
        nb.cells = [c for c in nb.cells if notebooks.grade_id(c) != grade_id]
    return edit


def _set_source(grade_id, text):
    def edit(nb):
        for cell in nb.cells:
            if notebooks.grade_id(cell) == grade_id:
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


def _add_cell(after_grade_id, text):
    def edit(nb):
        index = next(i for i, c in enumerate(nb.cells) if notebooks.grade_id(c) == after_grade_id)
        nb.cells.insert(index + 1, new_code_cell(text))
    return edit


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


PATCH = "lambda *args, **kwargs: True"
# A process that outlives its kernel and then kills everything it can reach: under a sealed kernel
# it dies with its kernel's namespace; otherwise it would take later students' kernels with it.
ATTACK = """import os, signal, sys, time
kernel = int(sys.argv[1])
while True:
    time.sleep(0.05)
    try:
        os.kill(kernel, 0)
    except OSError:  # its kernel has ended: now attack whatever comes next, for a minute
        break
end = time.time() + 60
while time.time() < end:  # (only kernels: were it ever unsealed, it must not take the test run down)
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if b"ipykernel" in open(f"/proc/{pid}/cmdline", "rb").read():
                os.kill(int(pid), signal.SIGKILL)
        except OSError:
            pass
    time.sleep(0.1)
"""
SURVIVOR = f"""import os, sys
kernel = os.getpid()
if os.fork() == 0:
    os.setsid()
    for _ in range(20):  # re-fork: a sweep that lists processes once cannot catch it
        if os.fork():
            os._exit(0)
    os.execv(sys.executable, [sys.executable, "-c", {ATTACK!r}, str(kernel), "SURVIVOR_MARK"])

def square(x):
    return x * x"""


def cases(course: Path, port: int) -> dict[str, Case]:
    return {
        # honest controls: what stock nbgrader gives them
        "honest": Case(FULL, "ok"),
        "blank": Case(0, "ok"),
        "hidden_fail": Case(FULL - POINTS["test_double"], "ok", answers={
            "answer_double": "def double(x):\n    return x + 1"}),
        "unusual_but_honest": Case(FULL, "ok", answers={"answer_square": (
            'with open("notes.txt", "w") as f:\n    f.write("a top-level with")\nfor _i in range(3):\n    pass\n'
            "fig, ax = plt.subplots()\nax.plot([1, 2])\nplt.show()\n\ndef square(x):\n    return x * x")}),
        # broken submissions: their reason and exactly the marks they earned
        "invalid_json": Case(0, "failed", "valid notebook", text='{"cells": [ this is not json'),
        "renamed": Case(FULL, "ok", "renamed", filename="tiny (1)"),
        "infinite_loop": Case(FULL - POINTS["test_total"], "ok", "interrupted", answers={"answer_total": LOOP}),
        # four cells that each run into the cell limit: the notebook limit stops the fourth
        "every_test_loops": Case(0, "failed", "limit", answers={
            "answer_double": "def double(x):\n    while True:\n        pass",
            "answer_square": "def square(x):\n    while True:\n        pass",
            "answer_total": LOOP + "\n\nwhile True:\n    pass"}),
        "memory_bomb": Case(FULL, "ok", answers={"answer_square": (
            "def square(x):\n    return x * x\n\nhog = []\ntry:\n    while True:\n"
            "        hog.append(bytes(2**30))\nexcept MemoryError:\n    hog = None\n")}),
        "kills_kernel": Case(POINTS["test_double"], "failed", "kernel died", answers={
            "answer_square": "import os\nos._exit(3)"}),
        "huge_output": Case(FULL, "ok", "output", answers={
            "answer_square": "def square(x):\n    return x * x\n\nfor _ in range(200):\n    print('x' * 100_000)"}),
        "display_flood": Case(FULL, "ok", "output", answers={"answer_square": (
            "from IPython.display import display\nhandle = display('x', display_id=True)\n"
            "for _ in range(300):\n    handle.update('y' * 100_000)\n\ndef square(x):\n    return x * x")}),
        "fills_its_folder": Case(FULL, "ok", answers={"answer_square": (
            "try:\n    with open('big.bin', 'wb') as f:\n        for _ in range(400):\n"
            "            f.write(bytes(2**20))\n    print('wrote 400 MiB')\nexcept OSError as error:\n"
            "    print('write stopped', error.errno)\n\ndef square(x):\n    return x * x")}),
        "huge_return": Case(FULL - POINTS["test_double"], "ok", answers={  # beyond the bridge's 64 MiB
            "answer_double": "def double(x):\n    return 2 * x if x.numel() == 1 else torch.zeros(20_000_000)"}),
        "deleted_test": Case(FULL - POINTS["test_double"], "ok", answers={"answer_double": WRONG_DOUBLE},
                             edit=_drop_cell("test_double")),
        "edited_test": Case(FULL - POINTS["test_double"], "ok", answers={"answer_double": WRONG_DOUBLE},
                            edit=_set_source("test_double", "pass")),
        "changed_metadata": Case(FULL - POINTS["test_double"] - POINTS["test_square"], "ok", "put back", answers={
            "answer_double": WRONG_DOUBLE, "answer_square": "def square(x):\n    return x + x"},
            edit=_change_metadata),
        # forged verdicts: a wrong answer plus a trick that fooled a grader running tests in the kernel
        "display_hook": Case(FULL - POINTS["test_double"], "ok", answers={"answer_double": (
            "def double(x):\n    get_ipython().displayhook(2 * x)\n    return 3 * x")}),
        "interactivity_all": Case(FULL - POINTS["test_double"], "ok", answers={"answer_double": (
            '%config InteractiveShell.ast_node_interactivity = "all"\n' + WRONG_DOUBLE)}),
        "alias_patch": Case(FULL - POINTS["test_double"], "ok", answers={"answer_double": (
            f"t = torch\nt.allclose = {PATCH}\nn = np\nn.testing.assert_allclose = {PATCH}\n" + WRONG_DOUBLE)}),
        "exec_alias": Case(FULL - POINTS["test_double"], "ok", answers={"answer_double": (
            f"run = exec\nrun('import torch; torch.allclose = {PATCH}')\n" + WRONG_DOUBLE)}),
        "string_attribute": Case(FULL - POINTS["test_double"], "ok", answers={"answer_double": (
            f"setattr(torch, 'all' + 'close', {PATCH})\n" + WRONG_DOUBLE)}),
        "cell_magic": Case(FULL - POINTS["test_double"], "ok", answers={"answer_double": (
            f"%%capture\nimport torch\ntorch.allclose = {PATCH}\n" + WRONG_DOUBLE)}),
        "shipped_module": Case(FULL - POINTS["test_double"], "ok",
                               files={"helper.py": f"import torch\ntorch.allclose = {PATCH}\n"},
                               answers={"answer_double": "import helper\n" + WRONG_DOUBLE}),
        "event_hook": Case(FULL - POINTS["test_double"], "ok", answers={"answer_double": (
            "get_ipython().events.register('pre_run_cell', lambda *args: setattr(torch, 'allclose', "
            f"{PATCH}))\n" + WRONG_DOUBLE)}),
        "patch_builtins": Case(FULL - POINTS["test_total"], "ok", answers={"answer_total": (
            "import builtins\nbuiltins.AssertionError = KeyError\ndef total(n):\n    return 0")}),
        "redefine_check_close": Case(FULL - POINTS["test_double"], "ok", answers={
            "answer_double": "def check_close(*args, **kwargs):\n    pass\n\n" + WRONG_DOUBLE}),
        "forged_equality": Case(FULL - POINTS["test_total"], "ok", answers={"answer_total": (
            "class Yes:\n    def __eq__(self, other):\n        return True\n    def __bool__(self):\n"
            "        return True\n\ndef total(n):\n    return Yes()")}),
        "hijacked_bridge": Case(0, "ok", answers={"answer_double": (
            "import coursepack.grading.bridge as bridge\n\n"
            "def fake(path, namespace=None):\n    import socket\n    s = socket.socket(socket.AF_UNIX)\n"
            "    s.connect(path)\n    s.sendall(b'\\x00\\x00\\x00\\x10\\x00\\x00\\x00\\x00{\"kind\": \"reply\"}')\n"
            "    s.close()\n\nbridge.serve_kernel = fake\n" + "def double(x):\n    return 2 * x")}),
        "prints_history": Case(FULL, "ok", answers={"answer_double": (
            "def double(x):\n    print(get_ipython().user_ns.get('_ih'))\n    return 2 * x")},
            edit=_add_cell("test_double", "print(In)\nprint(_ih[-1])")),
        "html_output": Case(FULL, "ok", answers={
            "answer_square": ("from IPython.display import HTML, display\n"
                              "display(HTML(\"<script>alert('x')</script><img src=x onerror=alert(2)>\"))\n"
                              "def square(x):\n    return x * x"),
            "written": "Gauss <script>alert('answer')</script> and $a<b$"}),
        # damage to others, links out of the submission, the sandbox
        "survivor": Case(FULL, "ok", answers={"answer_square": SURVIVOR}),
        "symlinked_folder": Case(0, "failed", "symbolic link", link=course / "source" / ASSIGNMENT),
        "odd_files": Case(FULL, "ok", "not copied", files={
            "passwd": Path("/etc/passwd"), "solutions.ipynb": course / "source" / ASSIGNMENT / "tiny.ipynb"}),
        "reads_hidden_tests": Case(FULL, "ok", answers={"answer_double": _course_reader(course, port)}),
        # a file-count bomb, and a file name that would take over the instructor's terminal
        "many_files": Case(FULL, "ok", "more than 1000 files", files={f"f{i}.txt": "" for i in range(1500)}),
        "escape_name": Case(FULL, "ok", "not copied", files={"\x1b]2;GRADER PWNED\x07\x1b[2Jpipe": None}),
    }


def make_submission(course: Path, name: str, case: Case, source, release) -> None:
    folder = course / "submitted" / name / ASSIGNMENT
    if case.link is not None:
        folder.parent.mkdir(parents=True, exist_ok=True)
        folder.symlink_to(case.link, target_is_directory=True)
        return
    if case.text is not None:
        classroom.submit(course, ASSIGNMENT, name, "tiny", case.text)
        return
    given = {} if name == "blank" else {**notebooks.answers(source), **case.answers}
    nb = notebooks.filled(release, given)
    if case.edit:
        case.edit(nb)
    path = classroom.submit(course, ASSIGNMENT, name, "tiny", nb)
    if case.filename:
        path.rename(path.with_name(f"{case.filename}.ipynb"))
    for file_name, content in case.files.items():
        if content is None:
            os.mkfifo(folder / file_name)
        elif isinstance(content, Path):
            (folder / file_name).symlink_to(content)
        else:
            (folder / file_name).write_text(content)


def make_class(course: Path, port: int) -> dict[str, Case]:
    source = tiny_source()
    classroom.make_course(course, ASSIGNMENT, {"tiny": source}, extra=CONFIG)
    release = classroom.release(course, ASSIGNMENT, "tiny")
    expected = cases(course, port)
    for name, case in expected.items():
        make_submission(course, name, case, source, release)
    return expected


def scores(course: Path, students, db_url: str | None = None) -> dict:
    """{student: {test cell: autograded score}} from a course's gradebook."""
    from nbgrader.api import Gradebook

    with Gradebook(db_url or f"sqlite:///{course / 'gradebook.db'}", "comp3547") as gradebook:
        return {s: {g.name: g.auto_score for g in gradebook.find_submission_notebook("tiny", ASSIGNMENT, s).grades
                    if g.cell_type == "code"} for s in students}


def subset(course: Path, students, folder: Path) -> Path:
    """A copy of the graded course with only `students`' submissions, and none of their grades."""
    import shutil

    from nbgrader.api import Gradebook

    for name in ("source", "release"):
        shutil.copytree(course / name, folder / name)
    shutil.copy(course / "nbgrader_config.py", folder)
    shutil.copy(course / "gradebook.db", folder)
    for student in students:
        shutil.copytree(course / "submitted" / student, folder / "submitted" / student, symlinks=True)
    with Gradebook(f"sqlite:///{folder / 'gradebook.db'}", "comp3547") as gradebook:
        for submission in list(gradebook.find_assignment(ASSIGNMENT).submissions):
            gradebook.remove_submission(ASSIGNMENT, submission.student.id)
    return folder
