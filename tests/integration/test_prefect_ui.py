"""The Prefect UI shows a deploy's DAG: a real run, opened in headless Chromium.

`shipline run` deploys two busybox/pause Deployments (apply, set-image, restart, wait)
against the stack's Prefect server; Chromium (Debian's `chromium`) then opens the flow run
page. The graph is a canvas, so the assertion reads the page's "Task Runs" tab: the UI
drops a `?tab=` for a tab that is hidden until the run has loaded, so the test clicks the
tab through the DevTools protocol (websocket-client, a dependency of the kubernetes
client). Chromium may only reach 127.0.0.1: every other host resolves to nothing and all
traffic goes through a dead proxy except 127.0.0.1's.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from shipline_runs import flow_run_id, shipline_run, task_runs

pytestmark = pytest.mark.integration

MANIFEST = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
        - name: {name}
          image: shipline/busybox:1.35
          imagePullPolicy: IfNotPresent
          args: ["sleep", "3600"]  # busybox runs it; pause (no shell) ignores it
"""
PIPELINE = """\
deploy:
  - for file in k8s/*.yaml; do envsubst < $file | kubectl apply -f -; done
  - kubectl set image deployment web web=k8s.gcr.io/pause:3.2
  - kubectl rollout restart deployment agent
  - kubectl rollout status deployment web && kubectl rollout status deployment agent
"""
DAG = {"apply[k8s]", "apply[web]", "set-image[web]", "restart[agent]", "wait[web]", "wait[agent]"}
# Both parts of the split apply are dry-run together before anything changes.
CHECKS = {"apply[k8s] (dry run)", "apply[web] (dry run)"}
ONLY_LOCAL = [
    "--proxy-server=127.0.0.1:9",
    "--proxy-bypass-list=127.0.0.1",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
]


def _chromium() -> str:
    found = shutil.which("chromium")
    if found is None:
        pytest.fail("chromium is not installed: apt-get install chromium (see .ci/run)")
    return found


def _browser_args(profile: Path) -> list[str]:
    return [
        _chromium(),
        "--headless",
        "--no-sandbox",  # root
        "--disable-gpu",
        "--no-first-run",
        f"--user-data-dir={profile}",
        "--window-size=1600,2000",
        *ONLY_LOCAL,
    ]


class DevTools:
    """A headless Chromium driven through the DevTools protocol (one page)."""

    def __init__(self, profile: Path) -> None:
        self.process = subprocess.Popen(
            [*_browser_args(profile), "--remote-debugging-port=0", "about:blank"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        while not port_file.exists() or not port_file.read_text().strip():
            assert self.process.poll() is None, "chromium exited at start"
            assert time.monotonic() < deadline, "chromium opened no DevTools port"
            time.sleep(0.2)
        port = port_file.read_text().split()[0]
        pages = httpx.get(f"http://127.0.0.1:{port}/json/list", timeout=10).json()
        url = next(p["webSocketDebuggerUrl"] for p in pages if p["type"] == "page")
        import websocket

        self.socket = websocket.create_connection(url, timeout=30, suppress_origin=True)
        self._id = 0

    def call(self, method: str, **params) -> dict:
        self._id += 1
        self.socket.send(json.dumps({"id": self._id, "method": method, "params": params}))
        while True:
            message = json.loads(self.socket.recv())
            if message.get("id") == self._id:
                assert "error" not in message, message
                return message["result"]

    def evaluate(self, expression: str):
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float, what: str):
        deadline = time.monotonic() + timeout
        while True:
            value = self.evaluate(expression)
            if value:
                return value
            assert time.monotonic() < deadline, f"the page never showed {what}"
            time.sleep(0.25)

    def close(self) -> None:
        self.socket.close()
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[DevTools]:
    profile = tmp_path / "chromium-devtools"
    profile.mkdir()
    tools = DevTools(profile)
    yield tools
    tools.close()


def _deploy(stack, namespace: str, folder: Path) -> str:
    """`shipline run` of the two-Deployment pipeline; the flow run's id."""
    (folder / "k8s").mkdir(parents=True)
    for name in ("agent", "web"):
        (folder / "k8s" / f"{name}.yaml").write_text(MANIFEST.format(name=name))
    (folder / "okteto-pipeline.yaml").write_text(PIPELINE)
    done = shipline_run(
        str(folder / "okteto-pipeline.yaml"), "-n", namespace, "--commit", "ui1", timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return flow_run_id(done.stderr)


def test_flow_run_page_lists_the_dag_task_runs(
    stack, namespace: str, tmp_path: Path, test_output: Path, browser: DevTools
) -> None:
    run_id = _deploy(stack, namespace, tmp_path / "pipeline")
    assert set(task_runs(stack.prefect_api_url, run_id)) == DAG | CHECKS
    page = f"{stack.prefect_api_url.removesuffix('/api')}/runs/flow-run/{run_id}"

    # The page as it opens (the run graph, a canvas), through Chromium's own CLI.
    shot = test_output / "flow-run.png"
    subprocess.run(
        [
            *_browser_args(tmp_path / "chromium-cli"),
            f"--screenshot={shot}",
            "--virtual-time-budget=15000",
            page,
        ],
        capture_output=True,
        timeout=120,
        check=True,
    )
    assert shot.stat().st_size > 10_000

    # The Task Runs tab: click it, wait until every task run of the DAG is listed.
    browser.call("Page.navigate", url=page)
    browser.wait_for("!!document.querySelector('li#task-runs')", 60, "the Task Runs tab")
    browser.evaluate("document.querySelector('li#task-runs').click()")
    names = json.dumps(sorted(DAG))
    listed = browser.wait_for(
        "(() => { const list = document.querySelector('#task-runs-content');"
        f" const text = list ? list.innerText : ''; const names = {names};"
        " return names.every(n => text.includes(n)) ? text : ''; })()",
        60,
        f"the task runs {sorted(DAG)} in the Task Runs list",
    )
    (test_output / "task-runs.txt").write_text(listed)
    image = browser.call("Page.captureScreenshot", format="png")["data"]
    (test_output / "task-runs.png").write_bytes(base64.b64decode(image))
    assert (test_output / "task-runs.png").stat().st_size > 10_000
    for name in DAG:
        assert name in listed
    assert "Completed" in listed
