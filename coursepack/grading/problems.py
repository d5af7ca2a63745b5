"""What can go wrong with a submission, as records: the report and the exit code are derived from them.

A stage that finds something wrong appends a `Problem` (its kind, the cell if there is one, and a
sentence for the instructor); nothing ever decides a status by reading that sentence. Each kind says
what it does to the notebook's status: `missing` (nothing to grade), `failed` (grading could not run
to the end, so some marks may be missing: look at it) or nothing (a note: the marks are right).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import StrEnum


class Status(StrEnum):
    OK = "ok"
    MISSING = "missing"
    FAILED = "failed"


class Kind(StrEnum):
    # the submission as handed in
    NOT_SUBMITTED = "not-submitted"
    INVALID_NOTEBOOK = "invalid-notebook"
    REFUSED_FILE = "refused-file"  # a link, device, FIFO or path outside the submission: not copied
    REFUSED_SUBMISSION = "refused-submission"  # the submission folder itself is not a plain folder
    RENAMED = "renamed"  # graded under the name whose cells it matches
    CELL_METADATA = "cell-metadata"  # nbgrader metadata that matches no cell of the assignment
    EDITOR_FORMAT = "editor-format"  # saved by another editor (Colab, VS Code, JupyterLab 3): format normalised
    METADATA_RESTORED = "metadata-restored"  # lost or edited nbgrader metadata put back from the release
    # collecting hand-ins (collect.py) and exporting grades (exports.py)
    NOT_A_NOTEBOOK = "not-a-notebook"  # a file handed in that is not a notebook: not filed
    UNRECOGNISED_FILE = "unrecognised-file"  # a file whose name does not follow the platform's pattern
    OLDER_ATTEMPT = "older-attempt"  # an earlier attempt, superseded by the newest: not filed
    DUPLICATE_FILE = "duplicate-file"  # two files of one attempt for the same notebook: one filed
    UNKNOWN_STUDENT = "unknown-student"  # an id or user name that the roster does not know
    # running it
    CELL_TIMEOUT = "cell-timeout"
    OUTPUT_TRUNCATED = "output-truncated"
    NOTEBOOK_TIMEOUT = "notebook-timeout"
    KERNEL_DIED = "kernel-died"
    KERNEL_START = "kernel-start"
    KERNEL_STUCK = "kernel-stuck"  # busy after an interrupt, then killed
    # the grader itself
    HARNESS = "harness"  # the trusted test harness failed (not the student's doing)
    NBGRADER = "nbgrader"
    WORKER_CRASHED = "worker-crashed"
    GRADER_ERROR = "grader-error"


# What each kind does to a notebook's status (kinds not listed are notes).
EFFECT = {
    Kind.NOT_SUBMITTED: Status.MISSING,
    Kind.INVALID_NOTEBOOK: Status.FAILED,
    Kind.REFUSED_SUBMISSION: Status.FAILED,
    Kind.NOTEBOOK_TIMEOUT: Status.FAILED,
    Kind.KERNEL_DIED: Status.FAILED,
    Kind.KERNEL_START: Status.FAILED,
    Kind.KERNEL_STUCK: Status.FAILED,
    Kind.HARNESS: Status.FAILED,
    Kind.NBGRADER: Status.FAILED,
    Kind.WORKER_CRASHED: Status.FAILED,
    Kind.GRADER_ERROR: Status.FAILED,
}
SEVERITY = {Status.OK: 0, Status.MISSING: 1, Status.FAILED: 2}


@dataclass(frozen=True)
class Problem:
    kind: Kind
    message: str
    cell: str | None = None  # the grade id (or position) of the cell it concerns

    def __str__(self) -> str:
        return f"cell {self.cell}: {self.message}" if self.cell else self.message

    @classmethod
    def from_dict(cls, data: dict) -> Problem:
        return cls(Kind(data["kind"]), data["message"], data.get("cell"))


def status_of(problems: list[Problem]) -> Status:
    """The worst effect of any problem: ok when there are only notes."""
    effects = [EFFECT.get(p.kind, Status.OK) for p in problems]
    return max(effects, key=SEVERITY.__getitem__, default=Status.OK)


@dataclass
class NotebookResult:
    """One student's notebook after grading: its score, its problems and where it was graded."""

    student: str
    notebook: str
    score: float = 0.0
    max_score: float = 0.0
    problems: list[Problem] = field(default_factory=list)
    seconds: float = 0.0
    gradebook: str = ""  # the gradebook (URL) it was graded into; empty when it never reached one

    @property
    def status(self) -> Status:
        return status_of(self.problems)

    def to_dict(self) -> dict:
        data = asdict(self)
        data["status"] = str(self.status)
        data["problems"] = [{"kind": str(p.kind), "message": p.message, "cell": p.cell} for p in self.problems]
        return data

    @classmethod
    def from_dict(cls, data: dict) -> NotebookResult:
        fields = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        fields["problems"] = [Problem.from_dict(p) for p in data.get("problems", [])]
        return cls(**fields)
