"""Benchmark: stock `nbgrader autograde` against `make autograde` on the same generated class.

    python -m coursepack.grading.bench [--students 6] [--workers N] [--assignment practical1]
    make bench-grading                 (STUDENTS=40 for the full class)

A class is generated from the course's own notebooks (s000 the instructor's answers, s001 the blank
release, the others a deterministic mix of right answers and stubs), copied twice, and graded by
stock nbgrader (one process, all students) and by `make autograde` (python -m coursepack.grading
autograde), each as a fresh process so start-up counts for both. Prints wall time, per-notebook cost
and the speed-up, and checks that every cell's score is identical. Timings on a shared machine are noisy:
the load average before and after is printed with them.
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
        return 1 if differences else 0
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
