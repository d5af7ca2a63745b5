"""The SLURM route (NCC over SSH): the sbatch script `make slurm` renders, checked without a cluster.

The rendered script must be valid bash whose #SBATCH lines carry the arguments, bad arguments must
be refused with a message naming them, `make slurm` must write the script (and hand it to sbatch
only with SUBMIT=1), and the script itself, run with plain bash, must execute a notebook into the
output folder: the part of the job that does not need SLURM.
"""
import os
import re
import shutil
import subprocess
import sys

import nbformat
import pytest

from coursepack import notebooks, slurm
from coursepack.nbgrader_cli import jupyter_env


def write_notebook(path):
    """A two-cell notebook that records the folder it ran in and prints 42."""
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                           "language": "python"}})
    nb.cells = [nbformat.v4.new_code_cell("import os\nopen('ran-in.txt', 'w').write(os.getcwd())"),
                nbformat.v4.new_code_cell("print(6 * 7)")]
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


@pytest.fixture
def notebook(tmp_path):
    # Spaces in the folder and the name: the script must quote the path everywhere it uses it.
    return write_notebook(tmp_path / "my notebooks" / "tiny run.ipynb")


def directives(script: str) -> dict[str, str]:
    return dict(re.findall(r"^#SBATCH --([a-z-]+)=(.*)$", script, re.M))


def test_rendered_script_is_bash_and_carries_the_arguments(notebook, tmp_path):
    script = slurm.render(notebook, partition="ug-gpu-small", gpus=2, time="1-02:30:00", cpus=8, mem="32G",
                          output_dir=tmp_path / "out", venv="~/.venvs/comp3547", job_name="p1-run")
    assert directives(script) == {
        "job-name": "p1-run", "partition": "ug-gpu-small", "gres": "gpu:2", "time": "1-02:30:00",
        "cpus-per-task": "8", "mem": "32G", "output": f"{tmp_path / 'out'}/%x-%j.log"}
    assert not re.search(r"@[A-Z_]+@", script), "a template placeholder was left unfilled"
    assert f"VENV={os.path.expanduser('~/.venvs/comp3547')}" in script
    path = tmp_path / "job.sbatch"
    path.write_text(script)
    result = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("value", ["45", "45:30", "01:00:00", "48:00:00", "2-0", "2-12:30", "0-00:10:00"])
def test_slurm_time_formats_are_accepted(value):
    assert slurm.check_time(value) == value


@pytest.mark.parametrize(("args", "message"), [
    (["--time", "1h"], "--time '1h': expected SLURM's time format"),
    (["--time", "01:60:00"], "--time '01:60:00': expected SLURM's time format"),
    (["--time", "1-24:00"], "--time '1-24:00': expected SLURM's time format"),
    (["--time", "00:00:00"], "--time '00:00:00': the time limit must be longer than zero"),
    (["--gpus", "0"], "--gpus 0: a GPU job needs at least 1 GPU"),
    (["--gpus", "two"], "expected a whole number, got 'two'"),
    (["--partition", "ug gpu"], "--partition 'ug gpu': expected a partition name"),
    (["--mem", "lots"], "--mem 'lots': expected a size"),
    (["--output-dir", "my results"], "no spaces, quotes"),
])
def test_bad_arguments_are_refused_with_a_clear_error(notebook, args, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        slurm.main([*args, str(notebook)])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_notebook_must_be_an_existing_ipynb(tmp_path, capsys):
    for path, message in ((tmp_path / "missing.ipynb", "no such file"), (tmp_path, "expected a .ipynb file")):
        with pytest.raises(SystemExit):
            slurm.main([str(path)])
        assert message in capsys.readouterr().err


def make(*args, path_prefix=None):
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    if path_prefix:
        env["PATH"] = f"{path_prefix}{os.pathsep}{env['PATH']}"
    return subprocess.run(["make", "--no-print-directory", "-C", str(notebooks.ROOT), *args], env=env,
                          capture_output=True, text=True)


@pytest.mark.skipif(not shutil.which("make"), reason="needs make")
def test_make_slurm_writes_the_script_and_submits_only_when_asked(tmp_path):
    out = tmp_path / "slurm-out"
    notebook = write_notebook(tmp_path / "tiny.ipynb")  # no spaces: make splits words on them
    args = [f"NOTEBOOK={notebook}", f"SLURM_OUT={out}", "SLURM_GPUS=3", "SLURM_TIME=02:00:00"]
    fake_bin = tmp_path / "bin"  # an sbatch that records how it was called
    fake_bin.mkdir()
    (fake_bin / "sbatch").write_text(f'#!/bin/sh\necho "$@" > "{tmp_path / "sbatch-args"}"\necho "Submitted job 1"\n')
    (fake_bin / "sbatch").chmod(0o755)

    result = make("slurm", *args, path_prefix=fake_bin)
    assert result.returncode == 0, result.stdout + result.stderr
    script = (out / "tiny.sbatch").read_text()
    assert directives(script)["gres"] == "gpu:3" and directives(script)["time"] == "02:00:00"
    assert out.is_dir(), "the log folder must exist before sbatch runs"
    assert not (tmp_path / "sbatch-args").exists(), "submitted without SUBMIT=1"

    result = make("slurm", *args, "SUBMIT=1", path_prefix=fake_bin)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "sbatch-args").read_text().strip() == str(out / "tiny.sbatch")

    result = make("slurm")
    assert result.returncode != 0 and "usage: make slurm NOTEBOOK=" in result.stderr


def test_the_script_executes_the_notebook_into_the_output_folder(notebook, tmp_path):
    """Plain bash, this venv as the environment: everything the job does except being scheduled."""
    out = tmp_path / "out"
    out.mkdir()
    script = tmp_path / "job.sbatch"
    script.write_text(slurm.render(notebook, output_dir=out, venv=sys.prefix))
    env = jupyter_env(tmp_path / ".jupyter", SLURM_JOB_ID="4242")
    result = subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    executed = nbformat.read(out / "tiny run-4242.ipynb", as_version=4)
    assert executed.cells[1].outputs[0]["text"] == "42\n"
    assert (notebook.parent / "ran-in.txt").read_text() == str(notebook.parent)
    assert "finished at" in result.stdout and "with status 0" in result.stdout
