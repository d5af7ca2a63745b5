"""Grade: one student's submission, one nbgrader Autograde run per notebook, into a gradebook.

`grade_student` is what a worker process (pool.py) does for each student it takes: stage the
submission (staging.py), run the converter (converter.SafeAutograde: the sandboxed kernel, the test
harness, the verdicts) on each gradable notebook into the worker's own gradebook, and return one
`NotebookResult` per expected notebook. Notebooks that could not be graded get 0 on every cell, so
the gradebook always holds the whole class.
"""
from __future__ import annotations

import ast
import shutil
import time
from pathlib import Path

import nbformat
from nbgrader import utils

from coursepack.grading import gradebooks
from coursepack.grading.course import course_directory, source_notebook
from coursepack.grading.problems import Kind, NotebookResult, Problem
from coursepack.grading.staging import stage


def grade_student(course: Path, config, assignment: str, student: str, notebook_names: list[str], db_url: str,
                  staging_root: Path, max_submission_bytes: int, max_submission_files: int) -> list[NotebookResult]:
    """Grade `student`'s notebooks into the gradebook at `db_url`; one result per expected notebook."""
    from nbgrader.api import Gradebook

    from coursepack.grading.converter import SafeAutograde

    coursedir = course_directory(config)
    submission = course / coursedir.submitted_directory / student / assignment
    sources = {name: source_notebook(course, coursedir, assignment, name) for name in notebook_names}
    staged = stage(submission, staging_root / student / assignment, notebook_names, sources, max_submission_bytes,
                   max_submission_files)
    timestamp = submission / "timestamp.txt"
    if staged.gradable and timestamp.is_file() and not timestamp.is_symlink():
        shutil.copyfile(timestamp, staged.folder / "timestamp.txt")
    results = {name: NotebookResult(student, name, problems=list(staged.problems[name])) for name in notebook_names}
    submitted = str(staging_root.relative_to(course)) if staging_root.is_relative_to(course) else str(staging_root)
    for name in staged.gradable:
        start = time.monotonic()
        converter = SafeAutograde(coursedir=course_directory(
            config, assignment_id=assignment, student_id=student, notebook_id=name, db_url=db_url,
            submitted_directory=submitted), config=config, force=True)
        outcome = utils.capture_log(converter)  # nbgrader's own: runs start() and keeps its log
        results[name].problems += converter.reports.get((student, name), {}).get("problems", [])
        if not outcome["success"]:  # nbgrader's own failure costs this notebook only
            results[name].problems.append(Problem(Kind.NBGRADER, f"nbgrader could not grade it: {_cause(outcome)}"))
        results[name].seconds = time.monotonic() - start
    with Gradebook(db_url, coursedir.course_id) as gradebook:
        for name, result in results.items():
            if name not in staged.gradable or any(p.kind is Kind.NBGRADER for p in result.problems):
                gradebooks.zero(gradebook, assignment, student, name)
            result.score, result.max_score = gradebooks.code_score(gradebook, assignment, student, name)
            result.gradebook = db_url
    shutil.rmtree(staging_root / student, ignore_errors=True)
    return list(results.values())


def _cause(outcome: dict) -> str:
    """The most useful line of a failed nbgrader run: its last own error, else the exception.

    A logged traceback is one record over many lines (only its first starts with `[ERROR]`): it is
    summed up by its last line, the exception's `type: message`, never by "Traceback (most recent ...".
    """
    records: list[list[str]] = []
    for line in outcome.get("log", "").splitlines():
        if line.startswith("["):
            records.append([line])
        elif records and line.strip():
            records[-1].append(line)
    errors = []
    for record in records:
        if not record[0].startswith("[ERROR]"):
            continue
        first = record[0].removeprefix("[ERROR]").strip()
        if "There was an error processing" in first or "Please see" in first:
            continue
        errors.append(_last_line(record[1:]) if first.startswith("Traceback") else first)
    error = outcome.get("error", "").strip()
    errors = [e for e in errors if e] or ([_last_line(error.splitlines())] if error else []) or ["unknown error"]
    return errors[-1][:300]


def _last_line(lines: list[str]) -> str:
    """A traceback's last least-indented line (the log indents them all): the exception's `type: message`."""
    lines = [line.expandtabs() for line in lines if line.strip()]
    if not lines:
        return ""
    margin = min(len(line) - len(line.lstrip()) for line in lines)
    return [line.strip() for line in lines if len(line) - len(line.lstrip()) == margin][-1]


def preload_modules(source_folder: Path) -> list[str]:
    """Modules the assignment's notebooks import: what each worker's kernel zygote imports once."""
    from IPython.core.inputtransformer2 import TransformerManager

    modules = {"IPython", "ipykernel.kernelapp", "coursepack.grading.bridge"}
    transformer = TransformerManager()
    for path in sorted(source_folder.glob("*.ipynb")):
        for cell in nbformat.read(str(path), as_version=4).cells:
            if cell.cell_type != "code":
                continue
            try:
                tree = ast.parse(transformer.transform_cell(cell.source))
            except SyntaxError:
                continue
            for node in ast.walk(tree):
                if isinstance(node, ast.Import):
                    modules.update(alias.name for alias in node.names)
                elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    modules.add(node.module)
    if "torch" in modules:  # torch.optim imports torch._dynamo at its first optimizer: 1-2 s per process
        modules.add("torch._dynamo")
    return sorted(modules)
