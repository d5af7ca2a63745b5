"""Staging: what nbgrader gets to see of a submission.

A submission is copied into the grader's own folder before anything reads it, and only what is
plainly the student's is copied:

- the submission folder (`submitted/<student>/<assignment>`) and the student's folder must be
  real folders: a symbolic link there (say, to the instructor's `source/`) refuses the whole
  submission, with the reason;
- inside, links, FIFOs, sockets and devices are refused one by one, each with a note; files are
  opened without following links and copied only if they are regular files, up to `max_bytes`
  and `max_files` in all, 16 folders deep at most (beyond: not copied, with a note);
- notebooks must be valid nbformat documents (an editor's save that only misstates its nbformat
  version is repaired first, with a note: editors.repair_format); one under an unexpected name is
  graded as the expected notebook whose cells it matches (by grade id), with a note.

The returned problems are per notebook (`problems.Problem` records).
"""
from __future__ import annotations

import os
import shutil
import stat
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from coursepack import notebooks
from coursepack.grading import editors
from coursepack.grading.problems import Kind, Problem

CHUNK = 1 << 20


@dataclass
class Staged:
    """A submission copied for grading: where, the notebooks nbgrader can grade, and what was wrong."""

    folder: Path
    gradable: list[str] = field(default_factory=list)
    problems: dict[str, list[Problem]] = field(default_factory=dict)


def _grade_ids(nb) -> set[str]:
    return {gid for c in nb.cells if (gid := notebooks.grade_id(c)) is not None}


def _kind_of(mode: int) -> str:
    for test, name in ((stat.S_ISLNK, "a symbolic link"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device")):
        if test(mode):
            return name
    return "not a regular file"


def _copy_regular(path: Path, target: Path, budget: list[int]) -> str | None:
    """Copy one file without following links; None, or why it was refused."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as error:
        return f"could not be read ({error.strerror})"
    with os.fdopen(fd, "rb") as source:
        info = os.fstat(source.fileno())
        if not stat.S_ISREG(info.st_mode):
            return _kind_of(info.st_mode)
        if info.st_size > budget[0]:
            return "too large: the submission is limited in size"
        budget[0] -= info.st_size
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(target, "wb") as out:
            shutil.copyfileobj(source, out, CHUNK)
    return None


MAX_DEPTH = 16


def _walk(folder: Path, relative: Path = Path()):
    """(relative path, lstat result) of everything under `folder`, not following links into other folders.

    Notebooks come first (the file limit never keeps one out); a folder nested too deep is yielded
    itself (as a folder: the caller refuses it)."""
    for entry in sorted(os.scandir(folder / relative), key=lambda e: (not e.name.endswith(".ipynb"), e.name)):
        info = entry.stat(follow_symlinks=False)
        path = relative / entry.name
        if stat.S_ISDIR(info.st_mode) and not entry.name.startswith("."):  # not .ipynb_checkpoints & co.
            if len(path.parts) >= MAX_DEPTH:
                yield path, info
            else:
                yield from _walk(folder, path)
        elif not stat.S_ISDIR(info.st_mode):
            yield path, info


def stage(submission: Path, target: Path, notebook_names: list[str], sources: dict[str, Path],
          max_bytes: int = 256 * 2**20, max_files: int = 1000) -> Staged:
    """Copy `submission` into `target` (emptied first), keeping what nbgrader may grade.

    `sources` are the source notebooks (by name): a renamed notebook is matched against them.
    """
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    staged = Staged(target, problems={name: [] for name in notebook_names})
    for folder in (submission.parent, submission):
        info = os.lstat(folder)
        if not stat.S_ISDIR(info.st_mode):
            why = f"{folder.name} is {_kind_of(info.st_mode)}, not a folder: the submission was not graded"
            for problems in staged.problems.values():
                problems.append(Problem(Kind.REFUSED_SUBMISSION, why))
            return staged
    readable, elsewhere, notes, budget, repairs = {}, {}, [], [max_bytes], {}
    for count, (relative, info) in enumerate(_walk(submission)):
        if count == max_files:
            notes.append(Problem(Kind.REFUSED_FILE, f"more than {max_files} files handed in: the rest were not copied"))
            break
        if stat.S_ISDIR(info.st_mode):
            notes.append(Problem(Kind.REFUSED_FILE, f"{relative} is nested more than {MAX_DEPTH} folders deep: "
                                                    "not copied"))
            continue
        if not stat.S_ISREG(info.st_mode):
            notes.append(Problem(Kind.REFUSED_FILE, f"{relative} is {_kind_of(info.st_mode)}: not copied"))
            continue
        if relative.suffix != ".ipynb":
            why = _copy_regular(submission / relative, target / relative, budget)
            if why:
                notes.append(Problem(Kind.REFUSED_FILE, f"{relative} {why}: not copied"))
            continue
        copy = target / ".incoming" / relative
        why = _copy_regular(submission / relative, copy, budget)
        if why:
            notes.append(Problem(Kind.REFUSED_FILE, f"{relative} {why}: not copied"))
            continue
        try:
            nb = nbformat.read(str(copy), as_version=4)
            repaired = editors.repair_format(nb)
            if repaired:
                nbformat.write(nb, str(copy))
                repairs[copy] = Problem(Kind.EDITOR_FORMAT, repaired)
            nbformat.validate(nb)
        except Exception as error:  # noqa: BLE001 - any unreadable notebook is reported the same way
            if relative.stem in staged.problems:
                staged.problems[relative.stem].append(Problem(
                    Kind.INVALID_NOTEBOOK, f"not a valid notebook ({type(error).__name__}: {str(error)[:200]})"))
            continue
        top_level = len(relative.parts) == 1 and relative.stem in staged.problems
        (readable if top_level else elsewhere)[relative.stem if top_level else str(relative)] = (copy, nb)
    for name in notebook_names:
        found = readable.get(name)
        if found is None and not staged.problems[name]:
            found = _renamed(name, sources.get(name), elsewhere, staged.problems[name])
        if found is None:
            if not staged.problems[name]:
                staged.problems[name].append(Problem(Kind.NOT_SUBMITTED, "not submitted"))
            continue
        shutil.copyfile(found[0], target / f"{name}.ipynb")
        if found[0] in repairs:
            staged.problems[name].append(repairs[found[0]])
        staged.gradable.append(name)
    shutil.rmtree(target / ".incoming", ignore_errors=True)
    for name in notebook_names:
        staged.problems[name] += notes
    return staged


def _renamed(name: str, source: Path | None, candidates: dict, problems: list[Problem]):
    """The candidate notebook sharing most grade ids with the source (at least half), taken out of `candidates`."""
    if source is None:
        return None
    ids = _grade_ids(notebooks.read(source))
    ranked = sorted((len(ids & _grade_ids(nb)), key) for key, (_, nb) in candidates.items())
    if not ranked or ranked[-1][0] * 2 < len(ids) or not ids:
        return None
    key = ranked[-1][1]
    problems.append(Problem(Kind.RENAMED, f"graded {key} as {name}.ipynb (renamed notebook)"))
    return candidates.pop(key)
