"""kubectl's client-side schema validation (``--validate=strict``), pure.

kubectl 1.32 refuses a manifest with unknown fields or wrongly typed values before it
sends anything. Against a server without server-side field validation (Kubernetes 1.20)
it checks each object against the server's OpenAPI v2 document itself: a port of
https://github.com/kubernetes/kube-openapi/blob/master/pkg/util/proto/validation/types.go
(the walk and its messages) over the schema model of
https://github.com/kubernetes/kube-openapi/blob/master/pkg/util/proto/document.go (how a
definition becomes an object with fields, a map, an array, a primitive or "anything"),
as called by ``ValidateBytes`` in
https://github.com/kubernetes/kubectl/blob/release-1.32/pkg/validation/schema.go.

What it reports, in kubectl's words, keys visited in sorted order, depth first::

    ValidationError(Deployment.spec.template.spec.containers[0]): unknown field
        "imagePullPolcy" in io.k8s.api.core.v1.Container
    ValidationError(Deployment.spec.replicas): invalid type for
        io.k8s.api.apps.v1.DeploymentSpec.replicas: got "string", expected "integer"
    ValidationError(Deployment.spec.template.spec.containers[0]): missing required field
        "name" in io.k8s.api.core.v1.Container
    ValidationError(Deployment.spec.template.spec.containers): unknown object type "nil"
        in Deployment.spec.template.spec.containers[1]
    unknown object type "nil" in ConfigMap.data.a

Kinds the document does not describe are not checked (kubectl skips them too).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["aggregate", "validation_errors"]

_REF_PREFIX = "#/definitions/"
_GVK = "x-kubernetes-group-version-kind"
# Published CRD schemas drop properties and type under this extension, so kubectl sees
# "anything" there; honouring it keeps documents of other origins the same.
_PRESERVE = "x-kubernetes-preserve-unknown-fields"

# The schema shapes of kube-openapi's proto package.
_KIND = "kind"  # an object with known fields
_MAP = "map"  # an object with any keys, each value of one schema
_ARRAY = "array"
_PRIMITIVE = "primitive"
_ARBITRARY = "arbitrary"  # anything goes


class _Walk:
    """One validation of one object against the document's definitions."""

    def __init__(self, definitions: Mapping[str, Any]) -> None:
        self._definitions = definitions
        self.errors: list[str] = []

    def _error(self, item_path: str, message: str) -> None:
        self.errors.append(f"ValidationError({item_path}): {message}")

    def _resolve(self, schema: Any, schema_path: str) -> tuple[Mapping[str, Any], str]:
        """Follow ``$ref``s: a referenced definition's path is its own name."""
        seen: set[str] = set()
        while isinstance(schema, Mapping) and isinstance(schema.get("$ref"), str):
            ref = schema["$ref"]
            name = ref.removeprefix(_REF_PREFIX)
            if not ref.startswith(_REF_PREFIX) or name in seen:
                return {}, schema_path
            seen.add(name)
            schema, schema_path = self._definitions.get(name, {}), name
        return (schema if isinstance(schema, Mapping) else {}), schema_path

    @staticmethod
    def _shape(schema: Mapping[str, Any]) -> tuple[str, str]:
        """(shape, primitive type) as kube-openapi's ParseSchema classifies the schema."""
        if schema.get(_PRESERVE) is True:
            return _ARBITRARY, ""
        types = schema.get("type")
        types = [types] if isinstance(types, str) else list(types or [])
        if not types:
            return (_KIND if "properties" in schema else _ARBITRARY), ""
        if len(types) > 1:
            return _ARBITRARY, ""  # kubectl cannot parse such a document at all
        kind = types[0]
        if kind == "object":
            return (_KIND if "properties" in schema else _MAP), ""
        if kind == "array":
            return (_ARRAY if isinstance(schema.get("items"), Mapping) else _ARBITRARY), ""
        return _PRIMITIVE, kind

    def visit(self, value: Any, item_path: str, schema: Any, schema_path: str) -> None:
        """Check ``value`` (never None) at ``item_path`` against ``schema``."""
        schema, schema_path = self._resolve(schema, schema_path)
        shape, primitive = self._shape(schema)
        if shape == _ARBITRARY:
            return
        got = _item_kind(value)
        if shape == _PRIMITIVE:
            if got in ("map", "array") or not _primitive_accepts(primitive, got):
                self._invalid_type(item_path, schema_path, got, primitive)
        elif shape == _ARRAY:
            if got != "array":
                self._invalid_type(item_path, schema_path, got, "array")
                return
            for index, element in enumerate(value):
                path = f"{item_path}[{index}]"
                if element is None:
                    self._error(item_path, f'unknown object type "nil" in {path}')
                    continue
                self.visit(element, path, schema["items"], schema_path)
        elif got != "map":
            self._invalid_type(item_path, schema_path, got, "map")
        elif shape == _MAP:
            extra = schema.get("additionalProperties")
            for key in sorted(value):
                path = f"{item_path}.{key}"
                if value[key] is None:
                    # kube-openapi adds this one unwrapped (itemFactory's error).
                    self.errors.append(f'unknown object type "nil" in {path}')
                elif isinstance(extra, Mapping):
                    self.visit(value[key], path, extra, schema_path)
        else:
            self._visit_kind(value, item_path, schema, schema_path)

    def _visit_kind(
        self, value: Mapping[str, Any], item_path: str, schema: Mapping[str, Any], schema_path: str
    ) -> None:
        fields = schema.get("properties") or {}
        for key in sorted(value):
            if value[key] is None:
                continue  # kubectl skips null fields: the server drops them too
            if key not in fields:
                self._error(item_path, f'unknown field "{key}" in {schema_path}')
                continue
            self.visit(value[key], f"{item_path}.{key}", fields[key], f"{schema_path}.{key}")
        for required in schema.get("required") or []:
            if value.get(required) is None:
                self._error(item_path, f'missing required field "{required}" in {schema_path}')

    def _invalid_type(self, item_path: str, schema_path: str, got: str, expected: str) -> None:
        self._error(
            item_path, f'invalid type for {schema_path}: got "{got}", expected "{expected}"'
        )


def _item_kind(value: Any) -> str:
    """The JSON type of a value, in kube-openapi's words."""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, Mapping):
        return "map"
    if isinstance(value, list | tuple):
        return "array"
    return type(value).__name__


def _primitive_accepts(expected: str, got: str) -> bool:
    # Any scalar passes as a string and numbers pass as either number type (kubectl 1.32
    # accepts `replicas: 1.5` and `maximum: 5`); booleans must be booleans.
    if expected == "string":
        return True
    if expected in ("integer", "number"):
        return got in ("integer", "number")
    return expected == got


def _split_api_version(api_version: str) -> tuple[str, str] | None:
    """(group, version) as apimachinery's ParseGroupVersion reads it; None if malformed."""
    if not api_version:
        return "", ""
    parts = api_version.split("/")
    if len(parts) == 1:
        return "", parts[0]
    if len(parts) == 2:
        return parts[0], parts[1]
    return None


def _definition_for(
    definitions: Mapping[str, Any], group: str, version: str, kind: str
) -> str | None:
    """The name of the definition kubectl validates ``kind`` against, if any."""
    wanted = {"group": group, "version": version, "kind": kind}
    found = None
    # kubectl indexes the models in sorted order, so the last of duplicates wins.
    for name in sorted(definitions):
        gvks = definitions[name].get(_GVK) if isinstance(definitions[name], Mapping) else None
        if isinstance(gvks, list) and wanted in gvks:
            found = name
    return found


def validation_errors(
    openapi: Mapping[str, Any], api_version: str, kind: str, body: Mapping[str, Any]
) -> list[str]:
    """The errors ``kubectl apply --validate=strict`` finds in one object, in its words.

    ``openapi`` is the cluster's OpenAPI v2 document (``GET /openapi/v2``), ``body`` the
    object as its manifest gives it (JSON-shaped, as `tasks.manifests` loads it). An
    empty list means kubectl's client-side validation accepts the object, also when the
    document does not describe ``apiVersion``/``kind`` (kubectl skips those). The
    messages come in kubectl's order; `aggregate` joins them as kubectl prints them.
    """
    group_version = _split_api_version(api_version)
    definitions = openapi.get("definitions") or {}
    if group_version is None or not kind:
        return []
    name = _definition_for(definitions, *group_version, kind)
    if name is None:
        return []
    walk = _Walk(definitions)
    walk.visit(body, kind, {"$ref": _REF_PREFIX + name}, name)
    return walk.errors


def aggregate(errors: Iterable[str]) -> str:
    """The errors as kubectl prints them after ``error validating data:``.

    apimachinery's aggregate error: one message alone, several deduplicated in
    ``[a, b]``, as in ``error: error validating "FILE": error validating data: [a, b];
    if you choose to ignore these errors, turn validation off with --validate=false``.
    """
    unique = list(dict.fromkeys(errors))
    if len(unique) == 1:
        return unique[0]
    return "[" + ", ".join(unique) + "]" if unique else ""
