"""A secret value used where it becomes a name (an image tag, a workload) stays masked in
everything the run leaves on the Prefect server: run and task names, states, logs,
artifacts (with their descriptions) and events."""

from __future__ import annotations

import json
import os
import time
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from shipline_runs import flow_run_id, run_argv

pytestmark = pytest.mark.integration

SECRET = f"tok{uuid.uuid4().hex[:12]}"


def test_secret_in_names_is_masked_everywhere(stack, namespace, tmp_path):
    import subprocess

    since = datetime.now(UTC) - timedelta(seconds=5)
    (tmp_path / "Dockerfile").write_text("FROM shipline/busybox:1.35\nRUN echo failing && false\n")
    (tmp_path / "okteto-pipeline.yaml").write_text(
        "deploy:\n"
        "  - kubectl rollout restart deployment/web-${TOKEN}\n"
        "  - okteto build -t okteto.dev/leak:${TOKEN} .\n"
        "  - kubectl set image deployment/web-${TOKEN} web=okteto.dev/leak:${TOKEN}\n"
    )
    done = subprocess.run(
        [
            *run_argv(str(tmp_path / "okteto-pipeline.yaml")),
            *("--commit", "c1", "-n", namespace, "--secret", "TOKEN"),
        ],
        env={**os.environ, "TOKEN": SECRET},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 1, done.stderr[-3000:]
    assert SECRET not in done.stdout + done.stderr
    run_id = flow_run_id(done.stderr)
    recorded = _everything_recorded(stack.prefect_api_url, run_id, since)
    assert "restart[web-***]" in recorded  # the names are there, masked
    assert "build and push of" in recorded
    assert SECRET not in recorded


def _everything_recorded(api: str, run_id: str, since: datetime) -> str:
    def post(path: str, body: dict) -> object:
        response = httpx.post(f"{api}{path}", json=body, timeout=30)
        response.raise_for_status()
        return response.json()

    runs = {"flow_runs": {"id": {"any_": [run_id]}}}
    flow_run = httpx.get(f"{api}/flow_runs/{run_id}", timeout=30).json()
    parts = [
        flow_run,
        post("/task_runs/filter", runs),
        post("/logs/filter", {"logs": {"flow_run_id": {"any_": [run_id]}}}),
        post("/artifacts/filter", {"artifacts": {"flow_run_id": {"any_": [run_id]}}}),
    ]
    # Events reach the server's store a moment later: wait for the run's deploy event.
    deadline = time.monotonic() + 60
    while True:
        events = post(
            "/events/filter",
            {"filter": {"occurred": {"since": since.isoformat()}}, "limit": 50},
        )
        names = [event["event"] for event in events["events"]]
        if "shipline.deploy.failed" in names or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert "shipline.deploy.failed" in names, names
    pages = [events]
    while pages[-1].get("next_page"):
        pages.append(httpx.get(pages[-1]["next_page"], timeout=30).json())
    return json.dumps([*parts, *pages])
