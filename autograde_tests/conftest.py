"""Shared fixtures: the reference notebooks, each executed once per test session."""
import importlib
from pathlib import Path

import pytest

from coursepack import notebooks

HERE = Path(__file__).resolve().parent
CASES = HERE / "cases"


def case_modules():
    """{notebook stem: module} for every autograde_tests/cases/<stem>.py."""
    return {path.stem: importlib.import_module(f"cases.{path.stem}") for path in sorted(CASES.glob("[!_]*.py"))}


def source_notebook(stem):
    return notebooks.SOURCE / "practical1" / f"{stem}.ipynb"


class _References:
    """Keeps one warm reference kernel at a time (tests are grouped by notebook)."""

    def __init__(self):
        self.stem, self.reference = None, None

    def get(self, stem):
        from harness import ReferenceNotebook

        if stem != self.stem:
            self.close()
            self.stem, self.reference = stem, ReferenceNotebook(source_notebook(stem))
        return self.reference

    def close(self):
        if self.reference is not None:
            self.reference.close()
        self.stem, self.reference = None, None


@pytest.fixture(scope="session")
def references():
    refs = _References()
    yield refs
    refs.close()
