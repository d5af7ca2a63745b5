"""SLURM: an sbatch script that runs one notebook headless on a GPU node (NCC over SSH).

    python -m coursepack.slurm NOTEBOOK                         print the script (ug-gpu-small, 1 GPU, 1 h)
    python -m coursepack.slurm --partition ug-gpu-small --gpus 1 --time 01:00:00 \\
        --output-dir slurm-out --script slurm-out/job.sbatch NOTEBOOK          write it, then `sbatch` it

The script (slurm/run_notebook.sbatch.in) activates the environment `make kernel` made, executes
the notebook with `jupyter nbconvert --to notebook --execute` and writes the executed copy and the
job's log into the output folder. Standard library only: it runs on a login node without the venv.
"""
from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from coursepack.kernel import DEFAULT_VENV

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "slurm" / "run_notebook.sbatch.in"
DEFAULTS = {"partition": "ug-gpu-small", "gpus": 1, "time": "01:00:00", "cpus": 4, "mem": "16G",
            "output_dir": Path("slurm-out"), "venv": DEFAULT_VENV}  # (DEFAULT_VENV: make kernel's)

# SLURM's --time forms: MIN, MIN:SEC, H:MIN:SEC, D-H, D-H:MIN, D-H:MIN:SEC.
TIME_FORMS = (
    re.compile(r"^(?P<m>\d+)$"),
    re.compile(r"^(?P<m>\d+):(?P<s>\d{1,2})$"),
    re.compile(r"^(?P<h>\d+):(?P<m>\d{1,2}):(?P<s>\d{1,2})$"),
    re.compile(r"^(?P<d>\d+)-(?P<h>\d{1,2})$"),
    re.compile(r"^(?P<d>\d+)-(?P<h>\d{1,2}):(?P<m>\d{1,2})$"),
    re.compile(r"^(?P<d>\d+)-(?P<h>\d{1,2}):(?P<m>\d{1,2}):(?P<s>\d{1,2})$"),
)
TIME_HELP = "MINUTES, MM:SS, HH:MM:SS, D-HH, D-HH:MM or D-HH:MM:SS (e.g. 01:00:00)"
# #SBATCH lines are read by sbatch, not by bash: no quoting there, so only plain names and paths.
NAME = re.compile(r"^[A-Za-z0-9._-]+$")
MEMORY = re.compile(r"^[1-9]\d*[KMGT]?$")
UNSAFE_IN_DIRECTIVE = re.compile(r"[\s%#'\"\\]")


def check_time(value: str) -> str:
    """`value` if it is a positive SLURM time limit; ValueError naming the accepted forms otherwise."""
    for form in TIME_FORMS:
        match = form.match(value)
        if match:
            parts = {k: int(v) for k, v in match.groupdict().items() if v is not None}
            has_days = "d" in parts
            # Minutes and seconds are clock digits except in the bare MIN and MIN:SEC forms.
            if parts.get("s", 0) > 59 or (("h" in parts or has_days) and parts.get("m", 0) > 59) \
                    or (has_days and parts.get("h", 0) > 23):
                break
            if not any(parts.values()):
                raise ValueError(f"--time {value!r}: the time limit must be longer than zero")
            return value
    raise ValueError(f"--time {value!r}: expected SLURM's time format, {TIME_HELP}")


def render(notebook: Path, partition: str = DEFAULTS["partition"], gpus: int = DEFAULTS["gpus"],
           time: str = DEFAULTS["time"], cpus: int = DEFAULTS["cpus"], mem: str = DEFAULTS["mem"],
           output_dir: Path = DEFAULTS["output_dir"], venv: str = DEFAULT_VENV, job_name: str | None = None) -> str:
    """The sbatch script for `notebook`; ValueError (saying which argument and why) for a bad argument."""
    notebook, output_dir = Path(notebook).absolute(), Path(output_dir).absolute()
    venv_path = Path(os.path.expanduser(venv)).absolute()
    job_name = job_name or re.sub(r"[^A-Za-z0-9._-]", "_", notebook.stem)
    if notebook.suffix != ".ipynb":
        raise ValueError(f"notebook {str(notebook)!r}: expected a .ipynb file")
    if not notebook.is_file():
        raise ValueError(f"notebook {str(notebook)!r}: no such file")
    if not NAME.match(partition):
        raise ValueError(f"--partition {partition!r}: expected a partition name such as ug-gpu-small")
    if not NAME.match(job_name):
        raise ValueError(f"--job-name {job_name!r}: only letters, digits, '.', '_' and '-'")
    if gpus < 1:
        raise ValueError(f"--gpus {gpus}: a GPU job needs at least 1 GPU")
    if cpus < 1:
        raise ValueError(f"--cpus {cpus}: at least 1 CPU")
    if not MEMORY.match(mem):
        raise ValueError(f"--mem {mem!r}: expected a size such as 16G or 8000M")
    check_time(time)
    if UNSAFE_IN_DIRECTIVE.search(str(output_dir)):
        raise ValueError(f"--output-dir {str(output_dir)!r}: no spaces, quotes, '#' or '%' (it goes into "
                         "an #SBATCH line)")
    values = {
        "JOB_NAME": job_name, "PARTITION": partition, "GPUS": str(gpus), "TIME": time, "CPUS": str(cpus),
        "MEM": mem, "OUTPUT_DIR": str(output_dir),
        "NOTEBOOK_Q": shlex.quote(str(notebook)), "OUTPUT_DIR_Q": shlex.quote(str(output_dir)),
        "VENV_Q": shlex.quote(str(venv_path)),
    }
    return re.sub(r"@([A-Z_]+)@", lambda m: values[m.group(1)], TEMPLATE.read_text())


def whole_number(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m coursepack.slurm", description=__doc__.split("\n\n")[0])
    parser.add_argument("notebook", type=Path, help="the .ipynb to execute")
    parser.add_argument("--partition", default=DEFAULTS["partition"], help="SLURM partition (default %(default)s)")
    parser.add_argument("--gpus", type=whole_number, default=DEFAULTS["gpus"], help="GPUs (default %(default)s)")
    parser.add_argument("--time", default=DEFAULTS["time"], help=f"time limit: {TIME_HELP} (default %(default)s)")
    parser.add_argument("--cpus", type=whole_number, default=DEFAULTS["cpus"], help="CPU cores (default %(default)s)")
    parser.add_argument("--mem", default=DEFAULTS["mem"], help="memory (default %(default)s)")
    parser.add_argument("--job-name", help="job name (default: the notebook's name, spaces as _)")
    parser.add_argument("--output-dir", type=Path, default=DEFAULTS["output_dir"],
                        help="where the executed notebook and the log go (default %(default)s)")
    parser.add_argument("--venv", default=DEFAULT_VENV, help="environment from `make kernel` (default %(default)s)")
    parser.add_argument("--script", type=Path, help="write the script here (default: print it)")
    parser.add_argument("--write", action="store_true", help="write it to OUTPUT_DIR/NOTEBOOK.sbatch")
    parser.add_argument("--submit", action="store_true", help="write it and submit it with sbatch")
    args = parser.parse_args(argv)
    if (args.write or args.submit) and args.script is None:
        args.script = args.output_dir / f"{args.notebook.stem}.sbatch"
    try:
        script = render(args.notebook, partition=args.partition, gpus=args.gpus, time=args.time, cpus=args.cpus,
                        mem=args.mem, output_dir=args.output_dir, venv=args.venv, job_name=args.job_name)
    except ValueError as error:
        parser.error(str(error))
    if args.script is None:
        sys.stdout.write(script)
        return 0
    # SLURM does not create the log's folder: without it the job fails before writing a line.
    args.output_dir.mkdir(parents=True, exist_ok=True)
    args.script.parent.mkdir(parents=True, exist_ok=True)
    args.script.write_text(script)
    if not args.submit:
        print(f"wrote {args.script}; submit it with: sbatch {shlex.quote(str(args.script))}")
        return 0
    if shutil.which("sbatch") is None:
        print("sbatch not found: submit from the cluster's login node", file=sys.stderr)
        return 1
    return subprocess.run(["sbatch", str(args.script)]).returncode


if __name__ == "__main__":
    sys.exit(main())
