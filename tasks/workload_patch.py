"""The pod-template edits of `kubectl set image` and `kubectl rollout restart`, pure.

Each function takes a workload as a plain dict (the JSON form the API returns) and gives
back a changed deep copy; nothing here talks to a cluster or reads a clock. The rules
mirror kubectl 1.32:
https://github.com/kubernetes/kubectl/blob/release-1.32/pkg/cmd/set/set_image.go (setImage)
https://github.com/kubernetes/kubectl/blob/release-1.32/pkg/polymorphichelpers/objectrestarter.go
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from tasks.errors import RolloutError

__all__ = [
    "RESTARTED_AT",
    "image_patch",
    "pod_spec",
    "restarted",
    "rfc3339",
    "with_images",
]

# The pod-template annotation `kubectl rollout restart` sets; kubectl and shipline share it.
RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"

# Container lists in the order kubectl's setImage visits them (init containers first).
_CONTAINER_LISTS = ("initContainers", "containers")


def pod_spec(workload: dict[str, Any]) -> dict[str, Any]:
    """The pod spec inside ``workload``, created empty where missing.

    A Pod's own spec, a CronJob's job template's, else ``spec.template.spec``; callers
    edit it in place.
    """
    spec = workload.setdefault("spec", {})
    kind = workload.get("kind")
    if kind == "Pod":
        return spec
    if kind == "CronJob":
        spec = spec.setdefault("jobTemplate", {}).setdefault("spec", {})
    return spec.setdefault("template", {}).setdefault("spec", {})


def with_images(
    workload: dict[str, Any], images: Mapping[str, str], *, where: str
) -> tuple[dict[str, Any], bool]:
    """Set container images the way `kubectl set image` does.

    ``images`` maps a container name to its new image; the name ``*`` means every
    container. Init containers and containers are both matched by name. Returns a deep
    copy with the images set and whether any image actually changed.

    Raises RolloutError naming ``where`` (e.g. ``deployment/server``) and every name
    that matches no container; unlike kubectl, which still patches the names it found,
    nothing is changed then, so a typo never half-applies a release.
    """
    if not images:
        raise RolloutError(f"{where}: at least one image update is required (NAME=IMAGE)")
    if "*" in images and len(images) > 1:
        # kubectl's validation message, verbatim.
        raise RolloutError(
            f"{where}: all containers are already specified by *, but saw more than one "
            "container_name=container_image pairs"
        )
    updated = copy.deepcopy(workload)
    spec = pod_spec(updated)
    changed = False
    missing = []
    for name, image in images.items():
        found = False
        for list_name in _CONTAINER_LISTS:
            for container in spec.get(list_name) or []:
                if name == "*" or container.get("name") == name:
                    found = True
                    changed |= container.get("image") != image
                    container["image"] = image
        if not found:
            missing.append(name)
    if missing:
        known = [c.get("name") for n in _CONTAINER_LISTS for c in spec.get(n) or []]
        # kubectl's words (Go's %q quoting) so users can search for them.
        errors = "; ".join(f"unable to find container named {json.dumps(n)}" for n in missing)
        raise RolloutError(
            f"{where}: {errors}; its containers are {', '.join(known) or '(none)'}: "
            "use one of those names (or * for all) in the set-image line"
        )
    return updated, changed


def image_patch(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """The strategic-merge patch from ``before`` to ``after`` for image changes only.

    Shaped as kubectl's CreateTwoWayMergePatch makes it for `set image`: per container
    list, the changed entries (merge key ``name`` plus ``image``) and a
    ``$setElementOrder`` directive listing every name. ``{}`` when no image changed.
    """
    old_spec, new_spec = pod_spec(copy.deepcopy(before)), pod_spec(copy.deepcopy(after))
    patch_spec: dict[str, Any] = {}
    for list_name in _CONTAINER_LISTS:
        old = {c.get("name"): c.get("image") for c in old_spec.get(list_name) or []}
        new = new_spec.get(list_name) or []
        changes = [
            {"image": c.get("image"), "name": c.get("name")}
            for c in new
            if old.get(c.get("name")) != c.get("image")
        ]
        if changes:
            patch_spec[f"$setElementOrder/{list_name}"] = [{"name": c.get("name")} for c in new]
            patch_spec[list_name] = changes
    if not patch_spec:
        return {}
    return _nest(after, patch_spec)


def _nest(workload: dict[str, Any], patch_spec: dict[str, Any]) -> dict[str, Any]:
    """Wrap a pod-spec patch in the path `pod_spec` reads for ``workload``'s kind."""
    kind = workload.get("kind")
    if kind == "Pod":
        return {"spec": patch_spec}
    template = {"template": {"spec": patch_spec}}
    if kind == "CronJob":
        return {"spec": {"jobTemplate": {"spec": template}}}
    return {"spec": template}


def rfc3339(now: datetime) -> str:
    """``now`` as Go's ``time.Format(time.RFC3339)`` writes it: seconds, ``Z`` for UTC.

    A naive datetime is taken as local time, as Go's ``time.Now()`` is.
    """
    aware = now if now.tzinfo is not None else now.astimezone()
    text = aware.replace(microsecond=0).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def restarted(workload: dict[str, Any], now: datetime) -> dict[str, Any]:
    """A deep copy of ``workload`` with kubectl's restartedAt pod-template annotation at ``now``.

    The caller decides whether the kind can be restarted (a paused Deployment cannot).
    """
    updated = copy.deepcopy(workload)
    spec = updated.setdefault("spec", {})
    metadata = spec.setdefault("template", {}).setdefault("metadata", {})
    annotations = metadata.get("annotations") or {}
    metadata["annotations"] = {**annotations, RESTARTED_AT: rfc3339(now)}
    return updated
