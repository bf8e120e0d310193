"""Manifest files -> Kubernetes objects: substitute, parse, validate, order.

Pure apart from reading the files. Every file is substituted with envsubst semantics
(`tasks.envsubst.substitute`), every YAML document parsed, empty documents skipped and
``kind: List`` expanded; every error of every file is collected and raised as one
`ManifestError`, so a bad document anywhere means nothing is applied.

YAML is read the way kubectl reads it (sigs.k8s.io/yaml, i.e. YAML -> JSON): timestamps
stay strings, map keys become strings and whole floats become integers. Like kubectl, a
repeated key keeps its last value (kubectl 1.32's client-side apply accepts it), and a
document nested too deep or expanding too many aliases is refused
(:mod:`tasks.yaml_limits`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tasks.envsubst import substitute
from tasks.errors import ManifestError, SubstitutionError
from tasks.yaml_limits import LimitedSafeLoader, YamlLimitError

__all__ = ["ManifestObject", "apply_order", "load_objects"]


@dataclass(frozen=True)
class ManifestObject:
    """One Kubernetes object read from a manifest file."""

    source: str
    document: int
    line: int
    body: dict

    @property
    def api_version(self) -> str:
        """The object's apiVersion (``apps/v1``)."""
        return self.body["apiVersion"]

    @property
    def kind(self) -> str:
        """The object's kind (``Deployment``)."""
        return self.body["kind"]

    @property
    def name(self) -> str:
        """metadata.name."""
        return self.body["metadata"]["name"]

    @property
    def namespace(self) -> str | None:
        """metadata.namespace, or None when the manifest does not set one."""
        return self.body["metadata"].get("namespace") or None

    @property
    def where(self) -> str:
        """``file:line (document N)``, the place to name in messages."""
        return f"{self.source}:{self.line} (document {self.document})"


class _KubeLoader(LimitedSafeLoader):
    """SafeLoader without the timestamp resolver: kubectl keeps dates as strings."""


_KubeLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _to_json(value: Any) -> Any:
    """Shape a parsed YAML value as JSON, as sigs.k8s.io/yaml's YAMLToJSON does."""
    if isinstance(value, dict):
        return {_json_key(k): _to_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_to_json(v) for v in value]
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**63:
        # JSON has one number type; the API decodes 1.0 as the integer 1.
        return int(value)
    if isinstance(value, bytes):
        import base64

        return base64.b64encode(value).decode("ascii")
    return value


def _json_key(key: Any) -> str:
    if isinstance(key, bool):
        return "true" if key else "false"
    if key is None:
        return "null"
    return str(key)


def _field_problems(body: Any) -> tuple[list[str], bool]:
    """What keeps ``body`` from being an object, and whether a required field is missing."""
    if not isinstance(body, dict):
        return ["the document is not a mapping (an object with apiVersion, kind, metadata)"], True
    metadata = body.get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        # kubectl: cannot unmarshal number into Go struct field .metadata of type v1.ObjectMeta
        return [f"metadata must be a mapping with a name, found {_json_type(metadata)}"], True
    metadata = metadata or {}
    problems: list[str] = []
    missing = False
    for name, value, required in (
        ("apiVersion", body.get("apiVersion"), True),
        ("kind", body.get("kind"), True),
        ("metadata.name", metadata.get("name"), True),
        ("metadata.namespace", metadata.get("namespace"), False),
    ):
        if value is None or value == "":
            if required:
                problems.append(f"missing {name}")
                missing = True
        elif not isinstance(value, str):
            # kubectl: "cannot unmarshal number into Go struct field ObjectMeta.metadata.name
            # of type string" (apiVersion and kind: "isn't string type").
            problems.append(
                f"{name} must be a string, found {_json_type(value)}{_quote(name, value)}"
            )
    return problems, missing


def _json_type(value: Any) -> str:
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return f"a boolean ({'true' if value else 'false'})"
    if isinstance(value, int | float):
        return f"a number ({value})"
    return "a list" if isinstance(value, list) else "a mapping"


def _quote(name: str, value: Any) -> str:
    """What to do about a field that must be a string: quote a scalar, replace the rest."""
    if isinstance(value, dict | list):
        return "; write one string there"
    text = ("true" if value else "false") if isinstance(value, bool) else str(value)
    return f'; quote it: {name.rpartition(".")[2]}: "{text}"'


def _object_error(where: str, body: Any) -> str | None:
    """The message for a document or List item that is not a usable object, if it is not."""
    problems, missing = _field_problems(body)
    if not problems:
        return None
    hint = "; every object needs apiVersion, kind and metadata.name" if missing else ""
    return f"{where}: {'; '.join(problems)}{hint}"


def _documents(text: str) -> list[tuple[int, yaml.Node, Any]]:
    """Each document's 1-based start line, node (for item lines) and value, in order."""
    loader = _KubeLoader(text)  # raises YamlLimitError for a character YAML forbids
    documents = []
    try:
        while loader.check_node():
            node = loader.get_node()
            documents.append((node.start_mark.line + 1, node, loader.construct_document(node)))
    finally:
        loader.dispose()
    return documents


def _item_line(items_node: yaml.Node | None, index: int, default: int) -> int:
    if isinstance(items_node, yaml.SequenceNode) and index < len(items_node.value):
        return items_node.value[index].start_mark.line + 1
    return default


def _items_node(document: yaml.Node) -> yaml.Node | None:
    """The node of a List document's ``items``, for the line of each item."""
    if isinstance(document, yaml.MappingNode):
        for key, value in document.value:
            if key.value == "items":
                return value
    return None


def _load_file(
    path: str, env: Mapping[str, str], strict: bool, only: frozenset[str] | None
) -> tuple[list[ManifestObject], list[str]]:
    """The objects of one file and the errors found in it."""
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        return [], [f"{path}: cannot read the manifest file: {exc.strerror or exc}"]
    try:
        text = substitute(raw, env, only=only, strict=strict, source=path)
    except SubstitutionError as exc:
        return [], [str(exc)]
    try:
        decoded = text.decode("utf-8")
    except UnicodeDecodeError as exc:
        return [], [f"{path}: not UTF-8 at byte {exc.start}; save the manifest as UTF-8"]
    try:
        documents = _documents(decoded)
    except YamlLimitError as exc:
        return [], [f"{path}:{exc.line} (document {exc.document}): {exc.reason}"]
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        return [], [f"{path}{line}: invalid YAML: {problem}; fix the YAML syntax there"]

    objects: list[ManifestObject] = []
    errors: list[str] = []
    document = 0
    for line, node, value in documents:
        document += 1
        if value is None:  # an empty document (`---` alone, comments only): skipped
            continue
        body = _to_json(value)
        where = f"{path}:{line} (document {document})"
        if isinstance(body, dict) and body.get("kind") == "List" and "items" in body:
            items = body["items"]
            if not isinstance(items, list):
                errors.append(f"{where}: kind List needs `items` to be a list of objects")
                continue
            items_node = _items_node(node)
            for position, item in enumerate(items, start=1):
                item_line = _item_line(items_node, position - 1, line)
                error = _object_error(
                    f"{path}:{item_line} (document {document}, List item {position})", item
                )
                if error:
                    errors.append(error)
                    continue
                objects.append(ManifestObject(path, document, item_line, item))
            continue
        error = _object_error(where, body)
        if error:
            errors.append(error)
            continue
        objects.append(ManifestObject(path, document, line, body))
    return objects, errors


def load_objects(
    files: Sequence[str],
    env: Mapping[str, str],
    *,
    strict: bool = False,
    only: frozenset[str] | None = None,
) -> list[ManifestObject]:
    """Substitute, parse and check every document of ``files``, in file order.

    Raises one ManifestError listing every problem of every file (file, line, document,
    what is missing), so nothing is applied while any document is bad.
    """
    objects: list[ManifestObject] = []
    errors: list[str] = []
    for path in files:
        found, problems = _load_file(str(path), env, strict, only)
        objects.extend(found)
        errors.extend(problems)
    if errors:
        # One line per problem (a file's unset variables come as one entry of many lines).
        problems = sum(len(error.splitlines()) for error in errors)
        count = f"{problems} problem{'s' if problems > 1 else ''}"
        raise ManifestError(
            f"the manifests have {count}; nothing was applied:\n" + "\n".join(errors)
        )
    return objects


def _is_first(obj: ManifestObject) -> bool:
    group = obj.api_version.rpartition("/")[0]
    return (obj.kind == "Namespace" and group == "") or (
        obj.kind == "CustomResourceDefinition" and group == "apiextensions.k8s.io"
    )


def apply_order(objects: Sequence[ManifestObject]) -> list[ManifestObject]:
    """Namespaces and CustomResourceDefinitions first, everything else in file order.

    Both groups keep their relative order (a stable partition), so what a later object
    needs (its namespace, its kind) exists when it is applied.
    """
    return [o for o in objects if _is_first(o)] + [o for o in objects if not _is_first(o)]
