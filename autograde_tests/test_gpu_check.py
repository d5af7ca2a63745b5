"""The GPU check (coursepack/snippets/gpu_check.py; a cell of notebooks/0_environment_check.ipynb, and
the last step of `make kernel`): a GPU that nvidia-smi sees but torch cannot use is named, with why
and what to install instead.

It runs as a script with this venv's real torch (a CPU build in CI; a CUDA build without a GPU on a
user's machine) and a fake `nvidia-smi` on PATH that reports a GPU and its driver as NVIDIA's does.
"""
import os
import subprocess
import sys

import pytest
import torch

from coursepack import notebooks
from coursepack.snippets import gpu_check

SCRIPT = gpu_check.__file__


def fake_nvidia_smi(folder, output: str, code: int = 0) -> str:
    """A PATH on which `nvidia-smi` prints `output` and exits with `code`."""
    folder.mkdir(exist_ok=True)
    tool = folder / "nvidia-smi"
    tool.write_text(f"#!/bin/sh\ncat <<'END'\n{output}\nEND\nexit {code}\n")
    tool.chmod(0o755)
    return os.pathsep.join([str(folder), "/usr/bin", "/bin"])


def check(path: str) -> str:
    result = subprocess.run([sys.executable, SCRIPT], env={**os.environ, "PATH": path}, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


@pytest.mark.parametrize("driver, build", [
    ("595.12", "13.0"), ("580.65.06", "13.0"),  # CUDA 13 needs 580
    ("575.51.03", "12.8"), ("570.26", "12.8"), ("560.28.03", "12.6"),
    ("550.54.15", "12.6"), ("535.104.05", "12.6"),  # 12.x runs on >= 525.60.13 (minor version compatibility)
    ("520.61.05", "11.8"), ("470.82.01", "11.8"), ("450.80.02", "11.8"),
    ("440.33", None),  # older than any CUDA build of PyTorch runs on
])
def test_the_suggested_build_runs_on_the_driver(driver, build):
    assert gpu_check.suggested_build(driver) == build
    if build is not None:
        at_all, _ = gpu_check.driver_needed(build)
        assert gpu_check.driver_version(driver) >= gpu_check.driver_version(at_all)


def test_a_gpu_that_torch_cannot_use_is_named_with_why_and_what_to_install(tmp_path):
    out = check(fake_nvidia_smi(tmp_path / "bin", "NVIDIA A100-SXM4-40GB, 550.54.15"))
    assert "NVIDIA A100-SXM4-40GB (driver 550.54.15)" in out, out
    if torch.version.cuda is None:  # CI's CPU build
        assert f"PyTorch {torch.__version__} is a CPU build: it cannot use" in out, out
    elif not torch.cuda.is_available():  # a CUDA build on a machine without a GPU it can use
        at_all, _ = gpu_check.driver_needed(torch.version.cuda)
        assert "cannot use it (" in out, out
        if gpu_check.driver_version("550.54.15") < gpu_check.driver_version(at_all):
            assert f"built for CUDA {torch.version.cuda}, which needs an NVIDIA driver >= {at_all}" in out, out
    else:
        pytest.skip("torch uses a real GPU here: the fake nvidia-smi cannot say otherwise")
    index = "https://download.pytorch.org/whl/cu126"
    assert f"make venv TORCH_INDEX={index}" in out and f"make kernel TORCH_INDEX={index}" in out, out


@pytest.mark.skipif(any(os.path.exists(f"{d}/nvidia-smi") for d in ("/usr/bin", "/bin")),
                    reason="this machine has a real nvidia-smi")
def test_no_nvidia_driver_is_nothing_to_fix(tmp_path):
    out = check("/usr/bin:/bin")
    assert out.startswith("No NVIDIA GPU to check: no nvidia-smi on PATH"), out


def test_a_driver_nvidia_smi_cannot_reach_is_reported(tmp_path):
    said = "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver."
    out = check(fake_nvidia_smi(tmp_path / "bin", said, code=9))
    assert out.strip() == f"nvidia-smi failed, so no GPU is usable: {said}", out


def test_the_environment_check_notebook_runs_the_snippet():
    nb = notebooks.read(notebooks.DEMOS / "0_environment_check.ipynb")
    cells = [c for c in nb.cells if notebooks.injected(c) == "gpu_check"]
    assert len(cells) == 1 and cells[0].source == notebooks.snippet_cell_source("gpu_check")
    assert "gpu_ok" in next(c for c in reversed(nb.cells) if c.cell_type == "code").source
