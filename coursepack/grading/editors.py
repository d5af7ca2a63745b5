"""Notebooks saved by other editors are graded like the original: lost or edited nbgrader metadata put back.

A Colab student downloads the notebook from Colab; others save it from VS Code or an older
JupyterLab. What those editors do when they save (and what nbgrader would otherwise make of it):

- Colab writes its own notebook metadata (`colab`, `accelerator`, a shorter `kernelspec`), a
  `metadata.id` (and `outputId`) on each cell, often an older nbformat 4 minor version without cell
  ids, and may drop cell metadata it does not know, `nbgrader` among it, from cells it rewrote.
- VS Code writes `vscode` metadata, its own `language_info`, and new cell ids.
- JupyterLab 3 saves nbformat 4.4 (no cell ids); JupyterLab 4 saves 4.5 with ids.

nbformat reads all of these (it adds missing ids), and nbgrader's OverwriteKernelspec replaces the
kernelspec. What is left is the cells' nbgrader metadata: a test cell without it is added back by
nbgrader (`add_missing_cells`), but an answer cell without it is an ordinary cell, nbgrader's
add_missing_cells then cannot place the test after it (it looks the answer up by its grade id), and
edited metadata (an answer marked locked, a test's points) would be trusted. `RestoreMetadata`, one
preprocessor in front of OverwriteCellsSafely, matches every cell of the release notebook to the
submission's cells:

1. by grade id (metadata that differs from the release's is replaced);
2. a read-only cell by its content, between its matched neighbours;
3. an answer cell by position between its matched neighbours, preferring the cell that defines the
   functions the instructor's answer defines (`notebooks.definitions`);

and gives each matched cell the release's nbgrader metadata. Each restoration is a
`Kind.METADATA_RESTORED` note (the editor, when recognised, a `Kind.EDITOR_FORMAT` note), in the
report and, as a markdown cell at the top, in the feedback.
"""
from __future__ import annotations

import copy
import os

import nbformat
from nbgrader.preprocessors import NbGraderPreprocessor

from coursepack import notebooks
from coursepack.grading.problems import Kind, Problem

NOTE_HEADER = "**Grader's note on this notebook's format**"


def editor_of(nb) -> str | None:
    """The editor that saved `nb`, as far as its metadata tells: Colab, VS Code, or an older JupyterLab."""
    if "colab" in nb.metadata:
        return "Google Colab"
    if "vscode" in nb.metadata or any("vscode" in c.get("metadata", {}) for c in nb.cells):
        return "VS Code"
    if (nb.nbformat, nb.nbformat_minor) < (4, 5):
        return f"an editor writing nbformat 4.{nb.nbformat_minor} (JupyterLab 3 or older)"
    return None


def repair_format(nb) -> str | None:
    """Make an editor's save valid where nothing is lost; what was done, or None.

    Colab and Google's notebook formatter (nbfmt) can write `"nbformat_minor": 0` on a notebook whose
    cells keep the ids of the 4.5 original (seen in github.com/google-gemma/cookbook pull 304):
    nbformat's 4.0 schema refuses the ids, so the notebook would count as invalid. It is read as 4.5.
    """
    if nb.nbformat != 4 or nb.nbformat_minor >= 5 or not any("id" in cell for cell in nb.cells):
        return None
    minor, seen = nb.nbformat_minor, set()
    nb.nbformat_minor = 5
    for cell in nb.cells:
        if not isinstance(cell.get("id"), str) or cell["id"] in seen:
            cell["id"] = random_cell_id()
        seen.add(cell["id"])
    return f"nbformat 4.{minor} with cell ids (as Colab may save it): read as 4.5"


def random_cell_id() -> str:
    from nbformat.corpus.words import generate_corpus_id

    return generate_corpus_id()


def _window(matched: dict[int, int], release_index: int, count: int) -> tuple[int, int]:
    """The submission's cells strictly between the matches of the release cells before and after this one."""
    before = [s for r, s in matched.items() if r < release_index]
    after = [s for r, s in matched.items() if r > release_index]
    return (max(before) if before else -1), (min(after) if after else count)


def match_cells(nb, release, solutions: dict[str, str] | None = None) -> tuple[dict[int, int], dict[int, str]]:
    """({release cell index: submission cell index}, {release cell index: how it was matched}).

    `solutions` (grade id -> the instructor's answer) helps pick an answer cell among several.
    """
    wanted = [i for i, c in enumerate(release.cells) if notebooks.grade_id(c) is not None]
    by_id: dict[str, list[int]] = {}
    for index, cell in enumerate(nb.cells):
        gid = notebooks.grade_id(cell)
        if gid is not None:
            by_id.setdefault(gid, []).append(index)
    release_ids = {notebooks.grade_id(release.cells[r]) for r in wanted}
    matched, how = {}, {}
    for r in wanted:
        cell = release.cells[r]
        found = [s for s in by_id.get(notebooks.grade_id(cell), []) if nb.cells[s].cell_type == cell.cell_type]
        # one grade id on several cells: the one with the release cell's content, else the first
        found = [s for s in found if nb.cells[s].source.strip() == cell.source.strip()] or found[:1]
        if found:
            matched[r], how[r] = found[0], "grade id"
    taken = set(matched.values())
    # the other cells carrying a repeated grade id are no copies to trust: candidates like unlabelled cells
    repeated = {s for cells in by_id.values() if len(cells) > 1 for s in cells} - taken
    for locked in (True, False):
        for r in wanted:
            cell = release.cells[r]
            if r in matched or bool(notebooks.nbgrader(cell).get("locked")) != locked:
                continue
            low, high = _window(matched, r, len(nb.cells))
            # a cell carrying another release cell's grade id is that cell (or a copy of it): never a candidate
            candidates = [s for s in range(low + 1, high) if s not in taken and nb.cells[s].cell_type == cell.cell_type
                          and (notebooks.grade_id(nb.cells[s]) not in release_ids or s in repeated)]
            if locked:
                candidates = [s for s in candidates if nb.cells[s].source.strip() == cell.source.strip()]
                reason = "read-only content"
            else:
                names = set(notebooks.definitions((solutions or {}).get(notebooks.grade_id(cell), cell.source)))
                if names and cell.cell_type == "code":
                    best = max((len(names & set(notebooks.definitions(nb.cells[s].source))) for s in candidates),
                               default=0)
                    candidates = [s for s in candidates
                                  if len(names & set(notebooks.definitions(nb.cells[s].source))) == best]
                reason = "position"
            if candidates:
                matched[r], how[r] = candidates[0], reason
                taken.add(candidates[0])
    return matched, how


def restore(nb, release, solutions: dict[str, str] | None = None) -> list[Problem]:
    """Give the cells of `nb` the nbgrader metadata of the release cells they match; one note per cell changed."""
    matched, how = match_cells(nb, release, solutions)
    notes = []
    matched_cells = set(matched.values())
    for index, cell in enumerate(nb.cells):  # nbgrader metadata on a cell that matches nothing: not a graded cell
        if index not in matched_cells and "nbgrader" in cell.get("metadata", {}):
            gid = notebooks.grade_id(cell)
            if gid is not None and any(notebooks.grade_id(c) == gid for c in release.cells):
                del cell.metadata["nbgrader"]  # a copy of a matched cell, or a cell of another type
                notes.append(Problem(Kind.METADATA_RESTORED, f"cell {index + 1} also carries grade id {gid!r}: "
                                                             "graded as an ordinary cell", gid))
    for r, s in sorted(matched.items()):
        want = release.cells[r].metadata["nbgrader"]
        cell = nb.cells[s]
        have = cell.metadata.get("nbgrader")
        if have == want:
            continue
        gid = want["grade_id"]
        if have is None:
            what = f"nbgrader metadata was missing: put back (matched by {how[r]})"
        else:
            changed = sorted(k for k in set(want) | set(have) if want.get(k) != have.get(k))
            what = f"nbgrader metadata was edited ({', '.join(changed)}): put back (matched by {how[r]})"
        cell.metadata["nbgrader"] = copy.deepcopy(want)
        notes.append(Problem(Kind.METADATA_RESTORED, what, gid))
    return notes


def note_cell(problems: list[Problem]) -> nbformat.NotebookNode:
    """A markdown cell for the feedback: what the grader did to read this notebook."""
    lines = [NOTE_HEADER, ""] + [f"- {p}" for p in problems]
    lines.append("\nNone of this changes your marks: the notebook was graded as if saved by JupyterLab.")
    return nbformat.v4.new_markdown_cell("\n".join(lines))


class RestoreMetadata(NbGraderPreprocessor):
    """Sanitize step: nbgrader metadata lost or edited by another editor is put back from the release notebook."""

    def preprocess(self, nb, resources):
        from coursepack.grading.execute import coursepack_resources

        release_path = resources.get("coursepack_release")
        if not release_path or not os.path.exists(release_path):
            return nb, resources
        release = notebooks.read(release_path)
        source_path = resources.get("coursepack_source")
        solutions = notebooks.answers(notebooks.read(source_path)) if source_path and os.path.exists(source_path) \
            else None
        notes = []
        editor = editor_of(nb)
        if editor:
            notes.append(Problem(Kind.EDITOR_FORMAT, f"saved by {editor}: read as the original"))
        try:
            notes += restore(nb, release, solutions)
        except Exception as error:  # noqa: BLE001 - a cell we cannot read is nbgrader's to judge, as before
            notes.append(Problem(Kind.EDITOR_FORMAT, f"cells not matched to the release ({type(error).__name__}): "
                                                     "graded as handed in"))
        if any(p.kind is Kind.METADATA_RESTORED for p in notes):
            nb.cells.insert(0, note_cell(notes))
        coursepack_resources(resources)["problems"] += notes
        return nb, resources
