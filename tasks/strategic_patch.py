"""The three-way strategic merge patch `kubectl apply` sends, pure.

A port of ``CreateThreeWayMergePatch`` and the parts of ``diffMaps``/``mergeMap`` it uses
(client side: parallel lists kept as directives) from
https://github.com/kubernetes/apimachinery/blob/master/pkg/util/strategicpatch/patch.go
so objects applied by shipline and by kubectl end up the same and each tool keeps working
after the other. The patch metadata (``x-kubernetes-patch-strategy`` and
``x-kubernetes-patch-merge-key``) comes from the cluster's OpenAPI v2 document, as kubectl
reads it when the server has no OpenAPI v3 (Kubernetes 1.20). With no schema (custom
resources) every list is replaced and maps are merged: the three-way JSON merge patch.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

__all__ = ["PatchSchema", "patch_schema", "three_way_patch"]

_DIRECTIVE = "$patch"
_DELETE = "delete"
_REPLACE = "replace"
_MERGE = "merge"
_RETAIN_KEYS = "$retainKeys"
_DELETE_FROM_PRIMITIVE = "$deleteFromPrimitiveList"
_SET_ELEMENT_ORDER = "$setElementOrder"


class PatchSchema:
    """The OpenAPI v2 schema of one type, answering patch-metadata lookups."""

    def __init__(self, definitions: Mapping[str, Any], schema: Mapping[str, Any]) -> None:
        self._definitions = definitions
        self._schema = self._resolve(schema)

    def _resolve(self, schema: Mapping[str, Any]) -> Mapping[str, Any]:
        ref = schema.get("$ref")
        while isinstance(ref, str) and ref.startswith("#/definitions/"):
            schema = self._definitions.get(ref.removeprefix("#/definitions/"), {})
            ref = schema.get("$ref")
        return schema

    def field(self, key: str) -> tuple[PatchSchema | None, list[str], str]:
        """The field's schema (a list's: its items'), patch strategies and merge key."""
        prop = (self._schema.get("properties") or {}).get(key)
        if prop is None:
            extra = self._schema.get("additionalProperties")
            prop = extra if isinstance(extra, dict) else None
        if prop is None:
            return None, [], ""
        strategy = prop.get("x-kubernetes-patch-strategy") or ""
        strategies = [s for s in strategy.split(",") if s]
        merge_key = prop.get("x-kubernetes-patch-merge-key") or ""
        resolved = self._resolve(prop)
        if resolved.get("type") == "array" and isinstance(resolved.get("items"), dict):
            resolved = self._resolve(resolved["items"])
        return PatchSchema(self._definitions, resolved), strategies, merge_key


def patch_schema(
    openapi: Mapping[str, Any], group: str, version: str, kind: str
) -> PatchSchema | None:
    """The schema of ``kind`` for a strategic merge patch, or None for a JSON merge patch.

    Mirrors kubectl's choice: strategic when the API's PATCH operation for the kind
    accepts ``application/strategic-merge-patch+json`` (built-in types), otherwise (custom
    resources) a JSON merge patch.
    """
    gvk = {"group": group, "version": version, "kind": kind}
    strategic = False
    for operations in (openapi.get("paths") or {}).values():
        patch_op = operations.get("patch") if isinstance(operations, dict) else None
        if patch_op and patch_op.get("x-kubernetes-group-version-kind") == gvk:
            consumes = patch_op.get("consumes") or openapi.get("consumes") or []
            strategic = "application/strategic-merge-patch+json" in consumes
            break
    if not strategic:
        return None
    definitions = openapi.get("definitions") or {}
    for definition in definitions.values():
        if gvk in (definition.get("x-kubernetes-group-version-kind") or []):
            return PatchSchema(definitions, definition)
    return None


def _field(schema: PatchSchema | None, key: str) -> tuple[PatchSchema | None, bool, str, str]:
    """(field schema, retainKeys?, other strategy, merge key) of ``key``."""
    if schema is None:
        return None, False, "", ""
    sub, strategies, merge_key = schema.field(key)
    retain = "retainKeys" in strategies
    others = [s for s in strategies if s != "retainKeys"]
    return sub, retain, (others[0] if others else ""), merge_key


def _go_str(value: Any) -> str:
    """Go's ``fmt.Sprintf("%v", value)`` for JSON scalars, which orders merge keys."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "<nil>"
    return str(value)


def _same_type(a: Any, b: Any) -> bool:
    return type(a) is type(b)


class _Options:
    def __init__(
        self, *, ignore_deletions: bool = False, ignore_changes: bool = False, retain: bool = False
    ) -> None:
        self.ignore_deletions = ignore_deletions
        self.ignore_changes = ignore_changes
        self.retain = retain

    def with_retain(self, retain: bool) -> _Options:
        return _Options(
            ignore_deletions=self.ignore_deletions,
            ignore_changes=self.ignore_changes,
            retain=retain,
        )


def _diff_maps(
    original: dict, modified: dict, schema: PatchSchema | None, options: _Options
) -> dict:
    patch: dict[str, Any] = {}
    retain_keys = []
    for key, modified_value in modified.items():
        if options.retain and modified_value is not None:
            retain_keys.append(key)
        if key not in original:
            if not options.ignore_changes:
                patch[key] = modified_value
            continue
        original_value = original[key]
        if key == _DIRECTIVE:
            if original_value != modified_value:
                patch[key] = modified_value
            continue
        if not _same_type(original_value, modified_value):
            if not options.ignore_changes:
                patch[key] = modified_value
            continue
        if isinstance(original_value, dict):
            sub, retain, strategy, _ = _field(schema, key)
            if strategy == _REPLACE:
                if not options.ignore_changes:
                    patch[key] = modified_value
            else:
                value = _diff_maps(original_value, modified_value, sub, options.with_retain(retain))
                if value:
                    patch[key] = value
        elif isinstance(original_value, list):
            _diff_slice(key, original_value, modified_value, patch, schema, options)
        elif not options.ignore_changes and original_value != modified_value:
            patch[key] = modified_value
    if not options.ignore_deletions:
        for key in original:
            if key not in modified:
                patch[key] = None
    has_new = any(v is not None and k not in modified for k, v in original.items())
    if retain_keys and (patch or has_new):
        patch[_RETAIN_KEYS] = _sort_scalars(retain_keys)
    return patch


def _diff_slice(
    key: str,
    original: list,
    modified: list,
    patch: dict,
    schema: PatchSchema | None,
    options: _Options,
) -> None:
    sub, retain, strategy, merge_key = _field(schema, key)
    if strategy != _MERGE:
        if not options.ignore_changes and original != modified:
            patch[key] = modified
        return
    additions, deletions, order = _diff_lists(
        original, modified, sub, merge_key, options.with_retain(retain)
    )
    if additions:
        patch[key] = additions
    if deletions:
        patch[f"{_DELETE_FROM_PRIMITIVE}/{key}"] = deletions
    if order:
        patch[f"{_SET_ELEMENT_ORDER}/{key}"] = order


def _diff_lists(
    original: list, modified: list, schema: PatchSchema | None, merge_key: str, options: _Options
) -> tuple[list, list, list]:
    if not original:
        if not modified or options.ignore_changes:
            return [], [], []
        return list(modified), [], []
    if isinstance((original or modified)[0], dict):
        additions, deletions = _diff_lists_of_maps(original, modified, schema, merge_key, options)
        additions = _normalize_order(additions, modified, merge_key, True)
        same_order = len(original) == len(modified) and all(
            o.get(merge_key) == m.get(merge_key) for o, m in zip(original, modified, strict=True)
        )
        additions = additions + deletions
        order: list = []
        if (not options.ignore_changes and (additions or not same_order)) or (
            not options.ignore_deletions and additions
        ):
            order = [{merge_key: item.get(merge_key)} for item in modified]
        return additions, [], order
    additions, deletions = _diff_lists_of_scalars(original, modified, options)
    additions = _normalize_order(additions, modified, merge_key, False)
    order = []
    if (not options.ignore_deletions and deletions) or (
        not options.ignore_changes and original != modified
    ):
        order = list(modified)
    return additions, deletions, order


def _sort_scalars(values: list) -> list:
    return sorted(values, key=_go_str)


def _dedupe(values: list) -> list:
    result: list = []
    for value in values:
        if not any(_same_type(value, seen) and value == seen for seen in result):
            result.append(value)
    return result


def _diff_lists_of_scalars(original: list, modified: list, options: _Options) -> tuple[list, list]:
    originals, modifieds = _sort_scalars(original), _sort_scalars(modified)
    i = j = 0
    additions: list = []
    deletions: list = []
    while i < len(originals) or j < len(modifieds):
        left = _go_str(originals[i]) if i < len(originals) else None
        right = _go_str(modifieds[j]) if j < len(modifieds) else None
        if left is not None and right is not None and left == right:
            i += 1
            j += 1
        elif left is None or (right is not None and left > right):
            if not options.ignore_changes:
                additions.append(modifieds[j])
            j += 1
        else:
            if not options.ignore_deletions:
                deletions.append(originals[i])
            i += 1
    return additions, _dedupe(deletions)


def _diff_lists_of_maps(
    original: list, modified: list, schema: PatchSchema | None, merge_key: str, options: _Options
) -> tuple[list, list]:
    originals = sorted(original, key=lambda item: _go_str(item.get(merge_key)))
    modifieds = sorted(modified, key=lambda item: _go_str(item.get(merge_key)))
    i = j = 0
    patch: list = []
    deletions: list = []
    while i < len(originals) or j < len(modifieds):
        left = _go_str(originals[i].get(merge_key)) if i < len(originals) else None
        right = _go_str(modifieds[j].get(merge_key)) if j < len(modifieds) else None
        if left is not None and right is not None and left == right:
            value = _diff_maps(originals[i], modifieds[j], schema, options)
            if value:
                value[merge_key] = modifieds[j].get(merge_key)
                patch.append(value)
            i += 1
            j += 1
        elif left is None or (right is not None and left > right):
            if not options.ignore_changes:
                patch.append(modifieds[j])
            j += 1
        else:
            if not options.ignore_deletions:
                deletions.append({merge_key: originals[i].get(merge_key), _DIRECTIVE: _DELETE})
            i += 1
    return patch, deletions


def _key_of(item: Any, merge_key: str, maps: bool) -> Any:
    return item.get(merge_key) if maps and isinstance(item, dict) else item


def _index(items: list, value: Any, merge_key: str, maps: bool) -> int:
    wanted = _key_of(value, merge_key, maps)
    for position, item in enumerate(items):
        if _key_of(item, merge_key, maps) == wanted:
            return position
    return -1


def _normalize_order(items: list, order: list, merge_key: str, maps: bool) -> list:
    """``items`` sorted by their place in ``order``; delete directives last."""
    deletes = [i for i in items if maps and isinstance(i, dict) and i.get(_DIRECTIVE) == _DELETE]
    kept = [i for i in items if not (maps and isinstance(i, dict) and i.get(_DIRECTIVE) == _DELETE)]

    def place(item: Any) -> int:
        position = _index(order, item, merge_key, maps)
        return position if position >= 0 else len(order)

    return sorted(kept, key=place) + deletes


def _merge_sorted(left: list, right: list, server_order: list, merge_key: str, maps: bool) -> list:
    merged: list = []
    i = j = 0
    while i < len(left) or j < len(right):
        if i >= len(left):
            merged.append(right[j])
            j += 1
        elif j >= len(right):
            merged.append(left[i])
            i += 1
        else:
            li = _index(server_order, left[i], merge_key, maps)
            ri = _index(server_order, right[j], merge_key, maps)
            if li >= 0 and ri >= 0 and li < ri:
                merged.append(left[i])
                i += 1
            else:
                merged.append(right[j])
                j += 1
    return merged


def _merge_slice(original: list, patch: list, merge_key: str, schema: PatchSchema | None) -> list:
    """Merge two patch lists (client side: directives kept), ordered like mergeSlice."""
    if not original and not patch:
        return original
    maps = isinstance((original or patch)[0], dict)
    if not maps:
        merged = _dedupe(original + patch)
        inside = [v for v in merged if v in patch]
        outside = [v for v in merged if v not in patch]
    else:
        merged = list(original)
        for item in patch:
            position = _index(merged, item, merge_key, True)
            if position >= 0:
                merged[position] = _merge_patches(merged[position], item, schema)
            else:
                merged.append(item)
        inside = [v for v in merged if _index(patch, v, merge_key, True) >= 0]
        outside = [v for v in merged if _index(patch, v, merge_key, True) < 0]
    inside = _normalize_order(inside, patch, merge_key, maps)
    outside = _normalize_order(outside, original, merge_key, maps)
    return _merge_sorted(outside, inside, original, merge_key, maps)


def _merge_patches(original: dict, patch: dict, schema: PatchSchema | None) -> dict:
    """Merge the changes patch into the deletions patch (mergeMap, client side)."""
    if _DIRECTIVE in patch:
        directive = patch[_DIRECTIVE]
        if directive == _DELETE:
            return {}
        return {k: v for k, v in patch.items() if k != _DIRECTIVE}
    if _RETAIN_KEYS in patch:
        original.setdefault(_RETAIN_KEYS, patch.pop(_RETAIN_KEYS))
    for key in [k for k in patch if k.startswith(_SET_ELEMENT_ORDER + "/")]:
        order = patch.pop(key)
        original.setdefault(key, order)
        list_key = key.split("/", 1)[1]
        sub, _, strategy, merge_key = _field(schema, list_key)
        in_original, in_patch = list_key in original, list_key in patch
        if in_original and in_patch:
            if strategy == _MERGE:
                merged = _merge_slice(original[list_key], patch.pop(list_key), merge_key, sub)
            else:
                merged = patch.pop(list_key)
        elif in_patch:
            merged = patch.pop(list_key)
        elif in_original:
            merged = original[list_key]
        else:
            continue
        maps = bool(merged) and isinstance(merged[0], dict)
        inside = [v for v in merged if _index(order, v, merge_key, maps) >= 0]
        outside = [v for v in merged if _index(order, v, merge_key, maps) < 0]
        server = original.get(list_key) if in_original else []
        original[list_key] = _merge_sorted(
            _normalize_order(outside, server, merge_key, maps),
            _normalize_order(inside, order, merge_key, maps),
            server,
            merge_key,
            maps,
        )
    for key, value in patch.items():
        if key.startswith(_DELETE_FROM_PRIMITIVE + "/"):
            original[key] = value
            continue
        if key not in original or not _same_type(original[key], value):
            original[key] = value
            continue
        sub, _, strategy, merge_key = _field(schema, key)
        if isinstance(value, dict):
            if strategy == _REPLACE:
                original[key] = value
            else:
                original[key] = _merge_patches(original[key], value, sub)
        elif isinstance(value, list):
            if strategy == _MERGE:
                original[key] = _merge_slice(original[key], value, merge_key, sub)
            else:
                original[key] = value
        else:
            original[key] = value
    return original


def three_way_patch(
    original: dict | None, modified: dict, current: dict, schema: PatchSchema | None
) -> dict:
    """The patch taking ``current`` to ``modified``, deleting what ``original`` had.

    ``original`` is the last-applied configuration (None when there is none), ``modified``
    the new manifest with its last-applied annotation, ``current`` the live object. An
    empty dict means nothing would change. With ``schema`` None the result is a JSON
    merge patch (lists replaced whole), kubectl's choice for custom resources.
    """
    delta = _diff_maps(current, modified, schema, _Options(ignore_deletions=True))
    deletions = _diff_maps(original or {}, modified, schema, _Options(ignore_changes=True))
    return _merge_patches(copy.deepcopy(deletions), copy.deepcopy(delta), schema)
