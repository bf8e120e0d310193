"""The local stack runs real pods from images built with the docker SDK and pushed locally."""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from pathlib import Path

import httpx
import pytest

from shipline.stack import processes
from shipline.stack.images import BUSYBOX_IMAGE
from shipline.stack.layout import StackLayout
from shipline.stack.lifecycle import COMPONENTS

pytestmark = pytest.mark.integration


def _kubectl(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["kubectl", *args], capture_output=True, text=True, check=check)


def _shipline(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["shipline", *args], capture_output=True, text=True, env=env or os.environ.copy()
    )


def test_built_image_runs_as_available_deployment(
    stack, docker_client, apps, namespace, tmp_path: Path
) -> None:
    # An image built with the docker SDK from the stack's local base image...
    marker = uuid.uuid4().hex
    (tmp_path / "Dockerfile").write_text(
        f'FROM {BUSYBOX_IMAGE}\nRUN echo {marker} > /marker\nCMD ["sleep", "3600"]\n'
    )
    ref = f"{stack.registry}/stack-test:{marker[:12]}"
    _image, _ = docker_client.images.build(path=str(tmp_path), tag=ref, rm=True)
    # ...pushed to the stack's registry...
    for line in docker_client.images.push(ref, stream=True, decode=True):
        assert "error" not in line, line
    manifest = httpx.head(
        f"http://{stack.registry}/v2/stack-test/manifests/{marker[:12]}",
        headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"},
    )
    assert manifest.status_code == 200
    docker_client.images.remove(ref)  # the kubelet must pull it from the registry
    # ...runs as a Deployment that becomes available.
    _kubectl("create", "deployment", "app", f"--image={ref}", "-n", namespace)
    done = _kubectl(
        "rollout", "status", "deployment/app", "-n", namespace, "--timeout=120s", check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    deployment = apps.read_namespaced_deployment("app", namespace)
    assert deployment.status.available_replicas == 1
    # The pod really runs the image we built: the marker file is in it.
    out = _kubectl("exec", "-n", namespace, "deploy/app", "--", "cat", "/marker")
    assert out.stdout.strip() == marker


def test_pods_get_addresses_in_the_benchmarking_range(stack, core, namespace) -> None:
    _kubectl("run", "probe", f"--image={BUSYBOX_IMAGE}", "-n", namespace, "--", "sleep", "600")
    _kubectl("wait", "--for=condition=Ready", "pod/probe", "-n", namespace, "--timeout=90s")
    pod = core.read_namespaced_pod("probe", namespace)
    assert pod.status.pod_ip.startswith("198.18.0."), pod.status.pod_ip
    assert Path("/proc/sys/net/ipv4/ip_forward").read_text().strip() == "0"


def test_kubectl_sees_the_same_cluster(stack, apps, namespace) -> None:
    _kubectl(
        "create",
        "deployment",
        "seen",
        f"--image={BUSYBOX_IMAGE}",
        "-n",
        namespace,
        "--",
        "sleep",
        "600",
    )
    via_client = apps.read_namespaced_deployment("seen", namespace)
    via_kubectl = json.loads(
        _kubectl("get", "deployment", "seen", "-n", namespace, "-o", "json").stdout
    )
    assert via_kubectl["metadata"]["uid"] == via_client.metadata.uid


def test_env_prints_only_export_lines(stack) -> None:
    out = _shipline("stack", "env")
    assert out.returncode == 0
    lines = out.stdout.splitlines()
    assert [line.split("=", 1)[0] for line in lines] == [
        "export KUBECONFIG",
        "export SHIPLINE_REGISTRY",
        "export PREFECT_API_URL",
    ]
    assert f"export SHIPLINE_REGISTRY={stack.registry}" in lines
    # eval-able: a shell that evals it sees the same values.
    shown = subprocess.run(
        ["bash", "-c", 'eval "$(shipline stack env)"; echo "$SHIPLINE_REGISTRY $KUBECONFIG"'],
        capture_output=True,
        text=True,
        check=True,
    )
    assert shown.stdout.split() == [stack.registry, stack.kubeconfig]


def test_status_reports_every_component_running(stack) -> None:
    out = _shipline("stack", "status")
    assert out.returncode == 0
    for name in COMPONENTS:
        row = next(line for line in out.stdout.splitlines() if f" {name} " in line)
        assert "running" in row or "external" in row, row


def test_up_twice_is_harmless(stack) -> None:
    layout = StackLayout.from_env()
    before = {name: processes.running_pid(layout, name) for name in COMPONENTS}
    out = _shipline("stack", "up")
    assert out.returncode == 0, out.stderr
    after = {name: processes.running_pid(layout, name) for name in COMPONENTS}
    assert after == before
    assert "already running" in out.stderr
    ready = _kubectl(
        "get", "node", "localhost", "-o", "jsonpath={.status.conditions[?(@.type=='Ready')].status}"
    )
    assert ready.stdout == "True"
