"""apply_objects on the real stack, side by side with `kubectl apply` (kubectl 1.32).

Twins: the same manifests go to one namespace through kubectl and to another through
shipline; the objects must come out equal (ignoring uids, times, managedFields, the
namespace and generation-independent status) and the result words must match kubectl's.
"""

from __future__ import annotations

import json
import logging
import subprocess
import time
from pathlib import Path

import pytest

from tasks.apply import LAST_APPLIED, ApplyResult, apply_objects
from tasks.errors import ManifestError
from tasks.kube import Cluster
from tasks.manifests import load_objects

pytestmark = pytest.mark.integration

KUBECTL = "/usr/bin/kubectl"

DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: server
  labels:
    app: server
{extra_labels}spec:
  replicas: {replicas}
  selector:
    matchLabels:
      app: server
  template:
    metadata:
      labels:
        app: server
    spec:
      terminationGracePeriodSeconds: 1
      containers:
        - name: server
          image: {image}
          imagePullPolicy: IfNotPresent
          command: [sleep, "3600"]
{env}"""

CONFIGMAP = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
data:
  mode: fast
{data}"""

SERVICE = """\
apiVersion: v1
kind: Service
metadata:
  name: server
spec:
  selector:
    app: server
  ports:
    - name: http
      port: 80
      targetPort: 8080
"""

BUSYBOX = "shipline/busybox:1.35"


def deployment(*, replicas=0, image=BUSYBOX, env=True, extra_labels="") -> str:
    env_block = (
        "          env:\n            - name: MODE\n              value: fast\n" if env else ""
    )
    return DEPLOYMENT.format(
        replicas=replicas, image=image, env=env_block, extra_labels=extra_labels
    )


def write(folder: Path, files: dict[str, str]) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.yaml"):
        old.unlink()
    for name, text in files.items():
        (folder / name).write_text(text)
    return sorted(str(p) for p in folder.glob("*.yaml"))


def kubectl(stack, *args: str) -> str:
    done = subprocess.run(
        [KUBECTL, "--kubeconfig", stack.kubeconfig, *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, f"kubectl {' '.join(args)} failed: {done.stderr}"
    return done.stdout


def kubectl_apply(stack, namespace: str, files: list[str]) -> list[ApplyResult]:
    """`for f in files; do kubectl apply -f f; done`, parsed into results."""
    results = []
    for path in files:
        for line in kubectl(stack, "apply", "-n", namespace, "-f", path).splitlines():
            target, _, action = line.partition(" ")
            results.append(ApplyResult(target, action))
    return results


@pytest.fixture
def cluster(stack):
    connected = Cluster.connect(stack.kubeconfig)
    yield connected
    connected.close()


@pytest.fixture
def twin(core, request):
    """A second fresh namespace for kubectl's twin (the `namespace` fixture is shipline's)."""
    import uuid

    from kubernetes import client

    name = f"t-kubectl-twin-{uuid.uuid4().hex[:8]}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    yield name
    core.delete_namespace(name, propagation_policy="Background")


def ship(cluster, files, namespace, **kwargs) -> list[ApplyResult]:
    return apply_objects(cluster, load_objects(files, {}), namespace=namespace, **kwargs)


_IGNORED_METADATA = ("uid", "resourceVersion", "creationTimestamp", "managedFields", "namespace")


def comparable(stack, namespace: str, kind: str, name: str) -> dict:
    """The object as JSON, minus what differs between twins by nature."""
    obj = json.loads(kubectl(stack, "get", kind, name, "-n", namespace, "-o", "json"))
    metadata = obj["metadata"]
    for key in (*_IGNORED_METADATA, "selfLink", "generation"):
        metadata.pop(key, None)
    annotations = metadata.get("annotations") or {}
    # Written by the deployment controller, per rollout: the override saves one on purpose.
    annotations.pop("deployment.kubernetes.io/revision", None)
    if LAST_APPLIED in annotations:
        last = json.loads(annotations[LAST_APPLIED])
        assert last["metadata"].pop("namespace") == namespace
        annotations[LAST_APPLIED] = last
    obj.pop("status", None)
    if kind == "service":
        obj["spec"].pop("clusterIP", None)
        obj["spec"].pop("clusterIPs", None)
    return obj


def assert_twins(stack, kubectl_ns: str, shipline_ns: str, objects: list[tuple[str, str]]):
    for kind, name in objects:
        assert comparable(stack, shipline_ns, kind, name) == comparable(
            stack, kubectl_ns, kind, name
        ), f"{kind}/{name} differs between kubectl's and shipline's apply"


TWIN_OBJECTS = [("deployment", "server"), ("configmap", "settings"), ("service", "server")]


def test_twins_created_unchanged_configured_like_kubectl(stack, cluster, namespace, twin, tmp_path):
    files = {
        "a-config.yaml": CONFIGMAP.format(data=""),
        "b-app.yaml": deployment() + "---\n" + SERVICE,
    }
    paths = write(tmp_path / "k8s", files)
    steps = [
        ("create", files),
        ("same again", files),
        (
            "change one",
            {**files, "a-config.yaml": CONFIGMAP.format(data="  extra: yes-please\n")},
        ),
    ]
    for label, step_files in steps:
        paths = write(tmp_path / "k8s", step_files)
        expected = kubectl_apply(stack, twin, paths)
        got = ship(cluster, paths, namespace)
        assert got == expected, f"step {label!r}: kubectl said {expected}, shipline {got}"
        assert_twins(stack, twin, namespace, TWIN_OBJECTS)
    assert [r.action for r in expected] == ["configured", "unchanged", "unchanged"]


def settled(apps, namespace: str, name: str):
    """The Deployment once its controller has seen it (status writes bump resourceVersion)."""
    deadline = time.monotonic() + 30
    while True:
        live = apps.read_namespaced_deployment(name, namespace)
        if (live.status.observed_generation or 0) >= live.metadata.generation:
            return live
        assert time.monotonic() < deadline, f"deployment {name} never observed by its controller"
        time.sleep(0.2)


def test_unchanged_reapply_keeps_generation(stack, cluster, namespace, apps, tmp_path):
    paths = write(tmp_path, {"app.yaml": deployment()})
    assert ship(cluster, paths, namespace) == [ApplyResult("deployment.apps/server", "created")]
    before = settled(apps, namespace, "server").metadata
    assert ship(cluster, paths, namespace) == [ApplyResult("deployment.apps/server", "unchanged")]
    after = apps.read_namespaced_deployment("server", namespace).metadata
    assert (after.generation, after.resource_version) == (
        before.generation,
        before.resource_version,
    )


@pytest.mark.parametrize("first", ["kubectl", "shipline"])
def test_each_tool_continues_after_the_other(stack, cluster, namespace, twin, tmp_path, first):
    """Fields removed from the manifest are removed, whoever applied before."""
    full = {"app.yaml": deployment(extra_labels="    tier: web\n") + "---\n" + SERVICE}
    trimmed = {"app.yaml": deployment(env=False)}
    # kubectl's twin goes the same way with kubectl only: the reference result.
    kubectl_apply(stack, twin, write(tmp_path / "ref", full))
    kubectl_apply(stack, twin, write(tmp_path / "ref", trimmed))

    paths = write(tmp_path / "mixed", full)
    if first == "kubectl":
        kubectl_apply(stack, namespace, paths)
        results = ship(cluster, write(tmp_path / "mixed", trimmed), namespace)
    else:
        ship(cluster, paths, namespace)
        results = kubectl_apply(stack, namespace, write(tmp_path / "mixed", trimmed))
    assert results == [ApplyResult("deployment.apps/server", "configured")]
    assert_twins(stack, twin, namespace, [("deployment", "server")])
    obj = comparable(stack, namespace, "deployment", "server")
    assert "tier" not in obj["metadata"]["labels"]
    assert "env" not in obj["spec"]["template"]["spec"]["containers"][0]


def test_fields_set_by_others_stay(stack, cluster, namespace, apps, tmp_path):
    paths = write(tmp_path, {"app.yaml": deployment()})
    ship(cluster, paths, namespace)
    kubectl(stack, "label", "deployment", "server", "-n", namespace, "owner=ops")
    kubectl(stack, "annotate", "deployment", "server", "-n", namespace, "note=kept")
    paths = write(tmp_path, {"app.yaml": deployment(extra_labels="    tier: web\n")})
    assert ship(cluster, paths, namespace) == [ApplyResult("deployment.apps/server", "configured")]
    metadata = apps.read_namespaced_deployment("server", namespace).metadata
    assert metadata.labels == {"app": "server", "owner": "ops", "tier": "web"}
    assert metadata.annotations["note"] == "kept"


def test_change_by_another_writer_after_the_dry_run_is_not_overwritten(
    stack, cluster, namespace, apps, tmp_path, monkeypatch
):
    # The apply sends the patch its dry run made, on condition that the object is still
    # the version that patch was made against. Another writer scales the Deployment in
    # between: the server refuses the stale patch (409), the apply reads the object
    # again, and the manifest's replicas win as they do when kubectl applies after the
    # scale (a patch made before the scale would have left 2 replicas).
    import tasks.apply

    paths = write(tmp_path, {"app.yaml": deployment()})
    ship(cluster, paths, namespace)
    dry_run_one, prepare_one = tasks.apply._dry_run_one, tasks.apply._prepare_one
    prepared: list[str] = []

    def then_someone_else_scales(*args, **kwargs):
        change = dry_run_one(*args, **kwargs)
        kubectl(stack, "scale", "deployment", "server", "-n", namespace, "--replicas=2")
        return change

    def counted(cluster, plan, openapi):
        prepared.append(plan.target)
        return prepare_one(cluster, plan, openapi)

    monkeypatch.setattr(tasks.apply, "_dry_run_one", then_someone_else_scales)
    monkeypatch.setattr(tasks.apply, "_prepare_one", counted)
    paths = write(tmp_path, {"app.yaml": deployment(extra_labels="    tier: web\n")})
    assert ship(cluster, paths, namespace) == [ApplyResult("deployment.apps/server", "configured")]
    assert prepared == ["deployment.apps/server"] * 2  # the dry run's, then a fresh one
    live = apps.read_namespaced_deployment("server", namespace)
    assert live.spec.replicas == 0
    assert live.metadata.labels == {"app": "server", "tier": "web"}


def test_bad_document_applies_nothing_and_names_file_and_line(core, namespace, tmp_path):
    folder = tmp_path / "k8s"
    files = {
        "a.yaml": CONFIGMAP.format(data=""),
        "b.yaml": SERVICE + "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  labels: {}\n",
    }
    paths = write(folder, files)
    with pytest.raises(ManifestError) as caught:
        load_objects(paths, {})
    assert f"{folder / 'b.yaml'}:13 (document 2): missing metadata.name" in str(caught.value)
    names = [c.metadata.name for c in core.list_namespaced_config_map(namespace).items]
    assert "settings" not in names


def test_server_rejection_in_dry_run_applies_nothing(cluster, core, namespace, tmp_path):
    bad_service = SERVICE.replace("port: 80", "port: 99999")
    paths = write(tmp_path, {"a.yaml": CONFIGMAP.format(data=""), "b.yaml": bad_service})
    with pytest.raises(ManifestError) as caught:  # bad input: exit code 2
        ship(cluster, paths, namespace)
    assert caught.value.exit_code == 2
    message = str(caught.value)
    assert "nothing was applied" in message
    assert f"{tmp_path / 'b.yaml'}:1 (document 1)" in message and "service/server" in message
    names = [c.metadata.name for c in core.list_namespaced_config_map(namespace).items]
    assert "settings" not in names


def test_unknown_kind_names_file_document_and_kind(cluster, core, namespace, tmp_path):
    widget = "apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: w\n"
    paths = write(tmp_path, {"a.yaml": CONFIGMAP.format(data="") + "---\n" + widget})
    with pytest.raises(ManifestError) as caught:
        ship(cluster, paths, namespace)
    message = str(caught.value)
    assert f"{tmp_path / 'a.yaml'}:8 (document 2)" in message
    assert "kind Widget" in message and "example.com/v1" in message
    names = [c.metadata.name for c in core.list_namespaced_config_map(namespace).items]
    assert "settings" not in names


def replica_sets(apps, namespace: str) -> list:
    return apps.list_namespaced_replica_set(namespace).items


def test_image_override_is_apply_then_set_image_in_one_change(
    stack, cluster, apps, namespace, twin, tmp_path
):
    placeholder = "server"  # a bare name, :latest, as pipelines keep it
    final = BUSYBOX
    first = write(tmp_path / "v1", {"app.yaml": deployment(replicas=1, image=BUSYBOX)})
    kubectl_apply(stack, twin, first)
    ship(cluster, first, namespace)

    paths = write(
        tmp_path / "v2", {"app.yaml": deployment(replicas=1, image=placeholder, env=False)}
    )
    kubectl_apply(stack, twin, paths)
    kubectl(stack, "set", "image", "deployment/server", f"server={final}", "-n", twin)

    before = {rs.metadata.name for rs in replica_sets(apps, namespace)}
    results = ship(
        cluster, paths, namespace, image_overrides={("Deployment", "server"): {"server": final}}
    )
    assert results == [ApplyResult("deployment.apps/server", "configured")]
    assert_twins(stack, twin, namespace, [("deployment", "server")])
    live = apps.read_namespaced_deployment("server", namespace)
    assert live.spec.template.spec.containers[0].image == final
    last = json.loads(live.metadata.annotations[LAST_APPLIED])
    assert last["spec"]["template"]["spec"]["containers"][0]["image"] == placeholder
    new = [rs for rs in replica_sets(apps, namespace) if rs.metadata.name not in before]
    assert len(new) == 1, f"expected one new ReplicaSet, got {[r.metadata.name for r in new]}"
    assert new[0].spec.template.spec.containers[0].image == final

    # Re-running the same deploy changes nothing: no request, generation stays.
    generation = live.metadata.generation
    again = ship(
        cluster, paths, namespace, image_overrides={("Deployment", "server"): {"*": final}}
    )
    assert again == [ApplyResult("deployment.apps/server", "unchanged")]
    assert apps.read_namespaced_deployment("server", namespace).metadata.generation == generation


def test_image_override_for_unknown_container_applies_nothing(cluster, apps, namespace, tmp_path):
    paths = write(tmp_path, {"app.yaml": deployment()})
    with pytest.raises(ManifestError, match=r'unable to find container named "sidecar"'):
        ship(
            cluster,
            paths,
            namespace,
            image_overrides={("Deployment", "server"): {"sidecar": "x:1"}},
        )
    assert apps.list_namespaced_deployment(namespace).items == []


def test_dry_run_reports_like_kubectl_and_changes_nothing(
    stack, cluster, apps, namespace, tmp_path, caplog
):
    paths = write(tmp_path, {"app.yaml": deployment()})
    expected = kubectl(stack, "apply", "--dry-run=server", "-n", namespace, "-f", paths[0])
    with caplog.at_level(logging.INFO, logger="tasks.apply"):
        results = ship(cluster, paths, namespace, dry_run=True)
    assert results == [ApplyResult("deployment.apps/server", "created")]
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.INFO] == [
        expected.strip()
    ]
    assert apps.list_namespaced_deployment(namespace).items == []


def test_namespace_in_batch_and_explicit_namespace(stack, cluster, core, namespace, tmp_path):
    other = f"{namespace}-extra"
    files = {
        "a.yaml": CONFIGMAP.format(data="").replace(
            "name: settings", f"name: settings\n  namespace: {other}"
        ),
        "b.yaml": f"apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {other}\n",
    }
    try:
        results = ship(cluster, write(tmp_path, files), namespace)
        assert results == [
            ApplyResult("namespace/" + other, "created"),
            ApplyResult("configmap/settings", "created"),
        ]
        assert core.read_namespaced_config_map("settings", other).data == {"mode": "fast"}
    finally:
        core.delete_namespace(other, propagation_policy="Background")


RICH_V1 = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: rich
  finalizers: [example.com/a, example.com/b]
spec:
  replicas: 0
  strategy:
    type: RollingUpdate
    rollingUpdate: {maxSurge: 2}
  selector: {matchLabels: {app: rich}}
  template:
    metadata: {labels: {app: rich}}
    spec:
      containers:
        - name: one
          image: shipline/busybox:1.35
          imagePullPolicy: IfNotPresent
          env: [{name: A, value: "1"}, {name: B, value: "2"}]
          ports: [{containerPort: 80, name: http}]
        - name: two
          image: shipline/busybox:1.35
          imagePullPolicy: IfNotPresent
          args: [x, z]
"""

RICH_V2 = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: rich
  finalizers: [example.com/b]
spec:
  replicas: 0
  strategy:
    type: Recreate
  selector: {matchLabels: {app: rich}}
  template:
    metadata: {labels: {app: rich}}
    spec:
      containers:
        - name: two
          image: shipline/busybox:1.35
          imagePullPolicy: IfNotPresent
          args: [z]
        - name: three
          image: shipline/busybox:1.35
          imagePullPolicy: IfNotPresent
        - name: one
          image: shipline/busybox:1.35
          imagePullPolicy: IfNotPresent
          env: [{name: B, value: "3"}, {name: C, value: "4"}]
"""


def test_twins_on_merge_lists_retain_keys_and_primitive_lists(
    stack, cluster, namespace, twin, tmp_path
):
    """Reordered and removed containers, env merge, a union field, finalizers: as kubectl."""
    try:
        for version in (RICH_V1, RICH_V2):
            paths = write(tmp_path, {"rich.yaml": version})
            expected = kubectl_apply(stack, twin, paths)
            assert ship(cluster, paths, namespace) == expected
            assert_twins(stack, twin, namespace, [("deployment", "rich")])
        live = comparable(stack, namespace, "deployment", "rich")
        assert [c["name"] for c in live["spec"]["template"]["spec"]["containers"]] == [
            "two",
            "three",
            "one",
        ]
        assert live["spec"]["strategy"] == {"type": "Recreate"}
        assert live["metadata"]["finalizers"] == ["example.com/b"]
    finally:
        for ns in (namespace, twin):  # let the namespaces go away
            subprocess.run(
                [
                    KUBECTL,
                    "--kubeconfig",
                    stack.kubeconfig,
                    "patch",
                    "deployment",
                    "rich",
                    "-n",
                    ns,
                    "--type=merge",
                    "-p",
                    '{"metadata":{"finalizers":null}}',
                ],
                capture_output=True,
                timeout=60,
            )
