"""Fail-fast judgement of a rollout's new pods, and how to tell which pods are new.

Pure: every function takes plain dicts (the JSON form of Pods, ReplicaSets and
ControllerRevisions as the API returns them) and does no I/O. kubectl's ``rollout status``
only reads the workload's counters and so waits out the progress deadline while a new pod
cannot pull its image or keeps crashing; the wait loop uses ``pod_problem`` on the new
pods to fail within seconds, naming the pod, the container and the kubelet's reason.

Which pods are new:
- Deployment: the pods of the ReplicaSet whose template is the Deployment's, found the way
  kubectl's deploymentutil does (``new_replicaset``), selected by its ``pod-template-hash``.
- StatefulSet: pods whose ``controller-revision-hash`` label is ``status.updateRevision``.
- DaemonSet: pods whose ``controller-revision-hash`` label is the hash of the
  ControllerRevision holding the DaemonSet's current template (``daemonset_update_hash``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

__all__ = [
    "STUCK_REASONS",
    "PodProblem",
    "daemonset_update_hash",
    "new_pods_selector",
    "new_replicaset",
    "pod_problem",
    "pod_template_hash",
    "selector_string",
]

# apps/v1 DefaultDeploymentUniqueLabelKey and ControllerRevisionHashLabelKey.
POD_TEMPLATE_HASH_LABEL = "pod-template-hash"
CONTROLLER_REVISION_HASH_LABEL = "controller-revision-hash"

# Container waiting reasons the kubelet keeps reporting until someone changes the spec,
# the image or the cluster: waiting out the progress deadline cannot help.
# https://github.com/kubernetes/kubernetes/blob/release-1.32/pkg/kubelet/images/types.go
# https://github.com/kubernetes/kubernetes/blob/release-1.32/pkg/kubelet/container/sync_result.go
STUCK_REASONS = frozenset(
    {
        "ImagePullBackOff",
        "ErrImagePull",
        "InvalidImageName",
        "CrashLoopBackOff",
        "CreateContainerConfigError",
        "CreateContainerError",
    }
)

# What to check next, per reason; {ref} is the pod as kubectl names it (NAME [-n NS]).
_NEXT_STEP = {
    "ImagePullBackOff": (
        "check that the image was pushed under that tag, that the nodes can reach the "
        "registry, and the pod's imagePullSecrets; see 'kubectl describe pod {ref}'"
    ),
    "InvalidImageName": "fix the image reference in the manifest or the set-image line",
    "CrashLoopBackOff": "check its logs: 'kubectl logs {ref} -c {container} --previous'",
    "CreateContainerConfigError": (
        "check that the ConfigMaps and Secrets it references (env, envFrom, volumes) exist "
        "in the pod's namespace with the keys it names; see 'kubectl describe pod {ref}'"
    ),
    "CreateContainerError": (
        "check its command, working directory and volume mounts; see 'kubectl describe pod {ref}'"
    ),
    "Unschedulable": (
        "check its resource requests, nodeSelector, affinity and tolerations against the "
        "nodes, and that its PersistentVolumeClaims are bound; "
        "see 'kubectl describe pod {ref}'"
    ),
}
_NEXT_STEP["ErrImagePull"] = _NEXT_STEP["ImagePullBackOff"]

_SELECTOR_OPERATORS = {"In": " in ", "NotIn": " notin ", "Exists": "", "DoesNotExist": ""}


@dataclass(frozen=True)
class PodProblem:
    """Why a new pod cannot become ready without someone's help.

    ``container`` is None when the whole pod is stuck (Unschedulable); ``reason`` is the
    kubelet's or scheduler's reason; ``message`` carries their message and what to check.
    """

    pod: str
    container: str | None
    reason: str
    message: str


def pod_problem(pod: dict[str, Any]) -> PodProblem | None:
    """Return the first permanent problem of ``pod``, or None if it may still get ready.

    Looks, in the order they would block the pod, at the PodScheduled condition
    (False with reason Unschedulable), then the init containers, then the containers:
    a ``state.waiting.reason`` in ``STUCK_REASONS`` is a problem. Pending pods that are
    merely slow (ContainerCreating, PodInitializing) are not.
    """
    metadata = pod.get("metadata") or {}
    name = metadata.get("name", "")
    ref = name + (f" -n {metadata['namespace']}" if metadata.get("namespace") else "")
    status = pod.get("status") or {}
    for condition in status.get("conditions") or []:
        if (
            condition.get("type") == "PodScheduled"
            and condition.get("status") == "False"
            and condition.get("reason") == "Unschedulable"
        ):
            detail = condition.get("message") or "no scheduler message"
            return PodProblem(
                name,
                None,
                "Unschedulable",
                f'pod "{name}" cannot be scheduled (Unschedulable: {detail}); '
                + _NEXT_STEP["Unschedulable"].format(ref=ref),
            )
    for field, role in (
        ("initContainerStatuses", "init container"),
        ("containerStatuses", "container"),
    ):
        for container in status.get(field) or []:
            waiting = (container.get("state") or {}).get("waiting") or {}
            if waiting.get("reason") in STUCK_REASONS:
                return _container_problem(name, ref, role, container, waiting)
    return None


def _container_problem(
    pod: str, ref: str, role: str, container: dict[str, Any], waiting: dict[str, Any]
) -> PodProblem:
    reason = waiting["reason"]
    container_name = container.get("name", "")
    what = {
        "ImagePullBackOff": f'cannot pull image "{container.get("image", "")}"',
        "ErrImagePull": f'cannot pull image "{container.get("image", "")}"',
        "InvalidImageName": f'has an invalid image reference "{container.get("image", "")}"',
        "CrashLoopBackOff": "keeps crashing",
        "CreateContainerConfigError": "cannot be created from its configuration",
        "CreateContainerError": "cannot be created",
    }[reason]
    detail = reason
    if reason == "CrashLoopBackOff":
        detail += _crash_summary(container)
    if waiting.get("message"):
        detail += f": {waiting['message']}"
    next_step = _NEXT_STEP[reason].format(ref=ref, container=container_name)
    return PodProblem(
        pod,
        container_name,
        reason,
        f'pod "{pod}": {role} "{container_name}" {what} ({detail}); {next_step}',
    )


def _crash_summary(container: dict[str, Any]) -> str:
    """Summarise restarts and the last termination: ", restarted N times; last exit code C"."""
    summary = f", restarted {container.get('restartCount', 0)} times"
    terminated = (container.get("lastState") or {}).get("terminated")
    if terminated:
        summary += f"; last exit code {terminated.get('exitCode')}"
        if terminated.get("reason"):
            summary += f" ({terminated['reason']})"
        if terminated.get("message"):
            summary += f", termination message: {terminated['message'].strip()}"
    return summary


def pod_template_hash(replicaset: dict[str, Any]) -> str | None:
    """Return the ``pod-template-hash`` label the ReplicaSet's pods carry, or None."""
    template_metadata = _template(replicaset).get("metadata") or {}
    for labels in (
        template_metadata.get("labels"),
        (replicaset.get("metadata") or {}).get("labels"),
    ):
        if labels and labels.get(POD_TEMPLATE_HASH_LABEL):
            return labels[POD_TEMPLATE_HASH_LABEL]
    return None


def new_replicaset(
    deployment: dict[str, Any], replicasets: Iterable[dict[str, Any]]
) -> dict[str, Any] | None:
    """Find the Deployment's new ReplicaSet; None while the controller has not made it.

    kubectl's rule (deploymentutil findNewReplicaSet and listReplicaSets,
    https://github.com/kubernetes/kubectl/blob/release-1.32/pkg/util/deployment/deployment.go):
    among the ReplicaSets the Deployment controls, the oldest whose pod template equals
    the Deployment's, ignoring the ``pod-template-hash`` label. Matching the template
    rather than the revision annotation keeps the old ReplicaSet from passing for the new
    one between a set-image and the controller's next sync, and while paused.
    """
    wanted = _without_hash_label(_template(deployment))
    owned = [rs for rs in replicasets if _controlled_by(rs, deployment)]
    owned.sort(key=lambda rs: (_created(rs), (rs.get("metadata") or {}).get("name", "")))
    for replicaset in owned:
        if _semantic(_without_hash_label(_template(replicaset))) == _semantic(wanted):
            return replicaset
    return None


def daemonset_update_hash(
    daemonset: dict[str, Any], controller_revisions: Iterable[dict[str, Any]]
) -> str | None:
    """Return the ``controller-revision-hash`` of the DaemonSet's current pods, or None.

    The DaemonSet controller stores each template in a ControllerRevision (its ``data`` is
    ``{"spec": {"template": ..., "$patch": "replace"}}``) and labels pods with that
    revision's hash. The current revision is the newest one holding the DaemonSet's
    template; once the controller has observed the DaemonSet's generation it is also the
    newest revision it owns (the controller renumbers a reused revision to the top).
    """
    owned = [cr for cr in controller_revisions if _controlled_by(cr, daemonset)]
    owned.sort(key=lambda cr: cr.get("revision", 0), reverse=True)
    wanted = _semantic(_template(daemonset))
    for revision in owned:
        stored = dict(((revision.get("data") or {}).get("spec") or {}).get("template") or {})
        stored.pop("$patch", None)
        if _semantic(stored) == wanted:
            return _revision_hash(revision, daemonset)
    if owned and _observed(daemonset):
        return _revision_hash(owned[0], daemonset)
    return None


def new_pods_selector(
    workload: dict[str, Any],
    *,
    replicasets: Iterable[dict[str, Any]] = (),
    controller_revisions: Iterable[dict[str, Any]] = (),
) -> str | None:
    """Build a label selector (for list and watch) matching only the rollout's new pods.

    Pass the ReplicaSets for a Deployment and the ControllerRevisions for a DaemonSet
    (listed with the workload's selector). None means the new pods cannot be told yet
    (the controller has not created the new revision) or the kind has no such pods.
    """
    kind = workload.get("kind")
    if kind == "Deployment":
        replicaset = new_replicaset(workload, replicasets)
        label = pod_template_hash(replicaset) if replicaset else None
        key = POD_TEMPLATE_HASH_LABEL
    elif kind == "StatefulSet":
        # Before the controller observes the spec, updateRevision still names the old pods.
        label = (
            (workload.get("status") or {}).get("updateRevision") if _observed(workload) else None
        )
        key = CONTROLLER_REVISION_HASH_LABEL
    elif kind == "DaemonSet":
        label = daemonset_update_hash(workload, controller_revisions)
        key = CONTROLLER_REVISION_HASH_LABEL
    else:
        return None
    if not label:
        return None
    selector = dict((workload.get("spec") or {}).get("selector") or {})
    selector["matchLabels"] = {**(selector.get("matchLabels") or {}), key: label}
    return selector_string(selector)


def selector_string(label_selector: dict[str, Any]) -> str:
    """Write a LabelSelector (matchLabels, matchExpressions) as list and watch take it.

    Mirrors apimachinery's LabelSelectorAsSelector followed by String(): requirements
    sorted by key, values sorted, "" for an empty selector (everything).
    https://github.com/kubernetes/apimachinery/blob/release-1.32/pkg/labels/selector.go
    Raises ValueError for an operator Kubernetes does not define.
    """
    requirements: list[tuple[str, str]] = [
        (key, f"{key}={value}") for key, value in (label_selector.get("matchLabels") or {}).items()
    ]
    for expression in label_selector.get("matchExpressions") or []:
        key, operator = expression.get("key", ""), expression.get("operator")
        if operator not in _SELECTOR_OPERATORS:
            raise ValueError(f'"{operator}" is not a valid label selector operator')
        if operator == "Exists":
            requirements.append((key, key))
        elif operator == "DoesNotExist":
            requirements.append((key, f"!{key}"))
        else:
            values = ",".join(sorted(expression.get("values") or []))
            requirements.append((key, f"{key}{_SELECTOR_OPERATORS[operator]}({values})"))
    requirements.sort(key=lambda requirement: requirement[0])
    return ",".join(text for _, text in requirements)


def _template(obj: dict[str, Any]) -> dict[str, Any]:
    return (obj.get("spec") or {}).get("template") or {}


def _without_hash_label(template: dict[str, Any]) -> dict[str, Any]:
    metadata = dict(template.get("metadata") or {})
    labels = dict(metadata.get("labels") or {})
    labels.pop(POD_TEMPLATE_HASH_LABEL, None)
    metadata["labels"] = labels
    return {**template, "metadata": metadata}


def _semantic(value: Any) -> Any:
    """``value`` with null, empty maps and empty lists dropped from maps.

    apimachinery's Semantic.DeepEqual holds nil and empty maps and slices equal, and the
    API's JSON writes a null creationTimestamp in templates that clients may drop.
    """
    if isinstance(value, dict):
        cleaned = {key: _semantic(item) for key, item in value.items()}
        return {key: item for key, item in cleaned.items() if item not in (None, {}, [])}
    if isinstance(value, list):
        return [_semantic(item) for item in value]
    return value


def _controlled_by(obj: dict[str, Any], owner: dict[str, Any]) -> bool:
    """metav1.IsControlledBy; objects without a uid (hand-built) are not checked."""
    owner_uid = (owner.get("metadata") or {}).get("uid")
    if not owner_uid:
        return True
    return any(
        ref.get("controller") and ref.get("uid") == owner_uid
        for ref in (obj.get("metadata") or {}).get("ownerReferences") or []
    )


def _created(obj: dict[str, Any]) -> str:
    # RFC 3339 in UTC with a Z, as the API writes it: sorts as text.
    return (obj.get("metadata") or {}).get("creationTimestamp") or ""


def _observed(workload: dict[str, Any]) -> bool:
    observed = (workload.get("status") or {}).get("observedGeneration", 0)
    return observed > 0 and observed >= (workload.get("metadata") or {}).get("generation", 0)


def _revision_hash(revision: dict[str, Any], daemonset: dict[str, Any]) -> str | None:
    labels = (revision.get("metadata") or {}).get("labels") or {}
    if labels.get(CONTROLLER_REVISION_HASH_LABEL):
        return labels[CONTROLLER_REVISION_HASH_LABEL]
    # The controller names revisions "<daemonset>-<hash>".
    name = (revision.get("metadata") or {}).get("name", "")
    prefix = (daemonset.get("metadata") or {}).get("name", "") + "-"
    return name.removeprefix(prefix) if name.startswith(prefix) else None
