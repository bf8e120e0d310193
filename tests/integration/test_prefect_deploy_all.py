"""`prefect deploy --all` from the repository root, and a process worker running a deploy.

This is the scale-out path of prefect.yaml (the README's "Workers" section): the same
deployments `shipline serve` makes, registered by Prefect's own CLI, their runs executed
by `prefect worker start`. The test deploys a copy of the repository's prefect.yaml with
only the deployment and work pool names made unique, so a `shipline serve` of the real
names on the same server is left alone; everything else (entrypoint, pull step,
parameters, schedules, concurrency) is the file as shipped.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from flows.deploy_lock import limit_name

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
PREFECT = [sys.executable, "-m", "prefect"]


def _prefect(*args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*PREFECT, "--no-prompt", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PREFECT_CLI_WRAP_LINES": "false"},
    )


@pytest.fixture
def renamed(stack, tmp_path: Path) -> Iterator[tuple[Path, dict[str, str], str]]:
    """The repository's prefect.yaml with unique deployment and pool names; cleaned up."""
    if not stack.prefect_api_url:
        pytest.fail("the stack has no Prefect server: run `shipline stack up`")
    suffix = uuid.uuid4().hex[:8]
    config = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    pool = f"shipline-{suffix}"
    names = {}
    for deployment in config["deployments"]:
        names[deployment["name"]] = unique = f"{deployment['name']}-{suffix}"
        deployment["name"] = unique
        deployment["work_pool"]["name"] = pool
    path = tmp_path / "prefect.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    api = stack.prefect_api_url
    yield path, names, pool
    for name in names.values():
        found = httpx.get(f"{api}/deployments/name/deploy/{name}", timeout=30)
        if found.status_code == 200:
            httpx.delete(f"{api}/deployments/{found.json()['id']}", timeout=30)
    httpx.delete(f"{api}/work_pools/{pool}", timeout=30)


def test_deploy_all_then_a_worker_runs_a_deploy(stack, namespace, renamed, tmp_path) -> None:
    path, names, pool = renamed
    api = stack.prefect_api_url
    made = _prefect("work-pool", "create", pool, "--type", "process")
    assert made.returncode == 0, made.stdout + made.stderr

    deployed = _prefect("deploy", "--all", "--prefect-file", str(path))
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    on_merge = httpx.get(
        f"{api}/deployments/name/deploy/{names['deploy-on-merge']}", timeout=30
    ).json()
    nightly = httpx.get(
        f"{api}/deployments/name/deploy/{names['scheduled-redeploy']}", timeout=30
    ).json()
    assert on_merge["entrypoint"] == nightly["entrypoint"] == "flows/deploy.py:deploy"
    assert on_merge["work_pool_name"] == pool
    assert on_merge["schedules"] == []
    assert [s["schedule"]["cron"] for s in nightly["schedules"]] == ["0 3 * * *"]
    for made_deployment in (on_merge, nightly):
        assert made_deployment["global_concurrency_limit"]["limit"] == 1
        assert made_deployment["concurrency_options"]["collision_strategy"] == "ENQUEUE"
    assert on_merge["parameters"]["namespace"] == "pr12er"
    # The pull step runs the flow from the folder `prefect deploy` ran in: this checkout.
    assert on_merge["pull_steps"] == [
        {"prefect.deployments.steps.set_working_directory": {"directory": str(ROOT)}}
    ]

    pipeline = tmp_path / "okteto-pipeline.yaml"
    pipeline.write_text('deploy:\n  - echo "worker deploys $OKTETO_GIT_COMMIT"\n')
    run = httpx.post(
        f"{api}/deployments/{on_merge['id']}/create_flow_run",
        json={
            "parameters": {
                "pipeline": str(pipeline),
                "namespace": namespace,
                "commit": "c0ffee1",
                "secrets": [],
            }
        },
        timeout=30,
    )
    run.raise_for_status()
    flow_run_id = run.json()["id"]
    try:
        # Run from elsewhere: the pull step, not the worker's folder, must find the flow.
        worker = subprocess.run(
            [*PREFECT, "worker", "start", "--pool", pool, "--run-once"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=300,
        )
        output = worker.stdout + worker.stderr
        assert worker.returncode == 0, output
        state = httpx.get(f"{api}/flow_runs/{flow_run_id}", timeout=30).json()["state"]
        assert state["type"] == "COMPLETED", f"{state}\n{output}"
        assert "worker deploys c0ffee1" in output
    finally:
        httpx.delete(f"{api}/flow_runs/{flow_run_id}", timeout=30)
        httpx.delete(f"{api}/v2/concurrency_limits/{limit_name(namespace)}", timeout=30)
