"""The trusted side of grading: a notebook's tests run here, never in the student's kernel.

For every graded test cell the grader asks the student's kernel to serve one bridge session
(bridge.serve_kernel) and runs the cell's whole source, visible and hidden tests, taken from the
course's source notebook, here. In the test's namespace:

- the notebook's own imports and helper cells (the locked, ungraded cells: the checks, MNIST) run
  once per notebook, here, from the source notebook;
- every name a student defines in an answer cell (`linear_l2_loss`, `Value`, `Network`, ...) is
  read from the kernel at the start of the cell: a function or class becomes a `Remote`;
- nothing else: a test cell must be self-contained (`free_names` lets `make test` check it).

The verdict of a cell is whether its code ran to the end, decided here: the kernel answers calls,
it never reports a result. Messages are the checks' own sentences (what was expected, what came
back); no traceback, so no line of a hidden test, ever reaches a student.

`TestHarness` does the work in-process (the mutation suite uses it directly); `HarnessProcess` runs
one in a child process per notebook, with a memory limit, so that a test that hangs or a flood of
data from a submission costs that notebook only. Once its prelude is built, that process is sealed
before it meets any kernel (`HarnessProcess` says what holds at each level): should a submission
ever get code run in it, that code can affect nothing but this notebook's own verdicts. The worker
makes each cell's listening socket and hands it over, so the sealed harness needs to write nowhere.
"""
from __future__ import annotations

import ast
import builtins
import contextlib
import multiprocessing as mp
import os
import resource
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass

import nbformat
from traitlets import Float, Integer
from traitlets.config import Configurable

from coursepack import notebooks
from coursepack.grading.bridge import (
    BridgeError,
    BridgeTimeout,
    Endpoint,
    HarnessPolicy,
    RemoteError,
)


class HarnessSettings(Configurable):
    """The test harness's limits (configurable as `c.HarnessSettings.<name>` in nbgrader_config.py)."""

    memory_limit = Integer(4 * 2**30, help="address space of the harness process (RLIMIT_AS), bytes; 0: none"
                           ).tag(config=True)
    max_message_bytes = Integer(256 * 2**20, help="largest message a student's kernel may send it, bytes"
                                ).tag(config=True)
    max_session_bytes = Integer(1024 * 2**20, help="data a student's kernel may send it during one test cell, "
                                                   "bytes").tag(config=True)
    grace = Float(15.0, help="seconds the kernel and the harness get beyond a test's own time limit to finish "
                             "the session").tag(config=True)


KERNEL_SIDE = "__import__('coursepack.grading.bridge', fromlist=['bridge'])"


def serve_command(path: str) -> str:
    """The code the kernel runs (silently, without history) to serve one session at `path`."""
    return f"{KERNEL_SIDE}.serve_kernel({path!r})"


def warm_up_command(modules: list[str]) -> str:
    """The code the kernel runs (silently) to import the course's modules before the clock starts."""
    return f"{KERNEL_SIDE}.warm_up({list(modules)!r})"


@dataclass(frozen=True)
class CellVerdict:
    """The harness's verdict on one test cell."""

    grade_id: str
    passed: bool
    message: str = ""  # for the student: what went wrong (empty when passed)
    error: str = ""  # the kind of failure, as an exception name ("AssertionError", "TimeoutError", ...)
    seconds: float = 0.0


# ------------------------------------------------------------------------------------------------
# what a test cell may name


def bound_names(tree: ast.AST) -> set[str]:
    """Every name a piece of code binds anywhere (assignments, defs, imports, loop and lambda variables)."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store | ast.Del):
            found.add(node.id)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            found.add(node.name)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            found.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
        elif isinstance(node, ast.arg):
            found.add(node.arg)
        elif isinstance(node, ast.ExceptHandler) and node.name:
            found.add(node.name)
        elif isinstance(node, ast.MatchAs | ast.MatchStar) and node.name:
            found.add(node.name)
    return found


def free_names(source: str) -> set[str]:
    """Names a cell reads but never binds (builtins excluded): what it needs from outside itself."""
    tree = ast.parse(source)
    loaded = {node.id for node in ast.walk(tree) if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load)}
    return loaded - bound_names(tree) - set(dir(builtins))


def _imports_only(source: str) -> str:
    """The top-level import statements of an instructor's cell (its other code is a demonstration)."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return ""
    return "\n".join(ast.unparse(node) for node in tree.body if isinstance(node, ast.Import | ast.ImportFrom))


@dataclass
class NotebookTests:
    """What the harness needs of a source notebook: its prelude, its tests and the student's names."""

    prelude: list[tuple[str, str]]  # (label, code) run once, in order
    tests: dict[str, str]  # grade_id -> the whole source of the test cell
    student_names: list[str]  # defined in answer cells

    @classmethod
    def from_notebook(cls, nb) -> NotebookTests:
        prelude, tests = [], {}
        for index, cell in enumerate(nb.cells, 1):
            if cell.cell_type != "code":
                continue
            meta = notebooks.nbgrader(cell)
            if notebooks.is_test(cell):
                tests[notebooks.grade_id(cell)] = cell.source
            elif meta.get("solution"):
                continue
            elif meta.get("locked"):
                prelude.append((f"helper cell {notebooks.grade_id(cell)}", cell.source))
            elif imports := _imports_only(cell.source):
                prelude.append((f"imports of cell {index}", imports))
        return cls(prelude, tests, notebooks.defined_names(nb))

    @classmethod
    def from_path(cls, path) -> NotebookTests:
        return cls.from_notebook(nbformat.read(str(path), as_version=4))

    def outside_names(self, grade_id: str, prelude_names: set[str]) -> set[str]:
        """Names a test cell reads that neither it, the prelude nor the student defines: authoring errors."""
        return free_names(self.tests[grade_id]) - prelude_names - set(self.student_names)


# ------------------------------------------------------------------------------------------------
# running a test cell


class TestHarness:
    """Runs one notebook's test cells against a student's kernel, one bridge session per cell."""

    def __init__(self, tests: NotebookTests, max_message_bytes: int = 256 * 2**20,
                 max_session_bytes: int = 1024 * 2**20):
        self.tests = tests
        self.max_message_bytes, self.max_session_bytes = max_message_bytes, max_session_bytes
        self.prelude: dict = {"__name__": "__grader__", "__builtins__": builtins}
        for label, code in tests.prelude:
            exec(compile(code, f"<{label}>", "exec"), self.prelude)  # noqa: S102 - the course's own cells

    def run(self, grade_id: str, endpoint: Endpoint) -> CellVerdict:
        """Run test cell `grade_id` with the student's names read through `endpoint`."""
        import torch

        start = time.monotonic()
        source = self.tests.tests[grade_id]
        namespace = dict(self.prelude)
        # A test that must change what the student's code sees (get_device on a machine with CUDA)
        # patches the kernel's own module: the checks' student_module(name) returns it here.
        namespace["student_module"] = lambda name: endpoint.request("module", name)
        wanted = free_names(source) & set(self.tests.student_names)
        missing = []
        try:
            for name in sorted(wanted):
                try:
                    namespace[name] = endpoint.request("global", name)
                except NameError:
                    missing.append(name)
            with torch.enable_grad():
                exec(compile(source, f"<test {grade_id}>", "exec"), namespace)  # noqa: S102 - the course's test
        except BaseException as error:  # noqa: BLE001 - every way a test can fail becomes its verdict
            if isinstance(error, KeyboardInterrupt | SystemExit):
                raise
            kind, message = describe(error, missing)
            return CellVerdict(grade_id, False, message, kind, time.monotonic() - start)
        return CellVerdict(grade_id, True, seconds=time.monotonic() - start)

    def run_over(self, grade_id: str, connect: Callable[[], socket.socket], deadline: float) -> CellVerdict:
        """Run a test cell over a connection from `connect()` (which may fail or time out)."""
        try:
            sock = connect()
        except (OSError, BridgeError) as error:
            return CellVerdict(grade_id, False, f"the grader could not reach your notebook's kernel ({error})",
                               "KernelUnreachable")
        endpoint = Endpoint(sock, HarnessPolicy(self.max_message_bytes, self.max_session_bytes), deadline=deadline)
        try:
            return self.run(grade_id, endpoint)
        finally:
            endpoint.close()


def describe(error: BaseException, missing: list[str]) -> tuple[str, str]:
    """(kind, sentence for the student) for an exception that ended a test cell."""
    if isinstance(error, NameError) and not isinstance(error, RemoteError) and missing:
        names = ", ".join(missing)
        return "NameError", (f"{names} {'is' if len(missing) == 1 else 'are'} not defined in your notebook: "
                             "run the cell that defines it, and keep the name the exercise asks for")
    if isinstance(error, BridgeTimeout):
        return "TimeoutError", "the test ran out of time: your code did not answer before the cell's time limit"
    if isinstance(error, BridgeError):
        return "KernelLost", f"the grader lost contact with your notebook's kernel ({error})"
    if isinstance(error, RemoteError):
        return error.type_name, f"your code raised {error.type_name}: {error.remote_message}".rstrip(": ")
    if isinstance(error, AssertionError):
        return "AssertionError", str(error) or "a check of this test failed"
    if isinstance(error, MemoryError):
        return "MemoryError", "the test ran out of memory on the grader's side (your code returned too much data?)"
    return type(error).__name__, f"{type(error).__name__}: {error}"


def accept_one(server: socket.socket, deadline: float) -> socket.socket:
    """The first connection to `server` before `deadline`."""
    server.settimeout(max(0.01, deadline - time.monotonic()))
    try:
        sock, _ = server.accept()
    except TimeoutError:
        raise BridgeTimeout("the kernel did not connect before the time limit") from None
    sock.setblocking(True)
    return sock


@contextlib.contextmanager
def listening(path: str):
    """A Unix socket listening at `path`, which the (maybe unprivileged) kernel may connect to."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        server.bind(path)
        os.chmod(path, 0o666)
        server.listen(1)
        yield server
    finally:
        server.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


def run_with_client(harness: TestHarness, client, grade_id: str, timeout: float = 120) -> CellVerdict:
    """Run test `grade_id` in-process against the kernel behind a jupyter_client `client`.

    For a kernel that is not sandboxed (the mutation suite, the benchmark): the kernel serves one
    session from a silent cell while this process runs the test.
    """
    import tempfile

    deadline = time.monotonic() + timeout
    with tempfile.TemporaryDirectory(prefix="bridge-") as folder:
        path = os.path.join(folder, "bridge.sock")
        with listening(path) as server:
            msg_id = client.execute(serve_command(path), silent=True, store_history=False)
            verdict = harness.run_over(grade_id, lambda: accept_one(server, deadline), deadline)
        while True:  # the kernel's serve cell ends when the harness closes the session
            reply = client.get_shell_msg(timeout=max(1.0, deadline - time.monotonic()))
            if reply["parent_header"].get("msg_id") == msg_id:
                return verdict


# ------------------------------------------------------------------------------------------------
# one harness process per notebook


def _child(source_path: str, limits: dict, conn) -> None:
    """The harness process: build the prelude, then run the cells it is asked for, one at a time."""
    if limits["memory_limit"] > 0:
        resource.setrlimit(resource.RLIMIT_AS, (limits["memory_limit"], limits["memory_limit"]))
    try:
        harness = TestHarness(NotebookTests.from_path(source_path), limits["max_message_bytes"],
                              limits["max_session_bytes"])
        conn.send(("ready", None))
    except Exception as error:  # noqa: BLE001 - reported to the executor, which fails the notebook's tests
        conn.send(("broken", f"{type(error).__name__}: {error}"))
        return
    while True:
        try:
            message = conn.recv()
        except EOFError:
            return
        if message[0] != "run":
            return
        _, grade_id, path, seconds = message
        deadline = time.monotonic() + seconds
        with listening(path) as server:
            conn.send(("listening", None))
            verdict = harness.run_over(grade_id, lambda s=server, d=deadline: accept_one(s, d), deadline)
        conn.send(("verdict", verdict))


class HarnessProcess:
    """A TestHarness in a child process, for one notebook: `wait_ready`, then `start_cell` and `verdict`.

    It starts at once (building its prelude while the kernel starts); `wait_ready` is called before
    the notebook's clock starts, so the harness's start-up is never a student's time.
    """

    def __init__(self, source_path, settings: HarnessSettings):
        context = mp.get_context("fork")
        self._conn, child_conn = context.Pipe()
        limits = {name: getattr(settings, name) for name in ("memory_limit", "max_message_bytes", "max_session_bytes")}
        self.process = context.Process(target=_child, daemon=True, name="grading-harness",
                                       args=(str(source_path), limits, child_conn))
        self.process.start()
        child_conn.close()
        self.broken: str | None = None  # None until ready or broken; "" when ready

    def wait_ready(self, timeout: float = 300) -> str:
        """"" once the harness is ready, else why it is not."""
        if self.broken is None:
            kind, detail = self._receive(timeout) or ("broken", "the harness did not start")
            self.broken = "" if kind == "ready" else str(detail)
        return self.broken

    def _receive(self, timeout: float):
        if self._conn.poll(max(0.0, timeout)):
            try:
                return self._conn.recv()
            except (EOFError, OSError):
                return None
        return None

    def start_cell(self, grade_id: str, path: str, seconds: float) -> bool:
        """Ask for test `grade_id` over a socket at `path`; True once the harness listens there."""
        if self.wait_ready() or not self.process.is_alive():
            return False
        self._conn.send(("run", grade_id, path, seconds))
        reply = self._receive(30)
        return reply is not None and reply[0] == "listening"

    def verdict(self, grade_id: str, timeout: float) -> CellVerdict | None:
        """The verdict of the cell started last, or None if the harness did not give one in time."""
        reply = self._receive(timeout)
        if reply is None or reply[0] != "verdict" or reply[1].grade_id != grade_id:
            return None
        return reply[1]

    def stop(self) -> None:
        with contextlib.suppress(OSError, BrokenPipeError):
            self._conn.send(("stop",))
        self.process.join(timeout=5)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()
        self._conn.close()

