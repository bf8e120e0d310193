"""Triggers end to end: `shipline serve` + `shipline webhook` + the deploy flow, real stack.

Each test writes its own prefect.yaml (deployment names unique to the test, namespace =
the test's namespace), starts `shipline serve` and `shipline webhook` as subprocesses
against the stack's Prefect server, and sends signed GitHub deliveries naming commits of
a local git repository the module makes (examples/pr12er, then two commits that change
server/main.go). `--repository-path` maps the delivery's OWNER/NAME to that clone, so the
runs deploy from a worktree of exactly the merged commit.
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import httpx
import pytest
import yaml

from deployments.webhook import signature
from flows.checkout import WORKTREES
from flows.deploy_lock import limit_name
from tasks.deploy_record import COMMIT_ANNOTATION, STAMP_ANNOTATION

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "pr12er"
GITHUB_DATA = ROOT / "tests" / "unit" / "testdata" / "github"
REPOSITORY = "shipline-test/pr12er"
API_KEY = "grafana-key-never-shown"
RUN_TIMEOUT = 420.0
FINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}
_GIT_ENV = {
    "GIT_AUTHOR_NAME": "shipline test",
    "GIT_AUTHOR_EMAIL": "test@shipline.invalid",
    "GIT_COMMITTER_NAME": "shipline test",
    "GIT_COMMITTER_EMAIL": "test@shipline.invalid",
}


# --- the local repository -------------------------------------------------------------


def _git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(repo), *args],
        capture_output=True,
        text=True,
        env={**os.environ, **_GIT_ENV},
        check=True,
    )
    return done.stdout.strip()


@dataclass(frozen=True)
class Repo:
    """The module's git repository and its commits, oldest first; commit k logs
    "(revision k)" (k > 0) when the server starts, so a pod shows which code it runs."""

    path: Path
    commits: list[str]


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Repo]:
    path = tmp_path_factory.mktemp("git") / "pr12er"
    shutil.copytree(EXAMPLE, path)
    _git(path, "init", "-q", "-b", "main")
    _git(path, "add", "-A")
    _git(path, "commit", "-q", "-m", "pr12er example")
    commits = [_git(path, "rev-parse", "HEAD")]
    main_go = path / "server" / "main.go"
    original = main_go.read_text()
    for revision in (1, 2):
        changed = original.replace(
            '"pr12er server %s listening', f'"pr12er server %s (revision {revision}) listening'
        )
        assert changed != original, "server/main.go no longer has the log line to change"
        main_go.write_text(changed)
        _git(path, "commit", "-q", "-am", f"revision {revision}")
        commits.append(_git(path, "rev-parse", "HEAD"))
    yield Repo(path, commits)
    # The runs' worktrees live outside tmp: remove them with the repository's record.
    for line in _git(path, "worktree", "list", "--porcelain").splitlines():
        worktree = line.removeprefix("worktree ")
        if line.startswith("worktree ") and worktree.startswith(str(WORKTREES)):
            _git(path, "worktree", "remove", "--force", worktree)


# --- serve and webhook subprocesses -------------------------------------------------


def _start(args: list[str], log_file: Path, env: dict[str, str]) -> subprocess.Popen:
    """`shipline ARGS` from the project root, in its own process group."""
    with log_file.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "shipline.cli", *args],
            cwd=ROOT,
            env={**os.environ, **env},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _stop(process: subprocess.Popen) -> None:
    """End the process group (serve's flow-run children with it)."""
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(20)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Served:
    """`shipline serve` running a test's prefect.yaml."""

    api_url: str
    namespace: str
    merge: str  # deployment names, without the flow's
    scheduled: str
    parameters: dict
    log: Path
    process: subprocess.Popen

    def api(self, method: str, path: str, **kwargs) -> httpx.Response:
        response = httpx.request(method, f"{self.api_url}{path}", timeout=30, **kwargs)
        response.raise_for_status()
        return response

    def deployment(self, name: str) -> dict:
        return self.api("GET", f"/deployments/name/deploy/{name}").json()

    def run(self, run_id: str) -> dict:
        return self.api("GET", f"/flow_runs/{run_id}").json()

    def logs(self, run_id: str) -> list[str]:
        """The run's log lines, once its last ("Finished in state ...") has arrived.

        Runs ship their logs in batches: they may reach the server after the final state.
        """
        body = {"logs": {"flow_run_id": {"any_": [run_id]}}, "sort": "TIMESTAMP_ASC"}
        deadline = time.monotonic() + 30
        while True:
            lines = [e["message"] for e in self.api("POST", "/logs/filter", json=body).json()]
            if any(line.startswith("Finished in state") for line in lines):
                return lines
            assert time.monotonic() < deadline, f"run {run_id}: logs incomplete: {lines}"
            time.sleep(1)

    def task_runs(self, run_id: str) -> list[dict]:
        body = {"flow_runs": {"id": {"any_": [run_id]}}}
        return self.api("POST", "/task_runs/filter", json=body).json()

    def wait(self, run_ids: list[str], timeout: float) -> list[dict]:
        """The runs once all are final; fails with the serve log's tail on timeout."""
        deadline = time.monotonic() + timeout
        while True:
            runs = [self.run(run_id) for run_id in run_ids]
            if all(run["state_type"] in FINAL for run in runs):
                return runs
            assert self.process.poll() is None, f"serve exited:\n{self.tail()}"
            if time.monotonic() > deadline:
                states = {r["name"]: r["state_name"] for r in runs}
                pytest.fail(f"runs not final after {timeout:g}s: {states}\n{self.tail()}")
            time.sleep(2)

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]


@pytest.fixture
def served(stack, namespace: str, repo: Repo, tmp_path: Path, test_output: Path):
    if not stack.prefect_api_url:
        pytest.fail("the stack has no Prefect server: run `shipline stack up`")
    suffix = uuid.uuid4().hex[:8]
    parameters = {
        "pipeline": "okteto-pipeline.yaml",  # relative to the commit's worktree
        "namespace": namespace,
        "rollback": True,
        "timeout": 180,
        "variables": {
            "GRAFANA_REMOTE_WRITE_URL": "http://127.0.0.1:9009/api/prom/push",
            "GRAFANA_USERNAME": "tester",
        },
        # The secret's value is in the serving process's environment, never a parameter.
        "secrets": ["GRAFANA_API_KEY"],
    }
    limit = {"limit": 1, "collision_strategy": "ENQUEUE"}
    merge, scheduled = f"deploy-on-merge-{suffix}", f"scheduled-redeploy-{suffix}"
    prefect_yaml = tmp_path / "prefect.yaml"
    prefect_yaml.write_text(
        yaml.safe_dump(
            {
                "name": "shipline-test",
                "deployments": [
                    {
                        "name": merge,
                        "entrypoint": "flows/deploy.py:deploy",
                        "parameters": parameters,
                        "concurrency_limit": limit,
                        "schedules": [],
                    },
                    {
                        "name": scheduled,
                        "entrypoint": "flows/deploy.py:deploy",
                        "parameters": parameters,
                        "concurrency_limit": limit,
                        "schedules": [{"cron": "0 3 * * *", "timezone": "UTC"}],
                    },
                ],
            }
        )
    )
    log = test_output / "serve.log"
    process = _start(
        [
            "serve",
            "--prefect-yaml",
            str(prefect_yaml),
            "--repository-path",
            f"{REPOSITORY}={repo.path}",
        ],
        log,
        # Look for runs every 2 s instead of 10 s: the tests wait for them.
        {"PREFECT_RUNNER_POLL_FREQUENCY": "2", "GRAFANA_API_KEY": API_KEY},
    )
    made = Served(stack.prefect_api_url, namespace, merge, scheduled, parameters, log, process)
    try:
        deadline = time.monotonic() + 120
        while True:
            names = {
                d["name"]
                for d in made.api(
                    "POST",
                    "/deployments/filter",
                    json={"deployments": {"name": {"any_": [merge, scheduled]}}},
                ).json()
            }
            if names == {merge, scheduled}:
                break
            assert process.poll() is None, f"serve exited:\n{made.tail()}"
            assert time.monotonic() < deadline, f"serve made no deployments:\n{made.tail()}"
            time.sleep(1)
        yield made
    finally:
        _stop(process)
        _forget(made, [merge, scheduled])


def _forget(served: Served, names: list[str]) -> None:
    """Delete the test's deployments, their runs and the namespace's deploy lock."""
    for name in names:
        try:
            deployment = served.deployment(name)
        except httpx.HTTPStatusError:
            continue
        runs = served.api(
            "POST",
            "/flow_runs/filter",
            json={"deployments": {"id": {"any_": [deployment["id"]]}}},
        ).json()
        for run in runs:
            httpx.delete(f"{served.api_url}/flow_runs/{run['id']}", timeout=30)
        httpx.delete(f"{served.api_url}/deployments/{deployment['id']}", timeout=30)
    httpx.delete(
        f"{served.api_url}/v2/concurrency_limits/{limit_name(served.namespace)}", timeout=30
    )


@dataclass
class Webhook:
    """`shipline webhook` for the test's deploy-on-merge deployment."""

    url: str
    secret: bytes

    def merged(self, commit: str) -> httpx.Response:
        """Deliver a signed "pull request merged into main" naming `commit`."""
        payload = json.loads((GITHUB_DATA / "pull_request-merged.json").read_text())
        payload["pull_request"]["merge_commit_sha"] = commit
        payload["repository"]["full_name"] = REPOSITORY
        body = json.dumps(payload).encode()
        headers = {
            "Content-Type": "application/json",
            "X-GitHub-Event": "pull_request",
            "X-GitHub-Delivery": str(uuid.uuid4()),
            "X-Hub-Signature-256": signature(self.secret, body),
        }
        return httpx.post(f"{self.url}/github", content=body, headers=headers, timeout=15)


@pytest.fixture
def webhook(served: Served, test_output: Path) -> Iterator[Webhook]:
    secret = secrets.token_hex(16)
    port = _free_port()
    args = ["webhook", "--port", str(port), "--repository", REPOSITORY]
    process = _start(
        [*args, "--deployment", f"deploy/{served.merge}"],
        test_output / "webhook.log",
        {"SHIPLINE_WEBHOOK_SECRET": secret},
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            log = (test_output / "webhook.log").read_text(errors="replace")
            assert process.poll() is None, f"webhook exited:\n{log[-3000:]}"
            assert time.monotonic() < deadline, f"webhook does not answer:\n{log[-3000:]}"
            time.sleep(0.3)
        yield Webhook(url, secret.encode())
    finally:
        _stop(process)


# --- what the cluster runs ------------------------------------------------------------


def _server_pods(core, namespace: str) -> list:
    pods = core.list_namespaced_pod(namespace, label_selector="app=server").items
    return [p for p in pods if p.metadata.deletion_timestamp is None]


def _assert_runs(core, apps, namespace: str, registry: str, commit: str, revision: int):
    """The server Deployment records `commit`; its pods run the commit's image and code."""
    image = f"{registry}/pr12er-server:{commit}"
    pods = _server_pods(core, namespace)
    assert pods and {c.image for p in pods for c in p.spec.containers} == {image}
    assert all(p.status.phase == "Running" for p in pods), [p.status.phase for p in pods]
    for pod in pods:
        started = core.read_namespaced_pod_log(pod.metadata.name, namespace)
        assert f"(revision {revision}) listening" in started, started
    server = apps.read_namespaced_deployment("server", namespace)
    assert server.metadata.annotations[COMMIT_ANNOTATION] == commit
    return server


def _snapshot(core, apps, namespace: str) -> dict[str, str]:
    """resourceVersion of every object a deploy touches, by kind/name."""
    listed = {
        "deployment": apps.list_namespaced_deployment(namespace).items,
        "replicaset": apps.list_namespaced_replica_set(namespace).items,
        "configmap": core.list_namespaced_config_map(namespace).items,
        "secret": core.list_namespaced_secret(namespace).items,
        "service": core.list_namespaced_service(namespace).items,
    }
    return {
        f"{kind}/{obj.metadata.name}": obj.metadata.resource_version
        for kind, items in listed.items()
        for obj in items
    }


def _time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


# --- the tests ------------------------------------------------------------------------


def test_signed_merge_deploys_that_commit(
    stack, served: Served, webhook: Webhook, repo: Repo, core, apps
) -> None:
    commit = repo.commits[1]
    answer = webhook.merged(commit)
    assert answer.status_code == 202, answer.text
    assert answer.json()["created"] is True
    run_id = answer.json()["flow_run_id"]

    (run,) = served.wait([run_id], RUN_TIMEOUT)
    logs = served.logs(run_id)
    assert run["state_type"] == "COMPLETED", "\n".join(logs[-30:])
    assert run["parameters"]["commit"] == commit
    assert run["parameters"]["repository"] == REPOSITORY
    assert any(f"worktree of {repo.path} at {commit}" in line for line in logs), logs[:10]
    server = _assert_runs(core, apps, served.namespace, stack.registry, commit, revision=1)
    assert server.metadata.annotations[STAMP_ANNOTATION] == str(run["parameters"]["stamp"])
    names = {task["name"] for task in served.task_runs(run_id)}
    assert {"set-image[server]", "wait[server]", "restart[grafana-agent]"} <= names, names
    assert API_KEY not in served.log.read_text(errors="replace")
    assert all(API_KEY not in line for line in logs)
    # The secret came from the serving process's environment, not from the parameters.
    assert API_KEY not in json.dumps(run["parameters"])
    applied = core.read_namespaced_secret("grafana-agent", served.namespace)
    assert base64.b64decode(applied.data["api-key"]).decode() == API_KEY


@pytest.mark.timeout(1200)
def test_three_merges_within_a_second_land_in_order(
    stack, served: Served, webhook: Webhook, repo: Repo, core, apps, test_output: Path
) -> None:
    started = time.monotonic()
    answers = [webhook.merged(commit) for commit in repo.commits]
    within = time.monotonic() - started
    assert [a.status_code for a in answers] == [202] * 3, [a.text for a in answers]
    assert within < 1.0, f"three deliveries took {within:.2f}s"
    run_ids = [a.json()["flow_run_id"] for a in answers]

    runs = served.wait(run_ids, 3 * RUN_TIMEOUT)
    logs = {run["id"]: served.logs(run["id"]) for run in runs}
    for run in runs:
        assert run["state_type"] == "COMPLETED", "\n".join(logs[run["id"]][-30:])
    stamps = [run["parameters"]["stamp"] for run in runs]
    assert stamps == sorted(stamps) and len(set(stamps)) == 3, "arrival order is the stamp order"

    # One at a time: no two runs overlap.
    by_start = sorted(runs, key=lambda run: _time(run["start_time"]))
    timeline = [
        f"{run['parameters']['commit'][:12]} stamp={run['parameters']['stamp']} "
        f"{run['start_time']} -> {run['end_time']}"
        + (" skipped" if any(m.startswith("skipped:") for m in logs[run["id"]]) else "")
        for run in by_start
    ]
    (test_output / "timeline.txt").write_text("\n".join(timeline) + "\n")
    for earlier, later in itertools.pairwise(by_start):
        assert _time(earlier["end_time"]) <= _time(later["start_time"]), timeline

    # In order: the runs that deployed did so in arrival order; a run that started after
    # a newer one had landed said so and deployed nothing.
    deployed = [
        run for run in by_start if not any(m.startswith("skipped:") for m in logs[run["id"]])
    ]
    assert [r["parameters"]["stamp"] for r in deployed] == sorted(
        r["parameters"]["stamp"] for r in deployed
    ), timeline
    assert deployed[-1]["parameters"]["commit"] == repo.commits[-1], timeline
    for run in by_start:
        if run not in deployed:
            assert not any(t["name"].startswith("apply[") for t in served.task_runs(run["id"]))

    newest = runs[-1]
    server = _assert_runs(core, apps, served.namespace, stack.registry, repo.commits[-1], 2)
    assert server.metadata.annotations[STAMP_ANNOTATION] == str(newest["parameters"]["stamp"])

    # A late run of the oldest commit (its original stamp) says why and touches nothing.
    before = _snapshot(core, apps, served.namespace)
    late = served.api(
        "POST",
        f"/deployments/{served.deployment(served.merge)['id']}/create_flow_run",
        json={"parameters": {**runs[0]["parameters"]}},
    ).json()
    (late_run,) = served.wait([late["id"]], RUN_TIMEOUT)
    late_logs = served.logs(late["id"])
    assert late_run["state_type"] == "COMPLETED", "\n".join(late_logs[-30:])
    skipped = [line for line in late_logs if line.startswith("skipped:")]
    assert skipped, late_logs
    assert repo.commits[-1][:12] in skipped[0] and repo.commits[0][:12] in skipped[0]
    assert served.task_runs(late["id"]) == []
    assert _snapshot(core, apps, served.namespace) == before
    _assert_runs(core, apps, served.namespace, stack.registry, repo.commits[-1], 2)


def test_scheduled_deployment_schedule_read_back(served: Served) -> None:
    scheduled = served.deployment(served.scheduled)
    assert [
        (s["schedule"]["cron"], s["schedule"]["timezone"], s["active"])
        for s in scheduled["schedules"]
    ] == [("0 3 * * *", "UTC", True)]
    merge = served.deployment(served.merge)
    assert merge["schedules"] == []
    for deployment in (scheduled, merge):
        assert deployment["parameters"] == served.parameters
        assert deployment["entrypoint"].endswith("flows/deploy.py:deploy")
        assert deployment["global_concurrency_limit"]["limit"] == 1
        assert deployment["concurrency_options"]["collision_strategy"] == "ENQUEUE"
