"""Kernel: a virtual environment with the pack's requirements, registered as a named Jupyter kernel.

What the sheet's "CreateJupyterPythonEnvironment" notebook does on NCC, as one command (`make kernel`):

    python -m coursepack.kernel                         ~/.venvs/comp3547, kernel "comp3547"
    python -m coursepack.kernel --venv DIR --name N --display-name "COMP3547 (N)"
    python -m coursepack.kernel --dry-run               print the commands, run nothing

1. `python -m venv VENV` (skipped when VENV already has an interpreter: re-running only updates),
2. `VENV/bin/python -m pip install -e <this checkout>` (the dependencies in pyproject.toml),
3. `VENV/bin/python -m ipykernel install --user --name NAME --display-name DISPLAY`, so Jupyter's
   launcher (JupyterHub's "New" menu after a page refresh) lists DISPLAY and runs VENV's interpreter,
4. the GPU check (coursepack/snippets/gpu_check.py, also a cell of notebooks/0_environment_check.ipynb)
   in VENV: when nvidia-smi sees a GPU that VENV's torch cannot use, it says why (the driver against
   the build's CUDA version) and which build to install instead (`--torch-index`, make's TORCH_INDEX).

Standard library only: it runs before any environment with the pack's requirements exists.
"""
from __future__ import annotations

import argparse
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

from coursepack.snippets import gpu_check

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_VENV = "~/.venvs/comp3547"
DEFAULT_NAME = "comp3547"
DEFAULT_DISPLAY = "Python (COMP3547)"
# jupyter_client refuses other kernel names (its kernelspec._kernel_name_pat); fail before any work.
KERNEL_NAME = re.compile(r"^[a-z0-9._-]+$", re.IGNORECASE)


def venv_python(venv: Path) -> Path:
    return venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def plan(venv: Path, name: str, display_name: str, python: str = sys.executable, install: bool = True,
         system_site_packages: bool = False, torch_spec: str | None = None, torch_index: str | None = None,
         prefix: Path | None = None) -> list[list[str]]:
    """The commands that create, fill and register the environment, in order."""
    vpy = str(venv_python(venv))
    commands = []
    if not venv_python(venv).exists():
        commands.append([python, "-m", "venv", *(["--system-site-packages"] if system_site_packages else []),
                         str(venv)])
    if install:
        if torch_spec or torch_index:  # e.g. a CPU-only build, or a CUDA build for an older driver (torch_index);
            # otherwise pip takes the platform's default (CUDA on NCC)
            commands.append([vpy, "-m", "pip", "install", *(["--index-url", torch_index] if torch_index else []),
                             torch_spec or "torch"])
        commands.append([vpy, "-m", "pip", "install", "-e", str(ROOT)])
    where = ["--prefix", str(prefix)] if prefix else ["--user"]
    commands.append([vpy, "-m", "ipykernel", "install", *where, "--name", name, "--display-name", display_name])
    commands.append([vpy, gpu_check.__file__])  # does its torch use the GPU nvidia-smi sees? (prints, never fails)
    return commands


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m coursepack.kernel", description=__doc__.split("\n\n")[0])
    parser.add_argument("--venv", default=DEFAULT_VENV, help=f"environment folder (default {DEFAULT_VENV})")
    parser.add_argument("--name", default=DEFAULT_NAME, help=f"kernel name (default {DEFAULT_NAME})")
    parser.add_argument("--display-name", default=DEFAULT_DISPLAY,
                        help=f"name in Jupyter's launcher and Kernel menu (default {DEFAULT_DISPLAY!r})")
    parser.add_argument("--python", default=sys.executable,
                        help="interpreter that creates the environment (default: this one)")
    parser.add_argument("--torch-spec", help="install this torch first, e.g. torch==2.13.0 for the CPU build")
    parser.add_argument("--torch-index", help="install torch from this package index first, e.g. "
                                              "https://download.pytorch.org/whl/cu126 (a CUDA 12.6 build)")
    parser.add_argument("--system-site-packages", action="store_true",
                        help="let the environment see the creating interpreter's packages")
    parser.add_argument("--no-install", dest="install", action="store_false",
                        help="do not pip install the pack's requirements")
    parser.add_argument("--prefix", type=Path,
                        help="register the kernel under PREFIX/share/jupyter instead of the user's Jupyter data dir")
    parser.add_argument("--dry-run", action="store_true", help="print the commands and run nothing")
    args = parser.parse_args(argv)
    if not KERNEL_NAME.match(args.name):
        parser.error(f"--name {args.name!r}: a kernel name may only contain letters, digits, '.', '_' and '-'")
    if not args.display_name.strip():
        parser.error("--display-name must not be empty")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    venv = Path(os.path.expanduser(args.venv)).absolute()
    commands = plan(venv, args.name, args.display_name, python=args.python, install=args.install,
                    system_site_packages=args.system_site_packages, torch_spec=args.torch_spec,
                    torch_index=args.torch_index, prefix=args.prefix)
    for command in commands:
        print("+", shlex.join(command), flush=True)
        if not args.dry_run:
            subprocess.run(command, check=command[-1] != gpu_check.__file__)  # the GPU check only reports
    if not args.dry_run:
        print(f"Kernel {args.name!r} ({args.display_name}) runs {venv_python(venv)}. In JupyterLab, refresh the "
              "page, then pick it in the launcher or with Kernel > Change Kernel.")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except subprocess.CalledProcessError as error:
        sys.exit(f"failed ({error.returncode}): {shlex.join(error.cmd)}")
