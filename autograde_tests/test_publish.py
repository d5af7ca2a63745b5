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
- Where DEST may be and what reaches it: a clone of the course, the course itself (or a folder in or around
  it) and a DEST with files git ignores are refused and left as they were; of release/ and notebooks/ only
  tracked text files are exported; a solution or mutation case pasted into a demo is still a leak.
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


# ------------------------------------------------------------------------------------------------
# where DEST may be, and what reaches it (red-team findings F8-F11)


@pytest.fixture
def git_course(course):
    """The course copy as a git repository of one commit (what an instructor publishes from)."""
    git(course, "init", "--quiet", "--initial-branch=main")
    git(course, "add", "--all", ".")
    git(course, *publish.IDENTITY, "commit", "--quiet", "-m", "the course")
    return course


def test_a_clone_of_the_course_or_foreign_history_is_refused_as_dest(git_course, tmp_path, monkeypatch, capsys):
    """F8: a clone or fork of the course would publish its history (every solution): only export commits."""
    monkeypatch.setattr(release, "check", lambda course: [])
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "--quiet", str(git_course), str(clone)], check=True)
    head = git(clone, "rev-parse", "HEAD")
    assert publish.main([str(clone), "--course", str(git_course)]) == 1
    err = capsys.readouterr().err
    assert "history make publish did not write" in err and "also in the course's history" in err, err
    assert git(clone, "rev-parse", "HEAD") == head and git(clone, "status", "--porcelain") == ""

    other = tmp_path / "other"  # history of its own, not the course's, with an instructor folder: refused too
    (other / "source").mkdir(parents=True)
    (other / "source" / "answers.txt").write_text("x\n")
    git(other.parent, "init", "--quiet", str(other))
    git(other, "add", "--all", ".")
    git(other, *publish.IDENTITY, "commit", "--quiet", "-m", "Release 0.0.1", "-m", publish.TRAILER)
    found = publish.foreign_history(other, git_course)
    assert found and all("instructor folders" in line for line in found), found


def test_dest_is_never_the_course_and_ignored_files_in_dest_survive(git_course, tmp_path, monkeypatch, capsys):
    """F9: DEST = the course (or inside / around it) is refused before anything is written; a DEST holding files
    git ignores is refused and they stay."""
    monkeypatch.setattr(release, "check", lambda course: [])
    (git_course / "submitted" / "s001").mkdir(parents=True)
    (git_course / "submitted" / "s001" / "1_notation.ipynb").write_text("{}")
    (git_course / "gradebook.db").write_text("db")
    head = git(git_course, "rev-parse", "HEAD")
    for dest in (git_course, git_course / "student", tmp_path):
        assert publish.main([str(dest), "--course", str(git_course)]) == 1
        assert "is the course, inside it or around it" in capsys.readouterr().err
    assert (git_course / "gradebook.db").read_text() == "db" and (git_course / "submitted" / "s001").is_dir()
    assert git(git_course, "rev-parse", "HEAD") == head and not (git_course / "student").exists()

    dest = tmp_path / "student-repo"
    assert publish.main([str(dest), "--course", str(git_course)]) == 0, capsys.readouterr().err
    assert publish.TRAILER in git(dest, "log", "-1", "--format=%B")
    (dest / "data").mkdir()
    (dest / "data" / "mine.bin").write_bytes(b"\0keep")  # data/ is in the student .gitignore
    git(git_course, "add", str(release.MANIFEST))
    git(git_course, *publish.IDENTITY, "commit", "--quiet", "-m", "published")
    assert publish.main([str(dest), "--course", str(git_course)]) == 1
    assert "files git ignores" in capsys.readouterr().err
    assert (dest / "data" / "mine.bin").read_bytes() == b"\0keep" and len(git(dest, "log", "--format=%H").split()) == 1


def test_only_tracked_text_files_of_release_and_notebooks_are_exported(git_course, tmp_path, capsys):
    """F10: ignored, untracked, binary files beside the notebooks are reported, never copied."""
    (git_course / "notebooks" / "data").mkdir()
    (git_course / "notebooks" / "data" / "answers.zip").write_bytes(b"PK\3\4\0\xff")
    (git_course / "notebooks" / "notes.md").write_text("untracked\n")
    (git_course / "release" / "practical1" / "grades-2025.csv").write_text("student,score\ns001,71\n")
    (git_course / "release" / "practical1" / "figure.png").write_bytes(b"\x89PNG\0\xff")
    git(git_course, "add", "-f", "release/practical1/figure.png")
    git(git_course, *publish.IDENTITY, "commit", "--quiet", "-m", "a tracked binary")
    allowed, refused, skipped = publish.export_files(git_course)
    # Beside the demos (what running them leaves, e.g. the MNIST cache) untracked files are only left out;
    # in release/ they stop the publication, since the exchange hands that folder out as it is.
    assert {line.split(":")[0] for line in skipped} == {"notebooks/data/", "notebooks/notes.md"}, skipped
    assert {line.split(":")[0] for line in refused} == {"release/practical1/grades-2025.csv",
                                                         "release/practical1/figure.png"}, refused
    assert set(allowed) == {p.relative_to(git_course).as_posix() for p in notebooks.released_and_demos(git_course)}
    export = tmp_path / "export"
    export.mkdir()
    assert publish.build(git_course, export, CONFIG) == refused
    assert not [f for f in files(export) if f.endswith((".zip", ".csv", ".png", "notes.md"))]
    assert publish.main(["--check", "--course", str(git_course)]) == 1
    assert "grades-2025.csv: not tracked by git" in capsys.readouterr().err
    assert [line.split(":")[0] for line in release.untracked(git_course)] == ["release/practical1/grades-2025.csv"]


def test_release_comparison_walks_folders(tmp_path):
    """F10: a folder in release/ (nbgrader copies source/<a>/submitted/) is compared file by file, no crash."""
    committed, fresh = tmp_path / "committed", tmp_path / "fresh"
    for side, text in ((committed, "a"), (fresh, "b")):
        (side / "submitted" / "s001").mkdir(parents=True)
        (side / "submitted" / "s001" / "work.txt").write_text(text)
    (fresh / "submitted" / "extra.txt").write_text("x")
    (committed / "data" / "MNIST").mkdir(parents=True)  # a folder only one side has is one line
    for name in ("a.gz", "b.gz"):
        (committed / "data" / "MNIST" / name).write_bytes(b"\0")
    assert release.differences(committed, fresh) == ["data/: not generated by the release (2 files)",
                                                     "submitted/extra.txt: missing from the release",
                                                     "submitted/s001/work.txt: differs"]


def test_a_solution_pasted_into_a_demo_is_still_secret(course, tmp_path):
    """F11: only the release notebooks' lines are public; a demo does not launder a solution or mutation case."""
    line, case = _solution_line().strip(), _mutation_line().strip()
    demo = course / "notebooks" / "convnet.ipynb"
    nb = notebooks.read(demo)
    nb.cells.append(notebooks.nbformat.v4.new_code_cell(f"{line}\n{case}"))
    notebooks.write(nb, demo)
    export = tmp_path / "export"
    export.mkdir()
    publish.build(course, export, CONFIG)
    found = publish.scan(course, export, CONFIG)
    assert {f"notebooks/convnet.ipynb: leaks {x!r}" for x in (line, case)} <= set(found), found
    # The reviewed exemptions stay few and needed: each is a secret line that a demo really shows.
    demos = {x.strip() for p in notebooks.demo_notebooks() for c in notebooks.read(p).cells
             for x in c.source.splitlines()}
    assert publish.DEMO_SHARED <= publish.secret_lines(notebooks.ROOT) & demos
