"""The grader's command line: thin traitlets apps over api.py and feedback.py, in nbgrader's style.

    python -m coursepack.grading collect ASSIGNMENT [--archive=BULK.zip] [--roster=CSV]   (make collect)
    python -m coursepack.grading autograde ASSIGNMENT [--workers=N] [--student=GLOB] [--db-url=URL]
    python -m coursepack.grading autograde ASSIGNMENT --shard=I/N --shard-db=PATH   (one SLURM array task)
    python -m coursepack.grading merge ASSIGNMENT SHARD_DB...                       (after the array)
    python -m coursepack.grading feedback ASSIGNMENT [--student=GLOB]
    python -m coursepack.grading grades [--blackboard=ROSTER]                           (make grades)

Every setting is a configurable trait: in the course's nbgrader_config.py (`c.Sandbox.notebook_timeout
= 600`) or on the command line (`--Sandbox.notebook_timeout=600`); `--help-all` lists them all.
Exit codes: 0 everything graded normally; 1 some notebook needs a look; 2 the grader could not run.
"""
from __future__ import annotations

import sys
from pathlib import Path

from nbgrader.coursedir import CourseDirectory
from traitlets import Unicode
from traitlets.config import Application

from coursepack.grading.api import Grader, grade_class, merge_shards, print_result
from coursepack.grading.collect import Collector, PlatformCollector
from coursepack.grading.exports import BlackboardExport, GradeExports
from coursepack.grading.harness import HarnessSettings
from coursepack.grading.report import printable
from coursepack.grading.sandbox import Sandbox

COMMON_ALIASES = {"course": "GradingApp.course", "db-url": "CourseDirectory.db_url"}


class GradingApp(Application):
    """What every grading command shares: the course folder and its configuration."""

    course = Unicode(".", help="the course folder (holding nbgrader_config.py)").tag(config=True)
    classes = [Grader, Sandbox, HarnessSettings, CourseDirectory]
    aliases = COMMON_ALIASES

    def assignment(self) -> str:
        if len(self.extra_args) < 1:
            self.log.error("name the assignment, e.g. practical1")
            self.exit(2)
        return self.extra_args[0]

    def failed(self, error: Exception) -> None:
        print(f"{self.name}: {error}", file=sys.stderr)
        self.exit(2)


class AutogradeApp(GradingApp):
    name = "autograde"
    description = "Autograde every submission of an assignment in parallel, each kernel sandboxed, the tests " \
                  "run outside it, into the course's gradebook."
    shard = Unicode("", help="I/N: grade only every N-th student starting at I (one SLURM array task)"
                    ).tag(config=True)
    shard_db = Unicode("", help="with --shard: the task's own gradebook, merged later").tag(config=True)
    aliases = {**COMMON_ALIASES, "workers": "Grader.workers", "student": "Grader.student",
               "shard": "AutogradeApp.shard", "shard-db": "AutogradeApp.shard_db",
               "timeout": "Sandbox.notebook_timeout"}
    flags = {"quiet": ({"Grader": {"quiet": True}}, "no progress bar or per-student lines"),
             "no-bwrap": ({"Sandbox": {"use_bwrap": False}}, "do not use bubblewrap (weaker isolation)")}

    def start(self):
        assignment = self.assignment()
        shard = None
        if self.shard:
            first, count = (int(x) for x in self.shard.split("/"))
            shard = (first, count)
            if not self.shard_db:
                self.failed(ValueError("--shard needs --shard-db"))
        try:
            result = grade_class(Path(self.course), assignment, config=self.config, shard=shard,
                                 shard_db=Path(self.shard_db) if self.shard_db else None)
        except LookupError as error:
            self.failed(error)
        print(f"isolation: {result.isolation.get('level')}: {result.isolation.get('detail', '')}", file=sys.stderr)
        if not result.notebooks and shard is None:
            self.failed(FileNotFoundError(f"no submissions of {assignment} in submitted/"))
        print_result(result, Path(self.course))
        self.exit(result.exit_code)


class MergeApp(GradingApp):
    name = "merge"
    description = "Merge the gradebooks of finished `autograde --shard` runs into the course's gradebook."

    def start(self):
        assignment = self.assignment()
        shards = [Path(p) for p in self.extra_args[1:]]
        if not shards:
            self.failed(ValueError("name the shard gradebooks to merge"))
        result = merge_shards(Path(self.course), assignment, shards, config=self.config)
        print_result(result, Path(self.course))
        self.exit(result.exit_code)


class FeedbackApp(GradingApp):
    name = "feedback"
    description = "Feedback HTML for every autograded submission, without the hidden tests' code."
    student = Unicode("*", help="only students whose id matches this glob").tag(config=True)
    aliases = {**COMMON_ALIASES, "student": "FeedbackApp.student"}

    def start(self):
        from coursepack.grading.feedback import generate

        assignment = self.assignment()
        try:
            count = generate(Path(self.course), assignment, self.student, config=self.config)
        except Exception as error:  # noqa: BLE001 - nbgrader has logged the details
            self.failed(error)
        print(f"{count} feedback files under feedback/ (hidden test code removed)")


class CollectApp(GradingApp):
    name = "collect"
    description = "File every hand-in under submitted/<id>/ASSIGNMENT/: from the exchange (nbgrader collect) or, " \
                  "with --archive, from a learning platform's bulk download (nbgrader zip_collect)."
    archive = Unicode("", help="a bulk download (.zip, or a folder of its files) from the learning platform"
                      ).tag(config=True)
    classes = [*GradingApp.classes, Collector, PlatformCollector]
    aliases = {**COMMON_ALIASES, "archive": "CollectApp.archive", "roster": "Collector.roster",
               "pattern": "PlatformCollector.named_regexp"}

    def start(self):
        from coursepack.grading.collect import collect

        assignment = self.assignment()
        try:
            result = collect(Path(self.course), assignment, Path(self.archive) if self.archive else None,
                             config=self.config)
        except (OSError, RuntimeError, ValueError) as error:
            self.failed(error)
        print(result.summary())
        print(f"report: {result.report}")


class GradesApp(GradingApp):
    name = "grades"
    description = "Export grades: one row per test cell (item analysis) and, with --blackboard=ROSTER, " \
                  "Blackboard's Grade Centre upload file."
    blackboard = Unicode("", help="a roster CSV (id,username[,first_name,last_name]): also write Blackboard's "
                                  "Grade Centre upload file").tag(config=True)
    classes = [*GradingApp.classes, GradeExports, BlackboardExport]
    aliases = {**COMMON_ALIASES, "blackboard": "GradesApp.blackboard", "assignment": "GradeExports.assignments"}

    def start(self):
        from coursepack.grading.exports import export

        roster = Path(self.blackboard) if self.blackboard else None
        try:
            result = export(Path(self.course), roster=roster, config=self.config)
        except (OSError, ValueError) as error:
            self.failed(error)
        for problem in result.problems:
            print(f"grades: {printable(problem)}", file=sys.stderr)
        print("wrote " + ", ".join(str(f.name) for f in result.files))
        self.exit(result.exit_code)


class CoursepackGrading(Application):
    name = "coursepack.grading"
    description = "Grade a class: collect, autograde, merge (after a SLURM array), feedback, grades."
    subcommands = {
        "collect": (CollectApp, CollectApp.description),
        "autograde": (AutogradeApp, AutogradeApp.description),
        "merge": (MergeApp, MergeApp.description),
        "feedback": (FeedbackApp, FeedbackApp.description),
        "grades": (GradesApp, GradesApp.description),
    }

    def start(self):
        if self.subapp is None:
            self.print_subcommands()
            self.exit(2)
        self.subapp.start()


def main(argv=None) -> int:
    app = CoursepackGrading()
    try:
        app.initialize(argv)
        app.start()
    except SystemExit as done:
        return int(done.code or 0)
    return 0
