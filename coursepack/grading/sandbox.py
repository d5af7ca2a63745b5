"""Run each submission's kernel in a sandbox: limits, no network, unprivileged, blind to everything else.

The strongest isolation this machine allows is chosen once and reported (`isolation()`):

- ``bubblewrap``: `bwrap` puts the kernel in its own mount, PID, network, IPC and UTS namespaces
  (no network at all, `die-with-parent`, a new session so it cannot type into the grader's
  terminal); the file system it sees is the system, Python and the venv read-only, a private
  `/tmp` of bounded size and its own job folder; not the course, the gradebook, the exchange or any
  other submission. Inside, `setpriv` drops to an unprivileged uid of its own and `prlimit` caps
  memory, processes, CPU time, file size and open files (RLIMIT_NPROC is ignored for root, hence
  the uid). The kernel speaks ZMQ over ipc sockets in its job folder: a private network namespace
  cannot be reached over TCP.
- ``unprivileged``: no working `bwrap`; the kernel still runs as its own uid with the same limits,
  but shares the network and sees every world-readable file.
- ``limits-only``: neither `bwrap` nor root (an instructor's laptop): resource limits only.

Every limit is a `Sandbox` trait, so `nbgrader_config.py` can set them (`c.Sandbox.memory_limit`).

With bubblewrap and root, kernels are not started from scratch: each worker keeps one sandboxed
`Zygote` (zygote.py) that has imported `Sandbox.preload` and forks a kernel per notebook, which
drops to the worker's uid and its limits before it runs anything; `sweep` kills every process of
that uid before the next kernel and after each one.
"""
from __future__ import annotations

import atexit
import fcntl
import functools
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from jupyter_client.manager import AsyncKernelManager
from jupyter_client.provisioning import LocalProvisioner
from traitlets import Bool, Instance, Integer, List, Unicode, default
from traitlets.config import Configurable

GiB, MiB = 2**30, 2**20
# Environment passed into the kernel: everything else (tokens, database URLs, ...) stays outside.
PASSED_ENV = ("LANG", "LC_ALL", "TZ", "MPLBACKEND", "NBGRADER_EXECUTION", "COURSEPACK_OFFLINE", "COURSEPACK_QUICK",
              "OMP_NUM_THREADS", "MKL_NUM_THREADS", "PYTHONHASHSEED", "CI")


class Sandbox(Configurable):
    """Limits for one notebook's kernel (configurable as `c.Sandbox.<name>` in nbgrader_config.py)."""

    notebook_timeout = Integer(900, help="wall-clock seconds for a notebook; later cells fail").tag(config=True)
    memory_limit = Integer(4 * GiB, help="address space of the kernel (RLIMIT_AS), bytes").tag(config=True)
    max_processes = Integer(256, help="processes and threads of the kernel's uid (RLIMIT_NPROC)").tag(config=True)
    max_file_size = Integer(256 * MiB, help="largest file the kernel may write (RLIMIT_FSIZE), bytes").tag(config=True)
    max_open_files = Integer(1024, help="RLIMIT_NOFILE").tag(config=True)
    tmp_size = Integer(256 * MiB, help="size of the kernel's private /tmp, bytes").tag(config=True)
    max_output_bytes = Integer(4 * MiB, help="outputs kept per notebook; the rest is dropped").tag(config=True)
    max_children = Integer(16, help="processes (not threads) the kernel may run at once; more: killed as a "
                                    "fork bomb (only as root, where the kernel has a uid of its own)").tag(config=True)
    threads = Integer(0, help="torch/OpenMP threads per kernel; 0: all cores (the grader sets cores / workers)"
                      ).tag(config=True)
    uid = Integer(61000, help="unprivileged uid (and gid) the kernel runs as when the grader is root").tag(config=True)
    scratch = Unicode(help="where job folders are made (short path: ipc socket paths are limited)").tag(config=True)
    use_bwrap = Bool(True, help="use bubblewrap when it works; False forces the weaker modes").tag(config=True)
    read_only_paths = List(Unicode(), help="extra host paths the kernel may read (e.g. a data cache)").tag(config=True)
    use_zygote = Bool(True, help="fork kernels from a sandboxed process that imported `preload` once "
                                 "(zygote.py); False: start every kernel from scratch").tag(config=True)
    preload = List(Unicode(), ["torch", "numpy", "matplotlib", "sympy", "IPython", "ipykernel.kernelapp"],
                   help="modules the zygote imports before it forks kernels").tag(config=True)

    @default("scratch")
    def _scratch_default(self):
        return os.path.join(tempfile.gettempdir(), "coursepack-grading")


@dataclass(frozen=True)
class Isolation:
    level: str  # "bubblewrap" | "unprivileged" | "limits-only"
    detail: str

    @property
    def weaker(self) -> bool:
        return self.level != "bubblewrap"


def _python_paths() -> list[str]:
    """Folders the kernel's Python needs: the interpreter's installation and this environment."""
    paths = {sys.base_prefix, sys.prefix, sysconfig.get_paths()["stdlib"], sysconfig.get_paths()["purelib"]}
    # An editable install of this package points into the repository: expose only the package.
    paths.add(str(Path(__file__).resolve().parent.parent))
    return sorted(p for p in paths if p and not any(p != q and p.startswith(q + os.sep) for q in paths))


@functools.cache
def isolation(use_bwrap: bool = True) -> Isolation:
    """The strongest isolation that works here, tried once (a namespace test run of `bwrap`)."""
    root = os.geteuid() == 0
    bwrap, setpriv, prlimit = (shutil.which(name) for name in ("bwrap", "setpriv", "prlimit"))
    missing = [name for name, path in (("bubblewrap", bwrap), ("util-linux (setpriv, prlimit)", setpriv and prlimit))
               if not path]
    if use_bwrap and bwrap and prlimit and (setpriv or not root):
        probe = [bwrap, *_namespaces(root), "--ro-bind", "/", "/", "--", "true"]
        result = subprocess.run(probe, capture_output=True, text=True)
        if result.returncode == 0:
            return Isolation("bubblewrap", "bubblewrap: no network, private PID/IPC/mount namespaces, read-only "
                                           "system, only its job folder writable"
                                           + (", unprivileged uid" if root else "") + ", resource limits")
        reason = f"bwrap does not work here ({result.stderr.strip()[:200]})"
    elif not use_bwrap:
        reason = "bubblewrap disabled (Sandbox.use_bwrap = False)"
    else:
        reason = "missing " + ", ".join(missing) + " (apt-get install bubblewrap util-linux)"
    if root and setpriv and prlimit:
        # Outside a sandbox another uid must be able to run this Python (not so when it lives under /root).
        runs = subprocess.run([setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", "--no-new-privs",
                               prlimit, "--nofile=1024", "--", sys.executable, "-c", "import ipykernel"],
                              capture_output=True)
        if runs.returncode == 0:
            return Isolation("unprivileged", f"WEAKER ISOLATION: {reason}; kernels run as an unprivileged uid with "
                                             "resource limits but share the network and can read world-readable "
                                             "files")
        reason += f"; and another uid cannot run {sys.executable}"
    who = "root" if root else "you"
    return Isolation("limits-only", f"WEAKER ISOLATION: {reason}; kernels run as {who} with resource limits only")


def _namespaces(root: bool) -> list[str]:
    # As root, no user namespace: the kernel must keep a real unprivileged uid for RLIMIT_NPROC to count.
    spaces = ["--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts", "--unshare-cgroup-try"]
    return spaces if root else ["--unshare-user", *spaces]


def _ancestors(path: str) -> list[str]:
    parts = Path(path).parts
    return [str(Path(*parts[:i])) for i in range(2, len(parts))]


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


def limits(sandbox: Sandbox, root: bool) -> list[str]:
    """prlimit options (CPU time generously above the wall-clock limit: that one is enforced outside)."""
    nproc = sandbox.max_processes if root else sandbox.max_processes + _processes_of_this_user()
    return [f"--as={sandbox.memory_limit}", f"--nproc={nproc}", f"--fsize={sandbox.max_file_size}",
            f"--nofile={sandbox.max_open_files}", f"--cpu={2 * sandbox.notebook_timeout + 60}", "--core=0"]


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


def _bwrap(sandbox: Sandbox, writable: str, env: dict[str, str], read_only_tmp: bool = False) -> list[str]:
    """bwrap options: namespaces, the system and Python read-only, `writable` the one writable folder."""
    root = os.geteuid() == 0
    args = [shutil.which("bwrap"), *_namespaces(root), "--die-with-parent", "--new-session", "--clearenv",
            "--tmpfs", "/"]
    for name in ("usr", "etc"):
        args += ["--ro-bind", f"/{name}", f"/{name}"]
    for name in ("bin", "sbin", "lib", "lib64", "lib32", "libx32"):
        target = Path(f"/{name}")
        if target.is_symlink():
            args += ["--symlink", os.readlink(target), f"/{name}"]
        elif target.is_dir():
            args += ["--ro-bind", str(target), str(target)]
    # /tmp first: the job folder usually lies under it and is bound on top of this private one.
    args += ["--proc", "/proc", "--dev", "/dev", "--size", str(sandbox.tmp_size), "--perms", "1777",
             "--tmpfs", "/tmp"]
    made = {"/usr", "/etc", "/tmp"}
    binds = [(p, "--ro-bind") for p in [*_python_paths(), *sandbox.read_only_paths] if os.path.exists(p)]
    for path, how in [*binds, (writable, "--bind")]:
        for parent in _ancestors(path):
            if parent not in made:
                args += ["--perms", "0755", "--dir", parent]
                made.add(parent)
        args += [how, path, path]
    if read_only_tmp:
        args += ["--remount-ro", "/tmp"]
    args += ["--chdir", writable]
    for name, value in env.items():
        args += ["--setenv", name, value]
    return args


def wrap(cmd: list[str], jobdir: str, sandbox: Sandbox, uid: int) -> list[str]:
    """`cmd` (the kernel's command line) run inside the sandbox with the job folder as its only writable place."""
    root = os.geteuid() == 0
    level = isolation(sandbox.use_bwrap).level
    env = kernel_env(jobdir, sandbox.threads)
    drop = ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--no-new-privs"] if root else []
    limited = ["prlimit", *limits(sandbox, root), "--"]
    if level == "bubblewrap":
        return [*_bwrap(sandbox, jobdir, env), "--", *drop, *limited, *cmd]
    if level == "unprivileged":
        return ["env", "-i", *(f"{k}={v}" for k, v in env.items()), *drop, *limited, *cmd]
    return ["env", "-i", *(f"{k}={v}" for k, v in env.items()), *limited, *cmd]


def _matplotlib_font_cache() -> list[Path]:
    """The grader's matplotlib font cache, copied into each job so no kernel spends seconds rebuilding it."""
    try:
        import matplotlib
        from matplotlib import font_manager  # noqa: F401 - importing builds the cache once
    except ImportError:
        return []
    return sorted(Path(matplotlib.get_cachedir()).glob("fontlist-*.json"))


def _copy_files(source: Path, target: Path) -> None:
    """Regular files only (no notebooks, links, sockets or hidden folders): what a kernel may see of a submission."""
    for entry in os.scandir(source):
        if entry.is_file(follow_symlinks=False) and not entry.name.endswith(".ipynb"):
            shutil.copyfile(entry.path, target / entry.name)
        elif entry.is_dir(follow_symlinks=False) and not entry.name.startswith("."):
            (target / entry.name).mkdir()
            _copy_files(Path(entry.path), target / entry.name)


_claimed: list = []  # lock files held for this process's lifetime


def claim_uid(sandbox: Sandbox, span: int = 1000) -> int:
    """A kernel uid no other live grader on this machine holds (sweep() kills everything of a uid)."""
    os.makedirs(sandbox.scratch, mode=0o711, exist_ok=True)
    for uid in range(sandbox.uid, sandbox.uid + span):
        handle = open(os.path.join(sandbox.scratch, f"uid-{uid}.lock"), "w")  # held until this process exits
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            continue
        _claimed.append(handle)
        return uid
    raise RuntimeError(f"no free sandbox uid in {sandbox.uid}..{sandbox.uid + span - 1}")


def sweep(uid: int) -> None:
    """Kill every process of a kernel uid (the uid is the sandbox's own: nothing else runs as it)."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and _owner(entry) == uid:
            try:
                os.kill(int(entry.name), signal.SIGKILL)
            except OSError:
                pass


def _limit_values(sandbox: Sandbox, root: bool) -> dict[str, int]:
    return {option[2:].split("=")[0]: int(option.split("=")[1]) for option in limits(sandbox, root)}


class Zygote:
    """One sandboxed zygote.py per worker process and uid; started on first use, restarted if it died."""

    _running: dict[int, Zygote] = {}

    @classmethod
    def get(cls, sandbox: Sandbox, uid: int) -> Zygote:
        zygote = cls._running.get(uid)
        if zygote is None or zygote.process.poll() is not None:
            if zygote is not None:
                zygote.stop()
            zygote = cls._running[uid] = cls(sandbox, uid)
            if len(cls._running) == 1:
                atexit.register(cls.stop_all)
        return zygote

    @classmethod
    def stop_all(cls) -> None:
        for zygote in cls._running.values():
            zygote.stop()
        cls._running.clear()

    def __init__(self, sandbox: Sandbox, uid: int):
        os.makedirs(sandbox.scratch, mode=0o711, exist_ok=True)
        self.folder = tempfile.mkdtemp(prefix="z", dir=sandbox.scratch)
        os.chmod(self.folder, 0o711)
        self.socket = os.path.join(self.folder, "zygote.sock")
        env = kernel_env(self.folder, sandbox.threads)
        cmd = [sys.executable, "-m", "coursepack.grading.zygote", self.socket, *sandbox.preload]
        if os.geteuid() == 0:  # root in the sandbox, only able to change uid (kernels drop to theirs) and to
            # signal them (kill, reap): it sees nothing but its own sandbox
            caps = ["--cap-drop", "ALL", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID", "--cap-add", "CAP_KILL"]
            cmd = [*_bwrap(sandbox, self.folder, env, read_only_tmp=True), *caps, "--", *cmd]
        else:
            cmd = [*_bwrap(sandbox, self.folder, env, read_only_tmp=True), "--", *cmd]
        self.process = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                        stdin=subprocess.DEVNULL, start_new_session=True, text=True)
        ready = self.process.stdout.readline()
        if ready.strip() != "ready":
            self.stop()
            raise RuntimeError(f"the kernel zygote did not start (exit code {self.process.poll()})")

    def request(self, **message) -> dict:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
            connection.settimeout(60)
            connection.connect(self.socket)
            connection.sendall((json.dumps(message) + "\n").encode())
            with connection.makefile() as stream:
                line = stream.readline()
        if not line:
            raise RuntimeError("the kernel zygote did not answer")
        return json.loads(line)

    def job_folder(self) -> str:
        return tempfile.mkdtemp(prefix="k", dir=self.folder)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        shutil.rmtree(self.folder, ignore_errors=True)


class _ZygoteChild:
    """What LocalProvisioner expects of a Popen, for a kernel forked by the zygote."""

    stdin = stdout = stderr = None

    def __init__(self, zygote: Zygote, pid: int):
        self.zygote, self.pid = zygote, pid

    def poll(self):
        try:
            return self.zygote.request(op="poll", pid=self.pid)["returncode"]
        except (OSError, RuntimeError):
            return -9  # the zygote is gone, and with it (die-with-parent, PID namespace) the kernel

    def wait(self, timeout=None):
        while (code := self.poll()) is None:
            time.sleep(0.05)
        return code

    def send_signal(self, signum):
        try:
            self.zygote.request(op="signal", pid=self.pid, signum=int(signum))
        except (OSError, RuntimeError):
            pass

    def kill(self):
        self.send_signal(signal.SIGKILL)

    def terminate(self):
        self.send_signal(signal.SIGTERM)


class ZygoteProvisioner(LocalProvisioner):
    """Launch the kernel by asking the worker's zygote to fork one, instead of by Popen."""

    async def launch_kernel(self, cmd, **kwargs):
        km = self.parent
        zygote = km.zygote
        reply = zygote.request(op="spawn", connection_file=km.connection_file, cwd=kwargs["cwd"],
                               env=kwargs["env"], uid=km.kernel_uid, limits=_limit_values(km.sandbox, True))
        self.process = _ZygoteChild(zygote, reply["pid"])
        self.pid, self.pgid, self.cwd = reply["pid"], None, kwargs["cwd"]
        return self.connection_info


class SandboxKernelManager(AsyncKernelManager):
    """An AsyncKernelManager whose kernel runs sandboxed in a fresh job folder, over ipc sockets.

    With bubblewrap, as root, the kernel is forked by the worker's zygote (zygote.py) inside its
    sandbox; otherwise it is started from scratch inside a sandbox of its own (`wrap`). nbclient
    passes the notebook's folder as `cwd`: its non-notebook files are copied into the job folder
    (notebooks never are: graded ones hold the hidden tests) and the kernel starts there.
    """

    sandbox = Instance(Sandbox)
    uid = Integer(-1, help="uid for this kernel; -1: Sandbox.uid").tag(config=True)
    jobdir = Unicode("")
    killed_because = Unicode("")
    zygote = None

    @default("sandbox")
    def _sandbox_default(self):
        return Sandbox(parent=self)

    @property
    def kernel_uid(self) -> int:
        return self.sandbox.uid if self.uid < 0 else self.uid

    def _use_zygote(self) -> bool:
        sandbox = self.sandbox
        return (sandbox.use_zygote and os.geteuid() == 0 and isolation(sandbox.use_bwrap).level == "bubblewrap")

    async def _async_pre_start_kernel(self, **kw):
        sandbox, uid = self.sandbox, self.kernel_uid
        if self._use_zygote():
            sweep(uid)  # nothing of an earlier kernel of this uid may see this one
            self.zygote = Zygote.get(sandbox, uid)
            self.jobdir = self.zygote.job_folder()
        else:
            os.makedirs(sandbox.scratch, mode=0o711, exist_ok=True)
            self.jobdir = tempfile.mkdtemp(prefix="k", dir=sandbox.scratch)
        source = kw.get("cwd")
        if source and os.path.isdir(source):
            _copy_files(Path(source), Path(self.jobdir))
        cache = Path(self.jobdir, ".config", "matplotlib")
        cache.mkdir(parents=True)
        for path in _matplotlib_font_cache():
            shutil.copy(path, cache)
        Path(self.jobdir, "tmp").mkdir()
        self.transport = "ipc"
        self.ip = os.path.join(self.jobdir, "kernel")
        self.connection_file = os.path.join(self.jobdir, "kernel.json")
        if self.zygote is not None and self.provisioner is None:
            self.provisioner = ZygoteProvisioner(kernel_id=self.kernel_id or str(uuid.uuid4()),
                                                 kernel_spec=self.kernel_spec, parent=self)
        kernel_cmd, kw = await super()._async_pre_start_kernel(**kw)
        # The kernel interrupts itself on a control message: a signal would only reach bwrap.
        self.kernel_spec.interrupt_mode = "message"
        if os.geteuid() == 0:
            for folder, dirs, files in os.walk(self.jobdir):
                for name in [folder, *(os.path.join(folder, n) for n in dirs + files)]:
                    os.chown(name, uid, uid, follow_symlinks=False)
        os.chmod(self.jobdir, 0o700)
        kw["cwd"] = self.jobdir
        kw["env"] = kernel_env(self.jobdir, sandbox.threads)
        if self.zygote is not None:
            kw["env"]["TMPDIR"] = os.path.join(self.jobdir, "tmp")  # the zygote's /tmp is read-only
            return kernel_cmd, kw
        # The kernel's own stdout/stderr (not the cells' outputs, which go over ZMQ) must not reach the grader.
        kw["stdout"] = kw["stderr"] = kw["stdin"] = subprocess.DEVNULL
        return wrap(kernel_cmd, self.jobdir, sandbox, uid), kw

    async def _async_post_start_kernel(self, **kw):
        await super()._async_post_start_kernel(**kw)
        if os.geteuid() == 0:
            self._watching = threading.Event()
            threading.Thread(target=self._watch, args=(self.kernel_uid, self._watching), daemon=True).start()

    def _watch(self, uid: int, stop: threading.Event) -> None:
        """Kill the kernel as soon as its uid runs more processes than allowed (a fork bomb slows everyone)."""
        while not stop.wait(0.25):
            count = sum(1 for p in Path("/proc").iterdir() if p.name.isdigit() and _owner(p) == uid)
            if count > self.sandbox.max_children:
                self.killed_because = (f"it started more than {self.sandbox.max_children} processes "
                                       "(a fork bomb?) and was stopped")
                process = getattr(self.provisioner, "process", None)
                if self.zygote is None and process is not None:
                    try:
                        os.killpg(process.pid, signal.SIGKILL)
                    except OSError:
                        process.kill()
                sweep(uid)
                return

    async def _async_cleanup_resources(self, restart: bool = False) -> None:
        if getattr(self, "_watching", None) is not None:
            self._watching.set()
        await super()._async_cleanup_resources(restart=restart)
        if self.zygote is not None:
            sweep(self.kernel_uid)
        if self.jobdir:
            shutil.rmtree(self.jobdir, ignore_errors=True)
            self.jobdir = ""

    # AsyncKernelManager binds its public names to KernelManager's functions, not to overrides.
    cleanup_resources = _async_cleanup_resources
