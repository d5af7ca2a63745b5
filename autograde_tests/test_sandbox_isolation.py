"""Attacks on the sandbox, checked from outside: each kernel is sealed, and ends with everything it started.

- a process that double-forks and keeps re-forking (so no pid of it lives long) dies with its
  kernel, at every level, the weakest included;
- a kernel cannot see another live kernel's connection file, job folder or bridge folder, cannot
  reach a socket the grader made for the other one, nor signal its processes;
- as root with cgroups, two processes that together pass the notebook's memory limit end the notebook;
- a kernel running more than Sandbox.max_children processes is stopped as a fork bomb;
- a grader killed mid-notebook takes its zygote and kernels along, and the next one removes its
  leftovers (zygote folder and its host tmpfs, cgroups);
- an ordinary account gets the non-root level, stated, and a working sealed kernel (run as a
  throwaway account with Debian's python3.11 and this venv's packages, as test_exchange.py does).
"""
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from accounts import account_env, make_account, needs_account, remove_account, run_as
from sandboxing import COLD, HONEST_OUTPUT, SMALL, alive, handed_in, needs_bwrap, running

from coursepack.grading import cgroups
from coursepack.grading.sandbox import MiB, Sandbox, isolation

ROOT = os.geteuid() == 0
REFORKER = """
import ctypes, os, time
if os.fork() == 0:  # the kernel's child leaves it (a new session) ...
    os.setsid()
    if os.fork() == 0:
        ctypes.CDLL(None).prctl(15, {name!r}.encode(), 0, 0, 0)  # PR_SET_NAME: findable from outside
        while True:  # ... and its child re-forks every few ms, so no pid of it lives long
            time.sleep(0.005)
            if os.fork():
                os._exit(0)
    os._exit(0)
"""


def named(name: str) -> list[int]:
    """Live processes on this machine (zombies are dead) whose name (comm) is `name`."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and (entry / "comm").read_text().strip() == name:
                if (entry / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
                    found.append(int(entry.name))
        except (OSError, IndexError):
            continue
    return found


def reforker_dies_with_its_kernel(sandbox: Sandbox, folder: Path) -> None:
    name = f"cpx{uuid.uuid4().hex[:8]}"
    try:
        with running(sandbox, folder) as (_, run):
            run(REFORKER.format(name=name))
            deadline = time.monotonic() + 10
            while not named(name):
                assert time.monotonic() < deadline, "the re-forking process never started"
                time.sleep(0.05)
        # A scan of /proc can miss a process that re-forks while it runs: a survivor would show in some of 20.
        for _ in range(20):
            assert not named(name), "a process of the kernel survived it"
            time.sleep(0.025)
    except BaseException:  # the sandbox failed: a survivor must not outlive the test (its session stays the same)
        for _ in range(40):
            for pid in named(name):
                with contextlib.suppress(OSError):
                    os.killpg(os.getpgid(pid), signal.SIGKILL)
            time.sleep(0.025)
        raise


@pytest.mark.parametrize("traits", [{}, {"use_bwrap": False}], ids=["default", "no-bwrap"])
def test_a_reforking_process_dies_with_its_kernel(tmp_path, traits):
    reforker_dies_with_its_kernel(Sandbox(preload=SMALL, **traits), handed_in(tmp_path))


def kernels_cannot_reach_each_other(sandbox: Sandbox, folder: Path) -> None:
    """Two live kernels of one zygote (the closest two can be): a sees nothing of b's and kills none of
    b's processes, while b reaches the socket the grader made for it in its bridge folder."""
    with running(sandbox, handed_in(folder / "a")) as (a, run_a), \
            running(sandbox, handed_in(folder / "b")) as (b, run_b):
        harness = os.path.join(b.bridge_dir, "harness.sock")  # what the grader listens on for b's kernel
        listener = socket.socket(socket.AF_UNIX)
        listener.bind(harness)
        os.chmod(harness, 0o666)
        listener.listen(1)
        targets = [b.connection_file, b.bridge_dir, b.jobdir, os.path.join(b.jobdir, "data.csv")]
        probe = ("import os, signal, socket\n"
                 f"for path in {targets!r}:\n"
                 "    try:\n"
                 "        os.listdir(path) if os.path.isdir(path) else open(path).read()\n"
                 "        print('LEAK', path)\n"
                 "    except OSError as error:\n"
                 "        print('blocked', type(error).__name__)\n"
                 "try:\n"
                 f"    socket.socket(socket.AF_UNIX).connect({harness!r})\n"
                 "    print('LEAK socket')\n"
                 "except OSError as error:\n"
                 "    print('blocked', type(error).__name__)\n"
                 "try:\n"
                 "    os.kill(-1, signal.SIGKILL)  # every process it may signal\n"
                 "except OSError as error:\n"
                 "    print('no one to kill', type(error).__name__)\n")
        out = run_a(probe)
        assert "LEAK" not in out and out.count("blocked") == 5, out
        assert alive(b) and run_b("print(6 * 7)") == "42\n"
        assert run_b(f"import socket\nsocket.socket(socket.AF_UNIX).connect({harness!r})\nprint('connected')\n"
                     ) == "connected\n", "b's own kernel must reach the grader's socket in its bridge folder"
        listener.close()
        assert alive(a), "a kernel that only killed what it could see lives on"


def test_a_kernel_cannot_reach_another_live_kernel(tmp_path):
    if not isolation().namespaces:
        pytest.skip("needs per-kernel namespaces (root or user namespaces)")
    kernels_cannot_reach_each_other(Sandbox(preload=SMALL), tmp_path)


@pytest.mark.root
@pytest.mark.skipif(not ROOT or cgroups.unavailable() is not None,
                    reason=f"needs root and a writable memory cgroup ({cgroups.unavailable()})")
def test_two_processes_past_the_notebooks_memory_limit_end_it(tmp_path):
    limit = 2048 * MiB  # each process stays within RLIMIT_AS (the limit on top of its imports), not both
    with running(Sandbox(preload=SMALL, memory_limit=limit), handed_in(tmp_path)) as (manager, run):
        run("import os, time\n"
            "def hog():\n    return b'x' * (1200 * 2**20)  # touches every page\n"
            "if os.fork() == 0:\n    kept = hog()\n    time.sleep(60)\n    os._exit(0)\n"
            "time.sleep(1)\nkept = hog()\n", wait=False)
        deadline = time.monotonic() + 15
        while alive(manager):
            assert time.monotonic() < deadline, "the notebook outlived its memory limit"
            time.sleep(0.1)
        assert "memory" in manager.killed_because, manager.killed_because


def test_a_fork_bomb_stops_its_kernel(tmp_path):
    with running(Sandbox(preload=SMALL, max_children=4), handed_in(tmp_path)) as (manager, run):
        run("import os, time\nfor _ in range(8):\n    if os.fork() == 0:\n        time.sleep(60)\n        os._exit(0)\n"
            "time.sleep(60)\n", wait=False)
        deadline = time.monotonic() + 10
        while alive(manager):
            assert time.monotonic() < deadline, "a kernel running 9 processes went on"
            time.sleep(0.1)
        assert "fork bomb" in manager.killed_because


# A grader killed mid-notebook (SLURM's time limit, a crash): its zygote and kernels must not linger.
GRADER = """
import json, sys, tempfile, time
from pathlib import Path
sys.path.insert(0, {tests!r})
from test_grading_sandbox import SMALL, handed_in, running
from coursepack.grading.sandbox import Sandbox
with running(Sandbox(preload=SMALL, **json.loads(sys.argv[1])), handed_in(Path(tempfile.mkdtemp()))) as (km, run):
    run("import ctypes, os, time\\nif os.fork() == 0:\\n"
        "    ctypes.CDLL(None).prctl(15, {name!r}.encode(), 0, 0, 0)\\n    time.sleep(600)\\n")
    print(json.dumps([km.zygote.process.pid, km.zygote.folder]), flush=True)
    time.sleep(600)
"""


def live(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.parametrize("traits", [{}, {"use_bwrap": False}], ids=["default", "no-bwrap"])
def test_a_grader_that_dies_takes_its_zygote_and_kernels_along(tmp_path, traits):
    name = f"cpx{uuid.uuid4().hex[:8]}"
    script = GRADER.format(tests=str(Path(__file__).parent), name=name)
    grader = subprocess.Popen([sys.executable, "-c", script, json.dumps(traits)], stdout=subprocess.PIPE, text=True)
    zygote = None
    try:
        zygote, folder = json.loads(grader.stdout.readline())
        assert named(name) and live(zygote)
        grader.kill()
        grader.wait()
        deadline = time.monotonic() + 10
        while named(name) or live(zygote):
            assert time.monotonic() < deadline, "the dead grader's zygote or kernel lives on"
            time.sleep(0.05)
        with running(Sandbox(preload=SMALL, use_zygote=False, **traits), handed_in(tmp_path)):
            pass  # the next zygote and cgroup made here remove what a dead grader left (if no other grader did)
        assert not os.path.exists(folder) and not os.path.ismount(folder)
        assert not list(Path("/sys/fs/cgroup").glob(f"**/{cgroups.PREFIX}{grader.pid}-*")), "its cgroup is left"
    finally:
        grader.kill()
        grader.stdout.close()
        for pid in named(name) + ([zygote] if zygote and live(zygote) else []):
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)


# -- an ordinary account -----------------------------------------------------------------------

# Run as the ordinary account: the isolation it gets, an honest notebook, the re-forker, a neighbour.
AS_ACCOUNT = """
import json, os, sys, tempfile
from pathlib import Path
sys.path.insert(0, {tests!r})
from sandboxing import HONEST, SMALL, running, handed_in
from test_sandbox_isolation import kernels_cannot_reach_each_other, reforker_dies_with_its_kernel
from coursepack.grading.sandbox import Sandbox, isolation
traits = json.loads(sys.argv[1])
stated = isolation(traits.get("use_bwrap", True), traits.get("user_namespaces", True))
sandbox = Sandbox(preload=SMALL, **traits)
with running(sandbox, handed_in(Path(tempfile.mkdtemp()))) as (_, run):
    honest = run(HONEST)
    uid, size = json.loads(run("import os, json\\ns = os.statvfs('.')\\n"
                               "print(json.dumps([os.getuid(), s.f_blocks * s.f_frsize]))"))
reforker_dies_with_its_kernel(sandbox, handed_in(Path(tempfile.mkdtemp())))
if stated.namespaces:
    kernels_cannot_reach_each_other(sandbox, Path(tempfile.mkdtemp()))
print(json.dumps({{"level": stated.level, "namespaces": stated.namespaces, "lacks": stated.lacks,
                  "honest": honest, "uid": uid, "me": os.getuid(), "job_size": size}}))
"""


@pytest.fixture(scope="module")
def account():
    """A throwaway ordinary account (no root, no cgroup), removed afterwards with its scratch folder."""
    name = make_account()
    try:
        yield name
    finally:
        remove_account(name)


def as_account(name: str, traits: dict) -> dict:
    script = AS_ACCOUNT.format(tests=str(Path(__file__).parent))
    result = run_as(name, ["-c", script, json.dumps(traits)], env=account_env(MPLBACKEND="Agg", OMP_NUM_THREADS="1"),
                    cwd="/", timeout=4 * COLD)  # (HONEST imports torch in its kernel, in a zygote that did not)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.splitlines()[-1])


@pytest.mark.root
@needs_account
@pytest.mark.parametrize("traits, level, namespaces", [
    pytest.param({}, "user-namespaces", True, marks=needs_bwrap, id="bubblewrap"),
    pytest.param({"use_bwrap": False}, "limits-only", True, id="user-namespaces"),
    pytest.param({"use_bwrap": False, "user_namespaces": False}, "limits-only", False, id="limits-only"),
])
def test_an_ordinary_account_gets_a_stated_level_and_sealed_kernels(account, traits, level, namespaces):
    seen = as_account(account, traits)
    assert seen["level"] == level and seen["namespaces"] == namespaces, seen
    assert "distinct uid per kernel: no (no root: every kernel runs as you" in " ".join(seen["lacks"])
    assert any(line.startswith("memory bounded per notebook (cgroup): no (no root: RLIMIT_AS per process")
               for line in seen["lacks"])
    assert seen["honest"] == HONEST_OUTPUT, "a weaker level must grade an honest notebook alike"
    assert seen["uid"] == (1000 if namespaces else seen["me"])
    assert (seen["job_size"] == Sandbox().job_size) == namespaces, "the job folder is a tmpfs of its own"
