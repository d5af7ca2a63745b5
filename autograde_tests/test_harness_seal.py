"""The sealed harness (harness.HarnessProcess): code run in it can affect nothing but its own verdicts.

A test cell is trusted code that runs in the harness, so it stands in here for code a submission
might one day get run there. The cells below try, from inside the sealed harness, what such code
would: write in the course folder, open the gradebook for writing, signal the worker or kill
another process of the worker's uid, open a TCP connection, read a descriptor inherited from the
worker. Each must fail; the cell reports what it saw as its verdict's message. An honest test cell
must still pass against a real kernel, and a step of sealing that fails must break the harness
with its reason rather than let it run less sealed.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import socket
import sqlite3
import subprocess
import tempfile
import threading
from pathlib import Path

import nbformat
import pytest
import torch
from accounts import ACCOUNT_PYTHON, account_env, make_account, needs_account, remove_account, run_as
from nbformat.v4 import new_code_cell, new_notebook
from sandboxing import SMALL, running
from traitlets.config import Config

from coursepack import notebooks
from coursepack.grading import harness
from coursepack.grading.harness import HarnessProcess, HarnessSettings, serve_command
from coursepack.grading.sandbox import Sandbox, _python_paths
from coursepack.grading.zygote import SetupError

ROOT = os.geteuid() == 0
ESCAPES = ("write course", "write gradebook", "signal worker", "kill a process of the worker's uid", "tcp",
           "read inherited descriptor")

# Run in the harness: every attempt, then an AssertionError whose message says how each went.
ESCAPE = '''
import errno, os, signal, socket
seen = {}
def attempt(name, action):
    try:
        result = action()
    except OSError as error:
        seen[name] = "blocked (" + errno.errorcode.get(error.errno, str(error.errno)) + ")"
    except Exception as error:  # not what was tried: something else went wrong
        seen[name] = "error (" + type(error).__name__ + ")"
    else:
        seen[name] = "DONE " + repr(result)[:60]
def inherited():
    if os.fstat(FD).st_ino != INODE:  # the number may be reused by the harness's own sockets
        raise OSError(errno.EBADF, "not the inherited file")
    return os.pread(FD, 64, 0)
def parent():
    if os.getppid() == 0:
        raise ProcessLookupError(errno.ESRCH, "its parent is outside its PID namespace")
    os.kill(os.getppid(), 0)
attempt("write course", lambda: open(COURSE + "/escaped.txt", "w").write("escaped"))
attempt("write gradebook", lambda: open(GRADEBOOK, "r+b").write(b"x"))
attempt("signal worker", lambda: os.kill(WORKER, 0))
attempt("signal parent", parent)
attempt("kill a process of the worker's uid", lambda: os.kill(VICTIM, signal.SIGKILL))
attempt("tcp", lambda: socket.create_connection(("127.0.0.1", PORT), timeout=3).close())
attempt("read inherited descriptor", inherited)
seen["uid"] = os.getuid()
raise AssertionError("; ".join(f"{k}: {v}" for k, v in seen.items()))
'''
HONEST = 'check_close(double(torch.tensor(1.0)), 2.0, "double(1)")\n### BEGIN HIDDEN TESTS\n' \
         'check_close(double(torch.arange(5.0)), 2 * torch.arange(5.0), "double(arange(5))")\n### END HIDDEN TESTS'


def _meta(grade_id, **flags):
    return {"nbgrader": {"schema_version": 3, "grade": False, "solution": False, "locked": False, "task": False,
                         "grade_id": grade_id, **flags}}


def write_source(path: Path, escape: str, helper: str = "") -> None:
    """A source notebook in the practical's shape: imports, the checks (and `helper`), an answer, an
    honest test cell, and a test cell that tries to escape (`escape`: its constants, then ESCAPE)."""
    cells = [new_code_cell("import math\n\nimport torch"),
             new_code_cell(notebooks.snippet_cell_source("checks") + helper, metadata=_meta("checks", locked=True)),
             new_code_cell("def double(x):\n    ### BEGIN SOLUTION\n    return 2 * x\n    ### END SOLUTION",
                           metadata=_meta("answer_double", solution=True)),
             new_code_cell(HONEST, metadata=_meta("test_double", grade=True, locked=True, points=1)),
             new_code_cell(escape, metadata=_meta("test_escape", grade=True, locked=True, points=1))]
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(new_notebook(cells=cells), str(path))


class Course:
    """A course folder (that anyone may enter: only the files' own modes should keep a harness out)
    with a gradebook, a secret file the worker holds open, a process of the worker's uid, and the
    escaping notebook."""

    def __init__(self, folder: Path, port: int):
        self.folder, self.port = folder, port
        folder.mkdir(mode=0o755)
        self.gradebook = folder / "gradebook.db"
        self.db = sqlite3.connect(self.gradebook)  # open in the worker, as a worker's gradebook is
        self.db.execute("create table grades (student text, score real)")
        self.db.commit()
        self.before = self.gradebook.read_bytes()
        self.secret = open(folder / "secret.txt", "w+")  # held open: the harness inherits it
        self.secret.write("SECRET")
        self.secret.flush()
        self.victim = subprocess.Popen(["sleep", "300"])
        constants = dict(COURSE=str(folder), GRADEBOOK=str(self.gradebook), WORKER=os.getpid(), VICTIM=self.victim.pid,
                         PORT=port, FD=self.secret.fileno(), INODE=os.fstat(self.secret.fileno()).st_ino)
        self.source = folder / "source" / "p1" / "tiny.ipynb"
        write_source(self.source, "".join(f"{k} = {v!r}\n" for k, v in constants.items()) + ESCAPE)

    def untouched(self) -> list[str]:
        """What the escaping cell changed outside the harness (nothing, if sealed)."""
        changed = []
        if (self.folder / "escaped.txt").exists():
            changed.append("a file was written in the course folder")
        if self.gradebook.read_bytes() != self.before:
            changed.append("the gradebook changed")
        if self.victim.poll() is not None:
            changed.append("a process of the worker's uid was killed")
        return changed

    def close(self):
        self.victim.kill()
        self.victim.wait()
        self.secret.close()
        self.db.close()


@pytest.fixture
def tcp_server():
    """(port, connections accepted) of a TCP server on 127.0.0.1, for this test alone (conftest's
    `listener` is the session's, and a harness without namespaces may reach it)."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.2)
    accepted, stop = [], threading.Event()

    def serve():
        while not stop.is_set():
            with contextlib.suppress(OSError):
                accepted.append(server.accept()[0])

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1], accepted
    stop.set()
    thread.join()
    for connection in accepted:
        connection.close()
    server.close()


def world_folder() -> Path:
    """A new folder in /tmp that anyone may enter (pytest's are root's alone)."""
    folder = Path(tempfile.mkdtemp(prefix="coursepack-seal-"))
    os.chmod(folder, 0o755)
    return folder


@pytest.fixture
def course(tcp_server):
    folder = world_folder()
    made = Course(folder / "course", tcp_server[0])
    yield made
    made.close()
    shutil.rmtree(folder, ignore_errors=True)


def hang_up(path: str) -> None:
    """A kernel that connects and hangs up: enough for a cell that asks the kernel nothing."""
    with socket.socket(socket.AF_UNIX) as peer:
        peer.connect(path)


def run_cell(process: HarnessProcess, folder: Path, grade_id: str, connect=hang_up, timeout: float = 60):
    """Run one test cell in `process`, `connect(path)` playing the kernel."""
    path = str(folder / f"{grade_id}.sock")
    assert process.start_cell(grade_id, path, timeout), process.broken
    connect(path)
    return process.verdict(grade_id, timeout + 15)


def outcomes(message: str) -> dict[str, str]:
    return dict(part.split(": ", 1) for part in message.split("; "))


def not_blocked(seen: dict[str, str], names=(*ESCAPES, "signal parent")) -> dict[str, str | None]:
    return {name: seen.get(name) for name in names if not seen.get(name, "").startswith("blocked")}


def strongest_level() -> str:
    """The level a harness started by this process should reach."""
    if ROOT:
        return "root"
    code = subprocess.run(["unshare", "--user", "--pid", "--fork", "--mount", "--net", "true"],
                          capture_output=True).returncode if shutil.which("unshare") else 1
    return "user-namespaces" if code == 0 else "limits-only"


def sealed_pid(process: HarnessProcess) -> int:
    """The sealed harness: the child of the process that built the prelude."""
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with open(f"/proc/{entry}/stat") as stat:
                if int(stat.read().rsplit(")", 1)[1].split()[1]) == process.process.pid:
                    return int(entry)
    raise AssertionError("no sealed harness running")


def uid_of(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        return int(next(line for line in status if line.startswith("Uid:")).split()[1])


def test_code_run_in_the_sealed_harness_affects_nothing_outside(course, tcp_server):
    level = strongest_level()
    if level == "limits-only":
        pytest.skip("without root or user namespaces the harness is limits-only: it can do what your account can")
    accepted = len(tcp_server[1])
    process = HarnessProcess(course.source, HarnessSettings())
    try:
        assert process.wait_ready(120) == "", process.broken
        assert process.sealed.startswith(f"{level}: "), process.sealed
        if ROOT:
            assert f"uid {process.uid}" in process.sealed and process.uid >= Sandbox().uid
        verdict = run_cell(process, course.folder, "test_escape")
        lost = run_cell(process, course.folder, "test_double")  # no kernel to ask for `double`
    finally:
        process.stop()
    assert verdict is not None and verdict.error == "AssertionError", verdict
    seen = outcomes(verdict.message)
    assert not not_blocked(seen), f"from inside the sealed harness ({process.sealed}): {not_blocked(seen)}"
    assert not course.untouched(), course.untouched()
    assert len(tcp_server[1]) == accepted, "the harness opened a TCP connection"
    if ROOT:
        assert int(seen["uid"]) not in (0, os.getuid()), seen["uid"]
    assert lost is not None and lost.error == "KernelLost", lost  # it still answers after that cell
    assert process.uid is None  # released by stop()


def test_an_honest_test_cell_passes_through_the_sealed_harness(course):
    sandbox = Sandbox(preload=SMALL)
    process = HarnessProcess(course.source, HarnessSettings())
    try:
        assert process.wait_ready(120) == "", process.broken
        with running(sandbox) as (manager, run):
            assert run("import torch\ndef double(x):\n    return 2 * x\nprint('defined')") == "defined\n"

            def kernel(path):
                run(serve_command(path), wait=False)  # the kernel connects and serves, as in grading

            verdict = run_cell(process, Path(manager.bridge_dir), "test_double", connect=kernel)
            assert run("print(2 + 2)", timeout=60) == "4\n"  # its serve cell has ended
            sealed = sealed_pid(process)
            if ROOT:  # a uid of its own: neither root's, nor the kernel's
                assert uid_of(sealed) == process.uid and process.uid not in (0, manager.kernel_uid)
            assert run("def double(x):\n    return 3 * x") == ""
            wrong = run_cell(process, Path(manager.bridge_dir), "test_double", connect=kernel)
            assert run("print(2 + 2)", timeout=60) == "4\n"
    finally:
        process.stop()
    assert verdict is not None and verdict.passed, verdict
    assert wrong is not None and not wrong.passed and "double(1)" in wrong.message, wrong


def test_a_sealing_step_that_fails_breaks_the_harness_with_its_reason(course, monkeypatch):
    level = strongest_level()
    if level == "limits-only":
        pytest.skip("without root or user namespaces there is no new root to fail to make")

    def no_room(paths):
        raise SetupError("mount tmpfs on /tmp: No space left on device")

    monkeypatch.setattr(harness, "_new_root", no_room)  # the forked harness inherits it
    process = HarnessProcess(course.source, HarnessSettings())
    try:
        why = process.wait_ready(120)
        assert why.startswith(f"the harness could not be sealed ({level}") and "No space left" in why, why
        assert not process.start_cell("test_double", str(course.folder / "x.sock"), 10)
    finally:
        process.stop()


PICKLE = """
import os, pickle, struct
class Payload:
    def __reduce__(self):  # what the worker would run on unpickling it: create MARK
        return (open, (MARK, "w"))
data = pickle.dumps(("verdict", Payload()))
for fd in range(3, 256):  # its pipe to the worker is one of these: a message in multiprocessing's framing
    try:
        os.write(fd, struct.pack("!i", len(data)) + data)
    except OSError:
        pass
"""


def test_code_in_the_harness_cannot_make_the_worker_run_anything(course):
    """The harness is the side that may be subverted: what it sends the worker is JSON, checked
    field by field, never a pickle (which would run what it says in the worker, as root)."""
    mark = course.folder / "unpickled-by-the-worker"
    write_source(course.source, f"MARK = {str(mark)!r}\n" + PICKLE)
    process = HarnessProcess(course.source, HarnessSettings())
    try:
        assert process.wait_ready(120) == "", process.broken
        verdict = run_cell(process, course.folder, "test_escape")
    finally:
        process.stop()
    assert not mark.exists(), "the worker unpickled what the harness sent"
    assert verdict is None  # not a verdict: the executor records a grader problem for this notebook


READS = """
import os
check_true(open(DATA + "/data.txt").read() == "data", "Sandbox.read_only_paths are readable")
for hidden in (SOURCE, SCRATCH, "/run", "/home", "/var"):
    # where Python lies under it (an ordinary account's venv in its home), only the way to Python is there
    way = {path[len(hidden) + 1:].split("/")[0] for path in PYTHON if path.startswith(hidden + "/")}
    seen = set(os.listdir(hidden)) if way and os.path.isdir(hidden) else os.path.exists(hidden)
    check_true(seen == way if way else not seen, f"{hidden} is in sight: {seen}")
check_true(os.path.exists(torch.__file__), "Python is readable")
"""


def test_the_sealed_harness_reads_only_the_system_python_and_read_only_paths(tcp_server):
    if strongest_level() == "limits-only":
        pytest.skip("without root or user namespaces the harness reads what your account can")
    folder = world_folder()
    data = folder / "data"  # under /tmp, which the new root's tmpfs covers while it is built
    data.mkdir(mode=0o755)
    (data / "data.txt").write_text("data")
    os.chmod(data / "data.txt", 0o644)
    course = Course(folder / "course", tcp_server[0])
    constants = dict(DATA=str(data), SOURCE=str(course.source), SCRATCH=Sandbox().scratch,
                     PYTHON=_python_paths(Sandbox()))
    write_source(course.source, "".join(f"{k} = {v!r}\n" for k, v in constants.items()) + READS)
    config = Config({"Sandbox": {"read_only_paths": [str(data)]}})
    process = HarnessProcess(course.source, HarnessSettings(config=config))
    try:
        assert process.wait_ready(120) == "", process.broken
        verdict = run_cell(process, course.folder, "test_escape")
    finally:
        process.stop()
        course.close()
        shutil.rmtree(folder, ignore_errors=True)
    assert verdict is not None and verdict.passed, verdict


STARTS_THREADS = """
import threading, time
threading.Thread(target=time.sleep, args=(600,), daemon=True).start()  # a thread of the course's own
_warm = (torch.randn(600, 600) @ torch.randn(600, 600)).sum()  # and OpenMP's, if it had more than one
"""
COMPUTE = """
import os, threading
check_true(threading.active_count() == 1, f"threads from before the seal: {threading.enumerate()}")
check_true(torch.get_num_threads() == THREADS, f"{torch.get_num_threads()} torch threads, not {THREADS}")
check_close((torch.ones(800, 800) @ torch.ones(800, 800)).sum(), 800.0 ** 3, "a parallel product")
"""


def test_threads_the_prelude_started_stay_out_of_the_sealed_harness(tcp_server):
    """Namespaces and credentials belong to threads: the harness that meets kernels is forked
    single-threaded after the prelude, and torch's threads start again there, sealed."""
    folder = world_folder()
    course = Course(folder / "course", tcp_server[0])
    write_source(course.source, f"THREADS = {torch.get_num_threads()}\n" + COMPUTE, STARTS_THREADS)
    process = HarnessProcess(course.source, HarnessSettings())
    try:
        assert process.wait_ready(120) == "", process.broken
        verdict = run_cell(process, course.folder, "test_escape", timeout=60)
    finally:
        process.stop()
        course.close()
        shutil.rmtree(folder, ignore_errors=True)
    assert verdict is not None and verdict.passed, verdict


@pytest.mark.root
@pytest.mark.skipif(not ROOT, reason="needs root: a uid of its own")
def test_as_root_without_namespaces_the_harness_falls_back_but_still_loses_root_s_powers(course, monkeypatch):
    """Where no namespace can be made the harness drops to its uid if Python stays readable to it
    (no mount namespace can expose an interpreter under /root), else stays uid 0 without capabilities."""
    monkeypatch.setattr(harness, "_pivot_root_number", lambda: None)  # as on a machine where they cannot work
    closed = harness._closed_to_others(_python_paths(Sandbox()))
    process = HarnessProcess(course.source, HarnessSettings())
    try:
        assert process.wait_ready(120) == "", process.broken
        uid = process.uid
        sealed = process.sealed
        verdict = run_cell(process, course.folder, "test_escape")
    finally:
        process.stop()
    assert sealed.startswith("limits-only: ") and "weaker than wanted: no pivot_root" in sealed, sealed
    assert "no capabilities" in sealed, sealed
    seen = outcomes(verdict.message)
    assert seen["read inherited descriptor"].startswith("blocked"), seen
    if closed:
        assert f"not uid {uid}: {closed} is closed to other uids" in sealed, sealed
    else:
        assert f"uid {uid}" in sealed and int(seen["uid"]) == uid, (sealed, seen)
        assert not not_blocked(seen, [name for name in (*ESCAPES, "signal parent") if name != "tcp"]), seen
        assert not course.untouched(), course.untouched()
    with open(os.path.join(Sandbox().scratch, f"uid-{uid}.lock"), "w") as lock:  # released by stop()
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fcntl.flock(lock, fcntl.LOCK_UN)


@pytest.mark.root
@needs_account  # (root, and the system's Python with this venv's packages, readable by anyone)
def test_as_root_without_namespaces_the_harness_runs_as_a_uid_of_its_own(tcp_server):
    folder = world_folder()
    try:
        ran = subprocess.run([str(ACCOUNT_PYTHON), "-c", AS_ACCOUNT, str(Path(__file__).parent), str(folder / "course"),
                              str(tcp_server[0]), "{}", "limits-only"], env=account_env(), cwd=folder,
                             capture_output=True, text=True, timeout=300)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    assert ran.returncode == 0, ran.stdout[-3000:] + ran.stderr[-3000:]
    result = json.loads(ran.stdout.strip().splitlines()[-1])
    sealed, seen = result["sealed"], result["seen"]
    assert not result["broken"] and sealed.startswith("limits-only: ") and "uid 61" in sealed, result
    # It sees the machine's files and network, but as a uid of its own without capabilities.
    assert not not_blocked(seen, [name for name in (*ESCAPES, "signal parent") if name != "tcp"]), result
    assert not result["changed"], result


# -- an ordinary account ----------------------------------------------------------------------------

# Run by another Python or account: argv = [autograde_tests, course folder, port, config, "limits-only"?]
AS_ACCOUNT = '''
import json, sys
from pathlib import Path
from traitlets.config import Config
from coursepack.grading import harness
from coursepack.grading.harness import HarnessProcess, HarnessSettings
sys.path.insert(0, sys.argv[1])
from test_harness_seal import Course, outcomes, run_cell

if sys.argv[5:] == ["limits-only"]:
    harness._pivot_root_number = lambda: None  # as on a machine where no namespace can be made

course = Course(Path(sys.argv[2]), int(sys.argv[3]))
config = Config(json.loads(sys.argv[4]))
process = HarnessProcess(course.source, HarnessSettings(config=config))
try:
    broken = process.wait_ready(120)
    seen = {} if broken else outcomes(run_cell(process, course.folder, "test_escape").message)
finally:
    process.stop()
print(json.dumps({"broken": broken, "sealed": process.sealed, "seen": seen, "changed": course.untouched()}))
course.close()
'''


@pytest.mark.root
@needs_account
@pytest.mark.parametrize("user_namespaces", [True, False], ids=["user-namespaces", "limits-only"])
def test_an_ordinary_account_gets_the_strongest_seal_it_can(tcp_server, user_namespaces):
    name, folder = make_account(), world_folder()
    try:
        shutil.chown(folder, name, name)
        config = json.dumps({"Sandbox": {"user_namespaces": user_namespaces}})
        ran = run_as(name, ["-c", AS_ACCOUNT, str(Path(__file__).parent), str(folder / "course"), str(tcp_server[0]),
                            config], env=account_env(), cwd=folder, timeout=300)
        can_unshare = subprocess.run(["setpriv", f"--reuid={name}", f"--regid={name}", "--init-groups", "unshare",
                                      "--user", "--pid", "--fork", "--mount", "--net", "true"],
                                     capture_output=True).returncode == 0
    finally:
        remove_account(name)
        shutil.rmtree(folder, ignore_errors=True)
    assert ran.returncode == 0, ran.stdout[-3000:] + ran.stderr[-3000:]
    result = json.loads(ran.stdout.strip().splitlines()[-1])
    assert not result["broken"], result
    seen = result["seen"]
    if user_namespaces and can_unshare:
        assert result["sealed"].startswith("user-namespaces: "), result["sealed"]
        assert not not_blocked(seen), result
        assert not result["changed"], result
    else:  # what holds without namespaces: nothing inherited, and it says it is the weakest level
        assert result["sealed"].startswith("limits-only: "), result["sealed"]
        assert seen["read inherited descriptor"].startswith("blocked"), seen
