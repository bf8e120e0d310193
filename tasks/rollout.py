"""The rollout verbs that change a workload: set image, restart and undo, as kubectl does them.

Each verb reads the object, computes the change with the pure helpers of
`tasks.workload_patch`, and sends one patch, shaped as kubectl sends it, so objects
changed by kubectl and by shipline stay interchangeable. Sources mirrored (kubectl 1.32):
https://github.com/kubernetes/kubectl/blob/release-1.32/pkg/cmd/set/set_image.go
https://github.com/kubernetes/kubectl/blob/release-1.32/pkg/cmd/rollout/rollout_restart.go
https://github.com/kubernetes/kubectl/blob/release-1.32/pkg/polymorphichelpers/rollback.go
All API calls go through `tasks.kube.api_call`, so transient failures are retryable.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tasks.errors import RolloutError, TransientError
from tasks.kube import FIELD_MANAGER, Cluster, api_call
from tasks.workload_patch import RESTARTED_AT, image_patch, rfc3339, with_images

__all__ = ["ChangeResult", "restart", "revision", "set_image", "undo"]

Log = logging.Logger | logging.LoggerAdapter
_LOG = logging.getLogger(__name__)

# kubectl's spellings of the kinds these verbs support (singular, short name).
_KINDS = {
    **dict.fromkeys(("deployment", "deploy"), "Deployment"),
    **dict.fromkeys(("statefulset", "sts"), "StatefulSet"),
    **dict.fromkeys(("daemonset", "ds"), "DaemonSet"),
}
_STRATEGIC = "application/strategic-merge-patch+json"
_JSON_PATCH = "application/json-patch+json"

# deploymentutil's annotations and the label kubectl's rollback treats specially.
REVISION_ANNOTATION = "deployment.kubernetes.io/revision"
POD_TEMPLATE_HASH = "pod-template-hash"
# rollback.go's annotationsToSkip: kept from the Deployment, never copied from the ReplicaSet.
_ANNOTATIONS_TO_SKIP = frozenset(
    {
        "kubectl.kubernetes.io/last-applied-configuration",
        REVISION_ANNOTATION,
        "deployment.kubernetes.io/revision-history",
        "deployment.kubernetes.io/desired-replicas",
        "deployment.kubernetes.io/max-replicas",
        "deprecated.deployment.rollback.to",
    }
)


@dataclass(frozen=True)
class ChangeResult:
    """What a verb did to one workload.

    ``target`` is kubectl's object name (``deployment.apps/server``); ``changed`` says
    whether a patch was sent (so a rollout may follow); ``message`` is kubectl's line
    (``deployment.apps/server image updated``) or says why nothing changed.
    """

    target: str
    changed: bool
    message: str


@dataclass(frozen=True)
class _Workload:
    """One workload's identity, with the names kubectl prints for it."""

    kind: str
    name: str
    namespace: str

    @property
    def target(self) -> str:
        """The ``info.ObjectName()`` kubectl prints: ``deployment.apps/server``."""
        return f"{self.kind.lower()}.apps/{self.name}"

    @property
    def resource(self) -> str:
        """The ``resource.group "name"`` form kubectl prints: ``deployments.apps "server"``."""
        return f'{self.kind.lower()}s.apps "{self.name}"'

    @property
    def cli(self) -> str:
        """The object as kubectl's arguments: ``deployment/server -n prod``."""
        return f"{self.kind.lower()}/{self.name} -n {self.namespace}"


def _workload(kind: str, name: str, namespace: str) -> _Workload:
    canonical = _KINDS.get(kind.lower().removesuffix(".apps").removesuffix("s"))
    if canonical is None:
        raise RolloutError(
            f"{kind}/{name}: shipline's rollout verbs support Deployment, StatefulSet and "
            "DaemonSet; change the pipeline line to one of those kinds"
        )
    return _Workload(canonical, name, namespace)


def _resource(cluster: Cluster, kind: str) -> Any:
    resource = cluster.resource("apps/v1", kind)
    if resource is None:
        raise RolloutError(f"the cluster does not serve {kind} in apps/v1")
    return resource


def _fetch(cluster: Cluster, w: _Workload) -> dict[str, Any]:
    obj = cluster.get("apps/v1", w.kind, w.name, w.namespace)
    if obj is None:
        raise RolloutError(
            f'{w.resource} not found in namespace "{w.namespace}"; check the name and '
            f"namespace of the pipeline line (`kubectl get {w.kind.lower()} -n {w.namespace}` "
            "lists what exists), or apply its manifest first"
        )
    return obj


def _patch(cluster: Cluster, w: _Workload, body: Any, content_type: str, action: str) -> None:
    resource = _resource(cluster, w.kind)
    with api_call(f"{action} {w.target} in namespace {w.namespace}"):
        resource.patch(
            body=body,
            name=w.name,
            namespace=w.namespace,
            content_type=content_type,
            field_manager=FIELD_MANAGER,
        )


def set_image(
    cluster: Cluster,
    kind: str,
    name: str,
    namespace: str,
    images: Mapping[str, str],
    *,
    log: Log = _LOG,
) -> ChangeResult:
    """`kubectl set image KIND NAME CONTAINER=IMAGE...`; no patch when nothing changes.

    Raises RolloutError when the object is missing or a name matches no container
    (nothing is patched then).
    """
    w = _workload(kind, name, namespace)
    current = _fetch(cluster, w)
    updated, changed = with_images(current, images, where=f"{w.kind.lower()}/{name}")
    pairs = " ".join(f"{c}={i}" for c, i in images.items())
    if not changed:
        # kubectl sends no patch and prints nothing; say so instead.
        message = f"{w.target} image already set ({pairs}): unchanged, no rollout"
        log.info(message)
        return ChangeResult(w.target, False, message)
    _patch(cluster, w, image_patch(current, updated), _STRATEGIC, "setting the image of")
    message = f"{w.target} image updated"
    log.info("%s (%s)", message, pairs)
    return ChangeResult(w.target, True, message)


def restart(
    cluster: Cluster,
    kind: str,
    name: str,
    namespace: str,
    *,
    log: Log = _LOG,
    now: Callable[[], datetime] = lambda: datetime.now().astimezone(),
) -> ChangeResult:
    """`kubectl rollout restart KIND NAME`: the restartedAt pod-template annotation.

    ``now`` is the clock (kubectl uses the local time). Raises RolloutError for a
    missing object or a paused Deployment.
    """
    w = _workload(kind, name, namespace)
    current = _fetch(cluster, w)
    if w.kind == "Deployment" and (current.get("spec") or {}).get("paused"):
        raise RolloutError(
            f"{w.resource} can't restart paused deployment (run rollout resume first): "
            f'it is paused in namespace "{namespace}"; resume it with '
            f"`kubectl rollout resume {w.cli}`, then run the restart again"
        )
    stamp = rfc3339(now())
    annotations = (current["spec"].get("template", {}).get("metadata") or {}).get("annotations")
    if (annotations or {}).get(RESTARTED_AT) == stamp:
        # kubectl 1.32 computes an empty patch here and refuses with these words; a retry
        # a second later succeeds, hence retryable.
        raise TransientError(
            f"{w.target}: failed to create patch for {name}: if restart has already been "
            "triggered within the past second, please wait before attempting to trigger "
            "another (shipline retries this step)"
        )
    # The two-way merge patch kubectl computes for this edit is just the annotation.
    body = {"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: stamp}}}}}
    _patch(cluster, w, body, _STRATEGIC, "restarting")
    message = f"{w.target} restarted"
    log.info("%s (%s=%s)", message, RESTARTED_AT, stamp)
    return ChangeResult(w.target, True, message)


def undo(
    cluster: Cluster,
    kind: str,
    name: str,
    namespace: str,
    *,
    to_revision: int = 0,
    log: Log = _LOG,
) -> ChangeResult:
    """`kubectl rollout undo KIND NAME [--to-revision=N]` (0: the previous revision).

    A Deployment gets the pod template of the revision's ReplicaSet; a StatefulSet or
    DaemonSet the one stored in its ControllerRevision. "skipped rollback" (no patch)
    when the template already matches. Raises RolloutError for a missing object, a
    paused Deployment or a revision that is not in the history.
    """
    w = _workload(kind, name, namespace)
    current = _fetch(cluster, w)
    if w.kind == "Deployment":
        result = _undo_deployment(cluster, w, current, to_revision)
    else:
        result = _undo_with_history(cluster, w, current, to_revision)
    log.info(result.message)
    return result


def _owned(items: list[dict[str, Any]], owner: dict[str, Any]) -> list[dict[str, Any]]:
    """The objects whose controller is ``owner`` (kubectl's controllerRef filter)."""
    uid = owner["metadata"]["uid"]
    return [
        item
        for item in items
        if any(
            ref.get("controller") and ref.get("uid") == uid
            for ref in item["metadata"].get("ownerReferences") or []
        )
    ]


def _list(cluster: Cluster, api_version: str, kind: str, namespace: str) -> list[dict[str, Any]]:
    resource = cluster.resource(api_version, kind)
    if resource is None:
        raise RolloutError(f"the cluster does not serve {kind} in {api_version}")
    with api_call(f"listing {kind} in namespace {namespace}"):
        return resource.get(namespace=namespace).to_dict().get("items") or []


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _history_error(w: _Workload, to_revision: int) -> RolloutError:
    """rollback.go's errors for a revision that is not there, plus where to look."""
    if to_revision:
        return RolloutError(
            f"{w.target}: unable to find specified revision {to_revision} in history; "
            f"`kubectl rollout history {w.cli}` lists the revisions"
        )
    if w.kind == "Deployment":
        kubectl_says = f'no rollout history found for deployment "{w.name}"'
    else:
        kubectl_says = "no last revision to roll back to"
    return RolloutError(
        f'{w.target}: {kubectl_says} (namespace "{w.namespace}"): it has only its current '
        "revision, so there is nothing to undo"
    )


def _without_hash(template: dict[str, Any]) -> dict[str, Any]:
    """The template minus the pod-template-hash label (an empty label map dropped)."""
    template = copy.deepcopy(template)
    metadata = template.setdefault("metadata", {})
    labels = {k: v for k, v in (metadata.get("labels") or {}).items() if k != POD_TEMPLATE_HASH}
    if labels:
        metadata["labels"] = labels
    else:
        metadata.pop("labels", None)
    return template


def _semantic(value: Any) -> Any:
    """Drop nulls and empty maps/lists, as apimachinery's Semantic.DeepEqual ignores them."""
    if isinstance(value, dict):
        pairs = {k: _semantic(v) for k, v in value.items()}
        return {k: v for k, v in pairs.items() if v not in (None, {}, [])}
    if isinstance(value, list):
        return [_semantic(v) for v in value]
    return value


def _undo_deployment(
    cluster: Cluster, w: _Workload, deployment: dict[str, Any], to_revision: int
) -> ChangeResult:
    if (deployment.get("spec") or {}).get("paused"):
        raise RolloutError(
            f"{w.target}: you cannot rollback a paused deployment; resume it first with "
            f"`kubectl rollout resume {w.cli}` and try again"
        )
    sets = _owned(_list(cluster, "apps/v1", "ReplicaSet", w.namespace), deployment)
    by_revision = {}
    for rs in sets:
        number = _int((rs["metadata"].get("annotations") or {}).get(REVISION_ANNOTATION))
        if number is not None:
            by_revision[number] = rs
    if to_revision:
        chosen = by_revision.get(to_revision)
    else:
        # The second-newest revision, as deploymentRevision picks it.
        ordered = sorted(by_revision)
        chosen = by_revision[ordered[-2]] if len(ordered) > 1 else None
    if chosen is None:
        raise _history_error(w, to_revision)
    template = chosen["spec"]["template"]
    if _semantic(_without_hash(template)) == _semantic(
        _without_hash(deployment["spec"]["template"])
    ):
        return ChangeResult(
            w.target,
            False,
            f"{w.target} skipped rollback (current template already matches revision "
            f"{to_revision})",
        )
    current = deployment["metadata"].get("annotations") or {}
    annotations = {k: v for k, v in current.items() if k in _ANNOTATIONS_TO_SKIP}
    for key, value in (chosen["metadata"].get("annotations") or {}).items():
        if key not in _ANNOTATIONS_TO_SKIP:
            annotations[key] = value
    # getDeploymentPatch: a JSON patch replacing the template and the annotations.
    body = [
        {"op": "replace", "path": "/spec/template", "value": _without_hash(template)},
        {"op": "replace", "path": "/metadata/annotations", "value": annotations},
    ]
    _patch(cluster, w, body, _JSON_PATCH, "rolling back")
    return ChangeResult(w.target, True, f"{w.target} rolled back")


def _undo_with_history(
    cluster: Cluster, w: _Workload, obj: dict[str, Any], to_revision: int
) -> ChangeResult:
    histories = sorted(
        _owned(_list(cluster, "apps/v1", "ControllerRevision", w.namespace), obj),
        key=lambda h: h.get("revision") or 0,
    )
    if to_revision:
        chosen = next((h for h in histories if h.get("revision") == to_revision), None)
    else:
        chosen = histories[-2] if len(histories) > 1 else None
    if chosen is None:
        raise _history_error(w, to_revision)
    data = chosen.get("data") or {}
    # The stored data is a strategic-merge patch replacing spec.template ($patch: replace).
    stored = {k: v for k, v in ((data.get("spec") or {}).get("template") or {}).items()}
    stored.pop("$patch", None)
    if _semantic(stored) == _semantic(obj["spec"]["template"]):
        return ChangeResult(
            w.target,
            False,
            f"{w.target} skipped rollback (current template already matches revision "
            f"{to_revision})",
        )
    _patch(cluster, w, data, _STRATEGIC, "rolling back")
    return ChangeResult(w.target, True, f"{w.target} rolled back")


def revision(cluster: Cluster, kind: str, name: str, namespace: str) -> int | None:
    """The workload's current revision; None when it has none yet (or does not exist).

    A Deployment's ``deployment.kubernetes.io/revision`` annotation; for a StatefulSet
    or DaemonSet the highest revision of its ControllerRevisions.
    """
    w = _workload(kind, name, namespace)
    obj = cluster.get("apps/v1", w.kind, w.name, w.namespace)
    if obj is None:
        return None
    if w.kind == "Deployment":
        return _int((obj["metadata"].get("annotations") or {}).get(REVISION_ANNOTATION))
    numbers = [
        h.get("revision") or 0
        for h in _owned(_list(cluster, "apps/v1", "ControllerRevision", namespace), obj)
    ]
    return max(numbers) if numbers else None
