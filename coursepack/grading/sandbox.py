"""Run each submission's kernel sealed off: from the course, from the network, from every other kernel.

Kernels are forked by a zygote (zygote.py: one per worker, which imported torch & co. once) and
each gets, before any student code runs, what this machine allows; `isolation()` finds that out
once, by starting a probe kernel, and states it as a list of guarantees that hold and that do not:

- ``bubblewrap`` (root, bwrap works): the zygote runs in bubblewrap (no network; only the system,
  Python and its own folder, read-only) as root with just the capabilities it needs to make
  kernels (SETUID, SETGID, KILL, SYS_ADMIN, CHOWN, DAC_READ_SEARCH). Each kernel: PID 1 of its own
  PID namespace (when it ends, everything it started ends), its own mount, network, IPC and UTS
  namespaces in which no other kernel's folders exist, a uid of its own (claimed with a lock, so
  no two live kernels on the machine share one), its job folder and /tmp size-limited tmpfs, and,
  where a cgroup controller is writable, a cgroup bounding the memory and tasks of the whole
  notebook, killed (frozen, then killed) when it ends (cgroups.py).
- ``root`` (root, no bwrap): the same per-kernel namespaces, uid and cgroup, but the zygote runs on
  the host (its capabilities cut down by setpriv) and a kernel reads what any user may read.
- ``user-namespaces`` (no root, bwrap works): bubblewrap in a user namespace; per-kernel namespaces
  as above, the kernel being uid 1000 of a user namespace of its own; no cgroup and no uid of its
  own: RLIMIT_AS per process, and the zygote stops a kernel that runs more than `max_children`
  processes.
- ``limits-only`` (no root, no bwrap): per-kernel namespaces too where user namespaces work, but the
  kernel reads and writes what you can; without them it runs as you in a session of its own, and
  its descendants are killed scan by scan when it ends.

Every level grades an honest notebook the same way: same limits, same environment, same files.

The grader and a kernel meet in the kernel's folder on the host (`bridge_dir`, the same path
inside): its connection file and ZMQ sockets in `kernel/` (the kernel's, writable), the grader's
bridge sockets beside it (read-only for the kernel, so it cannot replace them). As root all the
kernel folders of a zygote lie on a host tmpfs of `Sandbox.bridge_size`; without root, what a
kernel writes there is bounded by RLIMIT_FSIZE per file only. The job folder (`jobdir`, the
kernel's cwd and home) is a tmpfs that exists only inside the kernel's sandbox.

Every limit is a `Sandbox` trait, so `nbgrader_config.py` can set them (`c.Sandbox.memory_limit`).
"""
from __future__ import annotations

import contextlib
import fcntl
import functools
import os
import shutil
import stat
import subprocess
import sys
import sysconfig
import tempfile
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from jupyter_client.manager import AsyncKernelManager
from traitlets import Bool, Instance, Integer, List, Unicode, default
from traitlets.config import Configurable

from coursepack.grading import cgroups
from coursepack.grading.zygote import SetupError, Zygote, ZygoteProvisioner, tmpfs, unmount

GiB, MiB = 2**30, 2**20
# Environment passed into the kernel: everything else (tokens, database URLs, ...) stays outside.
PASSED_ENV = ("LANG", "LC_ALL", "TZ", "MPLBACKEND", "NBGRADER_EXECUTION", "COURSEPACK_OFFLINE", "COURSEPACK_QUICK",
              "OMP_NUM_THREADS", "MKL_NUM_THREADS", "PYTHONHASHSEED", "CI", "PYTHONPATH")
UID_SPAN = 1000  # kernel uids are claimed from Sandbox.uid .. Sandbox.uid + UID_SPAN - 1
# What the zygote needs as root: change uid, signal kernels, make namespaces and mounts, hand files over.
ZYGOTE_CAPS = ("setuid", "setgid", "kill", "sys_admin", "chown", "dac_read_search")


class Sandbox(Configurable):
    """Limits for one notebook's kernel (configurable as `c.Sandbox.<name>` in nbgrader_config.py)."""

    notebook_timeout = Integer(900, help="wall-clock seconds for a notebook; later cells fail").tag(config=True)
    memory_limit = Integer(4 * GiB, help="bytes: the memory of the whole notebook (a cgroup, where available) and "
                                         "the address space each of its processes may add to what the zygote's "
                                         "imports map (RLIMIT_AS)").tag(config=True)
    max_processes = Integer(256, help="tasks (processes and threads) of the notebook: its cgroup's pids.max and "
                                      "RLIMIT_NPROC of its own uid or user namespace").tag(config=True)
    max_file_size = Integer(256 * MiB, help="largest file the kernel may write (RLIMIT_FSIZE), bytes").tag(config=True)
    max_open_files = Integer(1024, help="RLIMIT_NOFILE").tag(config=True)
    job_size = Integer(256 * MiB, help="size of the kernel's job folder (its cwd and home, where the files handed "
                                       "in with the notebook are copied), a tmpfs: bytes").tag(config=True)
    tmp_size = Integer(256 * MiB, help="size of each of the kernel's own /tmp, /var/tmp and /dev/shm (tmpfs), bytes"
                       ).tag(config=True)
    bridge_size = Integer(8 * MiB, help="as root: size of the host tmpfs holding a zygote's kernel folders "
                                        "(connection files, ZMQ and bridge sockets), bytes").tag(config=True)
    max_output_bytes = Integer(4 * MiB, help="outputs kept per notebook; the rest is dropped").tag(config=True)
    max_children = Integer(16, help="processes (not threads) a kernel may run at once; more: it is stopped as a "
                                    "fork bomb").tag(config=True)
    threads = Integer(0, help="torch/OpenMP threads per kernel; 0: all cores (the grader sets cores / workers)"
                      ).tag(config=True)
    uid = Integer(61000, help="as root: the first of the unprivileged uids claimed, one per live kernel"
                  ).tag(config=True)
    scratch = Unicode(help="where zygote and kernel folders are made (short path: ipc socket paths are limited)"
                      ).tag(config=True)
    use_bwrap = Bool(True, help="use bubblewrap when it works; False forces the weaker levels").tag(config=True)
    user_namespaces = Bool(True, help="without root and bubblewrap: give each kernel user, PID and mount namespaces "
                                      "of its own when the system allows; False: limits only").tag(config=True)
    read_only_paths = List(Unicode(), help="extra host paths the kernel may read (e.g. a data cache)").tag(config=True)
    use_zygote = Bool(True, help="fork kernels from a process that imported `preload` once (zygote.py); "
                                 "False: a fresh zygote, importing nothing, for every kernel").tag(config=True)
    preload = List(Unicode(), ["torch", "numpy", "matplotlib", "sympy", "IPython", "ipykernel.kernelapp"],
                   help="modules the zygote imports before it forks kernels").tag(config=True)

    @default("scratch")
    def _scratch_default(self):
        mine = "coursepack-grading" if os.geteuid() == 0 else f"coursepack-grading-{os.geteuid()}"
        return os.path.join(tempfile.gettempdir(), mine)


# -- what this machine allows ---------------------------------------------------------------------

@dataclass(frozen=True)
class Guarantee:
    name: str
    holds: bool
    otherwise: str = ""  # why not, and what holds instead

    def __post_init__(self):
        if self.holds:
            object.__setattr__(self, "otherwise", "")

    def __str__(self):
        return f"{self.name}: yes" if self.holds else f"{self.name}: no ({self.otherwise})"


@dataclass(frozen=True)
class Isolation:
    """What the sandbox gives each kernel here (`dataclasses.asdict` makes a report of it)."""

    level: str  # "bubblewrap" | "root" | "user-namespaces" | "limits-only"
    bwrap: bool
    namespaces: bool  # each kernel gets PID, mount, network, IPC and UTS namespaces of its own
    cgroups: bool  # each kernel gets a memory and pids cgroup
    guarantees: tuple[Guarantee, ...]
    detail: str = field(init=False)  # one line: every guarantee, and whether it holds

    def __post_init__(self):
        summary = "; ".join(str(g) for g in self.guarantees)
        object.__setattr__(self, "detail", ("WEAKER ISOLATION: " if self.weaker else "") + summary)

    @property
    def weaker(self) -> bool:
        return self.level != "bubblewrap"

    @property
    def holds(self) -> list[str]:
        return [str(g) for g in self.guarantees if g.holds]

    @property
    def lacks(self) -> list[str]:
        return [str(g) for g in self.guarantees if not g.holds]

    def __str__(self):
        return "\n".join([f"isolation: {self.level}", *(f"  {g}" for g in self.guarantees)])


def _guarantees(root: bool, bwrap: bool, namespaces: bool, no_bwrap: str, no_namespaces: str,
                no_cgroup: str | None) -> tuple[Guarantee, ...]:
    who = "any user" if root else "you"
    return (
        Guarantee("own PID namespace per kernel: everything it started ends with it", namespaces,
                  f"{no_namespaces}: " + ("its cgroup is killed, which cannot be outrun" if no_cgroup is None else
                                          "its descendants are killed scan by scan, which a process re-forking "
                                          "fast enough may outrun")),
        Guarantee("no access to another kernel's connection file, job folder or processes", namespaces or root,
                  f"{no_namespaces}: every kernel runs as you"),
        Guarantee("distinct uid per kernel", root,
                  "no root: every kernel runs as you" + (", as uid 1000 of a user namespace of its own"
                                                         if namespaces else "")),
        Guarantee("no network", namespaces, no_namespaces),
        Guarantee("system read-only, course and other users' files out of sight", bwrap,
                  f"{no_bwrap}: it reads and writes what {who} can"),
        Guarantee("job folder and /tmp size-limited (tmpfs)", namespaces,
                  f"{no_namespaces}: RLIMIT_FSIZE per file only"),
        Guarantee("memory bounded per notebook (cgroup)", no_cgroup is None,
                  f"{no_cgroup}: RLIMIT_AS per process, and a kernel running more than Sandbox.max_children "
                  "processes is stopped"),
        Guarantee("tasks bounded per notebook", namespaces or root,
                  "RLIMIT_NPROC counts all your processes"),
        Guarantee("connection folder size-limited (host tmpfs)", root and namespaces,
                  "no root: RLIMIT_FSIZE per file only" if not root else no_namespaces),
    )


@functools.cache
def isolation(use_bwrap: bool = True, user_namespaces: bool = True) -> Isolation:
    """The strongest isolation that works here, found once by starting a probe kernel at each level."""
    root = os.geteuid() == 0
    sandbox = Sandbox(use_bwrap=use_bwrap, user_namespaces=user_namespaces)
    if not use_bwrap:
        no_bwrap = "bubblewrap disabled (Sandbox.use_bwrap = False)"
    elif not shutil.which("bwrap"):
        no_bwrap = "no bwrap (apt-get install bubblewrap)"
    else:
        no_bwrap = _probe(sandbox, bwrap=True, namespaces=True)
    bwrap = no_bwrap is None
    if bwrap:
        no_namespaces = ""
    elif not (root or user_namespaces):
        no_namespaces = "no root, and Sandbox.user_namespaces = False"
    else:
        no_namespaces = _probe(sandbox, bwrap=False, namespaces=True)
    namespaces = not no_namespaces
    if not namespaces and (failed := _probe(sandbox, bwrap=False, namespaces=False)):
        raise RuntimeError(f"no kernel can be started here: {failed}")
    no_cgroup = cgroups.unavailable()
    level = ("bubblewrap" if root else "user-namespaces") if bwrap else ("root" if root else "limits-only")
    return Isolation(level, bwrap, namespaces, no_cgroup is None,
                     _guarantees(root, bwrap, namespaces, no_bwrap or "", no_namespaces, no_cgroup))


def _probe(sandbox: Sandbox, bwrap: bool, namespaces: bool) -> str | None:
    """Why a kernel cannot be set up this way here (None: it can): a zygote forks one that exits at once."""
    try:
        zygote = _start_zygote(sandbox, bwrap, bounded=namespaces and os.geteuid() == 0, preload=[])
    except (RuntimeError, OSError) as error:
        return str(error)
    uid = claim_uid(sandbox) if os.geteuid() == 0 else None
    try:
        folder = _KernelFolder(zygote.folder, uid)
        message = _spawn_message(sandbox, folder, uid, namespaces, kernel_env(folder.jobdir), "", run="--probe")
        code = zygote.spawn(message, [], lambda reason: None).wait(timeout=30)
        return None if code == 0 else f"the probe kernel ended with {code}"
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as error:
        return str(error)
    finally:
        zygote.stop()
        if uid is not None:
            release_uid(uid)


# -- the zygote's sandbox ---------------------------------------------------------------------------

def _python_paths(sandbox: Sandbox) -> list[str]:
    """Folders the kernel's Python needs: the interpreter's installation, this environment, PYTHONPATH."""
    paths = {sys.base_prefix, sys.prefix, sysconfig.get_paths()["stdlib"], sysconfig.get_paths()["purelib"],
             *os.environ.get("PYTHONPATH", "").split(os.pathsep), *sandbox.read_only_paths}
    # An editable install of this package points into the repository: expose only the package.
    paths.add(str(Path(__file__).resolve().parent.parent))
    paths = {os.path.abspath(p) for p in paths if p and os.path.exists(p)}
    return sorted(p for p in paths if not any(p != q and p.startswith(q + os.sep) for q in paths))


def kernel_env(jobdir: str, threads: int = 0) -> dict[str, str]:
    """The kernel's whole environment: a home in its job folder and nothing of the grader's secrets.

    `threads` (if the grader's environment sets no OMP_NUM_THREADS): torch's threads per kernel, so
    that parallel workers do not oversubscribe the cores.
    """
    env = {name: os.environ[name] for name in PASSED_ENV if name in os.environ}
    if threads > 0 and "OMP_NUM_THREADS" not in env:
        env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(threads)
    env.update(HOME=jobdir, USER="student", LOGNAME="student", TMPDIR="/tmp",
               PATH=os.pathsep.join([str(Path(sys.executable).parent), "/usr/local/bin", "/usr/bin", "/bin"]),
               MPLCONFIGDIR=f"{jobdir}/.config/matplotlib", XDG_CACHE_HOME=f"{jobdir}/.cache",
               IPYTHONDIR=f"{jobdir}/.ipython", PYTHONDONTWRITEBYTECODE="1", PYTHONNOUSERSITE="1")
    env.setdefault("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    return env


def _ancestors(path: str) -> list[str]:
    parts = Path(path).parts
    return [str(Path(*parts[:i])) for i in range(2, len(parts))]


def _bwrap(sandbox: Sandbox, folder: str) -> list[str]:
    """bubblewrap around the zygote: no network, the system and Python read-only, `folder` writable."""
    if os.geteuid() == 0:  # root in the sandbox, with only the capabilities it needs to make kernels
        who = ["--cap-drop", "ALL", *(arg for cap in ZYGOTE_CAPS for arg in ("--cap-add", f"CAP_{cap.upper()}"))]
    else:  # uid 0 of a user namespace, able to make the kernels' namespaces inside it (CAP_SETFCAP: Linux
        # lets a kernel's user namespace map this uid 0 only if its creator had it)
        who = ["--unshare-user", "--uid", "0", "--gid", "0", "--cap-add", "CAP_SYS_ADMIN", "--cap-add", "CAP_SETFCAP"]
    args = [shutil.which("bwrap"), *who, "--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts",
            "--unshare-cgroup-try", "--die-with-parent", "--new-session", "--tmpfs", "/"]
    for name in ("usr", "etc"):
        args += ["--ro-bind", f"/{name}", f"/{name}"]
    for name in ("bin", "sbin", "lib", "lib64", "lib32", "libx32"):
        target = Path(f"/{name}")
        if target.is_symlink():
            args += ["--symlink", os.readlink(target), f"/{name}"]
        elif target.is_dir():
            args += ["--ro-bind", str(target), str(target)]
    # /tmp first: the zygote's folder usually lies under it. Each kernel mounts its own /tmp.
    args += ["--proc", "/proc", "--dev", "/dev", "--size", str(MiB), "--perms", "0755", "--tmpfs", "/tmp"]
    made = {"/usr", "/etc", "/tmp"}
    for path, how in [*((p, "--ro-bind") for p in _python_paths(sandbox)), (folder, "--bind")]:
        for parent in _ancestors(path):
            if parent not in made:
                args += ["--perms", "0755", "--dir", parent]
                made.add(parent)
        args += [how, path, path]
    return [*args, "--remount-ro", "/tmp", "--chdir", folder, "--"]


def _wrapper(sandbox: Sandbox, bwrap: bool, folder: str) -> list[str]:
    """The command line around the zygote: bubblewrap, or (root) setpriv keeping only what it needs."""
    if bwrap:
        return _bwrap(sandbox, folder)
    if os.geteuid() == 0:
        if not shutil.which("setpriv"):
            raise RuntimeError("no setpriv to cut the zygote's capabilities down (apt-get install util-linux)")
        return ["setpriv", "--inh-caps=-all", "--bounding-set=-all," + ",".join(f"+{c}" for c in ZYGOTE_CAPS), "--"]
    return []


def _scratch(sandbox: Sandbox) -> str:
    """The scratch folder, made if need be; it must be this account's and writable by no one else."""
    os.makedirs(sandbox.scratch, mode=0o711, exist_ok=True)
    info = os.lstat(sandbox.scratch)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid() or info.st_mode & 0o022:
        raise RuntimeError(f"{sandbox.scratch} must be a folder of this account that no one else may write")
    return sandbox.scratch


def _matplotlib_font_cache() -> list[Path]:
    """The grader's matplotlib font cache, copied into each job so no kernel spends seconds rebuilding it."""
    try:
        import matplotlib
        from matplotlib import font_manager  # noqa: F401 - importing builds the cache once
    except ImportError:
        return []
    return sorted(Path(matplotlib.get_cachedir()).glob("fontlist-*.json"))


def _start_zygote(sandbox: Sandbox, bwrap: bool, bounded: bool, preload: list[str]) -> Zygote:
    """A zygote in its own folder; `bounded` (root): the folder is a host tmpfs of Sandbox.bridge_size.

    The folder's lock (an flock held while the zygote lives) tells a later grader whether the
    folder is stale: left, maybe mounted, by a grader that was killed.
    """
    scratch = _scratch(sandbox)
    _remove_stale_folders(scratch)
    handle, lock = tempfile.mkstemp(prefix="z", suffix=".lock", dir=scratch)
    fcntl.flock(handle, fcntl.LOCK_EX)
    folder = lock.removesuffix(".lock")
    try:
        os.mkdir(folder, 0o711)  # only now: a folder whose lock is free is stale
        if bounded:
            tmpfs(folder, sandbox.bridge_size, 0o711)
        fonts = Path(folder, ".config", "matplotlib")
        fonts.mkdir(parents=True)
        for path in _matplotlib_font_cache():
            shutil.copy(path, fonts)
        command = _wrapper(sandbox, bwrap, folder)
    except (OSError, SetupError, RuntimeError) as error:
        _remove_folder(folder, bounded and os.path.ismount(folder), lock, handle)
        raise RuntimeError(f"cannot start a zygote: {error}") from error
    return Zygote(command, kernel_env(folder, sandbox.threads), folder, preload,
                  functools.partial(_remove_folder, folder, bounded, lock, handle))


def _remove_folder(folder: str, mounted: bool, lock: str, handle: int) -> None:
    if mounted:
        unmount(folder)
    shutil.rmtree(folder, ignore_errors=True)
    with contextlib.suppress(FileNotFoundError):  # (a zygote stopped twice: its lock is already gone)
        os.unlink(lock)
    os.close(handle)


def _remove_stale_folders(scratch: str) -> None:
    """Zygote folders (and their host tmpfs) whose grader died without removing them: their lock is free."""
    for lock in Path(scratch).glob("z*.lock"):
        try:
            handle = os.open(lock, os.O_RDWR)
        except FileNotFoundError:  # its zygote just stopped
            continue
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(handle)
            continue
        folder = str(lock).removesuffix(".lock")
        if os.path.isdir(folder):
            _remove_folder(folder, os.path.ismount(folder), str(lock), handle)
        else:  # its grader has locked it and not yet made the folder, or died in between: not ours to judge
            os.close(handle)


# -- one kernel -----------------------------------------------------------------------------------

_claimed: dict[int, object] = {}  # uid -> its lock file, held while a kernel of this process has it


def claim_uid(sandbox: Sandbox) -> int:
    """A kernel uid no other live kernel on this machine has: an flock on uid-N.lock in the scratch
    folder, held until `release_uid` (or this process's end)."""
    folder = _scratch(sandbox)
    for uid in range(sandbox.uid, sandbox.uid + UID_SPAN):
        if uid in _claimed:
            continue
        handle = open(os.path.join(folder, f"uid-{uid}.lock"), "w")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            continue
        _claimed[uid] = handle
        return uid
    raise RuntimeError(f"no free sandbox uid in {sandbox.uid}..{sandbox.uid + UID_SPAN - 1}")


def release_uid(uid: int) -> None:
    handle = _claimed.pop(uid, None)
    if handle is not None:
        handle.close()


class _KernelFolder:
    """A kernel's folder in its zygote's: the grader's (`bridge`, read-only for the kernel), with the
    kernel's connection file and ZMQ sockets in `kernel/` and its job folder's mount point `work/`."""

    def __init__(self, zygote_folder: str, uid: int | None):
        self.bridge = tempfile.mkdtemp(prefix="k", dir=zygote_folder)
        if uid is not None:  # the grader's (root's), but the kernel's group may enter it, and no other uid
            os.chown(self.bridge, 0, uid)
            os.chmod(self.bridge, 0o750)
        self.ipc, self.jobdir = os.path.join(self.bridge, "kernel"), os.path.join(self.bridge, "work")
        os.mkdir(self.ipc, 0o700)
        os.mkdir(self.jobdir, 0o700)  # the zygote's kernel fills it, then gives it to the kernel's uid
        if uid is not None:
            os.chown(self.ipc, uid, uid)


def _limits(sandbox: Sandbox, root: bool, namespaces: bool) -> dict[str, int]:
    """rlimits (CPU time generously above the wall-clock limit: that one is enforced outside)."""
    # RLIMIT_NPROC counts the tasks of a uid (per user namespace): the kernel's own, but for limits only.
    nproc = sandbox.max_processes if root or namespaces else sandbox.max_processes + _processes_of_this_user()
    return {"as": sandbox.memory_limit, "nproc": nproc, "fsize": sandbox.max_file_size,
            "nofile": sandbox.max_open_files, "cpu": 2 * sandbox.notebook_timeout + 60, "core": 0}


def _processes_of_this_user() -> int:
    uid = os.getuid()
    return sum(1 for p in Path("/proc").iterdir() if p.name.isdigit() and _owner(p) == uid)


def _owner(path: Path) -> int | None:
    """The real uid of process `path` (/proc/PID): from its status, as a non-dumpable process's folder is root's."""
    try:
        with open(path / "status") as status:
            for line in status:
                if line.startswith("Uid:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def _spawn_message(sandbox: Sandbox, folder: _KernelFolder, uid: int | None, namespaces: bool,
                   env: dict[str, str], connection_file: str, run: str = "ipykernel") -> dict:
    """What the zygote needs to set a kernel up (see zygote.py)."""
    return {"kernel_dir": folder.bridge, "ipc_dir": folder.ipc, "jobdir": folder.jobdir, "scratch": sandbox.scratch,
            "fonts": os.path.join(os.path.dirname(folder.bridge), ".config", "matplotlib"),
            "python_paths": _python_paths(sandbox), "uid": uid, "namespaces": namespaces,
            "tmp_size": sandbox.tmp_size, "job_size": sandbox.job_size,
            "limits": _limits(sandbox, uid is not None, namespaces), "max_children": sandbox.max_children,
            "connection_file": connection_file, "env": env, "run": run}


class SandboxKernelManager(AsyncKernelManager):
    """An AsyncKernelManager whose kernel a zygote forks, sealed as `isolation()` says, over ipc sockets.

    nbclient passes the notebook's folder as `cwd`: its non-notebook files are copied into the job
    folder (notebooks never are: graded ones hold the hidden tests), where the kernel starts.
    After `start_kernel`: `jobdir` (the kernel's cwd, a tmpfs inside its sandbox: an empty mount point
    on the host) and `bridge_dir` (a host folder, at the same path inside, where the grader may put
    Unix sockets for this kernel alone). `killed_because` says why the sandbox stopped the kernel.
    """

    sandbox = Instance(Sandbox)
    jobdir = Unicode("")
    bridge_dir = Unicode("")
    killed_because = Unicode("")
    zygote = None
    kernel_uid: int | None = None
    cgroup: cgroups.KernelCgroup | None = None
    _own_zygote = False
    _watching: tuple[threading.Thread, threading.Event] | None = None

    @default("sandbox")
    def _sandbox_default(self):
        return Sandbox(parent=self)

    @property
    def isolation(self) -> Isolation:
        return isolation(self.sandbox.use_bwrap, self.sandbox.user_namespaces)

    def _zygote(self) -> Zygote:
        """The worker's zygote for this configuration, or (use_zygote = False) a fresh one importing nothing."""
        sandbox, isolated = self.sandbox, self.isolation
        self._own_zygote = not sandbox.use_zygote
        preload = [] if self._own_zygote else list(sandbox.preload)
        start = functools.partial(_start_zygote, sandbox, isolated.bwrap, isolated.namespaces and os.geteuid() == 0,
                                  preload)
        if self._own_zygote:
            return start()
        key = (isolated.level, tuple(preload), tuple(sandbox.read_only_paths), sandbox.threads, sandbox.scratch,
               sandbox.bridge_size)
        return Zygote.shared(key, start)

    async def _async_pre_start_kernel(self, **kw):
        sandbox = self.sandbox
        self.killed_because = ""
        try:
            self.zygote = self._zygote()
            self.kernel_uid = claim_uid(sandbox) if os.geteuid() == 0 else None
            self._folder = _KernelFolder(self.zygote.folder, self.kernel_uid)
            self.bridge_dir, self.jobdir = self._folder.bridge, self._folder.jobdir
            if self.isolation.cgroups:
                self.cgroup = cgroups.create(sandbox.memory_limit, sandbox.max_processes)
        except Exception:
            self._release()
            raise
        self.transport = "ipc"
        self.ip = os.path.join(self._folder.ipc, "ipc")
        self.connection_file = os.path.join(self._folder.ipc, "connection.json")
        if self.provisioner is None:
            self.provisioner = ZygoteProvisioner(kernel_id=self.kernel_id or str(uuid.uuid4()),
                                                 kernel_spec=self.kernel_spec, parent=self)
        kernel_cmd, kw = await super()._async_pre_start_kernel(**kw)
        # The kernel interrupts itself on a control message: the grader does not signal into its sandbox.
        self.kernel_spec.interrupt_mode = "message"
        if self.kernel_uid is not None:
            os.chown(self.connection_file, self.kernel_uid, self.kernel_uid)
        kw["env"] = kernel_env(self.jobdir, sandbox.threads)
        return kernel_cmd, kw

    def spawn_request(self, kwargs: dict) -> tuple[dict, list[int]]:
        """For ZygoteProvisioner: the spawn message and the descriptors it carries (closed by the caller)."""
        source = kwargs.get("cwd")
        files = [os.open(source, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)] if source else []
        fds = (self.cgroup.join_files() if self.cgroup is not None else []) + files
        names = ["cgroup"] * (len(fds) - len(files)) + ["files"] * len(files)
        message = _spawn_message(self.sandbox, self._folder, self.kernel_uid, self.isolation.namespaces,
                                 kwargs["env"], self.connection_file)
        return {**message, "fds": names}, fds

    def stopped_because(self, reason: str) -> None:
        if not self.killed_because:
            self.killed_because = reason

    async def _async_launch_kernel(self, kernel_cmd, **kw):
        try:
            await super()._async_launch_kernel(kernel_cmd, **kw)
        except Exception:
            self._release()  # nbclient does not clean up after a kernel that did not start
            raise

    async def _async_post_start_kernel(self, **kw):
        await super()._async_post_start_kernel(**kw)
        if self.cgroup is not None:
            stop = threading.Event()
            watcher = threading.Thread(target=self._watch, args=(self.cgroup, stop), daemon=True)
            watcher.start()
            self._watching = watcher, stop

    def _watch(self, group: cgroups.KernelCgroup, stop: threading.Event) -> None:
        """Stop the whole notebook as soon as its memory limit kills any of its processes."""
        while not stop.wait(0.25):
            if group.oom_kills():
                self.stopped_because(f"the notebook used more than its {self.sandbox.memory_limit // MiB} MiB of "
                                     "memory and was stopped")
                group.kill()
                return

    def _release(self) -> None:
        """End everything of this kernel (idempotent): processes, cgroup, folder, uid, own zygote."""
        if self._watching is not None:
            watcher, stop = self._watching
            stop.set()
            watcher.join()
            self._watching = None
        process = getattr(self.provisioner, "process", None)
        if process is not None and process.poll() is None:
            process.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):  # then its cgroup's kill, below, must do
                process.wait(timeout=30)  # the supervisor ends once the kernel's PID namespace is empty
        if self.cgroup is not None:
            self.cgroup.kill()
            self.cgroup.remove()
            self.cgroup = None
        if self.bridge_dir:
            shutil.rmtree(self.bridge_dir, ignore_errors=True)
            self.bridge_dir = self.jobdir = ""
        if self.kernel_uid is not None:
            release_uid(self.kernel_uid)
            self.kernel_uid = None
        if self._own_zygote and self.zygote is not None:
            self.zygote.stop()
            self.zygote = None

    async def _async_cleanup_resources(self, restart: bool = False) -> None:
        await super()._async_cleanup_resources(restart=restart)
        self._release()

    # AsyncKernelManager binds its public names to KernelManager's functions, not to overrides.
    cleanup_resources = _async_cleanup_resources
