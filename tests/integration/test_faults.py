"""Faults survived on the real stack: a retry or a re-list carries the step through.

- the docker engine briefly unreachable at build start (a socket proxy in front of it is
  stopped, never the stack's dockerd): the build task's retry succeeds;
- a watch closed by the server every second mid-rollout: no false failure;
- the registry killed and started again during a push, and down when a build starts
  (serial);
- the kube-apiserver killed and started again while a rollout wait runs (serial).

The serial tests restart shared components with the stack's own start code
(`shipline stack up` starts whatever is missing) and restore them even when they fail.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from shipline.stack.layout import StackLayout
from shipline.stack.processes import running_pid
from tasks.build_key import build_key
from tasks.image_ref import parse_image
from tasks.kube import Cluster

# Imported before any fixture adds a log handler: importing Prefect configures its loggers
# (dictConfig), which would drop handlers added earlier.
from tasks.prefect_tasks import build_task
from tasks.registry import MANIFEST_TYPES
from tasks.rollout_wait import WaitTarget, wait_rollout
from tasks.watch_source import KubeSource

pytestmark = pytest.mark.integration

BUSYBOX = "shipline/busybox:1.35"
DOCKER_SOCKET = "/var/run/docker.sock"


# --- helpers -----------------------------------------------------------------------------


class Lines(logging.Handler):
    """Collects the messages of the loggers it is added to (thread-safe append)."""

    def __init__(self, on_line: Any = None) -> None:
        super().__init__()
        self.lines: list[str] = []
        self._on_line = on_line

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        self.lines.append(message)
        if self._on_line is not None:
            self._on_line(message)


@pytest.fixture
def task_log() -> Iterator[Lines]:
    """What Prefect task runs log in this process (build output, retries)."""
    handler = Lines()
    logger = logging.getLogger("prefect.task_runs")
    logger.addHandler(handler)
    yield handler
    logger.removeHandler(handler)


@pytest.fixture
def cluster(stack) -> Iterator[Cluster]:
    cluster = Cluster.connect(stack.kubeconfig)
    yield cluster
    cluster.close()


def registry_digest(image: str) -> str | None:
    """The digest the stack's registry serves for `image`, None when it lacks the tag."""
    ref = parse_image(image)
    response = httpx.head(
        f"http://{ref.registry}/v2/{ref.repository}/manifests/{ref.tag}",
        headers={"Accept": ", ".join(MANIFEST_TYPES)},
        timeout=10,
    )
    return response.headers.get("Docker-Content-Digest") if response.status_code == 200 else None


def task_run_count(stack, state: Any, wait: float = 60.0) -> int:
    """How many times Prefect ran the task run of `state` (1 + retries).

    A task run outside a flow reaches the server as events, which the server turns into
    the task run record a little later: wait until the record shows the final state.
    """
    task_run_id = state.state_details.task_run_id
    deadline = time.monotonic() + wait
    while True:
        response = httpx.get(f"{stack.prefect_api_url}/task_runs/{task_run_id}", timeout=30)
        if response.status_code == 200 and response.json()["state_type"] == state.type.value:
            return response.json()["run_count"]
        assert time.monotonic() < deadline, (
            f"task run {task_run_id} not recorded in state {state.type.value} after {wait} s: "
            f"{response.status_code} {response.text[:300]}"
        )
        time.sleep(0.5)


def build_context(tmp_path: Path, dockerfile: str) -> Path:
    """A build context with a unique file, so neither the registry nor the engine has it."""
    context = tmp_path / "context"
    context.mkdir()
    (context / "nonce.txt").write_text(f"{uuid.uuid4()}\n")
    (context / "Dockerfile").write_text(dockerfile)
    return context


def deployment(name: str, ready_after: int) -> dict[str, Any]:
    """One busybox replica that turns ready `ready_after` seconds after it starts."""
    container = {
        "name": "main",
        "image": BUSYBOX,
        "imagePullPolicy": "IfNotPresent",
        "command": ["sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait"],
        "readinessProbe": {
            "exec": {"command": ["true"]},
            "initialDelaySeconds": ready_after,
            "periodSeconds": 1,
        },
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [container], "terminationGracePeriodSeconds": 0},
            },
        },
    }


def ping(path: Path) -> str:
    """The engine's answer to GET /_ping through the unix socket at `path`."""
    with httpx.Client(transport=httpx.HTTPTransport(uds=str(path)), timeout=10) as client:
        return client.get("http://docker/_ping").text


class UnixSocketProxy:
    """Forwards a unix socket to the docker engine's; `stop` makes the engine unreachable.

    Stopping closes the listener and removes the socket file (what a docker client sees
    when the engine is down); connections already open are cut too.
    """

    def __init__(self, path: Path, target: str = DOCKER_SOCKET) -> None:
        self.path = path
        self.target = target
        self.accepted = 0
        self._listener: socket.socket | None = None
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        """The DOCKER_HOST value that points at the proxy."""
        return f"unix://{self.path}"

    def start(self) -> None:
        """Listen on the socket path and forward every connection."""
        self.path.unlink(missing_ok=True)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(str(self.path))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def stop(self) -> None:
        """Stop listening, cut open connections, remove the socket file."""
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.close()
        with self._lock:
            sockets, self._open = list(self._open), set()
        for sock in sockets:
            with _quiet():
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        self.path.unlink(missing_ok=True)

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # closed by stop()
            self.accepted += 1
            upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            upstream.connect(self.target)
            with self._lock:
                self._open.update((client, upstream))
            threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            with _quiet():
                sink.shutdown(socket.SHUT_WR)


class _quiet:
    """Ignore OSError (a socket already closed by the other side)."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: type | None, *_: object) -> bool:
        return exc_type is not None and issubclass(exc_type, OSError)


def stack_up() -> float:
    """`shipline stack up` (starts what is missing); its duration in seconds."""
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "shipline.cli", "stack", "up"],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, f"shipline stack up failed:\n{done.stdout}\n{done.stderr}"
    return time.monotonic() - started


def kill_component(name: str) -> int:
    """SIGKILL one daemon of the stack (a crash, not a clean stop); its pid."""
    pid = running_pid(StackLayout.from_env(), name)
    assert pid is not None, f"{name} is not running: run `shipline stack up`"
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while running_pid(StackLayout.from_env(), name) == pid and time.monotonic() < deadline:
        time.sleep(0.05)
    return pid


@pytest.fixture
def restores_stack() -> Iterator[None]:
    """Whatever the test kills, the stack is whole again afterwards."""
    yield
    layout = StackLayout.from_env()
    if any(running_pid(layout, n) is None for n in ("registry", "kube-apiserver")):
        stack_up()


# --- docker engine briefly unreachable ---------------------------------------------------


def test_engine_unreachable_at_build_start_is_retried(
    stack, tmp_path, monkeypatch, task_log, docker_client
):
    # A short path: unix socket paths are limited to 107 bytes.
    proxy = UnixSocketProxy(Path(f"/tmp/shipline-docker-{uuid.uuid4().hex[:8]}.sock"))
    proxy.start()
    monkeypatch.setenv("DOCKER_HOST", proxy.url)
    # The proxy works: a client through it reaches the engine.
    assert ping(proxy.path) == "OK"

    context = build_context(tmp_path, f"FROM {BUSYBOX}\nCOPY nonce.txt /nonce.txt\n")
    image = f"{stack.registry}/shipline-test/faults-engine:{uuid.uuid4().hex[:10]}"
    key = build_key(str(context), str(context / "Dockerfile"), (), None)

    proxy.stop()
    assert not proxy.path.exists()
    back = threading.Timer(3.0, proxy.start)
    back.start()
    started = time.monotonic()
    try:
        state = build_task(
            image=image,
            key=key,
            context_dir=str(context),
            dockerfile=str(context / "Dockerfile"),
            return_state=True,
        )
    finally:
        back.join()
        proxy.stop()
    seconds = time.monotonic() - started
    print(f"engine unreachable for 3 s at build start: build done in {seconds:.1f} s")

    assert state.is_completed(), state.message
    result = state.result()
    assert result.built and result.image == image
    # The first attempt found no engine; a retry (after 2 s, then 5 s) got through.
    assert task_run_count(stack, state) >= 2
    assert any("cannot reach the docker engine" in line for line in task_log.lines), task_log.lines
    assert proxy.accepted >= 1  # the build went through the proxy, not around it
    assert registry_digest(image) == result.digest
    docker_client.images.get(image)  # built by the stack's engine, through the proxy


# --- a watch closed by the server mid-rollout --------------------------------------------


def test_watch_closed_by_the_server_every_second_is_no_failure(
    stack, apps, cluster, namespace, monkeypatch
):
    watches: list[str] = []
    real_watch = KubeSource.watch

    def counted(self: KubeSource, resource_version: str, seconds: int) -> Any:
        watches.append(self.description)
        assert seconds == 1  # the server ends each watch after 1 s (timeoutSeconds)
        return real_watch(self, resource_version, seconds)

    monkeypatch.setattr(KubeSource, "watch", counted)
    apps.create_namespaced_deployment(namespace, deployment("slow", ready_after=8))
    lines = Lines()
    log = logging.getLogger(f"test-faults-{uuid.uuid4().hex[:8]}")
    log.setLevel(logging.DEBUG)
    log.addHandler(lines)

    result = wait_rollout(
        cluster, WaitTarget("deployment", "slow", namespace, 90), log=log, watch_cap=1
    )
    print(f"watch closed every 1 s: rolled out in {result.seconds:.1f} s, {len(watches)} watches")

    assert result.ok
    assert result.message == 'deployment "slow" successfully rolled out'
    # The pod turns ready after 8 s: the wait rode on many short watches, re-listing.
    assert result.seconds >= 7
    workload_watches = [w for w in watches if w.startswith("deployment/slow")]
    assert len(workload_watches) >= 5, watches
    live = apps.read_namespaced_deployment("slow", namespace).status
    assert live.available_replicas == live.updated_replicas == 1
    assert not [line for line in lines.lines if "retrying" in line], lines.lines


# --- the registry restarted during a push (serial) ---------------------------------------


@pytest.mark.serial
def test_registry_restarted_during_a_push_is_retried(stack, tmp_path, task_log, restores_stack):
    # 48 MB of random bytes: the engine gzips and uploads it for a few seconds.
    context = build_context(
        tmp_path,
        f"FROM {BUSYBOX}\nCOPY nonce.txt /nonce.txt\nRUN head -c 48000000 /dev/urandom > /blob\n",
    )
    image = f"{stack.registry}/shipline-test/faults-registry:{uuid.uuid4().hex[:10]}"
    key = build_key(str(context), str(context / "Dockerfile"), (), None)
    push_started = threading.Event()

    def watch_for_push(line: str) -> None:
        if line.endswith(": Preparing") or line.endswith(": Waiting"):
            push_started.set()

    task_log._on_line = watch_for_push
    outcome: dict[str, Any] = {}

    def run() -> None:
        outcome["state"] = build_task(
            image=image,
            key=key,
            context_dir=str(context),
            dockerfile=str(context / "Dockerfile"),
            return_state=True,
        )

    builder = threading.Thread(target=run, daemon=True)
    started = time.monotonic()
    builder.start()
    assert push_started.wait(180), f"the push never started:\n{task_log.lines[-20:]}"
    time.sleep(0.5)  # mid-upload
    killed_at = time.monotonic()
    old_pid = kill_component("registry")
    assert builder.is_alive(), "the push ended before the registry was killed"
    time.sleep(2.0)  # down for a moment: the push in flight breaks
    restart_seconds = stack_up()
    new_pid = running_pid(StackLayout.from_env(), "registry")
    assert new_pid is not None and new_pid != old_pid
    builder.join(180)
    assert not builder.is_alive(), "the build did not finish within 180 s"
    seconds = time.monotonic() - started
    state = outcome["state"]
    runs = task_run_count(stack, state)
    print(
        f"registry killed {killed_at - started:.1f} s into the build, back after "
        f"{restart_seconds:.1f} s of `stack up`; build done in {seconds:.1f} s, "
        f"task runs: {runs}"
    )
    print("\n".join(line for line in task_log.lines if "etry" in line or "reach" in line))

    assert state.is_completed(), state.message
    result = state.result()
    assert result.built
    assert registry_digest(image) == result.digest
    # Either the task retried (Prefect) or the engine retried the layer upload itself;
    # one of them must have seen the outage.
    saw_outage = runs >= 2 or any("Retrying in" in line for line in task_log.lines)
    assert saw_outage, task_log.lines[-40:]


@pytest.mark.serial
def test_registry_down_when_the_build_starts_is_retried_by_the_task(
    stack, tmp_path, task_log, restores_stack
):
    # The engine retries a broken layer upload by itself (above); the task's own retry
    # is what carries a build whose first registry call finds nobody answering.
    context = build_context(tmp_path, f"FROM {BUSYBOX}\nCOPY nonce.txt /nonce.txt\n")
    image = f"{stack.registry}/shipline-test/faults-registry:{uuid.uuid4().hex[:10]}"
    key = build_key(str(context), str(context / "Dockerfile"), (), None)
    kill_component("registry")
    back = threading.Thread(target=lambda: (time.sleep(3.0), stack_up()), daemon=True)
    started = time.monotonic()
    back.start()
    try:
        state = build_task(
            image=image,
            key=key,
            context_dir=str(context),
            dockerfile=str(context / "Dockerfile"),
            return_state=True,
        )
    finally:
        back.join(240)
    seconds = time.monotonic() - started
    runs = task_run_count(stack, state)
    print(f"registry down at build start: build done in {seconds:.1f} s, task runs: {runs}")

    assert state.is_completed(), state.message
    assert runs >= 2
    assert any("cannot reach the registry" in line for line in task_log.lines), task_log.lines
    assert registry_digest(image) == state.result().digest


# --- the kube-apiserver restarted while waiting (serial) ---------------------------------


@pytest.mark.serial
def test_apiserver_restarted_while_waiting_keeps_the_verdict_right(
    stack, apps, cluster, namespace, restores_stack
):
    apps.create_namespaced_deployment(namespace, deployment("slow", ready_after=20))
    lines = Lines()
    log = logging.getLogger(f"test-faults-{uuid.uuid4().hex[:8]}")
    log.setLevel(logging.DEBUG)
    log.addHandler(lines)
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["result"] = wait_rollout(
                cluster, WaitTarget("deployment", "slow", namespace, 240), log=log
            )
        except BaseException as exc:  # reported by the assertions below
            outcome["error"] = exc

    waiter = threading.Thread(target=run, daemon=True)
    started = time.monotonic()
    waiter.start()
    time.sleep(4.0)  # the wait is watching; the pod is far from ready
    assert waiter.is_alive(), outcome
    old_pid = kill_component("kube-apiserver")
    time.sleep(2.0)
    restart_seconds = stack_up()
    new_pid = running_pid(StackLayout.from_env(), "kube-apiserver")
    assert new_pid is not None and new_pid != old_pid
    waiter.join(240)
    assert not waiter.is_alive(), "the wait did not end"
    seconds = time.monotonic() - started
    print(
        f"apiserver killed 4 s into the wait, `stack up` took {restart_seconds:.1f} s; "
        f"the wait ended after {seconds:.1f} s"
    )
    print("\n".join(lines.lines))

    assert "error" not in outcome, f"false failure: {outcome.get('error')!r}"
    result = outcome["result"]
    assert result.ok and result.message == 'deployment "slow" successfully rolled out'
    assert seconds >= 18  # not before the pod turned ready
    # The wait saw the outage and followed again once the API server answered.
    assert any("retrying" in line for line in lines.lines), lines.lines
    assert any("answers again" in line for line in lines.lines), lines.lines
    live = apps.read_namespaced_deployment("slow", namespace).status
    assert live.available_replicas == live.updated_replicas == 1


def test_unix_socket_proxy_cuts_and_restores_the_engine(stack):
    """The proxy itself: stopped, a client cannot connect; started, it can again."""
    proxy = UnixSocketProxy(Path(f"/tmp/shipline-docker-{uuid.uuid4().hex[:8]}.sock"))
    proxy.start()
    try:
        assert ping(proxy.path) == "OK"
        proxy.stop()
        with pytest.raises(httpx.ConnectError):
            ping(proxy.path)
        proxy.start()
        assert ping(proxy.path) == "OK"
    finally:
        proxy.stop()
    assert not proxy.path.exists()
