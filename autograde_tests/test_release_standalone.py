"""Released notebooks are self-contained: what Colab opens from GitHub runs with nothing beside it.

Each release notebook, with the instructor's answers filled in, is executed in an empty temporary
directory with the course pack made unimportable, and every Colab badge points at a file that
exists at that path in the repository.
"""
import re
import tomllib

import nbclient
import pytest

from coursepack import notebooks
from coursepack.snippets import colab_setup

RELEASED = sorted(notebooks.RELEASE.glob("*/*.ipynb"))
BADGE_URL = re.compile(r"https://colab\.research\.google\.com/github/([^/]+/[^/]+)/blob/([^/]+)/(\S+?\.ipynb)\)")
# Runs first in the kernel: nothing from this repository may be imported or found on sys.path.
ISOLATE = """import sys
sys.modules["coursepack"] = None
sys.path[:] = [p for p in sys.path if not p.startswith({root!r}) or p.startswith(sys.prefix)]"""


@pytest.mark.parametrize("path", RELEASED, ids=lambda p: p.name)
def test_release_runs_alone_with_answers(path, tmp_path, monkeypatch):
    source = notebooks.read(notebooks.SOURCE / path.parent.name / path.name)
    nb = notebooks.filled(notebooks.read(path), notebooks.answers(source))
    nb.cells.insert(0, notebooks.nbformat.v4.new_code_cell(ISOLATE.format(root=str(notebooks.ROOT))))
    for name in ("PYTHONPATH", "COURSEPACK_DATA"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("COURSEPACK_QUICK", "1")
    monkeypatch.setenv("COURSEPACK_OFFLINE", "1")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    nbclient.NotebookClient(nb, timeout=300, resources={"metadata": {"path": str(tmp_path)}}).execute()
    assert not any(re.search(r"^\s*(import|from)\s+coursepack\b", c.source, re.M) for c in nb.cells)


@pytest.mark.parametrize("path", RELEASED + notebooks.demo_notebooks(), ids=lambda p: p.name)
def test_colab_badge_points_at_this_file(path):
    match = BADGE_URL.search(notebooks.read(path).cells[0].source)
    assert match, f"{path.name}: no Colab badge in its first cell"
    repository, branch, repo_path = match.groups()
    assert (repository, branch) == (notebooks.REPOSITORY, notebooks.BRANCH)
    assert (notebooks.ROOT / repo_path).resolve() == path.resolve(), f"badge opens {repo_path}, not this file"


def test_readme_badges_are_in_sync_and_point_at_files():
    text = (notebooks.ROOT / "README.md").read_text()
    assert notebooks.synced_readme(text) == text, "README's getting-started text and badges are stale: run make sync"
    paths = [m.group(3) for m in BADGE_URL.finditer(text)]
    assert len(paths) == len(RELEASED) + len(notebooks.demo_notebooks())
    assert all((notebooks.ROOT / p).is_file() for p in paths)


def test_colab_setup_requirements_match_pyproject():
    """What the Colab cell would install is exactly what the pack requires (outside Colab it does nothing)."""
    project = tomllib.loads((notebooks.ROOT / "pyproject.toml").read_text())["project"]
    assert set(colab_setup.RUNTIME_REQUIREMENTS.values()) <= set(project["dependencies"])
