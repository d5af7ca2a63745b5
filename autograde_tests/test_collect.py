"""`make collect`: hand-ins filed under submitted/<id>/practical1/ from a platform's bulk download or the exchange.

The bulk download is built here the way Blackboard Learn names its files (coursepack/grading/collect.py
cites the pattern), from the real release notebooks, each copy tagged with a marker cell so that the
test can tell which file was filed. No grading runs here: that is test_editor_formats.py's.
"""
import datetime
import gzip
import io
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import nbformat
import pytest

from coursepack import notebooks
from coursepack.grading import collect
from coursepack.grading.problems import Kind
from coursepack.nbgrader_cli import jupyter_env

ASSIGNMENT = "practical1"
BB = "Practical 1 (2026)"  # Blackboard's assignment title: spaces and brackets in every file name
MARKER = "hand-in marker:"
NAMES = sorted(p.stem for p in (notebooks.RELEASE / ASSIGNMENT).glob("*.ipynb"))
pytestmark = pytest.mark.skipif(len(NAMES) < 2, reason="needs two release notebooks")


@pytest.fixture
def course(tmp_path, monkeypatch):
    folder = tmp_path / "course"
    shutil.copytree(notebooks.RELEASE / ASSIGNMENT, folder / "release" / ASSIGNMENT)
    shutil.copy(notebooks.ROOT / "nbgrader_config.py", folder)
    monkeypatch.delenv("COURSEPACK_DB", raising=False)
    for name, value in jupyter_env(folder / ".jupyter").items():
        monkeypatch.setenv(name, value)
    return folder


def tagged(name: str, marker: str) -> str:
    """The release notebook `name` with a marker cell: what a student's download looks like."""
    nb = notebooks.read(notebooks.RELEASE / ASSIGNMENT / f"{name}.ipynb")
    nb.cells.append(nbformat.v4.new_markdown_cell(f"{MARKER} {marker}"))
    return nbformat.writes(nb)


def marker_of(path: Path) -> str:
    return [c.source for c in notebooks.read(path).cells if c.source.startswith(MARKER)][0].removeprefix(MARKER).strip()


def stamp(day: int) -> str:
    return f"2026-11-{day:02d}-09-30-00"


def bulk_download(path: Path, files: dict[str, str]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return path


def kinds(record) -> list[Kind]:
    return sorted(p.kind for p in record.problems)


def test_names_students_give_their_downloads():
    first = NAMES[0]
    for given in (f"{first}.ipynb", f"Copy of {first}.ipynb", f"{first} (2).ipynb",
                  f"Copy of Copy of {first} (13).ipynb", f" copy of {first}(1).ipynb"):
        assert collect.canonical_name(given) == first, given
    assert collect.canonical_name("notes (2).pdf") == "notes"


def test_blackboard_bulk_download_files_each_students_newest_attempt(course, tmp_path):
    first, second = NAMES[:2]
    a = f"{BB}_ab12_attempt_"  # ab12 hands in twice; the second attempt drops `second` and renames `first`
    b = f"{BB}_cd34_attempt_"
    files = {
        f"{a}{stamp(1)}.txt": "Name: Ada\nSubmission Field:\n",
        f"{a}{stamp(1)}_{first}.ipynb": tagged(first, "ab12 first attempt"),
        f"{a}{stamp(1)}_{second}.ipynb": tagged(second, "ab12 first attempt"),
        f"{a}{stamp(3)}.txt": "Name: Ada\n",
        f"{a}{stamp(3)}_Copy of {first} (2).ipynb": tagged(first, "ab12 newest, copy"),
        f"{a}{stamp(3)}_{first}.ipynb": tagged(first, "ab12 newest"),
        f"{a}{stamp(3)}_answers.py": "def f(): pass\n",
        # cd34 (on the roster as s002): a Colab download under a name of its own, and a broken second notebook
        f"{b}{stamp(2)}.txt": "Name: Bo\n",
        f"{b}{stamp(2)}_my practical.ipynb": tagged(second, "cd34 renamed"),
        f"{b}{stamp(2)}_{first}.ipynb": '{"cells": [',
        f"{b}{stamp(2)}_holiday.ipynb": nbformat.writes(nbformat.v4.new_notebook()),
        # ef56 submitted only the text of the attempt; zz99 is on no roster
        f"{BB}_ef56_attempt_{stamp(2)}.txt": "Name: Eve\n",
        f"{BB}_zz99_attempt_{stamp(2)}_{first}.ipynb": tagged(first, "zz99"),
        "__MACOSX/._junk": "",
        "readme.txt": "not from Blackboard",
    }
    roster = tmp_path / "roster.csv"
    roster.write_text("id,username,first_name,last_name\ns001,ab12,Ada,L\ns002,cd34,Bo,M\ns003,ef56,Eve,N\n"
                      "s004,gh78,Gil,O\n")
    result = collect.collect(course, ASSIGNMENT, bulk_download(tmp_path / "bulk.zip", files), roster=roster)
    by_id = {s.student: s for s in result.students}
    assert sorted(by_id) == ["s001", "s002", "s003", "s004", "zz99"]
    submitted = course / "submitted"

    ada = submitted / "s001" / ASSIGNMENT
    assert sorted(p.name for p in ada.iterdir()) == [f"{first}.ipynb", "timestamp.txt"]
    assert marker_of(ada / f"{first}.ipynb") == "ab12 newest"
    assert datetime.datetime.fromisoformat((ada / "timestamp.txt").read_text()) == datetime.datetime(2026, 11, 3, 9, 30)
    assert kinds(by_id["s001"]) == sorted([Kind.OLDER_ATTEMPT, Kind.NOT_A_NOTEBOOK, Kind.DUPLICATE_FILE])

    bo = submitted / "s002" / ASSIGNMENT
    assert marker_of(bo / f"{second}.ipynb") == "cd34 renamed"
    assert (bo / f"{first}.ipynb").read_text() == '{"cells": [', "a broken notebook is filed: grading reports it"
    assert by_id["s002"].notebooks == [first, second]
    assert kinds(by_id["s002"]) == sorted([Kind.RENAMED, Kind.NOT_A_NOTEBOOK])

    for nothing in ("s003", "s004"):  # an attempt without a notebook, and no attempt at all
        assert not (submitted / nothing).exists()
        assert kinds(by_id[nothing]) == [Kind.NOT_SUBMITTED] and by_id[nothing].status == "missing"
    assert by_id["s003"].attempt and not by_id["s004"].attempt

    assert marker_of(submitted / "zz99" / ASSIGNMENT / f"{first}.ipynb") == "zz99"
    assert kinds(by_id["zz99"]) == [Kind.UNKNOWN_STUDENT]
    assert [p.kind for p in result.problems] == [Kind.UNRECOGNISED_FILE] and "readme.txt" in result.problems[0].message

    report = json.loads(result.report.read_text())
    assert {s["student"]: s["status"] for s in report["students"]} == {
        "s001": "ok", "s002": "ok", "s003": "missing", "s004": "missing", "zz99": "ok"}
    assert all(line in result.summary() for line in ("s004", "handed in nothing", "readme.txt"))

    # A later bulk download replaces what the first one filed for the students it holds.
    later = {f"{a}{stamp(5)}_{second}.ipynb": tagged(second, "ab12 fifth")}
    collect.collect(course, ASSIGNMENT, bulk_download(tmp_path / "later.zip", later), roster=roster)
    assert sorted(p.name for p in ada.iterdir()) == [f"{second}.ipynb", "timestamp.txt"]
    assert marker_of(bo / f"{second}.ipynb") == "cd34 renamed"
    # ...and one whose newest attempt holds no notebook keeps what was filed, with a note.
    pdf_only = {f"{b}{stamp(6)}_report.pdf": "%PDF"}
    again = collect.collect(course, ASSIGNMENT, bulk_download(tmp_path / "pdf.zip", pdf_only), roster=roster)
    bo_again = next(s for s in again.students if s.student == "s002")
    assert bo_again.notebooks == [first, second] and bo_again.status == "ok"
    assert kinds(bo_again) == sorted([Kind.NOT_A_NOTEBOOK, Kind.OLDER_ATTEMPT])


def test_moodle_folders_through_the_configured_pattern(course, tmp_path):
    first = NAMES[0]
    folder = tmp_path / "moodle"
    for person, marker in (("Ada Lovelace_1234", "ada"), ("Bo Ma_5678", "bo")):
        (folder / f"{person}_assignsubmission_file_").mkdir(parents=True)
        (folder / f"{person}_assignsubmission_file_" / f"{first} (1).ipynb").write_text(tagged(first, marker))
    (course / "nbgrader_config.py").write_text((course / "nbgrader_config.py").read_text()
                                               + f"\nc.PlatformCollector.named_regexp = {collect.MOODLE!r}\n")
    result = collect.collect(course, ASSIGNMENT, folder)
    assert {s.student: s.notebooks for s in result.students} == {"1234": [first], "5678": [first]}
    assert marker_of(course / "submitted" / "5678" / ASSIGNMENT / f"{first}.ipynb") == "bo"
    assert not (course / "submitted" / "1234" / ASSIGNMENT / "timestamp.txt").exists()  # Moodle names carry none


def test_collect_from_the_exchange_and_the_command_line(course, tmp_path):
    """Without an archive: nbgrader collect from the exchange's inbound folder (what Submit leaves there)."""
    first = NAMES[0]
    exchange = tmp_path / "exchange"
    inbound = exchange / "comp3547" / "inbound" / f"ab12+{ASSIGNMENT}+2026-11-03 09:30:00.000000 UTC+abcd"
    inbound.mkdir(parents=True)
    (inbound / f"{first}.ipynb").write_text(tagged(first, "exchange"))
    (inbound / "timestamp.txt").write_text("2026-11-03 09:30:00.000000 UTC")
    roster = tmp_path / "roster.csv"
    roster.write_text("id,username\nab12,ab12\ncd34,cd34\n")
    env = {**os.environ, "NBGRADER_EXCHANGE": str(exchange)}
    done = subprocess.run([sys.executable, "-m", "coursepack.grading", "collect", ASSIGNMENT, f"--roster={roster}"],
                          cwd=course, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    assert marker_of(course / "submitted" / "ab12" / ASSIGNMENT / f"{first}.ipynb") == "exchange"
    lines = {line.split()[0]: line for line in done.stdout.splitlines() if line[:4] in ("ab12", "cd34")}
    assert "ok" in lines["ab12"] and "missing" in lines["cd34"] and "handed in nothing" in lines["cd34"]


def test_an_archive_that_is_not_there_is_an_error_not_a_crash(course, tmp_path):
    done = subprocess.run([sys.executable, "-m", "coursepack.grading", "collect", ASSIGNMENT,
                           f"--archive={tmp_path / 'nothing.zip'}"], cwd=course, capture_output=True, text=True)
    assert done.returncode == 2 and "nothing.zip" in done.stderr and "Traceback" not in done.stderr


def test_a_bulk_download_cannot_bring_set_uid_files_or_unpack_without_bound(course, tmp_path):
    first = NAMES[0]
    archive = tmp_path / "modes.zip"
    with zipfile.ZipFile(archive, "w") as bulk:
        entry = zipfile.ZipInfo(f"{BB}_ab12_attempt_{stamp(1)}_{first}.ipynb")
        entry.external_attr = 0o104777 << 16  # a regular file, set-uid, writable by all
        bulk.writestr(entry, tagged(first, "modes"))
    collect.collect(course, ASSIGNMENT, archive)
    filed = course / "submitted" / "ab12" / ASSIGNMENT / f"{first}.ipynb"
    assert marker_of(filed) == "modes" and filed.stat().st_mode & 0o7077 == 0
    (course / "nbgrader_config.py").write_text((course / "nbgrader_config.py").read_text()
                                               + "\nc.Collector.max_archive_bytes = 1000\n")
    with pytest.raises(ValueError, match="max_archive_bytes"):
        collect.collect(course, ASSIGNMENT, archive)


def zipped(files: dict[str, str | bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return buffer.getvalue()


def test_a_students_upload_cannot_file_or_erase_a_classmates_hand_in(course, tmp_path):
    """Only the bulk archive's own entry name says whose and which attempt a file is (red team F1)."""
    first = NAMES[0]
    ab, future = f"{BB}_ab12_attempt_{stamp(1)}", "2099-01-01-00-00-00"
    genuine = {f"{BB}_{user}_attempt_{stamp(2)}_{first}.ipynb": tagged(first, f"{user} genuine")
               for user in ("cd34", "ef56", "gh78")}
    attack = {
        # an original file name that embeds another student's attempt (the greedy pattern filed it as cd34's)
        f"{ab}_x_cd34_attempt_{future}_{first}.ipynb": tagged(first, "ab12 as cd34"),
        # a zip in ab12's attempt holding a file named for the roster id s003 (it was unpacked and filed)
        f"{ab}_extra.zip": zipped({f"y_s003_attempt_{future}_{first}.ipynb": tagged(first, "ab12 as s003")}),
        # a text file named like gh78's attempt record (it made gh78's newest attempt an empty one)
        f"{ab}_z_gh78_attempt_{future}.txt": "",
        f"{ab}_{first}.ipynb": tagged(first, "ab12 own"),
        # an attempt time later than the download itself: not believed
        f"{BB}_ab12_attempt_{future}_{first}.ipynb": tagged(first, "ab12 from the future"),
    }
    roster = tmp_path / "roster.csv"
    roster.write_text("id,username\ns001,ab12\ns002,cd34\ns003,ef56\ns004,gh78\n")
    submitted = course / "submitted"

    def check(result, *, listed=True):
        for student, user in (("s002", "cd34"), ("s003", "ef56"), ("s004", "gh78")):
            assert marker_of(submitted / student / ASSIGNMENT / f"{first}.ipynb") == f"{user} genuine", student
            assert (submitted / student / ASSIGNMENT / "timestamp.txt").read_text().startswith("2026-11-02"), student
        by_id = {s.student: s for s in result.students}
        assert not listed or all(kinds(by_id[s]) == [] for s in ("s002", "s003", "s004")), result.summary()
        return by_id["s001"]

    ada = check(collect.collect(course, ASSIGNMENT, bulk_download(tmp_path / "bulk.zip", {**genuine, **attack}),
                                roster=roster))
    assert marker_of(submitted / "s001" / ASSIGNMENT / f"{first}.ipynb") == "ab12 own"
    assert ada.attempt == "2026-11-01 09:30:00"
    notes = " | ".join(p.message for p in ada.problems)
    assert "extra.zip: hand in .ipynb files, not archives" in notes and "later than the download" in notes, notes
    assert sorted(p.stem for p in submitted.glob("*/*/*.ipynb")) == [first] * 4
    # A later download with only ab12's files leaves the classmates' earlier collect alone.
    check(collect.collect(course, ASSIGNMENT, bulk_download(tmp_path / "later.zip", attack), roster=roster),
          listed=False)
    # A configured assignment title: a file whose name starts with another one belongs to nobody.
    names = collect.PlatformCollector(assignment_title=BB)
    assert names.collect(f"{BB}_ab12_attempt_{stamp(1)}_{first}.ipynb")["student_id"] == "ab12"
    assert names.collect(f"Practical 2_ab12_attempt_{stamp(1)}_{first}.ipynb") is None


def test_odd_uploads_cost_their_owner_only_and_nothing_is_unpacked_past_the_bound(course, tmp_path):
    """Red team F2-F4: files no archiver reads, nested archives (one a bomb), and a user name `..`."""
    first = NAMES[0]
    ab = f"{BB}_ab12_attempt_{stamp(1)}"
    bomb = zipped({"inner.zip": zipped({"zeros.bin": b"\0" * (8 * 2**20)})})
    files = {
        f"{BB}_cd34_attempt_{stamp(2)}_{first}.ipynb": tagged(first, "cd34 genuine"),
        f"{ab}_{first}.ipynb": tagged(first, "ab12 own"),
        f"{ab}_notes.zip": "just some notes",
        f"{ab}_data.csv.gz": gzip.compress(b"a,b\n1,2\n"),
        f"{ab}_w.zip": zipped({"x": "y" * 1000})[:60],
        f"{ab}_up.zip": zipped({"../../../../../tmp/escaped": "x", "/tmp/escaped": "x"}),
        f"{ab}_bomb.zip": bomb,
        f"{BB}_.._attempt_{stamp(1)}_{first}.ipynb": tagged(first, "dotdot"),
        f"../{BB}_ij90_attempt_{stamp(1)}_{first}.ipynb": tagged(first, "climbs out"),
    }
    (course / "nbgrader_config.py").write_text((course / "nbgrader_config.py").read_text()
                                               + "\nc.Collector.max_archive_bytes = 2**20\n")
    result = collect.collect(course, ASSIGNMENT, bulk_download(tmp_path / "bulk.zip", files))
    by_id = {s.student: s for s in result.students}
    assert sorted(by_id) == ["ab12", "cd34"], result.summary()
    assert marker_of(course / "submitted" / "cd34" / ASSIGNMENT / f"{first}.ipynb") == "cd34 genuine"
    assert marker_of(course / "submitted" / "ab12" / ASSIGNMENT / f"{first}.ipynb") == "ab12 own"
    refused = [p.message for p in by_id["ab12"].problems if "not archives" in p.message]
    assert len(refused) == 5, by_id["ab12"].problems
    assert sum(p.kind is Kind.REFUSED_FILE for p in result.problems) == 2, result.problems  # `..` and ../
    assert not (course / ASSIGNMENT).exists() and not (tmp_path / ASSIGNMENT).exists()
    assert sorted(p.parent.parent.name for p in course.rglob(f"{first}.ipynb") if "submitted" in p.parts) == [
        "ab12", "cd34"]
    unpacked = sum(p.stat().st_size for p in (course / ".grading").rglob("*") if p.is_file())
    assert unpacked < 2**20, f"{unpacked} bytes unpacked"
