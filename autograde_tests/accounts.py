"""Running code as an ordinary account, as an NCC instructor without root would: a throwaway account
and Debian's python3.11 with this venv's packages (this venv's own interpreter lives under /root,
which no other account may enter)."""
import os
import pwd
import shutil
import subprocess
import sys
import sysconfig
import uuid
from pathlib import Path

import pytest

ACCOUNT_PYTHON = Path(f"/usr/bin/python{sys.version_info.major}.{sys.version_info.minor}")
SITE_PACKAGES = sysconfig.get_paths()["purelib"]
REPOSITORY = Path(__file__).resolve().parent.parent
READABLE = all(p.stat().st_mode & 0o005 == 0o005 for p in [Path(SITE_PACKAGES), *Path(SITE_PACKAGES).parents,
                                                              REPOSITORY / "coursepack"])


def _why_no_account() -> str | None:
    """Why no throwaway account can run the grader here, in one line naming what is missing (None: it can)."""
    if os.geteuid() != 0:
        return "needs root, to make a throwaway account"
    for tool, package in (("useradd", "passwd"), ("userdel", "passwd"), ("setpriv", "util-linux")):
        if not shutil.which(tool):
            return f"{tool} not installed (apt install {package})"
    if not ACCOUNT_PYTHON.exists():
        return f"{ACCOUNT_PYTHON} not installed (apt install {ACCOUNT_PYTHON.name})"
    if not READABLE:
        return f"other accounts cannot read this venv's packages ({SITE_PACKAGES}) or the repository"
    return None


needs_account = pytest.mark.skipif(_why_no_account() is not None, reason=str(_why_no_account()))


def make_account() -> str:
    """A new ordinary account without a home: remove it with `remove_account`."""
    name = f"cpx{uuid.uuid4().hex[:6]}"
    subprocess.run(["useradd", "--user-group", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
                   check=True, capture_output=True)
    return name


def remove_account(name: str) -> None:
    uid = pwd.getpwnam(name).pw_uid
    subprocess.run(["userdel", name], capture_output=True)
    shutil.rmtree(f"/tmp/coursepack-grading-{uid}", ignore_errors=True)


def account_env(**extra: str) -> dict[str, str]:
    """A bare environment for the account's Python: this venv's packages and this repository importable."""
    return {"PATH": "/usr/bin:/bin", "HOME": "/tmp", "LANG": "C.UTF-8",
            "PYTHONPATH": os.pathsep.join([SITE_PACKAGES, str(REPOSITORY)]), **extra}


def run_as(name: str, args: list[str], **kwargs) -> subprocess.CompletedProcess:
    """`python3.11 ARGS` as the account `name` (kwargs go to subprocess.run)."""
    return subprocess.run(["setpriv", f"--reuid={name}", f"--regid={name}", "--init-groups", str(ACCOUNT_PYTHON),
                           *args], capture_output=True, text=True, **kwargs)
