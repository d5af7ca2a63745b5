"""JupyterHub's "Assignments" tab, end to end on one machine: the nbgrader exchange with real accounts.

The tab's Fetch and Submit buttons run nbgrader's exchange commands as the logged-in user, and
nbgrader takes the student id from the Unix account (pwd.getpwuid(os.getuid())), not from $USER.
So the students here are throwaway Unix accounts, removed afterwards even on failure, and every
student command runs under their uid (setpriv). Their commands use Debian's /usr/bin/python3.11
with this venv's packages on PYTHONPATH: the venv's own interpreter lives under /root (mode 700),
which other accounts cannot execute.

One module-scoped delivery, shared by the tests below, in a temporary course copy (one notebook,
to keep autograding short) and a temporary exchange root (chmod 777, as nbgrader documents it):

    instructor: generate_assignment, `make exchange-release`, roster = [alice]
    both:       fetch_assignment
    alice:      submit the blank release (on time)
    offroster:  submit the reference answers (on time, not on the roster)
    instructor: due date = now, in the gradebook (what `nbgrader db assignment add --duedate` sets)
    alice:      submit the reference answers again (late)
    instructor: collect, autograde (late penalty method "zero"), generate_feedback, release_feedback
    alice:      fetch_feedback
"""
import datetime
import os
import pwd
import shlex
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import uuid
from pathlib import Path
from types import SimpleNamespace

import pytest
from nbgrader.api import Gradebook

from coursepack import notebooks
from coursepack.nbgrader_cli import jupyter_env, nbgrader

ASSIGNMENT = "practical1"
COURSE_ID = "comp3547"
SOURCE = notebooks.SOURCE / ASSIGNMENT
# The system's interpreter of this venv's Python version: same ABI, and executable by every account.
STUDENT_PYTHON = Path(f"/usr/bin/python{sys.version_info.major}.{sys.version_info.minor}")
SITE_PACKAGES = sysconfig.get_paths()["purelib"]
READABLE_BY_ALL = all(p.stat().st_mode & 0o005 == 0o005 for p in [Path(SITE_PACKAGES), *Path(SITE_PACKAGES).parents])
TOOLS = ("useradd", "userdel", "setpriv", "make")
MARKER = "submission marker:"

pytestmark = [
    pytest.mark.skipif(sys.platform != "linux" or os.geteuid() != 0,
                       reason="needs root on Linux: the students are throwaway Unix accounts (nbgrader takes the "
                              "student id from the account, not from $USER)"),
    pytest.mark.skipif(not all(shutil.which(tool) for tool in TOOLS),
                       reason=f"needs {', '.join(TOOLS)} to create the student accounts and run as them"),
    pytest.mark.skipif(not STUDENT_PYTHON.exists(),
                       reason=f"needs {STUDENT_PYTHON} (world-executable, same ABI as the venv) for student commands"),
    pytest.mark.skipif(not READABLE_BY_ALL, reason=f"other accounts cannot read the packages in {SITE_PACKAGES}"),
    pytest.mark.skipif(not any(SOURCE.glob("*.ipynb")), reason=f"no notebooks in {SOURCE} yet"),
]


class Student:
    """A throwaway Unix account with its own Jupyter folders, configured for the course's exchange."""

    def __init__(self, name: str, exchange: Path):
        account = pwd.getpwnam(name)
        self.name, self.uid, self.gid, self.home = name, account.pw_uid, account.pw_gid, Path(account.pw_dir)
        self.jupyter = self.home / ".jupyter-course"
        (self.jupyter / "config").mkdir(parents=True)
        # What a JupyterHub admin puts in the students' global nbgrader config.
        (self.jupyter / "config" / "nbgrader_config.py").write_text(
            f"c = get_config()\nc.CourseDirectory.course_id = {COURSE_ID!r}\nc.Exchange.root = {str(exchange)!r}\n")
        self.give_back(self.jupyter)

    def give_back(self, path: Path) -> None:
        """Make files this (root) process wrote in the student's home theirs again."""
        for item in [path, *(path.rglob("*") if path.is_dir() else [])]:
            os.chown(item, self.uid, self.gid)

    def nbgrader(self, *args: str) -> subprocess.CompletedProcess:
        """`nbgrader ARGS` as this student, in their home (where JupyterLab's file browser starts)."""
        env = {"HOME": str(self.home), "USER": self.name, "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8",
               "PYTHONPATH": SITE_PACKAGES, "JUPYTER_CONFIG_DIR": str(self.jupyter / "config"),
               "JUPYTER_DATA_DIR": str(self.jupyter / "data"), "JUPYTER_RUNTIME_DIR": str(self.jupyter / "runtime")}
        command = ["setpriv", f"--reuid={self.uid}", f"--regid={self.gid}", "--init-groups",
                   str(STUDENT_PYTHON), "-m", "nbgrader", *args]
        result = subprocess.run(command, cwd=self.home, env=env, capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(f"{self.name}: nbgrader {' '.join(args)} failed ({result.returncode}):\n"
                               f"{result.stdout[-3000:]}\n{result.stderr[-6000:]}")
        return result

    def work(self, stem: str, answers: dict, marker: str) -> None:
        """Fill the fetched notebook with `answers` (by grade_id) and a marker cell, as the student would."""
        path = self.home / ASSIGNMENT / f"{stem}.ipynb"
        nb = notebooks.filled(notebooks.read(path), answers)
        nb.cells = [c for c in nb.cells if not c.source.startswith(MARKER)]
        nb.cells.append(notebooks.nbformat.v4.new_markdown_cell(f"{MARKER} {marker}"))
        notebooks.write(nb, path)
        self.give_back(path)


@pytest.fixture(scope="module")
def accounts():
    """Unix accounts with a unique prefix; `userdel --remove` in teardown, whatever happened."""
    prefix = f"cpx{uuid.uuid4().hex[:6]}"
    created = {}
    try:
        for role in ("alice", "offroster"):
            name = f"{prefix}{role}"
            subprocess.run(["useradd", "--create-home", "--user-group", "--shell", "/usr/sbin/nologin", name],
                           check=True, capture_output=True)
            created[role] = name
        yield created
    finally:
        for name in created.values():
            subprocess.run(["userdel", "--remove", name], capture_output=True)


@pytest.fixture(scope="module")
def exchange_root():
    # Not under pytest's tmp_path: that is /tmp/pytest-of-root, mode 700, out of the students' reach.
    root = Path(tempfile.mkdtemp(prefix="cpx-exchange-"))
    root.chmod(0o777)
    yield root
    shutil.rmtree(root, ignore_errors=True)


def make_exchange_release(course: Path, env: dict, scratch: Path) -> subprocess.CompletedProcess:
    """`make exchange-release` from the course copy, with this venv standing in for the course's .venv.

    The Makefile's .venv/.installed stamp must be newer than pyproject.toml, or make would reinstall:
    a stand-in venv whose python runs this interpreter, and an old pyproject.toml, avoid that.
    """
    venv = scratch / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} "$@"\n')
    (venv / "bin" / "python").chmod(0o755)
    shutil.copy(notebooks.ROOT / "pyproject.toml", course)
    os.utime(course / "pyproject.toml", (0, 0))
    (venv / ".installed").touch()
    return subprocess.run(["make", "-f", str(notebooks.ROOT / "Makefile"), "exchange-release", f"VENV={venv}"],
                          cwd=course, env=env, capture_output=True, text=True, check=True)


@pytest.fixture(scope="module")
def delivery(tmp_path_factory, accounts, exchange_root):
    scratch = tmp_path_factory.mktemp("exchange")
    course = scratch / "course"
    # One notebook is enough to prove the delivery path (autograde costs ~3 s a notebook per student).
    source_path = sorted(SOURCE.glob("*.ipynb"))[0]
    stem = source_path.stem
    shutil.copytree(SOURCE, course / "source" / ASSIGNMENT, ignore=lambda d, names: [
        n for n in names if n.endswith(".ipynb") and n != source_path.name])
    shutil.copy(notebooks.ROOT / "nbgrader_config.py", course)
    env = jupyter_env(course / ".jupyter", NBGRADER_EXCHANGE=str(exchange_root),
                      COURSEPACK_OFFLINE="1", MPLBACKEND="Agg")
    env.pop("COURSEPACK_DB", None)
    for name in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL"):
        env.pop(name, None)

    def instructor(*args, check=True):
        return nbgrader(*args, course=course, env=env, check=check)

    instructor("generate_assignment", ASSIGNMENT, "--force")
    released = make_exchange_release(course, env, scratch)
    alice, offroster = (Student(accounts[role], exchange_root) for role in ("alice", "offroster"))
    # Roster and due date go straight into the gradebook, as `nbgrader db student add` and
    # `nbgrader db assignment add --duedate` would put them (a CLI start costs ~3 s each).
    with gradebook_of(course) as gradebook:
        gradebook.update_or_create_student(alice.name)

    reference = notebooks.answers(notebooks.read(source_path))
    alice.nbgrader("fetch_assignment", ASSIGNMENT)
    offroster.nbgrader("fetch_assignment", ASSIGNMENT)
    alice.work(stem, {}, marker="first")  # the blank release: it would score zero if it were graded
    alice.nbgrader("submit", ASSIGNMENT)
    offroster.work(stem, reference, marker="offroster")
    offroster.nbgrader("submit", ASSIGNMENT)
    duedate = datetime.datetime.now(datetime.UTC).replace(tzinfo=None)
    with gradebook_of(course) as gradebook:
        gradebook.update_or_create_assignment(ASSIGNMENT, duedate=duedate)
    alice.work(stem, reference, marker="second")
    alice.nbgrader("submit", ASSIGNMENT)

    collected = instructor("collect", ASSIGNMENT)
    # nbgrader 0.9.6 checks no roster on submit or collect; autograde is where the roster can bite.
    refused = instructor("autograde", ASSIGNMENT, "--student", offroster.name,
                         "--Autograde.create_student=False", check=False)
    with gradebook_of(course) as gradebook:  # the refused run must not have added them
        roster_before = {s.id for s in gradebook.students}
    instructor("autograde", ASSIGNMENT, "--LateSubmissionPlugin.penalty_method=zero")
    instructor("generate_feedback", ASSIGNMENT)
    instructor("release_feedback", ASSIGNMENT)
    alice.nbgrader("fetch_feedback", ASSIGNMENT)
    return SimpleNamespace(course=course, exchange=exchange_root, stem=stem, alice=alice, offroster=offroster,
                           released=released, collected=collected, refused=refused, roster_before=roster_before,
                           duedate=duedate)


def gradebook_of(course: Path) -> Gradebook:
    return Gradebook(f"sqlite:///{course / 'gradebook.db'}", COURSE_ID)


def graded(d, student: Student) -> SimpleNamespace:
    """The gradebook's record of `student`'s notebook and submission, as plain values."""
    with gradebook_of(d.course) as gradebook:
        nb = gradebook.find_submission_notebook(d.stem, ASSIGNMENT, student.name)
        submission = gradebook.find_submission(ASSIGNMENT, student.name)
        return SimpleNamespace(code_score=nb.code_score, max_code_score=nb.max_code_score, score=nb.score,
                               max_score=nb.max_score, penalty=nb.late_submission_penalty,
                               seconds_late=submission.total_seconds_late, timestamp=submission.timestamp)


def markers(d, student: Student) -> list[str]:
    """The marker cells of `student`'s collected notebook."""
    path = d.course / "submitted" / student.name / ASSIGNMENT / f"{d.stem}.ipynb"
    return [c.source for c in notebooks.read(path).cells if c.source.startswith(MARKER)]


def test_make_exchange_release_publishes_the_student_version(delivery):
    assert "release_assignment practical1 --force" in delivery.released.stdout
    outbound = delivery.exchange / COURSE_ID / "outbound" / ASSIGNMENT / f"{delivery.stem}.ipynb"
    release = delivery.course / "release" / ASSIGNMENT / f"{delivery.stem}.ipynb"
    assert outbound.read_text() == release.read_text()
    assert "### BEGIN SOLUTION" not in outbound.read_text()


def test_fetch_gives_each_student_their_own_copy(delivery):
    release = notebooks.read(delivery.course / "release" / ASSIGNMENT / f"{delivery.stem}.ipynb")
    locked = [c.source for c in release.cells if notebooks.nbgrader(c).get("locked")]
    for student in (delivery.alice, delivery.offroster):
        folder = student.home / ASSIGNMENT
        assert folder.stat().st_uid == student.uid, f"{folder} is not owned by {student.name}"
        fetched = notebooks.read(folder / f"{delivery.stem}.ipynb")
        assert locked and locked == [c.source for c in fetched.cells if notebooks.nbgrader(c).get("locked")]


def test_collect_takes_the_newest_of_two_submissions(delivery):
    alice = delivery.alice.name
    inbound = sorted((delivery.exchange / COURSE_ID / "inbound").glob(f"{alice}+{ASSIGNMENT}+*"))
    assert len(inbound) == 2, f"expected alice's two submissions in the exchange, found {inbound}"
    assert markers(delivery, delivery.alice) == [f"{MARKER} second"]
    # ...and that is the one graded: the first (blank) submission would have scored zero.
    alice_grades = graded(delivery, delivery.alice)
    assert alice_grades.code_score == alice_grades.max_code_score > 0
    # collect cross-checks each submission's Unix owner against the id in its name (check_owner).
    assert "cheating attempt" not in delivery.collected.stdout + delivery.collected.stderr


def test_late_submission_is_recorded_and_penalised(delivery):
    on_time, late = graded(delivery, delivery.offroster), graded(delivery, delivery.alice)
    assert on_time.seconds_late == 0 and not on_time.penalty
    assert late.seconds_late > 0, f"submitted at {late.timestamp}, due {delivery.duedate}"
    # penalty_method "zero": the marks earned (full code marks) are all taken away as the penalty.
    assert late.code_score == late.max_code_score > 0
    assert late.penalty == late.score > 0


def test_off_roster_student_is_collected_and_graded_unless_create_student_is_off(delivery):
    off = delivery.offroster.name
    assert off not in delivery.roster_before
    assert markers(delivery, delivery.offroster) == [f"{MARKER} offroster"], "submit and collect ignore the roster"
    refusal = delivery.refused.stdout + delivery.refused.stderr
    assert delivery.refused.returncode != 0 and f"No student with ID '{off}' exists in the database" in refusal
    # By default (Autograde.create_student = True) autograde adds them to the gradebook and grades them.
    off_grades = graded(delivery, delivery.offroster)
    assert off_grades.code_score == off_grades.max_code_score


def test_student_fetches_feedback_for_the_collected_submission(delivery):
    alice = delivery.alice
    # Both submissions sit in alice's exchange cache; only the collected (second) one has feedback.
    timestamp = (delivery.course / "submitted" / alice.name / ASSIGNMENT / "timestamp.txt").read_text().strip()
    folders = list((alice.home / ASSIGNMENT / "feedback").iterdir())
    assert [f.name for f in folders] == [timestamp]
    html = folders[0] / f"{delivery.stem}.html"
    assert html.stat().st_uid == alice.uid
    # The student sees the total after the late penalty, and the penalty itself.
    g = graded(delivery, alice)
    text = html.read_text()
    assert f"{delivery.stem} (Score: {g.score - g.penalty:.1f} / {g.max_score:.1f})" in text
    assert f"Late submission penalty (Score: -{g.penalty:.1f})" in text
