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
import ctypes
import dataclasses
import errno
import functools
import gc
import json
import logging
import multiprocessing as mp
import os
import platform
import re
import resource
import select
import signal
import socket
import stat
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing import reduction

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
from coursepack.grading.sandbox import Sandbox, _ancestors, _python_paths, claim_uid, release_uid
from coursepack.grading.zygote import (
    CLONE_NEWIPC,
    CLONE_NEWNET,
    CLONE_NEWNS,
    CLONE_NEWPID,
    CLONE_NEWUSER,
    CLONE_NEWUTS,
    MS_BIND,
    MS_NODEV,
    MS_NOEXEC,
    MS_NOSUID,
    MS_PRIVATE,
    MS_RDONLY,
    MS_REC,
    MS_REMOUNT,
    PR_SET_DUMPABLE,
    PR_SET_NO_NEW_PRIVS,
    PR_SET_PDEATHSIG,
    SetupError,
    _check,
    _close_all_but,
    _drop_capabilities,
    _drop_privileges,
    _libc,
    _prctl,
    _unshare,
    _write,
    mapped_bytes,
    mount,
    tmpfs,
    unmount,
)


class HarnessSettings(Configurable):
    """The test harness's limits (configurable as `c.HarnessSettings.<name>` in nbgrader_config.py)."""

    memory_limit = Integer(4 * 2**30, help="address space of the harness process (RLIMIT_AS) beyond what the grader's "
                                           "imports map, bytes; 0: none"
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


def listen(path: str) -> socket.socket:
    """A Unix socket listening at `path` (replacing what was there), which the (maybe unprivileged)
    kernel may connect to. The caller closes it and removes `path`."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        server.bind(path)
        os.chmod(path, 0o666)
        server.listen(1)
    except BaseException:
        server.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        raise
    return server


@contextlib.contextmanager
def listening(path: str):
    """`listen(path)` for the duration of a `with` block."""
    server = listen(path)
    try:
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
# sealing the harness process (what holds at each level: HarnessProcess)

SYSTEM_FOLDERS = ("/usr", "/etc", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
DEVICES = ("null", "zero", "full", "random", "urandom")
# pivot_root(2) by number: glibc has no wrapper. Elsewhere the harness gets no namespaces (limits-only).
PIVOT_ROOT = {"x86_64": 155, "amd64": 155, "aarch64": 41, "arm64": 41, "riscv64": 41, "ppc64le": 203, "ppc64": 203,
              "s390x": 217}
PR_CAPBSET_DROP = 24
MAX_TEXT = 256 * 2**10  # characters of a message from the harness (a verdict's sentence, why it broke)
MAX_MESSAGE = 8 * MAX_TEXT  # bytes of one, as JSON
VERDICT_TYPES = {"grade_id": (str,), "passed": (bool,), "message": (str,), "error": (str,), "seconds": (float, int)}
# Folders that code run in the harness creates with makedirs(exist_ok=True) before using them, if at
# all: they exist, empty and read-only, in its root (torch._dynamo's import, e.g. by torch.optim).
CACHE_FOLDERS = {"TORCHINDUCTOR_CACHE_DIR": "/tmp/torchinductor"}
MS_NOSYMFOLLOW = 256
# Per-mount flags a read-only remount must keep: in a user namespace those of the host are locked.
KEPT_FLAGS = {b"nodev": MS_NODEV, b"noexec": MS_NOEXEC, b"nosymfollow": MS_NOSYMFOLLOW}


def _pivot_root_number() -> int | None:
    return PIVOT_ROOT.get(platform.machine().lower())


def _mapped(uid: int) -> bool:
    """Whether `uid` exists, as a uid and a gid, in this process's user namespace (it may not in a
    rootless container, where root is an ordinary account of the host)."""
    for name in ("uid_map", "gid_map"):
        with open(f"/proc/self/{name}") as ranges:
            if not any(int(first) <= uid < int(first) + int(count)
                       for first, _, count in (line.split() for line in ranges if line.strip())):
                return False
    return True


def _closed_to_others(paths: list[str]) -> str | None:
    """The first of `paths` (or a folder above it) that another uid could not read, if any."""
    for path in paths:
        for folder in [*_ancestors(path), path]:
            mode = os.stat(folder).st_mode
            if not mode & stat.S_IXOTH or folder == path and not mode & stat.S_IROTH:
                return folder
    return None


def _choose_level(setup: dict) -> tuple[str, list[str]]:
    """Before the prelude, while this process has one thread: the level to seal the harness at, and
    why not a stronger one. Without root that means entering a user namespace now (it maps your uid
    to itself, so the course's helper cells see nothing different); SetupError if that half-worked."""
    why: list[str] = []
    uid = setup["uid"]
    if _pivot_root_number() is None:
        return "limits-only", [f"no pivot_root number known for {platform.machine()}"]
    if os.geteuid() == 0:
        if uid is not None and _mapped(uid):
            return "root", why
        why.append(setup["uid_error"] or f"uid {uid} does not exist here (a rootless container?)")
    if not setup["user_namespaces"]:
        return "limits-only", [*why, "user namespaces disabled (Sandbox.user_namespaces = False)"]
    uid, gid = os.geteuid(), os.getegid()
    try:
        _prctl(PR_SET_DUMPABLE, 1)  # a non-dumpable process's /proc/self/uid_map is root's: it could not map itself
        _unshare(CLONE_NEWUSER)
    except SetupError as error:
        return "limits-only", [*why, f"no user namespace ({error})"]
    try:
        _write("/proc/self/uid_map", f"{uid} {uid} 1")
        _write("/proc/self/setgroups", "deny")
        _write("/proc/self/gid_map", f"{gid} {gid} 1")
    except OSError as error:
        raise SetupError(f"cannot map the user namespace ({error})") from error
    return "user-namespaces", why


def _mounts_below(top: str) -> list[tuple[bytes, int]]:
    """(mount point, flags a remount must keep) of the mount at `top` and every mount under it."""
    with open("/proc/self/mountinfo", "rb") as info:
        entries = [line.split(b" ") for line in info.read().splitlines()]
    unescape = functools.partial(re.sub, rb"\\([0-7]{3})", lambda m: bytes([int(m.group(1), 8)]))
    mounts = {int(e[0]): (int(e[1]), unescape(e[4]), e[5].split(b",")) for e in entries}
    wanted = os.fsencode(top)
    here = {mount_id for mount_id, (_, point, _) in mounts.items() if point == wanted}
    found = {mount_id for mount_id in here if not any(mounts[other][0] == mount_id for other in here)}  # the top
    frontier = set(found)
    while frontier:
        frontier = {mount_id for mount_id, (parent, _, _) in mounts.items() if parent in frontier} - found
        found |= frontier
    return [(mounts[m][1], sum(flag for name, flag in KEPT_FLAGS.items() if name in mounts[m][2]))
            for m in sorted(found)]


def _new_root(paths: list[str]) -> list[str]:
    """Make this process's root (in its own mount namespace) a new, read-only file system holding
    only the system, `paths` (Python, this package), a few devices and /proc; the old root leaves
    the namespace (pivot_root), so there is nothing to escape to. Returns notes on what is missing."""
    mount("/", flags=MS_REC | MS_PRIVATE)  # nothing mounted here may show up outside, nor the reverse
    links = {path: os.readlink(path) for path in SYSTEM_FOLDERS if os.path.islink(path)}
    folders = [path for path in SYSTEM_FOLDERS if os.path.isdir(path) and path not in links]
    shown = [*folders, *links]  # (what lies under a link to /usr is shown by /usr)
    extra = [path for path in paths if path != "/" and not any(path == q or path.startswith(q + "/") for q in shown)]
    # Held open: the new root's tmpfs may cover some of them.
    held = {path: os.open(path, os.O_PATH | os.O_CLOEXEC) for path in [*folders, *extra] if os.path.exists(path)}
    held.update({f"/dev/{name}": os.open(f"/dev/{name}", os.O_PATH | os.O_CLOEXEC) for name in DEVICES
                 if os.path.exists(f"/dev/{name}")})
    new, notes = ("/tmp" if os.path.isdir("/tmp") and not os.path.islink("/tmp") else "/mnt"), []
    try:
        tmpfs(new, 2**20, 0o755)
        for path, fd in held.items():
            target = new + path
            if stat.S_ISDIR(os.fstat(fd).st_mode):
                os.makedirs(target, 0o755, exist_ok=True)
            else:
                os.makedirs(os.path.dirname(target), 0o755, exist_ok=True)
                os.close(os.open(target, os.O_CREAT | os.O_WRONLY, 0o644))
            # Recursive: in a user namespace a folder with mounts under it may only be bound whole.
            mount(target, source=f"/proc/self/fd/{fd}", flags=MS_BIND | MS_REC)
        for path, link in links.items():
            os.symlink(link, new + path)
        os.makedirs(new + "/dev", 0o755, exist_ok=True)
        for name, target in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"), ("stdout", "/proc/self/fd/1"),
                             ("stderr", "/proc/self/fd/2")):
            os.symlink(target, f"{new}/dev/{name}")
        os.makedirs(new + "/tmp", 0o755, exist_ok=True)
        for folder in CACHE_FOLDERS.values():
            os.makedirs(new + folder, 0o755, exist_ok=True)
        os.mkdir(new + "/proc", 0o555)
        try:  # its own PID namespace's: this process alone
            mount(new + "/proc", "proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
        except SetupError as error:  # (a user namespace on a host whose /proc is partly masked)
            notes.append(f"no /proc ({error})")
    finally:
        for fd in held.values():
            os.close(fd)
    mounts = _mounts_below(new)
    os.chdir(new)
    number = _pivot_root_number()
    _check(_libc.syscall(number, b".", b"."), "pivot_root")  # the old root now lies on top of the new one...
    unmount(".")  # ...and leaves the namespace
    os.chdir("/")
    prefix = os.fsencode(new)
    for point, kept in mounts:
        inside = os.fsdecode(point[len(prefix):] or b"/")
        if inside == "/proc":
            continue  # its own processes only; where this process may write there, it is about itself
        extra_flags = MS_NODEV | MS_NOEXEC if inside == "/" else 0
        mount(inside, flags=MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | kept | extra_flags)
    return notes


def _drop_bounding_set() -> None:
    """No capability can come back, even through a program run as root (needs CAP_SETPCAP here)."""
    for cap in range(64):
        if _libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            if ctypes.get_errno() == errno.EINVAL:  # past the last capability this kernel knows
                return
            _check(-1, f"drop capability {cap} from the bounding set")


def _seal(level: str, setup: dict, conn_fd: int, lifeline: int) -> str:
    """Seal this process (forked from the one that built the prelude, so single-threaded) at `level`
    (see HarnessProcess); what it reached. Raises SetupError or OSError if a step fails."""
    os.setsid()  # out of the worker's process group and terminal: kill(0, ...) reaches only itself
    uid = setup["uid"]
    own_uid = os.geteuid() == 0 and uid is not None and _mapped(uid)  # (before /proc changes)
    closed = _closed_to_others(setup["paths"]) if level == "limits-only" else None
    # The worker's objects (and its garbage) are never collected here: a finalizer closing a descriptor
    # of the worker's by number would close whatever of the harness's now has that number.
    gc.freeze()
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):  # not the worker's log or terminal: it reports through its pipe only
        os.dup2(null, fd)
    sys.stdout = sys.stderr = open(1, "w", buffering=1, closefd=False)  # (whatever they were, e.g. pytest's)
    _close_all_but({conn_fd, lifeline})  # the gradebook, the worker's queues and log, everything inherited
    logging.disable(logging.CRITICAL)  # handlers of the worker's closed files: their numbers get reused
    os.chdir("/")
    said = ["descriptors closed"]
    if level != "limits-only":
        _unshare(CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS)
        said += ["own PID, mount, network, IPC and UTS namespaces",
                 "read-only root of the system and Python only", *_new_root(setup["paths"])]
        os.environ.update(CACHE_FOLDERS, TMPDIR="/tmp")
        tempfile.tempdir = "/tmp"  # found without trying to write in each candidate
    if os.geteuid() == 0 or level == "user-namespaces":
        _drop_bounding_set()
    if own_uid and not closed:
        _drop_privileges(uid)  # zygote's: the kernel's way, all three ids, no capability left
        said.append(f"uid {uid}")
        if setup["max_processes"] > 0:  # its uid is its own: this counts its own tasks only (torch's threads too)
            tasks = setup["max_processes"] + setup["threads"]
            resource.setrlimit(resource.RLIMIT_NPROC, (tasks, tasks))
    else:
        _drop_capabilities()
        if os.path.exists("/proc/self/status"):
            with open("/proc/self/status") as status:
                held = [line for line in status if line.startswith(("CapPrm:", "CapEff:", "CapAmb:"))]
            if any(int(line.split()[1], 16) for line in held):
                raise SetupError(f"capabilities left after dropping them: {' '.join(held)}")
        said.append(f"uid {os.geteuid()}" + (" in a user namespace" if level == "user-namespaces" else ""))
        if own_uid:  # without a mount namespace nothing can expose it: lazy imports would fail
            said.append(f"not uid {uid}: {closed} is closed to other uids")
    said.append("no capabilities")
    _prctl(PR_SET_NO_NEW_PRIVS, 1)
    _prctl(PR_SET_DUMPABLE, 0)  # no process of its uid may trace it or read its memory
    _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)  # (changing uid cleared it) its parent gone, so is this process
    if select.select([lifeline], [], [], 0)[0]:
        os._exit(1)  # it went before the line above
    os.close(lifeline)
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    return f"{level}: " + ", ".join(said)


def _keep(child: int, conn) -> None:
    """The process that built the prelude, once it has forked the sealed harness: it waits for the
    harness, which dies with it, and exits with its code. It runs nothing of a submission's and the
    harness cannot reach it; it keeps what it inherited (multiprocessing's sentinel, by which the
    worker sees it end), but the pipe: the worker must see that close when the harness ends. Never returns."""
    code = 1
    try:
        _prctl(PR_SET_DUMPABLE, 0)  # (without root the harness has this uid: it may not trace this process)
        conn.close()
        code = os.waitstatus_to_exitcode(os.waitpid(child, 0)[1])
    finally:
        os._exit(code if code >= 0 else 128 - code)


def _tell(conn, kind: str, detail=None) -> None:
    """A message for the worker: JSON, which the worker checks field by field. Never a pickle: the
    worker would run whatever a pickle says, and the harness is the side that may be subverted."""
    if isinstance(detail, CellVerdict):
        detail = {**dataclasses.asdict(detail), "message": detail.message[:MAX_TEXT], "error": detail.error[:200]}
    elif isinstance(detail, str):
        detail = detail[:MAX_TEXT]
    conn.send_bytes(json.dumps({"kind": kind, "detail": detail}).encode())


def _serve(harness: TestHarness, conn) -> None:
    """Run the cells the worker asks for, each over the listening socket it hands over."""
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return
        if message[0] != "run":
            return
        _, grade_id, seconds = message
        deadline = time.monotonic() + seconds
        try:
            server = socket.socket(fileno=reduction.recv_handle(conn))
        except (EOFError, OSError):
            return
        with server:
            _tell(conn, "listening")
            verdict = harness.run_over(grade_id, lambda s=server, d=deadline: accept_one(s, d), deadline)
        _tell(conn, "verdict", verdict)


def _child(source_path: str, setup: dict, conn) -> None:
    """The harness process: build the prelude, fork the sealed harness, which runs the cells it is asked for."""
    _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)  # the worker gone, so is its harness
    if os.getppid() != setup["worker"]:
        os._exit(1)
    if setup["memory_limit"] > 0:  # above what the worker's imports (torch's libraries) map already
        limit = setup["memory_limit"] + mapped_bytes()
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    import torch

    # One thread until the fork below: a child forked after OpenMP started its threads waits for them forever.
    threads = setup["threads"] = torch.get_num_threads()
    torch.set_num_threads(1)
    level, why = "limits-only", []
    try:
        level, why = _choose_level(setup)
        _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)  # (in case entering a user namespace cleared it)
        if os.getppid() != setup["worker"]:
            os._exit(1)
        harness = TestHarness(NotebookTests.from_path(source_path), setup["max_message_bytes"],
                              setup["max_session_bytes"])
        if level != "limits-only":
            try:
                _unshare(CLONE_NEWPID)  # for the child forked next: PID 1 of a namespace of its own
            except SetupError as error:
                why.append(f"no PID namespace ({error})")
                level = "limits-only"
        lifeline, alive = os.pipe()
        started = time.perf_counter()
        sealed = os.fork()  # single-threaded (what unshare and a whole-process seal need), whatever the prelude started
    except Exception as error:  # noqa: BLE001 - reported to the executor, which fails the notebook's tests
        _tell(conn, "broken", f"{type(error).__name__}: {error}")
        return
    if sealed:
        os.close(lifeline)
        _keep(sealed, conn)
    os.close(alive)
    fallback = f" (weaker than wanted: {'; '.join(why)})" if why else ""
    try:
        said = _seal(level, setup, conn.fileno(), lifeline)
        torch.set_num_threads(threads)
        said += f" (forked and sealed in {1000 * (time.perf_counter() - started):.0f} ms)"
    except Exception as error:  # noqa: BLE001 - never a harness less sealed than its level, silently
        with contextlib.suppress(OSError):
            _tell(conn, "broken", f"the harness could not be sealed ({level}{fallback}): "
                                  f"{error if isinstance(error, SetupError) else repr(error)}")
        os._exit(1)
    try:
        _tell(conn, "ready", said + fallback)
        _serve(harness, conn)
    finally:
        os._exit(0)


class HarnessProcess:
    """A TestHarness in a child process, for one notebook: `wait_ready`, then `start_cell` and `verdict`.

    It starts at once (building its prelude while the kernel starts); `wait_ready` is called before
    the notebook's clock starts, so the harness's start-up is never a student's time.

    The prelude (the course's imports and helper cells) is built with the worker's access. Then the
    process forks the harness that meets kernels and seals it first (a fresh, single-threaded
    process: every thread of a sealed process is sealed), at the strongest level that works here:

    - every level: it holds no descriptor but its pipe to the worker (no gradebook, queue, log or
      terminal: 0, 1 and 2 are /dev/null, its errors come back as messages), its cwd is /, it has
      a session of its own, PR_SET_NO_NEW_PRIVS, is not dumpable, keeps its RLIMIT_AS
      (HarnessSettings.memory_limit), makes no core file and dies with its parent. It binds and
      writes nothing: the worker makes each cell's listening socket and hands it over the pipe.
    - ``root`` (root, namespaces work): also PID 1 of a PID namespace of its own (no other process
      of the machine can be named, let alone signalled or traced, by it), its own network (no
      interface but a loopback that is down: no TCP, no abstract Unix socket), IPC, UTS and mount
      namespaces; its root is a new read-only file system holding only the system (/usr, /etc,
      /bin, /lib...), Python (sandbox._python_paths: the interpreter, even under /root, the venv,
      this package, Sandbox.read_only_paths), /dev/null & co and its own /proc. The course, the
      gradebooks, other submissions, /tmp, /run and the scratch folder do not exist there, and
      the old root is gone (pivot_root), so there is nothing to escape to. It runs as a uid of its
      own claimed like a kernel's (sandbox.claim_uid: no live kernel or other harness has it, so
      none can signal or trace it), with no capability (bounding set emptied) and RLIMIT_NPROC
      (Sandbox.max_processes beyond torch's threads). The uid is released when it is stopped.
    - ``user-namespaces`` (no root, unprivileged user namespaces work): the same namespaces and file
      system, in a user namespace of its own entered before the prelude (your uid mapped to
      itself), without capabilities. It runs as your uid, but it sees none of your processes nor
      any file it could write, and has no network.
    - ``limits-only`` (neither): the first point, and no capability. As root also the claimed uid
      (it may then not write what only root may, nor signal root's processes or kernels), unless
      Python lies in a folder closed to other uids (/root): with no mount namespace to expose it,
      lazy imports would fail, so it stays uid 0 without capabilities and `sealed` says so.
      Without root it can do what your account can (write your files, signal your processes, use
      the network): the weakest level, as for kernels.

    Root with a free uid gets ``root`` (``limits-only`` if no namespace can be made after the
    prelude); otherwise ``user-namespaces`` if Sandbox.user_namespaces and the system allow, else
    ``limits-only``. Should a step of the level chosen fail, the harness reports itself broken with
    the reason (the executor makes that a grader problem for the notebook) rather than meet a kernel
    less sealed; `sealed` says the level reached and, if it is weaker than wanted, why.

    Two more rules keep a subverted harness to its own verdicts: it tells the worker everything as
    JSON checked field by field (`_tell`, `_receive`: a pickle would run code in the worker), and
    the prelude runs with one torch thread (OpenMP's threads do not survive a fork: the sealed
    process starts them afresh), so the course's helper cells should not set torch's thread count.
    """

    def __init__(self, source_path, settings: HarnessSettings):
        sandbox = getattr(settings.parent, "sandbox", None)  # the executor's: same scratch folder and uids
        if not isinstance(sandbox, Sandbox):
            sandbox = Sandbox(parent=settings)
        self.uid: int | None = None
        uid_error = ""
        if os.geteuid() == 0:
            try:
                self.uid = claim_uid(sandbox)
            except (RuntimeError, OSError) as error:
                uid_error = str(error)
        setup = {name: getattr(settings, name) for name in ("memory_limit", "max_message_bytes", "max_session_bytes")}
        setup.update(worker=os.getpid(), uid=self.uid, uid_base=sandbox.uid, uid_error=uid_error,
                     paths=_python_paths(sandbox), user_namespaces=sandbox.user_namespaces,
                     max_processes=sandbox.max_processes)
        context = mp.get_context("fork")
        self._conn, child_conn = context.Pipe()
        self.process = context.Process(target=_child, daemon=True, name="grading-harness",
                                       args=(str(source_path), setup, child_conn))
        try:
            self.process.start()
        except BaseException:
            self._release()
            raise
        finally:
            child_conn.close()
        self.broken: str | None = None  # None until ready or broken; "" when ready
        self.sealed = ""  # once ready: the level it was sealed at, and how
        self._socket: str | None = None  # the listening socket of the cell started last

    def wait_ready(self, timeout: float = 300) -> str:
        """"" once the harness is ready, else why it is not."""
        if self.broken is None:
            kind, detail = self._receive(timeout) or ("broken", "the harness did not start")
            self.broken = "" if kind == "ready" else str(detail)
            self.sealed = str(detail) if kind == "ready" else ""
        return self.broken

    def _receive(self, timeout: float) -> tuple[str, object] | None:
        """The harness's next message, checked (see `_tell`); None if none came in time or it was not one."""
        if not self._conn.poll(max(0.0, timeout)):
            return None
        try:
            message = json.loads(self._conn.recv_bytes(MAX_MESSAGE))
        except (EOFError, OSError, ValueError, RecursionError):
            return None
        if type(message) is not dict or set(message) != {"kind", "detail"}:
            return None
        kind, detail = message["kind"], message["detail"]
        if kind in ("ready", "broken") and type(detail) is str or kind == "listening" and detail is None:
            return kind, detail
        if kind == "verdict" and type(detail) is dict and set(detail) == VERDICT_TYPES.keys() and all(
                type(detail[name]) in types for name, types in VERDICT_TYPES.items()):
            return kind, CellVerdict(**detail)
        return None

    def start_cell(self, grade_id: str, path: str, seconds: float) -> bool:
        """Ask for test `grade_id`, the kernel connecting at `path`; True once the harness holds the
        socket listening there (made here, so that the harness needs to write nowhere)."""
        if self.wait_ready() or not self.process.is_alive():
            return False
        self._remove_socket()
        try:
            server = listen(path)
        except OSError:
            return False
        self._socket = path
        try:
            self._conn.send(("run", grade_id, seconds))
            reduction.send_handle(self._conn, server.fileno(), self.process.pid)
        except OSError:
            return False
        finally:
            server.close()  # the harness's copy is the only one
        reply = self._receive(30)
        return reply is not None and reply[0] == "listening"

    def verdict(self, grade_id: str, timeout: float) -> CellVerdict | None:
        """The verdict of the cell started last, or None if the harness did not give one in time."""
        reply = self._receive(timeout)
        self._remove_socket()
        if reply is None or reply[0] != "verdict" or reply[1].grade_id != grade_id:
            return None
        return reply[1]

    def _remove_socket(self) -> None:
        if self._socket is not None:
            with contextlib.suppress(OSError):
                os.unlink(self._socket)
            self._socket = None

    def _release(self) -> None:
        if self.uid is not None:
            release_uid(self.uid)
            self.uid = None

    def stop(self) -> None:
        with contextlib.suppress(OSError, BrokenPipeError):
            self._conn.send(("stop",))
        self.process.join(timeout=5)
        if self.process.is_alive():
            self.process.kill()  # the sealed harness dies with it (PR_SET_PDEATHSIG)
            self.process.join()
        self._conn.close()
        self._remove_socket()
        self._release()
