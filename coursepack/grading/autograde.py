"""Autograde a whole class in parallel, each kernel sandboxed, into one consistent gradebook.

    python -m coursepack.grading.autograde ASSIGNMENT [--workers N] [--student GLOB] [--db-url URL]
    python -m coursepack.grading.autograde ASSIGNMENT --shard I/N --shard-db PATH   (one SLURM array task)
    python -m coursepack.grading.autograde ASSIGNMENT --merge-shards PATH...       (after the array)

Each of N worker processes (default: the number of cores) takes one student at a time and runs
nbgrader's own Autograde converter (converter.SafeAutograde) on each of that student's notebooks,
into its own SQLite gradebook; the coordinator then merges every graded notebook into the course's
gradebook (gradebooks.merge). Submissions are staged first, so nbgrader only ever sees well-formed
notebooks under their expected names: an invalid notebook or a missing one scores 0 with the reason;
a renamed one is graded under the name it matches. A worker that crashes costs the student it was
grading (recorded), never the batch.

The exit code says whether anything needs attention: 0 all graded normally; 1 some notebook is held
for review, could not be graded or lost its kernel; 2 the grader itself could not run.
A report (`.grading/<assignment>-report.json`) keeps every notebook's score, status and reasons.
"""
from __future__ import annotations

import argparse
import fnmatch
import json
import logging
import multiprocessing as mp
import os
import queue
import shutil
import sys
import time
import traceback
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

ATTENTION = ("held", "failed")


def quiet_warnings() -> None:
    """nbgrader 0.9.6 with SQLAlchemy 2.1 warns on every submission it creates: noise, not errors."""
    warnings.filterwarnings("ignore", message=".*not in session.*")
    warnings.filterwarnings("ignore", category=DeprecationWarning)


@dataclass
class NotebookResult:
    student: str
    notebook: str
    status: str = "ok"  # ok | held | failed | missing
    score: float = 0.0
    max_score: float = 0.0
    problems: list[str] = field(default_factory=list)
    tampering: list[str] = field(default_factory=list)
    would_score: float | None = None
    seconds: float = 0.0
    source: str = ""  # the gradebook (URL) this notebook was graded into


# ------------------------------------------------------------------------------------------------
# configuration


def load_config(course: Path, db_url: str | None = None, overrides: dict | None = None):
    """The course's nbgrader_config.py as nbgrader would read it, plus overrides."""
    from traitlets.config import Config
    from traitlets.config.loader import PyFileConfigLoader

    config = Config()
    if (course / "nbgrader_config.py").exists():
        config.merge(PyFileConfigLoader("nbgrader_config.py", path=str(course)).load_config())
    config.CourseDirectory.root = str(course)
    if db_url:
        config.CourseDirectory.db_url = db_url
    for key, value in (overrides or {}).items():
        section, name = key.split(".")
        config[section][name] = value
    return config


def course_directory(config, **traits):
    from nbgrader.coursedir import CourseDirectory

    return CourseDirectory(config=config, **traits)


def expected_notebooks(db_url: str, course_id: str, assignment: str) -> list[str]:
    from nbgrader.api import Gradebook, MissingEntry

    with Gradebook(db_url, course_id) as gradebook:
        try:
            return sorted(n.name for n in gradebook.find_assignment(assignment).notebooks)
        except MissingEntry:
            raise SystemExit(f"assignment {assignment!r} is not in the gradebook: run `make release` "
                             "(nbgrader generate_assignment) first") from None


def students(course: Path, coursedir, assignment: str, pattern: str = "*") -> list[str]:
    submitted = course / coursedir.submitted_directory
    if not submitted.is_dir():
        return []
    return sorted(p.name for p in submitted.iterdir()
                  if (p / assignment).is_dir() and fnmatch.fnmatch(p.name, pattern) and not p.name.startswith("."))


# ------------------------------------------------------------------------------------------------
# staging: what nbgrader gets to see of a submission


def _grade_ids(nb) -> set[str]:
    return {c.metadata.nbgrader.grade_id for c in nb.cells if "nbgrader" in c.get("metadata", {})
            and "grade_id" in c.metadata.nbgrader}


def stage(course: Path, coursedir, assignment: str, student: str, notebooks: list[str], staging: Path):
    """Copy a submission into `staging`, keeping only readable notebooks under their expected names.

    Returns {notebook: [problems]} and the notebooks left to grade.
    """
    import nbformat

    source = course / coursedir.submitted_directory / student / assignment
    target = staging / student / assignment
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    problems: dict[str, list[str]] = {name: [] for name in notebooks}
    readable, unknown = {}, {}
    for path in sorted(source.rglob("*")):
        if path.is_symlink() or not path.is_file():
            continue
        relative = path.relative_to(source)
        if path.suffix != ".ipynb":
            (target / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target / relative)
            continue
        try:
            nb = nbformat.read(str(path), as_version=4)
            nbformat.validate(nb)
        except Exception as error:  # noqa: BLE001 - any unreadable file is reported the same way
            if path.stem in problems:
                problems[path.stem].append(f"not a valid notebook ({type(error).__name__}: {str(error)[:200]})")
            continue
        (readable if path.stem in problems and len(relative.parts) == 1 else unknown)[path.stem] = (path, nb)
    wanted = {}
    for name in notebooks:
        if name in readable:
            wanted[name] = readable[name]
        elif not problems[name]:
            release = nbformat.read(source_path(course, coursedir, assignment, name), as_version=4)
            ids = _grade_ids(release)
            matches = [(len(ids & _grade_ids(nb)), stem, path, nb) for stem, (path, nb) in unknown.items()]
            matches = sorted(m for m in matches if m[0] * 2 >= len(ids) > 0)
            if matches:
                _, stem, path, nb = matches[-1]
                wanted[name] = (path, nb)
                unknown.pop(stem)
                problems[name].append(f"graded {path.relative_to(source)} as {name}.ipynb (renamed notebook)")
            else:
                problems[name].append("not submitted")
    for name, (path, _) in wanted.items():
        shutil.copyfile(path, target / f"{name}.ipynb")
    return problems, sorted(wanted)


def course_imports(course: Path, config, assignment: str) -> list[str]:
    """Modules the assignment's notebooks import: what the kernel zygote imports once for all kernels."""
    import ast

    import nbformat

    from coursepack.grading import tamper

    coursedir = course_directory(config)
    modules = {"IPython", "ipykernel.kernelapp"}
    for path in sorted((course / coursedir.source_directory / assignment).glob("*.ipynb")):
        for cell in nbformat.read(str(path), as_version=4).cells:
            if cell.cell_type == "code":
                try:
                    tree = ast.parse(tamper._transform(cell.source))
                except SyntaxError:
                    continue
                modules.update(tamper.imported_modules(tree).values())
    return sorted(modules)


def source_path(course: Path, coursedir, assignment: str, notebook: str) -> Path:
    return course / coursedir.source_directory / assignment / f"{notebook}.ipynb"


# ------------------------------------------------------------------------------------------------
# the worker


def _score(gradebook, assignment: str, student: str, notebook: str) -> tuple[float, float]:
    submission = gradebook.find_submission_notebook(notebook, assignment, student)
    grades = [g for g in submission.grades if g.cell_type == "code"]
    return sum(g.auto_score or 0 for g in grades), sum(g.max_score for g in grades)


def grade_student(course: Path, config, assignment: str, student: str, notebooks: list[str], db_url: str,
                  staging: Path) -> list[NotebookResult]:
    """Grade one student's notebooks, one nbgrader Autograde run each, into the gradebook at `db_url`."""
    from nbgrader.api import Gradebook

    from coursepack.grading import gradebooks
    from coursepack.grading.converter import SafeAutograde

    coursedir = course_directory(config)
    problems, gradable = stage(course, coursedir, assignment, student, notebooks, staging)
    timestamp = course / coursedir.submitted_directory / student / assignment / "timestamp.txt"
    if timestamp.exists():
        shutil.copyfile(timestamp, staging / student / assignment / "timestamp.txt")
    results = {name: NotebookResult(student, name, problems=list(problems[name])) for name in notebooks}
    staged = os.path.relpath(staging, course)
    for name in gradable:
        start = time.monotonic()
        errors = _ErrorLog()
        logger = logging.getLogger("traitlets")
        logger.addHandler(errors)
        try:
            converter = SafeAutograde(coursedir=course_directory(
                config, assignment_id=assignment, student_id=student, notebook_id=name, db_url=db_url,
                submitted_directory=staged), config=config, force=True)
            converter.start()
            report = converter.reports.get((student, name), {})
            results[name].problems += report.get("problems", [])
            results[name].tampering = report.get("tampering", [])
            results[name].would_score = report.get("would_score")
        except Exception as error:  # noqa: BLE001 - nbgrader's own failure for this notebook only
            detail = errors.messages[-1] if errors.messages else f"{type(error).__name__}: {error}"
            results[name].problems.append(f"nbgrader could not grade it: {detail[:300]}")
            results[name].status = "failed"
        finally:
            logger.removeHandler(errors)
        results[name].seconds = time.monotonic() - start
    with Gradebook(db_url, coursedir.course_id) as gradebook:
        for name, result in results.items():
            if name not in gradable or result.status == "failed":
                gradebooks.zero(gradebook, assignment, student, name)
            result.score, result.max_score = _score(gradebook, assignment, student, name)
            if result.tampering:
                result.status = "held"
            elif result.status != "failed" and any(_fatal(p) for p in result.problems):
                result.status = "failed"
            elif name not in gradable:
                result.status = "failed" if any("valid" in p for p in result.problems) else "missing"
    shutil.rmtree(staging / student, ignore_errors=True)
    return list(results.values())


def _fatal(problem: str) -> bool:
    return any(word in problem for word in ("kernel died", "could not be started", "stayed busy", "past its limit"))


class _ErrorLog(logging.Handler):
    def __init__(self):
        super().__init__(logging.ERROR)
        self.messages = []

    def emit(self, record):
        message = record.getMessage().strip()
        if message and not message.startswith("There was an error processing") and "Please see" not in message:
            self.messages.append(message.splitlines()[-1])


def worker_main(index: int, course: str, assignment: str, db_url: str, overrides: dict, notebooks: list[str],
                jobs, results, log_path: str, threads: int) -> None:
    """A worker process: grade students from `jobs` until it gets None; report on `results`."""
    quiet_warnings()
    course_path = Path(course)
    handler = logging.FileHandler(log_path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.INFO, handlers=[handler], force=True)
    config = load_config(course_path, overrides=overrides)
    from coursepack.grading.sandbox import Sandbox, claim_uid

    config.Sandbox.uid = claim_uid(Sandbox(config=config))  # unique among all graders running here
    if "threads" not in config.Sandbox:  # the cores shared out: two workers must not both use all of them
        config.Sandbox.threads = threads
    if "preload" not in config.Sandbox:
        config.Sandbox.preload = course_imports(course_path, config, assignment)
    staging = course_path / ".grading" / "staged" / f"w{index}"
    from coursepack.grading.sandbox import Zygote

    try:
        while True:
            student = jobs.get()
            if student is None:
                return
            results.put(("start", index, student, None))
            try:
                graded = grade_student(course_path, config, assignment, student, notebooks, db_url, staging)
                results.put(("done", index, student, [asdict(r) for r in graded]))
            except Exception:  # noqa: BLE001 - reported, and the worker goes on with the next student
                results.put(("error", index, student, traceback.format_exc()))
    finally:
        Zygote.stop_all()  # a forked worker ends without running atexit handlers


# ------------------------------------------------------------------------------------------------
# the coordinator


class Progress:
    """A progress bar with one line per graded student (tqdm, or plain lines when not a terminal)."""

    def __init__(self, total: int, quiet: bool = False):
        from tqdm import tqdm

        self.quiet = quiet
        self.bar = tqdm(total=total, unit="student", disable=quiet or None, file=sys.stderr, dynamic_ncols=True)

    def student(self, student: str, results: list[NotebookResult]) -> None:
        score, top = sum(r.score for r in results), sum(r.max_score for r in results)
        worst = next((r for r in results if r.status in ATTENTION), None) or next(
            (r for r in results if r.status != "ok"), None)
        status = worst.status if worst else "ok"
        line = f"{student:24} {score:6g}/{top:<6g} {status}"
        if worst:
            reasons = worst.tampering or worst.problems
            line += f" ({worst.notebook}: {reasons[0] if reasons else ''})"[:160]
        if not self.quiet:
            self.bar.write(line, file=sys.stderr)
        self.bar.set_postfix_str(f"last: {student} {status}")
        self.bar.update(1)

    def close(self):
        self.bar.close()


def run_workers(course: Path, assignment: str, roster: list[str], notebooks: list[str], main_url: str,
                workers: int, overrides: dict, run_dir: Path, quiet: bool = False,
                job_timeout: float | None = None) -> list[NotebookResult]:
    """Grade `roster` with `workers` processes, each into its own gradebook (named in each result's `source`)."""
    from coursepack.grading import gradebooks

    # fork: workers start with nbgrader already imported (spawn would import it again in each).
    context = mp.get_context("fork")
    jobs, results = context.Queue(), context.Queue()
    urls, processes, current = {}, {}, {}
    run_dir.mkdir(parents=True, exist_ok=True)

    def start(index: int) -> None:
        if index not in urls:
            urls[index] = gradebooks.clone(main_url, run_dir / f"worker-{index}.db")
        process = context.Process(target=worker_main, daemon=True, name=f"grader-{index}", args=(
            index, str(course), assignment, urls[index], overrides, notebooks, jobs, results,
            str(run_dir / f"worker-{index}.log"), max(1, (os.cpu_count() or 1) // count)))
        process.start()
        processes[index] = process

    count = max(1, min(workers, len(roster)))
    for index in range(count):
        start(index)
    for student in roster:  # after the forks: the queue's feeder thread starts with the first put
        jobs.put(student)
    for _ in range(count):
        jobs.put(None)
    progress = Progress(len(roster), quiet)
    graded: list[NotebookResult] = []
    done = set()

    def finish(student: str, rows: list[NotebookResult]) -> None:
        graded.extend(rows)
        done.add(student)
        progress.student(student, rows)

    try:
        while len(done) < len(roster):
            try:
                kind, index, student, payload = results.get(timeout=1.0)
            except queue.Empty:
                for index, process in list(processes.items()):
                    student, since = current.get(index, (None, 0.0))
                    overdue = bool(job_timeout and student and time.monotonic() - since > job_timeout)
                    if overdue:
                        process.kill()
                        process.join()
                    if student and not process.is_alive():
                        why = "it took too long" if overdue else f"exit code {process.exitcode}"
                        finish(student, [NotebookResult(student, n, status="failed", problems=[
                            f"the grader worker crashed while grading this student ({why})"]) for n in notebooks])
                        current.pop(index)
                        jobs.put(None)  # the replacement worker's own stop signal
                        start(index)
                if not any(p.is_alive() for p in processes.values()) and len(done) < len(roster):
                    raise RuntimeError("every grader worker stopped before the class was graded") from None
                continue
            if kind == "start":
                current[index] = (student, time.monotonic())
                continue
            current.pop(index, None)
            if kind == "error":
                finish(student, [NotebookResult(student, n, status="failed", source=urls[index], problems=[
                    f"grader error: {payload.strip().splitlines()[-1]}"]) for n in notebooks])
            else:
                finish(student, [NotebookResult(**{**r, "source": urls[index]}) for r in payload])
    finally:
        progress.close()
        for process in processes.values():
            process.join(timeout=10)
            if process.is_alive():
                process.kill()
    return graded


def merge_results(results: list[NotebookResult], target_url: str, assignment: str, course_id: str) -> None:
    """Merge each notebook from the gradebook that graded it into `target_url`; zeros where none did."""
    from nbgrader.api import Gradebook

    from coursepack.grading import gradebooks

    by_source: dict[str, list[dict]] = {}
    for row in results:
        by_source.setdefault(row.source, []).append(asdict(row))
    for url, rows in sorted(by_source.items()):
        if url:
            gradebooks.merge(url, target_url, assignment, course_id, rows)
        else:
            with Gradebook(target_url, course_id) as gradebook:
                for row in rows:
                    gradebooks.zero(gradebook, assignment, row["student"], row["notebook"])


def summary_table(results: list[NotebookResult]) -> str:
    lines = [f"{'student':20} {'notebook':22} {'score':>7} {'max':>5}  status   reason"]
    for r in sorted(results, key=lambda r: (r.student, r.notebook)):
        reason = "; ".join((r.tampering or []) + r.problems)
        if r.status == "held" and r.would_score is not None:
            reason = f"(would score {r.would_score:g}) " + reason
        lines.append(f"{r.student:20} {r.notebook:22} {r.score:7g} {r.max_score:5g}  {r.status:8} {reason[:110]}")
    counts = {s: sum(r.status == s for r in results) for s in ("ok", "held", "failed", "missing")}
    lines.append(", ".join(f"{n} {s}" for s, n in counts.items()) + f" of {len(results)} notebooks")
    return "\n".join(lines)


def write_report(path: Path, assignment: str, isolation, results, seconds: float, workers: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({
        "assignment": assignment, "isolation": isolation.level, "isolation_detail": isolation.detail,
        "workers": workers, "seconds": round(seconds, 2),
        "notebooks": [asdict(r) for r in sorted(results, key=lambda r: (r.student, r.notebook))]}, indent=1) + "\n")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("assignment")
    parser.add_argument("--course", type=Path, default=Path.cwd())
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="parallel graders (default: cores)")
    parser.add_argument("--student", default="*", help="only students whose id matches this glob")
    parser.add_argument("--db-url", help="the course gradebook (default: nbgrader_config.py's CourseDirectory.db_url)")
    parser.add_argument("--shard", help="I/N: grade only every N-th student starting at I (one SLURM array task)")
    parser.add_argument("--shard-db", type=Path, help="with --shard: the task's own gradebook (merged later)")
    parser.add_argument("--merge-shards", nargs="+", type=Path, metavar="SHARD_DB",
                        help="merge the gradebooks (and reports) of finished array tasks into the course gradebook")
    parser.add_argument("--timeout", type=int, help="per-notebook wall-clock limit, s (Sandbox.notebook_timeout)")
    parser.add_argument("--no-bwrap", action="store_true", help="do not use bubblewrap (weaker isolation)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar or per-student lines")
    args = parser.parse_args(argv)
    quiet_warnings()
    course = args.course.resolve()
    overrides = {}
    if args.timeout:
        overrides["Sandbox.notebook_timeout"] = args.timeout
    if args.no_bwrap:
        overrides["Sandbox.use_bwrap"] = False
    config = load_config(course, args.db_url, overrides)
    coursedir = course_directory(config)
    main_url, course_id = coursedir.db_url, coursedir.course_id

    from coursepack.grading.sandbox import isolation

    isolated = isolation(not args.no_bwrap)
    print(f"isolation: {isolated.level}: {isolated.detail}", file=sys.stderr)
    report_path = course / ".grading" / f"{args.assignment}-report.json"
    started = time.monotonic()

    if args.merge_shards:
        results = []
        for shard in args.merge_shards:
            rows = [NotebookResult(**r) for r in json.loads(shard.with_suffix(".json").read_text())["notebooks"]]
            for row in rows:
                row.source = f"sqlite:///{shard.resolve()}"
            merge_results(rows, main_url, args.assignment, course_id)
            results += rows
    else:
        notebooks = expected_notebooks(main_url, course_id, args.assignment)
        roster = students(course, coursedir, args.assignment, args.student)
        if args.shard:
            first, count = (int(x) for x in args.shard.split("/"))
            roster = roster[first::count]
        if not roster and not args.shard:
            print(f"no submissions of {args.assignment} in {coursedir.submitted_directory}/", file=sys.stderr)
            return 2
        label = f"shard-{args.shard.replace('/', '-')}" if args.shard else "local"
        run_dir = course / ".grading" / "run" / label
        shutil.rmtree(run_dir, ignore_errors=True)
        per_student = config.Sandbox.get("notebook_timeout", 900) * len(notebooks) + 300
        results = run_workers(course, args.assignment, roster, notebooks, main_url, args.workers, overrides,
                              run_dir, args.quiet, per_student) if roster else []
        target_url = main_url
        if args.shard:
            from coursepack.grading import gradebooks

            target_url = gradebooks.clone(main_url, args.shard_db.resolve())
            report_path = args.shard_db.with_suffix(".json")
        merge_results(results, target_url, args.assignment, course_id)
    elapsed = time.monotonic() - started
    write_report(report_path, args.assignment, isolated, results, elapsed, args.workers)
    print(summary_table(results))
    shown = report_path.relative_to(course) if report_path.is_relative_to(course) else report_path
    print(f"graded {len({r.student for r in results})} students, {len(results)} notebooks in {elapsed:.1f} s "
          f"with {args.workers} workers; report: {shown}")
    return 1 if any(r.status in ATTENTION for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
