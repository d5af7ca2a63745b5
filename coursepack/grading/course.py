"""A course folder as nbgrader sees it: its configuration, folders and gradebook."""
from __future__ import annotations

import fnmatch
import warnings
from pathlib import Path

from traitlets.config import Config
from traitlets.config.loader import PyFileConfigLoader


def quiet_warnings() -> None:
    """nbgrader 0.9.6 with SQLAlchemy 2.1 warns on every submission it creates: noise, not errors."""
    warnings.filterwarnings("ignore", message=".*not in session.*")
    warnings.filterwarnings("ignore", category=DeprecationWarning)


def load_config(course: Path, overrides: Config | None = None) -> Config:
    """The course's nbgrader_config.py as nbgrader would read it, with `overrides` on top."""
    config = Config()
    if (course / "nbgrader_config.py").exists():
        config.merge(PyFileConfigLoader("nbgrader_config.py", path=str(course)).load_config())
    if overrides is not None:
        config.merge(overrides)
    config.CourseDirectory.root = str(course)
    return config


def course_directory(config: Config, **traits):
    from nbgrader.coursedir import CourseDirectory

    return CourseDirectory(config=config, **traits)


def expected_notebooks(db_url: str, course_id: str, assignment: str) -> list[str]:
    """The assignment's notebooks, as `generate_assignment` recorded them in the gradebook."""
    from nbgrader.api import Gradebook, MissingEntry

    with Gradebook(db_url, course_id) as gradebook:
        try:
            return sorted(n.name for n in gradebook.find_assignment(assignment).notebooks)
        except MissingEntry:
            raise LookupError(f"assignment {assignment!r} is not in the gradebook: run `make release` "
                              "(nbgrader generate_assignment) first") from None


def submitters(course: Path, coursedir, assignment: str, pattern: str = "*") -> list[str]:
    """Students with a submission folder for `assignment` (links included: staging refuses them)."""
    submitted = course / coursedir.submitted_directory
    if not submitted.is_dir():
        return []
    return sorted(p.name for p in submitted.iterdir() if not p.name.startswith(".")
                  and fnmatch.fnmatch(p.name, pattern) and (p / assignment).exists())


def source_notebook(course: Path, coursedir, assignment: str, notebook: str) -> Path:
    return course / coursedir.source_directory / assignment / f"{notebook}.ipynb"
