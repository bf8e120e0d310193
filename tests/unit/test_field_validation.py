"""kubectl's client-side schema validation, on an excerpt of a real OpenAPI v2 document.

testdata/openapi/kubernetes-1.20-excerpt.json is the local stack's ``GET /openapi/v2``
cut down to what Deployment, Service, ConfigMap and two custom kinds reference. Every
expected message below is what ``kubectl apply --dry-run=client --validate=strict``
(1.32) printed for the same object against that server; the differential test in
tests/integration/test_field_validation_kubectl.py keeps checking that on the live stack.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from tasks.field_validation import aggregate, validation_errors

OPENAPI = json.loads(
    (Path(__file__).parent / "testdata" / "openapi" / "kubernetes-1.20-excerpt.json").read_text()
)

DEPLOYMENT: dict[str, Any] = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "server", "labels": {"app": "server"}},
    "spec": {
        "replicas": 2,
        "selector": {"matchLabels": {"app": "server"}},
        "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%"}},
        "template": {
            "metadata": {"labels": {"app": "server"}, "annotations": {"a/b": "c"}},
            "spec": {
                "terminationGracePeriodSeconds": 1,
                "containers": [
                    {
                        "name": "server",
                        "image": "registry/server:1",
                        "imagePullPolicy": "IfNotPresent",
                        "command": ["sleep", "3600"],
                        "ports": [{"containerPort": 8080, "name": "http"}],
                        "env": [
                            {"name": "MODE", "value": "fast"},
                            {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "x"}}},
                        ],
                        "resources": {"limits": {"cpu": "100m", "memory": 64}},
                    }
                ],
                "volumes": [{"name": "cfg", "configMap": {"name": "settings"}}],
                "nodeSelector": {"kubernetes.io/os": "linux"},
            },
        },
    },
}
SERVICE: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "Service",
    "metadata": {"name": "web"},
    "spec": {
        "type": "ClusterIP",
        "selector": {"app": "server"},
        "ports": [{"port": 80, "targetPort": "http", "protocol": "TCP"}],
    },
}
CONFIGMAP: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "ConfigMap",
    "metadata": {"name": "settings", "annotations": {"note": "x"}},
    "data": {"mode": "fast", "count": "3"},
    "binaryData": {"blob": "AAEC"},
    "immutable": False,
}
WIDGET: dict[str, Any] = {
    "apiVersion": "fvprobe.shipline.test/v1",
    "kind": "Widget",
    "metadata": {"name": "w"},
    "spec": {"size": 3, "tags": ["a"], "labels": {"x": "y"}},
}


def errors(body: dict[str, Any]) -> list[str]:
    return validation_errors(OPENAPI, body["apiVersion"], body["kind"], body)


def changed(body: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A copy of ``body`` with ``value`` set at a dotted path (``a.b.0.c``)."""
    result = copy.deepcopy(body)
    *parents, last = path.split(".")
    node: Any = result
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return result


POD_SPEC = "spec.template.spec"
CONTAINER = f"{POD_SPEC}.containers.0"
CONTAINER_PATH = "Deployment.spec.template.spec.containers[0]"


@pytest.mark.parametrize("body", [DEPLOYMENT, SERVICE, CONFIGMAP, WIDGET], ids=lambda b: b["kind"])
def test_known_good_objects_pass(body: dict[str, Any]) -> None:
    assert errors(body) == []


CASES = [
    pytest.param(
        changed(CONFIGMAP, "bogus", 1),
        ['ValidationError(ConfigMap): unknown field "bogus" in io.k8s.api.core.v1.ConfigMap'],
        id="top-level",
    ),
    pytest.param(
        changed(DEPLOYMENT, f"{CONTAINER}.imagePullPolcy", "Always"),
        [
            f"ValidationError({CONTAINER_PATH}): unknown field "
            '"imagePullPolcy" in io.k8s.api.core.v1.Container'
        ],
        id="in-a-container",
    ),
    pytest.param(
        changed(DEPLOYMENT, "spec.replica", 3),
        [
            'ValidationError(Deployment.spec): unknown field "replica" in '
            "io.k8s.api.apps.v1.DeploymentSpec"
        ],
        id="in-spec",
    ),
    pytest.param(
        changed(SERVICE, "spec.ports", [{"port": 80}, {"port": 81, "nodeport": 3}]),
        [
            'ValidationError(Service.spec.ports[1]): unknown field "nodeport" in '
            "io.k8s.api.core.v1.ServicePort"
        ],
        id="list-item",
    ),
    pytest.param(
        changed(DEPLOYMENT, f"{CONTAINER}.env.1.valueFrom.fieldRef.what", 1),
        [
            f"ValidationError({CONTAINER_PATH}.env[1].valueFrom.fieldRef): unknown field "
            '"what" in io.k8s.api.core.v1.ObjectFieldSelector'
        ],
        id="deep-in-a-list-item",
    ),
    pytest.param(
        changed(CONFIGMAP, "metadata.bogusMeta", "x"),
        [
            'ValidationError(ConfigMap.metadata): unknown field "bogusMeta" in '
            "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
        ],
        id="in-metadata",
    ),
    pytest.param(
        changed(WIDGET, "spec.sise", 3),
        [
            'ValidationError(Widget.spec): unknown field "sise" in '
            "test.shipline.fvprobe.v1.Widget.spec"
        ],
        id="custom-kind-inline-schema",
    ),
]


@pytest.mark.parametrize(("body", "expected"), CASES)
def test_unknown_fields_in_kubectl_words(body: dict[str, Any], expected: list[str]) -> None:
    assert errors(body) == expected


@pytest.mark.parametrize(
    "body",
    [
        changed(DEPLOYMENT, "metadata.labels", {"any-key": "v", "example.com/x": "y", "": "z"}),
        changed(DEPLOYMENT, f"{POD_SPEC}.nodeSelector", {"whatever/you.like": "v"}),
        changed(CONFIGMAP, "data", {"ANY_KEY.txt": "1", "n": 2, "b": True}),
        changed(WIDGET, "spec.labels", {"free": "form"}),
    ],
    ids=["labels", "nodeSelector", "configmap-data", "custom-map"],
)
def test_maps_accept_any_key(body: dict[str, Any]) -> None:
    assert errors(body) == []


def test_preserved_and_schemaless_parts_accept_anything() -> None:
    widget = changed(WIDGET, "spec.free", {"a": 1, "b": {"c": [1, {"d": None}]}})
    widget = changed(widget, "spec.anything", [1, "two"])
    widget = changed(widget, "spec.iors", 5)
    widget = changed(widget, "spec.emb", {"apiVersion": "v1", "kind": "ConfigMap", "zzz": 1})
    assert errors(widget) == []
    gadget = {"apiVersion": "fvprobe.shipline.test/v1", "kind": "Gadget", "metadata": {}}
    assert errors({**gadget, "spec": {"anything": 1}, "whatever": [2]}) == []


@pytest.mark.parametrize(
    ("api_version", "kind"),
    [
        ("example.com/v1", "Thing"),  # a custom resource the document does not describe
        ("apps/v1beta9", "Deployment"),
        ("v1", "Deployment"),
        ("apps/v1/extra", "Deployment"),  # not a group/version kubectl can parse
        ("apps/v1", ""),
    ],
)
def test_kinds_the_document_does_not_describe_are_not_checked(api_version: str, kind: str) -> None:
    body = {"apiVersion": api_version, "kind": kind, "metadata": {"name": "x"}, "bogus": 1}
    assert validation_errors(OPENAPI, api_version, kind, body) == []


TYPE_CASES = [
    pytest.param(
        changed(DEPLOYMENT, "spec.replicas", "abc"),
        [
            "ValidationError(Deployment.spec.replicas): invalid type for "
            'io.k8s.api.apps.v1.DeploymentSpec.replicas: got "string", expected "integer"'
        ],
        id="string-for-integer",
    ),
    pytest.param(
        changed(DEPLOYMENT, "spec.paused", 1),
        [
            "ValidationError(Deployment.spec.paused): invalid type for "
            'io.k8s.api.apps.v1.DeploymentSpec.paused: got "integer", expected "boolean"'
        ],
        id="integer-for-boolean",
    ),
    pytest.param(
        changed(CONFIGMAP, "immutable", 1.5),
        [
            "ValidationError(ConfigMap.immutable): invalid type for "
            'io.k8s.api.core.v1.ConfigMap.immutable: got "number", expected "boolean"'
        ],
        id="number-for-boolean",
    ),
    pytest.param(
        changed(DEPLOYMENT, f"{CONTAINER}.args", "x"),
        [
            f"ValidationError({CONTAINER_PATH}.args): invalid type for "
            'io.k8s.api.core.v1.Container.args: got "string", expected "array"'
        ],
        id="string-for-array",
    ),
    pytest.param(
        changed(DEPLOYMENT, f"{CONTAINER}.args", ["a", {"x": 1}, [2]]),
        [
            f"ValidationError({CONTAINER_PATH}.args[1]): invalid type for "
            'io.k8s.api.core.v1.Container.args: got "map", expected "string"',
            f"ValidationError({CONTAINER_PATH}.args[2]): invalid type for "
            'io.k8s.api.core.v1.Container.args: got "array", expected "string"',
        ],
        id="wrong-array-items",
    ),
    pytest.param(
        changed(DEPLOYMENT, "metadata.labels", ["a"]),
        [
            "ValidationError(Deployment.metadata.labels): invalid type for "
            'io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta.labels: got "array", expected "map"'
        ],
        id="array-for-map",
    ),
    pytest.param(
        changed(DEPLOYMENT, f"{POD_SPEC}.securityContext", 5),
        [
            "ValidationError(Deployment.spec.template.spec.securityContext): invalid type for "
            'io.k8s.api.core.v1.PodSecurityContext: got "integer", expected "map"'
        ],
        id="integer-for-object",
    ),
    pytest.param(
        changed(DEPLOYMENT, f"{CONTAINER}.ports", {"a": 1}),
        [
            f"ValidationError({CONTAINER_PATH}.ports): invalid type for "
            'io.k8s.api.core.v1.Container.ports: got "map", expected "array"'
        ],
        id="map-for-array",
    ),
    pytest.param(
        changed(DEPLOYMENT, f"{CONTAINER}.resources.limits.cpu", [1]),
        [
            f"ValidationError({CONTAINER_PATH}.resources.limits.cpu): invalid type for "
            'io.k8s.apimachinery.pkg.api.resource.Quantity: got "array", expected "string"'
        ],
        id="array-for-referenced-primitive",
    ),
    pytest.param(
        changed(DEPLOYMENT, f"{POD_SPEC}.nodeSelector", {"a": {"b": 1}}),
        [
            "ValidationError(Deployment.spec.template.spec.nodeSelector.a): invalid type for "
            'io.k8s.api.core.v1.PodSpec.nodeSelector: got "map", expected "string"'
        ],
        id="map-value",
    ),
]


@pytest.mark.parametrize(("body", "expected"), TYPE_CASES)
def test_type_mismatches_in_kubectl_words(body: dict[str, Any], expected: list[str]) -> None:
    assert errors(body) == expected


@pytest.mark.parametrize(
    "body",
    [
        changed(DEPLOYMENT, "spec.replicas", 1.5),  # numbers pass for integers...
        changed(WIDGET, "spec.ratio", 2),  # ...and integers for numbers
        changed(DEPLOYMENT, f"{CONTAINER}.image", 5),  # any scalar passes for a string
        changed(SERVICE, "spec.ports.0.targetPort", 8080),  # IntOrString is a string
        changed(DEPLOYMENT, "spec.paused", True),
    ],
    ids=["number-integer", "integer-number", "scalar-string", "int-or-string", "boolean"],
)
def test_scalars_kubectl_lets_pass(body: dict[str, Any]) -> None:
    assert errors(body) == []


def test_required_fields_and_nulls() -> None:
    body = changed(
        DEPLOYMENT, f"{POD_SPEC}.containers", [{"image": "x", "args": ["a", None]}, None]
    )
    body = changed(body, "metadata.labels", {"a": None})
    body = changed(body, "spec.bogusNull", None)  # null fields are skipped, known or not
    body = changed(body, "spec.replicas", None)
    assert errors(body) == [
        'unknown object type "nil" in Deployment.metadata.labels.a',
        f"ValidationError({CONTAINER_PATH}.args): unknown object type "
        f'"nil" in {CONTAINER_PATH}.args[1]',
        f'ValidationError({CONTAINER_PATH}): missing required field "name" in '
        "io.k8s.api.core.v1.Container",
        "ValidationError(Deployment.spec.template.spec.containers): unknown object type "
        '"nil" in Deployment.spec.template.spec.containers[1]',
    ]


def test_messages_come_in_sorted_key_order_depth_first() -> None:
    body = changed(DEPLOYMENT, "zzz", 1)
    body = changed(body, "spec.replica", 2)
    body = changed(body, "spec.paused", "yes")
    body = changed(body, f"{CONTAINER}.imagePullPolcy", "Always")
    body = changed(body, f"{POD_SPEC}.aaa", 1)
    body = changed(body, "metadata.bogusMeta", 1)
    body = changed(body, "spec.selector", {"matchLabels": {"app": "server"}, "x": 1})
    assert errors(body) == [
        'ValidationError(Deployment.metadata): unknown field "bogusMeta" in '
        "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta",
        "ValidationError(Deployment.spec.paused): invalid type for "
        'io.k8s.api.apps.v1.DeploymentSpec.paused: got "string", expected "boolean"',
        'ValidationError(Deployment.spec): unknown field "replica" in '
        "io.k8s.api.apps.v1.DeploymentSpec",
        'ValidationError(Deployment.spec.selector): unknown field "x" in '
        "io.k8s.apimachinery.pkg.apis.meta.v1.LabelSelector",
        'ValidationError(Deployment.spec.template.spec): unknown field "aaa" in '
        "io.k8s.api.core.v1.PodSpec",
        f'ValidationError({CONTAINER_PATH}): unknown field "imagePullPolcy" in '
        "io.k8s.api.core.v1.Container",
        'ValidationError(Deployment): unknown field "zzz" in io.k8s.api.apps.v1.Deployment',
    ]


def test_the_body_is_not_changed() -> None:
    body = changed(DEPLOYMENT, "spec.replica", 2)
    before = copy.deepcopy(body)
    errors(body)
    assert body == before


SYNTHETIC = {
    "definitions": {
        "a.Thing": {
            "type": "object",
            "properties": {
                "kind": {"type": "string"},
                "open": {
                    "type": "object",
                    "x-kubernetes-preserve-unknown-fields": True,
                    "properties": {"a": {"type": "string"}},
                },
                "loose": {"type": "object"},
                "strict": {"$ref": "#/definitions/a.Strict"},
            },
            "x-kubernetes-group-version-kind": [{"group": "x", "version": "v1", "kind": "Thing"}],
        },
        "a.Strict": {"type": "object", "properties": {"ok": {"type": "boolean"}}},
        # Two definitions claiming one kind: kubectl keeps the last in sorted order.
        "z.Thing": {
            "type": "object",
            "properties": {"kind": {"type": "string"}, "zonly": {"type": "string"}},
            "x-kubernetes-group-version-kind": [{"group": "x", "version": "v2", "kind": "Thing"}],
        },
        "y.Thing": {
            "type": "object",
            "properties": {"kind": {"type": "string"}, "yonly": {"type": "string"}},
            "x-kubernetes-group-version-kind": [{"group": "x", "version": "v2", "kind": "Thing"}],
        },
    }
}


def test_preserve_unknown_fields_and_untyped_objects_accept_anything() -> None:
    body = {"kind": "Thing", "open": {"b": {"c": 1}}, "loose": {"any": [1]}, "strict": {"ok": 1}}
    assert validation_errors(SYNTHETIC, "x/v1", "Thing", body) == [
        'ValidationError(Thing.strict.ok): invalid type for a.Strict.ok: got "integer", '
        'expected "boolean"'
    ]


def test_duplicate_kinds_use_the_last_definition_in_sorted_order() -> None:
    body = {"kind": "Thing", "yonly": "a", "zonly": "b"}
    assert validation_errors(SYNTHETIC, "x/v2", "Thing", body) == [
        'ValidationError(Thing): unknown field "yonly" in z.Thing'
    ]


@pytest.mark.parametrize(
    ("messages", "text"),
    [
        ([], ""),
        (["a"], "a"),
        (["a", "b"], "[a, b]"),
        (["a", "b", "a"], "[a, b]"),
        (["a", "a"], "a"),
    ],
)
def test_aggregate_prints_like_kubectl(messages: list[str], text: str) -> None:
    assert aggregate(messages) == text
