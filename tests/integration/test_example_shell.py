"""The example's plain-shell pipeline (examples/pr12er/deploy.sh) deploys on the real stack.

This is the baseline the benchmarks compare shipline against, so it must itself be
right: a real docker build and push to the stack's registry, envsubst, kubectl apply,
set image, rollout restart and rollout status, in a fresh namespace.
"""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.integration

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "pr12er"
GRAFANA = {
    "GRAFANA_REMOTE_WRITE_URL": "https://prometheus.example/api/prom/push",
    "GRAFANA_USERNAME": "12345",
    "GRAFANA_API_KEY": "key-that-must-stay-secret",
}
_MANIFEST_TYPES = ", ".join(
    [
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.oci.image.manifest.v1+json",
    ]
)


def _deploy_env(stack, namespace: str, commit: str) -> dict[str, str]:
    return {
        **os.environ,
        **GRAFANA,
        "COMMIT": commit,
        "NAMESPACE": namespace,
        "SHIPLINE_REGISTRY": stack.registry,
        "KUBECONFIG": stack.kubeconfig,
        "ROLLOUT_TIMEOUT": "120s",
    }


def _run_deploy(env: dict[str, str], test_output: Path) -> subprocess.CompletedProcess[str]:
    started = time.monotonic()
    result = subprocess.run(
        ["bash", str(EXAMPLE / "deploy.sh")],
        env=env,
        capture_output=True,
        text=True,
        timeout=480,
    )
    elapsed = time.monotonic() - started
    (test_output / "deploy.log").write_text(
        f"exit {result.returncode} after {elapsed:.1f}s\n"
        f"--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
    )
    return result


def _registry_digest(registry: str, repository: str, tag: str) -> str:
    response = httpx.get(
        f"http://{registry}/v2/{repository}/manifests/{tag}",
        headers={"Accept": _MANIFEST_TYPES},
        timeout=10,
    )
    response.raise_for_status()
    return response.headers["Docker-Content-Digest"]


def _live_pods(core, namespace: str, app: str) -> list:
    pods = core.list_namespaced_pod(namespace, label_selector=f"app={app}").items
    return [p for p in pods if p.metadata.deletion_timestamp is None]


def test_deploy_sh_rolls_out_the_commits_image(
    stack, namespace, apps, core, docker_client, test_output
):
    commit = f"shell-{uuid.uuid4().hex[:12]}"
    image = f"{stack.registry}/pr12er-server:{commit}"

    result = _run_deploy(_deploy_env(stack, namespace, commit), test_output)

    assert result.returncode == 0, f"deploy.sh failed: {result.stderr[-2000:]}"
    # kubectl's own words for the three rollouts and the restart.
    assert 'deployment "server" successfully rolled out' in result.stdout
    assert 'deployment "grafana-agent" successfully rolled out' in result.stdout
    assert 'deployment "envoy" successfully rolled out' in result.stdout
    assert "deployment.apps/grafana-agent restarted" in result.stdout

    # The registry holds the pushed image, and it is the one built locally.
    digest = _registry_digest(stack.registry, "pr12er-server", commit)
    local = docker_client.images.get(image)
    assert any(d.endswith(digest) for d in local.attrs["RepoDigests"]), (
        local.attrs["RepoDigests"],
        digest,
    )

    # The server Deployment and every live pod of it run the commit's image, and are ready.
    server = apps.read_namespaced_deployment("server", namespace)
    assert [c.image for c in server.spec.template.spec.containers] == [image]
    assert server.status.updated_replicas == server.status.ready_replicas == 1
    pods = _live_pods(core, namespace, "server")
    assert len(pods) == 1, [p.metadata.name for p in pods]
    pod = pods[0]
    assert pod.status.phase == "Running"
    assert [c.image for c in pod.spec.containers] == [image]
    (status,) = pod.status.container_statuses
    assert status.ready, "the /healthz readiness probe never passed"
    # The container runs exactly that image: docker's id for it or its registry digest.
    assert status.image_id.endswith((local.id, digest)), (status.image_id, local.id, digest)
    log = core.read_namespaced_pod_log(pod.metadata.name, namespace, container="server")
    assert "listening on :8080" in log

    # grafana-agent was restarted the way kubectl does it, with its config substituted.
    agent = apps.read_namespaced_deployment("grafana-agent", namespace)
    annotations = agent.spec.template.metadata.annotations or {}
    assert "kubectl.kubernetes.io/restartedAt" in annotations
    (agent_pod,) = _live_pods(core, namespace, "grafana-agent")
    config = core.read_namespaced_pod_log(agent_pod.metadata.name, namespace)
    assert f"url: {GRAFANA['GRAFANA_REMOTE_WRITE_URL']}" in config
    assert f"username: {GRAFANA['GRAFANA_USERNAME']}" in config
    assert "${" not in config
    assert GRAFANA["GRAFANA_API_KEY"] not in config
    secret = core.read_namespaced_secret("grafana-agent", namespace)
    assert set(secret.data) == {"api-key"}

    envoy = apps.read_namespaced_deployment("envoy", namespace)
    assert envoy.status.available_replicas == 1


def test_deploy_sh_refuses_a_missing_variable_before_touching_anything(
    stack, namespace, apps, test_output
):
    env = _deploy_env(stack, namespace, "never-built")
    del env["GRAFANA_API_KEY"]

    result = _run_deploy(env, test_output)

    assert result.returncode != 0
    assert "GRAFANA_API_KEY" in result.stderr
    assert apps.list_namespaced_deployment(namespace).items == []
