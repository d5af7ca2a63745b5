"""Reading, normalising and checking the course's notebooks (nbgrader metadata, outputs, snippets)."""
from __future__ import annotations

import ast
import copy
import os
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

# The one setting behind every "Open in Colab" badge (make sync REPOSITORY=owner/name BRANCH=...).
REPOSITORY = os.environ.get("COURSEPACK_REPOSITORY", "comp3547/practical1-coursepack")
BRANCH = os.environ.get("COURSEPACK_BRANCH", "main")
COLAB_SETUP = "colab_setup"


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


def grade_id(cell) -> str | None:
    """The cell's nbgrader grade id (None for a cell without one): the one place that reads it."""
    return nbgrader(cell).get("grade_id")


def is_answer(cell) -> bool:
    meta = nbgrader(cell)
    return cell.cell_type == "code" and meta.get("solution", False) and not meta.get("grade", False)


def is_test(cell) -> bool:
    meta = nbgrader(cell)
    return cell.cell_type == "code" and meta.get("grade", False) and not meta.get("solution", False)


def definitions(source: str) -> list[str]:
    """The functions and classes a cell (or a piece of code) defines at its top level: the one place
    that finds them. Code that does not parse defines nothing."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    return [node.name for node in tree.body if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)]


def defined_names(nb) -> list[str]:
    """Functions and classes the student defines in the answer cells, in notebook order."""
    return [name for cell in nb.cells if is_answer(cell) for name in definitions(cell.source)]


def answers(nb) -> dict[str, str]:
    """The answer cells (code and written) of a notebook, by grade_id."""
    return {grade_id(c): c.source for c in nb.cells if nbgrader(c).get("solution")}


def filled(release_nb, given: dict[str, str]) -> nbformat.NotebookNode:
    """A copy of the release notebook with the given answer cells filled in, as a student would."""
    nb = nbformat.from_dict(release_nb)
    for cell in nb.cells:
        if grade_id(cell) in given:
            cell.source = given[grade_id(cell)]
    return nb


def source_notebooks() -> list[Path]:
    return sorted(SOURCE.glob("*/*.ipynb"))


def demo_notebooks() -> list[Path]:
    return sorted(DEMOS.glob("*.ipynb"))


def snippet_cell_source(name: str) -> str:
    """The exact text of a cell injected from `coursepack/snippets/<name>.py`."""
    body = (SNIPPETS / f"{name}.py").read_text().rstrip("\n")
    title, body = split_title(body)
    return f"{title}# Generated from coursepack/snippets/{name}.py by `make sync`: edit it there.\n{body}"


def split_title(body: str) -> tuple[str, str]:
    """A snippet whose first line is a Colab `#@title` becomes a collapsed cell: (that line, the rest)."""
    first, _, rest = body.partition("\n")
    return (first + "\n", rest) if first.startswith("#@title") else ("", body)


# A collapsed code cell: Colab shows only the `#@title` of a "form" cell, JupyterLab hides `source_hidden` input.
COLLAPSED = {"cellView": "form", "jupyter": {"source_hidden": True}}


def is_collapsed(cell) -> bool:
    return all(cell.get("metadata", {}).get(key) == value for key, value in COLLAPSED.items())


def injected(cell) -> str | None:
    return cell.get("metadata", {}).get("coursepack", {}).get("inject")


def colab_path(path) -> str:
    """The repository path Colab opens for a notebook: the student release for a source notebook."""
    path = Path(path).resolve()
    if path.is_relative_to(SOURCE):
        path = RELEASE / path.relative_to(SOURCE)
    return path.relative_to(ROOT).as_posix()


def badge_source(path) -> str:
    url = f"https://colab.research.google.com/github/{REPOSITORY}/blob/{BRANCH}/{colab_path(path)}"
    return f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]({url})"


def is_badge(cell) -> bool:
    return cell.get("metadata", {}).get("coursepack", {}).get("badge", False)


BADGES_START, BADGES_END = "<!-- colab-badges:start (written by make sync) -->", "<!-- colab-badges:end -->"


def readme_badges() -> str:
    """The README's table of Colab badges, one per student notebook and demo."""
    rows = ["| notebook | open |", "| --- | --- |"]
    for path in sorted(RELEASE.glob("*/*.ipynb")) + demo_notebooks():
        rows.append(f"| `{path.relative_to(ROOT).as_posix()}` | {badge_source(path)} |")
    return "\n".join([BADGES_START, *rows, BADGES_END])


def readme_with_badges(text: str) -> str:
    start, end = text.index(BADGES_START), text.index(BADGES_END) + len(BADGES_END)
    return text[:start] + readme_badges() + text[end:]


def sync_snippets(path) -> bool:
    """Give the notebook at `path` its Colab badge and set-up cell, rewrite its injected cells, strip outputs.

    Returns whether anything changed (the file is only written then).
    """
    nb = read(path)
    before = nbformat.writes(nb)
    if not (nb.cells and is_badge(nb.cells[0])):
        nb.cells.insert(0, nbformat.v4.new_markdown_cell(metadata={"coursepack": {"badge": True}}))
    nb.cells[0].source = badge_source(path)
    if not any(injected(c) == COLAB_SETUP for c in nb.cells):
        first_code = next((i for i, c in enumerate(nb.cells) if c.cell_type == "code"), len(nb.cells))
        nb.cells.insert(first_code, nbformat.v4.new_code_cell(metadata={"coursepack": {"inject": COLAB_SETUP}}))
    for cell in nb.cells:
        name = injected(cell)
        if name:
            cell.source = snippet_cell_source(name)
            if split_title(cell.source)[0]:
                cell.metadata.update(copy.deepcopy(COLLAPSED))
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    changed = nbformat.writes(nb) != before
    if changed:
        write(nb, path)
    return changed


def problems(path, graded: bool) -> list[str]:
    """Everything wrong with one committed notebook, as sentences naming the cell."""
    nb, found, ids = read(path), [], set()
    if not (nb.cells and is_badge(nb.cells[0]) and nb.cells[0].source == badge_source(path)):
        found.append(f"{path.relative_to(ROOT)}: the first cell must be its Colab badge (run make sync)")
    code = [c for c in nb.cells if c.cell_type == "code"]
    if not (code and injected(code[0]) == COLAB_SETUP):
        found.append(f"{path.relative_to(ROOT)}: the first code cell must be the Colab set-up cell (run make sync)")
    for index, cell in enumerate(nb.cells, 1):
        where = f"{path.relative_to(ROOT)} cell {index}"
        if cell.cell_type == "code" and (cell.outputs or cell.execution_count):
            found.append(f"{where}: has outputs; notebooks are committed without them (make sync strips them)")
        name = injected(cell)
        if name and cell.source != snippet_cell_source(name):
            found.append(f"{where}: differs from coursepack/snippets/{name}.py (run make sync)")
        if name and split_title(cell.source)[0] and not is_collapsed(cell):
            found.append(f"{where}: the snippet {name!r} has a #@title, so its cell must be collapsed (run make sync)")
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
