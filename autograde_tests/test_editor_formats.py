"""A notebook saved by Colab, VS Code or JupyterLab 3/4 is graded exactly like the original.

Each fixture is the real release notebook (filled with the instructor's answers, or left blank)
transformed the way that editor saves a notebook (coursepack/grading/editors.py lists the behaviour):

- Colab: nbformat 4.0 without cell ids (or, as Colab and Google's nbfmt also write it, 4.0 keeping
  the original's cell ids, which nbformat's 4.0 schema refuses), `colab`/`accelerator` notebook
  metadata and Colab's short kernelspec, `metadata.id` on every cell and `outputId` on outputs, and
  the nbgrader metadata (with `deletable`/`editable`) gone from every answer cell, some test cells
  and some read-only cells; a scratch cell added before an answer.
- VS Code: `vscode` metadata, its kernelspec and `language_info`, new cell ids, and nbgrader
  metadata edited (an answer's grade id renamed, a test marked unlocked with other points).
- JupyterLab 3: nbformat 4.4, no cell ids. JupyterLab 4: nbformat 4.5 with new cell ids.

One small class (one notebook, the original and each editor's save, full and blank) is graded once
through the real grader (api.grade_class); every fixture must get the original's score on every
cell: full marks for the answers, zero for the blank release.
"""
import copy
import json
import random

import nbformat
import pytest
from nbgrader.api import Gradebook

from coursepack import notebooks
from coursepack.grading import classroom, editors
from coursepack.grading.api import grade_class
from coursepack.grading.problems import Kind

ASSIGNMENT = "practical1"
STEM = "1_notation"
SOURCE = notebooks.SOURCE / ASSIGNMENT / f"{STEM}.ipynb"
pytestmark = [pytest.mark.grading, pytest.mark.skipif(not SOURCE.exists(), reason=f"no {SOURCE}")]


def _ids(nb, rng, length=8):
    for cell in nb.cells:
        cell["id"] = "".join(rng.choice("0123456789abcdef") for _ in range(length))


def colab(nb, keep_ids=False):
    nb, rng = copy.deepcopy(nb), random.Random(1)
    nb.nbformat_minor = 0
    nb.metadata = nbformat.from_dict({"colab": {"provenance": [], "toc_visible": True},
                                      "kernelspec": {"name": "python3", "display_name": "Python 3"},
                                      "language_info": {"name": "python"}, "accelerator": "GPU", "gpuClass": "T4"})
    answers = [c for c in nb.cells if notebooks.nbgrader(c).get("solution")]
    tests = [c for c in nb.cells if notebooks.is_test(c)]
    read_only = [c for c in nb.cells if notebooks.nbgrader(c).get("locked") and c.cell_type == "markdown"]
    for cell in [*answers, *tests[::2], *read_only[::3]]:
        for key in ("nbgrader", "deletable", "editable"):
            cell.metadata.pop(key, None)
    for cell in nb.cells:
        if not keep_ids:
            cell.pop("id", None)
        cell.metadata["id"] = "".join(rng.choice("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
                                      for _ in range(12))
        if cell.cell_type == "code":
            cell.metadata["colab"] = {"base_uri": "https://localhost:8080/"}
            cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text="ran in Colab\n")]
            cell.metadata["outputId"] = f"{rng.getrandbits(64):016x}"
    scratch = nbformat.v4.new_code_cell("x = torch.eye(2)\nx", metadata={"id": "scratch0001"})
    if not keep_ids:
        scratch.pop("id", None)
    nb.cells.insert(nb.cells.index(answers[1]), scratch)
    return nb


def vscode(nb):
    nb, rng = copy.deepcopy(nb), random.Random(2)
    nb.metadata = nbformat.from_dict({
        "kernelspec": {"display_name": ".venv", "language": "python", "name": "python3"},
        "language_info": {"codemirror_mode": {"name": "ipython", "version": 3}, "file_extension": ".py",
                          "mimetype": "text/x-python", "name": "python", "nbconvert_exporter": "python",
                          "pygments_lexer": "ipython3", "version": "3.11.9"},
        "vscode": {"interpreter": {"hash": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"}}})
    _ids(nb, rng, 36)
    answer = next(c for c in nb.cells if notebooks.is_answer(c))
    answer.metadata.nbgrader["grade_id"] = "my_answer"
    test = next(c for c in nb.cells if notebooks.is_test(c))
    test.metadata.nbgrader.update(locked=False, points=50)
    return nb


def lab3(nb):
    nb = copy.deepcopy(nb)
    nb.nbformat_minor = 4
    for cell in nb.cells:
        cell.pop("id", None)
    return nb


def lab4(nb):
    nb = copy.deepcopy(nb)
    _ids(nb, random.Random(4))
    return nb


def colab_keeping_ids(nb):
    """Colab's save with the 4.5 original's cell ids kept under `"nbformat_minor": 0`: invalid as it stands."""
    return colab(nb, keep_ids=True)


EDITORS = {"colab": colab, "colab_ids": colab_keeping_ids, "vscode": vscode, "lab3": lab3, "lab4": lab4}


def one_id_everywhere(nb):
    """Every code cell given the first test cell's nbgrader metadata (red team F5)."""
    nb = copy.deepcopy(nb)
    test = next(c for c in nb.cells if notebooks.is_test(c))
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.metadata["nbgrader"] = copy.deepcopy(test.metadata["nbgrader"])
    return nb


def saved(nb, editor) -> str:
    """The file an editor writes: json as is (nbformat.writes would add back what the editor dropped)."""
    return json.dumps(EDITORS[editor](nb) if editor != "original" else nb, indent=1)


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    course = classroom.make_course(tmp_path_factory.mktemp("editors"), ASSIGNMENT, {STEM: notebooks.read(SOURCE)})
    release_nb = classroom.release(course, ASSIGNMENT, STEM)
    answers = notebooks.answers(notebooks.read(SOURCE))
    for editor in ("original", *EDITORS):
        for kind, given in (("full", answers), ("blank", {})):
            classroom.submit(course, ASSIGNMENT, f"{editor}_{kind}", STEM,
                             saved(notebooks.filled(release_nb, given), editor))
    classroom.submit(course, ASSIGNMENT, "one_id_everywhere_full", STEM,
                     json.dumps(one_id_everywhere(notebooks.filled(release_nb, answers)), indent=1))
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("COURSEPACK_DB", raising=False)
        result = grade_class(course, ASSIGNMENT, workers=2, quiet=True)
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gradebook:
        scores = {r.student: {g.name: g.auto_score for g in gradebook.find_submission_notebook(
            STEM, ASSIGNMENT, r.student).grades} for r in result.notebooks}
    return course, {r.student: r for r in result.notebooks}, scores


@pytest.mark.parametrize("editor", EDITORS)
def test_each_editors_save_grades_like_the_original(graded, editor):
    course, results, scores = graded
    full, blank = scores["original_full"], scores["original_blank"]
    assert results["original_full"].score == results["original_full"].max_score > 0
    assert results["original_blank"].score == 0 and not any(blank.values())
    assert scores[f"{editor}_full"] == full, results[f"{editor}_full"].problems
    assert scores[f"{editor}_blank"] == blank, results[f"{editor}_blank"].problems
    assert results[f"{editor}_full"].score == results["original_full"].score
    for kind in ("full", "blank"):
        assert results[f"{editor}_{kind}"].status == "ok", results[f"{editor}_{kind}"].problems


def test_restored_metadata_is_noted_in_report_and_feedback(graded):
    course, results, _ = graded
    release_nb = classroom.release(course, ASSIGNMENT, STEM)
    graded_ids = [notebooks.grade_id(c) for c in release_nb.cells if notebooks.grade_id(c)]
    for student in ("colab_full", "colab_ids_full", "vscode_full"):
        notes = [p for p in results[student].problems if p.kind is Kind.METADATA_RESTORED]
        assert notes and all(p.cell in graded_ids for p in notes), results[student].problems
        assert any(p.kind is Kind.EDITOR_FORMAT for p in results[student].problems)
        autograded = notebooks.read(course / "autograded" / student / ASSIGNMENT / f"{STEM}.ipynb")
        assert autograded.cells[0].source.startswith(editors.NOTE_HEADER)
        assert all(p.message in autograded.cells[0].source for p in notes)
        # every graded cell once, where the release has it: nothing added back by nbgrader, nothing doubled
        assert [notebooks.grade_id(c) for c in autograded.cells if notebooks.grade_id(c)] == graded_ids
        assert "added back by nbgrader" not in json.dumps(autograded)
    vscode_notes = {p.cell: p.message for p in results["vscode_full"].problems if p.kind is Kind.METADATA_RESTORED}
    first_test = next(notebooks.grade_id(c) for c in release_nb.cells if notebooks.is_test(c))
    assert "locked" in vscode_notes[first_test] and "points" in vscode_notes[first_test]
    for student in ("original_full", "lab4_full"):
        assert not results[student].problems, results[student].problems
    assert [p.kind for p in results["lab3_full"].problems] == [Kind.EDITOR_FORMAT]
    repaired = [p.message for p in results["colab_ids_full"].problems if p.kind is Kind.EDITOR_FORMAT]
    assert any("read as 4.5" in m for m in repaired) and any("Google Colab" in m for m in repaired)


def test_cells_are_matched_by_id_then_read_only_content_then_position():
    release_nb = notebooks.read(notebooks.RELEASE / ASSIGNMENT / f"{STEM}.ipynb")
    source_nb = notebooks.read(SOURCE)
    nb = copy.deepcopy(release_nb)
    for cell in nb.cells:
        cell.metadata.pop("nbgrader", None)
    # a student's scratch cell defining a helper, before an answer that uses it, and a markdown note
    first_answer = next(i for i, c in enumerate(release_nb.cells) if notebooks.is_answer(c))
    nb.cells.insert(first_answer, nbformat.v4.new_code_cell("def helper(n):\n    return n"))
    nb.cells.insert(0, nbformat.v4.new_markdown_cell("my notes"))
    matched, how = editors.match_cells(nb, release_nb, notebooks.answers(source_nb))
    wanted = [i for i, c in enumerate(release_nb.cells) if notebooks.grade_id(c)]
    assert sorted(matched) == wanted
    for r, s in matched.items():
        assert nb.cells[s].source == release_nb.cells[r].source, (r, s)
        assert how[r] == ("read-only content" if notebooks.nbgrader(release_nb.cells[r]).get("locked") else "position")


def test_one_grade_id_on_every_code_cell_is_put_right():
    """Red team F5: every code cell labelled with one test's metadata (nbgrader's add_missing_grade_cells failed)."""
    release_nb = notebooks.read(notebooks.RELEASE / ASSIGNMENT / f"{STEM}.ipynb")
    source_nb = notebooks.read(SOURCE)
    nb = one_id_everywhere(notebooks.filled(release_nb, notebooks.answers(source_nb)))
    notes = editors.restore(nb, release_nb, notebooks.answers(source_nb))
    want = [(c.source if notebooks.nbgrader(c).get("locked") else "", notebooks.nbgrader(c))
            for c in release_nb.cells if notebooks.grade_id(c)]
    have = [(c.source if notebooks.nbgrader(c).get("locked") else "", notebooks.nbgrader(c))
            for c in nb.cells if notebooks.grade_id(c)]
    assert have == want
    assert all(p.kind is Kind.METADATA_RESTORED for p in notes) and notes


def test_one_grade_id_on_every_code_cell_grades_like_the_original(graded):
    _, results, scores = graded
    assert results["one_id_everywhere_full"].status == "ok", results["one_id_everywhere_full"].problems
    assert scores["one_id_everywhere_full"] == scores["original_full"]
