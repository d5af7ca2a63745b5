"""Benchmark: stock `nbgrader autograde` against `make autograde` on the same generated class.

    python -m coursepack.grading.bench [--students 6] [--workers N] [--assignment practical1]
    make bench-grading                 (STUDENTS=40 for the full class)

A class is generated from the course's own notebooks (s000 the instructor's answers, s001 the blank
release, the others a deterministic mix of right answers and stubs), copied twice, and graded by
stock nbgrader (one process, all students) and by `make autograde` (python -m coursepack.grading
autograde), each as a fresh process so start-up counts for both. Prints wall time, per-notebook cost
and the speed-up, and checks that every cell's score is identical. Timings on a shared machine are noisy:
the load average before and after is printed with them.

Then what the process boundary costs: every reference notebook runs once in a plain kernel, and
each of its test cells runs twice in that kernel's state, natively (as stock nbgrader runs it) and
through the harness and the bridge (as `make autograde` runs it); the table gives both times per
notebook.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from coursepack import notebooks
from coursepack.grading import classroom


def timed(cmd: list[str], course: Path) -> tuple[float, subprocess.CompletedProcess]:
    env = classroom.env(course)
    start = time.monotonic()
    result = subprocess.run(cmd, cwd=course, env=env, capture_output=True, text=True)
    return time.monotonic() - start, result


def cell_scores(course: Path, assignment: str) -> dict:
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gradebook:
        return {(s.student.id, nb.name, g.name): g.auto_score
                for s in gradebook.find_assignment(assignment).submissions
                for nb in s.notebooks for g in nb.grades if g.cell_type == "code"}


def boundary_cost(path: Path) -> tuple[float, float, int]:
    """(seconds natively, seconds through the harness, test cells) for a reference notebook's tests."""
    import importlib

    from jupyter_client.manager import start_new_kernel

    from coursepack.grading.grade import preload_modules
    from coursepack.grading.harness import NotebookTests, TestHarness, run_with_client, warm_up_command

    nb = notebooks.read(path)
    harness = TestHarness(NotebookTests.from_notebook(nb))
    env = dict(os.environ, NBGRADER_EXECUTION="autograde", MPLBACKEND="Agg")
    manager, client = start_new_kernel(kernel_name="python3", cwd=str(path.parent), env=env,
                                       stderr=subprocess.DEVNULL)  # (its "running over TCP" warning)
    modules = preload_modules(path.parent)  # both sides warm, as the grader's zygote and worker are
    client.execute_interactive(warm_up_command(modules), timeout=600, output_hook=lambda message: None)
    for name in modules:
        importlib.import_module(name)
    native = bridged = 0.0
    cells = 0
    try:
        for cell in nb.cells:
            if cell.cell_type != "code":
                continue
            start = time.monotonic()
            reply = client.execute_interactive(cell.source, timeout=600, output_hook=lambda message: None)
            if not notebooks.is_test(cell):
                continue
            native += time.monotonic() - start
            start = time.monotonic()
            verdict = run_with_client(harness, client, notebooks.grade_id(cell), timeout=600)
            bridged += time.monotonic() - start
            cells += 1
            if reply["content"]["status"] != "ok" or not verdict.passed:
                raise RuntimeError(f"{path.name}: {notebooks.grade_id(cell)} fails on the reference answers")
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)
    return native, bridged, cells


def print_boundary_cost(paths: list[Path]) -> None:
    print(f"\n{'process boundary':28} {'test cells':>10} {'native s':>9} {'harness s':>10} {'cost s':>7}")
    totals = [0.0, 0.0, 0]
    for path in paths:
        native, bridged, cells = boundary_cost(path)
        totals = [totals[0] + native, totals[1] + bridged, totals[2] + cells]
        print(f"{path.stem:28} {cells:10} {native:9.2f} {bridged:10.2f} {bridged - native:+7.2f}")
    print(f"{'per notebook (mean)':28} {totals[2] / len(paths):10.1f} {totals[0] / len(paths):9.2f} "
          f"{totals[1] / len(paths):10.2f} {(totals[1] - totals[0]) / len(paths):+7.2f}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--students", type=int, default=6, help="class size (40 for the full benchmark)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--assignment", default="practical1")
    parser.add_argument("--keep", type=Path, help="build the courses here and keep them")
    args = parser.parse_args(argv)
    source = notebooks.SOURCE / args.assignment
    sources = {p.stem: notebooks.read(p) for p in sorted(source.glob("*.ipynb"))}
    if not sources:
        print(f"no notebooks in {source}", file=sys.stderr)
        return 2
    root = args.keep or Path(tempfile.mkdtemp(prefix="bench-grading-"))
    try:
        base = classroom.make_course(root / "base", args.assignment, sources)
        roster = classroom.generate_class(base, args.assignment, args.students)
        stock_course = classroom.copy_course(base, root / "stock")
        ours_course = classroom.copy_course(base, root / "ours")
        jobs = len(roster) * len(sources)
        print(f"{len(roster)} students x {len(sources)} notebooks = {jobs} notebooks; {os.cpu_count()} cores; "
              f"load average before: {os.getloadavg()[0]:.2f}", flush=True)
        # nbgrader's 4 s IOPub timeout makes stock give up on whole students on a loaded machine; 30 s (as
        # ours uses 15 s) keeps the comparison about speed. It changes no score.
        stock = timed([sys.executable, "-m", "nbgrader", "autograde", args.assignment,
                       "--ExecutePreprocessor.iopub_timeout=30"], stock_course)
        print(f"stock nbgrader autograde done in {stock[0]:.1f} s", flush=True)
        ours = timed([sys.executable, "-m", "coursepack.grading", "autograde", args.assignment, "--quiet",
                      f"--workers={args.workers}"], ours_course)
        print(f"make autograde done in {ours[0]:.1f} s", flush=True)
        if stock[1].returncode != 0:
            print(stock[1].stderr[-3000:], file=sys.stderr)
        if ours[1].returncode not in (0, 1):
            print(ours[1].stdout[-3000:] + ours[1].stderr[-3000:], file=sys.stderr)
        expected, got = cell_scores(stock_course, args.assignment), cell_scores(ours_course, args.assignment)
        differences = sorted(k for k in expected.keys() | got.keys() if expected.get(k) != got.get(k))
        # (No CPU column: the sandboxed kernels are not descendants this process can account for.)
        print(f"\n{'grader':40} {'wall s':>8} {'s/notebook':>11} {'speed-up':>9}")
        for label, (wall, _) in (("stock nbgrader autograde (1 process)", stock),
                                    (f"make autograde ({args.workers} workers, sandboxed)", ours)):
            print(f"{label:40} {wall:8.1f} {wall / jobs:11.2f} {stock[0] / wall:8.2f}x")
        print(f"load average after: {os.getloadavg()[0]:.2f}")
        print(f"scores: {len(expected)} test cells, "
              + ("identical" if not differences else f"{len(differences)} DIFFER, e.g. "
                 + "; ".join(f"{k}: stock {expected.get(k)} ours {got.get(k)}" for k in differences[:5])))
        if differences:
            print(ours[1].stdout[-4000:])
            return 1
        print_boundary_cost(sorted(source.glob("*.ipynb")))
        print(f"reproduce: make bench-grading{' STUDENTS=' + str(args.students) if args.students != 6 else ''}")
        return 0
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
