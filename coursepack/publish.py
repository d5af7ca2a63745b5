"""Publish: write the student repository, which holds no solution, hidden test or grading code.

    python -m coursepack.publish DEST     (make publish DEST=... [REPOSITORY=owner/name BRANCH=branch-or-tag])
    python -m coursepack.publish --check  build the export in a temporary folder and scan it; publish nothing

Colab opens notebooks from a public GitHub repository; this one holds the answers. The export has the
same layout as this repository for what students get, so every path in the getting-started text is true
in both:

    README.md  CHANGELOG.md  LICENSE  .gitignore   the student README (coursepack/student/), this CHANGELOG
    release/<assignment>/                          the release notebooks (and tracked text files beside them)
    notebooks/                                     the demos
    Makefile  pyproject.toml  environment.yml      make lab / kernel / slurm and the practical's requirements
    coursepack/kernel.py  coursepack/slurm.py  slurm/run_notebook.sbatch.in   the tools behind them

Every header cell, getting-started cell and README link is written for the student repository named by
REPOSITORY and BRANCH (coursepack/notebooks.py). The tree is built in a scratch folder and scanned
(`scan`): no solution or hidden-test text, no mutation case, no path of the instructor's folders, every
badge and link to the student repository resolving to a file of the export. Only then is it committed
into DEST's own history (a git repository, created when missing) as "Release <version>" (with the trailer
TRAILER) and tagged v<version>; nothing of this repository's history enters DEST. Of release/ and notebooks/
only files git tracks go (export_files); anything else in release/ stops the publication (beside the demos
it is only left out). DEST is refused when it
is the course, inside or around it, holds a commit publish did not make (a clone or fork of the course) or
files git ignores (publishing replaces tracked files only and never deletes one it ignores). A version
already tagged with other content is refused (bump the version), and so is a graded change under a
published version (coursepack/release.py). The published version's graded items are recorded in release/releases.json.
"""
from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

from coursepack import notebooks, release

STUDENT = Path("coursepack") / "student"
TOOLS = ("coursepack/kernel.py", "coursepack/slurm.py", "slurm/run_notebook.sbatch.in")
MAKEFILE_BLOCK = re.compile(r"^# student-makefile:start.*?\n(.*?)^# student-makefile:end\n", re.S | re.M)
# What may never reach students, by path and by text.
FORBIDDEN_PATHS = ("source/", "autograde_tests/", "docs/", "coursepack/grading/", "coursepack/snippets/",
                   str(release.MANIFEST), "nbgrader_config.py", ".ci/", "scripts/")
FORBIDDEN_TEXT = re.compile(r"(?<![\w.-])(source|autograde_tests)/|coursepack[./]grading")
LINK = re.compile(r"https://(?:colab\.research\.google\.com/github|github\.com)/([\w.-]+)/([\w.-]+)/blob/"
                  r"([^/\s)]+)/([^\s)\"'>]+)")
PLACEHOLDER = re.compile(r"\{\{\w+\}\}|<(?:this repository's URL|your [^>]*|[A-Z_ ]+)>")
# Lines a demo shares with a solution on purpose, each reviewed: 5_training_loop's exercise text spells them out
# (get_device's order of checks; make_mlp's 784 -> 256 -> 128 -> 10 with ReLU; make_convnet's hidden layer of 128
# with dropout 0.25), and classifier / convnet / 0_environment_check show them. Only these lines, and only in
# notebooks/, are exempt: everything else a demo shows is scanned against every solution, hidden test and case.
DEMO_SHARED = frozenset({
    "if torch.cuda.is_available():",
    "return nn.Sequential(",
    "nn.Linear(256, 128), nn.ReLU(),",
    "nn.Linear(64 * 7 * 7, 128), nn.ReLU(), nn.Dropout(0.25),",
})
IDENTITY = ["-c", "user.name=COMP3547 course pack", "-c", "user.email=coursepack@invalid"]


def student_pyproject(course: Path, version: str) -> str:
    """The student repository's pyproject.toml: this one's requirements, and the package of the two tools."""
    project = tomllib.loads((course / "pyproject.toml").read_text())["project"]
    deps = "".join(f'    "{dep}",\n' for dep in project["dependencies"])
    return (f'[project]\nname = "comp3547-practical1"\nversion = "{version}"\n'
            'description = "COMP3547 Deep Learning practical 1: its requirements, make kernel and make slurm"\n'
            f'requires-python = "{project["requires-python"]}"\nlicense = {{ text = "MIT" }}\n'
            f"dependencies = [\n{deps}]\n\n"
            '[build-system]\nrequires = ["setuptools>=68"]\nbuild-backend = "setuptools.build_meta"\n\n'
            '[tool.setuptools]\npackages = ["coursepack"]\n')


def student_environment(course: Path) -> str:
    project = tomllib.loads((course / "pyproject.toml").read_text())["project"]
    deps = "".join(f'      - "{dep}"\n' for dep in project["dependencies"])
    return ("# Conda environment for NCC and local machines: the same requirements as pyproject.toml.\n"
            "#   conda env create -f environment.yml && conda activate comp3547 && pip install --no-deps -e .\n"
            "name: comp3547\nchannels:\n  - conda-forge\ndependencies:\n"
            f"  - python{project['requires-python']}\n  - pip\n  - pip:\n{deps}")


def student_makefile(course: Path) -> str:
    block = MAKEFILE_BLOCK.search((course / "Makefile").read_text())
    if not block:
        raise ValueError("Makefile: no '# student-makefile:start' ... '# student-makefile:end' block")
    return (course / STUDENT / "Makefile.head").read_text() + block.group(1)


def _is_text(path: Path) -> bool:
    try:
        path.read_text()
    except UnicodeDecodeError:
        return False
    return True


def export_files(course: Path) -> tuple[list[str], list[str], list[str]]:
    """(the files of release/<assignment>/ and notebooks/ that go into the export, the others as sentences that
    stop the publication, untracked files beside the demos left out as sentences that do not).

    Untracked files under notebooks/ are what running the demos leaves there (the MNIST cache in
    notebooks/data/): they never go, and need not stop a publication. Under release/<assignment>/ they do,
    because the exchange gives students that folder as it is.

    An allow-list: a file goes only when git tracks it (without git: only the notebooks themselves) and it is
    text the scan can read. Anything else there (a file or folder git ignores or does not know, a binary, a
    link) is reported and never copied, because students would receive it unscanned."""
    folders = [f"{notebooks.RELEASE.name}/{a}" for a in release.assignments(course)] + [notebooks.DEMOS.name]
    refused, skipped = [], []
    if (course / ".git").exists():
        candidates = release.git_files(course, "--", *folders)
        untracked = release.git_files(course, "--others", "--directory", "--", *folders)
        demos = f"{notebooks.DEMOS.name}/"
        skipped = [f"{rel}: not tracked by git, left out" for rel in untracked if rel.startswith(demos)]
        refused += [f"{rel}: not tracked by git (ignored or new), so never published; move it out, or commit it "
                    "if it is meant for students" for rel in untracked if not rel.startswith(demos)]
    else:
        entries = [p for folder in folders if (course / folder).is_dir() for p in sorted((course / folder).iterdir())
                   if p.name not in release.CACHES]
        candidates = [p.relative_to(course).as_posix() for p in entries if p.suffix == ".ipynb"]
        refused += [f"{p.relative_to(course).as_posix()}{'/' * p.is_dir()}: not a notebook, and this course is no "
                    "git repository to say it is tracked" for p in entries if p.suffix != ".ipynb"]
    allowed = []
    for rel in candidates:
        path = course / rel
        if path.is_symlink() or not path.is_file():
            refused.append(f"{rel}: a link, special file or missing file (only tracked regular files are published)")
        elif not _is_text(path):
            refused.append(f"{rel}: a binary file, which the scan cannot read: not published")
        else:
            allowed.append(rel)
    return allowed, refused, skipped


def build(course: Path, export: Path, config: notebooks.Settings) -> list[str]:
    """Write the student repository's tree for `config` into the empty folder `export`; return the files of
    release/ and notebooks/ left out (export_files), which make publish refuses to go on with."""
    allowed, refused, skipped = export_files(course)
    for line in skipped:
        print(f"note: {line}", file=sys.stderr)
    for rel in allowed:
        (export / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(course / rel, export / rel)
    for path in notebooks.released_and_demos(export):
        nb = notebooks.read(path)
        notebooks.sync_cells(nb, path.relative_to(export).as_posix(), config)
        notebooks.write(nb, path)
    (export / "README.md").write_text(notebooks.synced_readme((course / STUDENT / "README.md").read_text(), config))
    for name in ("CHANGELOG.md", "LICENSE"):
        shutil.copy(course / name, export / name)
    shutil.copy(course / STUDENT / "gitignore", export / ".gitignore")
    (export / "Makefile").write_text(student_makefile(course))
    (export / "pyproject.toml").write_text(student_pyproject(course, config.version))
    (export / "environment.yml").write_text(student_environment(course))
    for tool in TOOLS:
        (export / tool).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(course / tool, export / tool)
    (export / "coursepack" / "__init__.py").write_text('"""The tools behind make kernel and make slurm."""\n')
    return refused


def _text_files(export: Path):
    """(path, text) for each text file of the export; a notebook's text is its JSON and its cells' sources."""
    for path in sorted(export.rglob("*")):
        if path.is_file() and ".git" not in path.relative_to(export).parts:
            try:
                text = path.read_text()
            except UnicodeDecodeError:
                continue
            if path.suffix == ".ipynb":
                nb = notebooks.nbformat.reads(text, as_version=4)
                text += "\n" + "\n".join(cell.source for cell in nb.cells)
            yield path, text


def _prose(path: Path, text: str) -> str:
    """What students read as text: a markdown file, or a notebook's markdown cells. Placeholders are only ever
    written into prose; code may well contain `{{name}}` (an f-string's literal braces)."""
    if path.suffix != ".ipynb":
        return text
    return "\n".join(c.source for c in notebooks.read(path).cells if c.cell_type == "markdown")


def secret_lines(course: Path) -> set[str]:
    """Lines no student may see: solutions and hidden tests of source/ and the mutation cases' code, less
    what the release notebooks show anyway (public by definition; release.check proves they leak nothing).
    What a demo shows is not subtracted: a solution pasted into a demo is still a leak."""
    secret = set()
    for assignment in release.assignments(course):
        for source in sorted((course / "source" / assignment).glob("*.ipynb")):
            secret |= release.secret_lines(notebooks.read(source))
    for case in sorted((course / "autograde_tests" / "cases").glob("*.py")):
        secret |= {line.strip() for line in case.read_text().splitlines()
                   if len(line.strip()) >= release.MIN_LEAK_LENGTH}
    public = set()
    for path in sorted((course / notebooks.RELEASE.name).glob("*/*.ipynb")):
        public |= {line.strip() for cell in notebooks.read(path).cells for line in cell.source.splitlines()}
    return secret - public


def scan(course: Path, export: Path, config: notebooks.Settings) -> list[str]:
    """Everything wrong with an export, as sentences naming the file: leaks, instructor paths, unfilled
    placeholders, links to the student repository that do not resolve to a file of the export."""
    found, secret = [], secret_lines(course)
    owner = config.repository.split("/")[0]
    for path in sorted(export.rglob("*")):
        rel = path.relative_to(export).as_posix()
        if ".git" not in path.relative_to(export).parts and rel.startswith(FORBIDDEN_PATHS):
            found.append(f"{rel}: an instructor's file")
    for path, text in _text_files(export):
        rel = path.relative_to(export).as_posix()
        found += [f"{rel}: contains marker {m!r}" for m in release.MARKERS if m in text]
        found += [f"{rel}: names {m.group(0)!r}" for m in FORBIDDEN_TEXT.finditer(text)]
        exempt = DEMO_SHARED if rel.startswith(f"{notebooks.DEMOS.name}/") else set()
        shown = {x.strip() for x in text.splitlines()} - exempt
        found += [f"{rel}: leaks {line!r}" for line in sorted(secret & shown)]
        if path.suffix in (".md", ".ipynb"):
            found += [f"{rel}: unfilled placeholder {m.group(0)!r}" for m in PLACEHOLDER.finditer(_prose(path, text))]
        for match in LINK.finditer(text):
            link_owner, name, ref, target = match.groups()
            if link_owner != owner:
                continue
            if (f"{link_owner}/{name}", ref) != (config.repository, config.branch):
                found.append(f"{rel}: links to {link_owner}/{name}@{ref}, not {config.repository}@{config.branch}")
            elif not (export / target).is_file():
                found.append(f"{rel}: links to {target}, which is not in the export")
    return found


def git(dest: Path, *args: str, identity: bool = False) -> str:
    command = ["git", *(IDENTITY if identity else []), "-C", str(dest), *args]
    return subprocess.run(command, check=True, capture_output=True, text=True).stdout.strip()


def _has_identity(dest: Path) -> bool:
    return subprocess.run(["git", "-C", str(dest), "config", "user.email"], capture_output=True).returncode == 0


def _ref(dest: Path, ref: str) -> str | None:
    done = subprocess.run(["git", "-C", str(dest), "rev-parse", "--verify", "--quiet", ref],
                          capture_output=True, text=True)
    return done.stdout.strip() if done.returncode == 0 else None


TRAILER = "Coursepack-Export: student release"  # marks the commits make publish makes (the only ones DEST may hold)
LEGACY_MARK = "Written by make publish:"
INSTRUCTOR_TREES = ("source", "autograde_tests")


def overlaps(dest: Path, course: Path) -> bool:
    """Whether DEST is the course, inside it, or holds it (paths resolved)."""
    dest, course = dest.resolve(), course.resolve()
    return dest == course or course in dest.parents or dest in course.parents


def foreign_history(dest: Path, course: Path | None = None) -> list[str]:
    """DEST's commits that make publish did not make, as sentences: a commit without its trailer, a commit the
    course also holds (DEST is a clone, fork or worktree of it), a tree with source/ or autograde_tests/."""
    if not _ref(dest, "HEAD") and not git(dest, "for-each-ref", "--count=1"):
        return []
    found = []
    log = git(dest, "log", "--all", "--format=%H%x00%B%x1e")
    commits = {}
    for entry in filter(None, (e.strip("\n") for e in log.split("\x1e"))):
        sha, _, message = entry.partition("\0")
        commits[sha] = message
        if TRAILER not in message and LEGACY_MARK not in message:
            found.append(f"commit {sha[:12]} ({message.splitlines()[0] if message else 'no message'!r}) was not "
                         "made by make publish")
        elif git(dest, "ls-tree", "--name-only", sha, "--", *INSTRUCTOR_TREES):
            found.append(f"commit {sha[:12]} holds instructor folders ({', '.join(INSTRUCTOR_TREES)})")
    if course is not None and (course / ".git").exists() and commits:
        known = subprocess.run(["git", "-C", str(course), "cat-file", "--batch-check"], input="\n".join(commits) + "\n",
                               capture_output=True, text=True, check=True).stdout.splitlines()
        found[:0] = [f"commit {line.split()[0][:12]} is also in the course's history (a clone, fork or worktree)"
                     for line in known if " commit " in f" {line} "]
    return found


def commit(export: Path, dest: Path, version: str, course: Path | None = None) -> tuple[str, str]:
    """Commit the tree `export` into the git repository `dest` (created when missing) and tag it v<version>.

    Returns (commit, what happened). ValueError (DEST left as it was) when DEST is the course or overlaps it,
    holds history make publish did not write (a clone or fork of the course above all), has changes of its
    own or files git ignores (never deleted), or when the tag already marks other content.
    """
    if course is not None and overlaps(dest, course):
        raise ValueError(f"{dest}: is the course, inside it or around it; DEST must be a repository of its own")
    if not (dest / ".git").exists():
        if dest.exists() and any(dest.iterdir()):
            raise ValueError(f"{dest}: not empty and not a git repository")
        dest.mkdir(parents=True, exist_ok=True)
        git(dest, "init", "--quiet", "--initial-branch=main")
    foreign = foreign_history(dest, course)
    if foreign:
        raise ValueError(f"{dest}: holds history make publish did not write (a clone or fork of the course would "
                         "publish every solution in it); publish into a new, empty repository:\n    "
                         + "\n    ".join(foreign[:10]) + (f"\n    ... {len(foreign) - 10} more" * (len(foreign) > 10)))
    if git(dest, "status", "--porcelain"):
        raise ValueError(f"{dest}: has changes of its own (commit or discard them; only make publish writes there)")
    status = git(dest, "status", "--porcelain", "--ignored").splitlines()
    ignored = [line[3:] for line in status if line.startswith("!!")]
    if ignored:
        raise ValueError(f"{dest}: holds files git ignores, which publishing never deletes (move them out): "
                         + ", ".join(ignored[:10]))
    for name in filter(None, git(dest, "ls-files", "-z").split("\0")):  # only tracked files are replaced
        path = dest / name
        if path.is_file() or path.is_symlink():
            path.unlink()
        for folder in path.parents:
            if folder == dest or any(folder.iterdir()):
                break
            folder.rmdir()
    shutil.copytree(export, dest, dirs_exist_ok=True)
    git(dest, "add", "--all", ".")
    tree, tag = git(dest, "write-tree"), f"v{version}"
    tagged = _ref(dest, f"{tag}^{{tree}}")
    if tagged and tagged != tree:
        git(dest, "reset", "--quiet", "--hard")
        git(dest, "clean", "--quiet", "-fdx")
        raise ValueError(f"{tag} already marks a release with other content: bump `version` in pyproject.toml, "
                         "add its CHANGELOG.md entry, make sync && make release, then publish again")
    identity = not _has_identity(dest)
    head = _ref(dest, "HEAD")
    if head and _ref(dest, "HEAD^{tree}") == tree:
        what = "already up to date"
    else:
        git(dest, "commit", "--quiet", "-m", f"Release {version}", "-m",
            f"{LEGACY_MARK} the student release of COMP3547 practical 1.", "-m", TRAILER, identity=identity)
        what = "committed"
    head = _ref(dest, "HEAD")
    if not tagged:
        git(dest, "tag", "-a", tag, "-m", f"COMP3547 practical 1, release {version}", identity=identity)
        what += f", tagged {tag}"
    return head, what


def refusals(course: Path, config: notebooks.Settings) -> list[str]:
    """Reasons not to publish this course as it stands."""
    found = []
    if not re.search(rf"^## {re.escape(config.version)}\b", (course / "CHANGELOG.md").read_text(), re.M):
        found.append(f"CHANGELOG.md has no '## {config.version}' entry for the version in pyproject.toml")
    if re.fullmatch(r"v\d+(\.\d+)*", config.branch) and config.branch != f"v{config.version}":
        found.append(f"BRANCH={config.branch} is another release's tag: badges would open it, not v{config.version}")
    blocking, report = release.release_report(course)
    if blocking:
        found.append(report)
    if (course / ".git").exists():
        dirty = subprocess.run(["git", "-C", str(course), "status", "--porcelain", "--", "source", "release",
                                "notebooks", "coursepack", "CHANGELOG.md", "LICENSE", "pyproject.toml", "Makefile",
                                "slurm"], capture_output=True, text=True).stdout.strip()
        if dirty:
            found.append(f"uncommitted changes in what is published (commit them first):\n{dirty}")
    found += release.check(course)
    return found


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dest", type=Path, nargs="?", help="the student repository's working copy")
    parser.add_argument("--check", action="store_true", help="build and scan the export, publish nothing")
    parser.add_argument("--course", type=Path, default=notebooks.ROOT)
    parser.add_argument("--repository", help="owner/name of the student repository (default: REPOSITORY)")
    parser.add_argument("--branch", help="its branch or tag that badges open (default: BRANCH)")
    args = parser.parse_args(argv)
    if not args.check and args.dest is None:
        parser.error("give DEST, the student repository's working copy, or --check")
    course = args.course.resolve()
    if args.dest is not None and not args.check and overlaps(args.dest, course):
        print(f"not published: {args.dest} is the course, inside it or around it (publishing would replace its "
              "files); DEST must be a repository of its own", file=sys.stderr)
        return 1
    config = notebooks.settings(course, args.repository, args.branch)
    found = [] if args.check else refusals(course, config)
    with tempfile.TemporaryDirectory() as tmp:
        export = Path(tmp) / "export"
        export.mkdir()
        found += build(course, export, config)
        found += scan(course, export, config)
        if found:
            print("not published:\n" + "\n".join(f"  {line}" for line in found), file=sys.stderr)
            return 1
        if args.check:
            print(f"the export of release {config.version} for {config.repository}@{config.branch} is clean")
            return 0
        try:
            head, what = commit(export, args.dest.resolve(), config.version, course)
        except ValueError as error:
            print(f"not published: {error}", file=sys.stderr)
            return 1
    print(f"{args.dest}: release {config.version} {what} ({head[:12]})")
    if config.version not in release.published(course):
        source_commit = _ref(course, "HEAD") if (course / ".git").exists() else None
        release.record(course, config.version, source_commit=source_commit, export_commit=head)
        print(f"recorded release {config.version}'s graded items in {release.MANIFEST}: commit it here")
    print(f"next: git -C {args.dest} push origin main v{config.version}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
