"""A secret value used where it becomes a name (an image tag, a workload) stays masked in
everything the run leaves on the Prefect server: run and task names, states, logs,
artifacts (with their descriptions) and events."""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from shipline_runs import flow_run_id, run_argv

pytestmark = pytest.mark.integration

SECRET = f"tok{uuid.uuid4().hex[:12]}"


def run_with_secrets(
    folder: Path, namespace: str, secrets: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    """`shipline run` of the folder's pipeline, each of `secrets` exported and marked."""
    marked = [arg for name in secrets for arg in ("--secret", name)]
    return subprocess.run(
        [
            *run_argv(str(folder / "okteto-pipeline.yaml")),
            *("--commit", "c1", "-n", namespace, *marked),
        ],
        env={**os.environ, **secrets},
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_secret_in_names_is_masked_everywhere(stack, namespace, tmp_path):
    since = datetime.now(UTC) - timedelta(seconds=5)
    (tmp_path / "Dockerfile").write_text("FROM shipline/busybox:1.35\nRUN echo failing && false\n")
    (tmp_path / "okteto-pipeline.yaml").write_text(
        "deploy:\n"
        "  - kubectl rollout restart deployment/web-${TOKEN}\n"
        "  - okteto build -t okteto.dev/leak:${TOKEN} .\n"
        "  - kubectl set image deployment/web-${TOKEN} web=okteto.dev/leak:${TOKEN}\n"
    )
    done = run_with_secrets(tmp_path, namespace, {"TOKEN": SECRET})
    assert done.returncode == 1, done.stderr[-3000:]
    assert SECRET not in done.stdout + done.stderr
    run_id = flow_run_id(done.stderr)
    recorded = _everything_recorded(stack.prefect_api_url, run_id, since)
    assert "restart[web-***]" in recorded  # the names are there, masked
    assert "build and push of" in recorded
    assert SECRET not in recorded


PEM = f"-----BEGIN KEY-----\nMIIB{uuid.uuid4().hex}\nQx{uuid.uuid4().hex}\n-----END KEY-----"


def test_secrets_stay_masked_on_a_successful_run(stack, namespace, tmp_path):
    # A secret in an image tag (the build's stored cache result), in an object name (the
    # CLI's summary), and a multi-line one printed by a shell line (logged line by line).
    from prefect.settings import get_current_settings

    since = datetime.now(UTC) - timedelta(seconds=5)
    started = time.time() - 5
    (tmp_path / "Dockerfile").write_text(f"FROM shipline/busybox:1.35\nLABEL run={SECRET}x\n")
    (tmp_path / "k8s").mkdir()
    (tmp_path / "k8s" / "cm.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm-${TOKEN}\ndata: {a: '1'}\n"
    )
    (tmp_path / "okteto-pipeline.yaml").write_text(
        "deploy:\n"
        "  - okteto build -t okteto.dev/leak:${TOKEN} .\n"
        "  - for f in k8s/*.yaml; do envsubst < $f | kubectl apply -f -; done\n"
        '  - echo "pem= $PEM"\n'
    )
    done = run_with_secrets(tmp_path, namespace, {"TOKEN": SECRET, "PEM": PEM})
    assert done.returncode == 0, done.stderr[-3000:]
    shown = done.stdout + done.stderr
    assert "configmap/cm-*** created" in shown
    recorded = _everything_recorded(
        stack.prefect_api_url, flow_run_id(done.stderr), since, "shipline.deploy.succeeded"
    )
    assert "pem= ***" in recorded
    storage = get_current_settings().results.local_storage_path
    stored = [p for p in Path(storage).rglob("*") if p.is_file() and p.stat().st_mtime > started]
    assert stored, "the build's result was not stored"
    for text in (shown, recorded, *(f"{p.name} {p.read_bytes()!r}" for p in stored)):
        assert SECRET not in text
        for line in PEM.splitlines():
            assert line not in text


def test_a_secret_in_a_long_error_line_is_masked_before_it_is_cut(stack, namespace, tmp_path):
    since = datetime.now(UTC) - timedelta(seconds=5)
    (tmp_path / "okteto-pipeline.yaml").write_text(
        "deploy:\n"
        '  - python3 -c \'import sys; sys.stderr.write("x" * 290 + sys.argv[1])\' "$TOKEN"'
        " && exit 3\n"
    )
    done = run_with_secrets(tmp_path, namespace, {"TOKEN": SECRET})
    assert done.returncode == 1, done.stderr[-3000:]
    assert "exited with code 3" in done.stderr
    recorded = _everything_recorded(stack.prefect_api_url, flow_run_id(done.stderr), since)
    for text in (done.stdout + done.stderr, recorded):
        for start in range(len(SECRET) - 5):  # no piece of it either
            assert SECRET[start : start + 6] not in text


def _everything_recorded(
    api: str, run_id: str, since: datetime, last_event: str = "shipline.deploy.failed"
) -> str:
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
        if last_event in names or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert last_event in names, names
    pages = [events]
    while pages[-1].get("next_page"):
        pages.append(httpx.get(pages[-1]["next_page"], timeout=30).json())
    return json.dumps([*parts, *pages])
