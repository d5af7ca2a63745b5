"""The committed notebooks follow the authoring rules, and release/ is what nbgrader makes of source/."""
import re
import tomllib

import pytest
import yaml

from coursepack import notebooks, release

SOURCES = notebooks.source_notebooks()
DEMOS = notebooks.demo_notebooks()


def rel(path):
    return str(path.relative_to(notebooks.ROOT))


@pytest.mark.parametrize("path", SOURCES, ids=rel)
def test_source_notebook_rules(path):
    assert notebooks.problems(path, graded=True) == []


@pytest.mark.parametrize("path", DEMOS, ids=rel)
def test_demo_notebook_rules(path):
    assert notebooks.problems(path, graded=False) == []


@pytest.mark.parametrize("path", SOURCES, ids=rel)
def test_every_answer_is_tested_visibly_and_hidden(path):
    nb = notebooks.read(path)
    tests = [c.source for c in nb.cells if notebooks.is_test(c)]
    visible = "\n".join(notebooks.HIDDEN_TESTS.sub("", t) for t in tests)
    hidden = "\n".join(block for t in tests for block in notebooks.HIDDEN_TESTS.findall(t))
    untested = [name for name in notebooks.defined_names(nb)
                if not (re.search(rf"\b{name}\b", visible) and re.search(rf"\b{name}\b", hidden))]
    assert not untested, f"names without both a visible and a hidden test: {untested}"


@pytest.mark.parametrize("path", SOURCES, ids=rel)
def test_every_test_cell_is_self_contained(path):
    """The harness gives a test cell only the notebook's imports and helpers and the student's names."""
    from coursepack.grading.harness import NotebookTests, TestHarness

    tests = NotebookTests.from_path(path)
    prelude = set(TestHarness(tests).prelude)
    outside = {gid: sorted(names) for gid in tests.tests if (names := tests.outside_names(gid, prelude))}
    assert not outside, f"test cells reading notebook variables the harness does not have: {outside}"


def test_release_in_sync_and_leak_free():
    assert release.check(notebooks.ROOT) == []


def test_leak_check_catches_a_leaked_solution(tmp_path):
    """The leak check itself must fail when a solution line reaches a release notebook."""
    source = next(iter(SOURCES))
    nb = notebooks.read(source)
    answer = next(c for c in nb.cells if notebooks.is_answer(c))
    secret = next(line for line in notebooks.SOLUTION.findall(answer.source)[0].splitlines()
                  if len(line.strip()) >= release.MIN_LEAK_LENGTH)
    released = notebooks.read(notebooks.RELEASE / source.parent.name / source.name)
    released.cells.append(notebooks.nbformat.v4.new_code_cell(secret))
    (tmp_path / "source").mkdir()
    (tmp_path / "release").mkdir()
    notebooks.write(nb, tmp_path / "source" / source.name)
    notebooks.write(released, tmp_path / "release" / source.name)
    assert any("leaks" in found for found in release.leaks(tmp_path / "source", tmp_path / "release"))


def test_environment_yml_matches_pyproject():
    """Conda users (environment.yml) and pip users (pyproject.toml) get the same requirements."""
    project = tomllib.loads((notebooks.ROOT / "pyproject.toml").read_text())["project"]
    pip_side = set(project["dependencies"]) | set(project["optional-dependencies"]["dev"])
    conda = yaml.safe_load((notebooks.ROOT / "environment.yml").read_text())
    conda_side = {req for dep in conda["dependencies"] if isinstance(dep, dict) for req in dep["pip"]}
    assert conda_side == pip_side


def test_core_path_check_catches_marks_in_going_further():
    """The rule behind every notebook's 'Core path' line: graded cells never sit in an optional section."""
    nb = notebooks.read(SOURCES[0])
    assert notebooks.core_path_problems(nb, "nb") == []
    optional = next(i for i, c in enumerate(nb.cells) if c.source.startswith(notebooks.GOING_FURTHER))
    graded = next(c for c in nb.cells if notebooks.nbgrader(c).get("grade"))
    nb.cells.insert(optional + 1, graded)
    nb.cells[1].source = nb.cells[1].source.replace("**Core path: about", "**About")
    found = notebooks.core_path_problems(nb, "nb")
    assert len(found) == 2 and "introduction" in found[0] and notebooks.grade_id(graded) in found[1]
