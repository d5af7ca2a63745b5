"""Release: generate the student versions of every assignment and prove they are in sync and leak-free.

    python -m coursepack.release            generate release/ from source/, print the points table and what
                                            changed in grading since the last published release
    python -m coursepack.release --check    regenerate in a temporary folder; fail if release/ differs
                                            from it or if any solution or hidden-test text leaked

Versions: `version` in pyproject.toml is the release's one source (every notebook's header shows it).
`make publish` records each published version's graded items (grade ids, points, a checksum of each test
cell) in release/releases.json, beside the assignment folders, so students never receive it. A graded
change under a version already published is refused: submissions made against it would be graded with
other tests.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from coursepack import notebooks
from coursepack.nbgrader_cli import nbgrader

MARKERS = ("### BEGIN SOLUTION", "### END SOLUTION", "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS")
# Lines shorter than this ("return x", "pass") legitimately appear in stubs and visible code.
MIN_LEAK_LENGTH = 16


assignments = notebooks.assignments


def generate(course: Path, assignment: str) -> None:
    """`nbgrader generate_assignment` into release/<assignment>, replacing what was there."""
    nbgrader("generate_assignment", assignment, "--force", course=course)


def _points(cells) -> float:
    return sum(notebooks.nbgrader(c)["points"] for c in cells)


def points_table(release_dir: Path) -> list[tuple[str, int, float, int, float]]:
    """(notebook, autograded tests, their points, written answers, their points) per release notebook."""
    rows = []
    for path in sorted(release_dir.glob("*.ipynb")):
        cells = [c for c in notebooks.read(path).cells if notebooks.nbgrader(c).get("grade")]
        auto = [c for c in cells if notebooks.is_test(c)]
        manual = [c for c in cells if not notebooks.is_test(c)]
        rows.append((path.name, len(auto), _points(auto), len(manual), _points(manual)))
    return rows


def format_table(assignment: str, rows) -> str:
    lines = [f"{assignment:24} {'tests':>6} {'points':>7} {'written':>8} {'points':>7} {'total':>6}"]
    for name, n_auto, p_auto, n_manual, p_manual in rows:
        lines.append(f"{name:24} {n_auto:6} {p_auto:7g} {n_manual:8} {p_manual:7g} {p_auto + p_manual:6g}")
    totals = [sum(r[i] for r in rows) for i in range(1, 5)]
    lines.append(f"{'total':24} {totals[0]:6} {totals[1]:7g} {totals[2]:8} {totals[3]:7g} "
                 f"{totals[1] + totals[3]:6g}")
    return "\n".join(lines)


def secret_lines(source_nb) -> set[str]:
    """Distinctive lines of the solutions and hidden tests: none of them may reach a student."""
    secret, public = set(), set()
    for cell in source_nb.cells:
        hidden = notebooks.SOLUTION.findall(cell.source) + notebooks.HIDDEN_TESTS.findall(cell.source)
        stripped = notebooks.HIDDEN_TESTS.sub("", notebooks.SOLUTION.sub("", cell.source))
        public.update(line.strip() for line in stripped.splitlines())
        secret.update(line.strip() for block in hidden for line in block.splitlines())
    return {line for line in secret - public if len(line) >= MIN_LEAK_LENGTH}


def leaks(source_dir: Path, release_dir: Path) -> list[str]:
    found = []
    for source in sorted(source_dir.glob("*.ipynb")):
        released = release_dir / source.name
        if not released.exists():
            found.append(f"{released}: missing from the release")
            continue
        text = "\n".join(c.source for c in notebooks.read(released).cells)
        found += [f"{released.name}: contains marker {m!r}" for m in MARKERS if m in text]
        lines = {line.strip() for line in text.splitlines()}
        found += [f"{released.name}: leaks {line!r}" for line in sorted(secret_lines(notebooks.read(source)) & lines)]
    return found


MANIFEST = Path("release") / "releases.json"


def graded_items(source_dir: Path) -> dict[str, dict[str, dict]]:
    """{notebook: {grade_id: item}} for the cells grading depends on: answer cells (their ids: submissions
    carry them), test cells (points and a checksum of the whole cell, hidden tests included) and written
    answers (points)."""
    items = {}
    for path in sorted(source_dir.glob("*.ipynb")):
        cells = {}
        for cell in notebooks.read(path).cells:
            meta = notebooks.nbgrader(cell)
            if notebooks.is_test(cell):
                text = "\n".join(line.rstrip() for line in cell.source.strip().splitlines())
                cells[meta["grade_id"]] = {"kind": "test", "points": meta["points"],
                                           "checksum": hashlib.sha256(text.encode()).hexdigest()[:16]}
            elif meta.get("solution"):
                cells[meta["grade_id"]] = {"kind": "written" if meta.get("grade") else "answer",
                                           **({"points": meta["points"]} if meta.get("grade") else {})}
        items[path.name] = cells
    return items


def course_items(course: Path) -> dict[str, dict]:
    return {assignment: graded_items(course / "source" / assignment) for assignment in assignments(course)}


def published(course: Path) -> dict[str, dict]:
    """{version: {"items": {assignment: graded items}, ...}} for every published version, oldest first."""
    path = course / MANIFEST
    return json.loads(path.read_text()) if path.exists() else {}


def record(course: Path, version: str, **facts) -> None:
    """Add `version` (with its graded items and `facts`, such as the export's commit) to the manifest."""
    manifest = published(course)
    manifest[version] = {"items": course_items(course), **facts}
    (course / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=False) + "\n")


def grading_changes(before: dict, after: dict) -> list[str]:
    """How grading differs between two course_items(), as sentences naming notebook and grade id."""
    found = []
    for assignment in sorted(before.keys() | after.keys()):
        old_nbs, new_nbs = before.get(assignment, {}), after.get(assignment, {})
        for name in sorted(old_nbs.keys() | new_nbs.keys()):
            where = f"{assignment}/{name}"
            if name not in new_nbs or name not in old_nbs:
                found.append(f"{where}: {'removed' if name not in new_nbs else 'added'}")
                continue
            old, new = old_nbs[name], new_nbs[name]
            for gid in sorted(old.keys() | new.keys()):
                if gid not in new or gid not in old:
                    found.append(f"{where} {gid}: grade id {'removed' if gid not in new else 'added'}")
                    continue
                if old[gid].get("kind") != new[gid].get("kind"):
                    found.append(f"{where} {gid}: was a {old[gid].get('kind')} cell, now a {new[gid].get('kind')}")
                if old[gid].get("points") != new[gid].get("points"):
                    found.append(f"{where} {gid}: points {old[gid].get('points')} -> {new[gid].get('points')}")
                if old[gid].get("checksum") != new[gid].get("checksum"):
                    found.append(f"{where} {gid}: the test cell changed (visible or hidden tests)")
    return found


def release_report(course: Path) -> tuple[bool, str]:
    """(blocking, text): what changed in grading since the last published release, and how to proceed.

    Blocking when the current version was itself published with other graded items: the version no longer
    names one set of tests, so `make publish` refuses and `make test` fails until the version is bumped.
    """
    manifest = published(course)
    if not manifest:
        return False, ""
    version, current = notebooks.version(course), course_items(course)
    if version in manifest:
        found = grading_changes(manifest[version]["items"], current)
        if not found:
            return False, ""
        commit = manifest[version].get("source_commit")
        keep = f" (a checkout of this repository's commit {commit}, `git worktree add ../v{version} {commit}`)" \
            if commit else ""
        return True, "\n".join([
            f"Grading changed since release {version} was published, under the same version:",
            *(f"  {line}" for line in found),
            "Submissions already made were made against the published tests. To proceed:",
            "  1. bump `version` in pyproject.toml and say in CHANGELOG.md what changed and what happens to work",
            "     already handed in;",
            "  2. make sync && make release, commit, then make publish DEST=... (a new commit and tag);",
            "  3. re-grade submissions already collected with the new tests (make autograde), or grade them with",
            f"     release {version}'s tests{keep};",
            "  or undo the change in source/ to keep release " + version + "."])
    last = next(reversed(manifest))
    found = grading_changes(manifest[last]["items"], current)
    if not found:
        return False, ""
    return False, "\n".join([
        f"Release {version} (not published yet) grades differently from release {last}:",
        *(f"  {line}" for line in found),
        f"After make publish, re-grade submissions made against {last} or grade them with its tests; "
        "CHANGELOG.md should say which."])


def _files(folder: Path) -> set[str]:
    """Every file under `folder`, at any depth, as posix paths relative to it (links count as files)."""
    if not folder.is_dir():
        return set()
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_symlink() or not p.is_dir()}


def _one_sided(name: str, other: Path) -> str:
    """`name`, or its topmost folder that `other` lacks as a whole ("data/"): one line per such folder."""
    parts = name.split("/")
    for end in range(1, len(parts)):
        if not (other / "/".join(parts[:end])).exists():
            return "/".join(parts[:end]) + "/"
    return name


def differences(committed: Path, fresh: Path) -> list[str]:
    """How the committed release folder differs from a freshly generated one, file by file, folders included
    (a folder only one side has is one line)."""
    found, one_sided = [], {}
    for name in sorted(_files(committed) | _files(fresh)):
        a, b = committed / name, fresh / name
        if not (a.exists() or a.is_symlink()) or not (b.exists() or b.is_symlink()):
            where = "missing from" if not a.exists() else "not generated by"
            key = (_one_sided(name, committed if not a.exists() else fresh), where)
            one_sided[key] = one_sided.get(key, 0) + 1
        elif a.is_symlink() or b.is_symlink() or not a.is_file() or not b.is_file():
            found.append(f"{name}: a link or special file")
        elif a.suffix == ".ipynb":
            if json.loads(a.read_text()) != json.loads(b.read_text()):
                found.append(f"{name}: differs from what generate_assignment makes of source/")
        elif a.read_bytes() != b.read_bytes():
            found.append(f"{name}: differs")
    found += [f"{name}: {where} the release" + (f" ({count} files)" if name.endswith("/") else "")
              for (name, where), count in one_sided.items()]
    return sorted(found)


def untracked(course: Path) -> list[str]:
    """Files under release/<assignment>/ that git does not track (ignored ones included), as sentences:
    make publish would not send them, and nobody reviewed them for students (a grades file copied from source/,
    a submitted/ folder). Nothing when the course is no git repository."""
    if not (course / ".git").exists():
        return []
    folders = [f"{notebooks.RELEASE.name}/{a}" for a in assignments(course)]
    return [f"{name}: not tracked by git (ignored or new), yet in the release students would receive: remove it "
            "from source/ and release/" for name in git_files(course, "--others", "--directory", "--", *folders)]


CACHES = (".ipynb_checkpoints", "__pycache__")  # editor and interpreter caches: never copied, never reported


def git_files(course: Path, *args: str) -> list[str]:
    """`git ls-files ARGS` in the course, sorted, less editor and interpreter caches (one reader for publish's
    allow-list and the release check)."""
    listed = subprocess.run(["git", "-C", str(course), "ls-files", "-z", *args], capture_output=True, text=True,
                            check=True).stdout
    return sorted(name for name in listed.split("\0") if name and not set(CACHES) & set(name.split("/")))


def check(course: Path) -> list[str]:
    """Every way release/ is out of sync with source/ or leaks solutions, as sentences."""
    found = []
    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp)
        shutil.copytree(course / "source", scratch / "source")
        shutil.copy(course / "nbgrader_config.py", scratch)
        for assignment in assignments(course):
            generate(scratch, assignment)
            committed = course / "release" / assignment
            found += [f"release/{assignment}/{d} (run make release)"
                      for d in differences(committed, scratch / "release" / assignment)]
            found += leaks(course / "source" / assignment, committed)
    return found + untracked(course)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="verify release/ instead of regenerating it")
    parser.add_argument("--course", type=Path, default=notebooks.ROOT)
    args = parser.parse_args(argv)
    if args.check:
        found = check(args.course)
        print("\n".join(found) or "release/ is in sync with source/ and leaks nothing")
        return 1 if found else 0
    for assignment in assignments(args.course):
        generate(args.course, assignment)
        print(format_table(assignment, points_table(args.course / "release" / assignment)))
        found = leaks(args.course / "source" / assignment, args.course / "release" / assignment)
        if found:
            print("\n".join(found), file=sys.stderr)
            return 1
    blocking, report = release_report(args.course)
    if report:
        print(report, file=sys.stderr if blocking else sys.stdout)
    return 1 if blocking else 0


if __name__ == "__main__":
    sys.exit(main())
