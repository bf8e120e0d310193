"""`shipline run` as a user runs it, and what the stack's Prefect server recorded of it."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "pr12er"
# The variables examples/pr12er/k8s/grafana-agent.yaml needs; the API key marked secret.
API_KEY = "pw-never-shown"
GRAFANA = [
    *("--var", "GRAFANA_REMOTE_WRITE_URL=http://127.0.0.1:9009/api/prom/push"),
    *("--var", "GRAFANA_USERNAME=tester"),
    *("--var", f"GRAFANA_API_KEY={API_KEY}"),
    *("--secret", "GRAFANA_API_KEY"),
]


def run_argv(*args: str) -> list[str]:
    """The `shipline run ARGS` command line, with this interpreter."""
    return [sys.executable, "-m", "shipline.cli", "run", *args]


def shipline_run(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """Run `shipline run ARGS` to its end; its output captured."""
    return subprocess.run(run_argv(*args), capture_output=True, text=True, timeout=timeout)


def flow_run_id(output: str) -> str:
    """The flow run whose page the CLI printed last."""
    found = re.findall(r"/runs/flow-run/([0-9a-f-]{36})", output)
    assert found, f"no flow run page in the output:\n{output[-3000:]}"
    return found[-1]


def task_runs(api_url: str, run_id: str) -> dict[str, str]:
    """Task run name -> state name of one flow run, read back from the Prefect server."""
    response = httpx.post(
        f"{api_url}/task_runs/filter",
        json={"flow_runs": {"id": {"any_": [run_id]}}},
        timeout=30,
    )
    response.raise_for_status()
    return {run["name"]: run["state"]["name"] for run in response.json()}


def running_images(core, namespace: str, app: str) -> set[str]:
    """Images of the Running, not terminating pods labelled app=APP."""
    pods = core.list_namespaced_pod(namespace, label_selector=f"app={app}").items
    return {
        container.image
        for pod in pods
        if pod.metadata.deletion_timestamp is None and pod.status.phase == "Running"
        for container in pod.spec.containers
    }
