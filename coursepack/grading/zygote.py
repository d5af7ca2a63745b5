"""A kernel factory: import torch & co. once, then fork a fresh, sealed kernel for every notebook.

Most of a notebook's grading time is start-up: Python, ipykernel and `import torch` (seconds of
CPU each). A worker therefore starts one zygote (the server below, inside the sandbox sandbox.py
chose), which imports the modules the course uses and forks, on request, one kernel per notebook.
Each kernel serves one notebook: before the fork it has run no student code, and when it ends
everything it started ends too.

A kernel is two processes, both forked before any student code runs:

    zygote ── supervisor: in the zygote's PID namespace, where the kernel cannot see or signal it
                  └── kernel: PID 1 of a PID namespace of its own, then ipykernel

The supervisor joins the kernel's cgroups (descriptors the grader opened: the zygote's sandbox has
no /sys/fs/cgroup), unshares the mount, PID, network, IPC and UTS namespaces and builds the
kernel's file system: its own tmpfs on /tmp, /var/tmp and /dev/shm; a tmpfs over the scratch
folder with only this kernel's folder bound back (read-only but for its ipc folder, so the
grader's sockets there cannot be replaced); a size-limited tmpfs as its job folder, filled with
the files handed in with the notebook (read through a descriptor: the course is not in sight).
The kernel mounts its own /proc, drops to an unprivileged uid (as root: a uid no other live kernel
has; otherwise uid 1000 of a user namespace of its own, mapped to the zygote's uid), sets its
rlimits and only then becomes ipykernel. When PID 1 of a namespace dies, Linux kills every process
in it, and nothing can fork into a dying namespace: a kill that cannot be outrun. The supervisor
waits for that, stops a kernel that runs more than `max_children` processes, and reports. Should
any step fail, the kernel does not start and the grader gets the reason.

Where no namespace can be made (no root, no user namespaces) the kernel gets a session of its
own, and the supervisor, a child subreaper to which every orphan of the kernel comes, kills its
descendants scan by scan until it has no child left: the weakest level (a cgroup, as root, still
kills them all at once).

The zygote keeps only the capabilities these steps need (sandbox.py). It speaks one JSON line per
request on a Unix socket; a spawn request may carry descriptors (SCM_RIGHTS), named in "fds":

    {"op": "spawn", "fds": ["cgroup", ..., "files"], ...}  -> {"pid": P} | {"error": why}
    {"op": "poll", "pid": P}                -> {"returncode": None | int, "reason": str}
    {"op": "signal", "pid": P, "signum": S} -> {}

P is the supervisor's pid: it ends once the kernel and everything it started have; signals go to
the kernel, and "reason" says why the supervisor stopped it, if it did.

`--probe` as the request's "run" makes a kernel that exits once it is set up: sandbox.isolation()
tries that to learn what works here. The client (`Zygote`, `ZygoteProvisioner`) follows the server.
"""
from __future__ import annotations

import atexit
import contextlib
import ctypes
import errno
import importlib
import json
import os
import resource
import select
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable

from jupyter_client.provisioning import LocalProvisioner

CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWIPC = 0x00020000, 0x04000000, 0x08000000
CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET = 0x10000000, 0x20000000, 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REMOUNT = 1, 2, 4, 8, 32
MS_BIND, MS_REC, MS_PRIVATE, MNT_DETACH = 4096, 16384, 1 << 18, 2
PR_SET_PDEATHSIG, PR_SET_DUMPABLE, PR_SET_CHILD_SUBREAPER, PR_SET_NO_NEW_PRIVS = 1, 4, 36, 38
LIMITS = {"as": resource.RLIMIT_AS, "nproc": resource.RLIMIT_NPROC, "fsize": resource.RLIMIT_FSIZE,
          "nofile": resource.RLIMIT_NOFILE, "cpu": resource.RLIMIT_CPU, "core": resource.RLIMIT_CORE}
KERNEL_ID = 1000  # the kernel's uid and gid inside a user namespace of its own
SETUP_TIMEOUT = 120  # seconds for the steps before the kernel's first line (copying its files included)

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
_libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]


class SetupError(Exception):
    """A step before the kernel's first line failed: the kernel must not start."""


def _check(result: int, what: str) -> None:
    if result != 0:
        raise SetupError(f"{what}: {os.strerror(ctypes.get_errno())}")


def _bytes(text: str | None) -> bytes | None:
    return None if text is None else os.fsencode(text)


def mount(target: str, fstype: str | None = None, source: str | None = None, flags: int = 0,
          data: str | None = None) -> None:
    _check(_libc.mount(_bytes(source), _bytes(target), _bytes(fstype), flags, _bytes(data)),
           f"mount {fstype or source} on {target}")


def unmount(target: str) -> None:
    _check(_libc.umount2(_bytes(target), MNT_DETACH), f"unmount {target}")


def tmpfs(target: str, size: int, mode: int) -> None:
    mount(target, "tmpfs", "tmpfs", MS_NOSUID | MS_NODEV, f"size={size},mode={mode:o}")


def _prctl(option: int, value: int) -> None:
    _check(_libc.prctl(option, value, 0, 0, 0), f"prctl {option}")


def _unshare(flags: int) -> None:
    _check(_libc.unshare(flags), "unshare namespaces")


def mapped_bytes() -> int:
    """The address space this process maps now (VmSize): RLIMIT_AS is set this much above the memory
    limit, so that a limit bounds what student code allocates, not the libraries imported before it
    (a CUDA build of torch maps over 3 GiB of them, a CPU build under 1 GiB)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    return 0


def _write(path: str, text: str) -> None:
    with open(path, "w") as file:
        file.write(text)


def _say(fd: int, line: str) -> None:
    """One line on a pipe (atomic below PIPE_BUF); ignored when the reader is gone."""
    try:
        os.write(fd, (line.replace("\n", " ")[:3000] + "\n").encode())
    except OSError:
        pass


def _read_line(fd: int, timeout: float) -> str:
    """The next line from a pipe, '' at its end or after `timeout` seconds."""
    data, deadline = b"", time.monotonic() + timeout
    while not data.endswith(b"\n"):
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            return ""
        chunk = os.read(fd, 4096)
        if not chunk:
            break
        data += chunk
    return data.decode(errors="replace").strip()


def _close_all_but(keep: set[int]) -> None:
    """Close every inherited descriptor (the zygote's socket, other kernels' pipes) but `keep`."""
    start = 3
    for fd in sorted(fd for fd in keep if fd >= 3):
        os.closerange(start, fd)
        start = fd + 1
    os.closerange(start, resource.getrlimit(resource.RLIMIT_NOFILE)[0])


# -- the supervisor: the kernel's file system, namespaces and cgroups ---------------------------

def _own_user_namespace() -> None:
    """Without root: a user namespace in which this process may make the others (its uid 0 is you)."""
    uid, gid = os.geteuid(), os.getegid()
    _prctl(PR_SET_DUMPABLE, 1)  # a non-dumpable process's /proc/self/uid_map is root's: it could not map itself
    _unshare(CLONE_NEWUSER)
    _write("/proc/self/uid_map", f"0 {uid} 1")
    _write("/proc/self/setgroups", "deny")
    _write("/proc/self/gid_map", f"0 {gid} 1")


def _expose(paths: list[str]) -> None:
    """Folders the kernel must read but its uid could not reach (a venv under /root, mode 700): a
    tmpfs over the closed folder with just these bound back read-only, as bubblewrap does."""
    closed: dict[str, list[str]] = {}
    for path in paths:
        parts = path.split("/")
        for depth in range(2, len(parts)):
            ancestor = "/".join(parts[:depth])
            if not os.stat(ancestor).st_mode & 0o001:
                closed.setdefault(ancestor, []).append(path)
                break
    for ancestor, inside in closed.items():
        kept = [(path, os.open(path, os.O_PATH | os.O_DIRECTORY)) for path in inside]
        tmpfs(ancestor, 2**20, 0o755)
        for path, fd in kept:
            os.makedirs(path, exist_ok=True)
            bind(fd, path, read_only=True, executable=True)  # shared libraries are mapped executable
            os.close(fd)


def bind(fd: int, target: str, read_only: bool, executable: bool = False) -> None:
    """Bind the folder open as `fd` (opened in this mount namespace) on `target`."""
    mount(target, source=f"/proc/self/fd/{fd}", flags=MS_BIND)
    flags = MS_BIND | MS_REMOUNT | MS_NOSUID | MS_NODEV | (0 if executable else MS_NOEXEC) | (MS_RDONLY * read_only)
    mount(target, flags=flags)


def _build_file_system(request: dict) -> None:
    """The kernel's view: private scratch space, and of the grader's folders only its own."""
    mount("/", flags=MS_REC | MS_PRIVATE)  # nothing mounted here may show up outside
    kernel_dir, ipc_dir, jobdir = request["kernel_dir"], request["ipc_dir"], request["jobdir"]
    kept = {path: os.open(path, os.O_PATH | os.O_DIRECTORY) for path in (kernel_dir, ipc_dir)}
    if request["uid"] is not None:
        _expose(request["python_paths"])
    shared = [path for path in ("/tmp", "/var/tmp", "/dev/shm") if os.path.isdir(path)]
    # Python's own folders under them (a venv in /tmp) are bound back, read-only, into the kernel's copies.
    python = [(path, os.open(path, os.O_PATH | os.O_DIRECTORY)) for path in request["python_paths"]
              if any(path.startswith(folder + "/") for folder in shared)]
    for folder in shared:  # places every process may write: its own copies
        tmpfs(folder, request["tmp_size"], 0o1777)
    for path, fd in python:
        os.makedirs(path, mode=0o755, exist_ok=True)
        bind(fd, path, read_only=True, executable=True)
        os.close(fd)
    scratch = request["scratch"]
    if os.path.isdir(scratch):  # not under /tmp: hide every other kernel's folder under a tmpfs
        tmpfs(scratch, 2**20, 0o755)
    os.makedirs(kernel_dir, mode=0o755)
    bind(kept[kernel_dir], kernel_dir, read_only=True)
    bind(kept[ipc_dir], ipc_dir, read_only=False)
    tmpfs(jobdir, request["job_size"], 0o700)
    for fd in kept.values():
        os.close(fd)


def _copy_into(source: int, target: str, uid: int | None) -> None:
    """Regular files and folders under the folder open as `source`, owned by `uid`: no links, no
    hidden folders and no notebooks (graded ones hold the hidden tests)."""
    for entry in os.scandir(source):
        path = os.path.join(target, entry.name)
        if entry.is_file(follow_symlinks=False) and not entry.name.endswith(".ipynb"):
            fd = os.open(entry.name, os.O_RDONLY | os.O_NOFOLLOW, dir_fd=source)
            with open(fd, "rb") as reading, open(path, "xb") as writing:
                shutil.copyfileobj(reading, writing, 2**20)
                if uid is not None:
                    os.fchown(writing.fileno(), uid, uid)
        elif entry.is_dir(follow_symlinks=False) and not entry.name.startswith("."):
            os.mkdir(path, 0o755)
            fd = os.open(entry.name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=source)
            try:
                _copy_into(fd, path, uid)
            finally:
                os.close(fd)
            if uid is not None:  # after its contents: without CAP_DAC_OVERRIDE root may not write in it then
                os.chown(path, uid, uid)


def _fill_job_folder(request: dict, files: int | None, fonts: int | None) -> None:
    """The job folder: the font cache and the files handed in; then (as root) given to the kernel's uid."""
    jobdir, uid = request["jobdir"], request["uid"]
    cache = os.path.join(jobdir, ".config", "matplotlib")
    os.makedirs(cache, 0o755)
    try:
        if fonts is not None:  # the grader's font cache: no kernel spends seconds rebuilding it
            _copy_into(fonts, cache, uid)
        if files is not None:
            _copy_into(files, jobdir, uid)
    except OSError as error:
        if error.errno in (errno.ENOSPC, errno.EFBIG):
            limit = f" of {request['job_size'] // 2**20} MiB" if request["namespaces"] else ""
            raise SetupError(f"the files handed in with the notebook do not fit in its job folder{limit}") from error
        raise SetupError(f"cannot copy the files handed in with the notebook ({error})") from error
    if uid is not None:  # last: without CAP_DAC_OVERRIDE this process may not write in a folder of another uid
        for folder in (cache, os.path.dirname(cache), jobdir):
            os.chown(folder, uid, uid)


def _supervisor(request: dict, fds: dict[str, list[int]], report: int, zygote: int) -> None:
    """The forked child of the zygote: set the kernel up, fork it, watch it. Never returns."""
    try:
        _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)  # the zygote gone, so is the kernel
        if os.getppid() != zygote:
            os._exit(1)
        for fd in fds.get("cgroup", []):
            os.write(fd, b"0")  # this process, and so everything it starts, joins the kernel's cgroup
            os.close(fd)
        fonts = os.open(request["fonts"], os.O_RDONLY | os.O_DIRECTORY) if os.path.isdir(request["fonts"]) else None
        if request["namespaces"]:
            if os.geteuid() != 0:
                _own_user_namespace()
            _unshare(CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS)
            _build_file_system(request)
        else:
            _prctl(PR_SET_CHILD_SUBREAPER, 1)  # orphans of the kernel become this process's children
        _fill_job_folder(request, (fds.get("files") or [None])[0], fonts)
        lifeline, alive = os.pipe()  # the kernel sees its end close if this process dies
        ready_r, ready_w = os.pipe()
        kernel = os.fork()
        if kernel == 0:
            os.close(alive)
            os.close(ready_r)
            _kernel(request, ready_w, lifeline)
        os.close(lifeline)
        os.close(ready_w)
        answer = _read_line(ready_r, SETUP_TIMEOUT)
        if answer != "ready":
            os.kill(kernel, signal.SIGKILL)
            os.waitpid(kernel, 0)
            raise SetupError(answer or "the kernel ended before it was ready")
    except Exception as error:  # noqa: BLE001 - whatever it was, the kernel does not start
        _say(report, f"failed {error if isinstance(error, SetupError) else repr(error)}")
        os._exit(1)
    _say(report, f"ready {kernel}")
    os._exit(_supervise(kernel, request, report))


def _live() -> dict[int, tuple[int, int]]:
    """Every live process in this /proc (zombies are dead): its parent and process group."""
    found: dict[int, tuple[int, int]] = {}
    for name in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{name}/stat") as stat:
                state, ppid, group = stat.read().rsplit(")", 1)[1].split()[:3]
        except (OSError, ValueError):
            continue
        if state != "Z":
            found[int(name)] = (int(ppid), int(group))
    return found


def _count(namespaces: bool) -> int:
    """The kernel's processes: all in its /proc (its PID namespace), or this one's descendants."""
    return len(_live()) if namespaces else len(_descendants())


def _descendants() -> dict[int, int]:
    """Live descendants of this process (a child subreaper: orphans of the kernel are its children
    too), each with its process group."""
    parents = _live()
    found: dict[int, int] = {}
    frontier = {os.getpid()}
    while frontier:
        children = {pid: group for pid, (ppid, group) in parents.items() if ppid in frontier}
        found.update(children)
        frontier = set(children)
    return found


def _kill_descendants(timeout: float = 10) -> None:
    """Without a PID namespace: every orphan comes to this process, so none is left alive once it
    has no child at all. Each round kills what a scan of /proc finds, with their process groups (a
    fork cannot slip out of a group's kill); a process that forks between scans is caught by a later one."""
    own_group, deadline = os.getpgid(0), time.monotonic() + timeout
    while time.monotonic() < deadline:
        for pid, group in _descendants().items():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            if group != own_group:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(group, signal.SIGKILL)
        try:
            while os.waitpid(-1, os.WNOHANG)[0]:
                pass
        except ChildProcessError:
            return


def _supervise(kernel: int, request: dict, report: int) -> int:
    """Wait for the kernel, stopping it if it runs too many processes; its exit code (128 + signal)."""
    namespaces, most = request["namespaces"], request["max_children"]
    watch = os.pidfd_open(kernel)
    status = None
    while status is None:
        select.select([watch], [], [], 0.25)
        while True:  # reap the kernel and, without namespaces, the orphans handed to this process
            try:
                pid, code = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            if pid == kernel:
                status = code
        if status is None and _count(namespaces) > most:
            _say(report, f"stopped it started more than {most} processes (a fork bomb?) and was stopped")
            os.kill(kernel, signal.SIGKILL)
    if not namespaces:  # no namespace took its processes with it
        _kill_descendants()
    code = os.waitstatus_to_exitcode(status)
    return code if code >= 0 else 128 - code


# -- the kernel: PID 1 of its namespace, unprivileged, limited, then ipykernel --------------------

class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


def _drop_capabilities() -> None:
    """None left: in a new user namespace a process holds all of them whatever its uid."""
    _check(_libc.capset(ctypes.byref(_CapHeader(0x20080522, 0)), (_CapData * 2)()), "drop capabilities")


def _drop_privileges(uid: int | None) -> None:
    """As root: `uid` (changing all three uids drops every capability). Otherwise uid 1000 of a user
    namespace of its own, without capabilities, which outside is the zygote's uid."""
    if uid is None:
        outer_uid, outer_gid = os.geteuid(), os.getegid()
        _prctl(PR_SET_DUMPABLE, 1)  # (as above)
        _unshare(CLONE_NEWUSER)
        _write("/proc/self/uid_map", f"{KERNEL_ID} {outer_uid} 1")
        _write("/proc/self/setgroups", "deny")
        _write("/proc/self/gid_map", f"{KERNEL_ID} {outer_gid} 1")
        uid = KERNEL_ID
    else:
        os.setgroups([])
    os.setresgid(uid, uid, uid)
    os.setresuid(uid, uid, uid)
    _drop_capabilities()
    with open("/proc/self/status") as status:
        fields = dict(line.split(":", 1) for line in status)
    if any(int(fields[name], 16) for name in ("CapPrm", "CapEff", "CapAmb")) or os.getresuid() != (uid,) * 3:
        raise SetupError("the kernel kept privileges after dropping them")


def _kernel(request: dict, ready: int, lifeline: int) -> None:
    """The kernel's process, after the supervisor's fork. Never returns."""
    try:
        _close_all_but({ready, lifeline})
        if request["namespaces"]:
            mount("/proc", "proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)  # its own processes only
            _drop_privileges(request["uid"])
        else:
            os.setsid()
            if request["uid"] is not None:
                _drop_privileges(request["uid"])
        _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)  # (changing uid cleared it) the supervisor gone, so is this
        if select.select([lifeline], [], [], 0)[0]:
            os._exit(1)  # it went before the line above
        os.close(lifeline)
        _prctl(PR_SET_NO_NEW_PRIVS, 1)
        _prctl(PR_SET_DUMPABLE, 1)  # changing uid cleared it; its own /proc entries should be its own again
        for name, value in request["limits"].items():
            if name == "as":  # on top of what the zygote's imports map already
                value += mapped_bytes()
            hard = resource.getrlimit(LIMITS[name])[1]  # a lower hard limit here is stricter: kept
            value = value if hard == resource.RLIM_INFINITY else min(value, hard)
            resource.setrlimit(LIMITS[name], (value, value))
        os.chdir(request["jobdir"])
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        os.close(null)
        os.environ.clear()
        os.environ.update(request["env"])
    except BaseException as error:  # noqa: BLE001 - reported, and the kernel does not start
        _say(ready, str(error) if isinstance(error, SetupError) else f"{type(error).__name__}: {error}")
        os._exit(1)
    _say(ready, "ready")
    os.close(ready)
    try:
        if request.get("run") != "--probe":
            sys.argv = ["ipykernel_launcher", "-f", request["connection_file"], "--HistoryManager.hist_file=:memory:"]
            from ipykernel.kernelapp import launch_new_instance

            launch_new_instance()
    finally:
        os._exit(0)


# -- the server ---------------------------------------------------------------------------------

class _Kernels:
    """The zygote's kernels: supervisor pid -> the kernel's pid, the supervisor's pipe, how it ended."""

    def __init__(self):
        self.kernel: dict[int, int] = {}
        self.pipe: dict[int, int] = {}
        self.returncode: dict[int, int] = {}
        self.reason: dict[int, str] = {}

    def spawn(self, request: dict, fds: dict[str, list[int]], server: socket.socket) -> dict:
        report_r, report_w = os.pipe()
        zygote = os.getpid()
        pid = os.fork()
        if pid == 0:
            try:
                server.close()
                os.close(report_r)
                _close_all_but({report_w, *(fd for group in fds.values() for fd in group)})
                _supervisor(request, fds, report_w, zygote)
            finally:
                os._exit(1)  # never back into the server's loop
        os.close(report_w)
        answer = _read_line(report_r, SETUP_TIMEOUT)
        if answer.startswith("ready "):
            self.kernel[pid], self.pipe[pid] = int(answer.split()[1]), report_r
            return {"pid": pid}
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        os.close(report_r)
        return {"error": answer.removeprefix("failed ") or "the kernel's supervisor ended during start-up"}

    def signal(self, pid: int, signum: int) -> None:
        if pid in self.kernel and pid not in self.returncode:
            try:
                os.kill(self.kernel[pid], signum)
            except OSError:
                pass

    def poll(self, pid: int) -> dict:
        self.reap()
        if pid not in self.kernel:
            return {"returncode": 0, "reason": ""}
        return {"returncode": self.returncode.get(pid), "reason": self.reason.get(pid, "")}

    def reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            self.returncode[pid] = os.waitstatus_to_exitcode(status)
            if pid in self.pipe:
                pipe = self.pipe.pop(pid)
                os.set_blocking(pipe, False)
                try:
                    said = os.read(pipe, 65536).decode(errors="replace")
                except OSError:
                    said = ""
                os.close(pipe)
                stopped = [line[8:] for line in said.splitlines() if line.startswith("stopped ")]
                self.reason[pid] = stopped[0] if stopped else ""


def _receive(connection: socket.socket) -> tuple[dict, dict[str, list[int]]]:
    data, fds, _, _ = socket.recv_fds(connection, 1 << 16, 16)
    while data and not data.endswith(b"\n"):
        chunk = connection.recv(1 << 16)
        if not chunk:
            break
        data += chunk
    request = json.loads(data) if data else {}
    named: dict[str, list[int]] = {}
    for name, fd in zip(request.get("fds", []), fds, strict=False):
        named.setdefault(name, []).append(fd)
    return request, named


def serve(path: str, preload: list[str]) -> None:
    for name in preload:  # "package.module", or "package.name" from `from package import name`
        for candidate in (name, name.rpartition(".")[0]):
            try:
                importlib.import_module(candidate)
                break
            except Exception:  # noqa: BLE001 - what cannot be imported here is the notebook's business
                continue
    _prctl(PR_SET_DUMPABLE, 0)  # no process of the same uid may trace it
    grader = os.getppid()
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    os.chmod(path, 0o600)
    server.listen(8)
    server.settimeout(1)
    print("ready", flush=True)
    kernels = _Kernels()
    while True:
        try:
            connection, _ = server.accept()
        except TimeoutError:
            if os.getppid() != grader:
                return  # the grader died: so does this zygote, and with it (their PDEATHSIG) its kernels
            kernels.reap()
            continue
        connection.settimeout(None)
        with connection:
            request, fds = _receive(connection)
            try:
                if request.get("op") == "spawn":
                    reply = kernels.spawn(request, fds, server)
                elif request.get("op") == "signal":
                    kernels.signal(request["pid"], request["signum"])
                    reply = {}
                else:
                    reply = kernels.poll(request.get("pid", -1))
            finally:
                for group in fds.values():
                    for fd in group:
                        os.close(fd)
            connection.sendall((json.dumps(reply) + "\n").encode())
        kernels.reap()


# -- the client, in the grader --------------------------------------------------------------------

class Zygote:
    """A zygote process (the server above) and its folder, as the grader sees them.

    `shared(key, make)` keeps one per worker process and configuration, started on first use and
    restarted if it died; `stop_all` ends them (grading workers call it on their way out).
    """

    _shared: dict[tuple, Zygote] = {}

    @classmethod
    def shared(cls, key: tuple, make: Callable[[], Zygote]) -> Zygote:
        zygote = cls._shared.get(key)
        if zygote is None or not zygote.mine or zygote.process.poll() is not None:
            if zygote is not None:
                zygote.stop()  # (not one a forked process inherited: that one is its parent's)
            if not any(z.mine for z in cls._shared.values()):
                atexit.register(cls.stop_all)
            zygote = cls._shared[key] = make()
        return zygote

    @classmethod
    def stop_all(cls) -> None:
        """Stop this process's zygotes; a forked grading worker leaves its parent's alone."""
        for zygote in cls._shared.values():
            zygote.stop()
        cls._shared.clear()

    def __init__(self, command: list[str], env: dict[str, str], folder: str, preload: list[str],
                 on_stop: Callable[[], None]):
        """Run `command` (the sandbox around this module's server) with the socket in `folder`;
        `on_stop` removes the folder."""
        self.folder, self.on_stop = folder, on_stop
        self.owner = os.getpid()  # a forked child inherits this object, not the zygote: it must not stop it
        self.socket = os.path.join(folder, "zygote.sock")
        log = os.path.join(folder, "zygote.log")
        with open(log, "w") as errors:
            self.process = subprocess.Popen([*command, sys.executable, "-m", "coursepack.grading.zygote",
                                             self.socket, *preload], env=env, stdout=subprocess.PIPE,
                                            stderr=errors, stdin=subprocess.DEVNULL, start_new_session=True,
                                            text=True)
        ready = self.process.stdout.readline()
        if ready.strip() != "ready":
            with open(log) as errors:
                said = errors.read()[-600:].strip()
            self.stop()
            raise RuntimeError(f"the kernel zygote did not start (exit code {self.process.poll()}): {said}")

    def request(self, message: dict, fds: list[int] = ()) -> dict:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
            connection.settimeout(SETUP_TIMEOUT + 30)
            connection.connect(self.socket)
            socket.send_fds(connection, [(json.dumps(message) + "\n").encode()], list(fds))
            with connection.makefile() as stream:
                line = stream.readline()
        if not line:
            raise RuntimeError("the kernel zygote did not answer")
        return json.loads(line)

    def spawn(self, message: dict, fds: list[int], on_reason: Callable[[str], None]) -> _ZygoteChild:
        """Fork a kernel as `message` says; raises RuntimeError with the reason when it cannot start."""
        reply = self.request({"op": "spawn", **message}, fds)
        if "error" in reply:
            raise RuntimeError(reply["error"])
        return _ZygoteChild(self, reply["pid"], on_reason)

    @property
    def mine(self) -> bool:
        return self.owner == os.getpid()

    def stop(self) -> None:
        if not self.mine:  # in a forked child, poll() cannot see the zygote (not its child): it would
            return  # count as ended, and its folder, still in use by the parent, would be removed
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.process.stdout.close()
        if self.on_stop is not None:
            self.on_stop()
            self.on_stop = None


class _ZygoteChild:
    """What LocalProvisioner expects of a Popen, for a kernel forked by the zygote (its supervisor's pid).

    It has ended once its supervisor has: then its PID namespace is empty. `on_reason` hears why
    the supervisor stopped it, if it did.
    """

    stdin = stdout = stderr = None

    def __init__(self, zygote: Zygote, pid: int, on_reason: Callable[[str], None]):
        self.zygote, self.pid, self.on_reason = zygote, pid, on_reason

    def poll(self):
        try:
            reply = self.zygote.request({"op": "poll", "pid": self.pid})
        except (OSError, RuntimeError):
            return -9  # the zygote is gone, and with it (supervisors die with it) the kernel
        if reply.get("reason"):
            self.on_reason(reply["reason"])
        return reply["returncode"]

    def wait(self, timeout=None):
        deadline = None if timeout is None else time.monotonic() + timeout
        while (code := self.poll()) is None:
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired("kernel", timeout)
            time.sleep(0.02)
        return code

    def send_signal(self, signum):
        try:
            self.zygote.request({"op": "signal", "pid": self.pid, "signum": int(signum)})
        except (OSError, RuntimeError):
            pass

    def kill(self):
        self.send_signal(signal.SIGKILL)

    def terminate(self):
        self.send_signal(signal.SIGTERM)


class ZygoteProvisioner(LocalProvisioner):
    """Launch the kernel by asking the kernel manager's zygote to fork one (`km.spawn_request` says how)."""

    async def launch_kernel(self, cmd, **kwargs):
        km = self.parent
        message, fds = km.spawn_request(kwargs)
        try:
            self.process = km.zygote.spawn(message, fds, km.stopped_because)
        finally:
            for fd in fds:
                os.close(fd)
        self.pid, self.pgid, self.cwd = self.process.pid, None, None
        return self.connection_info


if __name__ == "__main__":
    serve(sys.argv[1], sys.argv[2:])
