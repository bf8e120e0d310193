"""wait-rollout on the real stack: kubectl's verdicts, fail-fast, pause, timeout, many targets.

Small Deployments of shipline/busybox:1.35 in a fresh namespace per test. Where kubectl
defines the outcome, ``kubectl rollout status`` runs on the same object at the same time
and both must agree.
"""

from __future__ import annotations

import subprocess
import threading
import time
from typing import Any

import pytest

from tasks.errors import RolloutError, RolloutFailed
from tasks.kube import Cluster
from tasks.rollout_wait import KUBECTL_TIMEOUT, WaitTarget, wait_rollout, wait_rollouts

pytestmark = pytest.mark.integration

KUBECTL = "/usr/bin/kubectl"
BUSYBOX = "shipline/busybox:1.35"
MISSING = "127.0.0.1:5000/nope:missing"


@pytest.fixture
def cluster(stack) -> Cluster:
    cluster = Cluster.connect(stack.kubeconfig)
    yield cluster
    cluster.close()


def deployment(
    name: str,
    *,
    image: str = BUSYBOX,
    command: list[str] | None = None,
    replicas: int = 1,
    paused: bool = False,
    ready_after: int | None = None,
    never_ready: bool = False,
    progress_deadline: int | None = None,
) -> dict[str, Any]:
    container: dict[str, Any] = {
        "name": "main",
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "command": command or ["sleep", "3600"],
    }
    if ready_after is not None or never_ready:
        container["readinessProbe"] = {
            "exec": {"command": ["false"] if never_ready else ["true"]},
            "initialDelaySeconds": ready_after or 0,
            "periodSeconds": 1,
        }
    spec: dict[str, Any] = {
        "replicas": replicas,
        "selector": {"matchLabels": {"app": name}},
        "template": {
            "metadata": {"labels": {"app": name}},
            "spec": {"containers": [container], "terminationGracePeriodSeconds": 0},
        },
    }
    if paused:
        spec["paused"] = True
    if progress_deadline is not None:
        spec["progressDeadlineSeconds"] = progress_deadline
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name}, "spec": spec}


def create(apps, namespace: str, body: dict[str, Any]) -> None:
    apps.create_namespaced_deployment(namespace, body)


def kubectl_status(
    stack, namespace: str, name: str, timeout: str, kind: str = "deployment"
) -> subprocess.Popen:
    """Start ``kubectl rollout status`` on the same object (runs alongside shipline)."""
    return subprocess.Popen(
        [KUBECTL, "rollout", "status", f"{kind}/{name}", "-n", namespace,
         f"--timeout={timeout}"],
        env={"KUBECONFIG": stack.kubeconfig, "PATH": "/usr/bin:/bin"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip


def finish(process: subprocess.Popen) -> tuple[int, str, str]:
    out, err = process.communicate(timeout=120)
    return process.returncode, out, err


def target(name: str, namespace: str, timeout: float | None = 60) -> WaitTarget:
    return WaitTarget("deployment", name, namespace, timeout)


def test_verdict_equals_kubectls_for_a_real_rollout_and_an_update(stack, apps, cluster, namespace):
    create(apps, namespace, deployment("server", replicas=2, ready_after=2))
    kubectl = kubectl_status(stack, namespace, "server", "60s")
    result = wait_rollout(cluster, target("server", namespace))
    code, out, err = finish(kubectl)
    assert result.ok and code == 0, err
    assert result.target == "deployment/server"
    # kubectl's last line is its final verdict: shipline says the very same thing.
    assert out.strip().splitlines()[-1] == result.message
    assert result.message == 'deployment "server" successfully rolled out'

    # An update (a new ReplicaSet replacing the old one), waited on by both again.
    apps.patch_namespaced_deployment(
        "server",
        namespace,
        {"spec": {"template": {"metadata": {"annotations": {"rev": "2"}}}}},
    )
    kubectl = kubectl_status(stack, namespace, "server", "60s")
    result = wait_rollout(cluster, target("server", namespace))
    code, out, err = finish(kubectl)
    assert result.ok and code == 0, err
    assert out.strip().splitlines()[-1] == result.message
    live = apps.read_namespaced_deployment("server", namespace)
    assert live.status.updated_replicas == 2 and live.status.available_replicas == 2


@pytest.mark.parametrize("kind", ["statefulset", "daemonset"])
def test_verdict_equals_kubectls_for_statefulsets_and_daemonsets(
    stack, apps, cluster, namespace, kind
):
    body = deployment("agent", ready_after=2)
    body["kind"] = "StatefulSet" if kind == "statefulset" else "DaemonSet"
    spec = body["spec"]
    if kind == "statefulset":
        spec["serviceName"] = "agent"
    else:
        del spec["replicas"]  # one pod per node: the stack has the one node "localhost"
    create_kind = {
        "statefulset": apps.create_namespaced_stateful_set,
        "daemonset": apps.create_namespaced_daemon_set,
    }[kind]
    create_kind(namespace, body)
    kubectl = kubectl_status(stack, namespace, "agent", "60s", kind)
    result = wait_rollout(cluster, WaitTarget(kind, "agent", namespace, 60))
    code, out, err = finish(kubectl)
    assert result.ok and code == 0, err
    assert result.target == f"{kind}/agent"
    assert out.strip().splitlines()[-1] == result.message


def test_progress_deadline_fails_like_kubectl(stack, apps, cluster, namespace):
    # Without fail-fast shipline waits like kubectl does, until the controller gives up.
    create(apps, namespace, deployment("stuck", image=MISSING, progress_deadline=5))
    kubectl = kubectl_status(stack, namespace, "stuck", "90s")
    with pytest.raises(RolloutFailed) as caught:
        wait_rollout(cluster, target("stuck", namespace, 90), fail_fast=False)
    code, _, err = finish(kubectl)
    assert code != 0
    assert 'deployment "stuck" exceeded its progress deadline' in err
    assert 'deployment "stuck" exceeded its progress deadline' in str(caught.value)
    assert caught.value.reason == "ProgressDeadlineExceeded"


def test_missing_image_fails_fast_naming_the_pod_and_reason(apps, core, cluster, namespace):
    create(apps, namespace, deployment("server", image=MISSING))
    started = time.monotonic()
    with pytest.raises(RolloutFailed) as caught:
        wait_rollout(cluster, target("server", namespace, 120))
    elapsed = time.monotonic() - started
    assert elapsed < 60
    message = str(caught.value)
    assert caught.value.reason in ("ImagePullBackOff", "ErrImagePull")
    assert caught.value.reason in message
    pods = [p.metadata.name for p in core.list_namespaced_pod(namespace).items]
    assert caught.value.pod in pods and f'pod "{caught.value.pod}"' in message
    assert caught.value.container == "main" and '"main"' in message
    assert MISSING in message
    assert message.startswith(f"deployment/server in namespace {namespace}: ")


def test_crashing_container_fails_fast_naming_crashloopbackoff(apps, cluster, namespace):
    create(apps, namespace, deployment("crash", command=["sh", "-c", "echo bye; exit 1"]))
    started = time.monotonic()
    with pytest.raises(RolloutFailed) as caught:
        wait_rollout(cluster, target("crash", namespace, 120))
    assert time.monotonic() - started < 90
    message = str(caught.value)
    assert caught.value.reason == "CrashLoopBackOff"
    assert "CrashLoopBackOff" in message and "last exit code 1" in message
    assert caught.value.pod.startswith("crash-") and caught.value.pod in message
    assert "kubectl logs" in message


def test_paused_deployment_fails_at_once(apps, cluster, namespace):
    create(apps, namespace, deployment("held", paused=True))
    started = time.monotonic()
    with pytest.raises(RolloutFailed) as caught:
        wait_rollout(cluster, target("held", namespace, 60))
    assert time.monotonic() - started < 5
    assert caught.value.reason == "Paused"
    assert "kubectl rollout resume deployment/held" in str(caught.value)


def test_timeout_fails_with_kubectls_message_and_the_last_status(stack, apps, cluster, namespace):
    create(apps, namespace, deployment("slow", never_ready=True))
    kubectl = kubectl_status(stack, namespace, "slow", "4s")
    started = time.monotonic()
    with pytest.raises(RolloutFailed) as caught:
        wait_rollout(cluster, target("slow", namespace, 4))
    elapsed = time.monotonic() - started
    code, _, err = finish(kubectl)
    assert 3.5 < elapsed < 15
    assert code != 0 and KUBECTL_TIMEOUT in err  # kubectl: "error: timed out waiting ..."
    message = str(caught.value)
    assert caught.value.reason == "Timeout"
    assert KUBECTL_TIMEOUT in message
    assert 'last status: Waiting for deployment "slow" rollout to finish' in message


def test_two_targets_one_good_one_bad(apps, cluster, namespace):
    create(apps, namespace, deployment("good", ready_after=30))
    create(apps, namespace, deployment("bad", image=MISSING))
    started = time.monotonic()
    with pytest.raises(RolloutFailed) as caught:
        wait_rollouts(cluster, [target("good", namespace, 120), target("bad", namespace, 120)])
    # The bad one fails fast and the good one's wait (30 s to be ready) is cancelled.
    assert time.monotonic() - started < 60
    assert caught.value.target == "deployment/bad"
    assert "deployment/bad" in str(caught.value)
    assert caught.value.reason in ("ImagePullBackOff", "ErrImagePull")


def test_two_good_targets_are_waited_concurrently(apps, cluster, namespace):
    create(apps, namespace, deployment("one", ready_after=4))
    create(apps, namespace, deployment("two", ready_after=4))
    started = time.monotonic()
    results = wait_rollouts(cluster, [target("one", namespace), target("two", namespace)])
    elapsed = time.monotonic() - started
    assert [r.target for r in results] == ["deployment/one", "deployment/two"]
    assert all(r.ok for r in results)
    # Waited side by side: about one rollout's time, not two.
    assert elapsed < sum(r.seconds for r in results)


def test_watch_closed_early_by_the_server_gives_no_false_failure(stack, apps, cluster, namespace):
    create(apps, namespace, deployment("server", replicas=2, ready_after=5))
    kubectl = kubectl_status(stack, namespace, "server", "60s")
    # Each watch asks the server to end it after 1 s: many re-lists before it is done.
    result = wait_rollout(cluster, target("server", namespace, 60), watch_cap=1)
    code, out, err = finish(kubectl)
    assert result.ok and code == 0, err
    assert result.seconds > 4
    assert out.strip().splitlines()[-1] == result.message


def test_missing_workload_is_a_rollout_error_naming_it(cluster, namespace):
    with pytest.raises(RolloutError, match=rf'"ghost" not found in namespace {namespace}'):
        wait_rollout(cluster, target("ghost", namespace, 10))


def test_stop_cancels_the_wait(apps, cluster, namespace):
    create(apps, namespace, deployment("slow", never_ready=True))
    stop = threading.Event()
    threading.Timer(2, stop.set).start()
    started = time.monotonic()
    result = wait_rollout(cluster, target("slow", namespace, None), stop=stop)
    assert not result.ok and "cancelled" in result.message
    assert time.monotonic() - started < 8
