"""The hidden tests reject plausible wrong answers and accept correct alternatives.

Each case in autograde_tests/cases/<notebook>.py is graded against the reference notebook's test
cells (see mutation.py); a Wrong case must lose exactly the points of its listed test cells.
"""
import pytest
from conftest import case_modules, source_notebook
from mutation import Right, Wrong, names_defined

from coursepack import notebooks

MODULES = case_modules()
CASES = [pytest.param(stem, case, id=f"{stem}:{type(case).__name__}:{case.label}")
         for stem, module in MODULES.items() for case in module.CASES]


@pytest.mark.parametrize("stem", MODULES)
def test_reference_passes_every_test_cell(stem, references):
    reference = references.get(stem)
    failing = {gid: error for gid, error in reference.reference.items() if error}
    assert not failing, f"the instructor's solution fails its own tests: {failing}"


@pytest.mark.parametrize(("stem", "case"), CASES)
def test_case_loses_exactly_its_points(stem, case, references):
    reference = references.get(stem)
    unknown = set(case.fails) - set(reference.tests)
    assert not unknown, f"case names test cells the notebook does not have: {unknown}"
    results = reference.grade(case.code)
    failed = {gid for gid, error in results.items() if error}
    total = sum(reference.points.values())
    earned = total - sum(reference.points[gid] for gid in failed)
    expected = total - sum(reference.points[gid] for gid in case.fails)
    detail = {gid: results[gid] for gid in failed ^ set(case.fails)}
    assert failed == set(case.fails), (
        f"expected to fail {sorted(case.fails)}, failed {sorted(failed)}; score {earned}/{total}, "
        f"expected {expected}/{total}; unexpected results: {detail}")


@pytest.mark.parametrize("stem", MODULES)
def test_every_answer_has_wrong_and_right_cases(stem):
    """Each name students define is attacked by >= 3 wrong answers and defended by >= 1 right one."""
    names = notebooks.defined_names(notebooks.read(source_notebook(stem)))
    cases = MODULES[stem].CASES
    short = []
    for name in names:
        wrong = sum(isinstance(c, Wrong) and name in names_defined(c.code) for c in cases)
        right = sum(isinstance(c, Right) and name in names_defined(c.code) for c in cases)
        if wrong < 3 or right < 1:
            short.append(f"{name}: {wrong} wrong, {right} right")
    assert not short, "cases missing for: " + "; ".join(short)


@pytest.mark.parametrize("stem", MODULES)
def test_wrong_cases_fail_something(stem):
    assert all(case.fails for case in MODULES[stem].CASES if isinstance(case, Wrong))
    assert not any(case.fails for case in MODULES[stem].CASES if isinstance(case, Right))
