"""kubectl twins: the same change by kubectl to one Deployment and by shipline to its twin.

Each test creates two identical Deployments in a fresh namespace (0 replicas: no pod is
needed to compare specs), changes `twin-kubectl` with /usr/bin/kubectl and `twin-shipline`
with `tasks.rollout`, and checks that the results are equal: spec, annotations,
generation (no patch sent means no new generation) and the number of ReplicaSets the
controller made (no change means no new ReplicaSet).
"""

from __future__ import annotations

import copy
import json
import re
import subprocess
import time
from datetime import datetime
from typing import Any

import pytest

from tasks.errors import RolloutError, TransientError
from tasks.kube import Cluster
from tasks.rollout import ChangeResult, restart, revision, set_image, undo
from tasks.workload_patch import RESTARTED_AT

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

KUBECTL, SHIPLINE = "twin-kubectl", "twin-shipline"
IMAGE = "shipline/busybox:1.35"
# RFC 3339 as Go's time.RFC3339 writes it (seconds, Z or an offset).
RFC3339 = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(Z|[+-]\d\d:\d\d)")


@pytest.fixture
def cluster(stack) -> Cluster:
    cluster = Cluster.connect(stack.kubeconfig)
    yield cluster
    cluster.close()


def deployment(name: str, replicas: int = 0) -> dict[str, Any]:
    def container(cname: str, image: str) -> dict[str, Any]:
        return {
            "name": cname,
            "image": image,
            "imagePullPolicy": "IfNotPresent",
            "command": ["sleep", "3600"],
        }

    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "terminationGracePeriodSeconds": 0,
                    "initContainers": [container("setup", IMAGE)],
                    "containers": [container("server", IMAGE), container("envoy", IMAGE)],
                },
            },
        },
    }


def create_twins(apps, namespace: str, replicas: int = 0) -> None:
    for name in (KUBECTL, SHIPLINE):
        apps.create_namespaced_deployment(namespace, deployment(name, replicas))
    for name in (KUBECTL, SHIPLINE):
        settled(apps, namespace, name)


def kubectl(namespace: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        ["kubectl", "-n", namespace, *args], capture_output=True, text=True, timeout=60
    )
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def read(apps, namespace: str, name: str) -> dict[str, Any]:
    response = apps.read_namespaced_deployment(name, namespace, _preload_content=False)
    return json.loads(response.data)


def settled(apps, namespace: str, name: str, timeout: float = 30) -> dict[str, Any]:
    """The Deployment once its controller has seen its latest generation."""
    deadline = time.monotonic() + timeout
    while True:
        obj = read(apps, namespace, name)
        status = obj.get("status") or {}
        if status.get("observedGeneration", 0) >= obj["metadata"]["generation"]:
            return obj
        assert time.monotonic() < deadline, f"{name} not observed: {status}"
        time.sleep(0.2)


def replica_sets(apps, namespace: str, name: str) -> list[dict[str, Any]]:
    uid = read(apps, namespace, name)["metadata"]["uid"]
    response = apps.list_namespaced_replica_set(namespace, _preload_content=False)
    return [
        rs
        for rs in json.loads(response.data)["items"]
        if any(ref["uid"] == uid for ref in rs["metadata"].get("ownerReferences", []))
    ]


def comparable(obj: dict[str, Any], name: str) -> dict[str, Any]:
    """Spec, annotations and generation; the twin's name and the restart time masked."""
    view = {
        "spec": copy.deepcopy(obj["spec"]),
        "annotations": obj["metadata"].get("annotations", {}),
        "generation": obj["metadata"]["generation"],
    }
    annotations = view["spec"]["template"]["metadata"].get("annotations", {})
    if RESTARTED_AT in annotations:
        assert RFC3339.fullmatch(annotations[RESTARTED_AT]), annotations[RESTARTED_AT]
        annotations[RESTARTED_AT] = "<time>"
    return json.loads(json.dumps(view).replace(name, "TWIN"))


def assert_twins_equal(apps, namespace: str) -> dict[str, Any]:
    objs = {name: settled(apps, namespace, name) for name in (KUBECTL, SHIPLINE)}
    left, right = (comparable(objs[n], n) for n in (KUBECTL, SHIPLINE))
    assert left == right
    counts = [len(replica_sets(apps, namespace, n)) for n in (KUBECTL, SHIPLINE)]
    assert counts[0] == counts[1], counts
    return {"objects": objs, "replica_sets": counts[0], "view": left}


def containers(obj: dict[str, Any]) -> dict[str, str]:
    spec = obj["spec"]["template"]["spec"]
    return {c["name"]: c["image"] for c in spec["initContainers"] + spec["containers"]}


@pytest.mark.parametrize(
    ("pairs", "expected"),
    [
        (
            {"server": "shipline/busybox:9.1"},
            {"setup": IMAGE, "server": "shipline/busybox:9.1", "envoy": IMAGE},
        ),
        ({"*": "shipline/busybox:9.2"}, dict.fromkeys(("setup", "server", "envoy"), "x")),
        (
            {"setup": "shipline/busybox:9.3"},
            {"setup": "shipline/busybox:9.3", "server": IMAGE, "envoy": IMAGE},
        ),
        (
            {"server": "shipline/busybox:9.4", "envoy": "shipline/busybox:9.5"},
            {"setup": IMAGE, "server": "shipline/busybox:9.4", "envoy": "shipline/busybox:9.5"},
        ),
    ],
    ids=["match", "star", "init-container", "two-containers"],
)
def test_set_image_twins(apps, namespace, cluster, pairs, expected):
    create_twins(apps, namespace)
    out = kubectl(
        namespace, "set", "image", f"deployment/{KUBECTL}", *(f"{k}={v}" for k, v in pairs.items())
    )
    result = set_image(cluster, "Deployment", SHIPLINE, namespace, pairs)

    assert out.stdout.strip() == f"deployment.apps/{KUBECTL} image updated"
    assert result == ChangeResult(
        f"deployment.apps/{SHIPLINE}", True, f"deployment.apps/{SHIPLINE} image updated"
    )
    twins = assert_twins_equal(apps, namespace)
    if "*" in pairs:
        expected = dict.fromkeys(expected, pairs["*"])
    assert containers(twins["objects"][SHIPLINE]) == expected
    assert twins["view"]["generation"] == 2
    assert twins["replica_sets"] == 2


def test_set_image_same_image_is_a_no_op_like_kubectl(apps, namespace, cluster):
    create_twins(apps, namespace)
    out = kubectl(namespace, "set", "image", f"deployment/{KUBECTL}", f"server={IMAGE}")
    result = set_image(cluster, "Deployment", SHIPLINE, namespace, {"server": IMAGE})

    assert out.stdout.strip() == ""  # kubectl sends no patch and prints nothing
    assert result.changed is False
    assert "already set" in result.message and f"server={IMAGE}" in result.message
    twins = assert_twins_equal(apps, namespace)
    assert twins["view"]["generation"] == 1
    assert twins["replica_sets"] == 1


def test_set_image_unknown_container_like_kubectl(apps, namespace, cluster):
    create_twins(apps, namespace)
    out = kubectl(namespace, "set", "image", f"deployment/{KUBECTL}", "nope=x:1", check=False)
    with pytest.raises(RolloutError) as info:
        set_image(cluster, "Deployment", SHIPLINE, namespace, {"nope": "x:1"})

    assert out.returncode != 0
    assert 'unable to find container named "nope"' in out.stderr
    message = str(info.value)
    assert 'unable to find container named "nope"' in message
    assert f"deployment/{SHIPLINE}" in message and "setup, server, envoy" in message
    assert not info.value.retryable
    twins = assert_twins_equal(apps, namespace)
    assert twins["view"]["generation"] == 1
    assert twins["replica_sets"] == 1


def test_set_image_missing_deployment_names_it(namespace, cluster):
    with pytest.raises(RolloutError) as info:
        set_image(cluster, "Deployment", "absent", namespace, {"server": IMAGE})
    assert f'deployments.apps "absent" not found in namespace "{namespace}"' in str(info.value)


def test_restart_twins(apps, namespace, cluster):
    create_twins(apps, namespace)
    out = kubectl(namespace, "rollout", "restart", f"deployment/{KUBECTL}")
    result = restart(cluster, "Deployment", SHIPLINE, namespace)

    assert out.stdout.strip() == f"deployment.apps/{KUBECTL} restarted"
    assert result == ChangeResult(
        f"deployment.apps/{SHIPLINE}", True, f"deployment.apps/{SHIPLINE} restarted"
    )
    twins = assert_twins_equal(apps, namespace)
    for obj in twins["objects"].values():
        assert RESTARTED_AT in obj["spec"]["template"]["metadata"]["annotations"]
    assert twins["view"]["generation"] == 2
    assert twins["replica_sets"] == 2

    # kubectl restarts a Deployment shipline restarted, and the other way round; the
    # annotation has one-second resolution and kubectl refuses a restart in the same second.
    time.sleep(1.1)
    kubectl(namespace, "rollout", "restart", f"deployment/{SHIPLINE}")
    restart(cluster, "Deployment", KUBECTL, namespace)
    twins = assert_twins_equal(apps, namespace)
    assert twins["view"]["generation"] == 3


def test_restart_twice_in_one_second_is_refused_like_kubectl(apps, namespace, cluster):
    create_twins(apps, namespace)
    kubectl(namespace, "rollout", "restart", f"deployment/{KUBECTL}")
    again = kubectl(namespace, "rollout", "restart", f"deployment/{KUBECTL}", check=False)
    stamp = read(apps, namespace, KUBECTL)["spec"]["template"]["metadata"]["annotations"][
        RESTARTED_AT
    ]
    clock = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    restart(cluster, "Deployment", SHIPLINE, namespace, now=lambda: clock)
    with pytest.raises(TransientError) as info:
        restart(cluster, "Deployment", SHIPLINE, namespace, now=lambda: clock)

    # kubectl may have crossed a second boundary between its two runs; when it did not,
    # it refused with the words shipline uses.
    assert "within the past second" in str(info.value) and info.value.retryable
    assert settled(apps, namespace, SHIPLINE)["metadata"]["generation"] == 2
    if again.returncode != 0:
        assert "within the past second" in again.stderr
        assert_twins_equal(apps, namespace)


def test_restart_paused_deployment_is_refused_like_kubectl(apps, namespace, cluster):
    create_twins(apps, namespace)
    for name in (KUBECTL, SHIPLINE):
        kubectl(namespace, "rollout", "pause", f"deployment/{name}")
    out = kubectl(namespace, "rollout", "restart", f"deployment/{KUBECTL}", check=False)
    with pytest.raises(RolloutError) as info:
        restart(cluster, "Deployment", SHIPLINE, namespace)

    assert out.returncode != 0
    assert "can't restart paused deployment" in out.stderr
    message = str(info.value)
    assert f'deployments.apps "{SHIPLINE}" can\'t restart paused deployment' in message
    assert f"kubectl rollout resume deployment/{SHIPLINE} -n {namespace}" in message
    twins = assert_twins_equal(apps, namespace)
    assert twins["view"]["generation"] == 2  # the pause itself, nothing more


def test_undo_twins(apps, namespace, cluster):
    create_twins(apps, namespace)
    for name in (KUBECTL, SHIPLINE):
        kubectl(namespace, "set", "image", f"deployment/{name}", "server=shipline/busybox:9.9")
        settled(apps, namespace, name)
    assert revision(cluster, "Deployment", SHIPLINE, namespace) == 2

    out = kubectl(namespace, "rollout", "undo", f"deployment/{KUBECTL}")
    result = undo(cluster, "Deployment", SHIPLINE, namespace)

    assert out.stdout.strip() == f"deployment.apps/{KUBECTL} rolled back"
    assert result == ChangeResult(
        f"deployment.apps/{SHIPLINE}", True, f"deployment.apps/{SHIPLINE} rolled back"
    )
    twins = assert_twins_equal(apps, namespace)
    assert containers(twins["objects"][SHIPLINE])["server"] == IMAGE
    assert twins["replica_sets"] == 2
    assert revision(cluster, "Deployment", SHIPLINE, namespace) == 3

    # Back to revision 3 (the current one): both skip, nothing changes.
    out = kubectl(namespace, "rollout", "undo", f"deployment/{KUBECTL}", "--to-revision=3")
    result = undo(cluster, "Deployment", SHIPLINE, namespace, to_revision=3)
    assert out.stdout.strip() == (
        f"deployment.apps/{KUBECTL} skipped rollback (current template already matches revision 3)"
    )
    assert result.changed is False
    assert result.message == out.stdout.strip().replace(KUBECTL, SHIPLINE)

    # An explicit older revision (the set-image one, now revision 4 again).
    kubectl(namespace, "rollout", "undo", f"deployment/{KUBECTL}", "--to-revision=2")
    undo(cluster, "Deployment", SHIPLINE, namespace, to_revision=2)
    twins = assert_twins_equal(apps, namespace)
    assert containers(twins["objects"][SHIPLINE])["server"] == "shipline/busybox:9.9"


def test_undo_without_history_and_unknown_revision(apps, namespace, cluster):
    create_twins(apps, namespace)
    out = kubectl(namespace, "rollout", "undo", f"deployment/{KUBECTL}", check=False)
    with pytest.raises(RolloutError, match="no rollout history found") as info:
        undo(cluster, "Deployment", SHIPLINE, namespace)
    assert out.returncode != 0 and "no rollout history found" in out.stderr
    assert namespace in str(info.value)

    out = kubectl(
        namespace, "rollout", "undo", f"deployment/{KUBECTL}", "--to-revision=7", check=False
    )
    with pytest.raises(RolloutError, match="unable to find specified revision 7 in history"):
        undo(cluster, "Deployment", SHIPLINE, namespace, to_revision=7)
    assert "unable to find specified revision 7 in history" in out.stderr
    assert_twins_equal(apps, namespace)


def test_undo_paused_deployment_is_refused(apps, namespace, cluster):
    create_twins(apps, namespace)
    kubectl(namespace, "set", "image", f"deployment/{SHIPLINE}", "server=shipline/busybox:9.9")
    settled(apps, namespace, SHIPLINE)
    kubectl(namespace, "rollout", "pause", f"deployment/{SHIPLINE}")
    with pytest.raises(RolloutError, match="cannot rollback a paused deployment"):
        undo(cluster, "Deployment", SHIPLINE, namespace)
    obj = settled(apps, namespace, SHIPLINE)
    assert containers(obj)["server"] == "shipline/busybox:9.9"


def statefulset(name: str) -> dict[str, Any]:
    sts = deployment(name)
    sts["kind"] = "StatefulSet"
    sts["spec"]["serviceName"] = name
    return sts


def read_sts(apps, namespace: str, name: str, timeout: float = 30) -> dict[str, Any]:
    """The StatefulSet once its controller has seen its latest generation."""
    deadline = time.monotonic() + timeout
    while True:
        response = apps.read_namespaced_stateful_set(name, namespace, _preload_content=False)
        obj = json.loads(response.data)
        if (obj.get("status") or {}).get("observedGeneration", 0) >= obj["metadata"]["generation"]:
            return obj
        assert time.monotonic() < deadline, f"{name} not observed: {obj.get('status')}"
        time.sleep(0.2)


def test_undo_statefulset_twins(apps, namespace, cluster):
    for name in (KUBECTL, SHIPLINE):
        apps.create_namespaced_stateful_set(namespace, statefulset(name))
        read_sts(apps, namespace, name)
        kubectl(namespace, "set", "image", f"statefulset/{name}", "server=shipline/busybox:9.9")
        read_sts(apps, namespace, name)
    assert revision(cluster, "StatefulSet", SHIPLINE, namespace) == 2

    out = kubectl(namespace, "rollout", "undo", f"statefulset/{KUBECTL}")
    result = undo(cluster, "StatefulSet", SHIPLINE, namespace)
    assert out.stdout.strip() == f"statefulset.apps/{KUBECTL} rolled back"
    assert result.message == f"statefulset.apps/{SHIPLINE} rolled back" and result.changed

    objs = {name: read_sts(apps, namespace, name) for name in (KUBECTL, SHIPLINE)}
    assert comparable(objs[KUBECTL], KUBECTL) == comparable(objs[SHIPLINE], SHIPLINE)
    assert containers(objs[SHIPLINE])["server"] == IMAGE

    # Back to the current revision: both skip.
    current = revision(cluster, "StatefulSet", SHIPLINE, namespace)
    out = kubectl(
        namespace, "rollout", "undo", f"statefulset/{KUBECTL}", f"--to-revision={current}"
    )
    result = undo(cluster, "StatefulSet", SHIPLINE, namespace, to_revision=current)
    assert "skipped rollback" in out.stdout
    assert result.message == out.stdout.strip().replace(KUBECTL, SHIPLINE)
    assert not result.changed


def test_restart_statefulset_twins(apps, namespace, cluster):
    for name in (KUBECTL, SHIPLINE):
        apps.create_namespaced_stateful_set(namespace, statefulset(name))
    kubectl(namespace, "rollout", "restart", f"statefulset/{KUBECTL}")
    result = restart(cluster, "StatefulSet", SHIPLINE, namespace)
    assert result.message == f"statefulset.apps/{SHIPLINE} restarted"
    objs = {name: read_sts(apps, namespace, name) for name in (KUBECTL, SHIPLINE)}
    assert comparable(objs[KUBECTL], KUBECTL) == comparable(objs[SHIPLINE], SHIPLINE)
    assert objs[SHIPLINE]["metadata"]["generation"] == 2
