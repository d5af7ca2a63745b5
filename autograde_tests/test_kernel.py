"""`make kernel` (coursepack/kernel.py): a venv registered as a named Jupyter kernel that runs it.

Cheap versions of the real thing: the command plan with --dry-run; the Makefile passing its
variables; and a real venv (no pip install: it borrows this venv's packages through PYTHONPATH)
registered into a temporary Jupyter data folder, then started as a kernel to show it runs the
new venv's interpreter. Nothing touches the real ~/.local or ~/.venvs.
"""
import json
import os
import shlex
import shutil
import subprocess
import sys
import sysconfig
import uuid

import pytest
from jupyter_client.manager import start_new_kernel

from coursepack import kernel, notebooks


def test_dry_run_prints_the_plan_and_creates_nothing(tmp_path, capsys):
    venv = tmp_path / "venv"
    assert kernel.main(["--venv", str(venv), "--name", "dl-test", "--display-name", "Deep Learning",
                        "--python", "python3.11", "--dry-run"]) == 0
    lines = [shlex.split(line[2:]) for line in capsys.readouterr().out.splitlines()]
    vpy = str(venv / "bin" / "python")
    assert lines == [
        ["python3.11", "-m", "venv", str(venv)],
        [vpy, "-m", "pip", "install", "-e", str(notebooks.ROOT)],
        [vpy, "-m", "ipykernel", "install", "--user", "--name", "dl-test", "--display-name", "Deep Learning"],
        [vpy, str(notebooks.ROOT / "coursepack" / "snippets" / "gpu_check.py")],  # the GPU check, in the new venv
    ]
    assert not venv.exists()


def test_bad_kernel_name_is_refused(capsys):
    with pytest.raises(SystemExit) as exit_info:
        kernel.main(["--name", "my kernel", "--dry-run"])
    assert exit_info.value.code == 2
    assert "--name 'my kernel': a kernel name may only contain" in capsys.readouterr().err


@pytest.mark.skipif(not shutil.which("make"), reason="make not installed (apt install make)")
def test_make_kernel_passes_its_variables(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    result = subprocess.run(
        ["make", "--no-print-directory", "-C", str(notebooks.ROOT), "kernel", f"KERNEL_VENV={tmp_path / 'kv'}",
         "KERNEL_NAME=dl-make", "KERNEL_DISPLAY=DL via make", "TORCH_SPEC=torch==2.13.0",
         "TORCH_INDEX=https://download.pytorch.org/whl/cu126", "KERNEL_FLAGS=--dry-run"],
        env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    vpy = str(tmp_path / "kv" / "bin" / "python")
    assert f"+ {vpy} -m pip install --index-url https://download.pytorch.org/whl/cu126 torch==2.13.0" in result.stdout
    assert f"+ {vpy} -m ipykernel install --user --name dl-make --display-name 'DL via make'" in result.stdout
    # The kernel must land in the user's Jupyter folder (where JupyterHub looks), not the project's .jupyter/.
    assert "env -u JUPYTER_CONFIG_DIR -u JUPYTER_DATA_DIR" in result.stdout


def test_registered_kernel_runs_the_new_venvs_interpreter(tmp_path, monkeypatch):
    venv, data = tmp_path / "venv", tmp_path / "jupyter-data"
    name = f"cp-test-{uuid.uuid4().hex[:6]}"
    # --no-install: ipykernel comes from this venv through PYTHONPATH instead of a minutes-long pip install.
    monkeypatch.setenv("PYTHONPATH", sysconfig.get_paths()["purelib"])
    monkeypatch.setenv("JUPYTER_DATA_DIR", str(data))  # what `--user` writes to: keeps ~/.local untouched
    result = subprocess.run([sys.executable, "-m", "coursepack.kernel", "--venv", str(venv), "--name", name,
                             "--display-name", "COMP3547 test", "--no-install"],
                            cwd=notebooks.ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr

    spec = json.loads((data / "kernels" / name / "kernel.json").read_text())
    assert spec["display_name"] == "COMP3547 test" and spec["language"] == "python"
    assert spec["argv"][0] == str(venv / "bin" / "python")

    manager, client = start_new_kernel(kernel_name=name)
    try:
        outputs = []
        client.execute_interactive("import sys; print(sys.prefix)", timeout=60,
                                   output_hook=lambda msg: outputs.append(msg["content"].get("text", "")))
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)
    assert "".join(outputs).strip() == str(venv)
    # the GPU check ran last, with the new venv's interpreter (torch through PYTHONPATH): it names what it found
    assert result.stdout.split("gpu_check.py\n", 1)[1].startswith(("No NVIDIA GPU to check", "PyTorch ", "nvidia-smi"))


def test_make_venv_installs_torch_from_torch_index(tmp_path):
    # Without TORCH_SPEC (CI exports one): the index alone picks that build's newest torch.
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "TORCH_SPEC")}
    result = subprocess.run(["make", "--no-print-directory", "-n", "-C", str(notebooks.ROOT), f"VENV={tmp_path}/v",
                             "venv", "TORCH_INDEX=https://download.pytorch.org/whl/cu126"],
                            env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (f"{tmp_path}/v/bin/python -m pip install --quiet --index-url \"https://download.pytorch.org/whl/cu126\" "
            "\"torch\"\n") in result.stdout, result.stdout
