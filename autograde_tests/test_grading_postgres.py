"""The parallel grader with a PostgreSQL gradebook (CourseDirectory.db_url / --db-url).

A private PostgreSQL cluster is initialised and started on 127.0.0.1 (Debian's `postgresql`
package; as root its server runs as the `postgres` user) for this module, or the server named by
COURSEPACK_TEST_PG_URL is used. Skipped, saying why, only where neither can be had.
"""
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest
from hostile import ASSIGNMENT, scores, subset
from nbgrader.api import Gradebook

from coursepack.grading import classroom
from coursepack.grading.api import grade_class
from coursepack.nbgrader_cli import nbgrader

STUDENTS = ["honest", "hidden_fail"]


def _server_binaries() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    if found:
        return Path(found[-1]).parent
    pg_ctl = shutil.which("pg_ctl")
    return Path(pg_ctl).parent if pg_ctl else None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def postgres_url():
    pytest.importorskip("pg8000", reason="the PostgreSQL driver pg8000 is not installed (pip install pg8000)")
    if os.environ.get("COURSEPACK_TEST_PG_URL"):
        yield os.environ["COURSEPACK_TEST_PG_URL"]
        return
    binaries = _server_binaries()
    if binaries is None:
        pytest.skip("PostgreSQL server (initdb, pg_ctl) not installed (apt install postgresql), "
                    "and no COURSEPACK_TEST_PG_URL")
    # Not under pytest's temporary folder: the server's user must be able to reach its data folder.
    folder = Path(tempfile.mkdtemp(prefix="coursepack-pg-"))
    run_as = []
    if os.geteuid() == 0:  # the server refuses to run as root
        try:
            user = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("no 'postgres' account to run the server as, root may not (apt install postgresql)")
        os.chmod(folder, 0o755)
        shutil.chown(folder, user.pw_uid, user.pw_gid)
        run_as = ["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--init-groups"]
    data, port = folder / "data", _free_port()

    def pg(*args):
        return subprocess.run([*run_as, *args], capture_output=True, text=True, cwd=folder)

    init = pg(str(binaries / "initdb"), "-D", str(data), "-A", "trust", "-U", "grader", "--no-sync")
    if init.returncode != 0:
        pytest.skip(f"initdb failed: {init.stderr.strip()[-300:]}")
    start = pg(str(binaries / "pg_ctl"), "-D", str(data), "-l", str(folder / "server.log"), "-w", "-t", "60",
               "-o", f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off", "start")
    if start.returncode != 0:
        pytest.skip(f"the PostgreSQL server did not start: {start.stderr.strip()[-300:]}")
    try:
        import sqlalchemy

        engine = sqlalchemy.create_engine(f"postgresql+pg8000://grader@127.0.0.1:{port}/postgres",
                                          isolation_level="AUTOCOMMIT")
        with engine.connect() as connection:
            connection.execute(sqlalchemy.text("CREATE DATABASE gradebook"))
        engine.dispose()
        yield f"postgresql+pg8000://grader@127.0.0.1:{port}/gradebook"
    finally:
        pg(str(binaries / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop")
        shutil.rmtree(folder, ignore_errors=True)


def test_parallel_grading_into_postgresql(hostile_class, postgres_url, tmp_path):
    course, *_ = hostile_class
    copy = subset(course, STUDENTS, tmp_path / "course")
    nbgrader("generate_assignment", ASSIGNMENT, "--force", course=copy,
             env=classroom.env(copy, COURSEPACK_DB=postgres_url))
    result = grade_class(copy, ASSIGNMENT, workers=2, db_url=postgres_url, quiet=True)
    assert result.exit_code == 0, result.summary()
    assert scores(copy, STUDENTS, postgres_url) == scores(course, STUDENTS)
    with Gradebook(f"sqlite:///{copy / 'gradebook.db'}", "comp3547") as sqlite:  # the copy's own: untouched
        assert not sqlite.find_assignment(ASSIGNMENT).submissions
