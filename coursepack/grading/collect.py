"""Collect: every student's hand-in filed as submitted/<id>/<assignment>/<notebook>.ipynb, from either route.

    python -m coursepack.grading collect ASSIGNMENT                     (the exchange: nbgrader collect)
    python -m coursepack.grading collect ASSIGNMENT --archive=BULK.zip  (a learning platform's bulk download)

Students on JupyterHub hand in through the Assignments tab (nbgrader's exchange); `nbgrader collect`
takes the newest submission of each. Colab has no Assignments tab: those students download their
notebook and upload it to the learning platform, whose bulk download is collected here with
nbgrader's ZipCollectApp: `_unpack` unpacks the archive one level into downloaded/<a>/extracted/
(not nbgrader's ExtractorPlugin, which unpacks archives inside hand-ins too, at any depth: a
student's zip could then carry files named for a classmate, past max_archive_bytes), our
`PlatformCollector` (a FileNameCollectorPlugin) reads student, attempt and file from each entry's name,
and nbgrader's `_transfer_files` files them with a timestamp.txt. One step is ours,
`PlatformZipCollect._collect_files`, because nbgrader's (0.9.6) keeps the newest *file* per notebook
name, not the newest *attempt*: a notebook dropped from a later attempt would come back from an
earlier one, `Copy of 1_notation.ipynb` would be filed under that name, and two files of one attempt
for one notebook end the run ("Duplicate submission file"). Ours takes each student's newest attempt
whole, maps names (`Copy of X`, `X (2)`, and by content: a notebook whose cells are an assignment
notebook's), and reports every file it does not file, as `problems.Problem` records.

File names: Blackboard Learn's "Assignment File Download" names every file
`<Assignment name>_<username>_attempt_<YYYY-MM-DD-HH-MM-SS>_<original file name>` and adds one
`<Assignment name>_<username>_attempt_<YYYY-MM-DD-HH-MM-SS>.txt` per attempt (the student's
comments): documented by nbgrader's FileNameCollectorPlugin help (its example
`ps1_bitdiddle_attempt_2016-01-30-15-00-00_problem1.ipynb`) and by Blackboard clean-up tools
(github.com/terr-steak/bb-file-cleanup: "renamed from filename.ext to
assignmentname_username_attempt_datetime_filename.ext", "a text file ...
assignmentname_username_attempt_datetime.txt"). User names with `_` need another
`PlatformCollector.named_regexp`; `MOODLE` is Moodle's (`<Full name>_<id>_assignsubmission_file_`
then the file, flat or as a folder per student).
"""
from __future__ import annotations

import datetime
import json
import re
import shutil
import sys
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from nbgrader.apps.zipcollectapp import ZipCollectApp
from nbgrader.plugins import FileNameCollectorPlugin
from nbgrader.utils import parse_utc
from traitlets import Bool, Integer, Unicode
from traitlets.config import Config, Configurable

from coursepack import notebooks
from coursepack.grading import roster as rosters
from coursepack.grading.course import course_directory, load_config, quiet_warnings
from coursepack.grading.problems import Kind, Problem, Status, status_of
from coursepack.grading.report import printable

# The assignment part is non-greedy: a student's own file name may itself contain `_<user>_attempt_<ts>`,
# and only the first such part (Blackboard's) names the student and the attempt.
BLACKBOARD = (r"(?P<assignment>[^/]+?)_(?P<student_id>[^_/]+)_attempt_"
              r"(?P<timestamp>\d{4}-\d\d-\d\d-\d\d-\d\d-\d\d)(?:_(?P<file_id>[^/]+)|\.txt)")
MOODLE = r"(?P<full_name>[^/_]+)_(?P<student_id>[^_/]+)_assignsubmission_file_/?(?P<file_id>[^/]+)"
# What browsers and Colab add to a file's name: "Copy of " (Colab's File > Save a copy), " (2)" (a
# second download of the same name).
COPY_OF = re.compile(r"^(?:copy of\s+)+", re.I)
DOWNLOAD_NUMBER = re.compile(r"\s*\(\d+\)$")
# Left by archivers, never handed in by a student.
NOISE = re.compile(r"(^|/)(__MACOSX|\.DS_Store$|Thumbs\.db$|desktop\.ini$)")
# What may name a folder under submitted/ (no `..`, no separators, nothing a spreadsheet reads as a formula).
STUDENT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9.@+-]*")
# Archives a student may upload: never unpacked (a hand-in is .ipynb files), reported instead.
ARCHIVE = re.compile(r"\.(zip|tar|tgz|gz|bz2|xz|7z|rar|tbz2?|txz)$", re.I)
# An attempt time may run ahead of the archive's modification time by a time zone at most.
CLOCK_SLACK = datetime.timedelta(days=1)


class PlatformCollector(FileNameCollectorPlugin):
    """nbgrader's file name collector for a learning platform's bulk download (Blackboard Learn by default).

    The pattern is matched to the whole file name, and else to its folder and name (`a/b`: Moodle's
    folder per submission). `file_id` may be absent: that file (Blackboard's per-attempt .txt) marks
    an attempt. Unlike nbgrader's, it takes any file: what is not a notebook is reported by the caller.
    """

    named_regexp = Unicode(BLACKBOARD, help="a regular expression with the groups student_id, file_id and "
                                            "optionally timestamp, matched to the whole file name (or folder/name); "
                                            "the default is Blackboard Learn's; coursepack.grading.collect.MOODLE "
                                            "is Moodle's").tag(config=True)
    timestamp_format = Unicode("%Y-%m-%d-%H-%M-%S", help="strptime format of the timestamp group (else "
                                                         "nbgrader's parser reads it)").tag(config=True)
    assignment_title = Unicode("", help="the assignment's name on the platform (the `assignment` group): a file "
                                        "whose name starts with another is not filed; empty: not checked"
                               ).tag(config=True)

    def collect(self, submitted_file: str) -> dict | None:
        parts = Path(submitted_file).parts
        for name in ("/".join(parts[-2:]), parts[-1]):
            match = re.fullmatch(self.named_regexp, name)
            if match:
                found = {k: v for k, v in match.groupdict().items() if v is not None}
                if self.assignment_title and found.get("assignment", self.assignment_title) != self.assignment_title:
                    return None
                if "timestamp" in found:
                    try:
                        moment = datetime.datetime.strptime(found["timestamp"], self.timestamp_format)
                        found["timestamp"] = moment.isoformat(" ")
                    except ValueError:
                        pass
                return found
        return None


@dataclass
class Collected:
    """One student's outcome: the attempt filed, the notebooks filed (by name) and what was wrong."""

    student: str
    attempt: str = ""
    notebooks: list[str] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    @property
    def status(self) -> Status:
        return status_of(self.problems)

    def to_dict(self) -> dict:
        return {"student": self.student, "attempt": self.attempt, "notebooks": self.notebooks,
                "status": str(self.status), "problems": [{"kind": str(p.kind), "message": p.message, "cell": p.cell}
                                                         for p in self.problems]}


@dataclass
class CollectResult:
    assignment: str
    route: str
    students: list[Collected] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)  # files that belong to no student
    report: Path | None = None

    def summary(self) -> str:
        lines = [f"{'student':20} {'attempt':20} {'notebooks':>9}  status   notes"]
        for s in sorted(self.students, key=lambda s: s.student):
            notes = printable("; ".join(str(p) for p in s.problems))
            lines.append(f"{printable(s.student):20} {printable(s.attempt or '-'):20} {len(s.notebooks):9}  "
                         f"{s.status:8} {notes[:120]}")
        for problem in self.problems:
            lines.append(f"{'(no student)':20} {'':20} {'':9}  {'':8} {printable(problem)[:120]}")
        filed = sum(bool(s.notebooks) for s in self.students)
        lines.append(f"{filed} of {len(self.students)} students filed under submitted/ ({self.route})")
        return "\n".join(lines)


def canonical_name(file_name: str) -> str:
    """The notebook name a student meant: `Copy of 1_notation (2).ipynb` is `1_notation`."""
    stem = Path(file_name).name
    stem = stem[: -len(".ipynb")] if stem.lower().endswith(".ipynb") else Path(stem).stem
    return DOWNLOAD_NUMBER.sub("", COPY_OF.sub("", stem.strip())).strip()


def _signature(nb) -> tuple[set[str], set[str]]:
    """A notebook's grade ids and the sources of its read-only cells: what identifies it when renamed."""
    ids = {gid for c in nb.cells if (gid := notebooks.grade_id(c)) is not None}
    locked = {c.source.strip() for c in nb.cells if notebooks.nbgrader(c).get("locked") and c.source.strip()}
    return ids, locked


def matching_notebook(nb, released: dict[str, tuple[set[str], set[str]]]) -> str | None:
    """The released notebook that `nb` is a copy of: at least half its grade ids or read-only cells are in `nb`."""
    ids, _ = _signature(nb)
    sources = {c.source.strip() for c in nb.cells}
    best = None
    for name, (want_ids, want_locked) in released.items():
        share = max(len(ids & want_ids) / len(want_ids) if want_ids else 0,
                    len(sources & want_locked) / len(want_locked) if want_locked else 0)
        if share >= 0.5 and (best is None or share > best[0]):
            best = (share, name)
    return best and best[1]


def _moment(timestamp: str) -> datetime.datetime | None:
    """A file name's timestamp as nbgrader reads it (UTC); None when there is none or it cannot be read."""
    try:
        return parse_utc(timestamp) if timestamp else None
    except (ValueError, OverflowError):
        return None


class PlatformZipCollect(ZipCollectApp):
    """nbgrader's ZipCollectApp that files each student's newest attempt, with names mapped and a report."""

    usernames = {}  # platform user name -> student id (from the roster)
    latest = datetime.datetime.max - CLOCK_SLACK  # the newest attempt time that can be true (naive UTC)
    outcome: dict[str, Collected]
    stray: list[Problem]

    def _collect_files(self, src_files):
        extracted = Path(self._format_collect_path(self.extracted_directory))
        release = Path(self.coursedir.format_path(self.coursedir.release_directory, ".", self.coursedir.assignment_id))
        released = {p.stem: _signature(notebooks.read(p)) for p in sorted(release.glob("*.ipynb"))}
        attempts: dict[str, dict[str, list[tuple[Path, str | None]]]] = {}
        for path in map(Path, src_files):
            relative = path.relative_to(extracted).as_posix()
            if NOISE.search(relative):
                continue
            info = self.collector_plugin_inst.collect(str(path))
            if not info or "student_id" not in info:
                self.stray.append(Problem(Kind.UNRECOGNISED_FILE, f"{relative}: the name does not follow the "
                                                                  "platform's pattern: not filed"))
                continue
            name = info["student_id"]
            student = self.usernames.get(name, name)
            if not STUDENT_ID.fullmatch(student) or student in (".", ".."):
                self.stray.append(Problem(Kind.REFUSED_FILE, f"{relative}: {student!r} cannot be a student id "
                                                             "(letters, digits and . @ + - only): not filed"))
                continue
            if self.usernames and name not in self.usernames and name in self.usernames.values():
                self.stray.append(Problem(Kind.REFUSED_FILE, f"{relative}: the user name {name} is not on the "
                                                             "roster but is another student's id: not filed"))
                continue
            attempts.setdefault(student, {}).setdefault(info.get("timestamp", ""), []).append(
                (path, info.get("file_id")))
        data = {}
        for student, by_time in sorted(attempts.items()):
            record = self.outcome.setdefault(student, Collected(student))
            try:  # one student's files, however odd, never stop the class
                filed = self._collect_student(student, by_time, released, record)
            except Exception as error:  # noqa: BLE001 - reported for that student, the run goes on
                record.problems.append(Problem(Kind.GRADER_ERROR, f"could not collect: {type(error).__name__}: "
                                                                  f"{error}"[:300]))
                continue
            if filed:
                data[student] = filed
        return data

    def _collect_student(self, student, by_time, released, record: Collected) -> dict | None:
        """nbgrader's transfer data for one student's newest attempt (None: nothing to file)."""
        if self.usernames and student not in self.usernames.values():
            record.problems.append(Problem(Kind.UNKNOWN_STUDENT, f"{student} is not on the roster: filed "
                                                                 "under the platform's user name"))
        for future in [t for t in by_time if (_moment(t) or self.latest) > self.latest + CLOCK_SLACK]:
            del by_time[future]
            record.problems.append(Problem(Kind.REFUSED_FILE, f"attempt of {future} is later than the "
                                                              "download itself: not filed"))
        if not by_time:
            return None
        order = sorted(by_time, key=lambda t: (_moment(t) or datetime.datetime.min, t))
        newest = order[-1]
        for older in order[:-1]:
            files = [name for _, name in by_time[older] if name]
            record.problems.append(Problem(Kind.OLDER_ATTEMPT, f"attempt of {older} superseded by {newest}: "
                                                               f"{len(files)} file(s) not filed"))
        record.attempt = newest
        chosen = self._choose(by_time[newest], released, record)
        dest = self.coursedir.format_path(self.coursedir.submitted_directory, student, self.coursedir.assignment_id)
        if not chosen:
            kept = sorted(p.stem for p in Path(dest).glob("*.ipynb"))
            if kept:  # filed by an earlier collect (or the exchange): graded unless removed
                record.notebooks = kept
                record.problems.append(Problem(Kind.OLDER_ATTEMPT, "no notebook in the newest attempt: the "
                                                                   "notebooks filed earlier are kept"))
            return None
        timestamp = _moment(newest)
        record.notebooks = sorted(chosen)
        return {"src_files": [str(p) for p, _ in chosen.values()],
                "dest_files": [str(Path(dest) / f"{name}.ipynb") for name in chosen],
                "file_ids": [f"{name}.ipynb" for name in chosen], "timestamp": timestamp}

    def _transfer_files(self, collected_data):
        """nbgrader's transfer, one student at a time: a failure is that student's problem."""
        for student, data in collected_data.items():
            try:
                super()._transfer_files({student: data})
            except (Exception, SystemExit) as error:  # noqa: BLE001 - nbgrader's `fail` exits
                record = self.outcome[student]
                record.notebooks = []
                record.problems.append(Problem(Kind.GRADER_ERROR, f"could not file: {type(error).__name__}: "
                                                                  f"{error}"[:300]))

    def _choose(self, files, released, record: Collected) -> dict[str, tuple[Path, str]]:
        """{notebook: (file, its name)} from one attempt; a note for every file not filed."""
        candidates: dict[str, list[tuple[Path, str]]] = {}
        for path, name in files:
            if name is None:  # the attempt's own record (Blackboard's .txt)
                continue
            if ARCHIVE.search(name):
                record.problems.append(Problem(Kind.NOT_A_NOTEBOOK, f"{name}: hand in .ipynb files, not archives: "
                                                                    "not filed (not unpacked)"))
                continue
            if not name.lower().endswith(".ipynb"):
                record.problems.append(Problem(Kind.NOT_A_NOTEBOOK, f"{name} is not a notebook: not filed"))
                continue
            meant = canonical_name(name)
            try:
                nb = nbformat.read(str(path), as_version=4)
            except Exception as error:  # noqa: BLE001 - any unreadable file is reported the same way
                nb = None
                if meant not in released:
                    record.problems.append(Problem(Kind.INVALID_NOTEBOOK, f"{name} is not a valid notebook "
                                                                          f"({type(error).__name__}): not filed"))
                    continue
            if meant not in released:
                matched = matching_notebook(nb, released)
                if matched is None:
                    record.problems.append(Problem(Kind.NOT_A_NOTEBOOK, f"{name} is not one of the assignment's "
                                                                        "notebooks: not filed"))
                    continue
                meant = matched
            candidates.setdefault(meant, []).append((path, name))
        chosen = {}
        for meant, found in candidates.items():
            # the plainest name wins: 1_notation.ipynb over Copy of 1_notation.ipynb over ... (2).ipynb
            found.sort(key=lambda item: (item[1] != f"{meant}.ipynb", len(item[1]), item[1]))
            chosen[meant] = found[0]
            if found[0][1] != f"{meant}.ipynb":
                record.problems.append(Problem(Kind.RENAMED, f"{found[0][1]} filed as {meant}.ipynb"))
            for _, name in found[1:]:
                record.problems.append(Problem(Kind.DUPLICATE_FILE, f"{name} is a second file for {meant}.ipynb in "
                                                                    f"the same attempt: {found[0][1]} filed instead"))
        return chosen


class Collector(Configurable):
    """How hand-ins are collected (configurable as `c.Collector.<name>` in nbgrader_config.py)."""

    roster = Unicode("", help="a roster CSV (id,username[,first_name,last_name]): platform user names are filed "
                              "under their student id, and everyone on it who handed in nothing is listed"
                     ).tag(config=True)
    update = Bool(True, help="exchange route: replace submissions already collected (nbgrader collect --update)"
                  ).tag(config=True)
    state_dir = Unicode(".grading", help="where the collect report goes, relative to the course").tag(config=True)
    max_archive_bytes = Integer(4 * 2**30, help="a bulk download that would unpack to more is refused").tag(config=True)


def _expected_students(course: Path, coursedir, people: dict) -> set[str]:
    """The class: the gradebook's students and the roster's."""
    from nbgrader.api import Gradebook

    students = set(people)
    url = coursedir.db_url
    if not url.startswith("sqlite:///") or Path(url.removeprefix("sqlite:///")).exists():
        with Gradebook(url, coursedir.course_id) as gradebook:
            students |= {s.id for s in gradebook.students}
    return students


def collect(course: Path, assignment: str, archive: Path | None = None, *, config: Config | None = None,
            roster: Path | None = None) -> CollectResult:
    """File every hand-in of `assignment` under submitted/: from `archive` (a platform's bulk download,
    a .zip or a folder of files) or, without it, from the exchange (`nbgrader collect`)."""
    quiet_warnings()
    course = course.resolve()
    config = load_config(course, config)
    settings = Collector(config=config)
    roster_path = roster or (Path(settings.roster) if settings.roster else None)
    if roster_path is not None and not roster_path.is_absolute():
        roster_path = course / roster_path
    people = rosters.read(roster_path) if roster_path else {}
    coursedir = course_directory(config, assignment_id=assignment)
    if archive is None:
        result = _from_exchange(course, assignment, settings, coursedir)
    else:
        result = _from_archive(course, assignment, archive.resolve(), config, people, settings.max_archive_bytes)
    submitted = course / coursedir.submitted_directory
    known = {s.student: s for s in result.students}
    for student in sorted(_expected_students(course, coursedir, people) | set(known)):
        record = known.get(student)
        if record is None:
            record = Collected(student, notebooks=sorted(p.stem for p in (submitted / student / assignment)
                                                         .glob("*.ipynb")) if result.route == "exchange" else [])
            result.students.append(record)
        if not record.notebooks and not any(p.kind is Kind.NOT_SUBMITTED for p in record.problems):
            why = "handed in nothing" if not record.attempt else "no notebook of the assignment in the newest attempt"
            record.problems.append(Problem(Kind.NOT_SUBMITTED, why))
    result.students.sort(key=lambda s: s.student)
    result.report = course / settings.state_dir / f"{assignment}-collect.json"
    result.report.parent.mkdir(parents=True, exist_ok=True)
    result.report.write_text(json.dumps({
        "assignment": assignment, "route": result.route, "students": [s.to_dict() for s in result.students],
        "problems": [{"kind": str(p.kind), "message": p.message} for p in result.problems]}, indent=1) + "\n")
    return result


def _from_archive(course: Path, assignment: str, archive: Path, config: Config, people: dict,
                  max_bytes: int) -> CollectResult:
    app = PlatformZipCollect(config=config)
    app.log_level = "ERROR"
    app.coursedir = course_directory(config, parent=app, root=str(course), assignment_id=assignment)
    app.force = True  # a newer bulk download replaces what an earlier one filed
    if app.collector_plugin is FileNameCollectorPlugin:
        app.collector_plugin = PlatformCollector
    app.usernames = rosters.ids_by_username(people)
    app.outcome, app.stray = {}, []
    inbox = Path(app._format_collect_path(app.archive_directory))
    shutil.rmtree(inbox, ignore_errors=True)
    inbox.mkdir(parents=True)
    if archive.is_dir():
        shutil.copytree(archive, inbox, dirs_exist_ok=True)
    elif archive.is_file():
        shutil.copy(archive, inbox)
    else:
        raise FileNotFoundError(f"{archive}: no such archive or folder")
    written = datetime.datetime.fromtimestamp(archive.stat().st_mtime, datetime.UTC)
    app.latest = min(written, datetime.datetime.now(datetime.UTC)).replace(tzinfo=None)
    app.init_plugins()
    extracted = Path(app._format_collect_path(app.extracted_directory))
    shutil.rmtree(extracted, ignore_errors=True)
    extracted.mkdir(parents=True)
    _unpack(inbox, extracted, app.collector_plugin_inst, max_bytes, app.stray)
    _plain_modes(extracted)
    try:
        app.process_extracted_files()
    except SystemExit as failed:  # nbgrader's own `fail` logged why
        raise RuntimeError(f"nbgrader zip_collect failed ({failed.code})") from None
    return CollectResult(assignment, "archive", students=list(app.outcome.values()), problems=app.stray)


def _unpack(inbox: Path, extracted: Path, names: PlatformCollector, max_bytes: int, stray: list[Problem]) -> None:
    """The bulk download into `extracted`, one level only: each .zip at the top of `inbox` that is not itself a
    student's file (its name does not follow the platform's pattern) is unpacked; every other file is copied.
    Nothing inside a hand-in is ever unpacked (nbgrader's ExtractorPlugin unpacks archives at any depth, which
    let a student's zip carry files named for classmates, and past max_archive_bytes)."""
    for path in sorted(inbox.rglob("*")):
        if path.is_symlink() or not path.is_file():
            continue
        relative = path.relative_to(inbox)
        bulk = (len(relative.parts) == 1 and path.suffix.lower() == ".zip"
                and names.collect(str(relative)) is None)
        if not bulk:
            (extracted / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, extracted / relative)
            continue
        try:
            archive = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, OSError) as error:
            raise ValueError(f"{path.name} is not a readable zip archive ({error})") from None
        with archive:
            entries = [item for item in archive.infolist() if not item.is_dir()]
            size = sum(item.file_size for item in entries)
            if size > max_bytes:
                raise ValueError(f"{path.name} unpacks to {size} bytes, more than Collector.max_archive_bytes")
            for item in entries:
                name = item.filename.replace("\\", "/")
                parts = Path(name).parts
                if not parts or name.startswith("/") or ".." in parts:
                    stray.append(Problem(Kind.REFUSED_FILE, f"{printable(item.filename)}: a path outside the "
                                                            "archive: not unpacked"))
                    continue
                target = extracted.joinpath(*parts)
                try:
                    target.parent.mkdir(parents=True, exist_ok=True)
                    with archive.open(item) as source, open(target, "wb") as sink:
                        shutil.copyfileobj(source, sink)
                except Exception as error:  # noqa: BLE001 - one damaged entry costs that file only
                    stray.append(Problem(Kind.REFUSED_FILE, f"{printable(item.filename)}: could not be unpacked "
                                                            f"({type(error).__name__}): not filed"))


def _plain_modes(folder: Path) -> None:
    """Zip entries carry Unix modes (setuptools' unzip applies them): no set-uid, executable or other's bits."""
    for path in folder.rglob("*"):
        if not path.is_symlink():
            path.chmod(0o700 if path.is_dir() else 0o600)


def _from_exchange(course: Path, assignment: str, settings: Collector, coursedir) -> CollectResult:
    from coursepack.nbgrader_cli import nbgrader

    result = nbgrader("collect", assignment, *(["--update"] if settings.update else []), course=course, check=False)
    if result.returncode != 0:
        print(result.stdout[-2000:] + result.stderr[-4000:], file=sys.stderr)
        raise RuntimeError(f"nbgrader collect failed ({result.returncode})")
    submitted = course / coursedir.submitted_directory
    students = []
    for folder in sorted(submitted.glob(f"*/{assignment}")) if submitted.is_dir() else []:
        stamp = folder / "timestamp.txt"
        students.append(Collected(folder.parent.name, stamp.read_text().strip() if stamp.is_file() else "",
                                  sorted(p.stem for p in folder.glob("*.ipynb"))))
    return CollectResult(assignment, "exchange", students=students)
