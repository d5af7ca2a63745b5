"""A throw-away copy of a course with a generated class of submissions (for the benchmark and the tests)."""
from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import nbformat

from coursepack import notebooks
from coursepack.nbgrader_cli import jupyter_env, nbgrader

STUB = "# YOUR CODE HERE\nraise NotImplementedError()"


def make_course(folder: Path, assignment: str, sources: dict[str, nbformat.NotebookNode],
                config: str | None = None, extra: str = "") -> Path:
    """A course at `folder` holding `sources` as source/<assignment>/, released with nbgrader."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "source" / assignment).mkdir(parents=True, exist_ok=True)
    for name, nb in sources.items():
        nbformat.write(nb, str(folder / "source" / assignment / f"{name}.ipynb"))
    text = config if config is not None else (notebooks.ROOT / "nbgrader_config.py").read_text()
    (folder / "nbgrader_config.py").write_text(text + extra)
    nbgrader("generate_assignment", assignment, "--force", course=folder, env=env(folder))
    return folder


def env(course: Path, **extra: str) -> dict[str, str]:
    """nbgrader's environment for `course`: its own gradebook unless `extra` names one (COURSEPACK_DB)."""
    environment = jupyter_env(course / ".jupyter", COURSEPACK_OFFLINE="1", MPLBACKEND="Agg")
    environment.pop("COURSEPACK_DB", None)
    environment.update(extra)
    return environment


def release(course: Path, assignment: str, name: str) -> nbformat.NotebookNode:
    return notebooks.read(course / "release" / assignment / f"{name}.ipynb")


def submit(course: Path, assignment: str, student: str, name: str, nb_or_text) -> Path:
    folder = course / "submitted" / student / assignment
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.ipynb"
    if isinstance(nb_or_text, str):
        path.write_text(nb_or_text)
    else:
        nbformat.write(nb_or_text, str(path))
    return path


def mixed_answers(source_nb, student: str) -> dict[str, str]:
    """A deterministic mix: about two thirds of the code answers right, the rest left as the stub."""
    mix = {}
    for grade_id, text in notebooks.answers(source_nb).items():
        digest = hashlib.sha256(f"{student}/{grade_id}".encode()).digest()[0]
        mix[grade_id] = text if digest % 3 else STUB
    return mix


def generate_class(course: Path, assignment: str, students: int) -> list[str]:
    """`students` submissions of every notebook: s000 the instructor's answers, s001 blank, the rest mixed."""
    roster = [f"s{i:03d}" for i in range(students)]
    for path in sorted((course / "source" / assignment).glob("*.ipynb")):
        source_nb, release_nb = notebooks.read(path), release(course, assignment, path.stem)
        reference = notebooks.answers(source_nb)
        for index, student in enumerate(roster):
            given = reference if index == 0 else {} if index == 1 else mixed_answers(source_nb, student)
            submit(course, assignment, student, path.stem, notebooks.filled(release_nb, given))
    return roster


def copy_course(course: Path, folder: Path) -> Path:
    """An independent copy (source, release, submissions, config and gradebook)."""
    shutil.copytree(course, folder, ignore=shutil.ignore_patterns(".grading", "autograded", "feedback"))
    return folder
