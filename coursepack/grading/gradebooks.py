"""One consistent gradebook from many graders: private copies for the workers, then a merge.

SQLite must not be written by several processes at once, and a server database should not see a
half-graded submission. So each worker (or SLURM array task) grades into its own SQLite gradebook,
cloned from the course's gradebook (any SQLAlchemy URL: SQLite by default, PostgreSQL with
`--db-url`), and `merge` copies the graded submissions into the course's gradebook through nbgrader's
own API, one student at a time, in one process. Merging is idempotent: it sets the autograder's
scores and comments, keeps any manual score a grader gave, and so gives the same gradebook however
often it runs.
"""
from __future__ import annotations

import sqlite3
from pathlib import Path

from nbgrader.api import Base, Gradebook, MissingEntry
from sqlalchemy import create_engine, inspect, select, text
from sqlalchemy.engine import make_url

from coursepack.grading.problems import NotebookResult, Status

# What the course defines (copied into every worker's gradebook); the rest are submissions.
DEFINITIONS = ("course", "assignment", "notebook", "base_cell", "source_cell", "grade_cells", "solution_cells",
               "task_cells")


def sqlite_path(url: str) -> Path | None:
    parsed = make_url(url)
    return Path(parsed.database) if parsed.get_backend_name() == "sqlite" and parsed.database else None


def clone(main_url: str, path: Path) -> str:
    """A private SQLite gradebook at `path` with the course's definitions (and, from SQLite, its submissions)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    source = sqlite_path(main_url)
    if source is not None:
        with sqlite3.connect(source) as src, sqlite3.connect(path) as dst:
            src.backup(dst)
        return f"sqlite:///{path}"
    url = f"sqlite:///{path}"
    src_engine, dst_engine = create_engine(main_url), create_engine(url)
    Base.metadata.create_all(dst_engine)
    with src_engine.connect() as src, dst_engine.begin() as dst:
        for table in Base.metadata.sorted_tables:
            if table.name in DEFINITIONS:
                rows = [dict(r._mapping) for r in src.execute(select(table))]
                if rows:
                    dst.execute(table.insert(), rows)
        if "alembic_version" in inspect(src_engine).get_table_names():
            version = src.execute(text("SELECT version_num FROM alembic_version")).scalar()
            dst.execute(text("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)"))
            dst.execute(text("INSERT INTO alembic_version (version_num) VALUES (:v)"), {"v": version})
    src_engine.dispose()
    dst_engine.dispose()
    return url


def zero(gradebook: Gradebook, assignment: str, student: str, notebook: str) -> None:
    """Record 0 for every graded cell of a notebook that could not be graded (missing, invalid, crashed)."""
    gradebook.update_or_create_student(student)
    gradebook.update_or_create_submission(assignment, student)
    submission = gradebook.find_submission_notebook(notebook, assignment, student)
    for grade in submission.grades:
        if grade.auto_score is None or grade.auto_score != 0:
            grade.auto_score = 0
        grade.needs_manual_grade = grade.manual_score is not None
    gradebook.db.commit()


def code_score(gradebook: Gradebook, assignment: str, student: str, notebook: str) -> tuple[float, float]:
    """(autograded score, maximum) of a notebook's test cells."""
    submission = gradebook.find_submission_notebook(notebook, assignment, student)
    grades = [g for g in submission.grades if g.cell_type == "code"]
    return sum(g.auto_score or 0 for g in grades), sum(g.max_score for g in grades)


def merge(worker_url: str, main_url: str, assignment: str, course_id: str, results: list[NotebookResult]) -> None:
    """Copy the graded notebooks of `results` from a worker's gradebook into the main one.

    A notebook whose grading failed (some marks may be missing) is flagged for the instructor.
    """
    with Gradebook(worker_url, course_id) as src, Gradebook(main_url, course_id) as dst:
        for result in results:
            student, notebook = result.student, result.notebook
            try:
                submitted = src.find_submission(assignment, student)
                graded = src.find_submission_notebook(notebook, assignment, student)
            except MissingEntry:
                zero(dst, assignment, student, notebook)
                continue
            record = src.find_student(student)
            dst.update_or_create_student(student, first_name=record.first_name, last_name=record.last_name,
                                         email=record.email, lms_user_id=record.lms_user_id)
            dst.update_or_create_submission(assignment, student, timestamp=submitted.timestamp)
            target = dst.find_submission_notebook(notebook, assignment, student)
            grades = {g.name: g for g in graded.grades}
            for grade in target.grades:
                source = grades.get(grade.name)
                grade.auto_score = source.auto_score if source is not None else 0
                grade.needs_manual_grade = grade.manual_score is not None or grade.auto_score is None
            comments = {c.name: c for c in graded.comments}
            for comment in target.comments:
                if comment.name in comments:
                    comment.auto_comment = comments[comment.name].auto_comment
            target.late_submission_penalty = graded.late_submission_penalty
            target.flagged = result.status is Status.FAILED
            dst.db.commit()


def merge_results(results: list[NotebookResult], target_url: str, assignment: str, course_id: str) -> None:
    """Merge each notebook from the gradebook that graded it into `target_url`; zeros where none did."""
    by_gradebook: dict[str, list[NotebookResult]] = {}
    for result in results:
        by_gradebook.setdefault(result.gradebook, []).append(result)
    for url, rows in sorted(by_gradebook.items()):
        if url:
            merge(url, target_url, assignment, course_id, rows)
        else:
            with Gradebook(target_url, course_id) as gradebook:
                for row in rows:
                    zero(gradebook, assignment, row.student, row.notebook)
