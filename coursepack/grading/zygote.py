"""A kernel factory: import torch & co. once, then fork a fresh kernel for every notebook.

Most of a notebook's grading time is start-up: Python, ipykernel and `import torch` (seconds of
CPU each). A worker therefore starts one zygote inside its sandbox (sandbox.py: the same namespaces,
read-only system and limits), which imports the modules the course uses and then forks, on request,
a new process per notebook that becomes an ipykernel at once. Each kernel is used for one notebook
only: before the fork it has run no student code, and after the notebook it is killed with every
process of its uid.

The zygote runs as root inside the sandbox with no capability but CAP_SETUID/CAP_SETGID (so
that each child can drop to the kernel's unprivileged uid, and set its limits, before any
student code runs) and CAP_KILL (to stop its kernels); kernels cannot signal or trace it.
It speaks one JSON line per request on a Unix socket:

    {"op": "spawn", "connection_file": ..., "cwd": ..., "env": {...}, "uid": N, "limits": {...}}
        -> {"pid": P}
    {"op": "poll", "pid": P}            -> {"returncode": None | int}
    {"op": "signal", "pid": P, "signum": S} -> {}
"""
from __future__ import annotations

import ctypes
import importlib
import json
import os
import resource
import socket
import sys

PR_SET_NO_NEW_PRIVS, PR_SET_DUMPABLE = 38, 4
LIMITS = {"as": resource.RLIMIT_AS, "nproc": resource.RLIMIT_NPROC, "fsize": resource.RLIMIT_FSIZE,
          "nofile": resource.RLIMIT_NOFILE, "cpu": resource.RLIMIT_CPU, "core": resource.RLIMIT_CORE}


def _prctl(option: int, value: int) -> None:
    ctypes.CDLL(None, use_errno=True).prctl(option, value, 0, 0, 0)


def _become_kernel(request: dict, keep: set[int]) -> None:
    """In the forked child: drop to the kernel's uid with its limits, then run ipykernel. Never returns."""
    try:
        os.setsid()
        os.closerange(3, 1024)  # the zygote's socket and anything else inherited
        uid = request["uid"]
        if os.getuid() == 0:
            os.setgroups([])
            os.setresgid(uid, uid, uid)
            os.setresuid(uid, uid, uid)
        _prctl(PR_SET_DUMPABLE, 1)  # changing uid cleared it; its own /proc entries should be its own again
        os.chdir(request["cwd"])  # only the kernel's uid may enter its job folder
        _prctl(PR_SET_NO_NEW_PRIVS, 1)
        for name, value in request["limits"].items():
            resource.setrlimit(LIMITS[name], (value, value))
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        os.environ.clear()
        os.environ.update(request["env"])
        sys.argv = ["ipykernel_launcher", "-f", request["connection_file"], "--HistoryManager.hist_file=:memory:"]
        from ipykernel.kernelapp import launch_new_instance

        launch_new_instance()
    finally:
        os._exit(0)


def serve(path: str, preload: list[str]) -> None:
    for name in preload:  # "package.module", or "package.name" from `from package import name`
        for candidate in (name, name.rpartition(".")[0]):
            try:
                importlib.import_module(candidate)
                break
            except Exception:  # noqa: BLE001 - what cannot be imported here is the notebook's business
                continue
    _prctl(PR_SET_DUMPABLE, 0)  # kernels of the same uid could not trace it anyway; belt and braces
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(8)
    print("ready", flush=True)
    returncodes: dict[int, int | None] = {}
    while True:
        connection, _ = server.accept()
        with connection, connection.makefile("rw") as stream:
            line = stream.readline()
            if not line:
                continue
            request = json.loads(line)
            reply: dict = {}
            if request["op"] == "spawn":
                pid = os.fork()
                if pid == 0:
                    server.close()
                    _become_kernel(request, set())
                returncodes[pid] = None
                reply = {"pid": pid}
            elif request["op"] in ("poll", "signal"):
                pid = request["pid"]
                if request["op"] == "signal":
                    try:
                        os.kill(pid, request["signum"])
                    except OSError:
                        pass
                if returncodes.get(pid) is None:
                    try:
                        done, status = os.waitpid(pid, os.WNOHANG)
                    except ChildProcessError:
                        done, status = pid, 0
                    if done:
                        returncodes[pid] = os.waitstatus_to_exitcode(status)
                reply = {"returncode": returncodes.get(pid, 0)}
            stream.write(json.dumps(reply) + "\n")
            stream.flush()
        # reap anything else that ended (kernels killed from outside)
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if not pid:
                break
            returncodes[pid] = os.waitstatus_to_exitcode(status)


if __name__ == "__main__":
    serve(sys.argv[1], sys.argv[2:])
