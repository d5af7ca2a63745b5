"""The worker pool: N processes each take one student at a time, each into its own gradebook.

Workers are forked (they start with nbgrader imported) and each keeps its own kernel zygote
(zygote.py; every kernel claims a uid of its own, sandbox.py) and SQLite gradebook
(gradebooks.clone). The coordinator hands out students, shows progress, and replaces a worker that
crashes or takes longer than `student_timeout` for one student: that student's notebooks are
recorded as failed and everyone else is graded normally.
"""
from __future__ import annotations

import importlib
import logging
import multiprocessing as mp
import os
import queue
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

from traitlets import log as traitlets_log

from coursepack.grading.problems import Kind, NotebookResult, Problem, Status
from coursepack.grading.report import printable


@dataclass(frozen=True)
class Job:
    """What every worker needs to know about the run."""

    course: str
    assignment: str
    notebooks: list[str]
    config: object  # traitlets Config (picklable, and inherited through fork)
    state_dir: str
    max_submission_bytes: int
    max_submission_files: int
    threads: int  # torch/OpenMP threads per kernel: the cores shared out among the workers


def worker_main(index: int, job: Job, db_url: str, students, results, log_path: str) -> None:
    """A worker process: grade students from `students` until it gets None; report on `results`."""
    from coursepack.grading.course import quiet_warnings
    from coursepack.grading.grade import grade_student, preload_modules
    from coursepack.grading.zygote import Zygote

    quiet_warnings()
    course, config = Path(job.course), job.config.copy()
    if "threads" not in config.Sandbox:
        config.Sandbox.threads = job.threads
    if "preload" not in config.Sandbox:
        config.Sandbox.preload = preload_modules(course / "source" / job.assignment)
    for name in config.Sandbox.preload:  # the harness of every notebook forks from here: import once
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001 - what cannot be imported here is the kernel's business
            pass
    handler = logging.FileHandler(log_path)  # (after the imports: some configure logging themselves)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.INFO, handlers=[handler], force=True)
    nbgrader_log = traitlets_log.get_logger()  # the CLI's Application's logger when there is one (forked)
    nbgrader_log.handlers, nbgrader_log.propagate = [handler], False
    nbgrader_log.setLevel(logging.INFO)
    staging = Path(job.state_dir) / "staged" / f"w{index}"
    try:
        while (student := students.get()) is not None:
            results.put(("start", index, student, None))
            try:
                graded = grade_student(course, config, job.assignment, student, job.notebooks, db_url, staging,
                                       job.max_submission_bytes, job.max_submission_files)
                results.put(("done", index, student, [r.to_dict() for r in graded]))
            except Exception:  # noqa: BLE001 - reported, and the worker goes on with the next student
                results.put(("error", index, student, traceback.format_exc()))
    finally:
        Zygote.stop_all()  # a forked worker ends without running atexit handlers


class Progress:
    """A progress bar with one line per graded student (tqdm; plain lines when not a terminal)."""

    def __init__(self, total: int, quiet: bool = False):
        from tqdm import tqdm

        self.quiet = quiet
        self.bar = tqdm(total=total, unit="student", disable=quiet or None, file=sys.stderr, dynamic_ncols=True)

    def student(self, student: str, results: list[NotebookResult]) -> None:
        score, top = sum(r.score for r in results), sum(r.max_score for r in results)
        worst = max(results, key=lambda r: (r.status is Status.FAILED, r.status is not Status.OK), default=None)
        status = worst.status if worst is not None else Status.OK
        line = f"{printable(student):24} {score:6g}/{top:<6g} {status}"
        if worst is not None and worst.status is not Status.OK and worst.problems:
            line += printable(f" ({worst.notebook}: {worst.problems[0]})")[:160]
        if not self.quiet:
            self.bar.write(line, file=sys.stderr)
        self.bar.set_postfix_str(f"last: {printable(student)} {status}")
        self.bar.update(1)

    def close(self) -> None:
        self.bar.close()


def _failed(student: str, notebooks: list[str], kind: Kind, why: str, gradebook: str = "") -> list[NotebookResult]:
    return [NotebookResult(student, n, problems=[Problem(kind, why)], gradebook=gradebook) for n in notebooks]


def run_workers(job: Job, roster: list[str], main_url: str, workers: int, run_dir: Path,
                student_timeout: float, quiet: bool = False) -> list[NotebookResult]:
    """Grade `roster` with `workers` processes, each into its own gradebook (named in each result)."""
    from coursepack.grading import gradebooks

    context = mp.get_context("fork")  # workers start with nbgrader imported (spawn would import it again)
    students, results = context.Queue(), context.Queue()
    urls: dict[int, str] = {}
    processes: dict[int, mp.Process] = {}
    current: dict[int, tuple[str, float]] = {}
    run_dir.mkdir(parents=True, exist_ok=True)
    count = max(1, min(workers, len(roster)))

    def start(index: int) -> None:
        if index not in urls:
            urls[index] = gradebooks.clone(main_url, run_dir / f"worker-{index}.db")
        # Not daemonic: a worker starts a harness process per notebook (the finally below stops workers).
        process = context.Process(target=worker_main, daemon=False, name=f"grader-{index}", args=(
            index, job, urls[index], students, results, str(run_dir / f"worker-{index}.log")))
        process.start()
        processes[index] = process

    for index in range(count):
        start(index)
    for student in roster:  # after the forks: the queue's feeder thread starts with the first put
        students.put(student)
    for _ in range(count):
        students.put(None)
    progress = Progress(len(roster), quiet)
    graded: list[NotebookResult] = []
    done: set[str] = set()

    def finish(student: str, rows: list[NotebookResult]) -> None:
        graded.extend(rows)
        done.add(student)
        progress.student(student, rows)

    try:
        while len(done) < len(roster):
            try:
                kind, index, student, payload = results.get(timeout=1.0)
            except queue.Empty:
                for index, process in list(processes.items()):
                    student, since = current.get(index, (None, 0.0))
                    overdue = bool(student and time.monotonic() - since > student_timeout)
                    if overdue:
                        process.kill()
                        process.join()
                    if student and not process.is_alive():
                        why = "it took too long" if overdue else f"exit code {process.exitcode}"
                        finish(student, _failed(student, job.notebooks, Kind.WORKER_CRASHED,
                                                f"the grader worker crashed while grading this student ({why})"))
                        current.pop(index)
                        students.put(None)  # the replacement worker's own stop signal
                        start(index)
                if not any(p.is_alive() for p in processes.values()) and len(done) < len(roster):
                    raise RuntimeError("every grader worker stopped before the class was graded") from None
                continue
            if kind == "start":
                current[index] = (student, time.monotonic())
                continue
            current.pop(index, None)
            if kind == "error":
                finish(student, _failed(student, job.notebooks, Kind.GRADER_ERROR,
                                        f"grader error: {payload.strip().splitlines()[-1]}", urls[index]))
            else:
                finish(student, [NotebookResult.from_dict(r) for r in payload])
    finally:
        progress.close()
        for process in processes.values():
            process.join(timeout=10)
            if process.is_alive():
                process.kill()
    return graded


def cores() -> int:
    return os.cpu_count() or 1
