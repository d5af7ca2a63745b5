"""The student repository (`make publish`) holds no solutions, runs alone, and is versioned.

- The export, built from this repository, is scanned clean, every badge and link in it opens a file of
  the export in the student repository, and a leak planted in it (a solution line, a hidden-test block,
  a mutation case, an instructor path, a broken badge) is caught.
- Each exported notebook runs alone in a copy of the export, with nothing of this repository importable:
  the release notebooks get as far as their first exercise stub (NotImplementedError, nothing missing),
  the demos run to the end; their code cells are the release notebooks', which
  test_release_standalone.py runs with the instructor's answers.
- Publishing twice into a fresh DEST gives two commits of its own, tagged v<version>; a version tagged
  with other content is refused and DEST is left as it was.
- Change detection: a changed point value, test cell or grade id under a published version is reported
  (and blocks), a bumped version is a note, an edit of the teaching text is quiet.
"""
import json
import re
import shutil
import subprocess

import nbclient
import pytest

from coursepack import notebooks, publish, release

CONFIG = notebooks.settings()
COLAB = re.compile(r"https://colab\.research\.google\.com/github/([^/]+/[^/]+)/blob/([^/]+)/(\S+?\.ipynb)\)")
GITHUB_LINK = re.compile(r"https://github\.com/([^/]+/[^/]+)/blob/([^/]+)/([^\s)]+)")
IGNORED = shutil.ignore_patterns(".venv", ".git", "data", ".jupyter", ".pytest_cache", "__pycache__", ".grading",
                                 "submitted", "autograded", "feedback", "gradebook.db", "slurm-out", ".ruff_cache",
                                 "*.egg-info")
ISOLATE = """import sys
sys.modules["coursepack"] = None
sys.path[:] = [p for p in sys.path if not p.startswith({root!r}) or p.startswith(sys.prefix)]"""


@pytest.fixture(scope="module")
def export(tmp_path_factory):
    tree = tmp_path_factory.mktemp("export") / "student"
    tree.mkdir()
    publish.build(notebooks.ROOT, tree, CONFIG)
    return tree


def files(tree):
    return sorted(p.relative_to(tree).as_posix() for p in tree.rglob("*") if p.is_file())


def exported_notebooks(tree):
    return notebooks.released_and_demos(tree)


def test_export_is_clean_and_complete(export):
    assert publish.scan(notebooks.ROOT, export, CONFIG) == []
    released = [f"release/{p.parent.name}/{p.name}" for p in sorted(notebooks.RELEASE.glob("*/*.ipynb"))]
    demos = [f"notebooks/{p.name}" for p in notebooks.demo_notebooks()]
    assert set(released + demos + ["README.md", "CHANGELOG.md", "LICENSE", "Makefile", "pyproject.toml",
                                   "environment.yml"]) <= set(files(export))
    assert not [f for f in files(export) if f.startswith(("source/", "autograde_tests/", "docs/"))
                or f.startswith("coursepack/") and f not in ("coursepack/__init__.py", "coursepack/kernel.py",
                                                              "coursepack/slurm.py")]
    for path, text in ((p, p.read_text()) for p in export.rglob("*") if p.is_file()):
        assert "### BEGIN SOLUTION" not in text and "### BEGIN HIDDEN TESTS" not in text, path
        assert "source/" not in text and "autograde_tests/" not in text, path


def test_every_badge_and_link_opens_a_file_of_the_export(export):
    for path in exported_notebooks(export):
        header = notebooks.read(path).cells[0].source
        match = COLAB.search(header)
        assert match, f"{path.name}: no Colab badge in its header"
        assert match.groups() == (CONFIG.repository, CONFIG.branch, path.relative_to(export).as_posix())
    links = 0
    for path in [export / "README.md", *exported_notebooks(export)]:
        for repository, ref, target in COLAB.findall(path.read_text()) + GITHUB_LINK.findall(path.read_text()):
            if not repository.startswith(CONFIG.repository.split("/")[0] + "/"):
                continue  # another organisation's page (PyTorch's, say)
            links += 1
            assert (repository, ref) == (CONFIG.repository, CONFIG.branch), f"{path.name} links to {repository}"
            assert (export / target).is_file(), f"{path.name} links to {target}, not in the export"
    assert links >= 2 * len(exported_notebooks(export))


def test_students_read_how_to_start_and_hand_in(export):
    readme = (export / "README.md").read_text()
    text = notebooks.getting_started(CONFIG)
    assert text in readme and f"https://github.com/{CONFIG.repository}.git" in text
    for route in ("### Google Colab", "### NCC through JupyterHub", "### NCC over SSH with SLURM",
                  "### Your own machine", "### Handing in", "head node"):
        assert route in text
    first = export / "release" / "practical1" / "1_notation.ipynb"
    cells = notebooks.read(first).cells
    assert notebooks.injected(cells[2]) == notebooks.GETTING_STARTED and text in cells[2].source
    for path in exported_notebooks(export):
        header = notebooks.read(path).cells[0].source
        assert f"release {CONFIG.version}" in header
        if notebooks.graded_path(path.relative_to(export).as_posix()):
            assert "Download .ipynb" in header and "learning platform" in header and "**Assignments**" in header
            assert f"`{path.name}`" in header
    prose = [c.source for p in exported_notebooks(export) for c in notebooks.read(p).cells if c.cell_type == "markdown"]
    sources = "".join(prose)
    assert not re.search(r"\{\{\w+\}\}|<this repository|<[A-Z_]+>", readme + sources)


def _plant(export, tmp_path, where, text):
    tree = tmp_path / "planted"
    shutil.copytree(export, tree)
    target = tree / where
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.suffix == ".ipynb":
        nb = notebooks.read(target)
        nb.cells.append(notebooks.nbformat.v4.new_code_cell(text))
        notebooks.write(nb, target)
    else:
        target.write_text((target.read_text() if target.exists() else "") + "\n" + text + "\n")
    return tree


def _solution_line():
    nb = notebooks.read(notebooks.SOURCE / "practical1" / "2_derivatives.ipynb")
    return next(line for c in nb.cells if notebooks.is_answer(c) for block in notebooks.SOLUTION.findall(c.source)
                for line in block.splitlines() if line.strip() in publish.secret_lines(notebooks.ROOT))


def _hidden_test_line():
    nb = notebooks.read(notebooks.SOURCE / "practical1" / "3_jacobians.ipynb")
    return next(line for c in nb.cells if notebooks.is_test(c) for block in notebooks.HIDDEN_TESTS.findall(c.source)
                for line in block.splitlines() if line.strip() in publish.secret_lines(notebooks.ROOT))


def _mutation_line():
    """A line of a mutation case that is in no source notebook: only the mutation-case scan can catch it."""
    from conftest import CASES

    sources = {line.strip() for p in notebooks.source_notebooks() for c in notebooks.read(p).cells
               for line in c.source.splitlines()}
    return next(line for line in (CASES / "4_backprop.py").read_text().splitlines()
                if line.strip() in publish.secret_lines(notebooks.ROOT) and line.strip() not in sources)


PLANTS = {
    "solution line": ("release/practical1/2_derivatives.ipynb", _solution_line, "leaks"),
    "hidden test": ("notebooks/classifier.ipynb", _hidden_test_line, "leaks"),
    "hidden-test marker": ("README.md", lambda: "### BEGIN HIDDEN TESTS", "marker"),
    "mutation case": ("release/practical1/4_backprop.ipynb", _mutation_line, "leaks"),
    "source path": ("README.md", lambda: "see source/practical1/1_notation.ipynb", "names"),
    "tests path": ("coursepack/kernel.py", lambda: "# autograde_tests/cases/1_notation.py", "names"),
    "instructor file": ("autograde_tests/cases/x.txt", lambda: "nothing", "instructor's file"),
    "broken badge": ("README.md", lambda: CONFIG.colab_url("release/practical1/6_missing.ipynb") + ")", "not in"),
    "this repository": ("CHANGELOG.md", lambda: f"https://github.com/{CONFIG.repository}-coursepack/blob/main/x)",
                        "links to"),
    "placeholder": ("README.md", lambda: "git clone <this repository's URL>", "placeholder"),
}


@pytest.mark.parametrize("plant", PLANTS)
def test_a_planted_leak_is_caught(plant, export, tmp_path):
    where, text, expected = PLANTS[plant]
    assert publish.scan(notebooks.ROOT, export, CONFIG) == []
    found = publish.scan(notebooks.ROOT, _plant(export, tmp_path, where, text()), CONFIG)
    assert any(where in line and expected in line for line in found), found


@pytest.mark.parametrize("name", [p.relative_to(notebooks.ROOT).as_posix() for p in notebooks.released_and_demos()])
def test_exported_notebook_runs_alone(name, export, tmp_path, monkeypatch):
    """In a copy of the export with nothing of this repository importable: a release notebook reaches its
    first exercise stub and fails only there, a demo runs to the end."""
    tree = tmp_path / "student"
    shutil.copytree(export, tree, ignore=shutil.ignore_patterns("coursepack"))
    path = tree / name
    nb = notebooks.read(path)
    released = notebooks.read(notebooks.ROOT / name)
    assert [c.source for c in nb.cells if c.cell_type == "code"] == \
        [c.source for c in released.cells if c.cell_type == "code"], "exported code differs from release/"
    nb.cells.insert(0, notebooks.nbformat.v4.new_code_cell(ISOLATE.format(root=str(notebooks.ROOT))))
    for variable in ("PYTHONPATH", "COURSEPACK_DATA"):
        monkeypatch.delenv(variable, raising=False)
    for variable, value in (("COURSEPACK_QUICK", "1"), ("COURSEPACK_OFFLINE", "1"), ("MPLBACKEND", "Agg")):
        monkeypatch.setenv(variable, value)
    client = nbclient.NotebookClient(nb, timeout=300, resources={"metadata": {"path": str(path.parent)}})
    if not notebooks.graded_path(name):
        client.execute()
        return
    with pytest.raises(nbclient.exceptions.CellExecutionError) as failure:
        client.execute()
    assert failure.value.ename == "NotImplementedError", f"{name} failed before its first exercise: {failure.value}"
    ran = [c for c in nb.cells if c.cell_type == "code" and c.get("execution_count")]
    assert any(notebooks.is_answer(c) for c in ran), "the error came before any answer cell ran"


def test_student_makefile_runs_the_course_tools(export, tmp_path):
    tree = tmp_path / "student"
    shutil.copytree(export, tree)
    targets = subprocess.run(["make", "-C", str(tree), "help"], capture_output=True, text=True, check=True).stdout
    assert {"lab", "kernel", "slurm"} <= set(re.findall(r"make (\w+)", targets))
    subprocess.run(["make", "-C", str(tree), "slurm", "NOTEBOOK=release/practical1/5_training_loop.ipynb"],
                   capture_output=True, check=True)
    assert "#SBATCH --partition=ug-gpu-small" in (tree / "slurm-out" / "5_training_loop.sbatch").read_text()
    dry = subprocess.run(["make", "-C", str(tree), "kernel", "KERNEL_FLAGS=--dry-run"], capture_output=True,
                         text=True, check=True).stdout
    assert f"pip install -e {tree}" in dry


# ------------------------------------------------------------------------------------------------
# publishing into a git repository, twice


def git(repo, *args):
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True).stdout.strip()


@pytest.fixture
def course(tmp_path):
    """A copy of this course (not a git repository) that a test may change."""
    copy = tmp_path / "course"
    shutil.copytree(notebooks.ROOT, copy, ignore=IGNORED)
    return copy


def bump(course, version):
    pyproject = course / "pyproject.toml"
    pyproject.write_text(re.sub(r'^version = ".*"$', f'version = "{version}"', pyproject.read_text(), flags=re.M))
    changelog = course / "CHANGELOG.md"
    changelog.write_text(changelog.read_text().replace("\n## ", f"\n## {version}\n\nA test release.\n\n## ", 1))


def test_publish_twice_commits_and_tags_in_a_history_of_its_own(course, tmp_path, monkeypatch, capsys):
    dest = tmp_path / "student-repo"
    version = notebooks.version(course)
    assert publish.main([str(dest), "--course", str(course)]) == 0, capsys.readouterr().err
    assert git(dest, "log", "--format=%s") == f"Release {version}"
    assert git(dest, "tag") == f"v{version}"
    assert version in release.published(course)
    first = git(dest, "rev-parse", "HEAD")

    # The release check (nbgrader on a scratch copy) ran above; later runs differ only in the version.
    monkeypatch.setattr(release, "check", lambda course: [])
    assert publish.main([str(dest), "--course", str(course)]) == 0
    assert "already up to date" in capsys.readouterr().out and git(dest, "rev-parse", "HEAD") == first

    bump(course, "99.0.1")
    assert publish.main([str(dest), "--course", str(course)]) == 0, capsys.readouterr().err
    assert git(dest, "log", "--format=%s").splitlines() == ["Release 99.0.1", f"Release {version}"]
    assert set(git(dest, "tag").split()) == {f"v{version}", "v99.0.1"}
    header = notebooks.read(dest / "release" / "practical1" / "1_notation.ipynb").cells[0].source
    assert "release 99.0.1" in header
    assert git(dest, "status", "--porcelain") == ""

    # Only export commits: none of them, and none of their paths, comes from this repository.
    commits = git(dest, "rev-list", "--all").split()
    assert len(commits) == 2
    assert all(subprocess.run(["git", "-C", str(notebooks.ROOT), "cat-file", "-e", sha]).returncode != 0
               for sha in commits)
    paths = set(git(dest, "log", "--all", "--format=", "--name-only").split())
    assert paths and not [p for p in paths if p.startswith(("source/", "autograde_tests/", "docs/"))]
    assert set(git(dest, "ls-files").split()) == set(files(dest)) - {p for p in files(dest) if p.startswith(".git/")}

    # The same version with other content: refused, DEST untouched.
    (course / "CHANGELOG.md").write_text((course / "CHANGELOG.md").read_text() + "\nA late edit.\n")
    head = git(dest, "rev-parse", "HEAD")
    assert publish.main([str(dest), "--course", str(course)]) == 1
    assert "already marks a release with other content" in capsys.readouterr().err
    assert git(dest, "rev-parse", "HEAD") == head and git(dest, "status", "--porcelain") == ""


def test_publish_refuses_without_a_changelog_entry_or_with_a_stale_tag_badge(course, monkeypatch):
    monkeypatch.setattr(release, "check", lambda course: [])
    bump(course, "99.0.2")
    changelog = course / "CHANGELOG.md"
    changelog.write_text(changelog.read_text().replace("## 99.0.2", "## unreleased"))
    found = publish.refusals(course, notebooks.settings(course))
    assert any("no '## 99.0.2' entry" in line for line in found)
    found = publish.refusals(course, notebooks.settings(course, branch="v1.0.0"))
    assert any("another release's tag" in line for line in found)


# ------------------------------------------------------------------------------------------------
# change detection


def edit_cell(course, notebook, grade_id, change):
    path = course / "source" / "practical1" / notebook
    nb = notebooks.read(path)
    change(next(c for c in nb.cells if notebooks.grade_id(c) == grade_id))
    notebooks.write(nb, path)


def first_test(notebook):
    nb = notebooks.read(notebooks.SOURCE / "practical1" / notebook)
    return next(notebooks.grade_id(c) for c in nb.cells if notebooks.is_test(c))


def more_points(cell):
    cell.metadata["nbgrader"]["points"] += 1


def other_hidden_test(cell):
    cell.source = cell.source.replace("### END HIDDEN TESTS", "check_true(True, 'one more')\n### END HIDDEN TESTS")


def renamed(cell):
    cell.metadata["nbgrader"]["grade_id"] += "_v2"


def teaching_text(cell):
    cell.source += "\n\nOne more sentence of explanation."


@pytest.mark.parametrize("change, grade_id, expected", [
    (more_points, first_test("2_derivatives.ipynb"), "points"),
    (other_hidden_test, first_test("3_jacobians.ipynb"), "the test cell changed"),
    (renamed, first_test("4_backprop.ipynb"), "grade id removed"),
])
def test_a_graded_change_under_a_published_version_is_reported(course, change, grade_id, expected, monkeypatch):
    monkeypatch.setattr(release, "check", lambda course: [])  # refusals() below: only the report matters
    notebook = {first_test(n): n for n in ("2_derivatives.ipynb", "3_jacobians.ipynb", "4_backprop.ipynb")}[grade_id]
    release.record(course, notebooks.version(course))
    assert release.release_report(course) == (False, "")
    edit_cell(course, notebook, grade_id, change)
    blocking, report = release.release_report(course)
    assert blocking and grade_id in report and expected in report
    assert "bump `version`" in report and "re-grade" in report and "CHANGELOG.md" in report
    assert any(report in line for line in publish.refusals(course, notebooks.settings(course)))

    bump(course, "99.1.0")
    blocking, report = release.release_report(course)
    assert not blocking and grade_id in report and "re-grade" in report


def test_teaching_text_and_unpublished_changes_are_quiet(course):
    assert release.release_report(course) == (False, ""), "nothing published: nothing to report"
    release.record(course, notebooks.version(course))
    edit_cell(course, "1_notation.ipynb", "intro", teaching_text)
    assert release.release_report(course) == (False, "")
    assert json.loads((course / release.MANIFEST).read_text()).keys() == {notebooks.version(course)}


def test_this_repository_has_not_changed_a_published_release():
    """make test fails when source/ grades differently under a version already published (bump it)."""
    blocking, report = release.release_report(notebooks.ROOT)
    assert not blocking, report
    version = notebooks.version()
    assert re.search(rf"^## {re.escape(version)}\b", (notebooks.ROOT / "CHANGELOG.md").read_text(), re.M), \
        f"CHANGELOG.md has no entry for version {version}"


def test_both_readmes_carry_the_current_getting_started_text():
    for readme in (notebooks.ROOT / "README.md", notebooks.ROOT / publish.STUDENT / "README.md"):
        text = readme.read_text()
        assert notebooks.synced_readme(text) == text, f"{readme.name}: getting started is stale (run make sync)"
