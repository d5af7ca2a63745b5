"""Report: the class's results as a table for the terminal and as JSON for the record."""
from __future__ import annotations

import json
from pathlib import Path

from coursepack.grading.problems import NotebookResult, Status


def printable(text) -> str:
    """`text` safe for a terminal: a student id, file name or message can hold escape sequences."""
    text = str(text)
    return text if text.isprintable() else "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def summary_table(results: list[NotebookResult]) -> str:
    lines = [f"{'student':20} {'notebook':22} {'score':>7} {'max':>5}  status   reason"]
    for r in sorted(results, key=lambda r: (r.student, r.notebook)):
        reason = printable("; ".join(str(p) for p in r.problems))
        lines.append(f"{printable(r.student):20} {printable(r.notebook):22} {r.score:7g} {r.max_score:5g}  "
                     f"{r.status:8} {reason[:110]}")
    counts = {status: sum(r.status is status for r in results) for status in Status}
    lines.append(", ".join(f"{n} {s}" for s, n in counts.items()) + f" of {len(results)} notebooks")
    return "\n".join(lines)


def write_report(path: Path, assignment: str, isolation: dict, results: list[NotebookResult], seconds: float,
                 workers: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = [r.to_dict() for r in sorted(results, key=lambda r: (r.student, r.notebook))]
    path.write_text(json.dumps({"assignment": assignment, "isolation": isolation, "workers": workers,
                                "seconds": round(seconds, 2), "notebooks": rows}, indent=1) + "\n")


def read_report(path: Path) -> list[NotebookResult]:
    return [NotebookResult.from_dict(row) for row in json.loads(path.read_text())["notebooks"]]
