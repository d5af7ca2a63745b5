"""The sandbox states what it guarantees, and grades an honest notebook alike at every level it offers.

Kernels are started as the grader starts them (SandboxKernelManager, as nbclient uses it) and
run real code (sandboxing.py: `running`, shared with test_sandbox_isolation.py, which attacks them).
"""
import asyncio
import errno
import json
import os

import pytest
from sandboxing import HONEST, HONEST_OUTPUT, LEVELS, ROOT, SMALL, handed_in, running

from coursepack.grading import cgroups
from coursepack.grading.sandbox import MiB, Sandbox, SandboxKernelManager, isolation


def test_isolation_is_a_statement_of_guarantees():
    stated = isolation()
    assert stated.level in LEVELS and stated.weaker == (stated.level != "bubblewrap")
    assert stated.holds and all(line.endswith(": yes") for line in stated.holds)
    assert all(": no (" in line for line in stated.lacks)
    assert len(stated.holds) + len(stated.lacks) == len(stated.guarantees)
    assert str(stated).startswith(f"isolation: {stated.level}\n")
    assert (stated.detail.startswith("WEAKER ISOLATION")) == stated.weaker
    without = isolation(False)
    assert without.level == ("root" if ROOT else "limits-only") and not without.bwrap
    assert "system read-only, course and other users' files out of sight: no (bubblewrap disabled" in without.detail
    uid = next(g for g in without.guarantees if g.name.startswith("distinct uid"))
    assert uid.holds == ROOT
    memory = next(g for g in stated.guarantees if g.name.startswith("memory bounded per notebook"))
    assert memory.holds == (cgroups.unavailable() is None)
    if not memory.holds:
        assert "RLIMIT_AS per process" in memory.otherwise


@pytest.mark.parametrize("traits", [{}, {"use_bwrap": False}, {"use_zygote": False}],
                         ids=["default", "no-bwrap", "no-zygote"])
def test_an_honest_notebook_runs_alike_at_every_level(tmp_path, traits):
    with running(Sandbox(**traits), handed_in(tmp_path)) as (_, run):
        assert run(HONEST) == HONEST_OUTPUT


def test_the_kernel_gets_its_limits_its_files_and_no_secrets(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSEPACK_DB", "postgresql://grader:SECRET@db/gradebook")
    sandbox = Sandbox(preload=SMALL)
    stated = isolation()
    with running(sandbox, handed_in(tmp_path)) as (manager, run):
        out = run("import os, resource, json\n"
                  "s = os.statvfs('.')\n"
                  "print(json.dumps([os.getuid(), os.getcwd(), sorted(os.listdir('.')), 'COURSEPACK_DB' in os.environ,"
                  " resource.getrlimit(resource.RLIMIT_AS)[0], resource.getrlimit(resource.RLIMIT_NPROC)[0],"
                  " s.f_blocks * s.f_frsize, len([p for p in os.listdir('/proc') if p.isdigit()]),"
                  " [int(line.split()[1]) * 1024 for line in open('/proc/self/status') if line.startswith('VmSize')][0]"
                  "]))")
        uid, cwd, files, leaked, memory, tasks, size, processes, mapped = json.loads(out)
        assert cwd == manager.jobdir and os.path.dirname(cwd) == manager.bridge_dir
        assert "data.csv" in files and "answers.ipynb" not in files
        assert not leaked
        # RLIMIT_AS: the memory limit on top of what the kernel mapped before any student code (its imports)
        assert sandbox.memory_limit < memory <= sandbox.memory_limit + mapped, (memory, mapped)
        if stated.namespaces:  # its own PID namespace, and a job folder of its own size that only it sees
            assert processes == 1 and size == sandbox.job_size and tasks == sandbox.max_processes
            assert not os.listdir(manager.jobdir)
        if ROOT:
            assert uid == manager.kernel_uid and uid >= sandbox.uid
        bridge = manager.bridge_dir
    assert not os.path.exists(bridge) and manager.bridge_dir == ""


def test_the_job_folder_and_tmp_are_size_limited(tmp_path):
    if not isolation().namespaces:
        pytest.skip("needs per-kernel namespaces (root or user namespaces)")
    sandbox = Sandbox(preload=SMALL, job_size=16 * MiB, tmp_size=16 * MiB)
    with running(sandbox, handed_in(tmp_path)) as (_, run):
        out = run("import errno\n"
                  "for path in ('big', '/tmp/big', '/dev/shm/big'):\n"
                  "    try:\n"
                  "        with open(path, 'wb') as f:\n"
                  "            for _ in range(32):\n"
                  "                f.write(bytes(2**20))\n"
                  "        print(path, 'written')\n"
                  "    except OSError as error:\n"
                  "        print(path, errno.errorcode[error.errno])\n")
    assert out.split() == ["big", "ENOSPC", "/tmp/big", "ENOSPC", "/dev/shm/big", "ENOSPC"], out


def test_a_kernel_whose_files_do_not_fit_does_not_start_and_leaves_nothing(tmp_path):
    if not isolation().namespaces:
        pytest.skip("needs per-kernel namespaces (root or user namespaces)")
    (handed_in(tmp_path) / "huge.bin").write_bytes(bytes(20 * MiB))
    manager = SandboxKernelManager(kernel_name="python3", sandbox=Sandbox(preload=SMALL, job_size=16 * MiB))
    with pytest.raises(RuntimeError, match="do not fit in its job folder of 16 MiB"):
        asyncio.run(manager.start_kernel(cwd=str(tmp_path)))
    assert manager.bridge_dir == "" and manager.kernel_uid is None and manager.cgroup is None


def test_writing_past_the_file_size_limit_fails(tmp_path):
    with running(Sandbox(preload=SMALL, max_file_size=MiB), handed_in(tmp_path)) as (_, run):
        out = run("import errno, signal\nsignal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
                  "try:\n    open('big', 'wb').write(bytes(2 * 2**20))\n"
                  "except OSError as error:\n    print(errno.errorcode[error.errno])")
    assert out.strip() == errno.errorcode[errno.EFBIG]


def test_python_and_read_only_paths_under_tmp_stay_readable(tmp_path):
    """Each kernel gets a /tmp of its own: a venv or data cache under the host's /tmp is bound back, read-only."""
    cache = tmp_path / "cache"  # pytest's tmp_path lies under /tmp
    cache.mkdir()
    (cache / "note.txt").write_text("cached\n")
    os.chmod(cache, 0o755)
    with running(Sandbox(preload=SMALL, read_only_paths=[str(cache)]), handed_in(tmp_path / "job")) as (_, run):
        out = run(f"import errno\nprint(open({str(cache / 'note.txt')!r}).read(), end='')\n"
                  f"try:\n    open({str(cache / 'new.txt')!r}, 'w')\nexcept OSError as error:\n"
                  "    print(errno.errorcode[error.errno])\n")
    assert out.split("\n")[0] == "cached", out
    assert out.split("\n")[1] in ({"EROFS", "EACCES"} if isolation().namespaces else {"EACCES", ""}), out


def test_a_forked_worker_leaves_its_parents_zygote_alone(tmp_path):
    """A grading worker forked from a process that has zygotes (api.grade_class called from a test, or a
    session that graded before) stops its own on its way out, never the ones it inherited."""
    from coursepack.grading.zygote import Zygote

    with running(Sandbox(preload=SMALL), handed_in(tmp_path / "a")) as (manager, _):
        folder, zygote = manager.zygote.folder, manager.zygote
        child = os.fork()
        if child == 0:  # what pool.worker_main does last
            Zygote.stop_all()
            os._exit(0)
        os.waitpid(child, 0)
        assert os.path.isdir(folder) and zygote.process.poll() is None, "the child stopped its parent's zygote"
    with running(Sandbox(preload=SMALL), handed_in(tmp_path / "b")) as (manager, run):
        assert manager.zygote is zygote and run("print(6 * 7)") == "42\n"
