"""Rollout verdicts: kubectl's `rollout status` rules on one already-fetched object.

Pure: takes the JSON form of a Deployment, StatefulSet or DaemonSet (a plain dict, as the
API and watch events return it) and answers done / waiting / failed / unknown with
kubectl's own text. No client, no clock: the wait loop feeds it from a watch.

The rules mirror kubectl 1.32's status viewers, in the same order:
https://github.com/kubernetes/kubectl/blob/release-1.32/pkg/polymorphichelpers/rollout_status.go
(the pod warnings appended by later kubectl versions are not in 1.32, so not here).
kubectl's messages end in a newline; ``Verdict.message`` carries the text without it.

One rule goes beyond kubectl and is kept apart (``rollout_verdict``): a paused Deployment
whose rollout is unfinished fails at once, where kubectl would wait forever.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["Verdict", "kubectl_rollout_status", "rollout_verdict"]

State = Literal["done", "waiting", "failed", "unknown"]

# deploymentutil.RevisionAnnotation and deploymentutil.TimedOutReason in
# https://github.com/kubernetes/kubectl/blob/release-1.32/pkg/util/deployment/deployment.go
REVISION_ANNOTATION = "deployment.kubernetes.io/revision"
TIMED_OUT_REASON = "ProgressDeadlineExceeded"

_INT64_MAX = 2**63 - 1
# strconv.ParseInt(v, 10, 64) accepts an optional sign and decimal digits, nothing else.
_GO_DECIMAL = re.compile(r"[+-]?[0-9]+")


@dataclass(frozen=True)
class Verdict:
    """Where a rollout stands.

    ``state`` is "done", "waiting", "failed" or "unknown" (a kind kubectl has no status
    for); ``message`` is kubectl's text, or shipline's for the rules beyond kubectl;
    ``reason`` is a short CamelCase cause for failed and unknown verdicts, for code to
    branch on instead of the message text.
    """

    state: State
    message: str
    reason: str = ""


def kubectl_rollout_status(obj: dict[str, Any], revision: int | None = None) -> Verdict:
    """Judge ``obj`` exactly as ``kubectl rollout status`` (1.32) would.

    kubectl's errors (deadline exceeded, OnDelete strategy, revision mismatch) become
    "failed"; a kind kubectl has no status viewer for becomes "unknown". ``revision``
    pins a Deployment to that revision like ``--revision`` (None or 0: the latest).
    """
    kind = obj.get("kind")
    api_version = obj.get("apiVersion")
    if not kind or not api_version:
        missing = "kind" if not kind else "apiVersion"
        return Verdict(
            "unknown",
            f"object {_go_quote(_name(obj))} has no {missing}, so its rollout status "
            "cannot be told; "
            "set kind and apiVersion (watch events carry them, list items do not)",
            "UnknownKind",
        )
    group = api_version.rpartition("/")[0]
    # StatusViewerFor: Deployment and DaemonSet in apps or extensions, StatefulSet in apps.
    if kind == "Deployment" and group in ("apps", "extensions"):
        return _deployment_status(obj, revision or 0)
    if kind == "DaemonSet" and group in ("apps", "extensions"):
        return _daemonset_status(obj)
    if kind == "StatefulSet" and group == "apps":
        return _statefulset_status(obj)
    # schema.GroupKind.String(): "Kind.group", or just "Kind" for the core group.
    group_kind = f"{kind}.{group}" if group else kind
    return Verdict(
        "unknown", f"no status viewer has been implemented for {group_kind}", "UnknownKind"
    )


def rollout_verdict(obj: dict[str, Any], revision: int | None = None) -> Verdict:
    """Judge ``obj`` like kubectl, plus shipline's paused-Deployment rule.

    The rule: when kubectl would keep waiting on a Deployment with ``spec.paused: true``,
    the verdict is "failed" (reason "Paused") at once. A paused Deployment's controller
    creates no new ReplicaSet and checks no progress deadline, so kubectl would wait
    forever. A paused Deployment that is already rolled out stays "done", as in kubectl.
    """
    verdict = kubectl_rollout_status(obj, revision)
    if verdict.state == "waiting" and obj.get("kind") == "Deployment" and _spec(obj).get("paused"):
        return Verdict("failed", _paused_message(obj, verdict.message), "Paused")
    return verdict


def _paused_message(deployment: dict[str, Any], kubectl_message: str) -> str:
    name = _name(deployment)
    namespace = deployment.get("metadata", {}).get("namespace")
    resume = f"kubectl rollout resume deployment/{name}"
    if namespace:
        resume += f" -n {namespace}"
    return (
        f"deployment {_go_quote(name)} is paused (spec.paused: true), so its rollout cannot "
        f"finish and kubectl rollout status would wait forever ({kubectl_message}); "
        f"resume it with '{resume}', or remove spec.paused from its manifest"
    )


def _deployment_status(deployment: dict[str, Any], revision: int) -> Verdict:
    """DeploymentStatusViewer.Status."""
    name = _go_quote(_name(deployment))
    spec, status = _spec(deployment), _status(deployment)
    if revision > 0:
        running, error = _deployment_revision(deployment)
        if error:
            return Verdict(
                "failed",
                f"cannot get the revision of deployment {name}: {error}",
                "InvalidRevision",
            )
        if revision != running:
            return Verdict(
                "failed",
                f"desired revision ({revision}) is different from the running revision ({running})",
                "RevisionMismatch",
            )
    if _generation(deployment) > status.get("observedGeneration", 0):
        return Verdict("waiting", "Waiting for deployment spec update to be observed...")
    progressing = _condition(status, "Progressing")
    if progressing is not None and progressing.get("reason") == TIMED_OUT_REASON:
        return Verdict(
            "failed", f"deployment {name} exceeded its progress deadline", TIMED_OUT_REASON
        )
    wanted = spec.get("replicas")
    updated = status.get("updatedReplicas", 0)
    replicas = status.get("replicas", 0)
    available = status.get("availableReplicas", 0)
    prefix = f"Waiting for deployment {name} rollout to finish"
    if wanted is not None and updated < wanted:
        return Verdict(
            "waiting", f"{prefix}: {updated} out of {wanted} new replicas have been updated..."
        )
    if replicas > updated:
        return Verdict(
            "waiting", f"{prefix}: {replicas - updated} old replicas are pending termination..."
        )
    if available < updated:
        return Verdict(
            "waiting", f"{prefix}: {available} of {updated} updated replicas are available..."
        )
    return Verdict("done", f"deployment {name} successfully rolled out")


def _daemonset_status(daemon: dict[str, Any]) -> Verdict:
    """DaemonSetStatusViewer.Status (it ignores ``--revision``)."""
    name = _go_quote(_name(daemon))
    status = _status(daemon)
    if _update_strategy(daemon).get("type") != "RollingUpdate":
        return _unsupported_strategy()
    if _generation(daemon) > status.get("observedGeneration", 0):
        return Verdict("waiting", "Waiting for daemon set spec update to be observed...")
    desired = status.get("desiredNumberScheduled", 0)
    updated = status.get("updatedNumberScheduled", 0)
    available = status.get("numberAvailable", 0)
    prefix = f"Waiting for daemon set {name} rollout to finish"
    if updated < desired:
        return Verdict(
            "waiting", f"{prefix}: {updated} out of {desired} new pods have been updated..."
        )
    if available < desired:
        return Verdict(
            "waiting", f"{prefix}: {available} of {desired} updated pods are available..."
        )
    return Verdict("done", f"daemon set {name} successfully rolled out")


def _statefulset_status(sts: dict[str, Any]) -> Verdict:
    """StatefulSetStatusViewer.Status (it ignores ``--revision``)."""
    spec, status = _spec(sts), _status(sts)
    strategy = _update_strategy(sts)
    if strategy.get("type") != "RollingUpdate":
        return _unsupported_strategy()
    observed = status.get("observedGeneration", 0)
    if observed == 0 or _generation(sts) > observed:
        return Verdict("waiting", "Waiting for statefulset spec update to be observed...")
    wanted = spec.get("replicas")
    ready = status.get("readyReplicas", 0)
    updated = status.get("updatedReplicas", 0)
    if wanted is not None and ready < wanted:
        return Verdict("waiting", f"Waiting for {wanted - ready} pods to be ready...")
    rolling_update = strategy.get("rollingUpdate")
    # The API server defaults rollingUpdate.partition to 0 whenever it defaults the
    # strategy type, so most StatefulSets end here, "partitioned" or not.
    if rolling_update is not None:
        partition = rolling_update.get("partition")
        if wanted is not None and partition is not None and updated < wanted - partition:
            return Verdict(
                "waiting",
                f"Waiting for partitioned roll out to finish: {updated} out of "
                f"{wanted - partition} new pods have been updated...",
            )
        return Verdict(
            "done", f"partitioned roll out complete: {updated} new pods have been updated..."
        )
    update_revision = status.get("updateRevision", "")
    current_revision = status.get("currentRevision", "")
    if update_revision != current_revision:
        return Verdict(
            "waiting",
            f"waiting for statefulset rolling update to complete {updated} pods at revision "
            f"{update_revision}...",
        )
    current = status.get("currentReplicas", 0)
    return Verdict(
        "done",
        f"statefulset rolling update complete {current} pods at revision {current_revision}...",
    )


def _unsupported_strategy() -> Verdict:
    # kubectl names RollingUpdate for both kinds (it formats the StatefulSet constant).
    return Verdict(
        "failed",
        "rollout status is only available for RollingUpdate strategy type",
        "UnsupportedUpdateStrategy",
    )


def _deployment_revision(deployment: dict[str, Any]) -> tuple[int, str]:
    """deploymentutil.Revision: the revision annotation as an int64, 0 when absent.

    Returns (revision, "") or (0, the strconv.ParseInt error text).
    """
    annotations = deployment.get("metadata", {}).get("annotations") or {}
    if REVISION_ANNOTATION not in annotations:
        return 0, ""
    text = annotations[REVISION_ANNOTATION]
    if not _GO_DECIMAL.fullmatch(text):
        return 0, f"strconv.ParseInt: parsing {_go_quote(text)}: invalid syntax"
    value = int(text)
    if not -_INT64_MAX - 1 <= value <= _INT64_MAX:
        return 0, f"strconv.ParseInt: parsing {_go_quote(text)}: value out of range"
    return value, ""


def _condition(status: dict[str, Any], condition_type: str) -> dict[str, Any] | None:
    """deploymentutil.GetDeploymentCondition: the first condition of that type."""
    for condition in status.get("conditions") or []:
        if condition.get("type") == condition_type:
            return condition
    return None


def _go_quote(text: str) -> str:
    # Go's %q; the same as a JSON string for the printable names Kubernetes allows.
    return json.dumps(text, ensure_ascii=False)


def _name(obj: dict[str, Any]) -> str:
    return obj.get("metadata", {}).get("name", "")


def _generation(obj: dict[str, Any]) -> int:
    return obj.get("metadata", {}).get("generation", 0)


def _spec(obj: dict[str, Any]) -> dict[str, Any]:
    return obj.get("spec") or {}


def _status(obj: dict[str, Any]) -> dict[str, Any]:
    return obj.get("status") or {}


def _update_strategy(obj: dict[str, Any]) -> dict[str, Any]:
    return _spec(obj).get("updateStrategy") or {}
