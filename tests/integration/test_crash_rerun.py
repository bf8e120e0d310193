"""Crash and rerun: `shipline run` killed mid-deploy, then the same commit run again.

The example (examples/pr12er) is copied into a fresh git repository with a unique file in
its build context, so the first run really builds. The run is SIGKILLed once its build
has completed and the applies started; the rerun of the same commit must finish without
building again and leave all three Deployments rolled out on the commit's image.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import threading
import time
import uuid
from pathlib import Path

import httpx
import pytest
from shipline_runs import (
    API_KEY,
    EXAMPLE,
    GRAFANA,
    flow_run_id,
    run_argv,
    running_images,
    task_runs,
)

from flows.deploy_lock import holder_variable
from tasks.build import KEY_LABEL

pytestmark = pytest.mark.integration

DEPLOYMENTS = ("server", "grafana-agent", "envoy")
BUILD_DONE = re.compile(r"Task run 'build\[[^']*\]' - Finished in state Completed")
AFTER_BUILD = re.compile(r"Task run '(apply|set-image)\[")


def git(folder: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-c", "user.name=shipline-test", "-c", "user.email=test@shipline.invalid", *args],
        cwd=folder,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


@pytest.fixture
def checkout(tmp_path: Path) -> tuple[Path, str]:
    """The example in a git repository of its own; (folder, commit)."""
    folder = tmp_path / "pr12er"
    shutil.copytree(EXAMPLE, folder)
    # A file in the build context: a build key (and image) nobody has built before.
    (folder / "server" / "nonce.txt").write_text(f"{uuid.uuid4()}\n")
    git(folder, "init", "-q")
    git(folder, "add", "-A")
    git(folder, "commit", "-q", "-m", "example")
    return folder, git(folder, "rev-parse", "HEAD")


def run_and_kill(argv: list[str], timeout: float = 300) -> tuple[list[str], float, float]:
    """Start the run, SIGKILL it once its build completed and a later step started.

    Returns its output lines, the seconds until the build completed and until the kill.
    """
    process = subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    lines: list[str] = []
    built = threading.Event()
    later = threading.Event()
    moments: dict[str, float] = {}
    started = time.monotonic()

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line.rstrip("\n"))
            if BUILD_DONE.search(line) and not built.is_set():
                moments["built"] = time.monotonic() - started
                built.set()
            elif built.is_set() and AFTER_BUILD.search(line):
                later.set()
        later.set()  # the output ended: stop waiting

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert later.wait(timeout), "the run did not reach its steps after the build in time"
        assert process.poll() is None, "the run ended before it could be killed:\n" + "\n".join(
            lines[-40:]
        )
        assert built.is_set(), "\n".join(lines[-40:])
        os.killpg(process.pid, signal.SIGKILL)
        killed = time.monotonic() - started
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(30)
        reader.join(10)
    assert process.returncode == -signal.SIGKILL
    return lines, moments["built"], killed


def flow_runs_of(stack, namespace: str) -> dict[str, str]:
    """Deploy flow runs for `namespace` (by parameter): id -> state type."""
    response = httpx.post(
        f"{stack.prefect_api_url}/flow_runs/filter",
        json={"flows": {"name": {"any_": ["deploy"]}}, "limit": 200, "sort": "START_TIME_DESC"},
        timeout=30,
    )
    response.raise_for_status()
    return {
        run["id"]: run["state_type"]
        for run in response.json()
        if run["parameters"].get("namespace") == namespace
    }


def crash_message(stack, run_id: str) -> str:
    response = httpx.get(f"{stack.prefect_api_url}/flow_runs/{run_id}", timeout=30)
    response.raise_for_status()
    return response.json()["state"]["message"] or ""


def test_killed_run_then_rerun_of_the_same_commit(
    stack, namespace, checkout, apps, core, docker_client
):
    folder, commit = checkout
    argv = run_argv(str(folder / "okteto-pipeline.yaml"), "-n", namespace, *GRAFANA)
    image = f"{stack.registry}/pr12er-server:{commit}"

    lines, built_at, killed_at = run_and_kill(argv)
    first_output = "\n".join(lines)
    first_run = flow_run_id(first_output)
    key = docker_client.images.get(image).labels[KEY_LABEL]
    built_ids = {i.id for i in docker_client.images.list(filters={"label": f"{KEY_LABEL}={key}"})}
    assert len(built_ids) == 1
    assert flow_runs_of(stack, namespace)[first_run] == "RUNNING"  # nobody told Prefect

    started = time.monotonic()
    rerun = subprocess.run(argv, capture_output=True, text=True, timeout=420)
    rerun_seconds = time.monotonic() - started
    print(
        f"build completed after {built_at:.1f} s, killed after {killed_at:.1f} s; "
        f"rerun took {rerun_seconds:.1f} s"
    )
    assert rerun.returncode == 0, rerun.stderr[-4000:]

    # No rebuild: the build task was Cached (or reused the registry's image), and the
    # engine holds no other image for the build key than the first run's.
    second_run = flow_run_id(rerun.stderr)
    assert second_run != first_run
    builds = {
        n: s
        for n, s in task_runs(stack.prefect_api_url, second_run).items()
        if n.startswith("build[")
    }
    assert list(builds.values()) == ["Cached"], builds
    after_ids = {i.id for i in docker_client.images.list(filters={"label": f"{KEY_LABEL}={key}"})}
    assert after_ids == built_ids
    assert docker_client.images.get(image).id in built_ids
    assert "Successfully built" not in rerun.stderr

    # The cluster is consistent: every Deployment rolled out, the server on the commit.
    for name in DEPLOYMENTS:
        live = apps.read_namespaced_deployment(name, namespace)
        status = live.status
        assert status.observed_generation == live.metadata.generation, name
        assert status.updated_replicas == status.replicas == status.available_replicas, name
    server = apps.read_namespaced_deployment("server", namespace)
    assert [c.image for c in server.spec.template.spec.containers] == [image]
    assert running_images(core, namespace, "server") == {image}

    # The killed run is not left "Running" forever: the rerun marked it crashed.
    assert flow_runs_of(stack, namespace)[first_run] == "CRASHED"
    assert f"flow run {second_run} took over" in crash_message(stack, first_run)
    # The rerun let go of the slot cleanly: no holder is recorded any more.
    holder = httpx.get(
        f"{stack.prefect_api_url}/variables/name/{holder_variable(namespace)}", timeout=30
    )
    assert holder.status_code == 404, holder.text
    assert API_KEY not in first_output + rerun.stdout + rerun.stderr
