"""validation_errors side by side with kubectl 1.32's client-side validation, on the stack.

For each manifest of the table, ``kubectl apply --dry-run=client --validate=strict`` runs
against the local Kubernetes 1.20 server (which has no server-side field validation, so
kubectl checks the object itself against the server's OpenAPI v2 document) and
`tasks.field_validation.validation_errors` runs on the same objects, as
`tasks.manifests.load_objects` reads them, and on the same live document. They must agree
on refused or accepted and, when refused, on every message, word for word.

Two CustomResourceDefinitions with a group of their own (one with a schema using
x-kubernetes-preserve-unknown-fields, one apiextensions v1beta1 without a schema) cover
custom kinds; they are deleted at the end.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tasks.envsubst import substitute
from tasks.field_validation import aggregate, validation_errors
from tasks.manifests import load_objects

pytestmark = pytest.mark.integration

KUBECTL = "/usr/bin/kubectl"
EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "pr12er" / "k8s"
GROUP = f"fv{uuid.uuid4().hex[:8]}.shipline.test"
# kubectl's whole refusal, around the messages it shares with validation_errors.
REFUSAL = re.compile(
    r'^error: error validating "(?P<file>[^"]+)": error validating data: (?P<errors>.*); '
    r"if you choose to ignore these errors, turn validation off with --validate=false$"
)

CRDS = f"""\
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.{GROUP}
spec:
  group: {GROUP}
  scope: Namespaced
  names: {{plural: widgets, singular: widget, kind: Widget, listKind: WidgetList}}
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema:
          type: object
          properties:
            spec:
              type: object
              required: [size]
              properties:
                size: {{type: integer}}
                ratio: {{type: number}}
                tags: {{type: array, items: {{type: string}}}}
                labels: {{type: object, additionalProperties: {{type: string}}}}
                free:
                  type: object
                  x-kubernetes-preserve-unknown-fields: true
                  properties:
                    a: {{type: string}}
                anything: {{x-kubernetes-preserve-unknown-fields: true}}
                iors: {{x-kubernetes-int-or-string: true}}
---
apiVersion: apiextensions.k8s.io/v1beta1
kind: CustomResourceDefinition
metadata:
  name: gadgets.{GROUP}
spec:
  group: {GROUP}
  scope: Namespaced
  version: v1
  names: {{plural: gadgets, singular: gadget, kind: Gadget, listKind: GadgetList}}
"""

DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: server
  labels: {{app: server, "example.com/any-key": "yes"}}
spec:
  replicas: 2
{spec}  selector:
    matchLabels: {{app: server}}
  template:
    metadata:
      labels: {{app: server}}
      annotations: {{"a/b": c}}
    spec:
      terminationGracePeriodSeconds: 1
{pod}      containers:
        - name: server
          image: registry.local/server:1
          imagePullPolicy: IfNotPresent
          command: [sleep, "3600"]
          ports:
            - containerPort: 8080
              name: http
          env:
            - name: MODE
              value: fast
            - name: POD
              valueFrom:
                fieldRef: {{fieldPath: metadata.name}}
          resources: {{limits: {{cpu: 100m, memory: 64Mi}}}}
{container}"""


def deployment(spec: str = "", pod: str = "", container: str = "") -> str:
    return DEPLOYMENT.format(spec=spec, pod=pod, container=container)


SERVICE = """\
apiVersion: v1
kind: Service
metadata: {{name: web}}
spec:
  selector: {{app: server}}
  ports:
    - {{port: 80, targetPort: http, protocol: TCP}}
    - {{port: 81, targetPort: 8081{extra}}}
"""

CONFIGMAP = """\
apiVersion: v1
kind: ConfigMap
metadata: {{name: settings}}
data: {{mode: fast, count: "3", any.key_here: x}}
{extra}"""

CASES: dict[str, str] = {
    "configmap": CONFIGMAP.format(extra=""),
    "configmap-top-level": CONFIGMAP.format(extra="bogus: 1\n"),
    "configmap-metadata": CONFIGMAP.format(extra="").replace("{name: settings}", "{name: s, x: 1}"),
    "configmap-types": CONFIGMAP.format(extra="immutable: 1\nbinaryData: [a]\n"),
    "deployment": deployment(),
    "deployment-container": deployment(container="          imagePullPolcy: Always\n"),
    "deployment-spec": deployment(spec="  replica: 3\n"),
    "deployment-pod-spec": deployment(pod="      restartpolicy: Always\n"),
    "deployment-list-item": deployment(
        container="          volumeMounts: [{name: v, mountPath: /v, readonly: true}]\n"
    ),
    "deployment-many": deployment(
        spec="  replica: 3\n  zeta: 1\n",
        pod="      aaa: 1\n",
        container="          imagePullPolcy: Always\n          livenessProbe: {exec: {cmd: [x]}}\n",
    ),
    "deployment-types": deployment(
        spec='  paused: "yes"\n  minReadySeconds: "5"\n',
        container="          args: x\n          stdin: 1\n          workingDir: 5\n",
    ),
    "deployment-numbers-pass": deployment(spec="  progressDeadlineSeconds: 600.5\n"),
    "deployment-required-and-nulls": deployment(
        spec="  revisionHistoryLimit: null\n  bogusNull: null\n",
        pod="      initContainers: [{image: x, args: [a, null]}, null]\n",
    ).replace('"example.com/any-key": "yes"', "nolabel: null"),
    "service": SERVICE.format(extra=""),
    "service-port": SERVICE.format(extra=", nodeport: 30001"),
    "list": (
        "apiVersion: v1\nkind: List\nitems:\n"
        "- {apiVersion: v1, kind: ConfigMap, metadata: {name: a}, bogus: 1}\n"
        "- {apiVersion: v1, kind: ConfigMap, metadata: {name: b}, data: {k: v}}\n"
        "- {apiVersion: v1, kind: Secret, metadata: {name: c}, stringdata: {k: v}}\n"
    ),
    "widget": (
        f"apiVersion: {GROUP}/v1\nkind: Widget\nmetadata: {{name: w}}\n"
        "spec: {size: 3, ratio: 2, tags: [a], labels: {x: y}, free: {a: 1, b: {c: [2]}},\n"
        "       anything: [1, two], iors: 5}\n"
    ),
    "widget-unknown": (
        f"apiVersion: {GROUP}/v1\nkind: Widget\nmetadata: {{name: w}}\n"
        "spec: {sise: 3, tags: [a, {b: 1}]}\nstatus: {x: 1}\n"
    ),
    "gadget-schemaless": (
        f"apiVersion: {GROUP}/v1\nkind: Gadget\nmetadata: {{name: g}}\n"
        "spec: {anything: 1}\nwhatever: [2]\n"
    ),
}

# The cases kubectl accepts; every other case has at least one error.
ACCEPTED = {
    "configmap",
    "deployment",
    "deployment-numbers-pass",
    "service",
    "widget",
    "gadget-schemaless",
}


def kubectl(
    *args: str, stdin: str | None = None, check: bool = True
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [KUBECTL, *args], input=stdin, capture_output=True, text=True, timeout=120, check=check
    )


@pytest.fixture(scope="module")
def crds(stack) -> Iterator[None]:
    """The two CustomResourceDefinitions, served and published in the OpenAPI document."""
    kubectl("apply", "-f", "-", stdin=CRDS)
    try:
        kubectl(
            "wait", "--for=condition=Established", "--timeout=60s",
            f"crd/widgets.{GROUP}", f"crd/gadgets.{GROUP}",
        )  # fmt: skip
        # The API server publishes a new CRD's schema a few seconds after it is served.
        deadline = time.monotonic() + 60
        wanted = {f"{'.'.join(reversed(GROUP.split('.')))}.v1.{k}" for k in ("Widget", "Gadget")}
        while not wanted <= set(_live_openapi()["definitions"]):
            assert time.monotonic() < deadline, "the CRDs never appeared in /openapi/v2"
            time.sleep(1)
        yield
    finally:
        kubectl(
            "delete", "crd", f"widgets.{GROUP}", f"gadgets.{GROUP}", "--wait=false", check=False
        )


def _live_openapi() -> dict[str, Any]:
    return json.loads(kubectl("get", "--raw", "/openapi/v2").stdout)


@pytest.fixture(scope="module")
def openapi(crds: None) -> dict[str, Any]:
    """The live server's OpenAPI v2 document, as the apply step reads it."""
    return _live_openapi()


@pytest.fixture(scope="module")
def fv_namespace(stack, core) -> Iterator[str]:
    """One namespace for the module's client-side dry runs, deleted without waiting."""
    from kubernetes import client

    name = f"fv-{uuid.uuid4().hex[:8]}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    yield name
    core.delete_namespace(name, propagation_policy="Background")


def kubectl_verdict(path: Path, namespace: str, cache: Path) -> tuple[bool, str]:
    """(accepted, kubectl's validation messages as printed) for one file."""
    result = kubectl(
        "apply", "--dry-run=client", "--validate=strict", "-n", namespace,
        "--cache-dir", str(cache), "-f", str(path), check=False,
    )  # fmt: skip
    if result.returncode == 0:
        return True, ""
    refusal = REFUSAL.match(result.stderr.strip())
    assert refusal is not None, f"kubectl failed for another reason:\n{result.stderr}"
    assert refusal["file"] == str(path)
    return False, refusal["errors"]


def shipline_verdict(path: Path, openapi: dict[str, Any]) -> tuple[bool, str]:
    messages = [
        message
        for obj in load_objects([str(path)], {})
        for message in validation_errors(openapi, obj.api_version, obj.kind, obj.body)
    ]
    return not messages, aggregate(messages)


@pytest.mark.parametrize("case", sorted(CASES))
def test_agrees_with_kubectl(
    case: str, openapi: dict[str, Any], fv_namespace: str, tmp_path: Path
) -> None:
    path = tmp_path / f"{case}.yaml"
    path.write_text(CASES[case])
    expected = kubectl_verdict(path, fv_namespace, tmp_path / "kube-cache")
    assert shipline_verdict(path, openapi) == expected
    # The table keeps both sides of the line: no case may pass or fail by accident.
    assert expected[0] == (case in ACCEPTED)


@pytest.mark.parametrize("example", sorted(p.name for p in EXAMPLES.glob("*.yaml")))
def test_the_example_manifests_pass_both(
    example: str, openapi: dict[str, Any], fv_namespace: str, tmp_path: Path
) -> None:
    env = {
        "SHIPLINE_REGISTRY": "127.0.0.1:5000",
        "GRAFANA_REMOTE_WRITE_URL": "http://127.0.0.1:9009/api/prom/push",
        "GRAFANA_USERNAME": "demo",
        "GRAFANA_API_KEY": "key",
    }
    path = tmp_path / example
    path.write_bytes(substitute((EXAMPLES / example).read_bytes(), env))
    assert kubectl_verdict(path, fv_namespace, tmp_path / "kube-cache") == (True, "")
    assert shipline_verdict(path, openapi) == (True, "")


def test_kinds_the_server_does_not_know_are_left_to_the_mapping(
    openapi: dict[str, Any], fv_namespace: str, tmp_path: Path
) -> None:
    """kubectl skips validation of undescribed kinds, then fails on the REST mapping."""
    path = tmp_path / "thing.yaml"
    path.write_text("apiVersion: example.com/v1\nkind: Thing\nmetadata: {name: t}\nbogus: 1\n")
    result = kubectl(
        "apply", "--dry-run=client", "--validate=strict", "-n", fv_namespace,
        "--cache-dir", str(tmp_path / "kube-cache"), "-f", str(path), check=False,
    )  # fmt: skip
    assert result.returncode != 0
    assert "error validating" not in result.stderr
    assert 'no matches for kind "Thing"' in result.stderr
    assert shipline_verdict(path, openapi) == (True, "")
