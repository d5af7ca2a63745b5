"""Shared fixtures (the reference notebooks, the graded hostile class) and the suite's markers.

Markers (registered in pyproject.toml, and `nbval` here) select what a change touches:
    pytest -m 4_backprop            the mutation cases and nbval run of one notebook
    pytest -m "grading and not root" the grader's suites that run without root
    pytest -m "not (lab or exchange)"
    pytest -m "grading or nbval" autograde_tests --nbval-lax source notebooks   (.ci/run's ordinary account)
"""
import importlib
from pathlib import Path

import pytest

from coursepack import notebooks

HERE = Path(__file__).resolve().parent
CASES = HERE / "cases"
# The heavy suites, by test file: one place to see what each needs.
SUITE_MARKERS = {
    "test_mutants": ["mutation"],
    "test_nbgrader_pipeline": ["grading", "pipeline"],
    "test_bridge": ["grading"],
    "test_grading_adversarial": ["grading"],
    "test_grading_feedback": ["grading"],
    "test_grading_parallel": ["grading"],
    "test_grading_sandbox": ["grading"],
    "test_sandbox_isolation": ["grading"],
    "test_grading_unprivileged": ["grading", "root"],
    "test_harness_seal": ["grading"],
    "test_grading_postgres": ["grading", "postgres"],
    "test_exchange": ["exchange", "root"],
    "test_lab_server": ["lab"],
    "test_publish": ["publish"],
}


def pytest_configure(config):
    config.addinivalue_line("markers", "nbval: a notebook executed by nbval (source/ and notebooks/)")


def pytest_collection_modifyitems(config, items):
    stems = {path.stem for path in notebooks.source_notebooks()}
    for item in items:
        for name in SUITE_MARKERS.get(item.path.stem, []):
            item.add_marker(name)
        if item.path.suffix == ".ipynb":
            item.add_marker("nbval")
        stem = item.path.stem if item.path.suffix == ".ipynb" else getattr(item, "callspec", None) and \
            item.callspec.params.get("stem")
        if stem in stems:
            item.add_marker(stem)


def case_modules():
    """{notebook stem: module} for every autograde_tests/cases/<stem>.py."""
    return {path.stem: importlib.import_module(f"cases.{path.stem}") for path in sorted(CASES.glob("[!_]*.py"))}


def source_notebook(stem):
    return notebooks.SOURCE / "practical1" / f"{stem}.ipynb"


class _References:
    """One warm reference kernel per notebook, started on first use and kept for the session
    (pytest runs each notebook's reference test before its cases; about 300 MB a kernel)."""

    def __init__(self):
        self.kernels = {}

    def get(self, stem):
        from mutation import ReferenceNotebook

        if stem not in self.kernels:
            self.kernels[stem] = ReferenceNotebook(source_notebook(stem))
        return self.kernels[stem]

    def close(self):
        for reference in self.kernels.values():
            reference.close()
        self.kernels.clear()


@pytest.fixture(scope="session")
def references():
    refs = _References()
    yield refs
    refs.close()


# ------------------------------------------------------------------------------------------------
# the hostile class (hostile.py): graded once per test run through `python -m coursepack.grading`


@pytest.fixture(scope="session")
def listener():
    """A TCP server on 127.0.0.1 that a sandboxed kernel must not reach: (port, accepted connections)."""
    import socket
    import threading

    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.5)
    accepted, stop = [], threading.Event()

    def serve():
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1], accepted
    stop.set()
    thread.join()
    server.close()


def terminal_env(course: Path) -> dict[str, str]:
    """An instructor's terminal: none of the variables `make test` sets (MPLBACKEND, OMP_NUM_THREADS, ...)."""
    import os
    import sys

    env = {name: os.environ[name] for name in ("HOME", "LANG", "TERM") if name in os.environ}
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), "/usr/local/bin", "/usr/bin", "/bin"])
    for name, sub in (("JUPYTER_CONFIG_DIR", "config"), ("JUPYTER_DATA_DIR", "data"),
                      ("JUPYTER_RUNTIME_DIR", "runtime")):
        env[name] = str(course / ".jupyter" / sub)
    return env


@pytest.fixture(scope="session")
def hostile_class(tmp_path_factory, listener):
    """(course, cases, exit code, report, seconds, connections the listener accepted or None, survivors).

    Graded once per test run, also under pytest-xdist: the first process to take the lock grades
    the class into a folder all workers share, the others wait and read it. Tests only read it.
    """
    import fcntl
    import json
    import os
    import subprocess
    import sys
    import time

    import hostile

    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent
    course, done = root / "hostile-class", root / "hostile-class.json"
    with open(root / "hostile-class.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        accepted = None
        if not done.exists():
            port, accepted = listener
            hostile.make_class(course, port)
            started = time.monotonic()
            graded = subprocess.run([sys.executable, "-m", "coursepack.grading", "autograde", hostile.ASSIGNMENT,
                                     "--workers=2", "--quiet"], cwd=course, env=terminal_env(course),
                                    capture_output=True, text=True)
            seconds = time.monotonic() - started
            survivors = [pid for pid in os.listdir("/proc") if pid.isdigit() and marked(pid, b"SURVIVOR_MARK")]
            done.write_text(json.dumps({"port": port, "code": graded.returncode, "seconds": seconds,
                                        "stdout": graded.stdout, "stderr": graded.stderr[-5000:],
                                        "survivors": survivors}))
        saved = json.loads(done.read_text())
    report = json.loads((course / ".grading" / f"{hostile.ASSIGNMENT}-report.json").read_text())
    return (course, hostile.cases(course, saved["port"]), saved["code"], report, saved["seconds"], accepted,
            saved["survivors"], saved["stdout"] + saved["stderr"])


def marked(pid: str, mark: bytes) -> bool:
    """Whether process `pid`'s command line holds `mark` (how a test finds the processes it started)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            return mark in cmdline.read()
    except OSError:
        return False
