# Does PyTorch use the NVIDIA GPU that nvidia-smi sees? If not: why, and which PyTorch build to install.
import os
import re
import shutil
import subprocess
import warnings

# The Linux driver each CUDA release shipped with (NVIDIA's CUDA Toolkit release notes, "CUDA Toolkit
# and Corresponding Driver Versions"): from it on, every feature of that release works.
TOOLKIT_DRIVER = {"13.0": "580.65.06", "12.9": "575.51.03", "12.8": "570.26", "12.6": "560.28.03",
                  "12.5": "555.42.02", "12.4": "550.54.14", "12.1": "530.30.02", "11.8": "520.61.05"}
# The oldest driver that runs a CUDA major release at all (minor version compatibility): PyTorch's
# wheels bring their own CUDA libraries and need only this driver.
MAJOR_DRIVER = {"13": "580.65.06", "12": "525.60.13", "11": "450.80.02"}
# PyTorch's CUDA builds, newest first: each has its own package index.
PYTORCH_CUDA_BUILDS = ("13.0", "12.8", "12.6", "11.8")
PYTORCH_INDEX = "https://download.pytorch.org/whl/cu{}"


def driver_version(text):
    """'550.54.15' -> (550, 54, 15): driver versions compare as tuples."""
    return tuple(int(part) for part in re.findall(r"\d+", text))


def nvidia_gpus():
    """([(name, driver version)], problem): what nvidia-smi reports; problem says why it reports nothing."""
    if shutil.which("nvidia-smi") is None:
        return [], "no nvidia-smi on PATH: no NVIDIA driver is installed here"
    try:
        result = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version", "--format=csv,noheader"],
                                capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as error:
        return [], f"nvidia-smi did not run ({error})"
    said = (result.stdout + result.stderr).strip().splitlines()
    if result.returncode != 0:
        return [], f"nvidia-smi failed, so no GPU is usable: {said[0] if said else f'exit code {result.returncode}'}"
    gpus = [tuple(part.strip() for part in line.rsplit(",", 1)) for line in result.stdout.splitlines() if "," in line]
    return gpus, "" if gpus else "nvidia-smi lists no GPU"


def driver_needed(cuda):
    """(oldest driver that runs CUDA `cuda` at all, the driver its release shipped with or None)."""
    return MAJOR_DRIVER.get(cuda.split(".")[0]), TOOLKIT_DRIVER.get(cuda)


def suggested_build(driver):
    """The PyTorch CUDA build to install for `driver` (a version string), or None if none runs on it:
    the newest whose release driver it has, else the oldest of the newest major it can run."""
    have = driver_version(driver)
    for major in ("13", "12", "11"):
        builds = [cuda for cuda in PYTORCH_CUDA_BUILDS if cuda.split(".")[0] == major]
        if builds and have >= driver_version(MAJOR_DRIVER[major]):
            full = [cuda for cuda in builds if have >= driver_version(TOOLKIT_DRIVER[cuda])]
            return full[0] if full else builds[-1]
    return None


def install_advice(driver):
    """What to install instead, as commands (for a GPU with `driver`)."""
    cuda = suggested_build(driver)
    if cuda is None:
        return [f"No CUDA build of PyTorch runs on driver {driver} (CUDA 11 needs >= {MAJOR_DRIVER['11']}): "
                "ask for a newer NVIDIA driver, or use the CPU build (TORCH_SPEC=torch==2.13.0)."]
    index = PYTORCH_INDEX.format(cuda.replace(".", ""))
    return [f"Install PyTorch's build for CUDA {cuda}, which runs on driver {driver}:",
            f"  this repository's .venv:   rm -rf .venv && make venv TORCH_INDEX={index}",
            f"  a kernel from make kernel: rm -rf <its KERNEL_VENV> && make kernel TORCH_INDEX={index}",
            f"  any other environment:     pip install --force-reinstall torch --index-url {index}"]


def _cuda_error(torch):
    """Why torch's CUDA does not start, in torch's own words."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            torch.cuda.init()
        except Exception as error:  # noqa: BLE001 - its message is the point
            return str(error).strip().splitlines()[0]
    return str(caught[0].message).strip().splitlines()[0] if caught else "torch gives no reason"


def diagnose(torch=None):
    """(ok, lines): whether PyTorch can use every GPU nvidia-smi sees (True when it sees none), and why not."""
    gpus, problem = nvidia_gpus()
    if not gpus:
        nvidia_absent = problem.startswith("no nvidia-smi") or problem == "nvidia-smi lists no GPU"
        return nvidia_absent, [f"No NVIDIA GPU to check: {problem}." if nvidia_absent else problem]
    driver = gpus[0][1]
    seen = ", ".join(f"{name} (driver {version})" for name, version in gpus)
    if torch is None:
        return False, [f"nvidia-smi sees {seen}, but PyTorch is not installed.", *install_advice(driver)]
    built = torch.__version__
    if torch.version.cuda is None:
        kind = "a ROCm (AMD) build" if getattr(torch.version, "hip", None) else "a CPU build"
        return False, [f"PyTorch {built} is {kind}: it cannot use the {seen} that nvidia-smi sees.",
                       *install_advice(driver)]
    with warnings.catch_warnings(record=True):  # its warning is what _cuda_error reports
        warnings.simplefilter("always")
        usable = torch.cuda.is_available()
    if usable:
        return True, [f"PyTorch {built} (CUDA {torch.version.cuda}) uses {seen}."]
    cuda = torch.version.cuda
    at_all, full = driver_needed(cuda)
    have = driver_version(driver)
    lines = [f"nvidia-smi sees {seen}, but PyTorch {built} cannot use it ({_cuda_error(torch)})."]
    if at_all is not None and have < driver_version(at_all):
        lines.append(f"Why: this PyTorch is built for CUDA {cuda}, which needs an NVIDIA driver >= {at_all}; "
                     f"this machine's driver is {driver}.")
    elif full is not None and have < driver_version(full):
        lines.append(f"Why, probably: this PyTorch is built for CUDA {cuda}, released with driver {full}; "
                     f"driver {driver} runs it only through CUDA minor version compatibility.")
    else:
        hidden = os.environ.get("CUDA_VISIBLE_DEVICES")
        return False, [*lines, f"The driver ({driver}) is recent enough for CUDA {cuda}: something else hides the GPU"
                       + (f" (CUDA_VISIBLE_DEVICES={hidden!r})." if hidden is not None else
                          " (no access to /dev/nvidia*, or a container without the GPU).")]
    return False, [*lines, *install_advice(driver)]


if __name__ == "__main__":  # a notebook cell, or `python gpu_check.py` (make kernel runs it in the new venv)
    try:
        import torch
    except ImportError:
        torch = None
    gpu_ok, gpu_report = diagnose(torch)
    print("\n".join(gpu_report))
