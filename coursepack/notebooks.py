"""Reading, normalising and checking the course's notebooks (nbgrader metadata, outputs, snippets)."""
from __future__ import annotations

import ast
import copy
import os
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

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

# The one setting naming the student repository (`make publish` writes it; this one holds the answers and is
# never published): every badge and link students see points there (make sync REPOSITORY=owner/name
# BRANCH=branch-or-tag). It has the same layout as this repository: release/<assignment>/, notebooks/.
REPOSITORY = os.environ.get("COURSEPACK_REPOSITORY", "comp3547/practical1")
BRANCH = os.environ.get("COURSEPACK_BRANCH", "main")
COURSE = "COMP3547 Deep Learning"
COLAB_SETUP = "colab_setup"
GETTING_STARTED = "getting_started"


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


@dataclass(frozen=True)
class Settings:
    """What the generated text students read depends on: the student repository, its branch or tag, the version."""
    repository: str
    branch: str
    version: str

    def blob_url(self, repo_path: str) -> str:
        return f"https://github.com/{self.repository}/blob/{self.branch}/{repo_path}"

    def colab_url(self, repo_path: str) -> str:
        return f"https://colab.research.google.com/github/{self.repository}/blob/{self.branch}/{repo_path}"


def version(root=ROOT) -> str:
    """The release version: `version` in pyproject.toml, its one source."""
    return tomllib.loads((Path(root) / "pyproject.toml").read_text())["project"]["version"]


def settings(root=ROOT, repository: str | None = None, branch: str | None = None) -> Settings:
    return Settings(repository or REPOSITORY, branch or BRANCH, version(root))


PLACEHOLDER = re.compile(r"\{\{(\w+)\}\}")


def render(text: str, **values: str) -> str:
    """`text` with every {{name}} replaced by values[name]; KeyError for a name without a value."""
    return PLACEHOLDER.sub(lambda match: values[match.group(1)], text)


def snippet_cell_source(name: str, config: Settings | None = None) -> str:
    """The exact text of a cell injected from `coursepack/snippets/<name>.py` (code) or `<name>.md` (markdown)."""
    code = SNIPPETS / f"{name}.py"
    if code.exists():
        title, body = split_title(code.read_text().rstrip("\n"))
        return f"{title}# Generated from coursepack/snippets/{name}.py by `make sync`: edit it there.\n{body}"
    body = getting_started(config or settings()) if name == GETTING_STARTED else (SNIPPETS / f"{name}.md").read_text()
    return f"<!-- Generated from coursepack/snippets/{name}.md by `make sync`: edit it there. -->\n{body.rstrip()}"


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


def graded_path(repo_path: str) -> bool:
    """Whether the notebook at this repository path is handed in (a release notebook, not a demo)."""
    return repo_path.startswith(f"{RELEASE.name}/")


def badge(url: str) -> str:
    return f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]({url})"


def hand_in(assignment: str, notebook: str) -> str:
    """How to hand in a notebook, from Colab and from NCC: coursepack/snippets/hand_in.md, its one source."""
    return render((SNIPPETS / "hand_in.md").read_text().strip(), assignment=assignment, notebook=notebook)


def header_for(repo_path: str, config: Settings) -> str:
    """Cell 0 of the notebook at `repo_path` (in this repository and the student one): Colab badge, release
    version and where the changes are listed; for a handed-in notebook, how to hand it in."""
    where = PurePosixPath(repo_path)
    title = f"{COURSE} · {where.parent.name} · release {config.version}" if graded_path(repo_path) else \
        f"{COURSE} · demo · release {config.version}"
    lines = [f"{badge(config.colab_url(repo_path))} **{title}** "
             f"([what changed]({config.blob_url('CHANGELOG.md')}))", ""]
    lines.append(hand_in(where.parent.name, where.name) if graded_path(repo_path) else
                 "*A demo, not assessed: nothing to hand in.*")
    return "\n".join(lines)


def header_source(path, config: Settings | None = None) -> str:
    return header_for(colab_path(path), config or settings())


def is_badge(cell) -> bool:
    return cell.get("metadata", {}).get("coursepack", {}).get("badge", False)


def released_and_demos(root=ROOT) -> list[Path]:
    """Every notebook students get, released ones first: the same paths here and in the student repository."""
    root = Path(root)
    return sorted((root / RELEASE.name).glob("*/*.ipynb")) + sorted((root / DEMOS.name).glob("*.ipynb"))


def badge_table(config: Settings) -> str:
    """A table of Colab badges, one per student notebook and demo."""
    rows = ["| notebook | open |", "| --- | --- |"]
    for path in released_and_demos():
        repo_path = path.relative_to(ROOT).as_posix()
        rows.append(f"| `{repo_path}` | {badge(config.colab_url(repo_path))} |")
    return "\n".join(rows)


def assignments(root=ROOT) -> list[str]:
    """The assignments of a course: the folders of source/ that hold notebooks."""
    source = Path(root) / SOURCE.name
    return sorted(p.name for p in source.iterdir() if p.is_dir() and any(p.glob("*.ipynb")))


def getting_started(config: Settings) -> str:
    """The four routes of the sheet and how to hand in: coursepack/snippets/getting_started.md, filled in."""
    assignment = assignments()[0]
    return render((SNIPPETS / f"{GETTING_STARTED}.md").read_text().strip(), assignment=assignment,
                  repository=config.repository, repository_url=f"https://github.com/{config.repository}",
                  clone_url=f"https://github.com/{config.repository}.git",
                  badges=badge_table(config), hand_in=hand_in(assignment, f"{first_notebook(assignment)}.ipynb"))


def first_notebook(assignment: str) -> str:
    """The stem of an assignment's first notebook: its top carries the getting-started text."""
    return sorted(SOURCE.glob(f"{assignment}/*.ipynb"))[0].stem


BLOCK_START, BLOCK_END = "<!-- getting-started:start (written by make sync", "<!-- getting-started:end -->"


def readme_block(config: Settings) -> str:
    return (f"{BLOCK_START} from coursepack/snippets/{GETTING_STARTED}.md: edit it there) -->\n"
            f"{getting_started(config)}\n{BLOCK_END}")


def synced_readme(text: str, config: Settings | None = None) -> str:
    """A README (this one or the student one) with its getting-started block rewritten."""
    start, end = text.index(BLOCK_START), text.index(BLOCK_END) + len(BLOCK_END)
    return text[:start] + readme_block(config or settings()) + text[end:]


def carries_getting_started(repo_path: str) -> bool:
    where = PurePosixPath(repo_path)
    return graded_path(repo_path) and where.stem == first_notebook(where.parent.name)


def sync_cells(nb, repo_path: str, config: Settings) -> None:
    """Write the header cell, the injected cells and (first notebook of an assignment) the getting-started
    cell of the notebook at `repo_path` for `config`, and strip outputs. Idempotent."""
    if not (nb.cells and is_badge(nb.cells[0])):
        nb.cells.insert(0, nbformat.v4.new_markdown_cell(metadata={"coursepack": {"badge": True}}))
    nb.cells[0].source = header_for(repo_path, config)
    if not any(injected(c) == COLAB_SETUP for c in nb.cells):
        first_code = next((i for i, c in enumerate(nb.cells) if c.cell_type == "code"), len(nb.cells))
        nb.cells.insert(first_code, nbformat.v4.new_code_cell(metadata={"coursepack": {"inject": COLAB_SETUP}}))
    if carries_getting_started(repo_path) and not any(injected(c) == GETTING_STARTED for c in nb.cells):
        intro = next((i for i, c in enumerate(nb.cells) if i > 0 and c.cell_type == "markdown"), 0)
        nb.cells.insert(intro + 1, nbformat.v4.new_markdown_cell(metadata={"coursepack": {"inject": GETTING_STARTED}}))
    for cell in nb.cells:
        name = injected(cell)
        if name:
            cell.source = snippet_cell_source(name, config)
            if split_title(cell.source)[0]:
                cell.metadata.update(copy.deepcopy(COLLAPSED))
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None


def sync_snippets(path) -> bool:
    """Give the notebook at `path` its header, set-up and injected cells and strip outputs.

    Returns whether anything changed (the file is only written then).
    """
    nb = read(path)
    before = nbformat.writes(nb)
    sync_cells(nb, colab_path(path), settings())
    changed = nbformat.writes(nb) != before
    if changed:
        write(nb, path)
    return changed


def problems(path, graded: bool) -> list[str]:
    """Everything wrong with one committed notebook, as sentences naming the cell."""
    nb, found, ids = read(path), [], set()
    if not (nb.cells and is_badge(nb.cells[0]) and nb.cells[0].source == header_source(path)):
        found.append(f"{path.relative_to(ROOT)}: the first cell must be its header and Colab badge (run make sync)")
    if carries_getting_started(colab_path(path)) and not any(injected(c) == GETTING_STARTED for c in nb.cells):
        found.append(f"{path.relative_to(ROOT)}: the getting-started cell is missing after the introduction "
                     "(run make sync)")
    code = [c for c in nb.cells if c.cell_type == "code"]
    if not (code and injected(code[0]) == COLAB_SETUP):
        found.append(f"{path.relative_to(ROOT)}: the first code cell must be the Colab set-up cell (run make sync)")
    for index, cell in enumerate(nb.cells, 1):
        where = f"{path.relative_to(ROOT)} cell {index}"
        if cell.cell_type == "code" and (cell.outputs or cell.execution_count):
            found.append(f"{where}: has outputs; notebooks are committed without them (make sync strips them)")
        name = injected(cell)
        if name and cell.source != snippet_cell_source(name):
            found.append(f"{where}: differs from its snippet coursepack/snippets/{name} (run make sync)")
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
    if graded:
        found += core_path_problems(nb, str(path.relative_to(ROOT)))
    return found


# Every graded notebook has a core path (what earns the marks, timed at its top) and optional sections.
CORE_PATH = re.compile(r"\*\*Core path: about \d+ minutes\.\*\* Sections headed \*Going further\* are optional and "
                       r"carry no marks\.")
GOING_FURTHER = "## Going further: "


def core_path_problems(nb, where: str) -> list[str]:
    """The introduction states the core path's time; no graded cell sits inside a `## Going further: ...` section
    (which runs to the next level-2 heading)."""
    found = []
    intro = next((c for c in nb.cells[1:] if c.cell_type == "markdown"), None)
    if intro is None or not CORE_PATH.search(intro.source):
        found.append(f"{where}: the introduction must say '**Core path: about N minutes.** Sections headed "
                     "*Going further* are optional and carry no marks.'")
    section = None
    for index, cell in enumerate(nb.cells, 1):
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("## "):
                    section = line if line.startswith(GOING_FURTHER) else None
        if section and nbgrader(cell).get("grade"):
            found.append(f"{where} cell {index}: graded cell {grade_id(cell)!r} inside the optional {section!r}")
    return found
