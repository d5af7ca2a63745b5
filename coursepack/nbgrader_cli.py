"""Run nbgrader commands for a course folder with Jupyter state kept out of the user's ~/.jupyter."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def jupyter_env(state_dir: Path, **extra: str) -> dict[str, str]:
    """The environment for a Jupyter/nbgrader process whose config, data and runtime live in `state_dir`."""
    env = dict(os.environ)
    # nbgrader runs `alembic` (and kernels run `python`) by name: the venv's scripts must come first.
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    for name, sub in (("JUPYTER_CONFIG_DIR", "config"), ("JUPYTER_DATA_DIR", "data"),
                      ("JUPYTER_RUNTIME_DIR", "runtime")):
        env[name] = str(state_dir / sub)
    env.update(extra)
    return env


def nbgrader(*args: str, course: Path, env: dict[str, str] | None = None,
             check: bool = True) -> subprocess.CompletedProcess:
    """`nbgrader ARGS` run in `course` (so its nbgrader_config.py applies); output captured."""
    env = env if env is not None else jupyter_env(course / ".jupyter")
    result = subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=course, env=env,
                            capture_output=True, text=True)
    if check and result.returncode != 0:
        raise RuntimeError(f"nbgrader {' '.join(args)} failed ({result.returncode}):\n"
                           f"{result.stdout[-3000:]}\n{result.stderr[-6000:]}")
    return result
