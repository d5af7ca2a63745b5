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
    """One warm reference kernel per notebook, started on first use and kept for the session
    (pytest runs each notebook's reference test before its cases; about 300 MB a kernel)."""

    def __init__(self):
        self.kernels = {}

    def get(self, stem):
        from mutation import ReferenceNotebook

        if stem not in self.kernels:
            self.kernels[stem] = ReferenceNotebook(source_notebook(stem))
        return self.kernels[stem]

    def close(self):
        for reference in self.kernels.values():
            reference.close()
        self.kernels.clear()


@pytest.fixture(scope="session")
def references():
    refs = _References()
    yield refs
    refs.close()
