"""Kernels started as the grader starts them, for the sandbox's tests (test_grading_sandbox.py,
test_sandbox_isolation.py): an honest notebook's code, and `running` a sandboxed kernel."""
import asyncio
import contextlib
import os
import shutil

import pytest

from coursepack.grading.sandbox import Sandbox, SandboxKernelManager

ROOT = os.geteuid() == 0
needs_bwrap = pytest.mark.skipif(not shutil.which("bwrap"), reason="bubblewrap not installed (apt install bubblewrap)")
LEVELS = {"bubblewrap", "root", "user-namespaces", "limits-only"}
SMALL = ["IPython", "ipykernel.kernelapp"]  # a zygote that imports no torch: starts in a second
# Seconds a cell or a kernel start may take when it imports torch itself (HONEST in a SMALL zygote):
# a cold `import torch` of a CUDA build on a busy machine takes tens of seconds. Only a hang reaches it.
COLD = 300

# What an honest student does: plots, torch, a progress bar, a file handed in next to the notebook.
HONEST = """
import os, matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt, torch
from tqdm import tqdm
total = sum(i for i in tqdm(range(5)))
fig, ax = plt.subplots()
ax.plot([1, 2, 3])
fig.savefig("plot.png")
print(open("data.csv").read().strip(), total, os.path.getsize("plot.png") > 1000)
print(torch.arange(6.0).reshape(2, 3).sum(0), torch.get_num_threads() >= 1)
"""
HONEST_OUTPUT = "a,b\n1,2 10 True\ntensor([3., 5., 7.]) True\n"


@contextlib.contextmanager
def running(sandbox: Sandbox, cwd=None):
    """A sandboxed kernel, started and shut down as the grader does: yields (manager, run), run(code) -> stdout."""
    loop = asyncio.new_event_loop()
    manager = SandboxKernelManager(kernel_name="python3", sandbox=sandbox)
    loop.run_until_complete(manager.start_kernel(cwd=None if cwd is None else str(cwd)))
    client = manager.blocking_client()
    client.start_channels()

    def run(code: str, timeout: float = COLD, wait: bool = True) -> str:
        if not wait:  # for code that ends its kernel: there will be no reply
            client.execute(code)
            return ""
        seen = []

        def keep(message):
            content = message["content"]
            if message["msg_type"] == "stream" and content["name"] == "stdout":
                seen.append(content["text"])
            elif message["msg_type"] == "error":
                seen.append(f"{content['ename']}: {content['evalue']}\n")
        client.execute_interactive(code, timeout=timeout, output_hook=keep)
        return "".join(seen)

    try:
        client.wait_for_ready(timeout=COLD)
        yield manager, run
    finally:
        client.stop_channels()
        loop.run_until_complete(manager.shutdown_kernel(now=True))
        loop.close()


def alive(manager) -> bool:
    return asyncio.run(manager.is_alive())


def handed_in(folder):
    """A submission's folder: the notebook (never copied into the sandbox) and a data file beside it."""
    folder.mkdir(exist_ok=True)
    (folder / "data.csv").write_text("a,b\n1,2\n")
    (folder / "answers.ipynb").write_text("{}")
    return folder


