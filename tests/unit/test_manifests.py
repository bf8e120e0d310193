"""Tables for tasks.manifests (load, validate, order) and the pure parts of apply.

The patch tables mirror cases of kubernetes' strategicpatch tests
(staging/src/k8s.io/apimachinery/pkg/util/strategicpatch/patch_test.go): what kubectl's
CreateThreeWayMergePatch sends for the same original, modified and current objects.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tasks.apply import LAST_APPLIED, last_applied_configuration
from tasks.errors import ManifestError
from tasks.manifests import ManifestObject, apply_order, load_objects
from tasks.strategic_patch import PatchSchema, patch_schema, three_way_patch

DATA = Path(__file__).parent / "testdata" / "manifests"


def load(*names: str, env: dict[str, str] | None = None, **kwargs) -> list[ManifestObject]:
    return load_objects([str(DATA / n) for n in names], env or {}, **kwargs)


def test_documents_are_substituted_and_located():
    objects = load("app.yaml", env={"IMAGE": "registry/app:abc"})
    assert [(o.kind, o.name, o.document, o.line) for o in objects] == [
        ("Deployment", "server", 1, 2),
        ("Service", "server", 3, 24),
    ]
    deployment = objects[0]
    container = deployment.body["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "registry/app:abc"
    assert deployment.api_version == "apps/v1"
    assert deployment.namespace is None
    assert deployment.source == str(DATA / "app.yaml")


def test_timestamps_stay_strings_like_kubectl():
    service = load("app.yaml")[1]
    assert service.body["metadata"]["annotations"]["created"] == "2024-01-02"


def test_unset_variable_is_empty_by_default_and_an_error_when_strict():
    assert load("app.yaml")[0].body["spec"]["template"]["spec"]["containers"][0]["image"] is None
    with pytest.raises(ManifestError) as caught:
        load("app.yaml", strict=True)
    assert "app.yaml:20" in str(caught.value)
    assert "IMAGE" in str(caught.value)


def test_allowlist_keeps_other_references_verbatim():
    objects = load("app.yaml", env={"IMAGE": "x:1"}, only=frozenset({"OTHER"}))
    assert objects[0].body["spec"]["template"]["spec"]["containers"][0]["image"] == "${IMAGE}"


def test_list_is_expanded_with_item_lines():
    objects = load("list.yaml")
    assert [(o.name, o.document, o.line) for o in objects] == [("first", 1, 4), ("second", 1, 8)]
    assert objects[1].body["data"]["ratio"] == 1  # YAML -> JSON -> int, as the API decodes it


def test_empty_documents_and_files_are_skipped():
    assert load("empty.yaml") == []


def test_all_errors_of_all_files_are_reported_together():
    with pytest.raises(ManifestError) as caught:
        load("missing-name.yaml", "bad-list-item.yaml", "broken-yaml.yaml", "not-a-mapping.yaml")
    message = str(caught.value)
    assert "4 problems" in message and "nothing was applied" in message
    assert f"{DATA / 'missing-name.yaml'}:6 (document 2): missing metadata.name" in message
    assert (
        f"{DATA / 'bad-list-item.yaml'}:8 (document 1, List item 2): missing apiVersion" in message
    )
    assert f"{DATA / 'broken-yaml.yaml'}:7: invalid YAML" in message
    assert f"{DATA / 'not-a-mapping.yaml'}:1 (document 1): the document is not a mapping" in message


def test_unreadable_file_is_named():
    with pytest.raises(ManifestError, match=r"nope\.yaml: cannot read"):
        load_objects([str(DATA / "nope.yaml")], {})


def test_apply_order_puts_namespaces_and_crds_first_keeping_file_order():
    objects = load("namespace-last.yaml", "list.yaml")
    ordered = [(o.kind, o.name) for o in apply_order(objects)]
    assert ordered == [
        ("CustomResourceDefinition", "widgets.example.com"),
        ("Namespace", "team"),
        ("ConfigMap", "settings"),
        ("ConfigMap", "first"),
        ("ConfigMap", "second"),
    ]


def test_last_applied_is_encoded_as_kubectl_encodes_it():
    body = {
        "kind": "ConfigMap",
        "apiVersion": "v1",
        "metadata": {"name": "c", "namespace": "n"},
        "data": {"html": "<a&b>", "ü": "1"},
    }
    assert last_applied_configuration(body) == (
        '{"apiVersion":"v1","data":{"html":"\\u003ca\\u0026b\\u003e","ü":"1"},'
        '"kind":"ConfigMap","metadata":{"annotations":{},"name":"c","namespace":"n"}}\n'
    )
    annotated = {**body, "metadata": {"name": "c", "annotations": {LAST_APPLIED: "x", "k": "v"}}}
    assert json.loads(last_applied_configuration(annotated))["metadata"]["annotations"] == {
        "k": "v"
    }


# A tiny OpenAPI v2 document with the patch metadata kubectl reads for these fields.
OPENAPI = {
    "paths": {
        "/apis/apps/v1/namespaces/{namespace}/deployments/{name}": {
            "patch": {
                "consumes": [
                    "application/json-patch+json",
                    "application/merge-patch+json",
                    "application/strategic-merge-patch+json",
                ],
                "x-kubernetes-group-version-kind": {
                    "group": "apps",
                    "version": "v1",
                    "kind": "Deployment",
                },
            }
        },
        "/apis/example.com/v1/namespaces/{namespace}/widgets/{name}": {
            "patch": {
                "consumes": ["application/json-patch+json", "application/merge-patch+json"],
                "x-kubernetes-group-version-kind": {
                    "group": "example.com",
                    "version": "v1",
                    "kind": "Widget",
                },
            }
        },
    },
    "definitions": {
        "Deployment": {
            "properties": {
                "metadata": {"$ref": "#/definitions/ObjectMeta"},
                "spec": {"$ref": "#/definitions/DeploymentSpec"},
            },
            "x-kubernetes-group-version-kind": [
                {"group": "apps", "version": "v1", "kind": "Deployment"}
            ],
        },
        "ObjectMeta": {
            "properties": {
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                "finalizers": {
                    "type": "array",
                    "items": {"type": "string"},
                    "x-kubernetes-patch-strategy": "merge",
                },
            }
        },
        "DeploymentSpec": {
            "properties": {
                "strategy": {
                    "$ref": "#/definitions/Strategy",
                    "x-kubernetes-patch-strategy": "retainKeys",
                },
                "template": {"$ref": "#/definitions/PodTemplateSpec"},
            }
        },
        "Strategy": {"properties": {"type": {"type": "string"}, "rollingUpdate": {}}},
        "PodTemplateSpec": {"properties": {"spec": {"$ref": "#/definitions/PodSpec"}}},
        "PodSpec": {
            "properties": {
                "containers": {
                    "type": "array",
                    "items": {"$ref": "#/definitions/Container"},
                    "x-kubernetes-patch-merge-key": "name",
                    "x-kubernetes-patch-strategy": "merge",
                },
            }
        },
        "Container": {
            "properties": {
                "args": {"type": "array", "items": {"type": "string"}},
                "env": {
                    "type": "array",
                    "items": {"$ref": "#/definitions/EnvVar"},
                    "x-kubernetes-patch-merge-key": "name",
                    "x-kubernetes-patch-strategy": "merge",
                },
            }
        },
        "EnvVar": {"properties": {"name": {"type": "string"}, "value": {"type": "string"}}},
    },
}


@pytest.fixture
def schema() -> PatchSchema:
    found = patch_schema(OPENAPI, "apps", "v1", "Deployment")
    assert found is not None
    return found


def test_custom_resources_get_a_json_merge_patch():
    assert patch_schema(OPENAPI, "example.com", "v1", "Widget") is None


def containers(*items: dict) -> dict:
    return {"spec": {"template": {"spec": {"containers": list(items)}}}}


PATCH_CASES = [
    pytest.param(
        {"metadata": {"labels": {"a": "1"}}},
        {"metadata": {"labels": {"a": "1"}}},
        {"metadata": {"labels": {"a": "1", "server": "x"}}, "status": {"replicas": 1}},
        {},
        id="unchanged-with-server-fields",
    ),
    pytest.param(
        {"metadata": {"labels": {"a": "1", "b": "2"}}},
        {"metadata": {"labels": {"a": "1"}}},
        {"metadata": {"labels": {"a": "1", "b": "2", "c": "3"}}},
        {"metadata": {"labels": {"b": None}}},
        id="removed-field-deleted-foreign-field-kept",
    ),
    pytest.param(
        None,
        {"metadata": {"labels": {"a": "2"}}},
        {"metadata": {"labels": {"a": "1", "c": "3"}}},
        {"metadata": {"labels": {"a": "2"}}},
        id="no-annotation-deletes-nothing",
    ),
    pytest.param(
        containers({"name": "a", "image": "i:1"}),
        containers({"name": "a", "image": "i:2"}),
        containers({"name": "a", "image": "i:1", "imagePullPolicy": "IfNotPresent"}),
        {
            "spec": {
                "template": {
                    "spec": {
                        "$setElementOrder/containers": [{"name": "a"}],
                        "containers": [{"name": "a", "image": "i:2"}],
                    }
                }
            }
        },
        id="merge-list-changes-one-entry",
    ),
    pytest.param(
        containers({"name": "a", "image": "i"}, {"name": "b", "image": "i"}),
        containers({"name": "b", "image": "i"}),
        containers({"name": "a", "image": "i"}, {"name": "b", "image": "i"}),
        {
            "spec": {
                "template": {
                    "spec": {
                        "$setElementOrder/containers": [{"name": "b"}],
                        "containers": [{"$patch": "delete", "name": "a"}],
                    }
                }
            }
        },
        id="merge-list-removed-entry",
    ),
    pytest.param(
        containers({"name": "a", "args": ["x", "y"]}),
        containers({"name": "a", "args": ["y"]}),
        containers({"name": "a", "args": ["x", "y"]}),
        {
            "spec": {
                "template": {
                    "spec": {
                        "$setElementOrder/containers": [{"name": "a"}],
                        "containers": [{"name": "a", "args": ["y"]}],
                    }
                }
            }
        },
        id="atomic-list-replaced",
    ),
    pytest.param(
        {"metadata": {"finalizers": ["x", "y"]}},
        {"metadata": {"finalizers": ["y"]}},
        {"metadata": {"finalizers": ["x", "y", "z"]}},
        {
            "metadata": {
                "$deleteFromPrimitiveList/finalizers": ["x"],
                "$setElementOrder/finalizers": ["y"],
            }
        },
        id="primitive-merge-list-deletion",
    ),
    pytest.param(
        {"spec": {"strategy": {"type": "RollingUpdate"}}},
        {"spec": {"strategy": {"type": "Recreate"}}},
        {"spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}}},
        {"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}},
        id="retain-keys-clears-the-union",
    ),
]


@pytest.mark.parametrize(("original", "modified", "current", "expected"), PATCH_CASES)
def test_three_way_patch(schema, original, modified, current, expected):
    assert three_way_patch(original, modified, current, schema) == expected


def test_three_way_json_merge_patch_replaces_lists():
    original = {"spec": {"items": [{"name": "a"}, {"name": "b"}]}, "x": 1}
    modified = {"spec": {"items": [{"name": "b"}]}}
    current = {"spec": {"items": [{"name": "a"}, {"name": "b"}]}, "x": 1, "y": 2}
    assert three_way_patch(original, modified, current, None) == {
        "spec": {"items": [{"name": "b"}]},
        "x": None,
    }


CONFIGMAP = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ok\n"


def load_text(tmp_path: Path, text: str) -> list[ManifestObject]:
    path = tmp_path / "m.yaml"
    path.write_text(text)
    return load_objects([str(path)], {})


@pytest.mark.parametrize(
    ("metadata", "message"),
    [
        # Was "missing metadata.name"; kubectl: "json: cannot unmarshal number into Go struct
        # field ObjectMeta.metadata.name of type string".
        (
            "  name: 123\n",
            r"metadata\.name must be a string, found a number \(123\); quote it: "
            r'name: "123"',
        ),
        ("  name: true\n", r"metadata\.name must be a string, found a boolean \(true\)"),
        ("  name: [a]\n", r"metadata\.name must be a string, found a list; write one string"),
        ("  name: x\n  namespace: 5\n", r"metadata\.namespace must be a string, found a number"),
    ],
)
def test_metadata_fields_must_be_strings(metadata: str, message: str, tmp_path: Path):
    text = f"{CONFIGMAP}---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n{metadata}"
    with pytest.raises(ManifestError, match=r"m\.yaml:6 \(document 2\): " + message):
        load_text(tmp_path, text)


def test_type_problems_are_not_reported_as_missing(tmp_path: Path):
    with pytest.raises(ManifestError) as caught:
        load_text(tmp_path, "apiVersion: 1\nkind: ConfigMap\nmetadata: hello\n")
    message = str(caught.value)
    assert "m.yaml:1 (document 1): metadata must be a mapping with a name, found a string" in (
        message
    )
    with pytest.raises(ManifestError) as caught:
        load_text(tmp_path, "apiVersion: 1\nkind: 5\nmetadata:\n  name: x\n")
    message = str(caught.value)
    assert 'apiVersion must be a string, found a number (1); quote it: apiVersion: "1"' in message
    assert "kind must be a string, found a number (5)" in message
    assert "missing" not in message


def test_repeated_key_keeps_the_last_value_as_kubectl_does(tmp_path: Path):
    # kubectl 1.32 `apply --dry-run=client` (and server-side, on 1.20) accepts a repeated
    # key and keeps the last value: `configmap/second created (dry run)`.
    objects = load_text(
        tmp_path,
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: first\n  name: second\n"
        "data:\n  a: '1'\n  a: '2'\n",
    )
    assert objects[0].name == "second"
    assert objects[0].body["data"] == {"a": "2"}


def _bomb(levels: int) -> str:
    lines = ["  l0: &l0 [x, x, x, x, x, x, x, x, x]"]
    for level in range(1, levels + 1):
        aliases = ", ".join([f"*l{level - 1}"] * 9)
        lines.append(f"  l{level}: &l{level} [{aliases}]")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize(
    ("second", "message"),
    [
        # A RecursionError before; kubectl reads up to go-yaml's 10,000 levels.
        (
            "data:\n  a: " + "[" * 5000 + "]" * 5000 + "\n",
            r"m\.yaml:11 \(document 2\): YAML nested more than 200 levels deep",
        ),
        # Ate all memory before; kubectl: "yaml: document contains excessive aliasing".
        (
            "data:\n" + _bomb(9),
            r"m\.yaml:1[1-9] \(document 2\): excessive aliasing: up to the alias \*l\d here, "
            r'.*"document contains excessive aliasing"',
        ),
        # kubectl: "yaml: anchor 'a' value contains itself".
        (
            "data:\n  a: &a [x, *a]\n",
            r"m\.yaml:11 \(document 2\): the alias \*a is inside the value of its own anchor "
            r"&a \(line 11\)",
        ),
    ],
    ids=["deep", "alias-bomb", "alias-in-itself"],
)
def test_yaml_limits_name_file_line_and_document(second: str, message: str, tmp_path: Path):
    text = f"{CONFIGMAP}---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: b\n{second}"
    with pytest.raises(ManifestError, match=message):
        load_text(tmp_path, text)


def test_nesting_up_to_the_limit_is_read(tmp_path: Path):
    # 200 collections: the document, spec and 198 lists.
    text = CONFIGMAP + "spec: " + "[" * 198 + "]" * 198 + "\n"
    assert [o.name for o in load_text(tmp_path, text)] == ["ok"]


def test_a_control_character_is_one_problem_named_by_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text('apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\ndata: {v: "\x1bx"}\n')
    with pytest.raises(ManifestError) as caught:
        load_objects([str(path)], {})
    message = str(caught.value)
    assert message.startswith("the manifests have 1 problem;")
    assert f"{path}:4 (document 1): the control character U+001B at column 12" in message
