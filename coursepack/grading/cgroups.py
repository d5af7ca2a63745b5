"""A cgroup per kernel: a notebook's memory and tasks bounded together, and a kill that cannot be outrun.

RLIMIT_AS bounds each process, so a notebook that runs N processes may use N times the limit; a
cgroup bounds them together (`memory`), caps their tasks (`pids`), and lets the grader stop every
one of them at once even while they keep forking: cgroup v2's `cgroup.kill`, or on v1 freezing
the group, SIGKILL to each frozen member, thawing it.

The grader (root) creates the group beneath its own cgroup before the kernel starts, and opens
each `cgroup.procs` for writing (`join_files`); the zygote hands those descriptors to the kernel's
supervisor, which joins by writing "0" (itself) before it does anything else, so everything the
kernel starts is inside (the zygote's sandbox has no /sys/fs/cgroup, and needs none). A group is
named after its grader's pid: a grader that was killed leaves groups that the next one kills and
removes.

Where no controller can be used (not root, a container, v2 without delegated controllers),
`unavailable()` says why: the sandbox then falls back to RLIMIT_AS per process and a small cap on
the number of processes, and says so (sandbox.isolation()).
"""
from __future__ import annotations

import functools
import os
import signal
import time
import uuid
from pathlib import Path

V1 = ("memory", "pids", "freezer")
PREFIX = "coursepack-kernel-"


class CgroupError(OSError):
    """A kernel cgroup could not be made or emptied."""


def _mounts() -> dict[str, str]:
    """Mount point of each v1 controller used here, and of the v2 hierarchy (key "unified")."""
    found: dict[str, str] = {}
    with open("/proc/self/mountinfo") as mountinfo:
        for line in mountinfo:
            before, after = line.split(" - ", 1)
            fstype, _, options = after.split()[:3]
            point = before.split()[4]
            if fstype == "cgroup2":
                found.setdefault("unified", point)
            elif fstype == "cgroup":
                for name in set(options.split(",")) & set(V1):
                    found.setdefault(name, point)
    return found


def _own(controller: str) -> str:
    """This process's cgroup in the hierarchy of `controller` ("unified": v2)."""
    with open("/proc/self/cgroup") as groups:
        for line in groups:
            _, names, path = line.rstrip("\n").split(":", 2)
            if (controller == "unified" and names == "") or controller in names.split(","):
                return path
    raise CgroupError(f"this process is in no {controller} cgroup")


def _parents() -> tuple[bool, list[Path]]:
    """(v2?, the grader's own cgroup in each hierarchy used): v1's memory, pids and freezer, or v2."""
    mounts = _mounts()
    if all(name in mounts for name in V1):
        return False, [Path(mounts[name] + _own(name)) for name in V1]
    if "unified" in mounts:
        return True, [Path(mounts["unified"] + _own("unified"))]
    raise CgroupError("no cgroup hierarchy with memory, pids and freezer controllers")


def _read(path: Path) -> str:
    return path.read_text().strip()


class KernelCgroup:
    """The cgroup(s) of one kernel (one directory per v1 hierarchy, or one v2 directory)."""

    def __init__(self, v2: bool, dirs: list[Path]):
        self.v2, self.dirs = v2, dirs

    def _make_v1(self, memory: int, tasks: int) -> None:
        for folder in self.dirs:
            folder.mkdir()
        (self.dirs[0] / "memory.limit_in_bytes").write_text(str(memory))
        swap = self.dirs[0] / "memory.memsw.limit_in_bytes"  # only with swap accounting
        if swap.exists():
            swap.write_text(str(memory))
        (self.dirs[1] / "pids.max").write_text(str(tasks))

    def _make_v2(self, memory: int, tasks: int) -> None:
        folder = self.dirs[0]
        controllers = folder.parent / "cgroup.subtree_control"
        if not {"memory", "pids"} <= set(_read(controllers).split()):
            # Fails (EBUSY) while the grader's own cgroup holds processes: it must be delegated.
            controllers.write_text("+memory +pids")
        folder.mkdir()
        if not (folder / "cgroup.kill").exists():
            raise CgroupError("cgroup.kill needs Linux 5.14")
        (folder / "memory.max").write_text(str(memory))
        (folder / "memory.oom.group").write_text("1")  # an OOM kill takes the whole notebook
        if (folder / "memory.swap.max").exists():
            (folder / "memory.swap.max").write_text("0")
        (folder / "pids.max").write_text(str(tasks))

    def join_files(self) -> list[int]:
        """Descriptors of each `cgroup.procs`, open for writing: a process joins by writing "0" to each."""
        return [os.open(d / "cgroup.procs", os.O_WRONLY | os.O_CLOEXEC) for d in self.dirs]

    def oom_kills(self) -> int:
        """How many processes the kernel's memory limit has killed so far."""
        name = "memory.events" if self.v2 else "memory.oom_control"
        try:
            for line in (self.dirs[0] / name).read_text().splitlines():
                key, _, value = line.partition(" ")
                if key == "oom_kill":
                    return int(value)
        except (OSError, ValueError):
            pass
        return 0

    def members(self) -> list[int]:
        found: set[int] = set()
        for folder in self.dirs:
            try:
                found.update(int(pid) for pid in (folder / "cgroup.procs").read_text().split())
            except OSError:
                pass
        return sorted(found)

    def kill(self, timeout: float = 10) -> None:
        """SIGKILL every process of the kernel, even one that keeps forking, and wait until none is left."""
        if self.v2:
            (self.dirs[0] / "cgroup.kill").write_text("1")
        else:
            state = self.dirs[2] / "freezer.state"
            state.write_text("FROZEN")  # no member runs, so none can fork, from here on
            deadline = time.monotonic() + 2
            while _read(state) != "FROZEN" and time.monotonic() < deadline:
                time.sleep(0.01)
            for pid in self.members():
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            state.write_text("THAWED")  # they die as they thaw
        deadline = time.monotonic() + timeout
        while self.members():
            if time.monotonic() > deadline:
                raise CgroupError(f"processes of {self.dirs[0]} outlived SIGKILL: {self.members()}")
            time.sleep(0.01)

    def remove(self) -> None:
        for folder in self.dirs:
            for _ in range(100):  # an emptied cgroup may stay busy for a moment
                try:
                    folder.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.01)


def _remove_stale(v2: bool, parents: list[Path]) -> None:
    """Kernel cgroups whose grader has died (named after its pid): what runs in them killed, then removed."""
    names = {entry.name for parent in parents if parent.is_dir() for entry in parent.iterdir()
             if entry.name.startswith(PREFIX)}
    for name in names:
        grader = name.removeprefix(PREFIX).split("-")[0]
        if grader.isdigit() and not os.path.exists(f"/proc/{grader}"):
            group = KernelCgroup(v2, [parent / name for parent in parents])
            try:
                group.kill()
            except OSError:  # half made (so never joined), or another grader is removing it too
                pass
            group.remove()


def create(memory: int, tasks: int) -> KernelCgroup:
    """A kernel's cgroup with these limits, below the grader's own (and the stale ones removed)."""
    v2, parents = _parents()
    _remove_stale(v2, parents)
    name = f"{PREFIX}{os.getpid()}-{uuid.uuid4().hex[:8]}"
    group = KernelCgroup(v2, [parent / name for parent in parents])
    try:
        group._make_v2(memory, tasks) if v2 else group._make_v1(memory, tasks)
    except OSError as error:
        group.remove()
        raise CgroupError(f"cannot make a cgroup below {parents[0]} ({error})") from error
    return group


@functools.cache
def unavailable() -> str | None:
    """Why kernels cannot get a cgroup here (None: they can), found by making and removing one."""
    if os.geteuid() != 0:
        return "no root"
    try:
        create(2**30, 64).remove()
    except OSError as error:
        return str(error)
    return None
