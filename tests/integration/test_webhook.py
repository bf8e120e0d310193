"""The GitHub webhook receiver against the stack's real Prefect server.

Each test makes its own deployment `deploy/webhook-<id>` with no work pool: the runs the
receiver creates stay Scheduled and never execute, which is all these tests look at. The
receiver runs in-process (uvicorn in a thread on a free 127.0.0.1 port), or through the
CLI in a subprocess.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import secrets
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from deployments.run_requests import RunRequester
from deployments.webhook import MAX_BODY, WebhookSettings, create_app, signature

pytestmark = pytest.mark.integration

GITHUB_DATA = Path(__file__).resolve().parents[1] / "unit" / "testdata" / "github"
REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Target:
    """A deployment made for one test, and how to count its runs."""

    api_url: str
    name: str
    id: uuid.UUID

    def runs(self) -> list:
        from prefect.client.orchestration import SyncPrefectClient
        from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

        with SyncPrefectClient(self.api_url) as client:
            return client.read_flow_runs(
                deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[self.id]))
            )


@pytest.fixture
def target(stack) -> Iterator[Target]:
    from prefect.client.orchestration import SyncPrefectClient

    if not stack.prefect_api_url:
        pytest.fail("the stack has no Prefect server: run `shipline stack up`")
    name = f"webhook-{uuid.uuid4().hex[:10]}"
    with SyncPrefectClient(stack.prefect_api_url) as client:
        flow_id = client.create_flow_from_name("deploy")
        deployment_id = client.create_deployment(flow_id, name=name)
    made = Target(stack.prefect_api_url, f"deploy/{name}", deployment_id)
    yield made
    with SyncPrefectClient(stack.prefect_api_url) as client:
        for run in made.runs():
            client.delete_flow_run(run.id)
        client.delete_deployment(deployment_id)


@contextmanager
def serving(app) -> Iterator[str]:
    """Serve ``app`` with uvicorn in a thread on a free port; yield its base URL."""
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


@dataclass
class Receiver:
    """A running receiver and the secret it shares with "GitHub"."""

    url: str
    secret: bytes

    def deliver(
        self,
        event: str,
        payload: dict | bytes,
        *,
        secret: bytes | None = None,
        sign: bool = True,
        content_type: str = "application/json",
        delivery: str | None = None,
    ) -> httpx.Response:
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        headers = {
            "Content-Type": content_type,
            "X-GitHub-Event": event,
            "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
            "User-Agent": "GitHub-Hookshot/test",
        }
        if sign:
            headers["X-Hub-Signature-256"] = signature(secret or self.secret, body)
        return httpx.post(f"{self.url}/github", content=body, headers=headers, timeout=15)


@pytest.fixture
def receiver(target: Target) -> Iterator[Receiver]:
    secret = secrets.token_hex(16).encode()
    requester = RunRequester(target.api_url, target.name)
    app = create_app(WebhookSettings(secret=secret, branch="main"), requester)
    with serving(app) as url:
        yield Receiver(url, secret)


def github(name: str, commit: str | None = None) -> tuple[str, dict]:
    """A recorded delivery (event, payload), its commit replaced by ``commit``."""
    payload = json.loads((GITHUB_DATA / f"{name}.json").read_text())
    event = name.split("-", 1)[0]
    if commit is not None:
        if event == "pull_request":
            payload["pull_request"]["merge_commit_sha"] = commit
        else:
            payload["after"] = commit
    return event, payload


def new_commit() -> str:
    return secrets.token_hex(20)


def test_signed_merged_pull_request_creates_one_scheduled_run(
    receiver: Receiver, target: Target
) -> None:
    commit = new_commit()
    answer = receiver.deliver(*github("pull_request-merged", commit))
    assert answer.status_code == 202, answer.text
    body = answer.json()
    assert body["commit"] == commit
    assert body["created"] is True
    runs = target.runs()
    assert [str(run.id) for run in runs] == [body["flow_run_id"]]
    run = runs[0]
    assert run.deployment_id == target.id
    assert run.state.is_scheduled()
    assert run.idempotency_key == f"{target.name}:{commit}"
    stamp = run.parameters.pop("stamp")
    assert isinstance(stamp, int) and abs(stamp - time.time_ns()) < 60 * 10**9
    assert run.parameters == {"commit": commit, "branch": "main", "repository": "acme/pr12er"}


@pytest.mark.parametrize("forgery", ["forged", "missing", "wrong-secret", "garbage"])
def test_unverified_delivery_is_401_and_creates_nothing(
    receiver: Receiver, target: Target, forgery: str
) -> None:
    event, payload = github("pull_request-merged", new_commit())
    body = json.dumps(payload).encode()
    if forgery == "forged":
        # Signed with the right secret, but for another body (a tampered delivery).
        headers_sig = signature(receiver.secret, body + b" ")
        answer = httpx.post(
            f"{receiver.url}/github",
            content=body,
            headers={
                "Content-Type": "application/json",
                "X-GitHub-Event": event,
                "X-Hub-Signature-256": headers_sig,
            },
        )
    elif forgery == "missing":
        answer = receiver.deliver(event, body, sign=False)
    elif forgery == "wrong-secret":
        answer = receiver.deliver(event, body, secret=b"not-the-secret")
    else:
        answer = httpx.post(
            f"{receiver.url}/github",
            content=body,
            headers={
                "Content-Type": "application/json",
                "X-Hub-Signature-256": "sha256=é".encode(),
            },
        )
    assert answer.status_code == 401, answer.text
    message = answer.json()["error"]
    assert "X-Hub-Signature-256" in message
    assert receiver.secret.decode() not in answer.text
    assert target.runs() == []


def test_redelivery_and_push_plus_merge_for_one_commit_make_one_run(
    receiver: Receiver, target: Target
) -> None:
    commit = new_commit()
    delivery = str(uuid.uuid4())
    first = receiver.deliver(*github("pull_request-merged", commit), delivery=delivery)
    again = receiver.deliver(*github("pull_request-merged", commit), delivery=delivery)
    push = receiver.deliver(*github("push-main", commit))
    assert [a.status_code for a in (first, again, push)] == [202, 202, 202]
    ids = {a.json()["flow_run_id"] for a in (first, again, push)}
    assert len(ids) == 1
    assert [a.json()["created"] for a in (first, again, push)] == [True, False, False]
    runs = target.runs()
    assert [str(run.id) for run in runs] == list(ids)
    other = receiver.deliver(*github("push-main", new_commit()))
    assert other.status_code == 202 and other.json()["created"] is True
    assert len(target.runs()) == 2


def test_concurrent_deliveries_of_one_commit_make_one_run(
    receiver: Receiver, target: Target
) -> None:
    commit = new_commit()
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: receiver.deliver(*github("push-main", commit)), range(8)))
    assert [a.status_code for a in answers] == [202] * 8
    assert len({a.json()["flow_run_id"] for a in answers}) == 1
    assert sorted(a.json()["created"] for a in answers) == [False] * 7 + [True]
    assert len(target.runs()) == 1


def test_a_restarted_receiver_still_makes_one_run_per_commit(target: Target) -> None:
    # The receiver remembers the commits it requested only while it runs; across a
    # restart, Prefect's idempotency key (deployment + commit) is what holds.
    secret = b"s3cret-restart"
    commit = new_commit()
    answers = []
    for _ in range(2):
        app = create_app(WebhookSettings(secret=secret), RunRequester(target.api_url, target.name))
        with serving(app) as url:
            answers.append(Receiver(url, secret).deliver(*github("push-main", commit)))
    assert [a.status_code for a in answers] == [202, 202]
    assert [a.json()["created"] for a in answers] == [True, False]
    assert answers[0].json()["flow_run_id"] == answers[1].json()["flow_run_id"]
    assert len(target.runs()) == 1


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("issues-opened", "event 'issues' does not deploy"),
        ("push-other-branch", "push to 'refs/heads/feature/healthz'"),
        ("pull_request-closed-unmerged", "closed without merging"),
        ("pull_request-merged-other-base", "merged into 'release-1.x'"),
        ("push-main-deleted", "deleted"),
    ],
)
def test_other_events_and_branches_are_204_and_create_nothing(
    receiver: Receiver, target: Target, name: str, reason: str
) -> None:
    answer = receiver.deliver(*github(name))
    assert answer.status_code == 204, answer.text
    assert answer.content == b""
    assert reason in answer.headers["X-Shipline-Ignored"]
    assert target.runs() == []


def test_ping_is_200(receiver: Receiver, target: Target) -> None:
    answer = receiver.deliver(*github("ping"))
    assert answer.status_code == 200
    assert answer.json() == {"message": "pong"}
    assert target.runs() == []


def test_healthz(receiver: Receiver) -> None:
    answer = httpx.get(f"{receiver.url}/healthz")
    assert answer.status_code == 200
    assert answer.json() == {"status": "ok"}


def _padded(commit: str, size: int) -> bytes:
    """A merged-PR payload of exactly ``size`` bytes (padding in an extra field)."""
    _, payload = github("pull_request-merged", commit)
    payload["padding"] = ""
    base = len(json.dumps(payload).encode())
    payload["padding"] = "x" * (size - base)
    body = json.dumps(payload).encode()
    assert len(body) == size
    return body


@pytest.mark.parametrize("sign", [True, False])
def test_body_over_one_mebibyte_is_413_before_the_signature(
    receiver: Receiver, target: Target, sign: bool
) -> None:
    answer = receiver.deliver("pull_request", _padded(new_commit(), MAX_BODY + 1), sign=sign)
    assert answer.status_code == 413, answer.text
    assert target.runs() == []


def test_streamed_body_over_the_limit_without_content_length_is_413(
    receiver: Receiver, target: Target
) -> None:
    body = _padded(new_commit(), MAX_BODY + 1)

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(body), 64 * 1024):
            yield body[start : start + 64 * 1024]

    answer = httpx.post(
        f"{receiver.url}/github",
        content=chunks(),  # chunked transfer encoding: no Content-Length
        headers={
            "Content-Type": "application/json",
            "X-GitHub-Event": "pull_request",
            "X-Hub-Signature-256": signature(receiver.secret, body),
        },
    )
    assert answer.status_code == 413
    assert target.runs() == []


def test_body_of_exactly_one_mebibyte_is_accepted(receiver: Receiver, target: Target) -> None:
    answer = receiver.deliver("pull_request", _padded(new_commit(), MAX_BODY))
    assert answer.status_code == 202, answer.text
    assert len(target.runs()) == 1


def test_text_plain_is_415_once_signed_and_401_unsigned(receiver: Receiver, target: Target) -> None:
    event, payload = github("pull_request-merged", new_commit())
    signed = receiver.deliver(event, payload, content_type="text/plain")
    assert signed.status_code == 415
    assert "application/json" in signed.json()["error"]
    # GitHub's other format: the signature is checked first, so unsigned is still 401.
    form = receiver.deliver(
        event, payload, content_type="application/x-www-form-urlencoded", sign=False
    )
    assert form.status_code == 401
    assert target.runs() == []


@pytest.mark.parametrize("body", [b'{"action": "closed",', b"\xff\xfe", b"[1, 2]"])
def test_malformed_json_is_400_once_signed_and_401_unsigned(
    receiver: Receiver, target: Target, body: bytes
) -> None:
    signed = receiver.deliver("pull_request", body)
    assert signed.status_code == 400
    assert "JSON" in signed.json()["error"]
    assert receiver.deliver("pull_request", body, sign=False).status_code == 401
    assert target.runs() == []


def test_deploying_event_missing_a_field_is_400(receiver: Receiver, target: Target) -> None:
    event, payload = github("pull_request-merged", "not-a-commit")
    answer = receiver.deliver(event, payload)
    assert answer.status_code == 400
    assert "merge_commit_sha is 'not-a-commit'" in answer.json()["error"]
    missing_event = receiver.deliver("", github("push-main", new_commit())[1])
    assert missing_event.status_code == 400
    assert "X-GitHub-Event" in missing_event.json()["error"]
    assert target.runs() == []


def test_three_merges_within_a_second_are_stamped_in_arrival_order(
    receiver: Receiver, target: Target
) -> None:
    commits = [new_commit() for _ in range(3)]
    answers: dict[str, httpx.Response] = {}

    def deliver(index: int, commit: str) -> None:
        name = "pull_request-merged" if index % 2 == 0 else "push-main"
        answers[commit] = receiver.deliver(*github(name, commit))

    # Arrivals 150 ms apart, each while the previous one may still be in flight.
    threads = []
    for index, commit in enumerate(commits):
        threads.append(threading.Thread(target=deliver, args=(index, commit)))
        threads[-1].start()
        time.sleep(0.15)
    for thread in threads:
        thread.join(30)
    assert [answers[commit].status_code for commit in commits] == [202, 202, 202]
    by_commit = {run.parameters["commit"]: run.parameters["stamp"] for run in target.runs()}
    stamps = [by_commit[commit] for commit in commits]
    assert stamps[0] < stamps[1] < stamps[2]
    assert stamps[2] - stamps[0] < 10**9  # within a second


def test_prefect_unreachable_is_503_with_what_to_do(target: Target) -> None:
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()  # nothing listens there now
    api_url = f"http://127.0.0.1:{port}/api"
    secret = b"s3cret-for-503"
    app = create_app(WebhookSettings(secret=secret), RunRequester(api_url, target.name))
    with serving(app) as url:
        started = time.monotonic()
        answer = Receiver(url, secret).deliver(*github("push-main", new_commit()))
    assert time.monotonic() - started < 10  # GitHub gives up after 10 s
    assert answer.status_code == 503
    assert answer.headers["Retry-After"]
    message = answer.json()["error"]
    assert api_url in message and "redeliver" in message


def test_missing_deployment_is_503_naming_it(stack, target: Target) -> None:
    secret = b"s3cret-missing"
    missing = f"deploy/absent-{uuid.uuid4().hex[:8]}"
    app = create_app(WebhookSettings(secret=secret), RunRequester(target.api_url, missing))
    with serving(app) as url:
        answer = Receiver(url, secret).deliver(*github("push-main", new_commit()))
    assert answer.status_code == 503
    assert f"deployment {missing!r} does not exist" in answer.json()["error"]


# --- the CLI ------------------------------------------------------------------------

# `shipline webhook` through shipline.cli's main(); registers the command when cli.py
# does not (yet) so these tests run either way.
CLI = [
    sys.executable,
    "-c",
    "from shipline import cli, webhook_cli\n"
    "if webhook_cli.webhook not in [c.callback for c in cli.app.registered_commands]:\n"
    "    cli.app.command()(webhook_cli.webhook)\n"
    "cli.main()",
    "webhook",
]


def _cli_env(api_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "SHIPLINE_WEBHOOK_SECRET"}
    env.update(PREFECT_API_URL=api_url, PYTHONUNBUFFERED="1", **extra)
    return env


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def cli_receiver(args: list[str], env: dict[str, str], log_path: Path) -> Iterator[str]:
    port = _free_port()
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            [*CLI, "--port", str(port), *args],
            env=env,
            cwd=REPO_ROOT,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            _wait_healthy(url, process, log_path)
            yield url
        finally:
            process.terminate()
            process.wait(10)


def _wait_healthy(url: str, process: subprocess.Popen, log_path: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"shipline webhook exited {process.returncode}:\n{log_path.read_text()}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    pytest.fail(f"shipline webhook did not answer /healthz:\n{log_path.read_text()}")


def test_cli_with_secret_block_creates_the_run(target: Target, test_output: Path) -> None:
    from prefect.blocks.system import Secret
    from prefect.client.orchestration import SyncPrefectClient
    from prefect.settings import PREFECT_API_URL, temporary_settings

    secret = secrets.token_hex(16)
    block = f"webhook-secret-{uuid.uuid4().hex[:8]}"
    with temporary_settings(updates={PREFECT_API_URL: target.api_url}):
        Secret(value=secret).save(block)
    log_path = test_output / "webhook.log"
    try:
        args = ["--deployment", target.name, "--secret-block", block, "--repository", "acme/pr12er"]
        with cli_receiver(args, _cli_env(target.api_url), log_path) as url:
            commit = new_commit()
            answer = Receiver(url, secret.encode()).deliver(*github("pull_request-merged", commit))
            assert answer.status_code == 202, answer.text
            forged = Receiver(url, b"other").deliver(*github("push-main", new_commit()))
            assert forged.status_code == 401
    finally:
        with SyncPrefectClient(target.api_url) as client:
            client.delete_block_document(client.read_block_document_by_name(block, "secret").id)
    runs = target.runs()
    assert [run.parameters["commit"] for run in runs] == [commit]
    log = log_path.read_text()
    assert f"flow run {answer.json()['flow_run_id']}" in log
    assert secret not in log  # neither the secret nor a signature is logged
    assert "sha256=" not in log


def test_cli_refuses_to_start_without_a_secret(target: Target) -> None:
    result = subprocess.run(
        [*CLI, "--port", str(_free_port())],
        env=_cli_env(target.api_url),
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "no webhook secret: set $SHIPLINE_WEBHOOK_SECRET or pass --secret-block" in (
        result.stderr
    )


def test_cli_names_a_missing_secret_block(target: Target) -> None:
    block = f"absent-{uuid.uuid4().hex[:8]}"
    result = subprocess.run(
        [*CLI, "--port", str(_free_port()), "--secret-block", block],
        env=_cli_env(target.api_url),
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert f"--secret-block {block!r}: no such Secret block" in result.stderr


def test_deployment_refusing_the_parameters_is_502_saying_which(stack) -> None:
    from prefect.client.orchestration import SyncPrefectClient

    schema = {
        "type": "object",
        "properties": {"commit": {"type": "string"}},
        "additionalProperties": False,
    }
    name = f"webhook-strict-{uuid.uuid4().hex[:8]}"
    with SyncPrefectClient(stack.prefect_api_url) as client:
        flow_id = client.create_flow_from_name("deploy")
        deployment_id = client.create_deployment(
            flow_id, name=name, parameter_openapi_schema=schema, enforce_parameter_schema=True
        )
    strict = Target(stack.prefect_api_url, f"deploy/{name}", deployment_id)
    try:
        secret = b"s3cret-strict"
        app = create_app(WebhookSettings(secret=secret), RunRequester(strict.api_url, strict.name))
        with serving(app) as url:
            answer = Receiver(url, secret).deliver(*github("push-main", new_commit()))
        assert answer.status_code == 502, answer.text
        message = answer.json()["error"]
        assert f"refused the flow run of deployment {strict.name!r}" in message
        assert "commit, branch, repository and stamp" in message
        assert strict.runs() == []
    finally:
        with SyncPrefectClient(stack.prefect_api_url) as client:
            client.delete_deployment(deployment_id)
