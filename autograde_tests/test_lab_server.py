"""`make lab`: a real, headless JupyterLab on a temporary course copy, with nbgrader's extensions live.

One server for the module (isolated JUPYTER_* folders, a free port, a random token), the committed
release published to a temporary exchange first. It proves over HTTP what a browser would use:
Formgrader answers, the Assignments tab's API lists practical1 as released and its Fetch action
copies it into the server's folder, the @jupyter/nbgrader labextension is in the page's config and
its code is served; then the server is shut down through its API and must exit cleanly. The process
is killed in teardown whatever happened.

Where a browser is at hand (Debian's chromium and playwright-core for node: `apt-get install
chromium`, `npm install -g playwright-core`; no browser download), a real page also opens
Nbgrader -> Assignment List, sees practical1 released and clicks Fetch.
"""
import http.client
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path

import pytest

from coursepack import notebooks
from coursepack.nbgrader_cli import jupyter_env, nbgrader

ASSIGNMENT = "practical1"
COURSE_ID = "comp3547"
RELEASE = notebooks.RELEASE / ASSIGNMENT
STARTUP_TIMEOUT = 90  # seconds; a cold start on a loaded 2-core machine takes ~10

pytestmark = pytest.mark.skipif(not any(RELEASE.glob("*.ipynb")),
                                reason=f"no notebooks in {RELEASE}: run `make release`")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Lab:
    def __init__(self, port: int, token: str, process: subprocess.Popen, log: Path, course: Path):
        self.port, self.token, self.process, self.log, self.course = port, token, process, log, course

    def request(self, method: str, path: str, body: dict | None = None) -> http.client.HTTPResponse:
        """One request with the token in the header; redirects are returned, not followed."""
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        headers = {"Authorization": f"token {self.token}"}
        data = None
        if body is not None:
            data = urllib.parse.urlencode(body)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        connection.request(method, path, body=data, headers=headers)
        response = connection.getresponse()
        response.text = response.read().decode()
        connection.close()
        return response

    def json(self, method: str, path: str, body: dict | None = None):
        response = self.request(method, path, body)
        assert response.status == 200, f"{method} {path}: {response.status}\n{response.text[:2000]}\n{self.tail()}"
        return json.loads(response.text)

    def tail(self) -> str:
        return "server log:\n" + self.log.read_text()[-4000:]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    scratch = tmp_path_factory.mktemp("lab")
    course, exchange = scratch / "course", scratch / "exchange"
    shutil.copytree(notebooks.SOURCE / ASSIGNMENT, course / "source" / ASSIGNMENT)
    shutil.copytree(RELEASE, course / "release" / ASSIGNMENT)
    shutil.copy(notebooks.ROOT / "nbgrader_config.py", course)
    exchange.mkdir(mode=0o777)
    env = jupyter_env(scratch / "jupyter", NBGRADER_EXCHANGE=str(exchange))
    env.pop("COURSEPACK_DB", None)
    nbgrader("release_assignment", ASSIGNMENT, course=course, env=env)

    port, token, log = free_port(), secrets.token_hex(16), scratch / "server.log"
    command = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
               "--ServerApp.port_retries=0", f"--ServerApp.token={token}", f"--ServerApp.root_dir={course}",
               "--allow-root"]  # as `make lab` does when run as root; harmless otherwise
    with open(log, "w") as log_file:
        process = subprocess.Popen(command, cwd=course, env=env, stdout=log_file, stderr=subprocess.STDOUT)
    server = Lab(port, token, process, log, course)
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while True:
            if process.poll() is not None:
                pytest.fail(f"jupyter lab exited with {process.returncode} before answering\n{server.tail()}")
            try:
                if server.request("GET", "/api/status").status == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"jupyter lab did not answer within {STARTUP_TIMEOUT} s\n{server.tail()}")
            time.sleep(0.5)
        yield server
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def test_formgrader_redirects_to_manage_assignments(lab):
    response = lab.request("GET", "/formgrader")
    assert response.status in (301, 302), f"{response.status}\n{lab.tail()}"
    assert response.getheader("Location").endswith("/formgrader/manage_assignments")
    page = lab.request("GET", "/formgrader/manage_assignments")
    assert page.status == 200 and "Manage Assignments" in page.text


def test_formgrader_api_knows_the_assignment(lab):
    assignments = lab.json("GET", "/formgrader/api/assignments")
    assert ASSIGNMENT in [a["name"] for a in assignments]


def test_assignments_tab_lists_the_released_assignment(lab):
    listing = lab.json("GET", f"/assignments?course_id={COURSE_ID}")
    assert listing["success"], listing
    entries = {(a["assignment_id"], a["status"]) for a in listing["value"]}
    assert (ASSIGNMENT, "released") in entries


BROWSER_SCRIPT = r"""
const { chromium } = require('playwright-core');
(async () => {
  const [executablePath, url, token] = process.argv.slice(2);
  // --no-sandbox: Chromium refuses to start as root otherwise; the page is our own local server.
  const browser = await chromium.launch({ executablePath, args: ['--no-sandbox'] });
  try {
    const page = await browser.newPage();
    await page.goto(`${url}/lab?token=${token}`);
    await page.locator('.lm-MenuBar-itemLabel', { hasText: 'Nbgrader' }).click({ timeout: 120000 });
    await page.locator('.lm-Menu-itemLabel', { hasText: 'Assignment List' }).click();
    const released = page.locator('#released_assignments_list');
    await released.getByText('practical1').waitFor({ timeout: 60000 });
    const releasedText = await released.innerText();
    await released.getByRole('button', { name: 'Fetch' }).click();
    const fetched = page.locator('#fetched_assignments_list');
    await fetched.getByText('practical1').waitFor({ timeout: 60000 });
    console.log(JSON.stringify({ released: releasedText, fetched: await fetched.innerText() }));
  } finally {
    await browser.close();
  }
})().catch((error) => { console.error(error); process.exit(1); });
"""


def browser() -> tuple[str, dict] | None:
    """(chromium, env with NODE_PATH) when Chromium and node's playwright-core are installed, else None."""
    chromium = next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)
    if not (chromium and shutil.which("node")):
        return None
    env = dict(os.environ)
    if shutil.which("npm"):  # where `npm install -g` puts packages; node does not look there by itself
        root = subprocess.run(["npm", "root", "-g"], capture_output=True, text=True).stdout.strip()
        env["NODE_PATH"] = os.pathsep.join(filter(None, (env.get("NODE_PATH"), root)))
    found = subprocess.run(["node", "-e", "require.resolve('playwright-core')"], env=env, capture_output=True)
    return (chromium, env) if found.returncode == 0 else None


def test_assignments_tab_in_a_real_browser_fetches_practical1(lab, tmp_path):
    found = browser()
    if found is None:
        pytest.skip("needs Chromium and playwright-core for node (apt-get install chromium; "
                    "npm install -g playwright-core)")
    chromium, env = found
    script = tmp_path / "assignments.js"
    script.write_text(BROWSER_SCRIPT)
    result = subprocess.run(["node", str(script), chromium, f"http://127.0.0.1:{lab.port}", lab.token],
                            env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:] + lab.tail()
    seen = json.loads(result.stdout)
    assert seen["released"].split() == [ASSIGNMENT, COURSE_ID, "Fetch"]
    # Fetched: the list now offers Submit, and the notebooks are in the server's folder.
    assert seen["fetched"].split() == [ASSIGNMENT, COURSE_ID, "Submit"]
    assert sorted(p.name for p in (lab.course / ASSIGNMENT).glob("*.ipynb")) == \
        sorted(p.name for p in RELEASE.glob("*.ipynb"))


def test_assignments_tab_fetch_copies_the_release_into_the_server_folder(lab):
    shutil.rmtree(lab.course / ASSIGNMENT, ignore_errors=True)  # the browser test may have fetched it
    listing = lab.json("POST", "/assignments/fetch", {"course_id": COURSE_ID, "assignment_id": ASSIGNMENT})
    assert (ASSIGNMENT, "fetched") in {(a["assignment_id"], a["status"]) for a in listing["value"]}
    fetched = sorted(p.name for p in (lab.course / ASSIGNMENT).glob("*.ipynb"))
    assert fetched == sorted(p.name for p in RELEASE.glob("*.ipynb"))


def test_nbgrader_labextension_is_loaded_by_the_lab_page(lab):
    page = lab.request("GET", "/lab")
    assert page.status == 200, page.status
    config = json.loads(re.search(r'<script id="jupyter-config-data" type="application/json">(.*?)</script>',
                                  page.text, re.S).group(1))
    extensions = {e["name"]: e for e in config["federated_extensions"]}
    assert "@jupyter/nbgrader" in extensions, sorted(extensions)
    assert not any(d.startswith("@jupyter/nbgrader") for d in config.get("disabledExtensions", []))
    entry = extensions["@jupyter/nbgrader"]
    script = lab.request("GET", f"/lab/extensions/@jupyter/nbgrader/{entry['load']}")
    assert script.status == 200 and len(script.text) > 1000


def test_server_shuts_down_cleanly(lab):
    assert lab.request("POST", "/api/shutdown").status == 200
    assert lab.process.wait(timeout=30) == 0, lab.tail()
