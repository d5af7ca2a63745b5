"""Reading, normalising and checking the course's notebooks (nbgrader metadata, outputs, snippets)."""
from __future__ import annotations

import re
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "source"
RELEASE = ROOT / "release"
DEMOS = ROOT / "notebooks"
SNIPPETS = Path(__file__).resolve().parent / "snippets"

# nbgrader 0.9.6 validates schema v3 strictly: these keys and no others.
NBGRADER_KEYS = {"schema_version", "grade", "solution", "locked", "task", "grade_id"}
HIDDEN_TESTS = re.compile(r"### BEGIN HIDDEN TESTS\n(.*?)### END HIDDEN TESTS", re.S)
SOLUTION = re.compile(r"### BEGIN SOLUTION\n(.*?)### END SOLUTION", re.S)
DEFINITION = re.compile(r"^(?:def|class)\s+(\w+)", re.M)


def read(path) -> nbformat.NotebookNode:
    return nbformat.read(str(path), as_version=4)


def write(nb, path) -> None:
    """Write `nb` without outputs or execution counts, the form notebooks are committed in."""
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    nbformat.write(nb, str(path))


def nbgrader(cell) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {})


def is_answer(cell) -> bool:
    meta = nbgrader(cell)
    return cell.cell_type == "code" and meta.get("solution", False) and not meta.get("grade", False)


def is_test(cell) -> bool:
    meta = nbgrader(cell)
    return cell.cell_type == "code" and meta.get("grade", False) and not meta.get("solution", False)


def defined_names(nb) -> list[str]:
    """Functions and classes the student defines in the answer cells, in notebook order."""
    return [name for cell in nb.cells if is_answer(cell) for name in DEFINITION.findall(cell.source)]


def source_notebooks() -> list[Path]:
    return sorted(SOURCE.glob("*/*.ipynb"))


def demo_notebooks() -> list[Path]:
    return sorted(DEMOS.glob("*.ipynb"))


def snippet_cell_source(name: str) -> str:
    """The exact text of a cell injected from `coursepack/snippets/<name>.py`."""
    body = (SNIPPETS / f"{name}.py").read_text().rstrip("\n")
    return f"# Generated from coursepack/snippets/{name}.py by `make sync`: edit it there.\n{body}"


def injected(cell) -> str | None:
    return cell.get("metadata", {}).get("coursepack", {}).get("inject")


def sync_snippets(path) -> bool:
    """Rewrite the injected cells of the notebook at `path`; return whether anything changed."""
    nb, changed = read(path), False
    for cell in nb.cells:
        name = injected(cell)
        if name and cell.source != snippet_cell_source(name):
            cell.source, changed = snippet_cell_source(name), True
    if changed:
        write(nb, path)
    return changed


def problems(path, graded: bool) -> list[str]:
    """Everything wrong with one committed notebook, as sentences naming the cell."""
    nb, found, ids = read(path), [], set()
    for index, cell in enumerate(nb.cells, 1):
        where = f"{path.relative_to(ROOT)} cell {index}"
        if cell.cell_type == "code" and (cell.outputs or cell.execution_count):
            found.append(f"{where}: has outputs; notebooks are committed without them (make sync strips them)")
        name = injected(cell)
        if name and cell.source != snippet_cell_source(name):
            found.append(f"{where}: differs from coursepack/snippets/{name}.py (run make sync)")
        meta = nbgrader(cell)
        if not meta:
            continue
        if not graded:
            found.append(f"{where}: nbgrader metadata in an ungraded demo notebook")
        expected = NBGRADER_KEYS | ({"points"} if meta.get("grade") else set())
        if set(meta) != expected:
            found.append(f"{where}: nbgrader keys {sorted(meta)}, expected {sorted(expected)}")
        if meta.get("schema_version") != 3:
            found.append(f"{where}: nbgrader schema_version must be 3")
        if meta.get("grade_id") in ids:
            found.append(f"{where}: duplicate grade_id {meta.get('grade_id')!r}")
        ids.add(meta.get("grade_id"))
        if meta.get("grade") and not meta.get("points", 0) > 0:
            found.append(f"{where}: graded cell {meta.get('grade_id')!r} has no points")
        if is_test(cell) and cell.source.count("### BEGIN HIDDEN TESTS") != 1:
            found.append(f"{where}: test cell {meta.get('grade_id')!r} needs exactly one hidden-test block")
        if meta.get("solution") and "### BEGIN SOLUTION" not in cell.source:
            found.append(f"{where}: answer cell {meta.get('grade_id')!r} has no ### BEGIN SOLUTION block")
    if graded and not any(is_test(c) for c in nb.cells):
        found.append(f"{path.relative_to(ROOT)}: a graded notebook with no test cells")
    if graded and not any(c.cell_type == "markdown" and nbgrader(c).get("grade") for c in nb.cells):
        found.append(f"{path.relative_to(ROOT)}: no manually graded written answer")
    return found
