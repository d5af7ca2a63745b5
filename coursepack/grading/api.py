"""Grading a class from Python: what `make autograde`, the SLURM array and the tests all call.

    from coursepack.grading.api import grade_class
    result = grade_class(Path("."), "practical1", workers=2)
    result.exit_code, result.notebooks, result.report

Before and after grading: `collect` (collect.py: hand-ins into submitted/, from the exchange or
a learning platform's bulk download) and `export_grades` (exports.py: item analysis, Blackboard).

The pipeline: stage (staging.py) → grade (grade.py, in the workers of pool.py) → merge
(gradebooks.py) → report (report.py). Settings come from the course's nbgrader_config.py
(`c.Grader.*`, `c.Sandbox.*`, `c.HarnessSettings.*`, nbgrader's own), with `config` on top.
"""
from __future__ import annotations

import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from traitlets import Bool, Integer, Unicode
from traitlets.config import Config, Configurable

from coursepack.grading import gradebooks
from coursepack.grading.course import (
    course_directory,
    expected_notebooks,
    load_config,
    quiet_warnings,
    submitters,
)
from coursepack.grading.pool import Job, cores, run_workers
from coursepack.grading.problems import NotebookResult, Status
from coursepack.grading.report import read_report, summary_table, write_report


class Grader(Configurable):
    """How a class is graded (configurable as `c.Grader.<name>` in nbgrader_config.py)."""

    workers = Integer(0, help="parallel graders; 0: one per core").tag(config=True)
    student = Unicode("*", help="grade only the students whose id matches this glob").tag(config=True)
    state_dir = Unicode(".grading", help="the grader's own folder (staging, worker gradebooks, logs, reports), "
                                         "relative to the course").tag(config=True)
    student_slack = Integer(300, help="seconds a worker may spend on one student beyond the notebooks' own "
                                      "time limits before it is replaced").tag(config=True)
    max_submission_bytes = Integer(256 * 2**20, help="files copied from one submission, bytes in all"
                                   ).tag(config=True)
    max_submission_files = Integer(1000, help="files copied from one submission, at most").tag(config=True)
    quiet = Bool(False, help="no progress bar or per-student lines").tag(config=True)


@dataclass
class ClassResult:
    """The outcome of grading (part of) a class."""

    assignment: str
    notebooks: list[NotebookResult] = field(default_factory=list)
    isolation: dict = field(default_factory=dict)
    seconds: float = 0.0
    report: Path | None = None

    @property
    def exit_code(self) -> int:
        """0: all graded normally; 1: some notebook failed to grade and needs a look."""
        return 1 if any(r.status is Status.FAILED for r in self.notebooks) else 0

    def summary(self) -> str:
        return summary_table(self.notebooks)


def grade_class(course: Path, assignment: str, *, config: Config | None = None, workers: int | None = None,
                students: str | None = None, db_url: str | None = None, shard: tuple[int, int] | None = None,
                shard_db: Path | None = None, quiet: bool | None = None) -> ClassResult:
    """Grade every submission of `assignment` in `course`/submitted into the course's gradebook.

    `shard=(i, n)` grades every n-th student starting at i into its own gradebook `shard_db` (one
    SLURM array task), to be merged later with `merge_shards`.
    """
    quiet_warnings()
    course = course.resolve()
    config = load_config(course, config)
    if db_url:
        config.CourseDirectory.db_url = db_url
    grader = Grader(config=config)
    workers = workers or grader.workers or cores()
    coursedir = course_directory(config)
    main_url, course_id = coursedir.db_url, coursedir.course_id
    state = course / grader.state_dir
    from coursepack.grading.sandbox import Sandbox, isolation

    sandbox = Sandbox(config=config)
    result = ClassResult(assignment, isolation=asdict(isolation(sandbox.use_bwrap, sandbox.user_namespaces)))
    start = time.monotonic()
    notebooks = expected_notebooks(main_url, course_id, assignment)
    roster = submitters(course, coursedir, assignment, students or grader.student)
    if shard is not None:
        roster = roster[shard[0]::shard[1]]
    label = f"shard-{shard[0]}-{shard[1]}" if shard else "local"
    run_dir = state / "run" / label
    shutil.rmtree(run_dir, ignore_errors=True)
    job = Job(str(course), assignment, notebooks, config, str(state), grader.max_submission_bytes,
              grader.max_submission_files, threads=max(1, cores() // workers))
    per_student = sandbox.notebook_timeout * len(notebooks) + grader.student_slack
    quiet = grader.quiet if quiet is None else quiet
    if roster:
        result.notebooks = run_workers(job, roster, main_url, workers, run_dir, per_student, quiet)
    target = main_url
    result.report = state / f"{assignment}-report.json"
    if shard is not None:
        target = gradebooks.clone(main_url, shard_db.resolve())
        result.report = shard_db.with_suffix(".json")
    gradebooks.merge_results(result.notebooks, target, assignment, course_id)
    result.seconds = time.monotonic() - start
    write_report(result.report, assignment, result.isolation, result.notebooks, result.seconds, workers)
    return result


def merge_shards(course: Path, assignment: str, shard_dbs: list[Path], *, config: Config | None = None,
                 db_url: str | None = None) -> ClassResult:
    """Merge the gradebooks (and reports) of finished `grade_class(shard=...)` runs into the course gradebook."""
    quiet_warnings()
    course = course.resolve()
    config = load_config(course, config)
    if db_url:
        config.CourseDirectory.db_url = db_url
    coursedir = course_directory(config)
    start = time.monotonic()
    result = ClassResult(assignment)
    for shard in shard_dbs:
        rows = read_report(shard.with_suffix(".json"))
        for row in rows:
            row.gradebook = f"sqlite:///{shard.resolve()}"
        gradebooks.merge_results(rows, coursedir.db_url, assignment, coursedir.course_id)
        result.notebooks += rows
    result.seconds = time.monotonic() - start
    result.report = course / Grader(config=config).state_dir / f"{assignment}-report.json"
    write_report(result.report, assignment, result.isolation, result.notebooks, result.seconds, 0)
    return result


def print_result(result: ClassResult, course: Path) -> None:
    print(result.summary())
    report = result.report
    shown = report.relative_to(course.resolve()) if report and report.is_relative_to(course.resolve()) else report
    print(f"graded {len({r.student for r in result.notebooks})} students, {len(result.notebooks)} notebooks in "
          f"{result.seconds:.1f} s; report: {shown}", file=sys.stdout)


def collect(course: Path, assignment: str, archive: Path | None = None, *, config: Config | None = None,
            roster: Path | None = None):
    """File every hand-in under submitted/ (`make collect`); see coursepack.grading.collect.collect."""
    from coursepack.grading.collect import collect as collect_hand_ins

    return collect_hand_ins(course, assignment, archive, config=config, roster=roster)


def export_grades(course: Path, *, roster: Path | None = None, config: Config | None = None):
    """grades-items.csv and, with `roster`, grades-blackboard.csv (`make grades`); see coursepack.grading.exports."""
    from coursepack.grading.exports import export

    return export(course, roster=roster, config=config)
